"""GPU check of the transfer path (bfloat16 autocast + channels_last), random weights, synthetic uint8 data.

Seen on an NVIDIA H100 80GB HBM3 (2026-11-27, torch 2.11): every strategy trains and evaluates in
bfloat16 autocast + channels_last; the fold check read 1.5e-4 (resnet50) and 1.1e-3 (vgg16) with cuDNN's
default TF32 convolutions, hence TF32 is now off for that check. Accuracies are chance: labels are random.

Prints: the folded-vs-unfolded max difference on the GPU, that every strategy trains and evaluates,
and images/s of training and evaluation for resnet50 and vgg16 at 224x224. Exits non-zero on a failure.
"""
from __future__ import annotations

import copy
import sys
import time

import torch
import torchvision

from cwl_lib import strategies, transfer
from cwl_lib.data.classification import ImageSet, Split
from cwl_lib.models import has_batch_norm
from cwl_lib.studies import Context, classification
from cwl_lib.weighting import fold_weighting, sigma_parameters


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check")
        return 0
    dev = torch.device("cuda")
    print("GPU:", torch.cuda.get_device_name(dev))
    # The fold check compares in true fp32: TF32 convolutions (cuDNN's default) differ by ~1e-3.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    ok = True
    for arch in ("resnet50", "vgg16"):
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.manual_seed(0)
        base = torchvision.models.get_model(arch, weights=None).eval()
        weighted = transfer.prepare(copy.deepcopy(base), "freeze+cwl", 10).to(dev).eval()
        with torch.no_grad():
            for p in sigma_parameters(weighted):
                p.uniform_(0.5, 1.5)
            x = torch.randn(8, 3, 224, 224, device=dev)
            a = weighted(x)
            b = fold_weighting(copy.deepcopy(weighted))(x)
        diff = float((a - b).abs().max() / a.abs().max())
        torch.backends.cudnn.allow_tf32 = True  # back to the defaults the runs below use
        torch.backends.cuda.matmul.allow_tf32 = True
        print(f"{arch}: folded vs unfolded relative max diff (fp32, TF32 off) {diff:.2e}")
        ok &= diff < 1e-4
        g = torch.Generator().manual_seed(0)
        n_train, n_test = 64, 512
        imgs = torch.randint(0, 256, (n_train + n_test, 3, 224, 224), dtype=torch.uint8, generator=g)
        labels = torch.arange(n_train + n_test) % 10
        split = Split("synthetic", ImageSet(imgs[:n_train], labels[:n_train], [str(i) for i in range(10)]),
                      ImageSet(imgs[n_train:], labels[n_train:], [str(i) for i in range(10)]))
        context = Context(dev, load_split=lambda *_: split, load_model=lambda *_: base)
        for strategy in strategies.NAMES:
            if strategies.get(strategy).needs_bn and not has_batch_norm(arch):
                continue
            cfg = classification.Config("synthetic", arch, strategy, 6, 1e-3, 0, epochs=2, input_size=224)
            torch.cuda.synchronize()
            t = time.perf_counter()
            record = classification.run_one(cfg, context)
            torch.cuda.synchronize()
            secs = time.perf_counter() - t
            print(f"  {strategy:13s} acc {record['accuracy']:.3f} steps {record['train_steps']} "
                  f"{secs:.2f} s ({(record['n_train'] * 2 + n_test) / secs:.0f} img/s incl. eval)")
            ok &= 0.0 <= record["accuracy"] <= 1.0
        cfg = classification.Config("synthetic", arch, "freeze", 6, 1e-2, 0, epochs=5, input_size=224)
        cached = classification.run_one(cfg, context)
        plain = classification.run_one(cfg, context, cached=False)
        print(f"  freeze cached {cached['accuracy']:.3f} vs images {plain['accuracy']:.3f} "
              "(bf16 features: close, not necessarily equal)")
    print("GPU transfer check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
