"""Section III-A: Van Loan's rearrangement R(A), the nearest Kronecker product and rank-k sums.

Conventions used throughout (one consistent ``vec``):

* ``vec(M)`` is the row-major flattening ``M.reshape(-1)``;
* ``A`` has shape ``(..., m1*m2, n1*n2)`` and is seen as an ``m1 x n1`` grid of ``m2 x n2`` blocks;
* ``R(A)`` has shape ``(..., m1*n1, m2*n2)``: row ``i*n1 + j`` is ``vec`` of block ``(i, j)``.

With these, ``rearrange(torch.kron(B, C)) == outer(vec(B), vec(C))`` and, because ``R`` only permutes
entries, ``||A - B (x) C||_F == ||R(A) - vec(B) vec(C)^T||_F`` (Theorem 1). The best rank-k sum of
Kronecker products is therefore read off the truncated SVD of ``R(A)``, and its error is the tail
``sqrt(sum_{i>k} sigma_i^2)`` of the singular values of ``R(A)`` (Eckart-Young).

Every function takes float32 or float64 tensors on any device; leading dimensions are batch dimensions.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import skimage.data
import torch
from skimage.transform import resize
from skimage.util import img_as_float64

Shape2 = Sequence[int]


def _shapes(b_shape: Shape2, c_shape: Shape2) -> tuple[int, int, int, int]:
    m1, n1 = (int(s) for s in b_shape)
    m2, n2 = (int(s) for s in c_shape)
    if min(m1, n1, m2, n2) < 1:
        raise ValueError(f"factor shapes must be positive, got B {tuple(b_shape)} and C {tuple(c_shape)}")
    return m1, n1, m2, n2


def _check_matrix(A: torch.Tensor, m: int, n: int, what: str) -> None:
    if A.dim() < 2 or tuple(A.shape[-2:]) != (m, n):
        raise ValueError(f"{what} must have shape (..., {m}, {n}), got {tuple(A.shape)}")


def rearrange(A: torch.Tensor, b_shape: Shape2, c_shape: Shape2) -> torch.Tensor:
    """Van Loan's R(A): shape ``(..., m1*m2, n1*n2)`` -> ``(..., m1*n1, m2*n2)``, one block per row."""
    m1, n1, m2, n2 = _shapes(b_shape, c_shape)
    _check_matrix(A, m1 * m2, n1 * n2, "A (with these factor shapes)")
    lead = A.shape[:-2]
    blocks = A.reshape(*lead, m1, m2, n1, n2).transpose(-3, -2)  # (..., m1, n1, m2, n2)
    return blocks.reshape(*lead, m1 * n1, m2 * n2)


def unrearrange(R: torch.Tensor, b_shape: Shape2, c_shape: Shape2) -> torch.Tensor:
    """The inverse of :func:`rearrange`: ``(..., m1*n1, m2*n2)`` -> ``(..., m1*m2, n1*n2)``."""
    m1, n1, m2, n2 = _shapes(b_shape, c_shape)
    _check_matrix(R, m1 * n1, m2 * n2, "R")
    lead = R.shape[:-2]
    return R.reshape(*lead, m1, n1, m2, n2).transpose(-3, -2).reshape(*lead, m1 * m2, n1 * n2)


