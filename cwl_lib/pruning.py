"""Pruning by the learned weights (Section IV-C, Table IV, Fig. 3): drop the channels with |sigma| < tau.

:func:`prune` returns a network that is truly smaller: the filters of a pruned channel, its BatchNorm
entries, its sigma entry and the matching input channels of every layer that reads it (the next
convolution, a depthwise convolution, the classifier) are gone. The surgery is Torch-Pruning's
:class:`~torch_pruning.DependencyGraph`, which traces the model once and knows, for any channel, every
tensor slice tied to it; this module only decides *which* channels go (the policy).

Coupled channels. A residual add (ResNet, MobileNetV2) or a depthwise convolution ties channel k of
several layers together: they can only be removed together. Each such set of layers is one *group*;
the layers in it that carry a CWL are its *members*. Our rule:

* a channel of a group is removed when **every** member's |sigma_k| is under tau (its score, the
  largest member |sigma_k|, is under tau);
* a member whose |sigma_k| is under tau in a channel that stays has that sigma set to 0: its filter
  still exists but contributes nothing, which is the paper's rule "remove filter V_k" applied where
  the tensor cannot shrink;
* at least ``min_channels`` channels of every group stay, those with the largest score; such rescued
  channels keep their sigmas unchanged (zeroing them would keep a channel only to make it dead).

With this rule the pruned network computes exactly what the unpruned network computes once every
sigma under tau (outside rescued channels) is set to 0 (``tests/test_pruning.py`` checks it on
VGG-16, ResNet-50 and MobileNetV2): a removed channel is exactly zero in the masked network.

The pruned network keeps its CWLs (so it can be finetuned and pruned again); ``fold=True`` folds
them for deployment. :func:`prune` also returns a *plan*, a JSON-friendly dict, with which
:func:`apply_plan` reshapes a freshly built unpruned model so that a plain ``state_dict`` of the
pruned one loads into it (:func:`save_pruned` / :func:`load_pruned`, ``weights_only=True``).
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .weighting import ConvWeighting, Weighted, fold_weighting, insert_weighting, weighted_layers

PLAN_FORMAT = 1


# --------------------------------------------------------------------------- inputs
def _check_args(model: nn.Module, tau: float, min_channels: int, round_to: int = 1) -> None:
    if not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a positive number (a threshold on |sigma|), got {tau!r}")
    if not isinstance(min_channels, int) or min_channels < 1:
        raise ValueError(f"min_channels must be an integer >= 1 (a layer keeps at least one channel), got {min_channels!r}")
    if not isinstance(round_to, int) or round_to < 1:
        raise ValueError(f"round_to must be an integer >= 1 (1: no rounding), got {round_to!r}")
    if not weighted_layers(model):
        raise ValueError(
            "the model has no Convolution Weighting Layers, so there are no sigmas to threshold; "
            "insert them with cwl_lib.weighting.insert_weighting (or transfer.prepare with a '+cwl' strategy) "
            "and train them first"
        )


def _example(model: nn.Module, example_input: torch.Tensor | None) -> torch.Tensor:
    if example_input is not None:
        return example_input
    ref = next(model.parameters())
    return torch.zeros(1, 3, 64, 64, device=ref.device, dtype=ref.dtype)


def _unwrap(model: nn.Module) -> dict[str, nn.Module]:
    """Put each Weighted's layer back in its place; return the site layers by name (CWLs dropped)."""
    sites = {}
    for name, wrapped in list(weighted_layers(model).items()):
        model.set_submodule(name, wrapped.layer)
        sites[name] = wrapped.layer
    return sites


@contextlib.contextmanager
def _traceable(model: nn.Module):
    """Torch-Pruning traces autograd and leaves the model in eval mode: grant grads, then restore both."""
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training = model.training
    for p in model.parameters():
        p.requires_grad_(True)
    try:
        with torch.enable_grad():
            yield
    finally:
        # pruning replaces Parameters (same names, new objects), so restore by name
        for n, p in model.named_parameters():
            p.requires_grad_(flags.get(n, True))
        model.train(was_training)


