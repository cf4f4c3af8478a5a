"""Train the runs of one grid cell together, as one vectorised model (``torch.func.vmap``).

A cell of the paper grid, (dataset, arch, strategy, shots), is run for every learning rate of the grid
and ten repeats. These runs share the architecture, the number of training images and hence the number
and size of their steps; they differ in learning rate, few-shot sample, head initialisation and batch
order. Where a step is too small to keep a GPU busy (bound by kernel launches and Python rather than by
arithmetic), one run after another wastes most of it, and training the runs together recovers it.

Measured on an H100 at the paper's setting (224x224, batches of 32; benchmarks/README.md), 8 runs
together were *not* faster than one after another: such a step already keeps the GPU busy, and a
trained convolution becomes a grouped one, which cuDNN runs slower. :func:`cwl_lib.experiments.run_grid`
therefore runs one at a time unless asked (``batch_runs``).

Here the trainable parameters of K runs are stacked along a new leading dimension and one vmapped
forward and backward serves all K: weights that every run keeps frozen stay unbatched, so a frozen
convolution is one convolution over K x 32 images; weights that train become grouped convolutions.
Adam then updates each run with its own learning rate. The result equals K separate
:func:`cwl_lib.transfer.train` runs, run after run (tested on real torchvision architectures), including
the rule that a run whose epoch loss is not finite stops there (its parameters are restored to their
state at that epoch's end, as the sequential loop would leave them).

Not vectorised: BatchNorm on batch statistics (``bn_train``), whose running-statistic updates vmap
cannot batch (:func:`check_batchable` says so, and the grid runs those one at a time), and weight
decay (the grid's Adam has none, and :func:`train_runs` takes none).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from . import transfer


@dataclass
class Run:
    """One run of a cell: its learning rate, its seed (batch order) and its few-shot training set."""

    lr: float
    seed: int
    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor
    head: dict[str, torch.Tensor]  # initial state of the new classifier, names relative to the model


@dataclass
class Trained:
    """K runs trained together: stacked parameters (name -> K x ...) and each run's epoch losses."""

    model: nn.Module  # the template whose structure the parameters fill
    params: dict[str, torch.Tensor]
    frozen: dict[str, torch.Tensor]
    losses: list[list[float]]
    steps_per_epoch: int
    seconds: float

    def steps(self, k: int) -> int:
        """Optimizer steps run ``k`` took (fewer than the others' when it stopped on a non-finite loss)."""
        return self.steps_per_epoch * len(self.losses[k])

    def load(self, k: int) -> nn.Module:
        """The template with run ``k``'s parameters copied in (for sigmas, folding, saving)."""
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name in self.params:
                    p.copy_(self.params[name][k])
        return self.model


def check_batchable(bn_train: bool = False) -> None:
    if bn_train:
        raise ValueError("runs with BatchNorm batch statistics (bn_train=True) cannot be vectorised; run them one by one")


def _stack(tensors: list[torch.Tensor], channels_last: bool) -> torch.Tensor:
    out = torch.stack(tensors)
    if channels_last and out.dim() == 5:  # K stacked conv weights, each slice channels_last
        k, o, i, h, w = out.shape
        cl = torch.empty((k, o, h, w, i), dtype=out.dtype, device=out.device).permute(0, 1, 4, 2, 3)
        out = cl.copy_(out)
    return out


def _rates(model: nn.Module, strategy: str, backbone_lr_factor: float) -> dict[str, float]:
    """Name -> learning-rate factor of each trainable parameter (head and sigma 1, pretrained weights lowered)."""
    ids = {id(p): n for n, p in model.named_parameters()}
    return {ids[id(p)]: g["lr"] for g in transfer.param_groups(model, strategy, 1.0, backbone_lr_factor)
            for p in g["params"]}


