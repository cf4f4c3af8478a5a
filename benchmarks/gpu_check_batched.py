"""GPU check of runs trained together (cwl_lib.batched): the same result as one by one, and the speed-up.

1. Correctness on the GPU, fp32 with TF32 off: two resnet50 finetune+cwl runs trained together equal the
   same runs trained one by one (at 64x64, a few steps), and a bf16 + channels_last unit trains.
2. Speed at the paper's setting (224x224, batch 32, bf16 + channels_last): one training step with the
   CWLs scaling their layer's weights (as Weighted does) against the literal feature-map product; and
   the time of one training step of a unit of K runs, for K = 1 and 8, per strategy and arch; prints seconds per run-step, the ratio to
   K = 1 and the peak GPU memory. A unit that does not fit in memory is reported, not fatal.

Random weights and synthetic uint8 images (timing and equivalence need no pretrained weights).
"""
from __future__ import annotations

import copy
import sys
import time

import torch
import torchvision

from cwl_lib import batched, experiments, transfer
from cwl_lib.runtime import seed_everything
from cwl_lib.weighting import Weighted


def runs_for(model, k_runs, n, size, lrs, gen):
    out = []
    for k in range(k_runs):
        seed_everything(100 + k)
        head = experiments.fresh_head(transfer.head(model))
        out.append(batched.Run(lrs[k % len(lrs)], 100 + k,
                               torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen),
                               torch.arange(n) % 10, {a: p.detach() for a, p in head.named_parameters()}))
    return out


def check_equal(dev) -> bool:
    """float64 on the GPU: float32 rounding, amplified by a deep random network and by Adam's sign-like
    first steps, would hide a real difference (see tests/test_batched.py)."""
    torch.manual_seed(0)
    model = transfer.prepare(torchvision.models.resnet50(weights=None).eval(), "finetune+cwl", 10,
                             torch.zeros(1, 3, 64, 64)).double()
    runs = runs_for(model, 2, 16, 64, (1e-4, 1e-3), torch.Generator().manual_seed(0))
    trained = batched.train_runs(copy.deepcopy(model), runs, "finetune+cwl", 2, 8, dev, input_size=64, amp=False,
                                 channels_last=False)
    differ = total = 0
    worst = 0.0
    for k, run in enumerate(runs):
        ref = copy.deepcopy(model)
        transfer.head(ref).load_state_dict(run.head)
        batches = transfer.image_batches(run.images, run.labels, 8, run.seed, 64)
        transfer.train(ref, lambda e: ((x.double(), y) for x, y in batches(e)), "finetune+cwl", run.lr, 2, dev,
                       amp=False, channels_last=False)
        params = dict(trained.load(k).named_parameters())
        for name, p in ref.named_parameters():
            gap = (params[name].detach() - p.detach()).abs()
            differ += int((gap > 1e-9 + 1e-6 * p.detach().abs()).sum())
            total += gap.numel()
            worst = max(worst, float(gap.max()))
    ok = differ / total <= 1e-5 and worst < 1e-5  # 1% of one step at the larger learning rate
    print(f"together vs one by one, resnet50 finetune+cwl, float64 on the GPU: {differ} of {total} parameters "
          f"beyond 1e-9 + 1e-6 relative, largest gap {worst:.1e} ({'ok' if ok else 'FAILED'})")
    return ok


def step_time(arch, strategy, k_runs, dev, size=224, batch=32, steps=(2, 6), fused=True) -> tuple[float, float]:
    torch.manual_seed(0)
    model = transfer.prepare(torchvision.models.get_model(arch, weights=None).eval(), strategy, 10)
    runs = runs_for(model, k_runs, batch, size, transfer.lr_grid(strategy), torch.Generator().manual_seed(1))
    torch.cuda.reset_peak_memory_stats(dev)

    def timed(epochs):
        torch.cuda.synchronize()
        t = time.perf_counter()
        Weighted.fused = fused
        try:
            if k_runs == 1:
                r = runs[0]
                m = copy.deepcopy(model)
                transfer.train(m, transfer.image_batches(r.images.to(dev), r.labels.to(dev), batch, r.seed, size),
                               strategy, r.lr, epochs, dev)
            else:
                batched.train_runs(copy.deepcopy(model), runs, strategy, epochs, batch, dev, input_size=size)
            torch.cuda.synchronize()
        finally:
            Weighted.fused = True
        return time.perf_counter() - t

    timed(steps[0])  # warm-up: cuDNN autotuning, allocator
    t0, t1 = timed(steps[0]), timed(steps[1])
    return (t1 - t0) / (steps[1] - steps[0]), torch.cuda.max_memory_allocated(dev) / 2**30


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check")
        return 0
    dev = torch.device("cuda")
    print("GPU:", torch.cuda.get_device_name(dev), "torch", torch.__version__)
    ok = check_equal(dev)
    print("CWL as Weighted runs it (sigma scales the layer's weights) vs the literal feature-map product, K = 1")
    for arch in ("resnet50", "vgg16"):
        for strategy in ("freeze+cwl", "finetune+cwl"):
            fused, mem_f = step_time(arch, strategy, 1, dev)
            product, mem_p = step_time(arch, strategy, 1, dev, fused=False)
            print(f"{arch:9s} {strategy:13s} step {1e3 * fused:6.1f} ms vs {1e3 * product:6.1f} ms "
                  f"({product / fused:4.2f}x faster); peak {mem_f:5.1f} vs {mem_p:5.1f} GiB", flush=True)
            torch.cuda.empty_cache()
    print("arch      strategy       K  s/step  s/run-step  vs K=1  peak GiB")
    for arch in ("resnet50", "vgg16"):
        for strategy in ("freeze+cwl", "bn-affine", "finetune", "finetune+cwl"):
            if strategy == "bn-affine" and arch == "vgg16":
                continue
            base = None
            for k_runs in (1, 8):
                try:
                    step, mem = step_time(arch, strategy, k_runs, dev)
                except torch.cuda.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    print(f"{arch:9s} {strategy:13s} {k_runs:2d}  out of GPU memory")
                    break
                base = base or step
                print(f"{arch:9s} {strategy:13s} {k_runs:2d}  {step:6.3f}  {step / k_runs:9.4f}  "
                      f"{base / (step / k_runs):5.1f}x  {mem:6.1f}", flush=True)
                torch.cuda.empty_cache()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
