"""The claims ledger: the claims, the paper's effects from its tables, the statistics, and every verdict
reached on synthetic run records built here (the input shapes of the cwl_lib.claims docstring)."""
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cwl_lib import claims as C
from cwl_lib import effects as E
from cwl_lib import paper, profiles

BY_ID = {c.id: c for c in C.CLAIMS}
LAPTOP = {"profile": "laptop", "section3": {"arch": "mobilenet_v2", "fig1_dataset": "mnist"},
          "pruning": {"dataset": "fashion-mnist", "arch": "mobilenet_v2", "shots": 20, "n_test": 400, "classes": 10,
                      "figure_arch": "mobilenet_v2", "figure_tau": 0.9}}
PAPER = {"profile": "paper", "section3": {"arch": "vgg16", "fig1_dataset": "mnist"},
         "pruning": {"dataset": "kvasir", "arch": "vgg16", "shots": 50, "n_test": 2000, "classes": 8,
                     "figure_arch": "vgg16", "figure_tau": 0.8}}
CONVERGED = [2.3, 0.6, 0.2, 0.1, 0.095]  # loss at the start, 1/4, 1/2, 3/4 and the end of the budget


# --------------------------------------------------------------------------- synthetic run records
def classification(gain, *, datasets=("fashion-mnist",), archs=("mobilenet_v2",), shots=(1, 5, 10), repeats=5,
                   strategies=("freeze", "freeze+cwl"), noise=0.0, seed=0, level=(0.3, 0.03),
                   lrs=((0.001, 0.0), (0.003, 0.01), (0.01, 0.005)), sigma_shift=0.2, quartiles=CONVERGED):
    """One row per run; ``gain(arch, dataset, shots, strategy)`` is added to a base shared by the repeat's
    strategies (``level[0] + level[1] * log2(shots)`` and noise), plus per-run noise of sd ``noise``. Three
    learning rates each (``lrs``: rate and bonus), the middle one best, so the gates pass: CWL runs moved
    their scales by ``sigma_shift``, every run's loss converged (``quartiles``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in datasets:
        for a in archs:
            for k in shots:
                for r in range(repeats):
                    base = level[0] + level[1] * math.log2(k) + rng.normal(0, 0.03)  # shared by the pair: paired
                    for s in strategies:
                        extra = gain(a, d, k, s) + rng.normal(0, noise)
                        for lr, bonus in lrs:
                            rows.append({"dataset": d, "arch": a, "strategy": s, "shots": k, "lr": lr, "repeat": r,
                                         "accuracy": base + extra + bonus, "classes": 10,
                                         "loss_quartiles": list(quartiles),
                                         "sigma_shift": sigma_shift if s.endswith("+cwl") else math.nan})
    return pd.DataFrame(rows)


def cwl_gain(size):
    return lambda a, d, k, s: size if s.endswith("+cwl") else 0.0


def retrieval(gain, *, repeats=3, archs=("mobilenet_v2",), datasets=("offline-landmarks",), seed=0, base_map=40,
              final_loss=0.5, sigma_shift=0.2):
    """Runs of the four strategies; freeze once per repeat (lr NaN), the others at two learning rates of which
    0.01 is better by 2 points; ``gain(strategy)`` points are added to every protocol. The trained runs end at
    ``final_loss`` of 12 classes, the CWL runs moved their scales by ``sigma_shift``."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in datasets:
        for a in archs:
            for r in range(repeats):
                base = base_map + rng.normal(0, 2)
                for s in ("freeze", "freeze+cwl", "finetune", "finetune+cwl"):
                    for lr in ([math.nan] if s == "freeze" else [0.001, 0.01]):
                        m = base + gain(s) + (2.0 if lr == 0.01 else 0.0)
                        e, md, h = m + 10, m, m - 10
                        rows.append({"dataset": d, "arch": a, "strategy": s, "lr": lr, "repeat": r,
                                     "easy": e, "medium": md, "hard": h, "mean": (e + md + h) / 3, "classes": 12,
                                     "final_loss": math.nan if s == "freeze" else final_loss,
                                     "sigma_shift": sigma_shift if s.endswith("+cwl") else math.nan})
    return pd.DataFrame(rows)


def table_iv(unpruned=0.8, half=(0.45, 0.40, 0.70, 0.79), high=(0.1, 0.10, 0.60, 0.70), unpruned_ft=(0.8, 0.8)):
    """Table IV as ``pruning_study.table_iv`` prints it (tau "-" for the unpruned row, with its own ft1, ft3
    when it was finetuned); rows (params, acc, ft1, ft3) at tau 0.9 and 1.0, and a light threshold keeping 95%."""
    return pd.DataFrame([
        {"tau": "-", "acc": unpruned, "ft1": unpruned_ft[0], "ft3": unpruned_ft[1], "params": 1.0, "features": 1.0},
        {"tau": 0.6, "acc": unpruned - 0.01, "ft1": unpruned, "ft3": unpruned, "params": 0.95, "features": 0.97},
        {"tau": 0.9, "acc": half[1], "ft1": half[2], "ft3": half[3], "params": half[0], "features": 0.6},
        {"tau": 1.0, "acc": high[1], "ft1": high[2], "ft3": high[3], "params": high[0], "features": 0.2},
    ])


def layers(removed, tau=0.9):
    removed = np.asarray(removed, dtype=float)
    return pd.DataFrame({"layer": [f"features.{i}" for i in range(len(removed))], "kind": "conv",
                         "channels_kept": 1.0 - removed, "tau": tau})