def _graph(model: nn.Module, example_input: torch.Tensor):
    import torch_pruning as tp

    return tp.DependencyGraph().build_dependency(model, example_inputs=example_input, verbose=False)


def _rewrap(model: nn.Module, sigmas: dict[str, torch.Tensor | None], requires_grad: dict[str, bool]) -> None:
    for name, sigma in sigmas.items():
        layer = model.get_submodule(name)
        ref = next(layer.parameters())
        n = layer.out_channels if isinstance(layer, nn.modules.conv._ConvNd) else layer.num_features
        cwl = ConvWeighting(n).to(device=ref.device, dtype=ref.dtype)
        if sigma is not None:
            cwl.sigma.data.copy_(sigma)
        cwl.sigma.requires_grad_(requires_grad.get(name, True))
        model.set_submodule(name, Weighted(layer, cwl))


# --------------------------------------------------------------------------- the policy
@dataclass
class _Member:
    site: str
    local: list[int]  # channel index in the member layer
    root: list[int]  # the same channels, numbered as in the group's root layer


def _groups(dg, sites: dict[str, nn.Module], names: dict[nn.Module, str]):
    """(root name, root layer, out-channel count, CWL members) for every group holding a CWL site."""
    site_of = {id(m): n for n, m in sites.items()}
    for group in dg.get_all_groups():
        members = []
        for item in group:
            module = item.dep.target.module
            if id(module) in site_of and dg.is_out_channel_pruning_fn(item.dep.handler):
                if any(m.site == site_of[id(module)] for m in members):
                    continue
                members.append(_Member(site_of[id(module)], [int(i) for i in item.idxs],
                                       [int(i) for i in item.root_idxs]))
        if members:
            root = group[0].dep.target.module
            yield names[root], root, len(group[0].idxs), members


