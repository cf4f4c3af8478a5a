"""The few-shot grid of Section V-A: dataset x arch x strategy x shots x learning rate x repeat.

Each run writes one JSON record (accuracy, the full configuration, seed, code version, device, seconds)
to a :class:`ResultStore`: one file per run, named by a hash of its configuration, written to a temporary
file and moved into place with ``os.replace`` so an interrupted grid never leaves half a record. A rerun
skips the runs already recorded, so a stopped grid resumes where it stopped.

Seeds: repeat ``r`` of a grid with base seed ``s`` uses ``run_seed = 1000 * s + r`` for its few-shot
sample, the initialisation of the new classifier and the shuffle of its batches. Strategies and learning
rates of one repeat therefore see the same images in the same order from the same head, and are compared
pair by pair.

Speed: datasets are uint8 tensors converted per batch; the pretrained backbone is loaded once per
architecture; ``freeze`` trains its classifier on backbone features computed once per (dataset, arch)
(:func:`run_one` with ``features``), which gives the same result as the image path (tested); evaluation
runs in large batches, with bfloat16 autocast and channels_last on a GPU.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from . import transfer
from .paths import atomic_write
from .data import classification as cdata
from .runtime import pick_device, seed_everything, tune_for_repeated_shapes
from .weighting import sigmas as read_sigmas

RECORD_VERSION = 1


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run's result (its hash names the record)."""

    dataset: str
    arch: str
    strategy: str
    shots: int
    lr: float
    repeat: int
    seed: int = 0  # the grid's base seed
    epochs: int = 30
    batch_size: int = 32
    input_size: int = 224
    test_size: int | None = None  # a stratified test subset (None: the whole test split)
    backbone_lr_factor: float = 0.1
    bn_train: bool = False  # finetune with BatchNorm batch statistics (transfer.set_train_mode)
    pretrained: bool = True

    @property
    def run_seed(self) -> int:
        return 1000 * self.seed + self.repeat

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def code_version() -> str:
    """``git describe --always --dirty`` of the checkout, else the installed package version."""
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=here, capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return "git:" + out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return "cwl_lib " + version("cwl_lib")
    except Exception:
        return "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


