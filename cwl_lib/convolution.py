"""Sections III-B and III-C: convolution as a matrix product, Kronecker feature maps, filter covariance.

* :func:`im2col` builds R(A): one row per output position, holding the vectorised receptive field
  (channel-major, then kernel row, then kernel column: the order of ``weight.reshape(k, -1)``).
* :func:`conv2d_as_matmul` is Eq. 3, ``U = R(A) V^T``, equal to ``F.conv2d`` for any stride, padding,
  dilation and groups.
* :func:`kronecker_feature_maps` is Eq. 5 with stride = kernel size: the least-squares feature maps
  ``U = R(A) V^T (V V^T)^-1`` (the k x k Gram of the filters; the paper's ``(V^T V)^-1`` is written
  transposed), and the input rebuilt from ``U V``.
* :func:`filter_covariance` is Fig. 1: the k x k matrix of cosines between vectorised filters, and
  :func:`orthogonality_distance` a scalar summary of how far it is from the identity.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


def conv_output_size(size: Sequence[int], kernel_size, stride=1, padding=0, dilation=1) -> tuple[int, int]:
    """Output height and width of a 2-d convolution (PyTorch's formula)."""
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    H, W = size
    return (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1


def _resolve_padding(padding, kernel_size, stride, dilation):
    """Integer padding (top/bottom, left/right) and an optional asymmetric F.pad for 'same'."""
    if isinstance(padding, str):
        kh, kw = _pair(kernel_size, "kernel_size")
        dh, dw = _pair(dilation, "dilation")
        if padding == "valid":
            return (0, 0), None
        if padding == "same":
            if _pair(stride, "stride") != (1, 1):
                raise ValueError("padding='same' needs stride 1 (as in F.conv2d)")
            th, tw = dh * (kh - 1), dw * (kw - 1)
            return (0, 0), (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    return _pair(padding, "padding"), None


def im2col(x: torch.Tensor, kernel_size, stride=1, padding=0, dilation=1) -> torch.Tensor:
    """R(A) for a batch ``x`` of shape ``(N, C, H, W)``: shape ``(N, L, C*kh*kw)``, L output positions."""
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
    pad, extra = _resolve_padding(padding, kernel_size, stride, dilation)
    if extra is not None:
        x = F.pad(x, extra)
    cols = F.unfold(x, _pair(kernel_size, "kernel_size"), dilation=_pair(dilation, "dilation"),
                    padding=pad, stride=_pair(stride, "stride"))
    return cols.transpose(1, 2)


def conv2d_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     stride=1, padding=0, dilation=1, groups: int = 1) -> torch.Tensor:
    """Eq. 3: the convolution ``F.conv2d(x, weight, bias, ...)`` computed as ``R(A) V^T``."""
    k, cg, kh, kw = weight.shape
    N, C, H, W = x.shape
    if C != cg * groups or k % groups:
        raise ValueError(
            f"weight {tuple(weight.shape)} with groups={groups} does not fit an input with {C} channels"
        )
    pad, extra = _resolve_padding(padding, (kh, kw), stride, dilation)
    if extra is not None:
        H, W = H + extra[2] + extra[3], W + extra[0] + extra[1]
    cols = im2col(x, (kh, kw), stride, padding, dilation)  # (N, L, C*kh*kw)
    L = cols.shape[1]
    if groups == 1:
        out = cols @ weight.reshape(k, -1).T  # (N, L, k)
    else:
        cols = cols.reshape(N, L, groups, cg * kh * kw)
        V = weight.reshape(groups, k // groups, cg * kh * kw)
        out = torch.einsum("nlgd,gkd->nlgk", cols, V).reshape(N, L, k)
    if bias is not None:
        out = out + bias
    Ho, Wo = conv_output_size((H, W), (kh, kw), stride, pad, dilation)
    return out.transpose(1, 2).reshape(N, k, Ho, Wo)


def conv_layer_as_matmul(layer: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """:func:`conv2d_as_matmul` with a torch ``nn.Conv2d`` layer's own settings (zero padding only)."""
    if layer.padding_mode != "zeros":
        raise ValueError(f"only zero padding is supported, the layer uses {layer.padding_mode!r}")
    return conv2d_as_matmul(x, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups)


def conv_layers(model: nn.Module, groups: int | None = None) -> list[tuple[str, nn.Conv2d]]:
    """``(name, layer)`` of every ``nn.Conv2d`` in forward-definition order; only ``groups`` ones if given."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and (groups is None or m.groups == groups)]


# --- Section III-C: Kronecker feature maps (Eq. 4-5) ----------------------------------------------------


class KroneckerMaps(NamedTuple):
    maps: torch.Tensor  # (N, k, H/kh, W/kw): Eq. 5 feature maps U
    reconstruction: torch.Tensor  # (N, C, H, W): the input rebuilt from U V
    filter_rank: int  # rank of V; reconstruction is exact when the rows of R(A) lie in V's row space
    method: str  # "gram" (Eq. 5 as written) or "pinv" (rank-deficient V: least-norm least squares)


def filter_matrix(weight: torch.Tensor) -> torch.Tensor:
    """V: one vectorised filter per row, shape ``(k, C*kh*kw)``."""
    return weight.reshape(weight.shape[0], -1)


def _pad_to_multiple(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    H, W = x.shape[-2:]
    ph, pw = (-H) % kh, (-W) % kw
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


def kronecker_feature_maps(x: torch.Tensor, weight: torch.Tensor, method: str = "auto") -> KroneckerMaps:
    """Eq. 5 with stride = kernel size: ``U = R(A) V^T (V V^T)^-1`` and the input rebuilt from ``U V``.

    ``U`` minimises ``||R(A) - U V||_F`` (Eq. 4) for the given filters. When V has full row rank the
    k x k Gram is inverted (``method="gram"``); otherwise (e.g. more filters than ``C*kh*kw``) the
    pseudo-inverse gives the least-norm solution (``method="pinv"``). The image is zero-padded on the
    right and bottom to a multiple of the kernel size and the reconstruction cropped back.
    """
    if method not in ("auto", "gram", "pinv"):
        raise ValueError(f"method must be 'auto', 'gram' or 'pinv', got {method!r}")
    k, C, kh, kw = weight.shape
    if x.dim() != 4 or x.shape[1] != C:
        raise ValueError(f"x must be (N, {C}, H, W) for filters {tuple(weight.shape)}, got {tuple(x.shape)}")
    N, _, H, W = x.shape
    xp = _pad_to_multiple(x, kh, kw)
    Hp, Wp = xp.shape[-2:]
    R = im2col(xp, (kh, kw), stride=(kh, kw))  # (N, L, C*kh*kw), non-overlapping blocks
    V = filter_matrix(weight).to(R.dtype)
    rank = int(torch.linalg.matrix_rank(V).item())
    if method == "auto":
        method = "gram" if rank == k else "pinv"
    if method == "gram":
        gram = V @ V.T
        U = torch.linalg.solve(gram, (R @ V.T).transpose(1, 2)).transpose(1, 2)  # gram is symmetric
    else:
        U = R @ torch.linalg.pinv(V)
    rebuilt = F.fold((U @ V).transpose(1, 2), (Hp, Wp), (kh, kw), stride=(kh, kw))[..., :H, :W]
    maps = U.transpose(1, 2).reshape(N, k, Hp // kh, Wp // kw)
    return KroneckerMaps(maps, rebuilt, rank, method)


def _patch_matrix(x: torch.Tensor, kernel_size) -> torch.Tensor:
    """R(A) with stride = kernel size, batch stacked, with zero rows added up to ``C*kh*kw`` rows.

    The zero rows change neither the row space nor the singular values; they make the thin SVD
    return a full ``C*kh*kw`` basis (and as many singular values) even for tiny images.
    """
    kh, kw = _pair(kernel_size, "kernel_size")
    d = x.shape[1] * kh * kw
    R = im2col(_pad_to_multiple(x, kh, kw), (kh, kw), stride=(kh, kw)).reshape(-1, d)
    return F.pad(R, (0, 0, 0, d - R.shape[0])) if R.shape[0] < d else R


def svd_filters(x: torch.Tensor, kernel_size, k: int) -> torch.Tensor:
    """Eq. 4 solved by SVD: the ``k`` filters ``(k, C, kh, kw)`` spanning R(A) best (stride = kernel size).

    They are the top right singular vectors of R(A) stacked over the batch, hence orthonormal.
    """
    kh, kw = _pair(kernel_size, "kernel_size")
    R = _patch_matrix(x, (kh, kw))
    if not 1 <= k <= R.shape[1]:
        raise ValueError(f"k must be between 1 and C*kh*kw = {R.shape[1]}, got {k}")
    _, _, Vh = torch.linalg.svd(R, full_matrices=False)
    Vh = Vh[:k]
    idx = Vh.abs().argmax(dim=1, keepdim=True)
    Vh = Vh * torch.sign(torch.gather(Vh, 1, idx))  # deterministic signs
    return Vh.reshape(k, x.shape[1], kh, kw)


def patch_singular_values(x: torch.Tensor, kernel_size) -> torch.Tensor:
    """Singular values of R(A) (stride = kernel size, batch stacked): the reconstruction error budget."""
    return torch.linalg.svdvals(_patch_matrix(x, kernel_size))


# --- Fig. 1: filter covariance and orthogonality ---------------------------------------------------------


def dense_weight(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """A grouped conv weight ``(k, C/groups, kh, kw)`` as the equivalent dense ``(k, C, kh, kw)`` (zeros off-group)."""
    if groups == 1:
        return weight
    k, cg, kh, kw = weight.shape
    out = weight.new_zeros(k, cg * groups, kh, kw)
    per = k // groups
    for g in range(groups):
        out[g * per:(g + 1) * per, g * cg:(g + 1) * cg] = weight[g * per:(g + 1) * per]
    return out


def filter_covariance(weight: torch.Tensor, groups: int = 1, center: bool = False) -> torch.Tensor:
    """The normalised k x k covariance of the vectorised filters: ``cos(v_i, v_j)`` (Fig. 1).

    ``center=True`` subtracts each filter's mean first (Pearson correlation). Grouped convolutions are
    first expanded to their dense equivalent, where filters of different groups are orthogonal.
    Filters that are exactly zero get a zero row and column (and a zero diagonal).
    """
    V = filter_matrix(dense_weight(weight, groups)).double()
    if center:
        V = V - V.mean(dim=1, keepdim=True)
    norms = V.norm(dim=1, keepdim=True)
    Vn = torch.where(norms > 0, V / norms.clamp_min(torch.finfo(V.dtype).tiny), torch.zeros_like(V))
    return (Vn @ Vn.T).to(weight.dtype if weight.is_floating_point() else torch.float64)


def orthogonality_distance(weight: torch.Tensor, groups: int = 1) -> float:
    """``||cos(V) - I||_F / sqrt(k (k-1))``: the root-mean-square cosine between two distinct filters.

    0 for orthogonal filters, 1 when all filters are parallel. Filters drawn at random in dimension d
    give about ``1/sqrt(d)``; more filters than dimensions cannot go below :func:`orthogonality_bound`.
    """
    cov = filter_covariance(weight, groups).double()
    k = cov.shape[0]
    if k < 2:
        return 0.0
    off = cov - torch.diag(torch.diagonal(cov))
    return float(off.norm() / math.sqrt(k * (k - 1)))


def orthogonality_bound(k: int, d: int, groups: int = 1) -> float:
    """The smallest possible :func:`orthogonality_distance` of k unit filters of dimension d (per group).

    Zero when each group holds at most d filters; otherwise, with ``q = k / groups`` filters per group,
    ``sqrt(groups * (q^2/d - q) / (k (k-1)))`` (a group's Gram has rank <= d and trace q, so its squared
    Frobenius norm is at least ``q^2/d``; tight frames reach it). For one group: ``sqrt((k/d - 1)/(k - 1))``.
    """
    q = k // groups
    if q <= d or k < 2:
        return 0.0
    return math.sqrt(groups * (q * q / d - q) / (k * (k - 1)))


def random_orthogonality(k: int, d: int, groups: int = 1) -> float:
    """The typical :func:`orthogonality_distance` of random filters: cosines of size ``1/sqrt(d)`` within groups."""
    q = k // groups
    if k < 2:
        return 0.0
    return math.sqrt(groups * q * (q - 1) / (k * (k - 1)) / d)


def orthogonality_table(model: nn.Module, layers: int | None = None, groups: int | None = None):
    """One row per conv layer: filters k, filter dimension d, groups, distance, lower bound, random reference.

    ``d = C/groups * kh * kw`` is the dimension each filter lives in; ``lower_bound`` is
    :func:`orthogonality_bound` (non-zero when a group has more filters than dimensions) and
    ``random_ref`` :func:`random_orthogonality`, the distance expected of random filters.
    """
    rows = []
    for name, layer in conv_layers(model, groups)[:layers]:
        w = layer.weight.detach()
        k, cg, kh, kw = w.shape
        d = cg * kh * kw
        rows.append({
            "layer": name,
            "filters_k": k,
            "dim_d": d,
            "groups": layer.groups,
            "distance": orthogonality_distance(w.cpu(), layer.groups),
            "lower_bound": orthogonality_bound(k, d, layer.groups),
            "random_ref": random_orthogonality(k, d, layer.groups),
        })
    return pd.DataFrame(rows)


def capture_conv_io(model: nn.Module, x: torch.Tensor, layers: int | None = None):
    """Run ``model(x)`` once and keep, for the first ``layers`` convolutions, ``(name, layer, input, output)``.

    Real activations for checking Eq. 3 and Eq. 5 layer by layer inside a real network.
    """
    chosen = conv_layers(model)[:layers]
    records: dict[str, tuple] = {}
    hooks = []
    for name, layer in chosen:
        def hook(mod, inputs, output, name=name):
            # copies: an in-place activation after the layer (VGG's ReLU(inplace=True)) would overwrite them
            records[name] = (inputs[0].detach().clone(), output.detach().clone())
        hooks.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return [(name, layer, *records[name]) for name, layer in chosen if name in records]


def sine_between(a: torch.Tensor, b: torch.Tensor) -> float:
    """``sin`` of the angle between two tensors seen as vectors, accurate near 0.

    Computed as the norm of the part of ``a`` orthogonal to ``b`` over the norm of ``a``: its rounding
    error is a few machine epsilons, whereas ``sqrt(1 - cos^2)`` cannot go below ``sqrt(eps)`` (1.5e-8 in
    float64) once the cosine rounds one unit in the last place away from 1. A zero vector is at angle 1.
    """
    a, b = a.reshape(-1), b.reshape(-1).to(a.dtype)
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        return 1.0
    unit = b / nb
    residual = a - (a @ unit) * unit
    return min(1.0, float(residual.norm() / na))


def eq5_vs_eq3(x: torch.Tensor, weight: torch.Tensor) -> float:
    """How much the Gram term of Eq. 5 changes the feature maps of Eq. 3, as the sine of their angle.

    Filters are first scaled to unit norm (a per-filter scale only rescales its own feature map), both
    sets of maps are computed with stride = kernel size and flattened, and ``sin`` of the angle between
    them is returned (:func:`sine_between`): 0 when the Gram is a multiple of the identity (orthogonal
    filters, or a tight frame when there are more filters than dimensions), up to 1 when the two
    disagree completely.
    """
    V = weight / filter_matrix(weight).norm(dim=1).clamp_min(torch.finfo(weight.dtype).tiny).view(-1, 1, 1, 1)
    kh, kw = V.shape[-2:]
    kron = kronecker_feature_maps(x, V).maps
    plain = conv2d_as_matmul(_pad_to_multiple(x, kh, kw), V, stride=(kh, kw))
    return sine_between(kron, plain)
