"""The validity gates: each measure and its limit, on frames built here (the claims' tests cover the verdicts)."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cwl_lib import gates as G


def test_a_gate_passes_inside_its_limits_and_says_what_it_measured():
    above = G.Gate("CWL acted", 0.31, 0.05, None, "the shift", "CWLs that act", decimals=3)
    assert above.passed and above.text() == "CWL acted: 0.310 (needs >= 0.050), pass"
    below = G.Gate("headroom", 88.0, None, 75.0, "the baseline mAP", "headroom", decimals=1)
    assert not below.passed and below.reason() == ("the baseline mAP is 88.0 where <= 75.0 is needed: the claim "
                                                   "needs headroom")
    window = G.Gate("operating point", 0.8, 0.25, 0.75, "kept", "half")
    assert not window.passed and "needs 0.25 to 0.75" in window.text()
    assert G.Gate("operating point", 0.5, 0.25, 0.75, "kept", "half").passed
    missing = G.Gate("loss moved", None, None, 0.5, "the loss", "training", missing="no final_loss")
    assert not missing.passed and "not measured (no final_loss)" in missing.text()
    assert not G.Gate("x", math.nan, 0.0, None, "x", "x").passed
    assert G.summary([]) == "-" and G.failed([above, below]) == [below]


@pytest.mark.parametrize("quartiles,converged", [
    ([2.3, 0.5, 0.2, 0.1, 0.1], True),  # below 0.1 ln 10 at the end
    ([2.3, 1.0, 0.7, 0.61, 0.6], True),  # flat over the last quarter, above 0.1 ln 10
    ([2.3, 2.0, 1.5, 1.0, 0.5], False),  # still falling
    ([2.3, 2.3, 2.3, 2.3, 2.3], False),  # never moved
    ([2.3, 1.0, 0.5, 0.4, float("nan")], False),  # diverged
])
def test_a_run_converged_when_its_loss_is_low_or_flat(quartiles, converged):
    assert G.run_converged(quartiles, 10) is converged


def test_the_chance_bound_is_the_binomial_tests_critical_accuracy():
    for classes, n in ((10, 400), (8, 2000), (2, 50)):
        bound = G.chance_bound(classes, n)
        k = round(bound * n)
        assert stats.binomtest(k, n, 1 / classes, alternative="greater").pvalue < G.CHANCE_LEVEL
        assert stats.binomtest(k - 1, n, 1 / classes, alternative="greater").pvalue >= G.CHANCE_LEVEL
    assert G.above_chance(0.13, 10, 400, "x").passed and not G.above_chance(0.12, 10, 400, "x").passed
    assert G.above_chance(0.9, None, 400, "x").measured is None


def _grid(best_rate, rates=(0.001, 0.003, 0.01), cells=(1, 10), strategies=("freeze", "freeze+cwl")):
    rows = [{"dataset": "d", "arch": "a", "strategy": s, "shots": k, "repeat": r, "lr": lr,
             "accuracy": 0.5 + (0.1 if lr == best_rate(s, k) else 0.0)}
            for s in strategies for k in cells for r in range(2) for lr in rates]
    return pd.DataFrame(rows)


def test_the_grid_brackets_when_most_cells_of_each_strategy_peak_inside():
    inside = _grid(lambda s, k: 0.003)
    assert G.bracketed_share(inside, "freeze") == 1.0 and G.grid_brackets(inside, ["freeze", "freeze+cwl"]).passed
    half = _grid(lambda s, k: 0.003 if k == 1 else 0.01)
    assert G.bracketed_share(half, "freeze") == 0.5 and G.grid_brackets(half, ["freeze", "freeze+cwl"]).passed
    one_edge = _grid(lambda s, k: 0.001 if s == "freeze+cwl" else 0.003)
    gate = G.grid_brackets(one_edge, ["freeze", "freeze+cwl"])
    assert not gate.passed and gate.measured == 0.0 and "freeze+cwl" in gate.what
    assert G.bracketed_share(_grid(lambda s, k: 0.01, rates=(0.001, 0.01)), "freeze") == 0.0  # two rates: no inside


def test_cwl_acted_reads_the_chosen_runs_only():
    frame = _grid(lambda s, k: 0.003).assign(sigma_shift=lambda d: np.where(d["lr"] == 0.003, 0.2, 0.01))
    chosen = G.chosen_runs(frame, ["freeze+cwl"])
    assert set(chosen["lr"]) == {0.003} and len(chosen) == 4  # 2 shots x 2 repeats
    assert G.cwl_acted(chosen, "freeze+cwl").measured == pytest.approx(0.2)
    assert G.cwl_acted(chosen.drop(columns="sigma_shift"), "freeze+cwl").measured is None


def test_headroom_and_loss_moved():
    runs = pd.DataFrame({"dataset": ["d", "d", "e"], "arch": "a", "strategy": ["freeze", "finetune", "freeze"],
                         "medium": [40.0, 50.0, 80.0], "final_loss": [math.nan, 0.5, math.nan], "classes": 12})
    gate = G.headroom(runs)
    assert gate.measured == 80.0 and not gate.passed  # the worst case decides
    assert G.headroom(runs[runs["dataset"] == "d"]).passed
    moved = G.loss_moved(runs[runs["strategy"] == "finetune"])
    assert moved.measured == pytest.approx(0.5 / math.log(12)) and moved.passed


def test_an_edge_no_better_than_the_inside_within_noise_still_brackets():
    rows = []
    for r, noise in enumerate((0.01, -0.01, 0.02, -0.02)):
        for lr, acc in ((0.001, 0.50 + noise), (0.003, 0.495 - noise), (0.01, 0.40)):
            rows.append({"dataset": "d", "arch": "a", "strategy": "freeze", "shots": 1, "repeat": r, "lr": lr,
                         "accuracy": acc})
    flat = pd.DataFrame(rows)  # the lowest rate is best on average by 0.005, well inside the noise
    assert G.bracketed_share(flat, "freeze") == 1.0
    clear = flat.assign(accuracy=np.where(flat["lr"] == 0.001, flat["accuracy"] + 0.05, flat["accuracy"]))
    assert G.bracketed_share(clear, "freeze") == 0.0
