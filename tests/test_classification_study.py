"""The classification study: cached and image paths agree, records are complete, a rerun resumes."""
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from cwl_lib import effects, executor, profiles, records, tables
from cwl_lib.data.classification import ImageSet, Split
from cwl_lib.studies import Context
from cwl_lib.studies import classification as study


class TinyBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(32, 1000)

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.features(x))))


def tiny_model(arch, pretrained):
    torch.manual_seed(123)
    model = TinyBackbone()
    with torch.no_grad():
        bn = model.features[1]
        bn.running_mean.uniform_(-0.1, 0.1)
        bn.running_var.uniform_(0.5, 1.5)
    return model


def tiny_split(name="toy", size=16):
    g = torch.Generator().manual_seed(0)

    def part(n_per_class):
        y = torch.arange(3).repeat_interleave(n_per_class)
        base = torch.tensor([[200, 40, 40], [40, 200, 40], [40, 40, 200]])[y].view(-1, 3, 1, 1).float()
        x = (base + 60 * torch.randn(len(y), 3, 12, 12, generator=g)).clamp(0, 255).to(torch.uint8)
        return ImageSet(x, y, ["r", "g", "b"])

    return Split(name, part(12), part(10))


COMMON = dict(steps=4, batch_size=4, input_size=32, test_size=None)


def toy_context(**kw) -> Context:
    return Context("cpu", load_split=lambda name, size, root: tiny_split(name), load_model=tiny_model, **kw)


def toy_params(**over) -> dict:
    return {**profiles.parameters("smoke", "03_classification"), "datasets": ["toy"], "archs": ["resnet50"],
            "strategies": ["freeze", "freeze+cwl", "finetune"], "shots": [1, 2], "repeats": 2,
            "lr_freeze": [1e-2, 5e-2], "lr_finetune": [1e-3], **COMMON, **over}


def test_freeze_cached_features_equal_the_image_path(tmp_path):
    context = toy_context()
    for lr in (1e-2, 5e-2):
        cfg = study.Config("toy", "tiny", "freeze", 3, lr, 1, **COMMON)
        cached = study.run_one(cfg, context)
        plain = study.run_one(cfg, context, cached=False)
        assert cached["accuracy"] == pytest.approx(plain["accuracy"], abs=1e-9)
        assert cached["final_loss"] == pytest.approx(plain["final_loss"], rel=1e-4)
        assert cached["cached_features"] and not plain["cached_features"]
        assert cached["key"] == plain["key"] == study.key(cfg)


def test_grid_and_records_and_resume(tmp_path, monkeypatch):
    configs = study.configs(toy_params())
    assert len(configs) == (2 + 2 + 1) * 2 * 2
    assert len({study.key(c) for c in configs}) == len(configs)
    store = records.Store(tmp_path / "runs")
    recs = executor.run(study, configs, store, toy_context(), progress=False, out=io.StringIO())
    frame = study.frame(recs)
    assert len(frame) == len(configs) == len(list((tmp_path / "runs").glob("*.json")))
    record = json.loads(store.path(study.key(configs[0])).read_text())
    for field in ("accuracy", "config", "run_seed", "code_version", "device", "seconds", "torch", "study", "version"):
        assert field in record
    assert record["config"]["strategy"] == configs[0].strategy and 0 <= record["accuracy"] <= 1
    assert not list((tmp_path / "runs").glob(".*.tmp"))
    cwl = [c for c in configs if c.strategy == "freeze+cwl"][0]
    learned = store.attachment(study.key(cwl), "sigmas")
    assert learned and all(v.dim() == 1 for v in learned.values())

    # the same strategy pairs see the same few-shot samples: identical run seeds per repeat
    seeds = {(r["config"]["repeat"], r["run_seed"]) for r in store.records()}
    assert len(seeds) == 2

    # a rerun with one record removed runs only that one
    calls = []
    real = study.run_one
    monkeypatch.setattr(study, "run_one", lambda cfg, ctx: calls.append(cfg) or real(cfg, ctx))
    store.path(study.key(configs[3])).unlink()
    out = io.StringIO()
    executor.run(study, configs, store, toy_context(), progress=False, out=out)
    assert calls == [configs[3]]
    assert out.getvalue().startswith(f"classification: {len(configs)} of {len(configs)} runs recorded, 1 run now")
    assert out.getvalue().endswith(f"{len(configs) - 1} already recorded, 0 failed\n")

    table = tables.comparison_table(study.frame(store.records()), ["freeze", "freeze+cwl"], "freeze", "freeze+cwl")
    assert ("resnet50", "toy", "freeze", "ours") in table.index
    assert not any(src == "paper" for *_, src in table.index)  # no paper numbers for a toy dataset
    # mean (std) over repeats, and the paired p-values of each shots as t / W
    best = tables.summary(study.frame(store.records())).set_index(["arch", "dataset", "strategy", "shots"])
    cell = next(k for k in best.index if k[2] == "freeze+cwl")
    assert table.loc[(*cell[:3], "ours"), cell[3]] == "{:.3f} ({:.3f})".format(*best.loc[cell, ["mean", "std"]])
    p_values = table.loc[(*cell[:2], "p (freeze+cwl vs freeze)", "t / W"), cell[3]]
    assert re.fullmatch(r"\d\.\d\d / \d\.\d\d|- / -", p_values)


