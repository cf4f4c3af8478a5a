"""The pruning study of Section V-C (Table IV, Fig. 3), one record per threshold.

A run transfers a backbone (``freeze+cwl``, optionally with our L1 penalty on the sigmas), prunes it at its tau,
then finetunes every remaining weight, evaluating after each count of ``finetune_epochs``. ``tau=None`` is the
unpruned row, finetuned the same way (not in the paper) to separate finetuning's own gain. The first run of a
transfer keeps it in the store's ``shared/`` folder for the others. Network Slimming (``importance="bn-gamma"``)
prunes a ``bn-affine`` transfer by |gamma| to the parameter share sigma pruning keeps at the same tau.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from typing import ClassVar, Optional

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from pydantic import field_validator, model_validator
from torch import nn

from .. import effects as E
from .. import pruning, records, strategies, transfer
from ..paper import TABLE_IV, TABLE_IV_SETTING
from ..data import classification as cdata
from ..models import has_batch_norm
from ..paths import atomic_write, file_lock
from ..runtime import seed_everything
from ..weighting import load_sigmas, sigmas as read_sigmas
from .context import Context
from ..config import (Arch, AtLeast, InputSize, OneOf, Positive, RunConfig, Seeded, Study, TestSize,
                      fits_test_split, param)
from .setting import table as setting_table

NAME = "pruning"
NOTEBOOK = "05_pruning"
SIGMA, BN_GAMMA = "sigma", "bn-gamma"
#: The transfer each importance prunes: the paper's CWL transfer, and Network Slimming's BN-affine one.
TRANSFER_OF = {SIGMA: "freeze+cwl", BN_GAMMA: "bn-affine"}
RECALIBRATE = ("never", "always", "dead")
FINETUNE_EPOCHS = (1, 30)  # Table IV's FT@1 and FT@30
#: The transfer choices the paper leaves unstated, measured by the sensitivity figure (kept fraction of
#: parameters against tau): name -> (optimizer, weight decay). AdamW's decay is PyTorch's default.
CHOICES = {"adam": ("adam", 0.0), "adam-l2": ("adam", 5e-4), "adamw": ("adamw", 1e-2), "sgd-l2": ("sgd", 5e-4)}
#: The thresholds of the kept-fraction curves: the paper's, and the steps between them.
CURVE_TAUS = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2)
#: The points of a transfer (shares of its steps) at which its scales are kept for the curves.
SNAPSHOTS = (0.25, 0.5, 1.0)
PAPER, L1 = "CWL (paper)", "CWL + L1 (ours)"
SLIMMING = "BN gamma (Network Slimming)"


class Shared(Seeded):
    """What one run shares with notebook 05's parameters; the defaults are the paper's."""

    lr: float = param(1e-2, "learning rate of the transfer", gt=0, label="transfer learning rate", stated=False)
    steps: int = param(400, "optimizer steps of the transfer (about 30 epochs of Kvasir's 400 images)", ge=1,
                       label="transfer steps", stated=False)
    optimizer: OneOf(transfer.OPTIMIZERS) = param("adam", "the transfer's optimizer; see CHOICES", stated=False,
                                                  label="transfer optimizer (inferred from the sensitivity figure)")
    weight_decay: float = param(CHOICES["adam-l2"][1], "of the transfer's optimizer", ge=0,
                                label="transfer weight decay (inferred from the sensitivity figure)", stated=False)
    finetune_lr: float = param(1e-3, "learning rate of the finetuning after pruning", gt=0,
                               label="finetuning learning rate", stated=False)
    recalibrate_bn: OneOf(RECALIBRATE) = param("dead", "re-estimate BN statistics after pruning (dead: where needed)",
                                               label="BatchNorm recalibration after pruning", stated=False)
    min_channels: int = param(1, "channels a pruned layer keeps at least", ge=1)
    input_size: InputSize = param(224, "image side", label="image size", show="square", stated=False)
    batch_size: int = param(32, "images per optimizer step", ge=1)
    test_size: TestSize = param(None, "a stratified test subset (None: all)", label="test images", stated=False)
    latency_batch: int = param(16, "images per timed forward pass", ge=1)
    backbone_lr_factor: float = param(0.1, "the pretrained weights' rate, x the run's (transfer, finetuning)", gt=0)


class Config(Shared, RunConfig):
    """One threshold of one pruning study."""

    POSITIONAL: ClassVar[tuple[str, ...]] = ("dataset", "arch", "shots", "tau")
    dataset: str
    arch: str
    shots: int
    tau: Optional[float]  # None: the unpruned network
    importance: str = SIGMA
    strategy: str = TRANSFER_OF[SIGMA]
    l1: float = 0.0  # strength of the L1 penalty on the sigmas during transfer (0: the paper's method)
    finetune_epochs: tuple[int, ...] = FINETUNE_EPOCHS
    finetune_bn: str = "frozen"  # "frozen": BN keeps its running statistics while finetuning; "train": batch statistics
    curve: str = ""  # "final" or "steps": a kept-fraction curve over CURVE_TAUS (after the transfer, or at each of
    # its SNAPSHOTS) for the sensitivity figure, not one threshold; "": a threshold
    pretrained: bool = True

    @field_validator("finetune_epochs")
    @classmethod
    def _epochs(cls, value):
        if any(int(e) < 1 for e in value):
            raise ValueError(f"finetune_epochs are epoch counts >= 1, got {value!r}")
        return tuple(sorted({int(e) for e in value}))

    @model_validator(mode="after")
    def _consistent(self):
        for name, allowed in (("importance", tuple(TRANSFER_OF)), ("curve", ("", "final", "steps")),
                              ("finetune_bn", ("frozen", "train"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} is one of {', '.join(map(repr, allowed))}, got {getattr(self, name)!r}")
        if self.importance == SIGMA and not strategies.get(self.strategy).cwl:
            raise ValueError(f"pruning by sigma needs learned sigmas: use a strategy with CWLs, not {self.strategy!r}")
        if self.tau is not None and not self.tau > 0:
            raise ValueError(f"tau must be a positive threshold (or None, unpruned), got {self.tau!r}")
        if self.curve and self.tau is not None:
            raise ValueError("a kept-fraction curve has no threshold of its own: tau must be None")
        return self

    @property
    def transfer(self) -> dict:
        """What determines the transferred network (every threshold of a study shares it)."""
        keep = ("dataset", "arch", "shots", "strategy", "lr", "steps", "optimizer", "weight_decay", "l1", "input_size",
                "batch_size", "test_size", "seed", "pretrained", "backbone_lr_factor")
        return {k: getattr(self, k) for k in keep}


class Parameters(Study, Shared):
    """Notebook 05's parameters; the defaults are the paper's setting (Table IV, Fig. 3)."""

    NOTEBOOK: ClassVar[str] = "05_pruning"
    dataset: OneOf(cdata.CLASSIFICATION_DATASETS) = param(TABLE_IV_SETTING["dataset"], "dataset", label="dataset")
    arch: Arch = param(TABLE_IV_SETTING["arch"], "the backbone pruned", label="backbone")
    shots: int = param(TABLE_IV_SETTING["shots"], "images per class", ge=1, label="images per class")
    strategy: OneOf(n for n, s in strategies.STRATEGIES.items() if s.cwl) = param(
        TRANSFER_OF[SIGMA], "the transfer whose learned sigmas are pruned", why="pruning reads learned sigmas")
    l1: float = param(3e-4, "strength of our L1 variant's penalty on the sigmas (0: no such variant)", ge=0)
    taus: list[Positive()] = param([0.2, 0.4, 0.8, 1.0, 1.2], "Table IV's thresholds on |sigma|", min_length=1,
                                   label="thresholds tau")
    finetune_epochs: list[AtLeast(1)] = param(list(FINETUNE_EPOCHS), "finetuning lengths after pruning",
                                              label="finetuning epochs after pruning")
    figure_tau: float = param(0.8, "Fig. 3's threshold", gt=0, label="Fig. 3: tau")
    figure_archs: list[Arch] = param(["vgg16", "resnet50"], "Fig. 3's backbones", label="Fig. 3: backbones")
    bn_gamma: bool = param(True, "prune by BN gamma too (Network Slimming), on a backbone with BatchNorm")
    sensitivity: list[OneOf(CHOICES)] = param(list(CHOICES), "transfer choices of the sensitivity figure")

    # 05: the transfer of the paper profile (Adam with coupled L2 5e-4 at 0.01) for 160 steps: of the curves
    # of the sensitivity figure, measured on this profile at 320 steps, the one closest to the paper's Table IV
    # was this transfer after 160 (mean distance 6 points of the parameter share; 8 after 320, 15-19 for
    # AdamW, plain Adam and SGD); the paper's thresholds and 0.9 between them; 5 epochs of finetuning at
    # 5e-4, the largest of the rates probed (1e-4, 3e-4, 5e-4, 1e-3) whose first epoch does not lower the
    # unpruned network (benchmarks/README.md); no L1 variant and no Network Slimming baseline (each costs
    # another transfer and a finetuning per tau)
    LAPTOP: ClassVar[dict] = {
        "dataset": "fashion-mnist", "arch": "mobilenet_v2", "shots": 20, "steps": 160, "l1": 0.0,
        "finetune_lr": 0.0005, "taus": [0.2, 0.4, 0.8, 0.9, 1.0, 1.2], "finetune_epochs": [1, 5], "input_size": 64,
        "batch_size": 25, "test_size": 400, "figure_tau": 0.8, "figure_archs": ["mobilenet_v2"], "bn_gamma": False}
    SMOKE: ClassVar[dict] = {
        "dataset": "fashion-mnist", "arch": "mobilenet_v2", "shots": 5, "steps": 6, "taus": [0.9, 1.0],
        "finetune_epochs": [1, 2], "lr": 0.003, "input_size": 32, "batch_size": 25, "test_size": 200,
        "figure_tau": 0.9, "figure_archs": ["mobilenet_v2"], "sensitivity": ["adam", "adam-l2"]}
    SETTING: ClassVar[tuple[str, ...]] = ("dataset", "arch", "shots", "taus", "finetune_epochs", "figure_tau",
                                          "figure_archs", "steps", "lr", "optimizer", "weight_decay", "finetune_lr",
                                          "recalibrate_bn", "input_size", "test_size")

    def check(self, given) -> None:
        super().check(given)
        fits_test_split(self, [self.dataset], given)


def choice_of(optimizer: str, weight_decay: float) -> str | None:
    """The name in :data:`CHOICES` of a transfer's (optimizer, weight decay), None for another pair."""
    return next((n for n, c in CHOICES.items() if c == (optimizer, float(weight_decay))), None)


