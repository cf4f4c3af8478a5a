"""The few-shot classification study of Section V-A (Tables I and II).

The grid: dataset x backbone x strategy x images per class x learning rate x repeat; each run trains
one configuration and records its test accuracy. Tables keep, per repeat, the best accuracy over the
learning rates, then the mean and standard deviation over repeats (:mod:`cwl_lib.tables`).

Seeds: repeat ``r`` of a grid with base seed ``s`` uses ``run_seed = 1000 * s + r`` for its few-shot
sample, the initialisation of the new classifier and the shuffle of its batches. Strategies and learning
rates of one repeat therefore see the same images in the same order from the same head, and are compared
pair by pair.

Speed: datasets are uint8 tensors converted per batch; the pretrained backbone is loaded once per
architecture (:class:`~cwl_lib.studies.context.Context`); a strategy that trains only the classifier
(:attr:`Strategy.cacheable`) trains it on backbone features computed once per (dataset, backbone), which
gives the same result as the image path (tested); evaluation runs in large batches, with bfloat16
autocast and channels_last tensors on a GPU.
"""
from __future__ import annotations

import copy
import time
from dataclasses import MISSING, dataclass, field, fields

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits
import torch
from torch import nn

from .. import records, strategies, tables, transfer
from ..data import classification as cdata
from ..models import has_batch_norm
from ..runtime import seed_everything
from ..weighting import sigma_shift
from .context import Context
from .setting import Row, square
from .setting import table as setting_rows_table

NAME = "classification"
NOTEBOOK = "03_classification"


@dataclass(frozen=True)
class Config:
    """Everything that determines one run's result; the defaults are the paper's setting."""

    dataset: str
    arch: str
    strategy: str
    shots: int
    lr: float
    repeat: int
    seed: int = 0  # the grid's base seed
    steps: int = 200  # optimizer steps, whatever the number of images per class
    batch_size: int = 32
    weight_decay: float = 5e-4  # Adam's coupled L2 on every trained parameter (the paper states none; 05 measures it)
    input_size: int = 224
    test_size: int | None = None  # a stratified test subset (None: the whole test split)
    backbone_lr_factor: float = 0.1
    bn_train: bool = False  # BatchNorm on batch statistics while finetuning (transfer.set_train_mode)
    pretrained: bool = True

    @property
    def run_seed(self) -> int:
        return 1000 * self.seed + self.repeat


_RUN = {f.name: f.default for f in fields(Config) if f.default is not MISSING}

#: The paper's setting, as the parameters of notebook 03 (profiles override it).
PARAMETERS = {
    "datasets": ["mit67", "kvasir", "chest-xray"], "archs": ["vgg16", "resnet50"], "pretrained": True,
    "strategies": list(strategies.NAMES), "shots": [1, 3, 5, 10], "repeats": 10,
    "lr_freeze": list(strategies.FREEZE_LRS), "lr_finetune": list(strategies.FINETUNE_LRS),
    "steps": _RUN["steps"], "weight_decay": _RUN["weight_decay"], "batch_size": _RUN["batch_size"],
    "input_size": _RUN["input_size"],
    "test_size": _RUN["test_size"], "backbone_lr_factor": _RUN["backbone_lr_factor"], "eval_batch_size": 256,
}


def configs(p: dict) -> list[Config]:
    """The runs of notebook 03 under its parameters ``p``: the one place they are made.

    Each strategy is searched over its learning-rate grid (``lr_freeze`` or ``lr_finetune``, by
    :attr:`Strategy.lr_grid`); a strategy that needs BatchNorm is skipped for a backbone without it.
    """
    lrs = {"freeze": p["lr_freeze"], "finetune": p["lr_finetune"]}
    out = []
    for dataset in p["datasets"]:
        for arch in p["archs"]:
            for name in p["strategies"]:
                s = strategies.get(name)
                if s.needs_bn and not has_batch_norm(arch):
                    continue
                for k in p["shots"]:
                    for lr in lrs[s.lr_grid]:
                        for r in range(p["repeats"]):
                            out.append(Config(dataset, arch, s.name, int(k), float(lr), r, seed=p["seed"],
                                              steps=p["steps"], weight_decay=p["weight_decay"],
                                              batch_size=p["batch_size"],
                                              input_size=p["input_size"], test_size=p["test_size"],
                                              backbone_lr_factor=p["backbone_lr_factor"], pretrained=p["pretrained"]))
    return out


def key(config: Config) -> str:
    return records.key(NAME, config)


def order(config: Config) -> tuple:
    """Runs sharing a dataset, then a backbone, then cached features, come together."""
    return (config.dataset, config.input_size, config.test_size or -1, config.seed, config.arch, config.pretrained,
            not strategies.get(config.strategy).cacheable, config.strategy, config.shots, config.repeat, config.lr)


