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

Score, decide, apply. :func:`prune` reads as three steps: an importance function scores every channel
of every scored layer (:func:`sigma_importance`, the paper's |sigma|; :func:`bn_gamma_importance`,
Network Slimming's |gamma|, the baseline a reader asks for); :class:`LargestScore`, a Torch-Pruning
importance, gives each channel of each group the largest score of its members and :func:`decide`
applies tau, ``min_channels`` and ``round_to`` (our rule, which Torch-Pruning's pruners, ranking by a
target sparsity, do not have); then Torch-Pruning's groups do the surgery and the plan records it.
:func:`prune_to_size` finds the threshold that keeps a given fraction of the parameters, so two scores
can be compared at matched size.

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
from typing import Iterable

import pandas as pd
import torch
import torch_pruning as tp
from torch import nn

from .weighting import BATCH_NORMS, ConvWeighting, Weighted, fold_weighting, insert_weighting, weighted_layers

PLAN_FORMAT = 1


# --------------------------------------------------------------------------- inputs
def _check_args(tau: float, min_channels: int, round_to: int = 1) -> None:
    if not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a positive number (a threshold on the importance), got {tau!r}")
    if not isinstance(min_channels, int) or min_channels < 1:
        raise ValueError(f"min_channels must be an integer >= 1 (a layer keeps at least one channel), got {min_channels!r}")
    if not isinstance(round_to, int) or round_to < 1:
        raise ValueError(f"round_to must be an integer >= 1 (1: no rounding), got {round_to!r}")


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


# --------------------------------------------------------------------------- score: importance of each channel
def sigma_importance(model: nn.Module, sigmas: dict[str, torch.Tensor]) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """The paper's score: |sigma_k| of each CWL, at the layer the CWL scales (``model`` with its CWLs
    taken out, ``sigmas`` what they held)."""
    if not sigmas:
        raise ValueError(
            "the model has no Convolution Weighting Layers, so there are no sigmas to threshold; "
            "insert them with cwl_lib.weighting.insert_weighting (or transfer.prepare with a strategy that "
            "trains sigmas) and train them first"
        )
    return {name: (model.get_submodule(name), s.abs()) for name, s in sigmas.items()}


def bn_gamma_importance(model: nn.Module, sigmas: dict[str, torch.Tensor]) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """Network Slimming's score (Liu et al., ICCV 2017): |gamma_k| of each BatchNorm, times |sigma_k|
    where a CWL scales that BatchNorm (the channel's whole learned scale)."""
    scores = {}
    for name, m in model.named_modules():
        if isinstance(m, BATCH_NORMS) and m.affine:
            g = m.weight.detach().abs()
            scores[name] = (m, g * sigmas[name].abs() if name in sigmas else g)
    if not scores:
        raise ValueError(f"{type(model).__name__} has no BatchNorm with affine parameters to score by gamma")
    return scores


#: name -> (score function, whether a member under tau in a channel that stays is set to 0)
IMPORTANCES = {"sigma": (sigma_importance, True), "bn-gamma": (bn_gamma_importance, False)}


# --------------------------------------------------------------------------- decide: which channels go
class LargestScore(tp.importance.Importance):
    """A Torch-Pruning importance: a group's channel scores the largest score its scored layers give it
    (``scores`` as :data:`IMPORTANCES` make them), +inf where none covers it, so that it is never removed.

    Not tp's GroupMagnitudeImportance(group_reduction="max"): it scores weights of the traced layers, while
    sigma lives in the CWL taken out before tracing; and it puts an uncovered channel at -99999, first to go.
    """

    def __init__(self, scores: dict[str, tuple[nn.Module, torch.Tensor]], dg: tp.DependencyGraph):
        self.name_of = {id(m): n for n, (m, _) in scores.items()}
        self.scores = {n: s.detach().double().cpu() for n, (_, s) in scores.items()}
        self.dg = dg

    def members(self, group) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """(name, its channel indices, the same in the group's root numbering) of each scored layer whose
        output channels the group removes: the bookkeeping after :func:`decide` needs them too."""
        out = {}
        for item in group:
            name = self.name_of.get(id(item.dep.target.module))
            if name is not None and name not in out and self.dg.is_out_channel_pruning_fn(item.dep.handler):
                out[name] = (name, torch.as_tensor([int(i) for i in item.idxs]),
                             torch.as_tensor([int(i) for i in item.root_idxs]))
        return list(out.values())

    def __call__(self, group) -> torch.Tensor | None:
        members = self.members(group)
        if not members:
            return None
        out = torch.full((len(group[0].idxs),), -math.inf, dtype=torch.float64)
        for name, local, root in members:
            out.scatter_reduce_(0, root, self.scores[name][local], reduce="amax")
        return out.masked_fill_(out == -math.inf, math.inf)


def decide(score: torch.Tensor, tau: float, min_channels: int = 1, round_to: int = 1) -> tuple[list[int], list[int]]:
    """The channels removed (score under tau) and those rescued to keep ``min_channels`` (and a multiple of
    ``round_to``) channels: the rescued are the best-scored under tau."""
    n = len(score)
    below = score < tau
    target = max(min(min_channels, n), n - int(below.sum()))
    target = min(n, -(-target // round_to) * round_to)
    rescued = torch.zeros_like(below)
    if n - int(below.sum()) < target:
        # every channel at or above tau ranks before every channel under it, so the top `target` keep them all
        order = torch.argsort(-score, stable=True)  # largest score first, ties by index
        kept = torch.zeros_like(below)
        kept[order[:target]] = True
        rescued = below & kept
        below = below & ~kept
    return below.nonzero().flatten().tolist(), rescued.nonzero().flatten().tolist()


# --------------------------------------------------------------------------- apply: the surgery
def prune(model: nn.Module, tau: float, min_channels: int = 1, *, importance: str = "sigma", round_to: int = 1,
          example_input: torch.Tensor | None = None, fold: bool = False) -> tuple[nn.Module, dict]:
    """A copy of ``model`` without the channels whose importance is under tau, and its channel plan.

    ``importance`` is ``"sigma"`` (the paper's |sigma|, the model must carry CWLs) or ``"bn-gamma"``
    (Network Slimming's |gamma|). ``model`` is not modified. Coupled channels follow the rule in this
    module's docstring (with ``bn-gamma`` nothing is zeroed: only whole channels go). ``example_input``
    (default: one 3x64x64 zero image) is only used to trace the graph. The result keeps its CWLs, with
    the surviving sigma entries, unless ``fold`` (then the plain smaller architecture). ``round_to`` > 1
    keeps a multiple of that many channels per group (rescuing the best-scored under tau, like
    ``min_channels``): CPU and GPU kernels run faster on channel counts that are multiples of 8 or 16.
    Returns ``(pruned, plan)``; see :func:`apply_plan`.
    """
    if importance not in IMPORTANCES:
        raise ValueError(f"importance must be one of {', '.join(IMPORTANCES)}, got {importance!r}")
    score_of, zero_below = IMPORTANCES[importance]
    _check_args(tau, min_channels, round_to)
    work = copy.deepcopy(model)
    x = _example(work, example_input)
    wl = weighted_layers(work)
    sig = {n: w.weighting.sigma.detach().clone() for n, w in wl.items()}
    sig_grad = {n: w.weighting.sigma.requires_grad for n, w in wl.items()}
    cwl_sites = _unwrap(work)
    scored = score_of(work, sig)
    sites = {n: m for n, (m, _) in scored.items()}
    scores = {n: s for n, (_, s) in scored.items()}
    names = {m: n for n, m in work.named_modules()}

    unscored = set(cwl_sites) - set(sites)
    if unscored:
        raise ValueError(f"{importance} scores no channel of the CWLs at {sorted(unscored)[:3]}: fold them first "
                         "(cwl_lib.weighting.fold_weighting) or prune by sigma")

    with _traceable(work):
        dg = _graph(work, x)
        largest = LargestScore(scored, dg)
        decisions = []
        for group in dg.get_all_groups():
            score = largest(group)
            if score is not None:
                root = group[0].dep.target.module
                removed, rescued = decide(score, tau, min_channels, round_to)
                decisions.append((names[root], root, len(score), removed, rescued, largest.members(group)))
        dropped: dict[str, set[int]] = {n: set() for n in sites}  # a layer split over groups gathers all
        for _, _, n, removed, rescued, members in decisions:
            gone, spared = torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
            gone[removed], spared[rescued] = True, True
            for site, local, root in members:
                dropped[site] |= set(local[gone[root]].tolist())
                if zero_below and site in cwl_sites:
                    under = scores[site].cpu()[local] < tau
                    sig[site][local[~gone[root] & ~spared[root] & under]] = 0.0
        for _, root, _, removed, _, _ in decisions:
            if removed:
                pruner = dg.get_pruner_of_module(root)
                dg.get_pruning_group(root, pruner.prune_out_channels, removed).prune()

    kept_local = {n: [i for i in range(len(sig[n])) if i not in dropped[n]] for n in cwl_sites}
    new_sig = {n: sig[n][kept_local[n]] for n in cwl_sites}
    zeroed = {n: [i for i, v in enumerate(new_sig[n].tolist()) if v == 0.0] for n in cwl_sites}
    _rewrap(work, new_sig, sig_grad)
    if fold:
        fold_weighting(work)
    plan = {
        "format": PLAN_FORMAT,
        "tau": float(tau),
        "importance": importance,
        "min_channels": int(min_channels),
        "round_to": int(round_to),
        "weighting": bool(cwl_sites) and not fold,
        "groups": [{"root": r, "removed": list(rem)} for r, _, _, rem, _, _ in decisions if rem],
        "kept": kept_local,
        "rescued": {r: list(res) for r, _, _, _, res, _ in decisions if res},
        "zeroed": {n: z for n, z in zeroed.items() if z},
        "removed_channels": {n: sorted(d) for n, d in dropped.items() if d},  # per scored layer, its own numbering
        "input_shape": list(x.shape[1:]),
    }
    return work, plan


def prune_to_size(model: nn.Module, fraction: float, *, importance: str = "bn-gamma", min_channels: int = 1,
                  round_to: int = 1, example_input: torch.Tensor | None = None,
                  steps: int = 12) -> tuple[float, nn.Module, dict]:
    """``(tau, pruned, plan)``: the threshold (by bisection, ``steps`` prunes) whose pruned network keeps the
    fraction of parameters (:func:`count_parameters`) closest to ``fraction``, and that network."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction is the share of parameters to keep, in (0, 1], got {fraction!r}")
    full = count_parameters(model)
    tried: list[tuple[float, float, nn.Module, dict]] = []

    def attempt(tau: float) -> float:
        pruned, plan = prune(model, tau, min_channels, importance=importance, round_to=round_to,
                             example_input=example_input)
        kept = count_parameters(pruned) / full
        tried.append((abs(kept - fraction), tau, pruned, plan))
        return kept

    lo, hi = 0.0, 1.0
    while attempt(hi) > fraction and hi < 1e6:  # scores are not bounded by 1 (gamma, sigma)
        lo, hi = hi, hi * 4
    for _ in range(steps):
        mid = (lo + hi) / 2
        if attempt(mid) > fraction:
            lo = mid
        else:
            hi = mid
    _, tau, pruned, plan = min(tried, key=lambda t: t[0])
    return tau, pruned, plan


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
@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, inputs: Iterable[torch.Tensor], device: torch.device | str = "cpu") -> int:
    """Re-estimate the running statistics of every BatchNorm of ``model`` on ``inputs`` (batches of ready
    float tensors), as a cumulative average; the rest of the model stays in eval mode. Returns how many
    BatchNorms were recalibrated.

    The standard step after structured pruning: a BN's ImageNet statistics describe the channels that fed
    it before pruning; once half of them are gone, its inputs have other means and variances, and a deep
    pruned network normalised with the old ones loses its input-dependent signal layer after layer.
    """
    bns = [m for m in model.modules() if isinstance(m, BATCH_NORMS) and m.track_running_stats]
    if not bns:
        return 0
    momenta = [m.momentum for m in bns]
    model.eval().to(device)
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts the same
        m.train()
    seen = 0
    for x in inputs:
        model(x.to(device))
        seen += 1
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    model.eval()
    if not seen:
        raise ValueError("no batch to recalibrate BatchNorm statistics on")
    return len(bns)


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
    # The feature maps are counted here, not by tp.utils.count_ops_and_params: it counts operations (a
    # convolution's k*k*C_in/groups multiply-adds per output element, plus BN, ReLU, pooling), where the
    # paper counts the elements a convolution writes, C_out*H_out*W_out.
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
            "params": tp.utils.count_params(m), "features": out_elems.get(n, 0)}
        for n, m in layers.items()
    }


def count_parameters(model: nn.Module) -> int:
    """Parameters of the network, the CWL scales excluded (they fold into the conv/BN before deployment)."""
    # Torch-Pruning's count (that of count_ops_and_params too) takes every parameter, the sigmas with them
    return tp.utils.count_params(model) - sum(w.weighting.sigma.numel() for w in weighted_layers(model).values())


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
    "IMPORTANCES", "sigma_importance", "bn_gamma_importance", "LargestScore", "decide", "prune",
    "prune_to_size", "apply_plan", "save_pruned", "load_pruned", "masked", "sigma_l1", "l1_on_sigmas",
    "count_parameters", "Compression", "compression", "latency", "latencies",
]
