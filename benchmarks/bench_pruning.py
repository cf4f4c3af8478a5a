"""How close does the measured speed-up of a pruned network come to its FLOPs reduction?

For MobileNetV2 and ResNet-50 (random weights, CWLs inserted, sigmas drawn so that a known share of
each layer falls under tau) this prints, for a few taus, with and without rounding the kept channel
counts to multiples of 8: parameters and FLOPs kept (Torch-Pruning's counter) and the measured CPU
latency of the pruned network over the unpruned one (CWLs folded in both, median of forward passes
timed in turn). One run, ratios only; no assertion.

    .venv/bin/python benchmarks/bench_pruning.py [--archs mobilenet_v2 resnet50] [--size 160] [--batch 8]

On a shared machine set OMP_WAIT_POLICY=PASSIVE (busy-waiting OpenMP threads slow torch by an order
of magnitude when the cores are oversubscribed) and read the latency column with the load in mind.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform

import torch
import torch_pruning as tp
import torchvision

from cwl_lib import pruning, transfer
from cwl_lib.weighting import fold_weighting, weighted_layers


def build(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = transfer.prepare(torchvision.models.get_model(arch, weights=None), "freeze+cwl", 10)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in weighted_layers(model).values():
            # |sigma| uniform on [0, 1.5): tau = t removes about t / 1.5 of an uncoupled layer
            w.weighting.sigma.copy_(torch.rand(w.weighting.sigma.shape, generator=gen) * 1.5)
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mobilenet_v2", "resnet50"])
    ap.add_argument("--taus", nargs="+", type=float, default=[0.3, 0.6, 0.9, 1.2])
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, input {args.batch}x3x{args.size}x{args.size}")
    example = torch.zeros(1, 3, args.size, args.size)
    for arch in args.archs:
        model = build(arch)
        plain = fold_weighting(copy.deepcopy(model))
        flops0, params0 = tp.utils.count_ops_and_params(plain, example)
        t0 = pruning.latency(model, (3, args.size, args.size), args.batch, repeats=args.repeats)
        print(f"\n{arch}: {params0 / 1e6:.2f} M parameters, {flops0 / 1e9:.2f} GMACs per image, "
              f"{1e3 * t0:.1f} ms per batch unpruned")
        print(f"{'tau':>5} {'round_to':>8} {'params':>8} {'FLOPs':>8} {'latency':>8} {'speed-up':>9} {'FLOPs^-1':>9}")
        for tau in args.taus:
            for round_to in (1, 8):
                pruned, _ = pruning.prune(model, tau, round_to=round_to, example_input=example)
                flops, params = tp.utils.count_ops_and_params(fold_weighting(copy.deepcopy(pruned)), example)
                # unpruned and pruned timed in turn, so a change of load hits both alike
                tm, t = pruning.latencies([model, pruned], (3, args.size, args.size), args.batch,
                                          repeats=args.repeats)
                print(f"{tau:5.2f} {round_to:8d} {params / params0:8.3f} {flops / flops0:8.3f} {t / tm:8.3f} "
                      f"{tm / t:9.2f} {flops0 / flops:9.2f}")


if __name__ == "__main__":
    main()