# --------------------------------------------------------------------------- the claims
def test_claims_are_numbered_in_order_and_complete():
    ids = [c.id for c in C.CLAIMS]
    assert len(ids) >= 12 and ids == [f"C{i}" for i in range(1, len(ids) + 1)]
    notebooks = set(profiles.NOTEBOOKS)
    for c in C.CLAIMS:
        assert c.section and c.text and c.test and c.effect and c.paper_evidence and all(c.paper_evidence)
        assert c.source in notebooks and c.kind in C.EVALUATORS and c.side in (1, -1) and c.margin >= 0
    sections = [c.section for c in C.CLAIMS]
    assert sections == sorted(sections, key=lambda s: (["III", "IV", "V"].index(s.split("-")[0]), s)), "paper order"


def test_the_claims_the_issue_names_are_there():
    keys = {k for c in C.CLAIMS for k in c.options.get("keys", ())}
    assert {"theorem1_gap", "eq3_error", "eq5_eq3_orthogonal", "deeper_eq5_eq3_sines", "fig1_first_distance"} <= keys
    pairs = {(c.kind, c.options.get("pair")) for c in C.CLAIMS}
    assert ("classification", ("freeze", "freeze+cwl")) in pairs and ("shots_slope", ("freeze", "freeze+cwl")) in pairs
    assert ("classification", ("finetune", "finetune+cwl")) in pairs
    assert ("arch_contrast", ("freeze", "freeze+cwl")) in pairs
    finetune_vs_freeze = {c.options["datasets"] for c in C.CLAIMS if c.options.get("pair") == ("freeze", "finetune")}
    assert finetune_vs_freeze == {("kvasir", "chest-xray"), ("mit67",)}
    kinds = {c.kind for c in C.CLAIMS}
    assert {"retrieval", "pruning_cost", "pruning_recovery", "layer_depth"} <= kinds


# --------------------------------------------------------------------------- the paper's effects
def test_paper_effect_of_one_table_i_cell_is_its_difference():
    frame = classification(cwl_gain(0.05), datasets=("mit67",), archs=("vgg16",), shots=(1,))
    ev = C.evaluate(BY_ID["C10"], C.Inputs(classification=frame, setting=PAPER))
    assert ev.match == C.SAME and ev.paper.cells == 1
    assert ev.paper.value == pytest.approx(0.118 - 0.065)


def test_paper_effects_of_whole_tables():
    ev = C.evaluate(BY_ID["C10"], C.Inputs())
    diffs = [paper.TABLE_I[(a, d, "freeze+cwl")][k][0] - paper.TABLE_I[(a, d, "freeze")][k][0]
             for (a, d, s) in paper.TABLE_I if s == "freeze" for k in paper.SHOTS]
    assert ev.paper.cells == 24 and ev.paper.value == pytest.approx(np.mean(diffs))
    assert ev.paper.agree == 20 and "vgg16 chest-xray 1-shot -0.003" in ev.paper.exceptions
    mit = C.evaluate(BY_ID["C14"], C.Inputs()).paper  # finetune - freeze on MIT-67, Table II
    assert mit.cells == 4 and mit.agree == 4 and mit.value == pytest.approx(np.mean(
        [paper.TABLE_II[("vgg16", "mit67", "finetune")][k][0] - paper.TABLE_I[("vgg16", "mit67", "freeze")][k][0]
         for k in paper.SHOTS]))


def test_table_iii_exceptions_are_counted_from_the_table():
    p = C.evaluate(BY_ID["C15"], C.Inputs()).paper
    # 2 backbones x 2 datasets x 3 protocols x 2 baselines; by hand: three cells lower and one tie
    assert (p.cells, p.agree, len(p.exceptions)) == (24, 20, 4)
    assert "vgg16 roxford5k hard: freeze+cwl 14.55 vs freeze 15.21" in p.exceptions
    assert "vgg16 rparis6k hard: finetune+cwl 27.08 vs finetune 27.08" in p.exceptions  # a tie is no improvement
    text = C.ledger(C.Inputs()).set_index("id").loc["C15", "paper effect"]
    assert "14.55 vs freeze 15.21" in text and "20 on the claimed side" in text


def test_table_iv_paper_effects():
    cost = C.evaluate(BY_ID["C17"], C.Inputs()).paper
    assert cost.value == pytest.approx(0.904 - 0.889) and "tau 0.8" in cost.note  # the row keeping 48%
    rec = C.evaluate(BY_ID["C18"], C.Inputs()).paper
    assert rec.value == pytest.approx((0.533 - 0.121) / (0.904 - 0.121)) and "tau 1.2" in rec.note


def test_paper_slope_against_shots_is_computed_from_table_i():
    p = C.evaluate(BY_ID["C9"], C.Inputs()).paper
    gains = [np.mean([paper.TABLE_I[(a, d, "freeze+cwl")][k][0] - paper.TABLE_I[(a, d, "freeze")][k][0]
                      for (a, d, s) in paper.TABLE_I if s == "freeze"]) for k in paper.SHOTS]
    assert p.value == pytest.approx(stats.linregress(np.log2(paper.SHOTS), gains).slope)
    assert p.cells == 6


# --------------------------------------------------------------------------- statistics
def test_paired_effect_matches_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(0.5, 0.05, 10)
    b = a + 0.02 + rng.normal(0, 0.01, 10)
    e = E.paired_effect(b - a)
    d = b - a
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert (e.estimate, e.low, e.high) == pytest.approx((d.mean(), lo, hi))
    assert e.p == pytest.approx(stats.ttest_rel(b, a).pvalue) and e.n == 10
    # the stated formula, and that it has the stated power (noncentral t, two-sided 5%)
    t_a, t_b = stats.t.ppf(0.975, 9), stats.t.ppf(0.80, 9)
    assert e.mde == pytest.approx((t_a + t_b) * stats.sem(d))
    delta = e.mde / stats.sem(d)
    power = stats.nct.sf(t_a, 9, delta) + stats.nct.cdf(-t_a, 9, delta)
    assert power == pytest.approx(0.80, abs=0.01)


