"""``cwl reproduce --profile paper --dry-run``: measure a few runs, project the classification grid.

The classification grid of Tables I-II dominates the paper profile (datasets x archs x strategies x
shots x learning rates x repeats runs). Each (arch, strategy) is probed on synthetic uint8 stand-ins
with the real datasets' class counts and test-set sizes, through the same ``experiments.run_one`` the
grid uses, at two epoch counts; a run's time is then modelled as

    setup + eval_per_image * n_test + train_per_image_epoch * shots * classes * epochs

and summed over the whole grid. The training pool holds only the images a few-shot run can draw,
since the unused part of a training split costs nothing. Probing at reduced test sizes (the CPU
default) extrapolates evaluation linearly.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from . import experiments, transfer
from .data import classification as cdata

# classes, training images, test images, as the paper describes each dataset
PAPER_SIZES = {"mit67": (67, 5360, 1340), "kvasir": (8, 6000, 2000), "chest-xray": (2, 5216, 624)}


@dataclass(frozen=True)
class Probe:
    arch: str
    strategy: str
    setup_s: float
    eval_per_image_s: float
    train_per_image_epoch_s: float


def synthetic_split(classes: int, per_class: int, n_test: int, size: int, seed: int = 0) -> cdata.Split:
    g = torch.Generator().manual_seed(seed)
    names = [f"class{i}" for i in range(classes)]

    def part(n: int) -> cdata.ImageSet:
        images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        return cdata.ImageSet(images, torch.arange(n) % classes, names)

    return cdata.Split("synthetic", part(classes * per_class), part(n_test))


def _timed_run(cfg, backbone, data, device, features, eval_batch_size) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    experiments.run_one(cfg, backbone, data, device, features=features, eval_batch_size=eval_batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def probe(arch: str, strategy: str, backbone: torch.nn.Module, device: torch.device, *, classes: int = 8,
          shots: int = 2, n_test: int = 64, input_size: int = 224, batch_size: int = 32,
          epochs: tuple[int, int] = (1, 2), eval_batch_size: int = 256) -> Probe:
    """Time two runs of one (arch, strategy) that differ only in epochs, and one evaluation pass."""
    split = synthetic_split(classes, shots, n_test, input_size)
    data = experiments.prepare_data(split, None)
    features = None
    eval_start = time.perf_counter()
    if strategy == "freeze":
        features = experiments.build_feature_cache(backbone, classes, data.test.images, device, input_size,
                                                   eval_batch_size)
    else:
        model = transfer.prepare(backbone, "freeze", classes)
        transfer.evaluate(model, data.test.images, data.test.labels, device, size=input_size,
                          batch_size=eval_batch_size)
    eval_per_image = (time.perf_counter() - eval_start) / n_test
    lr = transfer.lr_grid(strategy)[0]

    def config(e: int) -> experiments.RunConfig:
        return experiments.RunConfig(dataset="synthetic", arch=arch, strategy=strategy, shots=shots, lr=lr,
                                     repeat=0, epochs=e, batch_size=batch_size, input_size=input_size)

    if device.type == "cuda":
        # cuDNN autotuning and allocator growth land in the first run; untimed, so the two timed runs
        # differ by their epochs only (without it the H100 probe measured negative epoch costs)
        _timed_run(config(epochs[0]), backbone, data, device, features, eval_batch_size)
    times = [_timed_run(config(e), backbone, data, device, features, eval_batch_size) for e in epochs]
    n_train = shots * classes
    per_image_epoch = max(times[1] - times[0], 0.0) / (n_train * (epochs[1] - epochs[0]))
    fixed = times[0] - per_image_epoch * n_train * epochs[0]
    # cached-feature runs evaluate the stored features, not the images: their setup has no image pass
    setup = fixed if features is not None else max(fixed - eval_per_image * n_test, 0.0)
    return Probe(arch, strategy, setup, eval_per_image, per_image_epoch)


def paper_grid(params: dict) -> list[experiments.RunConfig]:
    """The runs ``experiments.grid`` makes of the 03_classification parameters (skips included)."""
    return experiments.grid(params["datasets"], params["archs"], params["strategies"], params["shots"],
                            params["repeats"], lrs={"freeze": params["lr_freeze"], "finetune": params["lr_finetune"]},
                            epochs=params["epochs"])


def project(probes: list[Probe], params: dict) -> "pandas.DataFrame":
    """Seconds for the full classification grid of ``params`` (the 03_classification parameters)."""
    import pandas as pd

    by_pair = {(p.arch, p.strategy): p for p in probes}
    cost: dict[tuple, list] = {}
    for cfg in paper_grid(params):
        p = by_pair[(cfg.arch, cfg.strategy)]
        classes, _n_train, n_test = PAPER_SIZES[cfg.dataset]
        eval_s = p.eval_per_image_s * n_test
        row = cost.setdefault((cfg.dataset, cfg.arch, cfg.strategy),
                              # cached-feature runs share one pass over the test set per (dataset, arch)
                              [0, eval_s if cfg.strategy == "freeze" else 0.0])
        row[0] += 1
        row[1] += p.setup_s + p.train_per_image_epoch_s * cfg.shots * classes * cfg.epochs
        row[1] += 0.0 if cfg.strategy == "freeze" else eval_s
    return pd.DataFrame([{"dataset": d, "arch": a, "strategy": s, "runs": n, "seconds": t}
                         for (d, a, s), (n, t) in cost.items()])


def dry_run(params: dict, device: torch.device, *, n_test: int | None = None, load_model=None,
            log=print) -> "pandas.DataFrame":
    """Probe every (arch, strategy) of ``params`` on ``device`` and return the projected grid."""
    from .models import load_backbone

    load_model = load_model or (lambda arch: load_backbone(arch, pretrained=False))  # timing needs no weights
    n_test = n_test or (256 if device.type == "cuda" else 32)
    pairs = list(dict.fromkeys((cfg.arch, cfg.strategy) for cfg in paper_grid(params)))
    probes = []
    for arch in dict.fromkeys(a for a, _ in pairs):
        backbone = load_model(arch).eval()
        for strategy in [s for a, s in pairs if a == arch]:
            p = probe(arch, strategy, backbone, device, n_test=n_test, input_size=params["input_size"],
                      epochs=(2, 8) if device.type == "cuda" else (1, 2),
                      batch_size=params["batch_size"], eval_batch_size=params.get("eval_batch_size", 256))
            log(f"[dry-run] {arch:>12} {strategy:<13} setup {p.setup_s:7.3f} s, eval {1e3 * p.eval_per_image_s:7.2f} "
                f"ms/img, train {1e3 * p.train_per_image_epoch_s:7.2f} ms/img/epoch")
            probes.append(p)
    return project(probes, params)
