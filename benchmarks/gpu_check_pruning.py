"""GPU check of pruning: surgery on CUDA tensors, pruned == masked, a finetuning study step, GPU latency.

Random weights, synthetic uint8 data. Prints, per architecture, the relative max difference between the
pruned network and the unpruned one with the sub-tau sigmas zeroed (fp32, on the GPU), the kept
parameters, and the measured GPU latency ratio at 224x224, batch 32; then runs a tiny
:mod:`cwl_lib.studies.pruning` (bfloat16 autocast path) end to end. Exits non-zero on a failure.
"""
from __future__ import annotations

import copy
import sys
import tempfile

import torch
import torchvision

from cwl_lib import executor, profiles, pruning, transfer
from cwl_lib.data.classification import ImageSet, Split
from cwl_lib.records import Store
from cwl_lib.studies import Context
from cwl_lib.studies import pruning as study
from cwl_lib.weighting import weighted_layers


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check")
        return 0
    dev = torch.device("cuda")
    print("GPU:", torch.cuda.get_device_name(dev))
    ok = True
    tau = 0.6
    # TF32 convolutions differ from fp32 by ~1e-3 relative on VGG-16: compare in true fp32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    for arch in ("vgg16", "resnet50", "mobilenet_v2"):
        torch.manual_seed(0)
        model = transfer.prepare(torchvision.models.get_model(arch, weights=None), "freeze+cwl", 8).to(dev).eval()
        with torch.no_grad():
            for w in weighted_layers(model).values():
                w.weighting.sigma.uniform_(0, 2)
        pruned, plan = pruning.prune(model, tau, example_input=torch.zeros(1, 3, 224, 224, device=dev))
        masked = copy.deepcopy(model)
        with torch.no_grad():
            for w in weighted_layers(masked).values():
                s = w.weighting.sigma
                s[s.abs() < tau] = 0
            x = torch.randn(4, 3, 224, 224, device=dev)
            a, b = masked(x), pruned.eval()(x)
        diff = float((a - b).abs().max() / a.abs().max())
        kept = pruning.count_parameters(pruned) / pruning.count_parameters(model)
        t0, t1 = pruning.latencies([model, pruned], (3, 224, 224), 32, repeats=20, device=dev)
        print(f"{arch}: pruned vs masked rel. diff {diff:.2e}; params kept {kept:.3f}; "
              f"GPU latency {1e3 * t0:.1f} -> {1e3 * t1:.1f} ms (ratio {t1 / t0:.2f})")
        ok &= diff < 1e-4 and kept < 1
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (160, 3, 224, 224), dtype=torch.uint8, generator=g)
    labels = torch.arange(160) % 8
    classes = [str(i) for i in range(8)]
    split = Split("synthetic", ImageSet(imgs[:80], labels[:80], classes), ImageSet(imgs[80:], labels[80:], classes))
    params = {**profiles.parameters("paper", "05_pruning"), "dataset": "synthetic", "arch": "resnet50", "shots": 10,
              "taus": [0.9, 1.0], "epochs": 2, "finetune_epochs": [1, 2], "latency_batch": 32, "figure_archs": []}
    context = Context(dev, load_split=lambda *_: split,
                      load_model=lambda *_: torchvision.models.get_model("resnet50", weights=None))
    with tempfile.TemporaryDirectory() as tmp:
        recs = executor.run(study, study.configs(params), Store(tmp), context, progress=False)
    for name, fields in study.variants(params).items():
        print(name)
        print(study.table(study.study_records(recs, fields)).to_string(index=False))
    ok &= all(0 <= r["row"]["acc"] <= 1 for r in recs if r["config"]["tau"] is not None)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
