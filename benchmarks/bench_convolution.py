"""Speed of Section III's building blocks on this machine's CPU, as ratios measured in one run.

* im2col convolution (Eq. 3) relative to ``F.conv2d`` on a few real-shaped MobileNetV2 / VGG layers;
* one SVD for all ranks (``kronecker_approximations``) relative to one SVD per rank.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from cwl_lib import convolution as conv
from cwl_lib import kronecker as K


def timed(fn, reps=5):
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def main():
    torch.manual_seed(0)
    print("layer (in -> out, kernel, input)           im2col / F.conv2d")
    for cin, cout, k, size, stride in [(3, 32, 3, 112, 2), (32, 64, 3, 56, 1), (64, 128, 3, 28, 1), (96, 24, 1, 28, 1)]:
        x = torch.randn(1, cin, size, size)
        w = torch.randn(cout, cin, k, k)
        ratio = timed(lambda: conv.conv2d_as_matmul(x, w, stride=stride, padding=k // 2)) / timed(
            lambda: F.conv2d(x, w, stride=stride, padding=k // 2))
        print(f"{cin:4d} -> {cout:4d}, {k}x{k}, {size}x{size}, stride {stride}      {ratio:6.2f}")
    A = torch.rand(3, 512, 512, dtype=torch.float64)
    ranks = [1, 2, 4, 8, 16, 32, 64]
    one = timed(lambda: K.kronecker_approximations(A, (32, 32), (16, 16), ranks), reps=2)
    each = timed(lambda: [K.kron_sum(*K.nearest_kronecker(A, (32, 32), (16, 16), rank=k)) for k in ranks], reps=2)
    print(f"rank-k photo approximations, {len(ranks)} ranks: one SVD / one SVD per rank = {one / each:.2f}")


if __name__ == "__main__":
    main()