# --------------------------------------------------------------------------- data and cached features
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
    """Frozen-backbone features of a (dataset, arch, input size): the test set, and each few-shot training
    set a run asked for (keyed by its indices, so runs differing only in learning rate share it)."""

    body: nn.Module
    template_head: nn.Module
    test: torch.Tensor
    train: dict[tuple, torch.Tensor] = field(default_factory=dict)

    def train_features(self, indices: torch.Tensor, images: torch.Tensor, device, size, batch_size) -> torch.Tensor:
        # a run's features come from its own images in its own batches, never from images cached by
        # earlier runs: a convolution's last bits depend on its batch, and earlier runs depend on which
        # worker ran what (Ray), so features must not depend on history
        key = tuple(int(i) for i in indices)
        if key not in self.train:
            self.train[key] = transfer.extract_features(self.body, images[list(key)], device, size=size,
                                                        batch_size=batch_size)
        return self.train[key]


def fresh_head(template: nn.Module) -> nn.Module:
    """A copy of a classifier re-initialised from the global RNG exactly as its construction did."""
    head = copy.deepcopy(template)
    for m in head.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return head


def build_feature_cache(backbone: nn.Module, num_classes: int, test_images: torch.Tensor, device,
                        size: int, batch_size: int) -> FeatureCache:
    model = transfer.prepare(copy.deepcopy(backbone), strategies.get("freeze"), num_classes, fold_bn=True)
    body, head = transfer.split_head(model)
    feats = transfer.extract_features(body, test_images, device, size=size, batch_size=batch_size)
    return FeatureCache(body=body, template_head=head, test=feats)


def data_of(config: Config, context: Context) -> Prepared:
    return context.memo("data", (config.dataset, config.input_size, config.test_size, config.seed),
                        lambda: prepare_data(context.split(config.dataset, config.input_size), config.test_size,
                                             seed=config.seed))


def features_of(config: Config, context: Context) -> FeatureCache:
    data = data_of(config, context)
    backbone = context.backbone(config.arch, config.pretrained)
    fkey = (config.dataset, config.input_size, config.test_size, config.seed, config.arch, config.pretrained)
    return context.memo("features", fkey, lambda: build_feature_cache(
        backbone, len(data.split.classes), data.test.images, context.device, config.input_size,
        context.eval_batch_size))


# --------------------------------------------------------------------------- one run
def run_one(config: Config, context: Context, *, cached: bool = True) -> dict:
    """Train and evaluate one configuration; its record (sigmas attached for the CWL strategies).

    A cacheable strategy trains its classifier on cached backbone features unless ``cached=False``.
    """
    strategy = strategies.get(config.strategy)
    data = data_of(config, context)
    device = context.device
    start = time.perf_counter()
    train_idx = cdata.few_shot_indices(data.split.train.labels, config.shots, config.run_seed)
    labels = data.split.train.labels[train_idx]
    num_classes = len(data.split.classes)
    use_cache = cached and strategy.cacheable
    # loading a backbone draws from the global RNG (torchvision initialises before loading weights):
    # done before seeding, so a run's head is the same whether or not the backbone was already loaded
    features = features_of(config, context) if use_cache else None
    backbone = None if use_cache else context.backbone(config.arch, config.pretrained)
    seed_everything(config.run_seed)
    attachments = {}
    if features is not None:
        x = features.train_features(train_idx, data.split.train.images, device, config.input_size,
                                    context.eval_batch_size)
        head = fresh_head(features.template_head)
        result = transfer.train(head, transfer.tensor_batches(x, labels, config.batch_size, config.run_seed),
                                strategy, config.lr, None, device, steps=config.steps,
                                weight_decay=config.weight_decay, amp=False)
        acc = transfer.evaluate(head, features.test, data.test.labels, device, raw=True, batch_size=4096)
    else:
        model = transfer.prepare(copy.deepcopy(backbone), strategy, num_classes, fold_bn=strategy.frozen_batch_norm)
        images = data.split.train.images[train_idx].to(device)
        batches = transfer.image_batches(images, labels.to(device), config.batch_size, config.run_seed,
                                         config.input_size)
        result = transfer.train(model, batches, strategy, config.lr, None, device, steps=config.steps,
                                weight_decay=config.weight_decay, backbone_lr_factor=config.backbone_lr_factor,
                                bn_train=config.bn_train)
        acc = transfer.evaluate(model, data.test.images, data.test.labels, device, size=config.input_size,
                                batch_size=context.eval_batch_size)
        if strategy.cwl:
            attachments["sigmas"] = transfer.learned_sigmas(model)
        del model
    losses = result.losses
    shift = sigma_shift(attachments.get("sigmas"))
    return records.new_record(
        NAME, config, device, accuracy=acc, run_seed=config.run_seed, final_loss=losses[-1] if losses else None,
        loss_quartiles=loss_quartiles(losses), classes=num_classes,
        diverged=bool(losses) and not all(v == v and abs(v) != float("inf") for v in losses),
        sigma_shift=shift[0], sigma_shift_max=shift[1],
        train_steps=result.steps, n_train=len(train_idx), n_test=len(data.test), cached_features=use_cache,
        seconds=time.perf_counter() - start, **{records.ATTACHMENTS: attachments})


def loss_quartiles(losses: list[float]) -> list[float] | None:
    """The training loss at the start, at 1/4, 1/2, 3/4 of the budget and at its end (the mean loss of the
    epoch at each point): what the convergence gate reads (:mod:`cwl_lib.gates`)."""
    if not losses:
        return None
    last = len(losses) - 1
    return [float(losses[round(q * last)]) for q in (0.0, 0.25, 0.5, 0.75, 1.0)]




