"""GPU check of packing few-shot runs on a GPU through the Ray executor: runs per hour with 1, 2 and 4
runs sharing each GPU (``gpus_per_run`` 1, 0.5, 0.25), on the paper's per-run workload.

Workload: classification runs (``cwl_lib.studies.classification.run_one``, through ``cwl_lib.executor.run``
with Ray tasks) of MIT-67's class count, 5 shots, batch 32 at 224x224, ``--epochs`` epochs, test sets of
MIT-67's size; resnet50 and vgg16, finetune+cwl and freeze+cwl alternating; random weights and synthetic
uint8 images (timing needs no real data). One warm-up pass starts every worker and its CUDA context first.

Prints one line per packing, ``packing: R runs per GPU: N runs/h``, which ``cwl reproduce --dry-run
--packing LOG`` reads to project packed runs; and the accuracies of the runs at each packing (on a GPU,
nondeterministic kernels may move them a little; they must not move much).

    python benchmarks/gpu_check_ray.py [--runs 8] [--epochs 10]
    python benchmarks/gpu_check_ray.py --device cpu --runs 2 --epochs 1 --size 32   # the script itself, on a CPU
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from cwl_lib import executor, ray_executor
from cwl_lib.data import paper_sizes
from cwl_lib.dryrun import synthetic_split
from cwl_lib.models import load_backbone
from cwl_lib.records import Store
from cwl_lib.studies import Context, classification

PAIRS = (("resnet50", "finetune+cwl"), ("vgg16", "freeze+cwl"))


def configs(runs: int, epochs: int, tag: int, size: int = 224) -> list:
    out = []
    for i in range(runs):
        arch, strategy = PAIRS[i % len(PAIRS)]
        out.append(classification.Config("synthetic-mit67", arch, strategy, 5, 1e-3, repeat=i, seed=tag,
                                         epochs=epochs, batch_size=32, input_size=size))
    return out


def split_of(_name, size, _root):
    sizes = paper_sizes("mit67")
    return synthetic_split(sizes.classes, 5, sizes.test, size)


def random_backbone(arch: str, _pretrained: bool) -> torch.nn.Module:
    torch.manual_seed(0)  # the same random weights in every worker, whatever it ran before
    return load_backbone(arch, False)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: this check measures GPU packing (--device cpu checks the script itself)")
        return 1
    gpus = torch.cuda.device_count() if args.device == "cuda" else 1
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"device: {name} x{gpus}, torch {torch.__version__}")
    ray_executor.start(4 * gpus)
    context = Context(args.device, load_split=split_of, load_model=random_backbone)
    with tempfile.TemporaryDirectory() as tmp:
        executor.run(classification, configs(4 * gpus, 1, 99, args.size), Store(f"{tmp}/warm"), context, progress=False,
                     workers=4 * gpus, gpus_per_run=0.25, through_ray=True)
        accuracies = {}
        for per_gpu in (1, 2, 4):
            start = time.perf_counter()
            out = executor.run(classification, configs(args.runs, args.epochs, 0, args.size), Store(f"{tmp}/r{per_gpu}"),
                               context, progress=False, workers=per_gpu * gpus, gpus_per_run=1 / per_gpu,
                               through_ray=True)  # one run per GPU too: the baseline must pay what Ray costs
            seconds = time.perf_counter() - start
            accuracies[per_gpu] = [r["accuracy"] for r in out]
            print(f"packing: {per_gpu} run{'s' if per_gpu > 1 else ''} per GPU: {3600 * len(out) / seconds:.1f} runs/h "
                  f"({len(out)} runs in {seconds:.1f} s)", flush=True)
    spread = max(max(abs(a - b) for a, b in zip(accuracies[1], accuracies[r])) for r in (2, 4))
    ok = spread <= 0.05
    print(f"largest accuracy difference between packings: {spread:.3f} ({'ok' if ok else 'FAILED'}, bound 0.05)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