def test_paired_effect_edge_cases():
    one = E.paired_effect([0.03])
    assert one.n == 1 and not one.has_interval and one.p is None and E.verdict(one, 1) == E.NOT_TESTED
    flat = E.paired_effect([0.02, 0.02, 0.02])
    assert (flat.low, flat.high, flat.p, flat.mde) == (0.02, 0.02, 0.0, 0.0) and E.verdict(flat, 1) == E.SUPPORTED
    zeros = E.paired_effect([0.0, 0.0])
    assert zeros.p == 1.0 and E.verdict(zeros, 1) == E.INCONCLUSIVE
    assert E.verdict(zeros, 1, margin=0.01) == E.NOT_SUPPORTED  # a precise zero rules out a point
    with pytest.raises(ValueError, match="no paired"):
        E.paired_effect([])
    with pytest.raises(ValueError, match="NaN"):
        E.paired_effect([0.1, float("nan")])


def test_signed_rank_p_is_scipys_wilcoxon_of_the_pairs():
    a = np.array([0.50, 0.52, 0.47, 0.55, 0.49, 0.51])
    b = a + np.array([0.03, 0.0, 0.02, -0.01, 0.04, 0.02])  # a zero difference: split between the signs
    assert E.signed_rank_p(b - a) == stats.wilcoxon(b, a, zero_method="zsplit").pvalue
    assert math.isnan(E.signed_rank_p([0.03])) and E.signed_rank_p([0.0, 0.0, 0.0]) == 1.0


def test_mcnemar_effect_is_the_exact_test_on_discordant_pairs():
    x, y = "1" * 30 + "0" * 10, "1" * 18 + "0" * 22  # x right on 12 images where y is wrong, never the reverse
    e = E.mcnemar_effect([int(u) - int(v) for u, v in zip(x, y)])
    ci = stats.binomtest(12, 12).proportion_ci(0.95)
    assert (e.estimate, e.p, e.n, e.unit) == (0.3, stats.binomtest(12, 12).pvalue, 40, "test images")
    assert (e.low, e.high) == pytest.approx((12 / 40 * (2 * ci.low - 1), 12 / 40 * (2 * ci.high - 1)))
    # the interval leaves out 0 exactly when the test rejects, for every split of the discordant pairs
    for k in range(1, 41):
        for k_x in range(k + 1):
            m = E.mcnemar_effect([1] * k_x + [-1] * (k - k_x) + [0] * 5)
            assert (m.low > 0 or m.high < 0) == (m.p < 0.05), (k, k_x)
            assert m.estimate == pytest.approx((2 * k_x - k) / (k + 5))
    same = E.mcnemar_effect([0] * 10)
    assert (same.estimate, same.low, same.high, same.p) == (0.0, 0.0, 0.0, 1.0) and same.mde is None
    with pytest.raises(ValueError, match="-1, 0 or 1"):
        E.mcnemar_effect([0.5, 0.0])
    with pytest.raises(ValueError, match="no paired"):
        E.mcnemar_effect([])


def test_normal_effect_and_rank_correlation():
    e = E.normal_effect(0.03, 0.01, 400, "test images", "binomial", null=0.02)
    z = stats.norm.ppf(0.975)
    assert (e.low, e.high) == pytest.approx((0.03 - z * 0.01, 0.03 + z * 0.01))
    assert e.p == pytest.approx(2 * stats.norm.sf(1.0)) and e.mde == pytest.approx((z + stats.norm.ppf(0.8)) * 0.01)
    rng = np.random.default_rng(2)
    x = np.arange(13)
    y = -x + rng.normal(0, 3, 13)
    r = E.rank_correlation(x, y)
    ref = stats.spearmanr(x, y)
    assert r.estimate == pytest.approx(ref.statistic) and r.p == pytest.approx(ref.pvalue)
    se = math.sqrt(1.06 / 10)
    assert r.low == pytest.approx(math.tanh(math.atanh(r.estimate) - z * se))
    assert not E.rank_correlation(x[:4], y[:4]).has_interval  # too few layers
    assert math.isnan(E.rank_correlation(x, np.ones(13)).estimate)  # no ordering


@pytest.mark.parametrize("side", [1, -1])
def test_the_verdict_rule(side):
    def eff(lo, hi):
        return E.Effect((lo + hi) / 2, lo, hi, 0.5, 10, 0.01, "paired t", "repeats")

    s = side
    assert E.verdict(eff(*sorted((s * 0.01, s * 0.03))), side) == E.SUPPORTED
    assert E.verdict(eff(*sorted((-s * 0.03, -s * 0.01))), side) == E.NOT_SUPPORTED
    assert E.verdict(eff(*sorted((-s * 0.01, s * 0.03))), side) == E.INCONCLUSIVE
    # the whole interval short of the smallest effect of interest, though it contains 0
    assert E.verdict(eff(*sorted((-s * 0.004, s * 0.006))), side, margin=0.01) == E.NOT_SUPPORTED
    # a claim about a bound other than 0, and a tiny but certain effect: the first rule wins
    assert E.verdict(eff(*sorted((0.5 + s * 0.01, 0.5 + s * 0.02))), side, bound=0.5) == E.SUPPORTED
    assert E.verdict(eff(*sorted((s * 0.002, s * 0.004))), side, margin=0.01) == E.SUPPORTED
    assert E.verdict(None, side) == E.NOT_TESTED
    with pytest.raises(ValueError):
        E.verdict(eff(0, 1), 0)
    assert "supported" in E.VERDICT_RULE and "not tested here" in E.VERDICT_RULE and "inconclusive" in E.VERDICT_RULE


