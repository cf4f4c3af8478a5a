"""Strategies as values: every field the other modules read follows from what a strategy trains."""
import dataclasses

import pytest
import torchvision

from cwl_lib import strategies, transfer
from cwl_lib.models import has_batch_norm
from cwl_lib.strategies import BACKBONE, BN, HEAD, SIGMA, Strategy


def test_the_registry_holds_the_papers_four_and_one_baseline():
    assert strategies.NAMES == ("freeze", "freeze+cwl", "finetune", "finetune+cwl", "bn-affine")
    assert [s.name for s in strategies.STRATEGIES.values() if s.in_paper] == list(strategies.NAMES[:4])
    cwl = {n for n, s in strategies.STRATEGIES.items() if s.cwl}
    assert cwl == {"freeze+cwl", "finetune+cwl"}
    assert {n for n, s in strategies.STRATEGIES.items() if s.cacheable} == {"freeze"}
    assert {n for n, s in strategies.STRATEGIES.items() if s.needs_bn} == {"bn-affine"}
    assert {n for n, s in strategies.STRATEGIES.items() if s.may_use_batch_statistics} == {"finetune", "finetune+cwl"}
    assert strategies.with_cwl("freeze").name == "freeze+cwl" and strategies.with_cwl("finetune").name == "finetune+cwl"
    with pytest.raises(ValueError, match="no strategy adds CWLs"):
        strategies.with_cwl("bn-affine")


def test_a_new_strategy_is_one_value_and_prepare_reads_its_fields():
    """A strategy that trains the head and BatchNorm with CWLs: nothing else needs to know its name."""
    new = Strategy("bn-affine+cwl", frozenset({HEAD, SIGMA, BN}), "freeze", in_paper=False)
    assert new.cwl and new.needs_bn and not new.cacheable and not new.finetunes
    model = transfer.prepare(torchvision.models.get_model("mobilenet_v2", weights=None), new, 4)
    counts = transfer.trainable_counts(model)
    assert counts[SIGMA] > 0 and counts[BN] > 0 and counts[HEAD] == 1280 * 4 + 4 and counts[BACKBONE] == 0
    groups = {g["name"]: g["lr"] for g in transfer.param_groups(model, lr=0.01, backbone_lr_factor=0.1)}
    assert groups == {HEAD: 0.01, SIGMA: 0.01, BN: pytest.approx(0.001)}


def test_malformed_strategies_and_unknown_names_are_refused():
    with pytest.raises(ValueError, match="must include 'head'"):
        Strategy("no-head", frozenset({SIGMA}), "freeze")
    with pytest.raises(ValueError, match="lr_grid"):
        Strategy("odd", frozenset({HEAD}), "sometimes")
    with pytest.raises(ValueError, match="unknown strategy 'frozen'; choose one of freeze, freeze\\+cwl"):
        strategies.get("frozen")
    with pytest.raises(dataclasses.FrozenInstanceError):
        strategies.get("freeze").lr_grid = "finetune"


@pytest.mark.parametrize("arch,expected", [("vgg16", False), ("vgg16_bn", True), ("resnet50", True),
                                           ("mobilenet_v2", True)])
def test_batch_norm_is_read_from_the_model_not_its_name(arch, expected):
    assert has_batch_norm(arch) is expected