def test_strategies_needing_batch_norm_are_skipped_for_vgg_and_lr_grids_are_the_papers():
    p = {**profiles.parameters("paper", "03_classification"), "datasets": ["kvasir"], "shots": [1], "repeats": 1,
         "strategies": ["bn-affine", "finetune"]}
    configs = study.configs(p)
    assert {(c.arch, c.strategy) for c in configs} == {("resnet50", "bn-affine"), ("vgg16", "finetune"),
                                                        ("resnet50", "finetune")}
    assert sorted({c.lr for c in configs if c.strategy == "finetune"}) == [1e-5, 5e-5, 1e-4, 5e-4, 1e-3]
    assert sorted({c.lr for c in configs if c.strategy == "bn-affine"}) == [1e-3, 5e-3, 1e-2, 5e-2]


def test_the_paper_setting_is_written_once_in_the_config_defaults():
    p = profiles.parameters("paper", "03_classification")
    default = study.Config("d", "a", "freeze", 1, 0.1, 0)
    for name in ("steps", "weight_decay", "batch_size", "input_size", "test_size", "backbone_lr_factor"):
        assert p[name] == getattr(default, name), name


def test_paired_tests_on_known_differences():
    rows = [dict(dataset="d", arch="a", strategy=s, shots=1, lr=0.1, repeat=r, accuracy=0.5 + r / 100 + (0.1 if s == "b" else 0))
            for s in ("a", "b") for r in range(10)]
    t = tables.paired_tests(pd.DataFrame(rows), "a", "b").iloc[0]
    assert t["wins"] == 10 and t["mean_diff"] == pytest.approx(0.1)
    assert t["p_wilcoxon"] < 0.01 and t["p_ttest"] < 0.01
    # the table's t-test is the claims ledger's, on the same differences
    diffs = [0.5 + r / 100 + 0.1 - (0.5 + r / 100) for r in range(10)]
    assert t["p_ttest"] == effects.paired_effect(diffs).p and t["p_wilcoxon"] == effects.signed_rank_p(diffs)


@pytest.mark.slow
def test_two_smoke_executions_on_one_machine_give_identical_records(tmp_path):
    """Same-machine determinism: the regression tolerances are for other machines, never for reruns here."""
    p = profiles.parameters("smoke", "03_classification",
                            {"strategies": ["freeze", "freeze+cwl", "finetune"], "shots": [1], "repeats": 1})
    configs = study.configs(p)
    stores = [records.Store(tmp_path / f"run{i}") for i in range(2)]
    for store in stores:  # a fresh context each time: nothing loaded is shared between the two
        executor.run(study, configs, store, Context("cpu", eval_batch_size=p["eval_batch_size"]), progress=False,
                     out=io.StringIO())
    volatile = {"seconds", "finished", "code_version"}
    first, second = ([{k: v for k, v in r.items() if k not in volatile} for r in s.records()] for s in stores)
    assert len(first) == len(configs) and first == second
    for cfg in configs:
        if cfg.strategy == "freeze+cwl":
            a, b = (s.attachment(study.key(cfg), "sigmas") for s in stores)
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_probe_is_not_fooled_by_features_that_barely_vary_on_one_image_per_class():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    classes, dims, quiet = 4, 16, 400
    centres = 3.0 * rng.standard_normal((classes, dims))

    def images(per_class, quiet_noise):
        y = np.repeat(np.arange(classes), per_class)
        signal = centres[y] + rng.standard_normal((len(y), dims))
        return np.hstack([signal, quiet_noise * rng.standard_normal((len(y), quiet))]), y

    x, y = images(1, 1e-4)  # one image per class; the quiet features vary 100 times more on the test images
    x_test, y_test = images(50, 1e-2)
    acc = study.probe_accuracy(x, y, x_test, y_test)
    scaler = StandardScaler().fit(x)
    standardised = LogisticRegression(max_iter=5000).fit(scaler.transform(x), y)
    assert acc > 0.8
    assert acc - float((standardised.predict(scaler.transform(x_test)) == y_test).mean()) > 0.3
    # one global scale: the probe does not depend on the features' unit
    assert study.probe_accuracy(1000 * x, y, 1000 * x_test, y_test) == acc
