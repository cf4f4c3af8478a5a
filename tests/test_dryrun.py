"""The paper-profile projection: its arithmetic, and a real probe through the classification study's run_one."""
import math

import pytest
import torch
import torchvision

from cwl_lib import cli, dryrun, profiles, transfer
from cwl_lib.data import paper_sizes
from cwl_lib.studies import classification


def _probes(params, setup=1.0, eval_s=0.01, step_s=0.1):
    pairs = dict.fromkeys((c.arch, c.strategy) for c in classification.configs(params))
    return [dryrun.Probe(a, s, setup, eval_s, 0.0 if s == "freeze" else step_s) for a, s in pairs]


def test_projection_sums_every_run_of_the_grid():
    params = profiles.parameters("paper", "03_classification")
    table = dryrun.project(_probes(params), params)
    lrs, reps, shots, epochs = len(params["lr_freeze"]), params["repeats"], params["shots"], params["steps"]
    sizes = paper_sizes("kvasir")
    n_test = sizes.test
    cell = (table.dataset == "kvasir") & (table.arch == "vgg16")
    cwl = table[cell & (table.strategy == "freeze+cwl")].iloc[0]
    # a budget in steps costs the same whatever the number of images per class
    expected = sum(lrs * reps * (1.0 + 0.01 * n_test + 0.1 * epochs) for k in shots)
    assert math.isclose(cwl.seconds, expected)
    assert cwl.runs == lrs * reps * len(shots)
    frozen = table[cell & (table.strategy == "freeze")].iloc[0]
    # cached features: the test set goes through the backbone once, not once per run
    assert math.isclose(frozen.seconds, 0.01 * n_test + lrs * reps * len(shots) * 1.0)
    # the projection covers exactly the runs the notebook's grid makes: no bn-affine for VGG-16
    assert table.runs.sum() == len(classification.configs(params))
    assert not ((table.arch == "vgg16") & (table.strategy == "bn-affine")).any()


def test_a_probe_log_without_a_pair_of_the_grid_is_one_line_naming_it():
    params = profiles.parameters("paper", "03_classification")
    probes = [p for p in _probes(params) if (p.arch, p.strategy) != ("resnet50", "bn-affine")]
    with pytest.raises(ValueError, match="no probe for resnet50 bn-affine: probe it") as err:
        dryrun.project(probes, params)
    assert "\n" not in str(err.value)


def test_a_pair_probed_twice_is_read_from_its_last_probe():
    params = profiles.parameters("paper", "03_classification")
    once = dryrun.project(_probes(params, step_s=0.1), params)
    twice = dryrun.project(_probes(params, step_s=5.0) + _probes(params, step_s=0.1), params)
    assert twice.seconds.tolist() == once.seconds.tolist()


def test_steps_per_epoch_follow_the_batches_training_makes():
    for n in (1, 2, 31, 32, 33, 34, 64, 65, 67, 670):
        assert dryrun.steps_per_epoch(n, 32) == len(list(transfer.seeded_batches(n, 32, 0)(0)))


def test_probe_times_real_runs_on_a_small_backbone():
    torch.manual_seed(0)
    backbone = torchvision.models.mobilenet_v2(weights=None).eval()
    for strategy in ("freeze", "freeze+cwl", "finetune"):
        p = dryrun.probe("mobilenet_v2", strategy, backbone, torch.device("cpu"), classes=2, n_test=4, input_size=32,
                         batch_size=4)
        assert p.eval_per_image_s > 0 and p.setup_s >= 0 and p.step_s >= 0 and p.strategy == strategy


def test_dry_run_flag_runs_no_notebook(monkeypatch, capsys):
    seen = {}

    def fake(params, device, **kw):
        seen["params"] = params
        return _probes(params)

    monkeypatch.setattr(cli, "dry_run", fake)
    assert cli.main(["reproduce", "--profile", "paper", "--dry-run", "-p", "repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert seen["params"]["repeats"] == 2 and seen["params"]["archs"] == ["vgg16", "resnet50"]
    assert "projected" in out and " h on " in out
    assert "retrieval (Table III) is left out" in out and "Tables I, II, IV (h)" in out
    assert "whole profile" not in out
