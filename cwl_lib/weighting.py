"""Convolution Weighting Layers (Section IV-A, Eq. 6): one learned scale per output channel.

:func:`insert_weighting` finds, for every convolution of any model, where its output channels end up
unchanged: right after the convolution, or after the BatchNorm that directly consumes it (a scale
placed between a conv and a BN using batch statistics would be normalised away). It learns this by
running one forward pass with hooks rather than from per-architecture tables, so it applies to
torchvision's VGG, ResNet (downsample convolutions included), MobileNet (depthwise included) and
other CNNs alike. Each chosen layer ``L`` is replaced by ``Weighted(L, ConvWeighting(c))``;
:func:`fold_weighting` multiplies the scales back into ``L`` and restores ``L`` itself, so the folded
model has the original architecture, the original state-dict keys and no inference overhead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as nn_module
from torch.nn.utils.fusion import fuse_conv_bn_eval

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class ConvWeighting(nn.Module):
    """Multiplies feature map k by sigma_k; sigma starts at 1, so the layer starts as the identity."""

    def __init__(self, num_channels: int):
        super().__init__()
        self.sigma = nn.Parameter(torch.ones(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigma.view(1, -1, *([1] * (x.dim() - 2)))

    def extra_repr(self) -> str:
        return f"{self.sigma.numel()}"


class Weighted(nn.Sequential):
    """A convolution or BatchNorm followed by its ConvWeighting.

    The forward pass computes ``weighting(layer(x))`` without the elementwise product: per output channel
    ``conv(x; W, b) * s == conv(x; W * s, b * s)`` and ``bn(x; gamma, beta) * s == bn(x; gamma * s,
    beta * s)`` (with running or batch statistics alike), so the scale is applied to the weights, a
    tensor of the layer's parameter size, instead of to the feature map, a tensor of the activations'
    size. Gradients are the same; training keeps no extra activation per CWL and needs no reduction over
    the feature map for sigma's gradient. ``fused = False`` (or a layer of another kind) multiplies the
    feature map instead, which is also what the module structure shows to tracers (see pruning).

    A convolution whose own weight is frozen while its sigma trains also multiplies the feature map: scaling
    its weight would make the weight a function of sigma, so the backward pass would compute the full weight
    gradient of the convolution only to reduce it to sigma's; the product costs one elementwise pass. With
    BatchNorms folded into the convolutions (``freeze+cwl``, MobileNetV2 at 64 px, batches of 10 on 2 CPU
    cores) a step took 126 ms this way against 317 ms scaling the weights.
    """

    fused = True

    def __init__(self, layer: nn.Module, weighting: ConvWeighting):
        super().__init__(layer, weighting)

    @property
    def layer(self) -> nn.Module:
        return self[0]

    @property
    def weighting(self) -> ConvWeighting:
        return self[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer, s = self.layer, self.weighting.sigma
        conv = isinstance(layer, nn.modules.conv._ConvNd) and not layer.transposed
        if not self.fused or not (conv or (isinstance(layer, BATCH_NORMS) and layer.affine)):
            return self.weighting(layer(x))
        if conv and s.requires_grad and not layer.weight.requires_grad and torch.is_grad_enabled():
            return self.weighting(layer(x))
        scaled = {"weight": layer.weight * s.view(-1, *([1] * (layer.weight.dim() - 1)))}
        if layer.bias is not None:
            scaled["bias"] = layer.bias * s
        if _hooked(layer) or (not conv and (layer.training or not layer.track_running_stats)):
            # through the layer's own call: its hooks fire, train-mode BN updates its statistics
            return torch.func.functional_call(layer, scaled, (x,))
        if conv:
            return layer._conv_forward(x, scaled["weight"], scaled.get("bias"))
        return F.batch_norm(x, layer.running_mean, layer.running_var, scaled["weight"], scaled["bias"], False, 0.0,
                            layer.eps)


def _hooked(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or nn_module._global_forward_hooks
                or nn_module._global_forward_pre_hooks)


def _out_channels(layer: nn.Module) -> int:
    return layer.out_channels if isinstance(layer, nn.modules.conv._ConvNd) else layer.num_features


def weighting_sites(model: nn.Module, example_input: torch.Tensor | None = None) -> list[str]:
    """Names of the layers after which a ConvWeighting goes: each conv, or the BN fed directly by it.

    One forward pass on ``example_input`` (default: a 1x3x64x64 zero image) records which BatchNorm
    receives a convolution's output tensor itself.
    """
    pairs = conv_batch_norm_pairs(model, example_input)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    return [pairs.get(name, name) for name in convs]


def conv_batch_norm_pairs(model: nn.Module, example_input: torch.Tensor | None = None) -> dict[str, str]:
    """conv name -> name of the BatchNorm that is the only consumer of its output (convs without one are left
    out), found by one forward pass with hooks on ``example_input`` (default: a 1x3x64x64 zero image)."""
    convs = {m: n for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)}
    bns = {m: n for n, m in model.named_modules() if isinstance(m, BATCH_NORMS)}
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # id(output) -> conv name (tensor kept alive)
    follower: dict[str, str] = {}
    consumers: dict[str, int] = {}

    def conv_hook(mod, _inp, out):
        produced[id(out)] = (convs[mod], out)

    def any_pre_hook(mod, inp):
        for t in inp:
            hit = produced.get(id(t)) if isinstance(t, torch.Tensor) else None
            if hit is not None:
                consumers[hit[0]] = consumers.get(hit[0], 0) + 1
                if mod in bns:
                    follower[hit[0]] = bns[mod]

    handles = [m.register_forward_hook(conv_hook) for m in convs]
    handles += [m.register_forward_pre_hook(any_pre_hook) for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        model.eval()
        if example_input is None:
            param = next(model.parameters())
            example_input = torch.zeros(1, 3, 64, 64, device=param.device, dtype=param.dtype)
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    # a conv whose output also feeds something else keeps its scale on the conv itself
    return {name: follower[name] for name in convs.values() if name in follower and consumers.get(name) == 1}


def insert_weighting(model: nn.Module, example_input: torch.Tensor | None = None) -> nn.Module:
    """Put a ConvWeighting after every convolution (after its BN when one follows); in place, returned."""
    if any(isinstance(m, Weighted) for m in model.modules()):
        raise ValueError("the model already has Convolution Weighting Layers; fold_weighting() it first")
    sites = weighting_sites(model, example_input)
    if not sites:
        raise ValueError("no convolution found in the model: nothing to weight")
    for name in sites:
        layer = model.get_submodule(name)
        ref = next(layer.parameters(), None)
        weighting = ConvWeighting(_out_channels(layer))
        if ref is not None:
            weighting = weighting.to(device=ref.device, dtype=ref.dtype)
        model.set_submodule(name, Weighted(layer, weighting))
    return model


@torch.no_grad()
def fold_batch_norms(model: nn.Module, example_input: torch.Tensor | None = None) -> dict[str, str]:
    """Fold every BatchNorm that alone consumes a convolution's output into that convolution, using the BN's
    running statistics, and replace the BN by ``nn.Identity``; in place. Returns conv name -> BN name.

    Exact (up to rounding) for a model whose BatchNorms stay in eval mode with frozen gamma and beta: the
    frozen strategies (:attr:`cwl_lib.strategies.Strategy.frozen_batch_norm`) train this cheaper network. A
    CWL inserted afterwards sits on the folded conv, where it computes what it computes after the BN
    (``s * bn(conv(x)) == s * conv'(x)``); :func:`rename_sigmas` maps its scales back to the BN's name.
    """
    pairs = conv_batch_norm_pairs(model, example_input)
    for conv_name, bn_name in pairs.items():
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        if not bn.track_running_stats or bn.running_mean is None:
            raise ValueError(f"{bn_name} has no running statistics to fold into {conv_name}")
        fused = fuse_conv_bn_eval(conv.eval(), bn.eval())
        fused.weight.requires_grad_(conv.weight.requires_grad)
        fused.bias.requires_grad_(conv.weight.requires_grad)
        model.set_submodule(conv_name, fused)
        model.set_submodule(bn_name, nn.Identity())
    return pairs


def rename_sigmas(learned: dict[str, torch.Tensor], folded: dict[str, str]) -> dict[str, torch.Tensor]:
    """Scales learned on a network with folded BatchNorms (:func:`fold_batch_norms`), under the names their CWLs
    have in the unfolded network (the BN's, where one was folded)."""
    return {folded.get(name, name): s for name, s in learned.items()}


def load_sigmas(model: nn.Module, learned: dict[str, torch.Tensor]) -> nn.Module:
    """Set the scales of ``model``'s CWLs from ``learned`` (layer name -> scales); every CWL must be named."""
    layers = weighted_layers(model)
    if set(layers) != set(learned):
        raise ValueError(f"the scales name other layers than the model's CWLs: "
                         f"{sorted(set(layers) ^ set(learned))[:4]}...")
    with torch.no_grad():
        for name, w in layers.items():
            w.weighting.sigma.copy_(learned[name])
    return model


def sigma_shift(learned: dict[str, torch.Tensor] | None) -> tuple[float | None, float | None]:
    """How far training moved the CWL scales from 1: mean and largest |sigma - 1| over every scale."""
    if not learned:
        return None, None
    dev = (torch.cat([v.detach().flatten().float().cpu() for v in learned.values()]) - 1).abs()
    return float(dev.mean()), float(dev.max())


def weighted_layers(model: nn.Module) -> dict[str, Weighted]:
    """Each Weighted wrapper by the name its layer had before insertion."""
    return {n: m for n, m in model.named_modules() if isinstance(m, Weighted)}


def sigmas(model: nn.Module) -> dict[str, torch.Tensor]:
    """The learned scale vectors, detached, by layer name."""
    return {n: m.weighting.sigma.detach().clone() for n, m in weighted_layers(model).items()}


def sigma_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [m.weighting.sigma for m in weighted_layers(model).values()]


def batch_norm_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The affine parameters (gamma, beta) of every BatchNorm: empty for a model without BatchNorm."""
    return [p for m in model.modules() if isinstance(m, BATCH_NORMS) for p in m.parameters(recurse=False)]


@torch.no_grad()
def fold_into(layer: nn.Module, sigma: torch.Tensor) -> None:
    """Multiply a conv's output channels (weight, bias) or a BN's affine (gamma, beta) by ``sigma``."""
    s = sigma.to(dtype=next(layer.parameters()).dtype)
    if isinstance(layer, nn.modules.conv._ConvNd):
        if layer.transposed:
            raise NotImplementedError("folding into a transposed convolution is not supported")
        layer.weight.mul_(s.view(-1, *([1] * (layer.weight.dim() - 1))))
        if layer.bias is not None:
            layer.bias.mul_(s)
    elif isinstance(layer, BATCH_NORMS):
        if not layer.affine:
            raise ValueError("cannot fold a scale into a BatchNorm without affine parameters")
        layer.weight.mul_(s)
        layer.bias.mul_(s)
    else:
        raise TypeError(f"cannot fold a ConvWeighting into {type(layer).__name__}")


def fold_weighting(model: nn.Module) -> nn.Module:
    """Fold every sigma into its conv or BN and remove the CWLs; in place, returned.

    The result is the original architecture (same modules, same state-dict keys). Outputs match the
    weighted model in eval mode (for a BN trained in train mode they match because the scale acts after
    normalisation, on gamma and beta alike).
    """
    for name, wrapped in list(weighted_layers(model).items()):
        fold_into(wrapped.layer, wrapped.weighting.sigma)
        model.set_submodule(name, wrapped.layer)
    return model
