"""Algorithm 1 of the paper (Section IV-B): transfer a pretrained CNN with Convolution Weighting Layers.

The steps of Algorithm 1 map onto :func:`prepare` and :func:`train`::

    1  Mf <- FreezeConvFilters(Mp)       requires_grad set per strategy (prepare)
    2  Mf <- ReplaceClassifLayers(Mf, Y) one Linear layer with as many outputs as classes (prepare)
    3  Mf <- InsertWeightConvs(Mf)       a ConvWeighting after each conv / its BN, '+cwl' strategies (prepare)
    4  Mf <- TrainUnfreezedLayers(...)   train(), with param_groups() and set_train_mode()

Strategies are values of :mod:`cwl_lib.strategies` (``freeze``, ``freeze+cwl``, ``finetune``,
``finetune+cwl`` and the ``bn-affine`` baseline); :func:`prepare`, :func:`param_groups` and
:func:`set_train_mode` read their fields. BatchNorm running statistics stay frozen by default
(``bn_train=False``), also when finetuning: batches of a few images give statistics too noisy to replace
ImageNet's; gamma and beta still train when the strategy trains them.

Training choices (written in the book, page 03): Adam without weight decay, a fixed number of epochs over
the few-shot set with a seeded shuffle, no random augmentation (every image is resized and centre-cropped
once, which is also what lets ``freeze`` train its head on cached features), inputs normalised with the
ImageNet mean and std. On a GPU, :func:`train` and :func:`evaluate` run in bfloat16 autocast with
channels_last tensors, and :func:`train` replays its steps from CUDA graphs (:mod:`cwl_lib.graphed`).
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from . import graphed
from .strategies import BACKBONE, BN, HEAD, SIGMA, Strategy
from .strategies import get as strategy_of
from .weighting import (batch_norm_parameters, fold_batch_norms, insert_weighting, rename_sigmas, sigma_parameters,
                        sigmas, weighted_layers)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

HEAD_ATTR = "cwl_head_name"  # attribute prepare() sets on the model: the name of its new classifier
FOLDED_ATTR = "cwl_folded_bn"  # attribute prepare(fold_bn=True) sets: conv name -> the BN folded into it


# --------------------------------------------------------------------------- step 2: the classifier
def classifier_name(model: nn.Module) -> str:
    """The top-level child holding the model's last Linear layer (``fc``, ``classifier``, ``head``...)."""
    name = getattr(model, HEAD_ATTR, None)
    if name is not None:
        return name
    last = None
    for child_name, child in model.named_children():
        if isinstance(child, nn.Linear) or any(isinstance(m, nn.Linear) for m in child.modules()):
            last = child_name
    if last is None:
        raise ValueError(f"{type(model).__name__} has no Linear classifier to replace")
    return last


