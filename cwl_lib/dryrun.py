"""``cwl reproduce --profile paper --dry-run``: measure a few runs, project the classification grid.

The classification grid of Tables I-II dominates the paper profile (datasets x archs x strategies x
shots x learning rates x repeats runs). Each (arch, strategy) is probed on synthetic uint8 stand-ins of
the real datasets' input size, through the same :func:`cwl_lib.studies.classification.run_one` the grid
calls, at two step counts of one full batch each; a run's time is then modelled as

    setup + steps * step + n_test * eval_per_image

where ``steps`` is the run's budget of optimizer steps (full batches, or the whole few-shot set when it is
smaller) and ``eval_per_image`` is the time per test image. A strategy that
trains only the classifier (cached features) passes the test set through the backbone once per
(dataset, arch), not once per run. Class and image counts are the paper's
(:func:`cwl_lib.data.paper_sizes`); probing at reduced test sizes (the CPU default) extrapolates
evaluation linearly.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import pandas as pd
import torch

from . import strategies, transfer
from .data import classification as cdata
from .data import paper_sizes
from .models import load_backbone
from .runtime import tune_for_repeated_shapes
from .studies import classification
from .studies.context import Context


@dataclass(frozen=True)
class Probe:
    arch: str
    strategy: str
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


def probe(arch: str, strategy: str, backbone: torch.nn.Module, device: torch.device, *, classes: int = 8,
          n_test: int = 64, input_size: int = 224, batch_size: int = 32, steps: tuple[int, int] = (1, 2),
          eval_batch_size: int = 256) -> Probe:
    """Time one run at two step counts, and its evaluation."""
    s = strategies.get(strategy)
    shots = max(batch_size // classes, 1)  # one full batch per step
    split = synthetic_split(classes, shots, n_test, input_size)
    context = Context(device, load_split=lambda *_: split, load_model=lambda *_: backbone,
                      eval_batch_size=eval_batch_size)

    def config(e: int) -> classification.Config:
        return classification.Config("synthetic", arch, s.name, shots, s.lrs[0], 0, steps=e, batch_size=batch_size,
                                     input_size=input_size)

    eval_s = _timed(lambda: classification.features_of(config(1), context)) if s.cacheable else 0.0
    if device.type == "cuda":
        # cuDNN autotuning and allocator growth land in the first run; untimed, so the two timed runs
        # differ by their steps only (without it the H100 probe measured negative epoch costs)
        classification.run_one(config(steps[0]), context)
    times = [_timed(lambda e=e: classification.run_one(config(e), context)) for e in steps]
    step = max(times[1] - times[0], 0.0) / (steps[1] - steps[0])
    fixed = times[0] - step * steps[0]
    if s.cacheable:  # cached-feature runs evaluate stored features: no image pass per run
        return Probe(arch, s.name, fixed, eval_s / n_test, step)
    model = transfer.prepare(copy.deepcopy(backbone), s, classes)
    test = split.test
    eval_s = _timed(lambda: transfer.evaluate(model, test.images, test.labels, device, size=input_size,
                                              batch_size=eval_batch_size))
    return Probe(arch, s.name, max(fixed - eval_s, 0.0), eval_s / n_test, step)


def run_cost(p: Probe, cfg: classification.Config) -> tuple[float, float]:
    """Seconds of one classification run, and of the pass over the test set it shares with the runs of
    its (dataset, arch) when its strategy trains on cached features (0 otherwise: it evaluates itself)."""
    sizes = paper_sizes(cfg.dataset)
    eval_s = p.eval_per_image_s * sizes.test
    own = p.setup_s + cfg.steps * p.step_s
    if strategies.get(cfg.strategy).cacheable:
        return own, eval_s
    return own + eval_s, 0.0


def project(probes: list[Probe], params: dict) -> pd.DataFrame:
    """Seconds for the full classification grid of ``params`` (the 03_classification parameters)."""
    by_pair = {(p.arch, p.strategy): p for p in probes}
    cost: dict[tuple, list] = {}
    for cfg in classification.configs(params):
        own, shared = run_cost(by_pair[(cfg.arch, cfg.strategy)], cfg)
        # cached-feature runs share one pass over the test set
        row = cost.setdefault((cfg.dataset, cfg.arch, cfg.strategy), [0, shared])
        row[0] += 1
        row[1] += own
    return pd.DataFrame([{"dataset": d, "arch": a, "strategy": s, "runs": n, "seconds": t}
                         for (d, a, s), (n, t) in cost.items()])


def dry_run(params: dict, device: torch.device, *, n_test: int | None = None, load_model=None,
            log=print, probes_out: list | None = None) -> pd.DataFrame:
    """Probe every (arch, strategy) of ``params`` on ``device`` and return the projected grid (the probes
    are appended to ``probes_out`` when given)."""
    load_model = load_model or (lambda arch: load_backbone(arch, pretrained=False))  # timing needs no weights
    n_test = n_test or (256 if device.type == "cuda" else 32)
    tune_for_repeated_shapes(device)  # as a GPU grid does
    pairs = list(dict.fromkeys((cfg.arch, cfg.strategy) for cfg in classification.configs(params)))
    probes = []
    for arch in dict.fromkeys(a for a, _ in pairs):
        backbone = load_model(arch).eval()
        for strategy in [s for a, s in pairs if a == arch]:
            p = probe(arch, strategy, backbone, device, n_test=n_test, input_size=params["input_size"],
                      steps=(5, 17) if device.type == "cuda" else (1, 2), batch_size=params["batch_size"],
                      eval_batch_size=params.get("eval_batch_size", 256))
            log(f"[dry-run] {arch:>12} {strategy:<13} setup {p.setup_s:7.3f} s, eval {1e3 * p.eval_per_image_s:7.2f} "
                f"ms/img, step {1e3 * p.step_s:8.2f} ms")
            probes.append(p)
    if probes_out is not None:
        probes_out.extend(probes)
    return project(probes, params)


__all__ = ["Probe", "probe", "run_cost", "project", "dry_run", "steps_per_epoch", "synthetic_split"]