def train_runs(model: nn.Module, runs: list[Run], strategy: str, epochs: int, batch_size: int,
               device: torch.device | str, *, input_size: int | None = None, backbone_lr_factor: float = 0.1,
               amp: bool | None = None, channels_last: bool | None = None, betas=(0.9, 0.999),
               eps: float = 1e-8) -> Trained:
    """Train ``runs`` of a model prepared by :func:`cwl_lib.transfer.prepare` together.

    Each run sees exactly what :func:`transfer.train` over ``transfer.image_batches(run.images,
    run.labels, batch_size, run.seed, input_size)`` would: its seeded batch order, Adam at its learning
    rate (``backbone_lr_factor`` times lower for pretrained weights), eval-mode BatchNorm.
    """
    device = torch.device(device)
    cl = device.type == "cuda" if channels_last is None else channels_last
    n = len(runs[0].labels)
    if any(len(r.labels) != n for r in runs):
        raise ValueError("runs trained together need training sets of one size")
    k_runs = len(runs)
    model = model.to(device)
    transfer.set_train_mode(model, strategy, bn_train=False)
    rates = _rates(model, strategy, backbone_lr_factor)
    head_prefix = transfer.classifier_name(model) + "."
    params: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if name not in rates:
            continue
        local = name[len(head_prefix):] if name.startswith(head_prefix) else None
        slices = [r.head[local].to(device) if local is not None else p.detach() for r in runs]
        params[name] = _stack(slices, cl).requires_grad_(True)
    frozen = {n_: t.detach() for n_, t in list(model.named_parameters()) + list(model.named_buffers())
              if n_ not in params}
    lr = torch.tensor([r.lr for r in runs], device=device)
    lrs = {n_: (lr * rates[n_]).view(-1, *([1] * (p.dim() - 1))) for n_, p in params.items()}
    names = list(params)
    plist = [params[n_] for n_ in names]
    exp_avg = [torch.zeros_like(p) for p in plist]
    exp_avg_sq = [torch.zeros_like(p) for p in plist]

    def one(p, x):
        return functional_call(model, (p, frozen), (x,))

    forward = vmap(one, in_dims=(0, 0))
    orders = [transfer.seeded_batches(n, batch_size, r.seed, device) for r in runs]
    images = [r.images.to(device) for r in runs]
    labels = [r.labels.to(device).long() for r in runs]
    losses: list[list[float]] = [[] for _ in runs]
    active = [True] * k_runs
    saved: dict[int, list[torch.Tensor]] = {}
    steps = per_epoch = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        total = torch.zeros(k_runs, device=device, dtype=torch.float64)
        count = 0
        for idx in zip(*(o(epoch) for o in orders)):
            b = len(idx[0])
            x = torch.cat([im[i] for im, i in zip(images, idx)])
            x = transfer.preprocess(x, input_size, device, channels_last=cl).to(plist[0].dtype)
            x = x.view(k_runs, b, *x.shape[1:])
            y = torch.stack([lab[i] for lab, i in zip(labels, idx)])
            with transfer._autocast(device, amp):
                logits = transfer.full_precision(forward(params, x))
            per_run = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(k_runs, b).mean(1)
            grads = torch.autograd.grad(per_run.sum(), plist)
            steps += 1
            _adam_step(plist, list(grads), exp_avg, exp_avg_sq, [lrs[n_] for n_ in names], steps, betas, eps)
            total += per_run.detach().to(total.dtype) * b
            count += b
        per_epoch = per_epoch or steps
        means = (total / max(count, 1)).tolist()
        for k, m in enumerate(means):
            if active[k]:
                losses[k].append(m)
                if not math.isfinite(m):
                    active[k] = False
                    saved[k] = [p[k].detach().clone() for p in plist]
        if not any(active):
            break
    with torch.no_grad():
        for k, values in saved.items():
            for p, v in zip(plist, values):
                p[k].copy_(v)
    for p in plist:
        p.requires_grad_(False)
    model.eval()
    return Trained(model, params, frozen, losses, per_epoch, time.perf_counter() - start)


@torch.no_grad()
def _adam_step(params, grads, exp_avg, exp_avg_sq, lrs, step, betas, eps) -> None:
    """torch.optim.Adam's update (no weight decay, no amsgrad), with a per-run learning rate tensor."""
    beta1, beta2 = betas
    torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sq, beta2)
    torch._foreach_addcmul_(exp_avg_sq, grads, grads, 1 - beta2)
    bias1 = 1 - beta1 ** step
    denom = torch._foreach_sqrt(exp_avg_sq)
    torch._foreach_div_(denom, math.sqrt(1 - beta2 ** step))
    torch._foreach_add_(denom, eps)
    update = torch._foreach_div(exp_avg, denom)
    torch._foreach_mul_(update, [lr / bias1 for lr in lrs])
    torch._foreach_sub_(params, update)


@torch.no_grad()
def predict_runs(trained: Trained, images: torch.Tensor, device: torch.device | str, *, size: int | None = None,
                 batch_size: int = 256, amp: bool | None = None) -> torch.Tensor:
    """Logits ``K x N x classes`` (CPU, float32) of every run on uint8 ``images``, which all runs share.

    ``batch_size`` counts images over all K runs (K times fewer test images per forward pass), so the
    activation memory stays that of one model's evaluation batch.
    """
    device = torch.device(device)
    cl = device.type == "cuda"
    model = trained.model.eval()

    def one(p, x):
        return functional_call(model, (p, trained.frozen), (x,))

    forward = vmap(one, in_dims=(0, None))
    outs = []
    step = max(batch_size // len(next(iter(trained.params.values()))), 1)  # batch_size images in all runs
    for i in range(0, len(images), step):
        x = transfer.preprocess(images[i:i + step], size, device, channels_last=cl)
        x = x.to(next(iter(trained.params.values())).dtype)
        with transfer._autocast(device, amp):
            outs.append(forward(trained.params, x).float().cpu())
    if not outs:
        raise ValueError("no images to predict")
    return torch.cat(outs, dim=1)


__all__ = ["Run", "Trained", "check_batchable", "train_runs", "predict_runs"]