def kron_sum(B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """``sum_r B[r] (x) C[r]`` for ``B`` of shape ``(..., rank, m1, n1)`` and ``C`` of ``(..., rank, m2, n2)``.

    Two plain matrices are accepted as a rank-1 sum, i.e. ``torch.kron(B, C)``.
    """
    if B.dim() == 2 and C.dim() == 2:
        B, C = B.unsqueeze(0), C.unsqueeze(0)
    if B.dim() < 3 or C.dim() < 3 or B.shape[:-2] != C.shape[:-2]:
        raise ValueError(
            f"B and C must be stacks (..., rank, m, n) with the same leading shape, got {tuple(B.shape)} and {tuple(C.shape)}"
        )
    m1, n1 = B.shape[-2:]
    m2, n2 = C.shape[-2:]
    lead = B.shape[:-3]
    out = torch.einsum("...rij,...rkl->...ikjl", B, C)
    return out.reshape(*lead, m1 * m2, n1 * n2)


def _fix_signs(U: torch.Tensor, Vh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Make each singular pair's largest-magnitude entry of u positive: the same factors on every device."""
    idx = U.abs().argmax(dim=-2, keepdim=True)  # (..., 1, k)
    sign = torch.sign(torch.gather(U, -2, idx))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return U * sign, Vh * sign.transpose(-2, -1)


def kronecker_svd(A: torch.Tensor, b_shape: Shape2, c_shape: Shape2):
    """Thin SVD of R(A) with deterministic signs: ``(U, S, Vh)`` with ``R(A) = U diag(S) Vh``."""
    R = rearrange(A, b_shape, c_shape)
    U, S, Vh = torch.linalg.svd(R, full_matrices=False)
    U, Vh = _fix_signs(U, Vh)
    return U, S, Vh


def max_kronecker_rank(b_shape: Shape2, c_shape: Shape2) -> int:
    """The largest number of Kronecker terms that can help: ``min(m1*n1, m2*n2)``."""
    m1, n1, m2, n2 = _shapes(b_shape, c_shape)
    return min(m1 * n1, m2 * n2)


def _factors(U, S, Vh, rank: int, lead, m1: int, n1: int, m2: int, n2: int):
    root = S[..., :rank].sqrt()
    Bv = U[..., :, :rank] * root.unsqueeze(-2)  # (..., m1*n1, rank)
    Cv = Vh[..., :rank, :] * root.unsqueeze(-1)  # (..., rank, m2*n2)
    return Bv.transpose(-2, -1).reshape(*lead, rank, m1, n1), Cv.reshape(*lead, rank, m2, n2)


def _check_rank(rank, top: int) -> int:
    if not 1 <= int(rank) <= top:
        raise ValueError(f"rank must be between 1 and min(m1*n1, m2*n2) = {top}, got {rank}")
    return int(rank)


def nearest_kronecker(A: torch.Tensor, b_shape: Shape2, c_shape: Shape2, rank: int = 1):
    """The best ``sum_{r<rank} B[r] (x) C[r]`` approximation of ``A`` in Frobenius norm (Eq. 2).

    Returns ``(B, C)`` of shapes ``(..., rank, m1, n1)`` and ``(..., rank, m2, n2)``, each term
    carrying ``sqrt(sigma_r)`` of the singular value of R(A), as in the paper.
    """
    m1, n1, m2, n2 = _shapes(b_shape, c_shape)
    rank = _check_rank(rank, min(m1 * n1, m2 * n2))
    U, S, Vh = kronecker_svd(A, b_shape, c_shape)
    return _factors(U, S, Vh, rank, A.shape[:-2], m1, n1, m2, n2)


def kronecker_approximations(A: torch.Tensor, b_shape: Shape2, c_shape: Shape2, ranks: Sequence[int]):
    """``[sum_{r<k} B[r] (x) C[r] for k in ranks]`` from a single SVD of R(A)."""
    m1, n1, m2, n2 = _shapes(b_shape, c_shape)
    top = min(m1 * n1, m2 * n2)
    ranks = [_check_rank(k, top) for k in ranks]
    U, S, Vh = kronecker_svd(A, b_shape, c_shape)
    B, C = _factors(U, S, Vh, max(ranks), A.shape[:-2], m1, n1, m2, n2)
    return [kron_sum(B[..., :k, :, :], C[..., :k, :, :]) for k in ranks]


def kronecker_singular_values(A: torch.Tensor, b_shape: Shape2, c_shape: Shape2) -> torch.Tensor:
    """Singular values of R(A), largest first: how much each extra Kronecker term can explain."""
    return torch.linalg.svdvals(rearrange(A, b_shape, c_shape))


def tail_norms(singular_values: torch.Tensor) -> torch.Tensor:
    """``t[k] = sqrt(sum_{i>=k} sigma_i^2)`` for k = 0..len: the rank-k error predicted by Eckart-Young."""
    sq = singular_values.square().flip(-1).cumsum(-1).flip(-1)
    zero = torch.zeros_like(sq[..., :1])
    return torch.cat([sq, zero], dim=-1).clamp_min(0).sqrt()


def kronecker_errors(A: torch.Tensor, b_shape: Shape2, c_shape: Shape2, ranks: Sequence[int]):
    """For each rank k: the measured ``||A - sum_k B (x) C||_F`` and the predicted singular-value tail.

    Returns two tensors of shape ``(..., len(ranks))``: ``(measured, predicted)``.
    """
    tails = tail_norms(kronecker_singular_values(A, b_shape, c_shape))
    approx = kronecker_approximations(A, b_shape, c_shape, ranks)
    measured = [torch.linalg.matrix_norm(A - a) for a in approx]
    predicted = [tails[..., int(k)] for k in ranks]
    return torch.stack(measured, -1), torch.stack(predicted, -1)


def theorem1_gap(A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """``| ||A - B (x) C||_F - ||R(A) - vec(B) vec(C)^T||_F |`` relative to ``||A||_F`` (batched over A, B, C)."""
    b_shape, c_shape = B.shape[-2:], C.shape[-2:]
    left = torch.linalg.matrix_norm(A - kron_sum(B.unsqueeze(-3), C.unsqueeze(-3)))
    vb = B.reshape(*B.shape[:-2], -1)
    vc = C.reshape(*C.shape[:-2], -1)
    right = torch.linalg.matrix_norm(rearrange(A, b_shape, c_shape) - vb.unsqueeze(-1) * vc.unsqueeze(-2))
    scale = torch.linalg.matrix_norm(A).clamp_min(torch.finfo(A.dtype).tiny)
    return (left - right).abs() / scale


def conv_weight_matrix(weight: torch.Tensor):
    """A conv weight ``(out, in, kh, kw)`` laid out as ``A`` with ``B`` channel-by-channel and ``C`` spatial.

    Returns ``(A, b_shape, c_shape)`` with ``A`` of shape ``(out*kh, in*kw)``, ``b_shape = (out, in)``
    and ``c_shape = (kh, kw)``; then ``R(A)`` is ``weight.reshape(out*in, kh*kw)`` and the nearest
    Kronecker product separates channel mixing from one shared spatial kernel.
    """
    if weight.dim() != 4:
        raise ValueError(f"a 2-d convolution weight has shape (out, in, kh, kw), got {tuple(weight.shape)}")
    out, cin, kh, kw = weight.shape
    A = weight.permute(0, 2, 1, 3).reshape(out * kh, cin * kw)
    return A, (out, cin), (kh, kw)


def image_blocks(image: torch.Tensor, block: int):
    """Crop an image ``(..., H, W)`` to multiples of ``block``; return it with ``b_shape``, ``c_shape``.

    ``B`` is then the coarse ``(H/block, W/block)`` layout and ``C`` a ``block x block`` texture patch.
    """
    H, W = image.shape[-2:]
    h, w = (H // block) * block, (W // block) * block
    if h == 0 or w == 0:
        raise ValueError(f"image of size {H}x{W} is smaller than one {block}x{block} block")
    return image[..., :h, :w], (h // block, w // block), (block, block)


def psnr(reference: torch.Tensor, estimate: torch.Tensor, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all entries."""
    mse = torch.mean((reference - estimate) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)


def sample_photo(name: str = "camera", size: int | None = None) -> torch.Tensor:
    """A scikit-image sample photograph as a float64 tensor ``(channels, H, W)`` in [0, 1].

    ``size`` rescales the longest side (anti-aliased, deterministic); ``None`` keeps the original.
    """
    loader = getattr(skimage.data, name, None)
    if loader is None or not callable(loader):
        raise ValueError(f"scikit-image has no sample image {name!r} (try 'camera', 'astronaut', 'coffee')")
    img = img_as_float64(loader())
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if size is not None:
        scale = size / max(img.shape[:2])
        shape = (max(1, round(img.shape[0] * scale)), max(1, round(img.shape[1] * scale)))
        img = resize(img, shape + img.shape[2:], anti_aliasing=True)
    img = np.clip(img, 0.0, 1.0)
    t = torch.from_numpy(np.ascontiguousarray(img))
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()