# --------------------------------------------------------------------------- verdicts on synthetic runs
def test_clear_gain_is_supported_and_clear_loss_is_not():
    good = C.evaluate(BY_ID["C10"], C.Inputs(classification=classification(cwl_gain(0.05), noise=0.005)))
    assert good.verdict == E.SUPPORTED and good.ours.estimate == pytest.approx(0.05, abs=0.01)
    assert good.ours.n == 5 and good.match == C.STAND_IN and len(good.detail) == 3
    bad = C.evaluate(BY_ID["C10"], C.Inputs(classification=classification(cwl_gain(-0.05), noise=0.005)))
    assert bad.verdict == E.NOT_SUPPORTED and "below" in bad.reason


def test_noise_is_inconclusive_with_its_detectable_effect():
    frame = classification(cwl_gain(0.0), noise=0.05, repeats=4, seed=3)
    ev = C.evaluate(BY_ID["C10"], C.Inputs(classification=frame))
    assert ev.verdict == E.INCONCLUSIVE and ev.ours.low < 0 < ev.ours.high
    # the MDE is that of the per-repeat differences the ledger pairs
    best = frame[frame["lr"] == 0.003].pivot_table(index=["shots", "repeat"], columns="strategy", values="accuracy")
    per_repeat = (best["freeze+cwl"] - best["freeze"]).groupby("repeat").mean()
    assert ev.ours.mde == pytest.approx(E.paired_effect(per_repeat.to_numpy()).mde)
    assert f"{ev.ours.mde:.3f}" in ev.reason and "80% power" in ev.reason


def test_a_run_that_cannot_show_the_effect_is_not_testable_and_says_what_it_measured():
    gain = cwl_gain(-0.05)  # a clear loss: without the gates it reads "not supported"
    still = C.evaluate(BY_ID["C10"], C.Inputs(classification=classification(gain, sigma_shift=0.01)))
    assert still.verdict == E.NOT_TESTABLE and still.ours.estimate == pytest.approx(-0.05, abs=0.01)
    assert "mean |sigma - 1| is 0.010 where >= 0.050 is needed" in still.reason and "CWLs that act" in still.reason
    assert "CWL acted: 0.010 (needs >= 0.050), fail" in C.row(still)["gates"]
    falling = [2.3, 2.0, 1.6, 1.2, 0.8]  # still falling at the end, far above 0.1 ln 10
    unconverged = C.evaluate(BY_ID["C10"], C.Inputs(classification=classification(gain, quartiles=falling)))
    assert unconverged.verdict == E.NOT_TESTABLE and "converged" in unconverged.reason
    at_edge = ((0.001, 0.0), (0.003, 0.005), (0.01, 0.01))  # the best rate is the grid's largest
    edge = C.evaluate(BY_ID["C10"], C.Inputs(classification=classification(gain, lrs=at_edge)))
    assert edge.verdict == E.NOT_TESTABLE and "inside the grid" in edge.reason
    two = C.evaluate(BY_ID["C9"], C.Inputs(classification=classification(gain, lrs=((0.001, 0.0), (0.01, 0.01)))))
    assert two.verdict == E.NOT_TESTABLE and "2 rates" in two.reason  # two rates bracket nothing
    # a flattened curve converged even above 0.1 ln C; the gates pass and the loss reads as a loss
    flat = [2.3, 0.9, 0.62, 0.6, 0.59]
    judged = C.evaluate(BY_ID["C10"], C.Inputs(classification=classification(gain, quartiles=flat)))
    assert judged.verdict == E.NOT_SUPPORTED and all(g.passed for g in judged.gates)


def test_retrieval_without_headroom_or_training_is_not_testable():
    full = C.evaluate(BY_ID["C15"], C.Inputs(retrieval=retrieval(lambda s: -3 * s.endswith("+cwl"), base_map=85)))
    assert full.verdict == E.NOT_TESTABLE and "headroom" in full.reason and "85" in C.row(full)["gates"]
    idle = C.evaluate(BY_ID["C16"], C.Inputs(retrieval=retrieval(lambda s: 0.0, final_loss=2.3)))
    assert idle.verdict == E.NOT_TESTABLE and "moved the training loss" in idle.reason
    still = C.evaluate(BY_ID["C15"], C.Inputs(retrieval=retrieval(lambda s: 0.0, sigma_shift=0.0)))
    assert still.verdict == E.NOT_TESTABLE and "CWLs that act" in still.reason
    assert C.evaluate(BY_ID["C16"], C.Inputs(retrieval=retrieval(lambda s: 0.0, sigma_shift=0.0))).verdict \
        != E.NOT_TESTABLE  # finetune against freeze needs no CWL


def test_one_repeat_and_a_missing_strategy_are_not_tested():
    one = C.evaluate(BY_ID["C10"], C.Inputs(classification=classification(cwl_gain(0.05), repeats=1)))
    assert one.verdict == E.NOT_TESTED and "at least 2 repeats" in one.reason and "(this run: 1)" in one.reason
    frame = classification(cwl_gain(0.05), strategies=("freeze",))
    missing = C.evaluate(BY_ID["C10"], C.Inputs(classification=frame))
    assert missing.verdict == E.NOT_TESTED and "no freeze+cwl runs" in missing.reason and missing.ours is None
    assert C.evaluate(BY_ID["C10"], C.Inputs()).reason == "03_classification recorded no runs"