# --------------------------------------------------------------------------- sanity anchor
def linear_probe(configs: list[Config], context: Context, C: float = 1.0) -> pd.DataFrame:
    """The accuracy of a logistic-regression probe (:func:`probe_accuracy`) on the frozen features of each
    few-shot training set the grid's ``freeze`` runs use, on the same test images: what ``freeze`` (a linear
    classifier on the same features, trained by Adam for a budget of steps) should come close to. One row per
    (dataset, arch, shots, repeat)."""
    rows, seen = [], set()
    for config in sorted((c for c in configs if c.strategy == "freeze"), key=order):
        cell = (config.dataset, config.arch, config.shots, config.repeat)
        if cell in seen:
            continue
        seen.add(cell)
        data, features = data_of(config, context), features_of(config, context)
        idx = cdata.few_shot_indices(data.split.train.labels, config.shots, config.run_seed)
        x = features.train_features(idx, data.split.train.images, context.device, config.input_size,
                                    context.eval_batch_size)
        acc = probe_accuracy(x.numpy(), data.split.train.labels[idx].numpy(), features.test.numpy(),
                             data.test.labels.numpy(), C)
        rows.append(dict(zip(("dataset", "arch", "shots", "repeat"), cell), probe=acc))
    return pd.DataFrame(rows)


def probe_accuracy(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, C: float = 1.0) -> float:
    """Test accuracy of an L2 logistic regression on features divided by one number, their standard deviation
    over the training images. Not per-feature standardisation: estimated from one image per class, it blows up
    features that happen to barely vary on those images (on the laptop grid at one image per class it scored
    0.335 against 0.425 for this scaling, with freeze at 0.466); the one scale still keeps lbfgs's iterations
    to a few hundred."""
    scale = float(x.std()) or 1.0
    # one BLAS thread: beside torch's OpenMP threads (spinning under `make book`) two BLAS threads took seconds
    # per fit of a few dozen lbfgs iterations, one takes a twentieth of a second
    with threadpool_limits(limits=1):
        probe = LogisticRegression(C=C, max_iter=5000).fit(x / scale, y)
    return float((probe.predict(x_test / scale) == y_test).mean())


def probe_gap(frame: pd.DataFrame, probe: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, arch, shots): freeze's best accuracy over learning rates, the linear probe's, and their
    difference, averaged over repeats."""
    best = tables.best_over_lr(frame[frame["strategy"] == "freeze"])
    both = best.merge(probe, on=["dataset", "arch", "shots", "repeat"])
    out = both.groupby(["dataset", "arch", "shots"])[["accuracy", "probe"]].mean().reset_index()
    return out.rename(columns={"accuracy": "freeze"}).assign(difference=lambda d: d["freeze"] - d["probe"])


# --------------------------------------------------------------------------- tables
def frame(recs: list[dict]) -> pd.DataFrame:
    """One row per run: configuration fields as columns, then the results."""
    return pd.DataFrame([{**r["config"], **{k: v for k, v in r.items() if k != "config"}} for r in recs])


def table(recs: list[dict]) -> pd.DataFrame:
    """Tables I and II: per (dataset, arch, strategy, shots) the mean, std and repeats of the best
    accuracy over learning rates."""
    return tables.summary(frame(recs))


#: What a run of notebook 03 is, beside the paper's setting (:func:`setting`); the paper gives no training length,
#: image size or factor for the pretrained weights' learning rate ("step 1 decreases" it), so those rows
#: name the paper profile's choice as ours.
SETTING = (
    Row("datasets", lambda p: p["datasets"]),
    Row("backbones", lambda p: p["archs"]),
    Row("ImageNet weights", lambda p: p["pretrained"]),
    Row("images per class", lambda p: p["shots"]),
    Row("repeats", lambda p: p["repeats"]),
    Row("learning rates, frozen strategies", lambda p: p["lr_freeze"]),
    Row("learning rates, finetuning strategies", lambda p: p["lr_finetune"]),
    Row("pretrained weights' rate, x the grid's", lambda p: p["backbone_lr_factor"], stated=False),
    Row("optimizer steps per run", lambda p: p["steps"], stated=False),
    Row("Adam weight decay (coupled L2)", lambda p: p["weight_decay"], stated=False),
    Row("image size", lambda p: p["input_size"], square, stated=False),
    Row("test images", lambda p: p["test_size"]),
)


def setting(p: dict) -> pd.DataFrame:
    """The table "paper | this run | same or stand-in" of notebook 03 for its parameters ``p``."""
    return setting_rows_table(list(SETTING), PARAMETERS, p)


__all__ = ["NAME", "NOTEBOOK", "Config", "PARAMETERS", "configs", "key", "order", "run_one", "frame", "table",
           "linear_probe", "probe_accuracy", "probe_gap", "loss_quartiles",
           "Prepared", "prepare_data", "FeatureCache", "fresh_head", "build_feature_cache",
           "SETTING", "setting"]