def replace_classifier(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace the classifier by one Linear layer with ``num_classes`` outputs; in place, returned.

    The layers of the old classifier from its first Linear on are removed (VGG's fc6, fc7 and fc8 go,
    as in the paper: "all convolutional layers ... and a final fully connected layer"); shape-only
    layers before the first Linear (ConvNeXt's LayerNorm and Flatten) are kept, Dropouts are dropped.
    The new Linear is initialised by PyTorch's default (seed the global RNG for reproducible heads).
    """
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    name = classifier_name(model)
    old = model.get_submodule(name)
    ref = next(old.parameters())
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes)
    else:
        kept: list[nn.Module] = []
        linear = None
        for m in old.children():
            if isinstance(m, nn.Linear):
                linear = m
                break
            if not isinstance(m, nn.Dropout):
                kept.append(m)
        if linear is None:
            raise ValueError(f"the classifier {name!r} of {type(model).__name__} has no direct Linear child")
        head = nn.Linear(linear.in_features, num_classes)
        new = nn.Sequential(*kept, head) if kept else head
    new = new.to(device=ref.device, dtype=ref.dtype)
    setattr(model, name, new)
    setattr(model, HEAD_ATTR, name)
    return model


def head(model: nn.Module) -> nn.Module:
    """The classifier module of a prepared model."""
    return model.get_submodule(classifier_name(model))


def split_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``(body, head)``: the model with its classifier replaced by Identity (a copy), and the classifier.

    ``head(body(x)) == model(x)``; used to cache frozen features for the ``freeze`` strategy.
    """
    name = classifier_name(model)
    cls = model.get_submodule(name)
    body = copy.deepcopy(model)
    setattr(body, name, nn.Identity())
    return body, cls


# --------------------------------------------------------------------------- steps 1 and 3
def prepare(backbone: nn.Module, strategy: str | Strategy, num_classes: int,
            example_input: torch.Tensor | None = None, *, fold_bn: bool = False) -> nn.Module:
    """Algorithm 1, steps 1-3: a model ready to train under ``strategy``; modifies ``backbone`` in place.

    Replaces the classifier (:func:`replace_classifier`), inserts CWLs when the strategy trains sigmas
    and sets ``requires_grad`` so that exactly the strategy's parameters train (:func:`set_trainable`).
    ``fold_bn`` folds each BatchNorm into its convolution first (allowed only for a strategy that leaves
    BatchNorm frozen, :attr:`Strategy.frozen_batch_norm`): the same function, a third faster to train on
    a CPU for MobileNetV2; :func:`folded_batch_norms` gives the names the CWLs would have without it.
    """
    strategy = strategy_of(strategy)
    if strategy.needs_bn and not batch_norm_parameters(backbone):
        raise ValueError(f"strategy {strategy.name!r} trains BatchNorm layers; {type(backbone).__name__} has none")
    if fold_bn:
        if not strategy.frozen_batch_norm:
            raise ValueError(f"strategy {strategy.name!r} trains BatchNorm or its statistics: it cannot be folded")
        setattr(backbone, FOLDED_ATTR, fold_batch_norms(backbone.eval(), example_input))
    model = replace_classifier(backbone, num_classes)
    if strategy.cwl:
        insert_weighting(model, example_input)
    return set_trainable(model, strategy)


def folded_batch_norms(model: nn.Module) -> dict[str, str]:
    """conv name -> BN name for the BatchNorms :func:`prepare` folded (empty when it folded none)."""
    return dict(getattr(model, FOLDED_ATTR, {}))


def rename_sigmas_of(model: nn.Module) -> dict[str, nn.Module]:
    """The CWL wrappers of a prepared model by the name their layer has in the unfolded network."""
    folded = folded_batch_norms(model)
    return {folded.get(n, n): w for n, w in weighted_layers(model).items()}


def learned_sigmas(model: nn.Module) -> dict[str, torch.Tensor]:
    """The CWL scales of a prepared model (float32, CPU), named as in the unfolded network."""
    return {k: v.float().cpu() for k, v in rename_sigmas(sigmas(model), folded_batch_norms(model)).items()}


def parameter_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Every parameter of a prepared model under the group it belongs to (:mod:`cwl_lib.strategies`)."""
    ids = {HEAD: {id(p) for p in head(model).parameters()}, SIGMA: {id(p) for p in sigma_parameters(model)},
           BN: {id(p) for p in batch_norm_parameters(model)}}
    groups: dict[str, list] = {HEAD: [], SIGMA: [], BN: [], BACKBONE: []}
    for p in model.parameters():
        groups[next((g for g in (HEAD, SIGMA, BN) if id(p) in ids[g]), BACKBONE)].append(p)
    return groups


def set_trainable(model: nn.Module, strategy: str | Strategy) -> nn.Module:
    """``requires_grad`` on exactly the groups the strategy trains (BatchNorm's with the backbone's when
    it finetunes); in place, returned."""
    strategy = strategy_of(strategy)
    for group, params in parameter_groups(model).items():
        train = group in strategy.trains or (group == BN and strategy.finetunes)
        for p in params:
            p.requires_grad_(train)
    return model


def trainable_counts(model: nn.Module) -> dict[str, int]:
    """How many numbers train in each parameter group of a prepared model (:func:`parameter_groups`)."""
    return {g: sum(p.numel() for p in params if p.requires_grad) for g, params in parameter_groups(model).items()}


def trainable_names(model: nn.Module) -> list[str]:
    """Names of the parameters that train."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def set_train_mode(model: nn.Module, strategy: str | Strategy, bn_train: bool = False) -> nn.Module:
    """The mode to train in: eval mode (BN on its running statistics, no dropout), except for strategies
    that may use batch statistics (:attr:`Strategy.may_use_batch_statistics`) with ``bn_train=True``.

    The frozen strategies always keep every BatchNorm on its ImageNet running statistics: freezing
    means frozen weights *and* frozen normalisation. The new head is a Linear layer, which has no mode.
    """
    model.train(bool(bn_train) and strategy_of(strategy).may_use_batch_statistics)
    return model


def param_groups(model: nn.Module, lr: float, backbone_lr_factor: float) -> list[dict]:
    """Optimizer parameter groups: head and sigmas at ``lr``; pretrained weights (BN affine included) at
    ``lr * backbone_lr_factor``.

    Only parameters with ``requires_grad`` are included. For a bare module without a prepared head
    (e.g. a classifier trained on cached features) every trainable parameter is in the ``head`` group.
    Each group carries a ``name``: ``head``, ``sigma``, ``bn`` or ``backbone``.
    """
    if getattr(model, HEAD_ATTR, None) is None:
        return [{"name": HEAD, "params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    rates = {HEAD: lr, SIGMA: lr, BN: lr * backbone_lr_factor, BACKBONE: lr * backbone_lr_factor}
    groups = {k: [p for p in v if p.requires_grad] for k, v in parameter_groups(model).items()}
    return [{"name": k, "params": v, "lr": rates[k]} for k, v in groups.items() if v]


# --------------------------------------------------------------------------- inputs
def preprocess(images: torch.Tensor, size: int | None = None, device: torch.device | str | None = None,
               channels_last: bool = False) -> torch.Tensor:
    """uint8 images ``N x C x H x W`` (C = 1 or 3) -> normalised float32 RGB at ``size`` x ``size``.

    Done per batch, so test sets stay in uint8. Grey images are repeated on three channels; resizing
    is bilinear with antialiasing.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    if images.dim() == 3:
        images = images.unsqueeze(1)
    x = images.to(device=device, non_blocking=True).float().div_(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean, std = _normalisation(x.device)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


_NORMALISATION: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def _normalisation(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std on ``device``, made once: a copy to the GPU per batch would wait for the
    GPU to finish its queued work, and a few-shot step is short enough for that wait to dominate."""
    if device not in _NORMALISATION:
        _NORMALISATION[device] = (torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1),
                                  torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1))
    return _NORMALISATION[device]


def seeded_batches(n: int, batch_size: int, seed: int,
                   device: torch.device | str | None = None) -> Callable[[int], Iterator[torch.Tensor]]:
    """``order(epoch)`` yields index tensors: a shuffle of ``range(n)`` seeded by (seed, epoch), in batches.

    The same function drives the cached-feature and the image paths, so they see identical batches. The
    shuffle is drawn on the CPU (the same on every machine) and moved to ``device`` once per epoch.
    """

    def order(epoch: int) -> Iterator[torch.Tensor]:
        g = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
        perm = torch.randperm(n, generator=g)
        if device is not None:
            perm = perm.to(device)
        starts = list(range(0, n, batch_size))
        if len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()  # a batch of one image breaks train-mode BatchNorm: merge it into the previous
        for j, i in enumerate(starts):
            end = starts[j + 1] if j + 1 < len(starts) else n
            yield perm[i:end]

    return order


def image_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int,
                  size: int | None = None) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """A ``batches(epoch)`` source for :func:`train` over uint8 images, preprocessed per batch."""
    order = seeded_batches(len(labels), batch_size, seed, images.device)
    labels = labels.to(images.device)

    def batches(epoch: int):
        for idx in order(epoch):
            yield preprocess(images[idx], size), labels[idx]

    return batches


def tensor_batches(x: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int):
    """A ``batches(epoch)`` source over ready float tensors (e.g. cached features)."""
    order = seeded_batches(len(labels), batch_size, seed, x.device)

    def batches(epoch: int):
        for idx in order(epoch):
            yield x[idx], labels[idx]

    return batches


# --------------------------------------------------------------------------- step 4: training
def full_precision(logits: torch.Tensor) -> torch.Tensor:
    """Logits for the loss: autocast's bfloat16 raised to float32; float32 and float64 as they are."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


@dataclass
class TrainResult:
    losses: list[float]  # mean training loss per epoch
    steps: int
    seconds: float


def autocast(device: torch.device, enabled: bool | None):
    """bfloat16 autocast on a GPU (``enabled=None``: whenever the device is CUDA); on the CPU, nothing."""
    use = device.type == "cuda" if enabled is None else enabled
    if use and device.type == "cuda":
        # no weight-cast cache: a CUDA graph cannot capture it, and each weight is cast once per step anyway
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()


#: The optimizers a transfer may use: Adam with coupled L2 weight decay (``torch.optim.Adam(weight_decay=...)``,
#: the gradient of ``wd/2 ||w||^2`` added before Adam's normalisation), AdamW (decoupled: each step also
#: shrinks every weight by ``lr * wd``), and SGD with momentum 0.9 (coupled L2). The paper names none.
OPTIMIZERS = ("adam", "adamw", "sgd")


def make_optimizer(model: nn.Module, lr: float, backbone_lr_factor: float,
                   weight_decay: float = 0.0, optimizer: str = "adam") -> torch.optim.Optimizer:
    """The optimizer over :func:`param_groups`; on a GPU its fused kernel (one launch per step, not one per
    tensor), capturable in a CUDA graph (:mod:`cwl_lib.graphed`)."""
    groups = param_groups(model, lr, backbone_lr_factor)
    if not groups:
        raise ValueError("nothing to train: no parameter has requires_grad")
    on_gpu = all(p.is_cuda for g in groups for p in g["params"])
    if optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, fused=on_gpu or None, capturable=on_gpu)
    if optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=on_gpu or None, capturable=on_gpu)
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay, fused=on_gpu or None)
    raise ValueError(f"optimizer is one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")


def train(model: nn.Module, batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
          strategy: str, lr: float, epochs: int | None, device: torch.device | str = "cpu", *,
          steps: int | None = None,
          backbone_lr_factor: float = 0.1, weight_decay: float = 0.0, optimizer: str = "adam",
          amp: bool | None = None, bn_train: bool = False,
          channels_last: bool | None = None, progress: Callable[[int, float], None] | None = None,
          cuda_graphs: bool | None = None) -> TrainResult:
    """Algorithm 1, step 4: train the unfrozen parameters with cross-entropy and Adam.

    ``batches(epoch)`` yields ``(x, y)`` float inputs and int64 labels (any source: images, cached
    features...). The budget is ``epochs`` passes over them, or, with ``steps``, exactly that many optimizer
    steps (epochs follow each other, each with its own shuffle, until then; the last may stop part-way):
    a budget in steps gives 1 and 10 images per class the same number of updates. ``optimizer`` is one of
    :data:`OPTIMIZERS`, ``weight_decay`` its penalty on every trained parameter. ``bn_train`` lets the finetune strategies use
    batch statistics (see :func:`set_train_mode`). ``amp``/``channels_last`` default to on for CUDA, off on the CPU. The model is left
    in eval mode. A non-finite loss stops training early (a too-large learning rate of the grid); the
    run is then evaluated as it stands, so the grid search simply does not pick it. On a GPU the steps
    are replayed from CUDA graphs (:mod:`cwl_lib.graphed`; ``cuda_graphs=False`` or
    ``CWL_CUDA_GRAPHS=0`` turns that off).
    """
    device = torch.device(device)
    cl = device.type == "cuda" if channels_last is None else channels_last
    model.to(device)
    if cl:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, lr, backbone_lr_factor, weight_decay, optimizer)

    def loss_of(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp):
            return F.cross_entropy(full_precision(m(x)), y)

    # graphs capture Adam's and AdamW's capturable step; SGD's momentum path is not checked on them
    use_graphs = (graphed.enabled(device, bn_train) and optimizer != "sgd") if cuda_graphs is None else cuda_graphs
    graph_step = graphed.GraphedStep(model, opt, loss_of) if use_graphs else None
    losses: list[float] = []
    done = 0
    start = time.perf_counter()
    if steps is None and epochs is None:
        raise ValueError("give a budget: epochs or steps")
    if steps is not None and steps < 1:
        raise ValueError(f"steps is a number of optimizer steps >= 1, got {steps}")
    epoch = 0
    while (done < steps) if steps is not None else (epoch < epochs):
        set_train_mode(model, strategy, bn_train)
        # the loss is summed on the device and read once per epoch: reading it per step would make the
        # CPU wait for every step, instead of queuing the next one while the GPU computes
        total, count = torch.zeros((), device=device, dtype=torch.float64), 0
        for x, y in batches(epoch):
            if steps is not None and done >= steps:
                break
            x = x.to(device, non_blocking=True)
            if cl and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True).long()
            if graph_step is not None:
                loss = graph_step(x, y)
            else:
                loss = loss_of(model, x, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            done += 1
            total += loss.detach() * len(y)
            count += len(y)
        if count == 0:
            raise ValueError("batches(epoch) yielded no batch: nothing to train on")
        mean = float(total) / count
        losses.append(mean)
        if progress is not None:
            progress(epoch, mean)
        epoch += 1
        if not math.isfinite(mean):
            break
    model.eval()
    return TrainResult(losses=losses, steps=done, seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, device: torch.device | str = "cpu", *,
            size: int | None = None, batch_size: int = 256, amp: bool | None = None,
            raw: bool = False) -> torch.Tensor:
    """Model outputs (on the CPU, float32) for uint8 ``images`` preprocessed per batch, in eval mode.

    ``raw=True`` feeds ``images`` as they are (float features, for a classifier on cached features).
    """
    device = torch.device(device)
    cl = device.type == "cuda" and not raw
    was = model.training
    model.eval().to(device)
    if cl:
        model.to(memory_format=torch.channels_last)
    outs = []
    for i in range(0, len(images), batch_size):
        chunk = images[i:i + batch_size]
        x = chunk.to(device).float() if raw else preprocess(chunk, size, device, channels_last=cl)
        with autocast(device, amp):
            outs.append(model(x).float().cpu())
    model.train(was)
    if not outs:
        raise ValueError("no images to predict")
    return torch.cat(outs)


def correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device | str = "cpu",
            *, size: int | None = None, batch_size: int = 256, amp: bool | None = None, raw: bool = False) -> torch.Tensor:
    """Whether each image's top-1 prediction is its label (bool, CPU): for paired tests on one test set."""
    logits = predict(model, images, device, size=size, batch_size=batch_size, amp=amp, raw=raw)
    return logits.argmax(1) == labels.cpu()


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device | str = "cpu",
             *, size: int | None = None, batch_size: int = 256, amp: bool | None = None, raw: bool = False) -> float:
    """Top-1 accuracy over uint8 ``images`` (or float features with ``raw=True``), in large batches."""
    hits = correct(model, images, labels, device, size=size, batch_size=batch_size, amp=amp, raw=raw)
    return float(hits.float().mean())


@torch.no_grad()
def extract_features(body: nn.Module, images: torch.Tensor, device: torch.device | str = "cpu", *,
                     size: int | None = None, batch_size: int = 256, amp: bool | None = None) -> torch.Tensor:
    """Frozen features ``body(x)`` (float32, CPU) for uint8 images; see :func:`split_head`."""
    return predict(body, images, device, size=size, batch_size=batch_size, amp=amp)


__all__ = [
    "classifier_name", "replace_classifier", "head", "split_head", "prepare", "parameter_groups", "set_trainable",
    "trainable_counts", "trainable_names", "set_train_mode", "param_groups", "preprocess", "seeded_batches", "image_batches",
    "tensor_batches", "TrainResult", "autocast", "make_optimizer", "train", "predict", "correct", "evaluate",
    "extract_features", "IMAGENET_MEAN", "IMAGENET_STD",
]
