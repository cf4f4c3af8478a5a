"""``cwl reproduce --profile paper --dry-run``: measure a few runs, project the classification grid.

The classification grid of Tables I-II dominates the paper profile (datasets x archs x strategies x
shots x learning rates x repeats runs). :func:`cwl_lib.experiments.run_grid` cuts it into units: up to
``batch_runs`` runs of one cell trained together (:mod:`cwl_lib.batched`), or one cached-feature
``freeze`` run. Each (arch, strategy) is probed with one such unit on synthetic uint8 stand-ins of the
real datasets' input size, through the same functions the grid calls, at two epoch counts of one full
batch each; a unit's time is then modelled as

    setup + epochs * steps(shots * classes) * step + n_test * eval_per_image

where ``steps(n)`` is the number of batches ``transfer.seeded_batches`` makes of ``n`` images (a short
batch is charged as a full one) and ``eval_per_image`` is the time per test image for all runs of the
unit together. Probing at reduced test sizes (the CPU default) extrapolates evaluation linearly.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch

from . import batched, experiments, transfer
from .data import classification as cdata
from .runtime import tune_for_repeated_shapes

# classes, training images, test images, as the paper describes each dataset
PAPER_SIZES = {"mit67": (67, 5360, 1340), "kvasir": (8, 6000, 2000), "chest-xray": (2, 5216, 624)}


@dataclass(frozen=True)
class Probe:
    arch: str
    strategy: str
    runs: int  # runs per unit (1 for cached-feature freeze)
    setup_s: float
    eval_per_image_s: float
    step_s: float


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches ``transfer.seeded_batches`` makes of ``n`` images (a lone last image joins the previous)."""
    steps = math.ceil(n / batch_size)
    return steps - 1 if steps > 1 and n - (steps - 1) * batch_size == 1 else steps


def synthetic_split(classes: int, per_class: int, n_test: int, size: int, seed: int = 0) -> cdata.Split:
    g = torch.Generator().manual_seed(seed)
    names = [f"class{i}" for i in range(classes)]

    def part(n: int) -> cdata.ImageSet:
        images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        return cdata.ImageSet(images, torch.arange(n) % classes, names)

    return cdata.Split("synthetic", part(classes * per_class), part(n_test))


