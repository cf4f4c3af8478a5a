"""Runs trained together (vmap) equal the same runs trained one by one."""
import copy
import math

import pytest
import torch
import torchvision

from cwl_lib import batched, experiments as E, transfer
from cwl_lib.runtime import seed_everything
from test_experiments import tiny_model, tiny_split

CPU = torch.device("cpu")
COMMON = dict(epochs=4, batch_size=4, input_size=16)


@pytest.mark.parametrize("strategy", ["freeze+cwl", "finetune", "finetune+cwl", "bn-affine"])
def test_run_batched_records_equal_run_one(strategy):
    data = E.prepare_data(tiny_split(), None)
    backbone = tiny_model("tiny", True).eval()
    cfgs = [E.RunConfig("toy", "tiny", strategy, 3, lr, r, **COMMON) for lr in (1e-3, 5e-2) for r in (0, 1)]
    together = E.run_batched(cfgs, backbone, data, CPU)
    assert len(together) == len(cfgs)
    for cfg, (record, sigmas) in zip(cfgs, together):
        alone, alone_sigmas = E.run_one(cfg, backbone, data, CPU)
        assert record["key"] == alone["key"] and record["run_seed"] == alone["run_seed"]
        assert record["train_steps"] == alone["train_steps"] and record["n_train"] == alone["n_train"]
        assert record["final_loss"] == pytest.approx(alone["final_loss"], rel=1e-4)
        # at most one borderline test image may flip under float reordering
        assert abs(record["accuracy"] - alone["accuracy"]) <= 1 / record["n_test"] + 1e-9
        assert record["batched_with"] == len(cfgs)
        assert (sigmas is None) == (alone_sigmas is None)
        for name in alone_sigmas or {}:
            torch.testing.assert_close(sigmas[name], alone_sigmas[name], rtol=1e-4, atol=1e-5)


def _sequential(model, strategy, run, epochs, batch_size, size):
    m = copy.deepcopy(model)
    transfer.head(m).load_state_dict(run.head)
    batches = transfer.image_batches(run.images, run.labels, batch_size, run.seed, size)
    result = transfer.train(m, lambda e: ((x.double(), y) for x, y in batches(e)), strategy, run.lr, epochs, CPU)
    return m, result


@pytest.mark.parametrize("arch,strategy", [("resnet18", "finetune+cwl"), ("mobilenet_v2", "finetune"),
                                           ("resnet18", "bn-affine"), ("vgg11", "freeze+cwl")])
def test_torchvision_models_trained_together_equal_one_by_one(arch, strategy):
    """Grouped (finetune) and shared (frozen) convolutions, depthwise ones included, under vmap.

    In float64: a deep random network amplifies float32 rounding (a different convolution algorithm
    moves its gradients by percents, and Adam's first step is the gradient's sign), which would hide a
    real difference; in float64 the two paths must agree to many digits.
    """
    torch.manual_seed(0)
    backbone = getattr(torchvision.models, arch)(weights=None).eval()
    for m in backbone.modules():  # non-trivial running statistics, as pretrained weights have
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    size = 32
    model = transfer.prepare(backbone, strategy, 3, torch.zeros(1, 3, size, size)).double()
    g = torch.Generator().manual_seed(1)
    runs = []
    for k, lr in enumerate((1e-4, 1e-3)):
        seed_everything(10 + k)
        head = E.fresh_head(transfer.head(model))
        runs.append(batched.Run(lr, 10 + k, torch.randint(0, 256, (6, 3, size, size), dtype=torch.uint8, generator=g),
                                torch.tensor([0, 1, 2, 0, 1, 2]), {n: p.detach() for n, p in head.named_parameters()}))
    reference = [_sequential(model, strategy, r, 2, 4, size) for r in runs]
    trained = batched.train_runs(copy.deepcopy(model), runs, strategy, 2, 4, CPU, input_size=size)
    x = torch.randint(0, 256, (5, 3, size, size), dtype=torch.uint8, generator=g)
    logits = batched.predict_runs(trained, x, CPU, size=size)
    changed = 0
    for k, (ref, result) in enumerate(reference):
        assert trained.losses[k] == pytest.approx(result.losses, rel=1e-7)
        params = dict(trained.load(k).named_parameters())
        for name, p in ref.named_parameters():
            # Adam divides each gradient element by its own scale: an element whose gradient is nearly
            # zero carries its rounding into the step, so a few elements may differ by a sliver of a step
            gap = (params[name] - p).abs()
            assert (gap > 1e-9 + 1e-6 * p.abs()).float().mean() <= 1e-5, f"{arch} {name}"
            assert gap.max() < 1e-6, f"{arch} {name}: {gap.max():.2e}"
            changed += int(not torch.equal(p, dict(model.named_parameters())[name]))
        with torch.no_grad():
            expected = ref(transfer.preprocess(x, size).double())
        torch.testing.assert_close(logits[k].double(), expected, rtol=1e-6, atol=1e-6)
    assert changed > 0  # training moved the parameters the strategy trains


