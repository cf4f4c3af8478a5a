"""Image retrieval with MAC descriptors and the revisited Oxford/Paris protocol (Section V-B, Table III).

* :func:`mac`: Maximum Activations of Convolutions, a global max pool of the last convolutional
  feature maps followed by L2 normalisation; :func:`conv_body` cuts a torchvision classifier down
  to those feature maps, :func:`extract` runs it on images at their own sizes (no resize to 224),
  batching only images of identical size.
* :func:`rank` sorts the database by cosine similarity for every query at once.
* :func:`revisited_map`: mAP and mean precision@k in the Easy, Medium and Hard settings of
  Radenovic et al. (CVPR 2018), numerically identical to the ``compute_map`` of their revisitop
  code (trapezoid-rule AP, ignored images taken out of the ranking, queries without a positive
  left out of the mean) on the rankings it is given, but computed for all queries at once. Two
  conventions matter where the reference leaves a choice:

  - duplicates: ``compute_map`` divides by the length of the positive list it is given, so an
    image listed twice (or, under Medium, in both ``easy`` and ``hard``) counts twice in the
    number of positives, though it can be found only once. That is the default here too, so the
    numbers match those published with that code; ``count_duplicates=False`` counts each image
    once (on the published files the two differ by about 4e-4 mAP).
  - ties: revisitop's example ranks with ``np.argsort(-sim, axis=0)``, numpy's default sort, which
    orders equal scores arbitrarily. Here equal scores rank the lower database index first (a
    stable sort, :func:`rank`); with real float descriptors ties essentially never occur, and
    without ties both orders agree.

The transfer of Table III (train on the query images, then describe the database with the trained
backbone) is the study :mod:`cwl_lib.studies.retrieval`.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .transfer import autocast, preprocess
from .weighting import fold_weighting, weighted_layers

SETTINGS = ("easy", "medium", "hard")
# Which ground-truth lists count as positives and which are ignored, per setting (Radenovic et al.).
PROTOCOL = {
    "easy": (("easy",), ("junk", "hard")),
    "medium": (("easy", "hard"), ("junk",)),
    "hard": (("hard",), ("junk", "easy")),
}
_BIT = {"easy": 1, "hard": 2, "junk": 4}


# --------------------------------------------------------------------------- descriptors
def mac(feature_maps: torch.Tensor) -> torch.Tensor:
    """``N x C x H x W`` feature maps -> ``N x C`` L2-normalised maxima over the spatial positions."""
    if feature_maps.dim() != 4:
        raise ValueError(f"mac() expects N x C x H x W feature maps, got shape {tuple(feature_maps.shape)}")
    pooled = feature_maps.amax(dim=(2, 3)).float()
    return F.normalize(pooled, p=2, dim=1)


def conv_body(model: nn.Module) -> nn.Module:
    """The part of a torchvision classifier that produces its last convolutional feature maps.

    Models with a ``features`` block (VGG, MobileNet, DenseNet, EfficientNet...) keep that block; VGG's
    trailing max pool is dropped so the maps are those of the last convolution, as in MAC [37].
    Models built as a stem plus stages (ResNet, ResNeXt, RegNet-like) keep their children up to the
    global average pool. The returned module shares its layers with ``model`` (no copy).
    """
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        layers = list(features.children())
        while layers and isinstance(layers[-1], (nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
            layers.pop()
        return nn.Sequential(*layers)
    children = list(model.named_children())
    names = [n for n, _ in children]
    if "avgpool" in names:
        return nn.Sequential(*[m for n, m in children[: names.index("avgpool")]])
    raise ValueError(
        f"cannot find the last convolutional block of {type(model).__name__}: expected a `features` "
        "Sequential (VGG, MobileNet) or children before an `avgpool` (ResNet); pass conv_body= explicitly"
    )


def descriptor_model(model: nn.Module) -> nn.Module:
    """The MAC feature extractor of a (possibly CWL-trained) classifier: CWLs folded in, head removed.

    Folding modifies ``model`` in place; the outputs are those of the weighted model in eval mode,
    without the cost of the extra multiplications.
    """
    if weighted_layers(model):
        fold_weighting(model)
    return conv_body(model).eval()


def size_groups(sizes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices grouped by identical ``(H, W)``, each group cut into batches of at most ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, s in enumerate(sizes):
        by_size[tuple(s)].append(i)
    return [idx[j:j + batch_size] for idx in by_size.values() for j in range(0, len(idx), batch_size)]


@torch.no_grad()
def extract(body: nn.Module, images: Sequence[torch.Tensor] | Callable[[int], torch.Tensor],
            sizes: Sequence[tuple[int, int]] | None = None, device: torch.device | str = "cpu", *,
            batch_size: int = 16, amp: bool | None = None, progress: bool = False,
            desc: str = "MAC") -> torch.Tensor:
    """MAC descriptors (``N x C``, float32, CPU) of uint8 ``3 x H x W`` images at their original sizes.

    ``images`` is a sequence of tensors, or a function ``i -> tensor`` with ``sizes`` giving each
    image's ``(H, W)`` (so images can be decoded lazily). Images of identical size are batched together;
    nothing is resized. On CUDA the forward runs in bfloat16 autocast with channels_last tensors.
    """
    get = images if callable(images) else images.__getitem__
    if sizes is None:
        if callable(images):
            raise ValueError("extract() needs sizes= when images is a function")
        sizes = [tuple(im.shape[-2:]) for im in images]
    n = len(sizes)
    if n == 0:
        raise ValueError("no images to describe")
    device = torch.device(device)
    cl = device.type == "cuda"
    was = body.training
    body.eval().to(device)
    if cl:
        body.to(memory_format=torch.channels_last)
    out: torch.Tensor | None = None
    groups = size_groups(sizes, batch_size)
    bar = None
    if progress:
        bar = tqdm(total=n, desc=desc, leave=False)
    try:
        for idx in groups:
            batch = torch.stack([_as_chw_uint8(get(i)) for i in idx])
            x = preprocess(batch, None, device, channels_last=cl)
            with autocast(device, amp):
                d = mac(body(x)).cpu()
            if out is None:
                out = torch.empty(n, d.shape[1])
            out[idx] = d
            if bar is not None:
                bar.update(len(idx))
    finally:
        if bar is not None:
            bar.close()
        body.train(was)
    return out


def _as_chw_uint8(im) -> torch.Tensor:
    t = torch.as_tensor(im)
    if t.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {t.dtype}")
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected a 3 x H x W (or 1 x H x W) image tensor, got shape {tuple(t.shape)}")
    return t.expand(3, -1, -1) if t.shape[0] == 1 else t


# --------------------------------------------------------------------------- ranking
def similarities(queries: torch.Tensor, database: torch.Tensor) -> np.ndarray:
    """Cosine similarities ``Q x N`` of L2-normalised descriptors (one matrix product)."""
    q = F.normalize(torch.as_tensor(queries).float(), dim=1)
    d = F.normalize(torch.as_tensor(database).float(), dim=1)
    return (q @ d.T).numpy()


def rank(scores: np.ndarray) -> np.ndarray:
    """``Q x N`` database indices by decreasing score; ties keep the lower database index first."""
    scores = np.asarray(scores)
    return np.argsort(-scores, axis=1, kind="stable")


# --------------------------------------------------------------------------- the revisited protocol
def _codes(gnd: Sequence[dict], n_db: int) -> np.ndarray:
    """``Q x N`` uint8 flags of the ground truth: 1 easy, 2 hard, 4 junk (an image listed twice is one entry)."""
    codes = np.zeros((len(gnd), n_db), dtype=np.uint8)
    for q, g in enumerate(gnd):
        for key, bit in _BIT.items():
            a = np.asarray(g.get(key, ()), dtype=np.int64).reshape(-1)
            if a.size:
                if a.min() < 0 or a.max() >= n_db:
                    raise ValueError(
                        f"ground truth of query {q} lists {key!r} image {int(a.max())} outside a database of "
                        f"{n_db} images: do the rankings and the ground truth come from the same dataset?"
                    )
                codes[q, a] |= bit
    return codes


def _entries_from_ranks(ranks: np.ndarray, codes: np.ndarray):
    """Ground-truth entries in ranking order: query, 0-based position, flags (sorted by query, position)."""
    ranked = np.take_along_axis(codes, ranks, axis=1)
    q, pos = np.nonzero(ranked)
    return q, pos, ranked[q, pos]


def _entries_from_scores(scores: np.ndarray, codes: np.ndarray):
    """As :func:`_entries_from_ranks` for decreasing scores (ties: lower index first), without an argsort.

    Position = #(higher scores) + #(equal scores at a lower index). Sorting the values (far cheaper
    than an argsort) and one binary search per query over its ground-truth entries give the first term.
    """
    n_q, n_db = scores.shape
    q, idx = np.nonzero(codes)
    bits = codes[q, idx]
    asc = np.sort(scores, axis=1)
    vals = scores[q, idx]
    right = np.empty(q.size, dtype=np.int64)
    bounds = np.searchsorted(q, np.arange(n_q + 1))
    for r in range(n_q):
        a, b = bounds[r], bounds[r + 1]
        if b > a:
            right[a:b] = np.searchsorted(asc[r], vals[a:b], side="right")
    pos = n_db - right
    # another image with the same score sits just before in the ascending order: count the lower indices
    tied = np.nonzero((right >= 2) & (asc[q, np.maximum(right - 2, 0)] == vals))[0]
    for e in tied:  # rare with real descriptors
        pos[e] += int((scores[q[e], : idx[e]] == vals[e]).sum())
    order = np.argsort(q * n_db + pos, kind="stable")
    return q[order], pos[order], bits[order]


def _listed(gnd: Sequence[dict], keys) -> np.ndarray:
    """Per query, the total length of its ``keys`` lists, an image listed twice counted twice."""
    return np.array([sum(np.asarray(g.get(k, ()), dtype=np.int64).size for k in keys) for g in gnd], dtype=np.int64)


def revisited_map(scores_or_ranks, gnd: Sequence[dict], kappas=(1, 5, 10), n_db: int | None = None,
                  count_duplicates: bool = True) -> dict:
    """mAP and mean precision@k of the Easy, Medium and Hard settings, for all queries at once.

    ``scores_or_ranks``: a ``Q x N`` float similarity matrix (higher is better; ties rank the lower
    database index first, as :func:`rank` does), or a ``Q x K`` integer matrix whose row ``q`` lists
    database indices best first (``K < N`` allowed: images absent from a row are never retrieved;
    give ``n_db``). ``gnd[q]`` has index lists ``easy``, ``hard`` and ``junk`` (missing keys mean
    empty). Per setting, positives and ignored images are those of :data:`PROTOCOL`; ignored images
    are taken out of the ranking before AP; AP is the trapezoid rule over the recall steps
    ``1 / #positives``; precision@k follows revisitop (``k`` is capped at the rank of the last
    retrieved positive); a query without positives is left out of the setting's means.
    ``count_duplicates`` (default, as revisitop's ``compute_map``): the number of positives is the
    length of the positive lists, an image listed twice counted twice; False counts each image once.

    Only the ground-truth entries are located in the rankings, once for the three settings; the rest
    is work proportional to the ground truth.

    Returns ``{setting: {"map": float, "mp@k": {k: float}, "ap": Q array (nan when left out),
    "queries": int}}`` with mAP and precisions in [0, 1].
    """
    arr = np.asarray(scores_or_ranks)
    n_q = len(gnd)
    if arr.ndim != 2 or arr.shape[0] != n_q:
        raise ValueError(f"expected a Q x N matrix with one row per query ({n_q} in gnd), got shape {arr.shape}")
    kappas = tuple(int(k) for k in kappas)
    if any(k < 1 for k in kappas):
        raise ValueError(f"precision@k needs k >= 1, got {kappas}")
    if np.issubdtype(arr.dtype, np.integer):
        n_db = int(n_db if n_db is not None else max(arr.shape[1], int(arr.max(initial=-1)) + 1))
        if arr.size and (arr.min() < 0 or arr.max() >= n_db):
            raise ValueError(f"rankings hold database indices outside 0..{n_db - 1}")
        codes = _codes(gnd, n_db)
        q, pos, bits = _entries_from_ranks(arr.astype(np.intp, copy=False), codes)
    elif np.issubdtype(arr.dtype, np.floating):
        if np.isnan(arr).any():
            raise ValueError("the similarity matrix holds NaN: check the descriptors (an all-zero image?)")
        n_db = arr.shape[1]
        codes = _codes(gnd, n_db)
        q, pos, bits = _entries_from_scores(arr, codes)
    else:
        raise TypeError(f"scores_or_ranks must be float scores or integer ranks, got dtype {arr.dtype}")
    complete = arr.shape[1] == n_db  # every image ranked: the entries hold every ground-truth image
    starts = np.searchsorted(q, np.arange(n_q))  # first entry of each query
    out = {}
    for setting, (pos_keys, ign_keys) in PROTOCOL.items():
        pos_bits = sum(_BIT[k] for k in pos_keys)
        ign_bits = sum(_BIT[k] for k in ign_keys)
        is_pos = (bits & pos_bits) != 0
        if count_duplicates:
            n_pos = _listed(gnd, pos_keys)
        elif complete:
            n_pos = np.bincount(q[is_pos], minlength=n_q)
        else:  # positives missing from a truncated ranking still count
            n_pos = np.count_nonzero(codes & pos_bits, axis=1)
        is_ign = ((bits & ign_bits) != 0).astype(np.int64)
        # revisitop lowers a positive's position by the ignored images strictly before it
        ign_before = np.cumsum(is_ign) - is_ign
        ign_before -= ign_before[np.minimum(starts, max(len(q) - 1, 0))][q] if len(q) else 0
        pq = q[is_pos]
        r = (pos[is_pos] - ign_before[is_pos]).astype(np.float64)  # 0-based rank, ignored images removed
        cpos = np.cumsum(is_pos)
        j = (cpos[is_pos] - 1 - (cpos - is_pos)[np.minimum(starts, max(len(q) - 1, 0))][pq]).astype(np.float64)
        p0 = np.where(r == 0, 1.0, j / np.where(r == 0, 1.0, r))
        p1 = (j + 1) / (r + 1)
        valid = n_pos > 0
        ap = np.bincount(pq, weights=(p0 + p1) / (2.0 * np.maximum(n_pos[pq], 1)), minlength=n_q).astype(np.float64)
        ap[~valid] = np.nan
        last = np.zeros(n_q, dtype=np.float64)
        np.maximum.at(last, pq, r + 1)
        prs = {}
        for k in kappas:
            kq = np.minimum(last, k)
            hits = np.bincount(pq, weights=(r + 1 <= kq[pq]).astype(np.float64), minlength=n_q).astype(np.float64)
            pr = np.where(kq > 0, hits / np.maximum(kq, 1), 0.0)
            prs[k] = float(pr[valid].mean()) if valid.any() else float("nan")
        out[setting] = {
            "map": float(ap[valid].mean()) if valid.any() else float("nan"),
            "mp@k": prs,
            "ap": ap,
            "queries": int(valid.sum()),
        }
    return out


def map_table(result: dict, percent: bool = True) -> dict[str, float]:
    """``{"easy", "medium", "hard", "mean"}`` mAPs of one :func:`revisited_map` result (percent by default)."""
    scale = 100.0 if percent else 1.0
    row = {s: result[s]["map"] * scale for s in SETTINGS}
    row["mean"] = float(np.mean([row[s] for s in SETTINGS]))
    return row


__all__ = [
    "SETTINGS", "PROTOCOL", "mac", "conv_body", "descriptor_model", "size_groups", "extract",
    "similarities", "rank", "revisited_map", "map_table",
]