def test_only_repeats_that_ran_every_cell_are_paired():
    frame = classification(cwl_gain(0.05), noise=0.005)
    frame = frame[~((frame["shots"] == 5) & (frame["repeat"] == 4) & (frame["strategy"] == "freeze+cwl"))]
    ev = C.evaluate(BY_ID["C10"], C.Inputs(classification=frame))
    assert ev.ours.n == 4 and ev.detail.set_index("shots").loc[5, "pairs"] == 4
    assert ev.detail.set_index("shots").loc[1, "pairs"] == 5  # the per-cell detail keeps every pair it has


def test_bad_frame_fails_early():
    with pytest.raises(ValueError, match="lacks the columns"):
        C.evaluate(BY_ID["C10"], C.Inputs(classification=classification(cwl_gain(0.0)).drop(columns="lr")))


def test_same_experiment_restricts_to_the_papers_cells():
    frame = pd.concat([classification(cwl_gain(0.05), datasets=("mit67", "fashion-mnist"), archs=("vgg16",),
                                      shots=(1, 3), noise=0.005)])
    ev = C.evaluate(BY_ID["C10"], C.Inputs(classification=frame, setting=PAPER))
    assert ev.match == C.SAME and set(ev.detail["dataset"]) == {"mit67"}  # our extra dataset is left out
    assert ev.paper.cells == 2 and ev.paper.value == pytest.approx(np.mean([0.118 - 0.065, 0.236 - 0.178]))
    row = C.row(ev)
    assert row["paper effect in our CI"] in ("yes", "no")
    expected = "yes" if ev.ours.low <= ev.paper.value <= ev.ours.high else "no"
    assert row["paper effect in our CI"] == expected


def test_finetune_against_freeze_needs_the_papers_datasets():
    strategies = ("freeze", "finetune")
    standin = classification(cwl_gain(0.0), strategies=strategies)
    ev = C.evaluate(BY_ID["C13"], C.Inputs(classification=standin))
    assert ev.verdict == E.NOT_TESTED and "kvasir" in ev.reason and "fashion-mnist" in ev.reason
    medical = classification(lambda a, d, k, s: 0.06 if s == "finetune" else 0.0, datasets=("kvasir", "mit67"),
                             archs=("vgg16",), strategies=strategies, noise=0.005)
    assert C.evaluate(BY_ID["C13"], C.Inputs(classification=medical)).verdict == E.SUPPORTED
    mit = C.evaluate(BY_ID["C14"], C.Inputs(classification=medical))
    assert mit.verdict == E.NOT_SUPPORTED and set(mit.detail["dataset"]) == {"mit67"}  # finetuning is ahead there
    behind = classification(lambda a, d, k, s: -0.05 if s == "finetune" else 0.0, datasets=("mit67",),
                            archs=("vgg16",), strategies=strategies, noise=0.005)
    assert C.evaluate(BY_ID["C14"], C.Inputs(classification=behind)).verdict == E.SUPPORTED


def test_vgg_against_resnet():
    only_one = C.evaluate(BY_ID["C11"], C.Inputs(classification=classification(cwl_gain(0.05))))
    assert only_one.verdict == E.NOT_TESTED and "vgg16 and resnet50" in only_one.reason
    frame = classification(lambda a, d, k, s: (0.06 if a == "vgg16" else 0.01) * s.endswith("+cwl"),
                           datasets=("kvasir",), archs=("vgg16", "resnet50"), noise=0.005)
    ev = C.evaluate(BY_ID["C11"], C.Inputs(classification=frame))
    assert ev.verdict == E.SUPPORTED and ev.ours.estimate == pytest.approx(0.05, abs=0.01) and ev.match == C.SAME
    assert ev.paper.cells == 3  # the paper cells we ran: Kvasir at 1, 5 and 10 shots


def test_gain_shrinking_with_shots():
    shrinking = classification(lambda a, d, k, s: (0.1 - 0.02 * math.log2(k)) * s.endswith("+cwl"), noise=0.003)
    ev = C.evaluate(BY_ID["C9"], C.Inputs(classification=shrinking))
    assert ev.verdict == E.SUPPORTED and ev.ours.estimate == pytest.approx(-0.02, abs=0.003)
    growing = classification(lambda a, d, k, s: 0.02 * math.log2(k) * s.endswith("+cwl"), noise=0.003)
    assert C.evaluate(BY_ID["C9"], C.Inputs(classification=growing)).verdict == E.NOT_SUPPORTED
    one_shot = C.evaluate(BY_ID["C9"], C.Inputs(classification=classification(cwl_gain(0.05), shots=(1,))))
    assert one_shot.verdict == E.NOT_TESTED and "numbers of images per class" in one_shot.reason


def test_retrieval_uses_each_strategys_chosen_learning_rate():
    frame = retrieval(lambda s: 1.5 if s.endswith("+cwl") else 0.0)
    ev = C.evaluate(BY_ID["C15"], C.Inputs(retrieval=frame))
    # each trained strategy at its better lr 0.01 (+2 points), freeze without one: freeze+cwl - freeze is
    # 3.5, finetune+cwl - finetune 1.5, in every repeat (zero spread); lr 0.001 would give 1.5 and 1.5
    assert ev.ours.estimate == pytest.approx((3.5 + 1.5) / 2) and ev.ours.n == 3 and ev.verdict == E.SUPPORTED
    assert ev.match == C.STAND_IN and ev.note.startswith("ahead in 6 of 6")
    small = C.evaluate(BY_ID["C15"], C.Inputs(retrieval=retrieval(lambda s: 0.2 * s.endswith("+cwl"))))
    assert small.verdict == E.SUPPORTED  # certain, if small: the first rule wins over the margin
    single = C.evaluate(BY_ID["C16"], C.Inputs(retrieval=retrieval(lambda s: 3.0 * (s == "finetune"), repeats=1)))
    assert single.verdict == E.NOT_TESTED and "at least 2 repeats" in single.reason and "+5.00" in single.reason


