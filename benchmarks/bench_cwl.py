"""CPU cost of Convolution Weighting Layers, measured in one run (random weights, no data needed).

For mobilenet_v2 and resnet50 it prints:
* train step time of ``freeze+cwl`` and ``finetune+cwl`` over ``finetune`` (one Adam step, batch 16);
* train step time of the CWLs as ``Weighted`` runs them (sigma scales the layer's weights) over the
  literal feature-map product;
* inference time of the folded CWL model over the plain backbone (target: at most 1.01; the folded
  model *is* the plain architecture, so the ratio measures noise), and of the unfolded CWL model.

Timings interleave the variants and keep the median of several rounds, which damps the noise of a
shared machine; ratios, not absolute times, are the result.

Seen 2026-11-27 on two cores (``taskset -c 0,1``, 2 threads) of the x86-64 CPU of the H100 device
machine, torch 2.11, ``--rounds 3``, batch 16 at 112x112:

=============================================  ============  ========
ratio                                          mobilenet_v2  resnet50
=============================================  ============  ========
freeze+cwl step / finetune step                0.893         0.739
finetune+cwl step / finetune step              1.187         1.154
folded CWL inference / plain inference         0.986         0.998
unfolded CWL inference / plain inference       1.263         1.106
=============================================  ============  ========

The folded ratio is within the 1.01 target (it is the same architecture; the spread is timing noise).
Those figures predate ``Weighted`` scaling its layer's weights; with it (2026-11-27, this project's 2-core
machine, ``--rounds 3 --repeat 2``): freeze+cwl / finetune 0.744 and 0.619, finetune+cwl / finetune 1.027
and 1.023, fused / feature-map product 0.829 and 0.871 (freeze+cwl), 0.837 and 0.901 (finetune+cwl).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torchvision

from cwl_lib import transfer
from cwl_lib.weighting import Weighted, fold_weighting, sigma_parameters


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def bench(arch: str, size: int, batch: int, rounds: int, repeat: int) -> dict[str, float]:
    torch.manual_seed(0)
    base = torchvision.models.get_model(arch, weights=None).eval()
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    names = ("finetune", "freeze+cwl", "finetune+cwl", "freeze+cwl product", "finetune+cwl product")
    models = {s: transfer.prepare(copy.deepcopy(base), s.split()[0], 10) for s in names}
    opts = {s: transfer.make_optimizer(m, 1e-4, 0.1) for s, m in models.items()}

    def step(s):
        def run():
            # "product": the CWL multiplies the feature map instead of scaling the layer's weights
            Weighted.fused = not s.endswith("product")
            try:
                m = transfer.set_train_mode(models[s], s.split()[0])
                loss = torch.nn.functional.cross_entropy(m(x), y)
                opts[s].zero_grad(set_to_none=True)
                loss.backward()
                opts[s].step()
            finally:
                Weighted.fused = True
        return run

    plain = transfer.prepare(copy.deepcopy(base), "freeze", 10).eval()
    weighted = transfer.prepare(copy.deepcopy(base), "freeze+cwl", 10).eval()
    with torch.no_grad():
        for p in sigma_parameters(weighted):
            p.uniform_(0.5, 1.5)
    folded = fold_weighting(copy.deepcopy(weighted)).eval()
    infer = {"plain": plain, "folded": folded, "weighted": weighted}

    def forward(m):
        def run():
            with torch.no_grad():
                m(x)
        return run

    times: dict[str, list[float]] = {k: [] for k in [*models, *infer]}
    for _ in range(rounds):
        for s in models:
            times[s].append(_time(step(s), repeat))
        for k, m in infer.items():
            times[k].append(_time(forward(m), repeat))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "freeze+cwl step / finetune step": med["freeze+cwl"] / med["finetune"],
        "finetune+cwl step / finetune step": med["finetune+cwl"] / med["finetune"],
        "freeze+cwl step, fused / feature-map product": med["freeze+cwl"] / med["freeze+cwl product"],
        "finetune+cwl step, fused / feature-map product": med["finetune+cwl"] / med["finetune+cwl product"],
        "folded CWL inference / plain inference": med["folded"] / med["plain"],
        "unfolded CWL inference / plain inference": med["weighted"] / med["plain"],
        "finetune step (ms)": 1000 * med["finetune"],
        "plain inference (ms)": 1000 * med["plain"],
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mobilenet_v2", "resnet50"])
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"CPU, {torch.get_num_threads()} threads, batch {args.batch} x 3 x {args.size} x {args.size}, "
          f"median of {args.rounds} interleaved rounds of {args.repeat} calls")
    for arch in args.archs:
        print(f"\n{arch}")
        for name, value in bench(arch, args.size, args.batch, args.rounds, args.repeat).items():
            print(f"  {name:44s} {value:8.3f}")


if __name__ == "__main__":
    main()
