"""Pruning as score -> decide -> apply, Network Slimming at matched size, and the pruning study's records."""
import copy
import io

import pytest
import torch
import torch_pruning as tp
import torchvision
from scipy.stats import binomtest

from cwl_lib import executor, profiles, pruning, records, transfer
from cwl_lib.data.classification import ImageSet, Split
from cwl_lib.studies import Context
from cwl_lib.studies import pruning as study
from cwl_lib.weighting import BATCH_NORMS


# --------------------------------------------------------------------------- decide
def test_decide_removes_under_tau_and_rescues_the_best_scored():
    score = torch.tensor([0.1, 0.9, 0.3, 0.05, 2.0], dtype=torch.float64)
    assert pruning.decide(score, 0.5) == ([0, 2, 3], [])
    removed, rescued = pruning.decide(score, 5.0, min_channels=2)
    assert sorted(removed + rescued) == [0, 1, 2, 3, 4] and rescued == [1, 4]
    removed, rescued = pruning.decide(score, 0.5, round_to=4)  # 2 kept -> 4: the two best under tau come back
    assert rescued == [0, 2] and removed == [3]
    ties = torch.tensor([0.2, 0.2, 0.2], dtype=torch.float64)
    assert pruning.decide(ties, 1.0, min_channels=1) == ([1, 2], [0])  # ties go by index


class _Split(torch.nn.Module):
    """conv's channels 0-1 go through BN a, 2-3 through BN b, and come back swapped: b's channel k is the
    conv's channel 2 + k, so a member's own numbering differs from the group's."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = torch.nn.Conv2d(3, 4, 1), torch.nn.Conv2d(4, 2, 1)
        self.a, self.b = torch.nn.BatchNorm2d(2), torch.nn.BatchNorm2d(2)

    def forward(self, x):
        u, v = torch.chunk(self.conv(x), 2, dim=1)
        return self.head(torch.cat([self.b(v), self.a(u)], 1))


def test_largest_score_takes_the_largest_member_score_of_each_channel_of_a_group():
    net = _Split()
    dg = tp.DependencyGraph().build_dependency(net, example_inputs=torch.zeros(1, 3, 4, 4))
    groups = {g[0].dep.target.module: g for g in dg.get_all_groups()}
    both = pruning.LargestScore({"a": (net.a, torch.tensor([0.5, 0.1])), "b": (net.b, torch.tensor([0.2, 0.9])),
                                 "conv": (net.conv, torch.tensor([0.3, 0.0, 0.0, 0.0]))}, dg)
    assert both(groups[net.conv]).tolist() == pytest.approx([0.5, 0.1, 0.2, 0.9])
    assert both(groups[net.head]) is None  # no scored layer in the group: nothing to decide
    only_b = pruning.LargestScore({"b": (net.b, torch.tensor([0.2, 0.9]))}, dg)
    got = only_b(groups[net.conv]).tolist()
    assert got[:2] == [float("inf")] * 2 and got[2:] == pytest.approx([0.2, 0.9])  # a's channels: never removed
    assert [(n, local.tolist(), root.tolist()) for n, local, root in only_b.members(groups[net.conv])] == \
        [("b", [0, 1], [2, 3])]


# --------------------------------------------------------------------------- Network Slimming
def _random_gammas(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BATCH_NORMS):
                m.weight.copy_(torch.rand(m.num_features, generator=g) * 2)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet50", "mobilenet_v2"])
def test_bn_gamma_pruning_equals_zeroing_the_removed_channels(arch):
    """A channel goes when every coupled BatchNorm's |gamma| is under tau; the smaller network computes what
    the full one computes with those channels' gamma and beta at zero."""
    torch.manual_seed(0)
    model = _random_gammas(transfer.prepare(torchvision.models.get_model(arch, weights=None), "bn-affine", 5)).eval()
    x = torch.randn(2, 3, 64, 64)
    small, plan = pruning.prune(model, 0.6, importance="bn-gamma", example_input=x[:1])
    assert plan["importance"] == "bn-gamma" and plan["removed_channels"]
    assert pruning.count_parameters(small) < pruning.count_parameters(model)
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for name, idx in plan["removed_channels"].items():
            bn = zeroed.get_submodule(name)
            assert (bn.weight[idx].abs() < 0.6).all()
            bn.weight[idx] = 0.0
            bn.bias[idx] = 0.0
        torch.testing.assert_close(small.eval()(x), zeroed(x), rtol=1e-4, atol=1e-4)