def test_a_diverging_run_stops_alone_and_leaves_the_others_untouched():
    data = E.prepare_data(tiny_split(), None)
    backbone = tiny_model("tiny", True).eval()
    cfgs = [E.RunConfig("toy", "tiny", "finetune", 3, lr, 0, **COMMON) for lr in (1e-2, math.inf)]
    (good, _), (bad, _) = E.run_batched(cfgs, backbone, data, CPU)
    alone, _ = E.run_one(cfgs[0], backbone, data, CPU)
    assert good["final_loss"] == pytest.approx(alone["final_loss"], rel=1e-4) and not good["diverged"]
    bad_alone, _ = E.run_one(cfgs[1], backbone, data, CPU)
    assert bad["diverged"] and bad_alone["diverged"]
    assert bad["train_steps"] == bad_alone["train_steps"] < good["train_steps"]


def test_only_runs_of_one_cell_train_together():
    data = E.prepare_data(tiny_split(), None)
    backbone = tiny_model("tiny", True).eval()
    a = E.RunConfig("toy", "tiny", "finetune", 3, 1e-3, 0, **COMMON)
    with pytest.raises(ValueError, match="differ only in learning rate and repeat"):
        E.run_batched([a, E.RunConfig("toy", "tiny", "finetune", 2, 1e-3, 0, **COMMON)], backbone, data, CPU)
    with pytest.raises(ValueError, match="bn_train"):
        E.run_batched([E.RunConfig("toy", "tiny", "finetune", 3, 1e-3, r, bn_train=True, **COMMON) for r in (0, 1)],
                      backbone, data, CPU)


def test_units_group_a_cell_up_to_the_limit_and_keep_cached_freeze_runs_alone():
    cfgs = E.grid(["toy"], ["tiny"], ["freeze", "finetune"], [1, 2], repeats=3, lrs={"freeze": [0.1, 0.2],
                  "finetune": [1e-3, 1e-4]}, **COMMON)
    units = E.units(cfgs, batch_runs=4)
    assert [c for u in units for c in u] == cfgs
    for u in units:
        assert len({E.cell_of(c) for c in u}) == 1 and len(u) <= 4
        assert len(u) == 1 or u[0].strategy != "freeze"
    assert max(len(u) for u in units) == 4
    assert all(len(u) == 1 for u in E.units(cfgs, batch_runs=1))
    assert len(E.units(cfgs, batch_runs=4, cache_features=False)) < len(units)


def test_run_grid_batched_writes_the_records_run_one_would(tmp_path):
    cfgs = E.grid(["toy"], ["tiny"], ["freeze+cwl"], [2], repeats=2, lrs={"freeze": [1e-2, 5e-2]}, **COMMON)
    kw = dict(load_split=lambda n, s: tiny_split(n), load_model=tiny_model, progress=False)
    one = E.run_grid(cfgs, E.ResultStore(tmp_path / "one"), "cpu", batch_runs=1, **kw).set_index("key")
    many = E.run_grid(cfgs, E.ResultStore(tmp_path / "many"), "cpu", batch_runs=3, **kw).set_index("key")
    assert sorted(one.index) == sorted(many.index) == sorted(c.key() for c in cfgs)
    assert set(many["batched_with"]) == {3, 1}
    assert (one["accuracy"] - many.loc[one.index, "accuracy"]).abs().max() <= 1 / one["n_test"].iloc[0] + 1e-9