def variants(p: dict) -> dict[str, dict]:
    """The studies of notebook 05, name -> config fields: the paper's, ours with L1, Network Slimming's."""
    common = dict(dataset=p["dataset"], arch=p["arch"], shots=p["shots"], finetune_epochs=tuple(p["finetune_epochs"]),
                  **{k: p[k] for k in Shared.model_fields})
    out = {PAPER: {**common, "strategy": p["strategy"], "l1": 0.0}}
    if p["l1"] > 0:
        out[L1] = {**common, "strategy": p["strategy"], "l1": p["l1"]}
    if p.get("bn_gamma") and has_batch_norm(p["arch"]):
        out[SLIMMING] = {**common, "strategy": TRANSFER_OF[BN_GAMMA], "l1": 0.0, "importance": BN_GAMMA}
    return out


def configs(p: dict) -> list[Config]:
    """The runs of notebook 05: per study, the unpruned row and each tau; Fig. 3's other backbones at
    ``figure_tau``; one kept-fraction curve per choice of ``sensitivity`` (the study's own also at its SNAPSHOTS)."""
    out = []
    for fields_ in variants(p).values():
        out += [Config(tau=t, **fields_) for t in [None, *p["taus"]]]
    paper_fields = variants(p)[PAPER]
    for a in p["figure_archs"]:
        if a != p["arch"] or p["figure_tau"] not in p["taus"]:
            out.append(Config(**{**paper_fields, "arch": a, "finetune_epochs": ()}, tau=p["figure_tau"]))
    own = (paper_fields["optimizer"], float(paper_fields["weight_decay"]))
    for name in p["sensitivity"]:
        if name not in CHOICES:
            raise ValueError(f"unknown transfer choice {name!r}; choose among {', '.join(CHOICES)}")
        optimizer, wd = CHOICES[name]
        out.append(Config(**{**paper_fields, "optimizer": optimizer, "weight_decay": wd, "finetune_epochs": ()},
                          tau=None, curve="steps" if (optimizer, wd) == own else "final"))
    return out


