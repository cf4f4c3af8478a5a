"""Retrieval speed on the CPU, printed as ratios measured in one run (never asserted in tests).

1. The revisited protocol on a ROxford5k-sized problem (70 queries x 4,993 images, ground-truth list
   sizes like the real ones): vectorized ``revisited_map`` against the per-query loop of the tests.
2. MAC extraction throughput of MobileNetV2 (random weights: speed does not depend on them) at
   images' own sizes, batched by size.

Usage: .venv/bin/python benchmarks/bench_retrieval.py
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from revisitop_loop import revisited_map_loop, revisited_map_revisitop  # noqa: E402

from cwl_lib.retrieval import conv_body, extract, rank, revisited_map  # noqa: E402


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def protocol(q=70, n=4993, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((q, n)).astype(np.float32)
    gnd = []
    for _ in range(q):
        perm = rng.permutation(n)
        ne, nh, nj = rng.integers(5, 120), rng.integers(5, 200), rng.integers(10, 300)
        gnd.append({"easy": perm[:ne], "hard": perm[ne:ne + nh], "junk": perm[ne + nh:ne + nh + nj]})
    ranks = rank(scores)
    for what, x in (("rankings", ranks), ("scores, ranking included", scores)):
        t_vec, fast = best_of(lambda: revisited_map(x, gnd), 7)
        t_loop, slow = best_of(lambda: revisited_map_loop(x, gnd), 2)
        t_ref, ref = best_of(lambda: revisited_map_revisitop(x, gnd), 3)
        for s in fast:
            assert abs(fast[s]["map"] - slow[s]["map"]) < 1e-12 and abs(fast[s]["map"] - ref[s]["map"]) < 1e-12
        print(f"revisited protocol, {q} x {n}, from {what}: vectorized {t_vec * 1e3:.1f} ms; "
              f"plain per-query loop {t_loop * 1e3:.0f} ms (ratio {t_loop / t_vec:.0f}x); "
              f"revisitop-style per-query numpy {t_ref * 1e3:.1f} ms (ratio {t_ref / t_vec:.1f}x)")


def extraction(n=48, sizes=((240, 320), (320, 240), (288, 288))):
    import torchvision

    torch.manual_seed(0)
    body = conv_body(torchvision.models.mobilenet_v2(weights=None))
    images = [torch.randint(0, 256, (3, *sizes[i % len(sizes)]), dtype=torch.uint8) for i in range(n)]
    extract(body, images[:4], batch_size=4)  # warm-up
    t, d = best_of(lambda: extract(body, images, batch_size=16), 2)
    print(f"MAC extraction, mobilenet_v2, CPU ({torch.get_num_threads()} threads), {n} images of "
          f"{len(sizes)} sizes ~320x240: {n / t:.1f} images/s, descriptor dim {d.shape[1]}")


if __name__ == "__main__":
    protocol()
    extraction()