def test_retrieval_where_no_repeat_ran_every_case_is_not_tested_here():
    frame = retrieval(lambda s: 1.0 * s.endswith("+cwl"), repeats=2, datasets=("offline-landmarks", "mini"))
    frame = frame[(frame["dataset"] == "mini") == (frame["repeat"] == 1)]  # each dataset kept one repeat of its own
    ev = C.evaluate(BY_ID["C15"], C.Inputs(retrieval=frame))
    assert ev.verdict == E.NOT_TESTED and "no repeat ran every" in ev.reason


def test_retrieval_on_the_papers_datasets_is_the_same_experiment():
    frame = retrieval(lambda s: 1.0 if s.endswith("+cwl") else 0.0, archs=("vgg16",), datasets=("roxford5k",))
    ev = C.evaluate(BY_ID["C15"], C.Inputs(retrieval=frame))
    assert ev.match == C.SAME and ev.paper.cells == 6  # vgg16 roxford5k, 3 protocols x 2 baselines


def test_pruning_cost_and_recovery():
    light = table_iv(half=(0.45, 0.40, 0.70, 0.795))
    few = C.evaluate(BY_ID["C17"], C.Inputs(pruning=light, setting=LAPTOP))  # 400 test images: too few to tell
    assert few.verdict == E.INCONCLUSIVE and few.ours.estimate == pytest.approx(0.005) and "tau 0.9" in few.note
    many = {**LAPTOP, "pruning": {**LAPTOP["pruning"], "n_test": 40000}}
    assert C.evaluate(BY_ID["C17"], C.Inputs(pruning=light, setting=many)).verdict == E.SUPPORTED
    heavy = C.evaluate(BY_ID["C17"], C.Inputs(pruning=table_iv(half=(0.45, 0.40, 0.70, 0.70)), setting=LAPTOP))
    assert heavy.verdict == E.NOT_SUPPORTED and heavy.match == C.STAND_IN
    se = math.sqrt(0.8 * 0.2 / 400 + 0.7 * 0.3 / 400)
    assert heavy.ours.high - heavy.ours.low == pytest.approx(2 * stats.norm.ppf(0.975) * se)
    rec = C.evaluate(BY_ID["C18"], C.Inputs(pruning=table_iv(), setting=LAPTOP))
    assert rec.ours.estimate == pytest.approx((0.6 - 0.1) / (0.8 - 0.1)) and "tau 1" in rec.note  # the largest tau
    assert rec.verdict == E.SUPPORTED
    no_n = C.evaluate(BY_ID["C17"], C.Inputs(pruning=table_iv(), setting={"pruning": {"arch": "vgg16"}}))
    assert no_n.verdict == E.NOT_TESTED and "n_test" in no_n.reason
    nothing_half = table_iv(half=(0.9, 0.7, 0.75, 0.78), high=(0.85, 0.6, 0.7, 0.75))
    untestable = C.evaluate(BY_ID["C17"], C.Inputs(pruning=nothing_half, setting=LAPTOP))
    assert untestable.verdict == E.NOT_TESTABLE and "25% to 75%" in untestable.reason
    assert "operating point: not measured" in C.row(untestable)["gates"]


def test_pruning_cost_is_charged_against_the_better_unpruned_network():
    # finetuning alone lifts the unpruned network from 0.80 to 0.88: pruning to 45% costs 0.09, not 0.01
    lifted = C.evaluate(BY_ID["C17"], C.Inputs(pruning=table_iv(unpruned_ft=(0.85, 0.88)), setting=LAPTOP))
    assert lifted.ours.estimate == pytest.approx(0.88 - 0.79) and lifted.verdict == E.NOT_SUPPORTED
    assert "unpruned 0.880 after the same FT@3 (0.800 before)" in lifted.note
    # a finetuning that lowers it leaves the reference where it was; an old record without it reads as before
    lowered = C.evaluate(BY_ID["C17"], C.Inputs(pruning=table_iv(unpruned_ft=(0.7, 0.75)), setting=LAPTOP))
    plain = C.evaluate(BY_ID["C17"], C.Inputs(pruning=table_iv(unpruned_ft=(None, None)), setting=LAPTOP))
    assert lowered.ours.estimate == plain.ours.estimate == pytest.approx(0.8 - 0.79)
    assert "(0.750 after the same FT@3)" in lowered.note and "(no accuracy after the same FT@3 recorded)" in plain.note
    # C18's recovered share stays the paper's: read against the network before any finetuning
    rec = C.evaluate(BY_ID["C18"], C.Inputs(pruning=table_iv(unpruned_ft=(0.85, 0.88)), setting=LAPTOP))
    assert rec.ours.estimate == pytest.approx((0.6 - 0.1) / (0.8 - 0.1)) and rec.verdict == E.SUPPORTED
    assert "FT@1 keeps the unpruned network: 0.050 (needs >= -0.050), pass" in C.row(rec)["gates"]
    assert "(0.850 after the same epoch: finetuning alone moves it by +0.050)" in rec.note