def test_prune_to_size_keeps_the_asked_share_of_parameters():
    torch.manual_seed(0)
    model = _random_gammas(transfer.prepare(torchvision.models.get_model("mobilenet_v2", weights=None), "bn-affine", 5))
    full = pruning.count_parameters(model)
    for fraction in (0.8, 0.5):
        tau, small, plan = pruning.prune_to_size(model, fraction, example_input=torch.zeros(1, 3, 32, 32))
        assert abs(pruning.count_parameters(small) / full - fraction) < 0.02 and plan["tau"] == tau
    with pytest.raises(ValueError, match="fraction"):
        pruning.prune_to_size(model, 0.0)


def test_pruning_by_sigma_needs_cwls_and_an_unknown_importance_is_refused():
    plain = transfer.prepare(torchvision.models.get_model("mobilenet_v2", weights=None), "bn-affine", 5)
    with pytest.raises(ValueError, match="no Convolution Weighting Layers"):
        pruning.prune(plain, 0.5)
    with pytest.raises(ValueError, match="importance must be one of sigma, bn-gamma"):
        pruning.prune(plain, 0.5, importance="l2")


# --------------------------------------------------------------------------- the study
def _toy_split(name="toy", size=32):
    g = torch.Generator().manual_seed(0)

    def part(n_per_class):
        y = torch.arange(3).repeat_interleave(n_per_class)
        base = torch.tensor([[200, 40, 40], [40, 200, 40], [40, 40, 200]])[y].view(-1, 3, 1, 1).float()
        x = (base + 60 * torch.randn(len(y), 3, size, size, generator=g)).clamp(0, 255).to(torch.uint8)
        return ImageSet(x, y, ["r", "g", "b"])

    return Split(name, part(8), part(10))


def _toy_model(arch, pretrained):
    torch.manual_seed(7)
    return torchvision.models.get_model(arch, weights=None)


def _params(**over):
    return {**profiles.parameters("smoke", "05_pruning"), "dataset": "toy", "shots": 4, "steps": 1,
            "taus": [0.9, 1.0], "finetune_epochs": [1], "input_size": 32, "batch_size": 6, "test_size": None,
            "latency_batch": 1, "figure_archs": ["mobilenet_v2"], **over}


def test_configs_hold_each_study_and_the_figure_runs():
    p = _params(figure_archs=["mobilenet_v2", "resnet50"])
    configs = study.configs(p)
    names = [study.variant_of(c, p) for c in configs]
    assert names.count(study.PAPER) == names.count(study.L1) == names.count(study.SLIMMING) == 3  # unpruned + 2 taus
    slimming = [c for c in configs if study.variant_of(c, p) == study.SLIMMING]
    assert {(c.strategy, c.importance) for c in slimming} == {("bn-affine", "bn-gamma")}
    figure = [c for c in configs if study.variant_of(c, p) is None and not c.curve]
    assert [(c.arch, c.tau, c.finetune_epochs) for c in figure] == [("resnet50", 0.9, ())]
    # one kept-fraction curve per transfer choice; the study's own choice also at fewer steps
    curves = {study.choice_of(c.optimizer, c.weight_decay): c.curve for c in configs if c.curve}
    own = study.choice_of(p["optimizer"], p["weight_decay"])
    assert curves == {name: "steps" if name == own else "final" for name in p["sensitivity"]}
    with pytest.raises(ValueError, match="unknown transfer choice"):
        study.configs({**p, "sensitivity": ["rmsprop"]})
    assert len({study.key(c) for c in configs}) == len(configs)
    vgg = study.configs(_params(arch="vgg16"))  # no BatchNorm: no Network Slimming
    assert all(study.variant_of(c, _params(arch="vgg16")) != study.SLIMMING for c in vgg)
    with pytest.raises(ValueError, match="needs learned sigmas"):
        study.Config("d", "a", 1, 0.5, strategy="freeze")


