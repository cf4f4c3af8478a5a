"""GPU check of training steps replayed from CUDA graphs (cwl_lib.graphed): same run, and how much faster.

1. Same run: transfer.train with and without graphs, fp32 with TF32 off, at 64x64 on 20 images in
   batches of 8 (so a short last batch gets its own graph), 6 epochs: per-epoch losses and the trained
   parameters compared, for resnet50 finetune+cwl, resnet50 bn-affine and vgg16 freeze+cwl; and the
   bf16 autocast losses of both.
2. Speed at the paper's setting (224x224, batch 32, bf16 + channels_last): milliseconds per step with
   and without graphs, from two runs of different lengths (capture and warm-up cancel out).

Random weights and synthetic uint8 images. Exits non-zero when a comparison fails.

Seen on an H100 (2026-11-27, torch 2.11, before the deterministic kernels and the eager-vs-eager
baseline were added): bf16 losses identical with and without graphs for all three; fp32 vgg16
freeze+cwl identical to 1e-7, resnet50 bn-affine within 1.3e-4, resnet50 finetune+cwl within 1.5e-3
(FAILED against 1e-4) from a loss of 42 at the start; steps 1.9-2.5x faster for resnet50, 0.94-1.02x for
vgg16.
"""
from __future__ import annotations

import copy
import sys
import time

import torch
import torchvision

from cwl_lib import transfer


def data(n, size, gen):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen), torch.arange(n) % 10


def trained(model, strategy, images, labels, size, batch, epochs, dev, graphs, amp):
    m = copy.deepcopy(model)
    batches = transfer.image_batches(images.to(dev), labels.to(dev), batch, 7, size)
    result = transfer.train(m, batches, strategy, 1e-3, epochs, dev, amp=amp, cuda_graphs=graphs)
    return m, result


def check_same(dev) -> bool:
    # cuDNN's default weight-gradient kernels accumulate with atomics, so two eager runs differ too, and a
    # random network whose loss starts in the tens amplifies that: compare with deterministic kernels, and
    # print the eager-vs-eager gap as the baseline (the first GPU run of this check had neither)
    torch.backends.cudnn.deterministic = True
    ok = True
    gen = torch.Generator().manual_seed(0)
    images, labels = data(20, 64, gen)
    for arch, strategy in (("resnet50", "finetune+cwl"), ("resnet50", "bn-affine"), ("vgg16", "freeze+cwl")):
        torch.manual_seed(0)
        model = transfer.prepare(torchvision.models.get_model(arch, weights=None).eval(), strategy, 10,
                                 torch.zeros(1, 3, 64, 64))
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        (a, ra), (b, rb), (c, rc) = (trained(model, strategy, images, labels, 64, 8, 6, dev, g, False)
                                     for g in (False, True, False))
        gaps = [float((pa.detach() - pb.detach()).abs().max()) for pa, pb in zip(a.parameters(), b.parameters())]
        loss_gap = max(abs(x - y) / abs(x) for x, y in zip(ra.losses, rb.losses))
        baseline = max(abs(x - y) / abs(x) for x, y in zip(ra.losses, rc.losses))
        print(f"{arch} {strategy}: eager vs eager, largest relative loss gap {baseline:.1e}")
        same = loss_gap < 1e-4 and max(gaps) < 1e-4
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True
        (_, ba), (_, bb) = (trained(model, strategy, images, labels, 64, 8, 6, dev, g, True) for g in (False, True))
        bf16_gap = max(abs(x - y) / abs(x) for x, y in zip(ba.losses, bb.losses))
        same = same and bf16_gap < 2e-2
        ok &= same
        print(f"{arch} {strategy}: fp32 losses {['%.4f' % v for v in ra.losses]} vs graphs "
              f"{['%.4f' % v for v in rb.losses]}; largest relative loss gap {loss_gap:.1e}, largest parameter "
              f"gap {max(gaps):.1e}; bf16 loss gap {bf16_gap:.1e} ({'ok' if same else 'FAILED'})", flush=True)
    return ok


def step_ms(model, strategy, dev, graphs, size=224, batch=32, epochs=(6, 26)) -> float:
    images, labels = data(batch, size, torch.Generator().manual_seed(1))
    times = []
    for e in (epochs[0], *epochs):  # the first call warms cuDNN and the allocator
        torch.cuda.synchronize()
        t = time.perf_counter()
        trained(model, strategy, images, labels, size, batch, e, dev, graphs, True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return 1e3 * (times[2] - times[1]) / (epochs[1] - epochs[0])


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check")
        return 0
    dev = torch.device("cuda")
    print("GPU:", torch.cuda.get_device_name(dev), "torch", torch.__version__, flush=True)
    ok = check_same(dev)
    torch.backends.cudnn.deterministic = False
    torch.backends.cudnn.benchmark = True  # as run_grid sets it
    print("arch      strategy       eager ms/step  graphs ms/step  speed-up")
    for arch, strategies in (("resnet50", ("freeze+cwl", "bn-affine", "finetune", "finetune+cwl")),
                             ("vgg16", ("freeze+cwl", "finetune", "finetune+cwl"))):
        base = torchvision.models.get_model(arch, weights=None).eval()
        for strategy in strategies:
            model = transfer.prepare(copy.deepcopy(base), strategy, 10)
            eager, fast = step_ms(model, strategy, dev, False), step_ms(model, strategy, dev, True)
            print(f"{arch:9s} {strategy:13s} {eager:12.2f}  {fast:14.2f}  {eager / fast:7.2f}x", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