def variant_of(config: Config, p: dict) -> str | None:
    """Which study of :func:`variants` a config belongs to (None: a figure-only run or a curve)."""
    if config.curve:
        return None
    return next((n for n, f in variants(p).items() if all(getattr(config, k) == v for k, v in f.items())), None)


key = functools.partial(records.key, NAME)
setting = functools.partial(setting_table, Parameters)


def order(config: Config) -> tuple:
    """Thresholds of one transfer together, the unpruned row first."""
    return (json.dumps(config.transfer, sort_keys=True), config.importance, config.curve, config.tau is not None,
            config.tau or 0.0, config.finetune_epochs)


# --------------------------------------------------------------------------- the transferred network
@dataclass
class Data:
    test: cdata.ImageSet
    images: torch.Tensor  # the few-shot training images
    labels: torch.Tensor
    classes: int


def data_of(f: dict, context: Context) -> Data:
    """The test subset and the few-shot training set of a transfer (``f`` as :attr:`Config.transfer`)."""
    def build() -> Data:
        split = context.split(f["dataset"], f["input_size"])
        test = split.test.subset(cdata.stratified_subset_indices(split.test.labels, f["test_size"], f["seed"]))
        idx = cdata.few_shot_indices(split.train.labels, f["shots"], f["seed"])
        return Data(test, split.train.images[idx], split.train.labels[idx], len(split.classes))

    return context.memo("pruning data", (f["dataset"], f["input_size"], f["test_size"], f["seed"], f["shots"]), build)