def test_recovery_is_not_read_where_one_epoch_of_finetuning_hurts_the_unpruned_network():
    hurt = C.evaluate(BY_ID["C18"], C.Inputs(pruning=table_iv(unpruned_ft=(0.7, 0.8)), setting=LAPTOP))
    assert hurt.verdict == E.NOT_TESTABLE and "disruption" in hurt.reason
    assert "FT@1 keeps the unpruned network: -0.100 (needs >= -0.050), fail" in C.row(hurt)["gates"]
    # no unpruned FT@1 beside the pruned rows' (a diverged finetuning): not measured, so not read
    diverged = C.evaluate(BY_ID["C18"], C.Inputs(pruning=table_iv(unpruned_ft=(None, None)), setting=LAPTOP))
    assert diverged.verdict == E.NOT_TESTABLE
    assert "FT@1 keeps the unpruned network: not measured (the unpruned network's finetuning diverged" in \
        C.row(diverged)["gates"]


def test_thresholds_at_chance_are_named_and_must_lie_past_the_row_read():
    dead_high = table_iv(high=(0.05, 0.10, 0.10, 0.11))
    for cid in ("C17", "C18"):  # both read tau 0.9 (45%); tau 1.0 (5%) never leaves chance
        ev = C.evaluate(BY_ID[cid], C.Inputs(pruning=dead_high, setting=LAPTOP))
        assert "tau 1 at chance after FT@3: 0.05 (needs <= 0.45), pass" in C.row(ev)["gates"]
    fine = C.evaluate(BY_ID["C17"], C.Inputs(pruning=table_iv(), setting=LAPTOP))
    assert "no threshold at chance after FT@3: 0.00 (needs <= 0.45), pass" in C.row(fine)["gates"]
    # a threshold keeping more than the row read, yet at chance: a broken run, not a verdict
    broken = table_iv(half=(0.45, 0.40, 0.70, 0.79))
    broken.loc[1, ["acc", "ft1", "ft3"]] = 0.1
    ev = C.evaluate(BY_ID["C17"], C.Inputs(pruning=broken, setting=LAPTOP))
    assert ev.verdict == E.NOT_TESTABLE and "tau 0.6 at chance after FT@3: 0.95 (needs <= 0.45), fail" in C.row(ev)["gates"]
    assert "collapse only where they keep fewer parameters" in ev.reason
    diverged = table_iv()
    diverged.loc[1, "ft3"] = float("nan")  # a finetuning that diverged trained nothing either
    assert "tau 0.6 at chance after FT@3: 0.95 (needs <= 0.45), fail" in C.row(
        C.evaluate(BY_ID["C17"], C.Inputs(pruning=diverged, setting=LAPTOP)))["gates"]


def test_pruning_claims_are_not_testable_where_the_networks_are_at_chance():
    dead_half = C.evaluate(BY_ID["C17"], C.Inputs(pruning=table_iv(half=(0.45, 0.10, 0.10, 0.11)), setting=LAPTOP))
    assert dead_half.verdict == E.NOT_TESTABLE and "above chance" in dead_half.reason
    assert dead_half.ours is not None  # the effect is still shown, just not judged
    gates = C.row(dead_half)["gates"]
    assert "the unpruned network above chance: 0.800 (needs >= 0.128), pass" in gates
    assert "after FT@3 above chance: 0.110 (needs >= 0.128), fail" in gates
    # C18 reads the largest tau a finetuning can train: tau 1.0 never leaves chance, so tau 0.9 is read
    dead_high = table_iv(high=(0.05, 0.10, 0.10, 0.11))
    rec = C.evaluate(BY_ID["C18"], C.Inputs(pruning=dead_high, setting=LAPTOP))
    assert "tau 0.9" in rec.note and "tau 1 skipped" in rec.note
    assert rec.ours.estimate == pytest.approx((0.70 - 0.40) / (0.8 - 0.40)) and rec.verdict != E.NOT_TESTABLE
    # with every pruned network at chance, nothing is read: not testable, never "not supported"
    none = table_iv(half=(0.45, 0.10, 0.10, 0.11), high=(0.05, 0.10, 0.10, 0.11))
    assert C.evaluate(BY_ID["C18"], C.Inputs(pruning=none, setting=LAPTOP)).verdict == E.NOT_TESTABLE


def test_pruning_in_the_papers_setting_is_the_same_experiment():
    frame = table_iv().rename(columns={"ft3": "ft30"})
    ev = C.evaluate(BY_ID["C17"], C.Inputs(pruning=frame, setting=PAPER))
    assert ev.match == C.SAME and C.row(ev)["paper effect in our CI"] in ("yes", "no")
    shorter = C.evaluate(BY_ID["C17"], C.Inputs(pruning=table_iv(), setting=PAPER))
    assert shorter.match == C.STAND_IN  # FT@3 stands in for FT@30
    assert C.evaluate(BY_ID["C18"], C.Inputs(pruning=table_iv(), setting=PAPER)).match == C.SAME  # FT@1 is FT@1


def test_lower_layers_losing_more():
    down = C.evaluate(BY_ID["C19"], C.Inputs(pruning_layers=layers(np.linspace(0.8, 0.1, 13) + np.r_[[0, 0.05] * 6, 0]),
                                             setting=LAPTOP))
    assert down.verdict == E.SUPPORTED and down.ours.n == 13 and down.ours.estimate < -0.8
    up = C.evaluate(BY_ID["C19"], C.Inputs(pruning_layers=layers(np.linspace(0.1, 0.8, 13)), setting=LAPTOP))
    assert up.verdict == E.NOT_SUPPORTED
    wrong_tau = C.evaluate(BY_ID["C19"], C.Inputs(pruning_layers=layers(np.linspace(0.8, 0.1, 13), tau=0.5),
                                                  setting=LAPTOP))
    assert wrong_tau.verdict == E.NOT_TESTED and "tau 0.9" in wrong_tau.reason
    nothing = C.evaluate(BY_ID["C19"], C.Inputs(pruning_layers=layers(np.zeros(13)), setting=LAPTOP))
    assert nothing.verdict == E.NOT_TESTED and "removes no filter" in nothing.reason