# --------------------------------------------------------------------------- the store
class ResultStore:
    """One JSON record per run in ``folder``, named ``<config hash>.json``; sigmas beside, as ``.pt``."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def has(self, cfg: RunConfig) -> bool:
        return self.path(cfg.key()).is_file()

    def write(self, record: dict, sigmas: dict | None = None) -> None:
        key = record["key"]
        if sigmas:
            atomic_write(self.folder / f"{key}.sigmas.pt", lambda p: torch.save(sigmas, p))
        atomic_write(self.path(key), lambda p: p.write_text(json.dumps(record, indent=1, sort_keys=True)))

    def records(self) -> list[dict]:
        out = []
        for p in sorted(self.folder.glob("*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, json.JSONDecodeError):
                continue  # a foreign or damaged file is not a record
        return out

    def sigmas(self, key: str) -> dict[str, torch.Tensor] | None:
        p = self.folder / f"{key}.sigmas.pt"
        return torch.load(p, weights_only=True) if p.is_file() else None

    def frame(self):
        """All records as a DataFrame: one row per run, configuration fields as columns."""
        import pandas as pd

        rows = [{**r["config"], **{k: v for k, v in r.items() if k != "config"}} for r in self.records()]
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the grid
def grid(datasets: Iterable[str], archs: Iterable[str], strategies: Iterable[str], shots: Iterable[int],
         repeats: int, lrs: dict[str, Iterable[float]] | None = None, **common) -> list[RunConfig]:
    """Every run of the grid. ``lrs`` maps ``freeze``/``finetune`` (or a strategy) to its LR grid;
    absent entries use the paper's (:func:`cwl_lib.transfer.lr_grid`). ``bn-affine`` is skipped for
    architectures without BatchNorm (VGG-16)."""
    lrs = lrs or {}
    out = []
    for dataset in datasets:
        for arch in archs:
            for strategy in strategies:
                transfer.check_strategy(strategy)
                if strategy == "bn-affine" and arch.startswith("vgg") and "_bn" not in arch:
                    continue
                family = "finetune" if transfer.is_finetune(strategy) else "freeze"
                grid_lrs = lrs.get(strategy, lrs.get(family, transfer.lr_grid(strategy)))
                for k in shots:
                    for lr in grid_lrs:
                        for r in range(repeats):
                            out.append(RunConfig(dataset, arch, strategy, int(k), float(lr), r, **common))
    return out


def notebook_grid(p: dict) -> list[RunConfig]:
    """The runs of ``03_classification`` under its parameters ``p`` (the call that notebook makes)."""
    return grid(p["datasets"], p["archs"], p["strategies"], p["shots"], p["repeats"],
                lrs={"freeze": p["lr_freeze"], "finetune": p["lr_finetune"]},
                seed=p["seed"], epochs=p["epochs"], batch_size=p["batch_size"], input_size=p["input_size"],
                test_size=p["test_size"], backbone_lr_factor=p["backbone_lr_factor"], pretrained=p["pretrained"])


@dataclass
class Prepared:
    """One dataset at one input size, as the runs use it: uint8 tensors, test maybe subsampled."""

    split: cdata.Split
    test: cdata.ImageSet


def prepare_data(split: cdata.Split, test_size: int | None, seed: int = 0) -> Prepared:
    idx = cdata.stratified_subset_indices(split.test.labels, test_size, seed)
    return Prepared(split, split.test.subset(idx))


@dataclass
class FeatureCache:
    """Frozen-backbone features of a (dataset, arch, input size): test set and seen training images."""

    body: nn.Module
    template_head: nn.Module
    test: torch.Tensor
    train: dict[int, torch.Tensor] = field(default_factory=dict)  # train index -> feature

    def train_features(self, indices: torch.Tensor, images: torch.Tensor, device, size, batch_size) -> torch.Tensor:
        todo = [int(i) for i in indices if int(i) not in self.train]
        if todo:
            feats = transfer.extract_features(self.body, images[todo], device, size=size, batch_size=batch_size)
            self.train.update(zip(todo, feats))
        return torch.stack([self.train[int(i)] for i in indices])


def fresh_head(template: nn.Module) -> nn.Module:
    """A copy of a classifier re-initialised from the global RNG exactly as its construction did."""
    head = copy.deepcopy(template)
    for m in head.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return head


def build_feature_cache(backbone: nn.Module, num_classes: int, test_images: torch.Tensor, device,
                        size: int, batch_size: int) -> FeatureCache:
    model = transfer.prepare(copy.deepcopy(backbone), "freeze", num_classes)
    body, head = transfer.split_head(model)
    feats = transfer.extract_features(body, test_images, device, size=size, batch_size=batch_size)
    return FeatureCache(body=body, template_head=head, test=feats)


def run_one(cfg: RunConfig, backbone: nn.Module, data: Prepared, device: torch.device, *,
            features: FeatureCache | None = None, eval_batch_size: int = 256) -> tuple[dict, dict | None]:
    """Train and evaluate one configuration; returns ``(record, sigmas or None)``.

    With ``features`` (``freeze`` only) the classifier trains on cached backbone features; otherwise the
    whole prepared model runs on images.
    """
    start = time.perf_counter()
    train_idx = cdata.few_shot_indices(data.split.train.labels, cfg.shots, cfg.run_seed)
    labels = data.split.train.labels[train_idx]
    num_classes = len(data.split.classes)
    seed_everything(cfg.run_seed)
    learned = None
    if features is not None:
        if cfg.strategy != "freeze":
            raise ValueError("cached features serve only the 'freeze' strategy")
        x = features.train_features(train_idx, data.split.train.images, device, cfg.input_size, eval_batch_size)
        head = fresh_head(features.template_head)
        result = transfer.train(head, transfer.tensor_batches(x, labels, cfg.batch_size, cfg.run_seed),
                                "freeze", cfg.lr, cfg.epochs, device, amp=False)
        acc = transfer.evaluate(head, features.test, data.test.labels, device, raw=True, batch_size=4096)
    else:
        model = transfer.prepare(copy.deepcopy(backbone), cfg.strategy, num_classes)
        images = data.split.train.images[train_idx].to(device)
        batches = transfer.image_batches(images, labels.to(device), cfg.batch_size, cfg.run_seed, cfg.input_size)
        result = transfer.train(model, batches, cfg.strategy, cfg.lr, cfg.epochs, device,
                                backbone_lr_factor=cfg.backbone_lr_factor, bn_train=cfg.bn_train)
        acc = transfer.evaluate(model, data.test.images, data.test.labels, device, size=cfg.input_size,
                                batch_size=eval_batch_size)
        if transfer.uses_cwl(cfg.strategy):
            learned = {k: v.float().cpu() for k, v in read_sigmas(model).items()}
        del model
    record = make_record(cfg, acc, result.losses, result.steps, len(train_idx), len(data.test),
                         features is not None, time.perf_counter() - start, device, batched_with=1)
    return record, learned


def make_record(cfg: RunConfig, accuracy: float, losses: list[float], steps: int, n_train: int, n_test: int,
                cached: bool, seconds: float, device: torch.device, **extra) -> dict:
    """The JSON record of one run: its result, its whole configuration and where and how it ran."""
    return {
        "version": RECORD_VERSION,
        "key": cfg.key(),
        "config": asdict(cfg),
        "accuracy": accuracy,
        "run_seed": cfg.run_seed,
        "final_loss": losses[-1] if losses else None,
        "diverged": bool(losses) and not all(map(_finite, losses)),
        "train_steps": steps,
        "n_train": int(n_train),
        "n_test": int(n_test),
        "cached_features": cached,
        "seconds": seconds,
        **provenance(device),
        **extra,
    }


def provenance(device: torch.device) -> dict:
    """Where, when and with which code a record was made: the fields every record of the project holds."""
    return {"device": device_name(device), "code_version": _CODE_VERSION[0] or _set_code_version(),
            "torch": torch.__version__, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def run_batched(cfgs: list[RunConfig], backbone: nn.Module, data: Prepared, device: torch.device, *,
                eval_batch_size: int = 256) -> list[tuple[dict, dict | None]]:
    """Train and evaluate the runs of one cell together (:mod:`cwl_lib.batched`); as many
    ``(record, sigmas)`` as ``cfgs``, each equal to what :func:`run_one` gives for it.

    ``cfgs`` must differ in ``lr`` and ``repeat`` only. Each record's ``seconds`` is the group's time
    divided by its size, and ``batched_with`` says how many runs shared it.
    """
    from . import batched

    first = cfgs[0]
    if any(cell_of(c) != cell_of(first) for c in cfgs):
        raise ValueError("runs trained together must differ only in learning rate and repeat")
    batched.check_batchable(first.bn_train)
    start = time.perf_counter()
    num_classes = len(data.split.classes)
    model = transfer.prepare(copy.deepcopy(backbone), first.strategy, num_classes)
    template = transfer.head(model)
    runs, n_train = [], 0
    for cfg in cfgs:
        idx = cdata.few_shot_indices(data.split.train.labels, cfg.shots, cfg.run_seed)
        n_train = len(idx)
        seed_everything(cfg.run_seed)  # the head run_one would build after the same seeding
        head = fresh_head(template)
        runs.append(batched.Run(cfg.lr, cfg.run_seed, data.split.train.images[idx], data.split.train.labels[idx],
                                {k: v.detach() for k, v in head.named_parameters()}))
    trained = batched.train_runs(model, runs, first.strategy, first.epochs, first.batch_size, device,
                                 input_size=first.input_size, backbone_lr_factor=first.backbone_lr_factor)
    logits = batched.predict_runs(trained, data.test.images, device, size=first.input_size,
                                  batch_size=eval_batch_size)
    accs = (logits.argmax(2) == data.test.labels.cpu()).float().mean(1).tolist()
    seconds = (time.perf_counter() - start) / len(cfgs)
    out = []
    for k, cfg in enumerate(cfgs):
        learned = None
        if transfer.uses_cwl(cfg.strategy):
            learned = {n: v.float().cpu() for n, v in read_sigmas(trained.load(k)).items()}
        record = make_record(cfg, accs[k], trained.losses[k], trained.steps(k), n_train, len(data.test), False,
                             seconds, device, batched_with=len(cfgs))
        out.append((record, learned))
    return out


def _finite(v) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))


_CODE_VERSION: list[str | None] = [None]


def _set_code_version() -> str:
    _CODE_VERSION[0] = code_version()
    return _CODE_VERSION[0]


def cell_of(cfg: RunConfig) -> tuple:
    """Everything but learning rate and repeat: the runs of one cell can train together."""
    return tuple((k, v) for k, v in asdict(cfg).items() if k not in ("lr", "repeat"))


def units(configs: list[RunConfig], batch_runs: int, cache_features: bool = True) -> list[list[RunConfig]]:
    """``configs`` cut into units of work: runs of one cell up to ``batch_runs`` together, in order.

    Cached-feature ``freeze`` runs (a Linear layer each) and ``bn_train`` runs go one by one.
    """
    out: list[list[RunConfig]] = []
    open_cell = None  # the cell of the last unit, while it can still take runs
    for cfg in configs:
        alone = batch_runs <= 1 or cfg.bn_train or (cache_features and cfg.strategy == "freeze")
        if not alone and open_cell == cell_of(cfg) and len(out[-1]) < batch_runs:
            out[-1].append(cfg)
        else:
            out.append([cfg])
            open_cell = None if alone else cell_of(cfg)
    return out


def _run_unit(unit: list[RunConfig], backbone, data, device, features, eval_batch_size, log):
    """Results of one unit; a unit too big for the GPU's memory is split in halves and retried."""
    if len(unit) == 1:
        return [run_one(unit[0], backbone, data, device, features=features, eval_batch_size=eval_batch_size)]
    try:
        return run_batched(unit, backbone, data, device, eval_batch_size=eval_batch_size)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        half = len(unit) // 2
        log(f"[grid] {len(unit)} runs together do not fit in GPU memory; trying {half} and {len(unit) - half}")
        return (_run_unit(unit[:half], backbone, data, device, features, eval_batch_size, log)
                + _run_unit(unit[half:], backbone, data, device, features, eval_batch_size, log))