def transferred(f: dict, context: Context, snapshots: bool = False):
    """The network a study prunes (``f`` as :attr:`Config.transfer`) in eval mode on the context's device, trained
    once and kept in the store's ``shared/`` folder; with ``snapshots``, also its scales at the :data:`SNAPSHOTS`."""
    model, snaps = context.memo("transferred", json.dumps(f, sort_keys=True), lambda: _transfer(f, context))
    return (model, snaps) if snapshots else model


def _transfer(f: dict, context: Context) -> tuple[nn.Module, dict]:
    data = data_of(f, context)
    backbone = context.backbone(f["arch"], f["pretrained"])
    strategy = strategies.get(f["strategy"])
    seed_everything(f["seed"])
    model = transfer.prepare(copy.deepcopy(backbone), strategy, data.classes)
    name = hashlib.sha1(json.dumps({"study": NAME, "transfer": f}, sort_keys=True).encode()).hexdigest()[:16]
    saved = context.shared / f"transfer-{name}.pt" if context.shared else None
    # runs in parallel (Ray tasks, two drivers) wait for the one that trains it, then read its file
    with file_lock(saved.with_suffix(".lock")) if saved is not None else contextlib.nullcontext():
        if saved is not None and saved.is_file():
            state = torch.load(saved, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            snaps = {int(k): v for k, v in state["snapshots"].items()}
        else:
            snaps = _train_transfer(model, backbone, strategy, f, data, context)
            if saved is not None:
                atomic_write(saved, lambda p: torch.save(
                    {"model": model.state_dict(), "snapshots": {str(k): v for k, v in snaps.items()}}, p))
    return model.to(context.device).eval(), snaps


def _train_transfer(model: nn.Module, backbone: nn.Module, strategy, f: dict, data: Data, context: Context) -> dict:
    """Train ``model`` for the transfer ``f``; its scales at the SNAPSHOTS. A strategy that leaves BatchNorm frozen
    trains a copy with BatchNorm folded (the same function, faster), whose scales and classifier ``model`` takes."""
    trained = model
    if strategy.frozen_batch_norm:
        seed_everything(f["seed"])  # the same head initialisation as ``model``'s
        trained = transfer.prepare(copy.deepcopy(backbone), strategy, data.classes, fold_bn=True)
    batches = transfer.image_batches(data.images, data.labels, f["batch_size"], f["seed"], f["input_size"])
    at = {max(1, round(q * f["steps"])) for q in SNAPSHOTS}
    snaps: dict[int, dict] = {}

    def per_epoch(epoch: int, _loss: float) -> None:
        done = min(f["steps"], (epoch + 1) * steps_per_epoch)
        for step in sorted(at - set(snaps)):
            if done >= step and strategy.cwl:
                snaps[step] = transfer.learned_sigmas(trained)

    steps_per_epoch = sum(1 for _ in transfer.seeded_batches(len(data.labels), f["batch_size"], 0)(0))
    with pruning.l1_on_sigmas(trained, f["l1"]) if f["l1"] else contextlib.nullcontext():
        transfer.train(trained, batches, strategy, f["lr"], None, context.device, steps=f["steps"],
                       optimizer=f["optimizer"], weight_decay=f["weight_decay"],
                       backbone_lr_factor=f["backbone_lr_factor"], progress=per_epoch)
    if trained is not model:
        load_sigmas(model, transfer.learned_sigmas(trained))
        transfer.head(model).load_state_dict(transfer.head(trained).state_dict())
    return snaps


# --------------------------------------------------------------------------- one run
def run_one(config: Config, context: Context) -> dict:
    """The record of one threshold (or of the unpruned network, ``tau=None``, or of a kept-fraction curve)."""
    device, size = context.device, config.input_size
    start = time.perf_counter()
    data = data_of(config.transfer, context)
    model, snaps = transferred(config.transfer, context, snapshots=True)
    hits: dict[str, str] = {}  # per test image, 1 where the prediction is right: for paired tests

    def accuracy(m: nn.Module, stage: str) -> float:
        right = context.correct(m, data.test, size)
        hits[stage] = "".join("1" if v else "0" for v in right.tolist())
        return float(right.float().mean())

    example = torch.zeros(1, 3, size, size, device=device)
    if config.curve:
        snaps = {max(snaps): snaps[max(snaps)]} if config.curve == "final" else snaps
        return context.record(NAME, config, start, curve=kept_curve(model, snaps, config.min_channels, example),
                              run_seed=config.seed)
    batches = transfer.image_batches(data.images, data.labels, config.batch_size, config.seed + 1, size)
    if config.tau is None:
        learned = {k: v.float().cpu() for k, v in read_sigmas(model).items()}
        unpruned = {"accuracy": accuracy(model, "acc"), "parameters": pruning.count_parameters(model)}
        # finetuned like every pruned row, so that the ft columns separate what finetuning alone gives
        _finetune(copy.deepcopy(model), unpruned, accuracy, batches, config, device)
        return context.record(NAME, config, start, unpruned=unpruned, correct=hits, classes=data.classes,
                              run_seed=config.seed, **{records.ATTACHMENTS: {"sigmas": learned} if learned else {}})
    matched = None
    if config.importance == SIGMA:
        pruned, plan = pruning.prune(model, config.tau, config.min_channels, example_input=example)
    else:
        reference = transferred({**config.transfer, "strategy": TRANSFER_OF[SIGMA]}, context)
        target, _ = pruning.prune(reference, config.tau, config.min_channels, example_input=example)
        matched = pruning.count_parameters(target) / pruning.count_parameters(reference)
        threshold, pruned, plan = pruning.prune_to_size(model, matched, importance=BN_GAMMA,
                                                        min_channels=config.min_channels, example_input=example)
        plan["matched_params"] = matched
    comp = pruning.compression(model, pruned, (3, size, size))
    t_model, t_pruned = pruning.latencies([model, pruned], (3, size, size), config.latency_batch, device=device,
                                          repeats=10)
    row = {"tau": config.tau, "acc": accuracy(pruned, "acc"), "params": comp.params, "features": comp.features,
           "latency_ratio": t_pruned / t_model}
    if matched is not None:
        row.update(matched_params=matched, threshold=threshold)
    # BatchNorm statistics re-estimated on the training images (the standard step after structured pruning),
    # on a copy; finetuning starts from it as ``recalibrate_bn`` says
    recalibrated = copy.deepcopy(pruned)
    if pruning.recalibrate_batch_norm(recalibrated, (x for x, _ in batches(0)), device):
        row["acc_recalibrated"] = context.accuracy(recalibrated, data.test, size)
        row["dead"] = dead(pruned, data, size, device)
        if config.recalibrate_bn == "always" or (config.recalibrate_bn == "dead" and row["dead"]):
            pruned = recalibrated
            row["recalibrated"] = True
    del recalibrated
    _finetune(pruned, row, accuracy, batches, config, device)
    return context.record(NAME, config, start, row=row, layers=comp.layers.assign(tau=config.tau).to_dict("list"),
                          correct=hits, classes=data.classes, run_seed=config.seed,
                          **{records.ATTACHMENTS: {"pruned": {"plan": plan, "state_dict": pruned.state_dict()}}})


def _finetune(model: nn.Module, row: dict, accuracy, batches, config: Config, device) -> None:
    """Finetune ``model`` in place, every weight trainable; ``row[ft<N>]``: the accuracy after N epochs."""
    if not config.finetune_epochs:
        return

    def after_epoch(epoch: int, _loss: float) -> None:
        if epoch + 1 in config.finetune_epochs:
            row[f"ft{epoch + 1}"] = accuracy(model, f"ft{epoch + 1}")

    transfer.set_trainable(model, strategies.FINETUNE_ALL)
    seed_everything(config.seed + 1)
    transfer.train(model, batches, strategies.FINETUNE_ALL, config.finetune_lr, max(config.finetune_epochs),
                   device, backbone_lr_factor=config.backbone_lr_factor, bn_train=config.finetune_bn == "train",
                   progress=after_epoch)
    for e in config.finetune_epochs:  # a diverged run stops early: report what it reached
        row.setdefault(f"ft{e}", float("nan"))


def outdated(record: dict) -> str | None:
    """Why a stored record lacks what :func:`run_one` now records under its key (None: it does not)."""
    c = record["config"]
    if c.get("tau") is None and not c.get("curve") and c.get("finetune_epochs"):
        if any(f"ft{e}" not in record.get("unpruned", {}) for e in c["finetune_epochs"]):
            return "it was written before the unpruned network was finetuned like every threshold (no ft columns)"
    return None


def dead(model: nn.Module, data: Data, size: int, device) -> bool:
    """Whether a pruned network gives the same logits for every training image: finetuning cannot start from it."""
    logits = transfer.predict(model, data.images, device, size=size)
    return bool(logits.std(0).max() <= 1e-5 * (1 + logits.abs().max()))


def kept_curve(model: nn.Module, snaps: dict[int, dict[str, torch.Tensor]], min_channels: int,
               example: torch.Tensor) -> dict:
    """The share of parameters ``model`` keeps at each of :data:`CURVE_TAUS`, with each snapshot's scales."""
    probe = copy.deepcopy(model)
    total = pruning.count_parameters(probe)
    kept = {}
    for step, learned in sorted(snaps.items()):
        load_sigmas(probe, learned)
        kept[str(step)] = [pruning.count_parameters(pruning.prune(probe, t, min_channels, example_input=example)[0])
                           / total for t in CURVE_TAUS]
    return {"taus": list(CURVE_TAUS), "kept": kept}


# --------------------------------------------------------------------------- tables and figures
def study_records(recs: list[dict], config_fields: dict) -> list[dict]:
    """The records of one study (the config fields of one :func:`variants` entry)."""
    want = json.loads(json.dumps(config_fields))
    return [r for r in recs if all(r["config"].get(k) == v for k, v in want.items())]


def table(recs: list[dict], paper: list[dict] | None = None) -> pd.DataFrame:
    """Table IV of one study's records: the unpruned row (when recorded), then one row per tau, ``paper_*`` columns
    when given; rounded to 3 decimals but the latency ratio (never print it in a checked cell)."""
    if not recs:
        raise ValueError("no pruning run is recorded yet: run the study first")
    ft_cols = [f"ft{e}" for e in recs[0]["config"]["finetune_epochs"]]
    rows = [{"tau": None, "acc": r["unpruned"]["accuracy"], **{c: r["unpruned"].get(c) for c in ft_cols}, "params": 1.0,
             "features": 1.0, "latency_ratio": 1.0} for r in recs if r["config"]["tau"] is None]
    extra = [c for c in ("acc_recalibrated", "recalibrated", "matched_params", "threshold")
             if any(c in r.get("row", {}) for r in recs)]
    rows += [{k: r["row"].get(k) for k in ("tau", "acc", *ft_cols, "params", "features", "latency_ratio", *extra)}
             for r in sorted((r for r in recs if r["config"]["tau"] is not None), key=lambda r: r["config"]["tau"])]
    df = pd.DataFrame(rows)
    if paper is not None:
        by_tau = {p["tau"]: p for p in paper}
        ft = ["ft1", "ft30"] if len(ft_cols) == 2 else []
        for ours, theirs in [("acc", "acc"), *zip(ft, ft), ("params", "params"), ("features", "feature_maps")]:
            df[f"paper_{ours}"] = [by_tau.get(t, {}).get(theirs) for t in df.tau]
    if "recalibrated" in df:
        df["recalibrated"] = df["recalibrated"].map(lambda v: "yes" if v is True else "-")
    num = [c for c in df.columns if c not in ("tau", "latency_ratio", "recalibrated")]
    df[num] = df[num].astype(float).round(3)
    df["tau"] = df.tau.astype(object).where(df.tau.notna(), "-")
    return df


def curves(recs: list[dict]) -> pd.DataFrame:
    """The kept-fraction curves of the records: one row per (choice, steps, tau)."""
    rows = []
    for r in recs:
        c = r["config"]
        if not c.get("curve"):
            continue
        choice = choice_of(c["optimizer"], c["weight_decay"]) or f"{c['optimizer']} {c['weight_decay']:g}"
        for step, kept in r["curve"]["kept"].items():
            rows += [{"choice": choice, "optimizer": c["optimizer"], "weight_decay": c["weight_decay"],
                      "steps": int(step), "final": int(step) == c["steps"], "tau": t, "kept": k}
                     for t, k in zip(r["curve"]["taus"], kept)]
    return pd.DataFrame(rows, columns=["choice", "optimizer", "weight_decay", "steps", "final", "tau", "kept"])


def paper_curve() -> pd.DataFrame:
    """The paper's Table IV as a kept-fraction curve: ``tau``, ``kept`` (parameters)."""
    return pd.DataFrame([{"tau": r["tau"], "kept": r["params"]} for r in TABLE_IV if r["tau"] is not None])


def distance_to_paper(curve_frame: pd.DataFrame) -> pd.DataFrame:
    """Per curve (choice, steps), closest first: its mean absolute distance to the paper's at common taus."""
    paper_kept = paper_curve().set_index("tau")["kept"]
    rows = []
    for (choice, steps), g in curve_frame.groupby(["choice", "steps"], sort=False):
        diff = [abs(float(k) - float(paper_kept[t])) for t in paper_kept.index
                for u, k in zip(g["tau"], g["kept"]) if abs(t - u) < 1e-9]
        rows.append({"choice": choice, "steps": steps, "final": bool(g["final"].iloc[0]), "taus": len(diff),
                     "distance": float(sum(diff) / len(diff)) if diff else float("nan")})
    return pd.DataFrame(rows).sort_values("distance", kind="stable").reset_index(drop=True)


def plot_curves(curve_frame: pd.DataFrame, ax=None):
    """Kept fraction of parameters against tau: each choice's curves, and the paper's Table IV."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.6))
    for (choice, steps), g in curve_frame.groupby(["choice", "steps"], sort=False):
        final = bool(g["final"].iloc[0])
        ax.plot(g["tau"], g["kept"], marker="o", ms=3, ls="-" if final else "--", lw=1.4 if final else 1.0,
                label=f"{choice}, {steps} steps")
    paper = paper_curve()
    ax.plot(paper["tau"], paper["kept"], color="black", marker="s", lw=2, label="paper, Table IV (VGG-16, Kvasir)")
    ax.set(xlabel="threshold tau on |sigma|", ylabel="parameters kept", ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="lower left")
    return ax


MATCHED_RULE = ("at each tau, Network Slimming prunes the BN-affine transfer by |gamma| to the parameter count "
                "sigma pruning keeps; on the same test images, the accuracy difference (sigma - gamma) is tested "
                "with McNemar's exact test: 'sigma better' or 'gamma better' when p < 0.05, else 'no difference "
                "detected'")


def matched(sigma_recs: list[dict], gamma_recs: list[dict]) -> pd.DataFrame:
    """Sigma beside BN-gamma pruning at matched size, per tau and stage (after pruning, after each finetuning):
    parameters kept, both accuracies, their difference, McNemar's p and the verdict (:data:`MATCHED_RULE`)."""
    gamma_by_tau = {r["config"]["tau"]: r for r in gamma_recs if r["config"]["tau"] is not None}
    rows = []
    for r in sorted((r for r in sigma_recs if r["config"]["tau"] in gamma_by_tau), key=lambda r: r["config"]["tau"]):
        g = gamma_by_tau[r["config"]["tau"]]
        for stage in (s for s in r["correct"] if s in g["correct"]):
            # per-image correctness is recorded as a "0101..." string, one character per test image
            p = E.mcnemar_effect([int(x) - int(y) for x, y in zip(r["correct"][stage], g["correct"][stage])]).p
            diff = r["row"][stage] - g["row"][stage]
            verdict = ("sigma better" if diff > 0 else "gamma better") if p < 0.05 else "no difference detected"
            rows.append({"tau": r["config"]["tau"], "stage": stage, "params sigma": r["row"]["params"],
                         "params gamma": g["row"]["params"], "acc sigma": r["row"][stage],
                         "acc gamma": g["row"][stage], "sigma - gamma": diff, "p (McNemar)": p, "verdict": verdict})
    return pd.DataFrame(rows)


def layers(recs: list[dict]) -> pd.DataFrame:
    """Per-layer compression of the pruned records, with a ``tau`` column."""
    frames = [pd.DataFrame(r["layers"]) for r in recs if r["config"]["tau"] is not None]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def figure_layers(layer_frame: pd.DataFrame, arch: str, tau: float) -> pd.DataFrame:
    """The convolutions Fig. 3 shows: every conv of VGG-16 / MobileNetV2, the 3x3 convs of ResNet-50."""
    sel = layer_frame[(layer_frame.tau == tau) & (layer_frame.kind != "linear")].copy()
    if arch.startswith("resnet"):
        sel = sel[sel.kind == "conv3x3"]
    sel["removed"] = 1.0 - sel.channels_kept
    sel["position"] = range(1, len(sel) + 1)
    return sel


def layer_roles(fig_layers: pd.DataFrame, arch: str) -> pd.Series:
    """The role of each convolution of :func:`figure_layers` in its block (MobileNetV2: stem, expansion,
    depthwise, projection, last); other architectures keep their layer kind."""
    if not arch.startswith("mobilenet_v2"):
        return fig_layers["kind"].rename("role")

    def role(layer: str, kind: str) -> str:
        if kind == "depthwise":
            return "depthwise"
        if ".conv." not in layer:
            return "stem" if layer.startswith("features.0.") else "last"
        return "expansion" if layer.endswith(".conv.0.0") else "projection"

    return pd.Series([role(n, k) for n, k in zip(fig_layers["layer"], fig_layers["kind"])],
                     index=fig_layers.index, name="role")


def plot_layer_compression(layer_frame: pd.DataFrame, arch: str, tau: float, ax=None):
    """Fig. 3: fraction of filters removed per convolution (bars in network order)."""
    sel = figure_layers(layer_frame, arch, tau)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.18 * len(sel)), 3.2))
    hue = "kind" if sel.kind.nunique() > 1 else None
    sns.barplot(data=sel, x="position", y="removed", hue=hue, dodge=False, ax=ax)
    ax.set(xlabel="convolution (input to output)", ylabel="filters removed", ylim=(0, 1))
    ax.set_title(f"{arch}, tau = {tau:g}")
    step = max(1, len(sel) // 20)
    for i, label in enumerate(ax.get_xticklabels()):
        label.set_visible(i % step == 0)
    return ax


def _abs_sigmas(sigmas: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([s.abs().flatten() for s in sigmas.values()])


def plot_sigmas(sigmas: dict[str, dict[str, torch.Tensor]], taus, ax=None):
    """Histogram of |sigma| over every CWL, one curve per transfer variant, taus as vertical lines."""
    frame = pd.concat([pd.DataFrame({"|sigma|": _abs_sigmas(sig).numpy(), "transfer": name})
                       for name, sig in sigmas.items()], ignore_index=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    sns.histplot(data=frame, x="|sigma|", hue="transfer", element="step", stat="density", common_norm=False,
                 bins=60, ax=ax)
    for t in taus:
        ax.axvline(t, color="grey", lw=0.8, ls="--")
    return ax


def fraction_below(sigmas: dict[str, torch.Tensor], tau: float) -> float:
    """Share of all sigma entries with |sigma| < tau (before the coupling rule and min_channels)."""
    return float((_abs_sigmas(sigmas) < tau).float().mean())