def _timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def probe(arch: str, strategy: str, backbone: torch.nn.Module, device: torch.device, *, batch_runs: int = 1,
          classes: int = 8, n_test: int = 64, input_size: int = 224, batch_size: int = 32,
          epochs: tuple[int, int] = (1, 2), eval_batch_size: int = 256) -> Probe:
    """Time one unit of ``batch_runs`` runs (one for ``freeze``) at two epoch counts, and its evaluation."""
    shots = max(batch_size // classes, 1)  # one full batch per epoch
    data = experiments.prepare_data(synthetic_split(classes, shots, n_test, input_size), None)
    runs = 1 if strategy == "freeze" else batch_runs
    lrs = transfer.lr_grid(strategy)
    features = []
    if strategy == "freeze":
        eval_s = _timed(lambda: features.append(experiments.build_feature_cache(
            backbone, classes, data.test.images, device, input_size, eval_batch_size)))

    def unit(e: int):
        cfgs = [_config(arch, strategy, shots, e, batch_size, input_size, lrs[k % len(lrs)], k) for k in range(runs)]
        if runs == 1:
            experiments.run_one(cfgs[0], backbone, data, device, features=features[0] if features else None,
                                eval_batch_size=eval_batch_size)
        else:
            experiments.run_batched(cfgs, backbone, data, device, eval_batch_size=eval_batch_size)

    if device.type == "cuda":
        # cuDNN autotuning and allocator growth land in the first run; untimed, so the two timed runs
        # differ by their epochs only (without it the H100 probe measured negative epoch costs)
        unit(epochs[0])
    times = [_timed(lambda e=e: unit(e)) for e in epochs]
    step = max(times[1] - times[0], 0.0) / (epochs[1] - epochs[0])
    fixed = times[0] - step * epochs[0]
    if strategy == "freeze":  # cached-feature runs evaluate stored features: no image pass per run
        return Probe(arch, strategy, runs, fixed, eval_s / n_test, step)
    eval_s = _eval_time(strategy, backbone, data, device, runs, classes, batch_size, input_size, eval_batch_size)
    return Probe(arch, strategy, runs, max(fixed - eval_s, 0.0), eval_s / n_test, step)


def _eval_time(strategy, backbone, data, device, runs, classes, batch_size, input_size, eval_batch_size) -> float:
    """Seconds for one unit of ``runs`` untrained runs to predict the test set (as the grid evaluates)."""
    model = transfer.prepare(copy.deepcopy(backbone), strategy, classes)
    if runs == 1:
        return _timed(lambda: transfer.evaluate(model, data.test.images, data.test.labels, device, size=input_size,
                                                batch_size=eval_batch_size))
    head = {n: p.detach() for n, p in transfer.head(model).named_parameters()}
    train = data.split.train
    trained = batched.train_runs(model, [batched.Run(1e-3, k, train.images, train.labels, head) for k in range(runs)],
                                 strategy, 0, batch_size, device, input_size=input_size)
    return _timed(lambda: batched.predict_runs(trained, data.test.images, device, size=input_size,
                                               batch_size=eval_batch_size))


def _config(arch, strategy, shots, epochs, batch_size, input_size, lr=None, repeat=0) -> experiments.RunConfig:
    return experiments.RunConfig(dataset="synthetic", arch=arch, strategy=strategy, shots=shots,
                                 lr=lr if lr is not None else transfer.lr_grid(strategy)[0], repeat=repeat,
                                 epochs=epochs, batch_size=batch_size, input_size=input_size)


def paper_grid(params: dict) -> list[experiments.RunConfig]:
    """The runs ``03_classification`` makes of its parameters (skips included)."""
    return experiments.notebook_grid(params)


def project(probes: list[Probe], params: dict) -> "pandas.DataFrame":
    """Seconds for the full classification grid of ``params`` (the 03_classification parameters)."""
    import pandas as pd

    by_pair = {(p.arch, p.strategy): p for p in probes}
    cells: dict[tuple, int] = {}
    for cfg in paper_grid(params):
        key = (cfg.dataset, cfg.arch, cfg.strategy, cfg.shots, cfg.epochs, cfg.batch_size)
        cells[key] = cells.get(key, 0) + 1
    cost: dict[tuple, list] = {}
    for (dataset, arch, strategy, shots, epochs, batch_size), runs in cells.items():
        p = by_pair[(arch, strategy)]
        classes, _n_train, n_test = PAPER_SIZES[dataset]
        eval_s = p.eval_per_image_s * n_test
        units = math.ceil(runs / p.runs)
        row = cost.setdefault((dataset, arch, strategy),
                              # cached-feature runs share one pass over the test set per (dataset, arch)
                              [0, 0, eval_s if strategy == "freeze" else 0.0])
        row[0] += runs
        row[1] += units
        row[2] += units * (p.setup_s + epochs * steps_per_epoch(shots * classes, batch_size) * p.step_s)
        row[2] += 0.0 if strategy == "freeze" else units * eval_s
    return pd.DataFrame([{"dataset": d, "arch": a, "strategy": s, "runs": n, "units": u, "seconds": t}
                         for (d, a, s), (n, u, t) in cost.items()])


def dry_run(params: dict, device: torch.device, *, n_test: int | None = None, load_model=None,
            batch_runs: int | None = None, log=print) -> "pandas.DataFrame":
    """Probe every (arch, strategy) of ``params`` on ``device`` and return the projected grid.

    ``batch_runs`` is what :func:`cwl_lib.experiments.run_grid` is given (default 1: one run at a time).
    """
    from .models import load_backbone

    load_model = load_model or (lambda arch: load_backbone(arch, pretrained=False))  # timing needs no weights
    n_test = n_test or (256 if device.type == "cuda" else 32)
    sizes = (batch_runs or 1,)
    tune_for_repeated_shapes(device)  # as run_grid does
    pairs = list(dict.fromkeys((cfg.arch, cfg.strategy) for cfg in paper_grid(params)))
    probes = []
    for arch in dict.fromkeys(a for a, _ in pairs):
        backbone = load_model(arch).eval()
        for strategy in [s for a, s in pairs if a == arch]:
            tried = []
            for k in sizes if strategy != "freeze" else (1,):
                p = probe(arch, strategy, backbone, device, batch_runs=k, n_test=n_test,
                          input_size=params["input_size"], epochs=(5, 17) if device.type == "cuda" else (1, 2),
                          batch_size=params["batch_size"], eval_batch_size=params.get("eval_batch_size", 256))
                log(f"[dry-run] {arch:>12} {strategy:<13} {p.runs:2d} run(s) together: setup {p.setup_s:7.3f} s, "
                    f"eval {1e3 * p.eval_per_image_s:7.2f} ms/img, step {1e3 * p.step_s:8.2f} ms "
                    f"({1e3 * p.step_s / p.runs:7.2f} ms per run)")
                tried.append(p)
            probes.append(min(tried, key=lambda q: (q.step_s + q.eval_per_image_s * 1000) / q.runs))
    return project(probes, params)