def _decide(n: int, members: list[_Member], sig: dict[str, torch.Tensor], tau: float, min_channels: int,
            round_to: int = 1):
    """Removed root channels, and the root channels rescued by ``min_channels`` or ``round_to``."""
    score = [math.inf] * n  # a channel no CWL sees is never removed
    seen = [False] * n
    for m in members:
        mag = sig[m.site].abs()
        for li, ri in zip(m.local, m.root):
            v = float(mag[li])
            score[ri] = v if not seen[ri] else max(score[ri], v)
            seen[ri] = True
    below = [r for r in range(n) if score[r] < tau]
    target = max(min(min_channels, n), n - len(below))
    target = min(n, -(-target // round_to) * round_to)
    rescued: list[int] = []
    if n - len(below) < target:
        # every channel at or above tau ranks before every channel under it, so the top `target` keep them all
        order = sorted(range(n), key=lambda r: (-score[r], r))  # largest |sigma| first, ties by index
        kept = set(order[:target])
        rescued = sorted(set(below) & kept)
        below = [r for r in below if r not in kept]
    return below, rescued


# --------------------------------------------------------------------------- prune
def prune(model: nn.Module, tau: float, min_channels: int = 1, *, round_to: int = 1,
          example_input: torch.Tensor | None = None, fold: bool = False) -> tuple[nn.Module, dict]:
    """A copy of ``model`` without the channels whose |sigma| < tau, and its channel plan.

    ``model`` must carry CWLs (:mod:`cwl_lib.weighting`); it is not modified. Coupled channels follow
    the rule in this module's docstring. ``example_input`` (default: one 3x64x64 zero image) is only
    used to trace the graph. The result keeps its CWLs, with the surviving sigma entries, unless
    ``fold`` (then the plain smaller architecture). ``round_to`` > 1 keeps a multiple of that many channels
    per group (rescuing the largest |sigma| under tau, like ``min_channels``): CPU and GPU kernels run
    faster on channel counts that are multiples of 8 or 16. Returns ``(pruned, plan)``; see
    :func:`apply_plan`.
    """
    _check_args(model, tau, min_channels, round_to)
    work = copy.deepcopy(model)
    x = _example(work, example_input)
    wl = weighted_layers(work)
    sig = {n: w.weighting.sigma.detach().clone() for n, w in wl.items()}
    sig_grad = {n: w.weighting.sigma.requires_grad for n, w in wl.items()}
    sites = _unwrap(work)
    names = {m: n for n, m in work.named_modules()}

    with _traceable(work):
        dg = _graph(work, x)
        decisions = []
        for root_name, root, n, members in list(_groups(dg, sites, names)):
            removed, rescued = _decide(n, members, sig, tau, min_channels, round_to)
            decisions.append((root_name, root, removed, rescued, members))
        dropped: dict[str, set[int]] = {n: set() for n in sites}  # a layer split over groups gathers all
        for root_name, root, removed, rescued, members in decisions:
            gone, spared = set(removed), set(rescued)
            for m in members:
                s = sig[m.site]
                zero = [li for li, ri in zip(m.local, m.root)
                        if ri not in gone and ri not in spared and float(s[li].abs()) < tau]
                s[zero] = 0.0
                dropped[m.site] |= {li for li, ri in zip(m.local, m.root) if ri in gone}
        kept_local = {n: [i for i in range(len(sig[n])) if i not in dropped[n]] for n in sites}
        zeroed: dict[str, list[int]] = {}
        for root_name, root, removed, _, _ in decisions:
            if removed:
                pruner = dg.get_pruner_of_module(root)
                dg.get_pruning_group(root, pruner.prune_out_channels, removed).prune()

    new_sig = {}
    for name in sites:
        new_sig[name] = sig[name][kept_local[name]]
        zeroed[name] = [i for i, v in enumerate(new_sig[name].tolist()) if v == 0.0]
    _rewrap(work, new_sig, sig_grad)
    if fold:
        fold_weighting(work)
    plan = {
        "format": PLAN_FORMAT,
        "tau": float(tau),
        "min_channels": int(min_channels),
        "round_to": int(round_to),
        "weighting": not fold,
        "groups": [{"root": r, "removed": list(rem)} for r, _, rem, _, _ in decisions if rem],
        "kept": kept_local,
        "rescued": {r: list(res) for r, _, _, res, _ in decisions if res},
        "zeroed": {n: z for n, z in zeroed.items() if z},
        "input_shape": list(x.shape[1:]),
    }
    return work, plan


def apply_plan(model: nn.Module, plan: dict, example_input: torch.Tensor | None = None) -> nn.Module:
    """Reshape an unpruned model (same architecture and head as the one pruned) as ``plan`` says; in place.

    The weights are placeholders: load the pruned model's ``state_dict`` afterwards. ``model`` may come
    with or without CWLs; it ends with them exactly when the pruned model had them (``plan['weighting']``).
    """
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise ValueError(f"not a channel plan of format {PLAN_FORMAT} (made by cwl_lib.pruning.prune)")
    if example_input is None and plan.get("input_shape"):
        ref = next(model.parameters())
        example_input = torch.zeros(1, *plan["input_shape"], device=ref.device, dtype=ref.dtype)
    if not weighted_layers(model):
        insert_weighting(model, example_input)
    sites = _unwrap(model)
    unknown = set(plan["kept"]) - set(sites)
    if unknown:
        raise ValueError(f"the plan names layers this model has no CWL at ({sorted(unknown)[:3]}...): "
                         "build the same architecture, with the same classifier, as the pruned model")
    modules = dict(model.named_modules())
    with _traceable(model):
        dg = _graph(model, _example(model, example_input))
        for g in plan["groups"]:
            root = modules[g["root"]]
            pruner = dg.get_pruner_of_module(root)
            dg.get_pruning_group(root, pruner.prune_out_channels, [int(i) for i in g["removed"]]).prune()
    if plan["weighting"]:
        _rewrap(model, {n: None for n in sites}, {})
    return model


def save_pruned(path: str | Path, model: nn.Module, plan: dict) -> None:
    """A plain ``torch.save`` of ``{'plan': plan, 'state_dict': ...}`` (only tensors, lists, numbers)."""
    torch.save({"plan": plan, "state_dict": model.state_dict()}, path)


def load_pruned(path: str | Path, model: nn.Module) -> nn.Module:
    """Load what :func:`save_pruned` wrote into an unpruned model of the same architecture; in place."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    apply_plan(model, blob["plan"])
    model.load_state_dict(blob["state_dict"])
    return model


def masked(model: nn.Module, plan: dict) -> nn.Module:
    """A copy of the unpruned ``model`` whose sigmas are 0 wherever :func:`prune` removed or zeroed a channel.

    What the pruned network computes, at the unpruned size: for figures and for reading the rule.
    """
    out = copy.deepcopy(model)
    with torch.no_grad():
        for name, w in weighted_layers(out).items():
            keep = plan["kept"].get(name)
            if keep is None:
                continue
            mask = torch.zeros_like(w.weighting.sigma)
            mask[keep] = 1.0
            kept_sigma = w.weighting.sigma[keep]
            for z in plan["zeroed"].get(name, []):
                kept_sigma[z] = 0.0
            w.weighting.sigma.mul_(mask)
            w.weighting.sigma[keep] = kept_sigma
    return out


# --------------------------------------------------------------------------- L1 on the sigmas (our addition)
def sigma_l1(model: nn.Module) -> torch.Tensor:
    """sum_k |sigma_k| over every CWL: the Network Slimming penalty, applied to the CWL scales."""
    params = [w.weighting.sigma for w in weighted_layers(model).values()]
    if not params:
        raise ValueError("the model has no Convolution Weighting Layers to penalise")
    return sum(p.abs().sum() for p in params)


@contextlib.contextmanager
def l1_on_sigmas(model: nn.Module, strength: float):
    """While active, every backward pass adds the gradient of ``strength * sigma_l1(model)``.

    :func:`cwl_lib.transfer.train` has no hook for an extra loss term, so the penalty enters through a
    gradient hook on each sigma: the optimiser then sees exactly the gradient of loss + strength * L1
    (the printed losses stay the cross-entropy alone). ``strength = 0`` does nothing.
    """
    if strength < 0:
        raise ValueError(f"the L1 strength must be >= 0, got {strength}")
    params = [w.weighting.sigma for w in weighted_layers(model).values()]
    if not params:
        raise ValueError("the model has no Convolution Weighting Layers to penalise")
    handles = []
    if strength > 0:
        for p in params:
            handles.append(p.register_hook(lambda g, p=p: g + strength * torch.sign(p.detach())))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# --------------------------------------------------------------------------- measuring
def _layer_name(name: str, wrapped: set[str]) -> str:
    parent, _, last = name.rpartition(".")
    return parent if last == "0" and parent in wrapped else name


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return "linear"
    if m.groups > 1 and m.groups == m.in_channels:
        return "depthwise"
    return "conv" + "x".join(str(k) for k in m.kernel_size)


@torch.no_grad()
def _layer_stats(model: nn.Module, input_size) -> dict[str, dict]:
    wrapped = set(weighted_layers(model))
    layers = {_layer_name(n, wrapped): m for n, m in model.named_modules()
              if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))}
    out_elems: dict[str, int] = {}
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: out_elems.__setitem__(n, o[0].numel()))
               for n, m in layers.items()]
    was = model.training
    ref = next(model.parameters())
    try:
        model.eval()
        model(torch.zeros(1, *input_size, device=ref.device, dtype=ref.dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return {
        n: {"kind": _kind(m), "out": m.out_channels if isinstance(m, nn.modules.conv._ConvNd) else m.out_features,
            "params": sum(p.numel() for p in m.parameters(recurse=False)), "features": out_elems.get(n, 0)}
        for n, m in layers.items()
    }


def count_parameters(model: nn.Module) -> int:
    """Parameters of the network, the CWL scales excluded (they fold into the conv/BN before deployment)."""
    cwl = {id(w.weighting.sigma) for w in weighted_layers(model).values()}
    return sum(p.numel() for p in model.parameters() if id(p) not in cwl)


@dataclass
class Compression:
    params: float  # kept fraction of the network's parameters (CWL scales excluded)
    features: float  # kept fraction of the conv feature-map elements (sum over conv layers of C*H*W)
    layers: "pandas.DataFrame"  # noqa: F821  one row per conv / linear layer


def compression(model: nn.Module, pruned: nn.Module, input_size=(3, 224, 224)) -> Compression:
    """Kept fractions of parameters and of feature-map activations, overall and per layer.

    Feature maps: for one image of ``input_size`` (C, H, W; an int means a square RGB image), the sum
    over every convolution of its output elements C_out x H_out x W_out. Parameters: every parameter
    (convolutions, BatchNorm, classifier) except the CWL scales. Per layer: output channels,
    parameters and feature-map elements kept, by the layer's name in the unpruned model.
    """
    import pandas as pd

    if isinstance(input_size, int):
        input_size = (3, input_size, input_size)
    before, after = _layer_stats(model, input_size), _layer_stats(pruned, input_size)
    missing = set(before) ^ set(after)
    if missing:
        raise ValueError(f"the two models do not have the same layers ({sorted(missing)[:3]}...): "
                         "pass the model that was pruned and the result of prune() on it")
    rows = []
    for n, b in before.items():
        a = after[n]
        rows.append({"layer": n, "kind": b["kind"], "channels_before": b["out"], "channels_after": a["out"],
                     "params_before": b["params"], "params_after": a["params"],
                     "features_before": b["features"], "features_after": a["features"]})
    df = pd.DataFrame(rows)
    df["channels_kept"] = df.channels_after / df.channels_before
    df["params_kept"] = df.params_after / df.params_before
    df["features_kept"] = df.features_after / df.features_before.where(df.features_before > 0)
    convs = df[df.kind != "linear"]
    return Compression(
        params=count_parameters(pruned) / count_parameters(model),
        features=float(convs.features_after.sum() / convs.features_before.sum()),
        layers=df,
    )


def _deployable(model: nn.Module, device: torch.device) -> nn.Module:
    net = copy.deepcopy(model)
    if weighted_layers(net):
        fold_weighting(net)
    return net.eval().to(device)


@torch.no_grad()
def _timed(net: nn.Module, x: torch.Tensor) -> float:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    t = time.perf_counter()
    net(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - t


def _median(v: list[float]) -> float:
    v = sorted(v)
    return v[len(v) // 2]


def latency(model: nn.Module, input_size=(3, 224, 224), batch_size: int = 1, *, repeats: int = 20,
            warmup: int = 3, device: torch.device | str = "cpu") -> float:
    """Median seconds of one eval-mode forward pass (CWLs folded in a copy, as they would be deployed)."""
    return latencies([model], input_size, batch_size, repeats=repeats, warmup=warmup, device=device)[0]


def latencies(models, input_size=(3, 224, 224), batch_size: int = 1, *, repeats: int = 20, warmup: int = 3,
              device: torch.device | str = "cpu") -> list[float]:
    """Median forward time of each model, timed in turn (A, B, A, B...) so that a change of the
    machine's load during the measurement falls on every model alike."""
    if isinstance(input_size, int):
        input_size = (3, input_size, input_size)
    device = torch.device(device)
    nets = [_deployable(m, device) for m in models]
    x = torch.randn(batch_size, *input_size, device=device)
    times: list[list[float]] = [[] for _ in nets]
    for i in range(warmup + repeats):
        for net, t in zip(nets, times):
            dt = _timed(net, x)
            if i >= warmup:
                t.append(dt)
    return [_median(t) for t in times]


__all__ = [
    "prune", "apply_plan", "save_pruned", "load_pruned", "masked", "sigma_l1", "l1_on_sigmas",
    "count_parameters", "Compression", "compression", "latency", "latencies",
]