def run_grid(configs: list[RunConfig], store: ResultStore, device: str | torch.device = "auto", *,
             load_split: Callable[[str, int], cdata.Split] | None = None,
             load_model: Callable[[str, bool], nn.Module] | None = None,
             cache_features: bool = True, eval_batch_size: int = 256, progress: bool = True,
             data_root: str | None = None, batch_runs: int = 1):
    """Run every configuration not yet in ``store``; return the store's DataFrame.

    ``load_split(dataset, input_size)`` and ``load_model(arch, pretrained)`` default to
    :func:`cwl_lib.data.classification.load` and :func:`cwl_lib.models.load_backbone`.
    ``batch_runs``: how many runs of one cell train together (:func:`run_batched`); default 1. On an H100
    at the paper's setting, 8 runs together were no faster than one after another (benchmarks/README.md):
    vmap makes each trained convolution a grouped one, and a step of 32 images at 224x224 already keeps
    the GPU busy. Each record is written as soon as its unit finishes, so a stopped grid resumes from the
    last unit.
    """
    from tqdm.auto import tqdm

    from . import models

    device = pick_device(str(device)) if not isinstance(device, torch.device) else device
    tune_for_repeated_shapes(device)
    load_split = load_split or (lambda name, size: cdata.load(name, data_root, size=max(size, 224)))
    load_model = load_model or (lambda arch, pretrained: models.load_backbone(arch, pretrained=pretrained))
    todo = [c for c in configs if not store.has(c)]
    bar = tqdm(total=len(todo), desc="runs", disable=not progress)
    splits: dict[tuple, Prepared] = {}
    order = sorted(todo, key=lambda c: (c.dataset, c.input_size, c.test_size or -1, c.arch, c.pretrained,
                                        c.strategy != "freeze", c.strategy, cell_of(c), c.repeat, c.lr))
    current_model: tuple | None = None
    backbone = None
    caches: dict[tuple, FeatureCache] = {}
    for unit in units(order, batch_runs, cache_features):
        cfg = unit[0]
        dkey = (cfg.dataset, cfg.input_size, cfg.test_size, cfg.seed)
        if dkey not in splits:
            splits.clear()
            caches.clear()
            splits[dkey] = prepare_data(load_split(cfg.dataset, cfg.input_size), cfg.test_size, seed=cfg.seed)
        data = splits[dkey]
        mkey = (cfg.arch, cfg.pretrained)
        if mkey != current_model:
            backbone = load_model(cfg.arch, cfg.pretrained).eval()
            current_model = mkey
            caches.clear()
        features = None
        if cache_features and cfg.strategy == "freeze":
            fkey = (dkey, mkey)
            if fkey not in caches:
                caches[fkey] = build_feature_cache(backbone, len(data.split.classes), data.test.images, device,
                                                   cfg.input_size, eval_batch_size)
            features = caches[fkey]
        lrs = ",".join(f"{lr:g}" for lr in dict.fromkeys(c.lr for c in unit))
        bar.set_postfix_str(f"{cfg.dataset} {cfg.arch} {cfg.strategy} k={cfg.shots} lr={lrs} "
                            f"r={','.join(str(r) for r in sorted({c.repeat for c in unit}))}")
        for record, learned in _run_unit(unit, backbone, data, device, features, eval_batch_size, bar.write):
            store.write(record, learned)
            bar.update(1)
    bar.close()
    return store.frame()


__all__ = ["RunConfig", "ResultStore", "grid", "run_grid", "run_one", "run_batched", "units", "cell_of",
           "notebook_grid", "provenance", "make_record", "prepare_data", "build_feature_cache",
           "FeatureCache", "fresh_head", "code_version", "RECORD_VERSION"]