@pytest.mark.slow
def test_every_threshold_prunes_one_shared_transfer_and_a_rerun_resumes(tmp_path, monkeypatch):
    p = _params(l1=0.0, bn_gamma=True, steps=4, sensitivity=["adam-l2"])  # the study's own transfer: its curve shares it
    configs = study.configs(p)
    store = records.Store(tmp_path / "runs")
    trained = []
    real_train = transfer.train
    monkeypatch.setattr(transfer, "train", lambda model, *a, **k: trained.append(str(a[1])) or real_train(model, *a, **k))

    def context():
        return Context("cpu", load_split=lambda name, size, root: _toy_split(name, size), load_model=_toy_model)

    ctx = context()
    recs = executor.run(study, configs, store, ctx, progress=False, out=io.StringIO())
    transfers = [s for s in trained if s in ("freeze+cwl", "bn-affine")]
    assert sorted(transfers) == ["bn-affine", "freeze+cwl"]  # one transfer per study, whatever the taus
    assert len(list(store.shared.glob("transfer-*.pt"))) == 2
    paper, slim = (study.study_records(recs, f) for f in (study.variants(p)[study.PAPER], study.variants(p)[study.SLIMMING]))
    assert [r["config"]["tau"] for r in paper] == [None, 0.9, 1.0]
    for r in slim[1:]:  # matched: BN-gamma keeps the share of parameters sigma pruning keeps at that tau
        sigma = next(s for s in paper if s["config"]["tau"] == r["config"]["tau"])
        assert r["row"]["matched_params"] == pytest.approx(sigma["row"]["params"], abs=1e-9)  # the size aimed at
        assert r["row"]["threshold"] > 0  # how close it gets is prune_to_size's test (these gammas barely moved)
        assert set(r["correct"]) == {"acc", "ft1"} and len(r["correct"]["acc"]) == 30
    table = study.table(paper)
    assert list(table["tau"]) == ["-", 0.9, 1.0] and {"acc", "ft1", "params", "features"} <= set(table.columns)
    # the unpruned network is finetuned like every threshold, on a copy: the thresholds after it in the same
    # process still prune the transfer kept in shared/
    assert set(paper[0]["correct"]) == {"acc", "ft1"} and table["ft1"].iloc[0] == round(paper[0]["unpruned"]["ft1"], 3)
    own = next(c for c in configs if study.variant_of(c, p) == study.PAPER and c.tau is None).transfer
    kept, fresh = study.transferred(own, ctx), study.transferred(own, Context("cpu", shared=store.shared,
                                                                                load_split=ctx.load_split,
                                                                                load_model=_toy_model))
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in kept.state_dict().items())
    assert store.attachment(paper[1]["key"], "pruned")["plan"]["tau"] == 0.9
    curve = study.curves(recs)  # read at a quarter, half and all of the transfer's steps
    assert sorted(curve["steps"].unique()) == sorted({max(1, round(q * p["steps"])) for q in study.SNAPSHOTS})
    for _, g in curve.groupby("steps"):  # a larger threshold never keeps more
        assert list(g["tau"]) == list(study.CURVE_TAUS) and g["kept"].is_monotonic_decreasing

    # a new process (a fresh context) resumes: the missing threshold only, from the kept transfer
    trained.clear()
    store.path(paper[2]["key"]).unlink()
    executor.run(study, configs, store, context(), progress=False, out=io.StringIO())
    assert [s for s in trained if s in ("freeze+cwl", "bn-affine")] == []  # weights read from shared/
    assert trained == ["finetune+cwl"]  # only the finetuning of the redone threshold


def test_an_unpruned_record_from_before_its_finetuning_is_outdated():
    config = {"tau": None, "curve": "", "finetune_epochs": [1, 5]}
    old = {"config": config, "unpruned": {"accuracy": 0.7, "parameters": 10}}
    assert "finetuned like every threshold" in study.outdated(old)
    assert study.outdated({**old, "unpruned": {**old["unpruned"], "ft1": 0.7, "ft5": float("nan")}}) is None
    assert study.outdated({"config": {**config, "tau": 0.8}, "row": {}}) is None  # a threshold's record
    assert study.outdated({"config": {**config, "finetune_epochs": []}, "unpruned": {}}) is None


def test_mcnemar_and_the_matched_verdicts():
    a, b = "1" * 30 + "0" * 10, "1" * 18 + "0" * 22  # a right on 12 images where b is wrong, never the reverse

    def rec(tau, acc, hits, params=0.5):
        return {"config": {"tau": tau}, "row": {"acc": acc, "params": params}, "correct": {"acc": hits}}

    sigma = [rec(None, 0.9, a), rec(0.8, 0.75, a), rec(1.0, 0.45, b)]
    gamma = [rec(0.8, 0.45, b), rec(1.0, 0.45, b)]
    t = study.matched(sigma, gamma).set_index("tau")
    assert t.loc[0.8, "verdict"] == "sigma better" and t.loc[0.8, "sigma - gamma"] == pytest.approx(0.3)
    assert t.loc[1.0, "verdict"] == "no difference detected"
    assert t.loc[0.8, "p (McNemar)"] == binomtest(12, 12).pvalue and t.loc[1.0, "p (McNemar)"] == 1.0