def test_section_iii_measures():
    good = {"theorem1_gap": 3e-16, "eq3_error": 2e-6, "deeper_eq5_eq3_sines": [0.02, 0.5, 0.04],
            "fig1_first_distance": 0.4, "fig1_deeper_distances": [0.1, 0.45]}
    inputs = C.Inputs(measures=good, setting=LAPTOP)
    assert C.evaluate(BY_ID["C1"], inputs).verdict == E.SUPPORTED
    assert C.evaluate(BY_ID["C1"], C.Inputs(measures={"theorem1_gap": 1e-3})).verdict == E.NOT_SUPPORTED
    gram = C.evaluate(BY_ID["C6"], inputs)
    assert gram.verdict == E.SUPPORTED and gram.ours.estimate == pytest.approx(0.04)  # the median
    fig1 = C.evaluate(BY_ID["C7"], inputs)
    assert fig1.verdict == E.NOT_SUPPORTED and fig1.ours.estimate == pytest.approx(-0.05) and fig1.match == C.SAME
    absent = C.evaluate(BY_ID["C8"], inputs)
    assert absent.verdict == E.NOT_TESTED and "cwl_identity_error" in absent.reason


# --------------------------------------------------------------------------- the ledger
def _laptop_inputs():
    # accuracies near 0.9, far from every paper cell, so a raw difference could not pass for an effect
    return C.Inputs(classification=classification(cwl_gain(0.04), noise=0.01, level=(0.9, 0.0)),
                    retrieval=retrieval(lambda s: 1.0 * s.endswith("+cwl"), repeats=1), pruning=table_iv(),
                    pruning_layers=layers(np.linspace(0.8, 0.1, 13)),
                    measures={"theorem1_gap": 3e-16, "deeper_eq5_eq3_sines": [0.3, 0.2]}, setting=LAPTOP)


def test_ledger_is_one_row_of_text_per_claim():
    led = C.ledger(_laptop_inputs())
    assert list(led.columns) == list(C.LEDGER_COLUMNS) and list(led["id"]) == [c.id for c in C.CLAIMS]
    assert set(led["verdict"]) <= set(E.VERDICTS) and len(set(led["verdict"])) >= 3
    cells = [v for v in led.to_numpy().ravel()]
    assert all(isinstance(v, str) for v in cells)
    assert not any(re.search(r"np\.|array\(|tensor\(|nan\b", v) for v in cells)
    tested = led[led["verdict"] != E.NOT_TESTED]
    assert (tested["our effect"] != "-").all() and (led.loc[led["verdict"] == E.NOT_TESTED, "reason"] != "").all()
    inconclusive = led[led["verdict"] == E.INCONCLUSIVE]
    assert inconclusive["reason"].str.contains("could detect").all()


def test_ledger_states_the_effect_each_tested_claim_could_detect():
    """The detectable effect is the paired test's power statement, (t_0.975 + t_0.80) x SE on n - 1 degrees of
    freedom, written for every claim with a spread, supported ones too (a supported claim's power matters as much)."""
    inputs = _laptop_inputs()
    led = C.ledger(inputs).set_index("id")
    c10 = C.evaluate(BY_ID["C10"], inputs).ours
    se = (c10.high - c10.low) / 2 / stats.t.ppf(0.975, c10.n - 1)
    expected = (stats.t.ppf(0.975, c10.n - 1) + stats.t.ppf(0.80, c10.n - 1)) * se
    assert float(led.loc["C10", "detectable effect"]) == pytest.approx(expected, abs=6e-4)
    assert led.loc["C1", "verdict"] == E.SUPPORTED and led.loc["C1", "detectable effect"] == ""  # exact: no spread
    assert (led.loc[led["verdict"] == E.NOT_TESTED, "detectable effect"] == "").all()
    c17 = C.evaluate(BY_ID["C17"], inputs).ours  # a normal-approximation effect states its power too
    assert c17.mde is not None and float(led.loc["C17", "detectable effect"]) == pytest.approx(c17.mde, abs=6e-4)


def test_ledger_shows_no_raw_stand_in_difference():
    inputs = _laptop_inputs()
    led = C.ledger(inputs)
    text = " ".join(led.to_numpy().ravel())
    ours = inputs.classification.groupby(["strategy", "shots", "repeat"])["accuracy"].max().groupby(
        ["strategy", "shots"]).mean()
    cells = {**paper.TABLE_I, **paper.TABLE_II}
    raw = {f"{m - row[k][0]:+.3f}" for (s, k), m in ours.items()
           for (_, _, s2), row in cells.items() if s2 == s and k in row}
    assert raw and not [r for r in raw if r in text]
    stand_ins = led[led["match"] == C.STAND_IN]
    assert len(stand_ins) >= 3 and (stand_ins["paper effect in our CI"] == "").all()
    assert "ours - paper" not in led.columns


def test_a_missing_measure_states_why():
    inputs = C.Inputs(measures={"theorem1_gap": 3e-16}, missing={"02_convolution_svd": "no measures.json here"},
                      setting=LAPTOP)
    assert C.evaluate(BY_ID["C1"], inputs).verdict == E.SUPPORTED
    for cid in ("C3", "C8"):  # both measured by 02
        ev = C.evaluate(BY_ID[cid], inputs)
        assert ev.verdict == E.NOT_TESTED and ev.reason.endswith(": no measures.json here")
    assert BY_ID["C8"].source == "02_convolution_svd"
