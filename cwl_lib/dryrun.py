"""``cwl reproduce --profile paper --dry-run``: measure a few runs, project the paper profile's wall time.

Each (arch, strategy) of the classification grid is probed on synthetic stand-ins of the datasets, through the
grid's own :func:`cwl_lib.studies.classification.run_one`, at two step counts; a run then costs
``setup + steps * step + n_test * eval_per_image`` at the paper's sizes (:func:`cwl_lib.data.paper_sizes`), except
that a strategy training on cached features passes the test set through the backbone once per (dataset, arch).
Every run of Tables I-IV becomes a :class:`Job`; :func:`simulate` packs them on GPUs longest first, a pruning
threshold waiting for its transfer. Packing R runs on a GPU gains only the measured throughput
(``benchmarks/gpu_check_ray.py``), else nothing: the honest default.
"""
from __future__ import annotations

import copy
import heapq
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from . import strategies, transfer
from .data import classification as cdata
from .data import paper_sizes
from .models import load_backbone
from .runtime import tune_for_repeated_shapes
from .studies import classification, pruning, retrieval
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
    return max(math.ceil((n - 1) / batch_size), 1)


def synthetic_split(classes: int, per_class: int, n_test: int, size: int, seed: int = 0) -> cdata.Split:
    g = torch.Generator().manual_seed(seed)
    names = [f"class{i}" for i in range(classes)]

    def part(n: int) -> cdata.ImageSet:
        images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        return cdata.ImageSet(images, torch.arange(n) % classes, names)

    return cdata.Split("synthetic", part(classes * per_class), part(n_test))


def _timed(fn) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
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
    model, test = transfer.prepare(copy.deepcopy(backbone), s, classes), split.test
    eval_s = _timed(lambda: transfer.evaluate(model, test.images, test.labels, device, size=input_size,
                                              batch_size=eval_batch_size))
    return Probe(arch, s.name, max(fixed - eval_s, 0.0), eval_s / n_test, step)


def project(probes: list[Probe], params: dict) -> pd.DataFrame:
    """Runs and seconds of the classification grid of ``params`` per (dataset, arch, strategy)."""
    return costs(classification_jobs(probes, params))


def costs(jobs: list[Job]) -> pd.DataFrame:
    """Runs and seconds of the classification ``jobs`` per (dataset, arch, strategy)."""
    shared = {j.name: j.seconds for j in jobs if j.group is None}
    cost: dict[tuple, list] = {}
    for job in jobs:
        if job.group is not None:
            row = cost.setdefault(job.group, [0, shared.pop(job.after, 0.0)])  # a feature pass counted once
            row[0] += 1
            row[1] += job.seconds
    return pd.DataFrame([{"dataset": d, "arch": a, "strategy": s, "runs": n, "seconds": t}
                         for (d, a, s), (n, t) in cost.items()])


def dry_run(params: dict, device: torch.device, log=print) -> list[Probe]:
    """Probe every (arch, strategy) of ``params`` on ``device``, on random weights (timing needs none)."""
    n_test = 256 if device.type == "cuda" else 32
    tune_for_repeated_shapes(device)  # as a GPU grid does
    pairs = list(dict.fromkeys((cfg.arch, cfg.strategy) for cfg in classification.configs(params)))
    probes = []
    for arch in dict.fromkeys(a for a, _ in pairs):
        backbone = load_backbone(arch, pretrained=False).eval()
        for strategy in [s for a, s in pairs if a == arch]:
            p = probe(arch, strategy, backbone, device, n_test=n_test, input_size=params["input_size"],
                      steps=(5, 17) if device.type == "cuda" else (1, 2), batch_size=params["batch_size"],
                      eval_batch_size=params["eval_batch_size"])
            log(f"[dry-run] {arch:>12} {strategy:<13} setup {p.setup_s:7.3f} s, eval {1e3 * p.eval_per_image_s:7.2f} "
                f"ms/img, step {1e3 * p.step_s:8.2f} ms")
            probes.append(p)
    return probes


@dataclass(frozen=True)
class Job:
    name: str
    study: str
    seconds: float
    after: str | None = None  # the job that must end first
    group: tuple | None = None  # a classification run's (dataset, arch, strategy)


@dataclass(frozen=True)
class RetrievalProbe:
    arch: str
    step_s: dict  # strategy -> seconds per training step of 8 images at 1024x768
    images_per_s: float  # MAC extraction at 1024x768


_PROBE_LINE = re.compile(r"\[dry-run\]\s+(\S+)\s+(\S+)\s+.*?setup\s+([\d.]+) s, eval\s+([\d.]+) ms/img, step\s+([\d.]+) ms")
_STEP_LINE = re.compile(r"^(\S+) (\S+): one step \d+ x \d+x\d+ ([\d.]+) s")
_MAC_LINE = re.compile(r"^(\S+): MAC at \d+x\d+ ([\d.]+) images/s")


def probes_from_log(text: str) -> list[Probe]:
    """The classification probes a ``cwl reproduce --dry-run`` log printed, one per (arch, strategy)."""
    out = [Probe(m[1], m[2], float(m[3]), float(m[4]) / 1e3, float(m[5]) / 1e3) for m in _PROBE_LINE.finditer(text)]
    if not out:
        raise ValueError("no probe line ('[dry-run] ARCH STRATEGY ... setup S s, eval MS ms/img, step MS ms') in "
                         "this log; pass the log a `cwl reproduce --profile paper --dry-run` printed")
    return out


def retrieval_probes_from_log(text: str) -> dict[str, RetrievalProbe]:
    """Per arch, the training step times and MAC extraction rate ``benchmarks/gpu_check_retrieval.py`` logged."""
    steps: dict[str, dict] = {}
    rates: dict[str, float] = {}
    for line in text.splitlines():
        if m := _STEP_LINE.match(line):
            steps.setdefault(m[1], {})[m[2]] = float(m[3])
        elif m := _MAC_LINE.match(line):
            rates[m[1]] = float(m[2])
    return {a: RetrievalProbe(a, steps.get(a, {}), rates[a]) for a in rates}


_PACKING_LINE = re.compile(r"^packing: (\d+) runs? per GPU: ([\d.]+) runs/h")


def throughput_from_log(text: str) -> dict[int, float]:
    """Runs-per-hour gain of R runs per GPU over one (R -> gain), from a ``gpu_check_ray.py`` log."""
    rates = {int(m[1]): float(m[2]) for line in text.splitlines() if (m := _PACKING_LINE.match(line))}
    if 1 not in rates:
        raise ValueError("no 'packing: 1 run per GPU: N runs/h' line in this log; pass a log of "
                         "benchmarks/gpu_check_ray.py")
    return {r: v / rates[1] for r, v in rates.items()}


def _by_pair(probes: list[Probe]) -> dict[tuple[str, str], Probe]:
    return {(p.arch, p.strategy): p for p in probes}  # a pair probed again: the last


def _probe(by_pair: dict[tuple[str, str], Probe], arch: str, strategy: str) -> Probe:
    found = by_pair.get((arch, strategy))
    if found is None:
        raise ValueError(f"no probe for {arch} {strategy}: probe it (`cwl reproduce --profile paper --dry-run`) "
                         "or pass a log that has it")
    return found


def classification_jobs(probes: list[Probe], params: dict) -> list[Job]:
    jobs, passes, by_pair = [], set(), _by_pair(probes)
    for cfg in classification.configs(params):
        p = _probe(by_pair, cfg.arch, cfg.strategy)
        own, eval_s = p.setup_s + cfg.steps * p.step_s, p.eval_per_image_s * paper_sizes(cfg.dataset).test
        after = None
        if strategies.get(cfg.strategy).cacheable:  # evaluates stored features: one pass per (dataset, arch)
            after = f"features {cfg.dataset} {cfg.arch}"
            if after not in passes:
                passes.add(after)
                jobs.append(Job(after, "classification", eval_s))
        else:
            own += eval_s
        jobs.append(Job(f"classification {classification.key(cfg)}", "classification", own, after,
                        (cfg.dataset, cfg.arch, cfg.strategy)))
    return jobs


def retrieval_jobs(probes: dict[str, RetrievalProbe], params: dict) -> list[Job]:
    jobs = []
    for cfg in retrieval.configs(params):
        if cfg.arch not in probes:
            raise ValueError(f"no retrieval probe for {cfg.arch}; the log has {', '.join(probes) or 'none'}")
        p = probes[cfg.arch]
        sizes = paper_sizes(cfg.dataset)
        steps = cfg.epochs * math.ceil(sizes.test / cfg.batch_size) if cfg.lr is not None else 0
        step = p.step_s.get(cfg.strategy, max(p.step_s.values(), default=0.0))  # unlogged: the slowest logged
        jobs.append(Job(f"retrieval {retrieval.key(cfg)}", "retrieval",
                        steps * step + (sizes.train + sizes.test) / p.images_per_s))
    return jobs


def pruning_jobs(probes: list[Probe], params: dict) -> list[Job]:
    jobs, transfers, by_pair = [], set(), _by_pair(probes)
    for cfg in pruning.configs(params):
        sizes = paper_sizes(cfg.dataset)
        n_test = cfg.test_size or sizes.test
        steps = steps_per_epoch(cfg.shots * sizes.classes, cfg.batch_size)
        name = f"pruning transfer {cfg.arch} {cfg.strategy} {cfg.optimizer} wd={cfg.weight_decay} l1={cfg.l1}"
        if name not in transfers:
            transfers.add(name)
            p = _probe(by_pair, cfg.arch, cfg.strategy)
            jobs.append(Job(name, "pruning", p.setup_s + cfg.steps * p.step_s))
        p = _probe(by_pair, cfg.arch, "finetune")
        evals = 1 + len(cfg.finetune_epochs) if cfg.tau is not None else 1
        finetune = max(cfg.finetune_epochs, default=0) * steps * p.step_s if cfg.tau is not None else 0.0
        jobs.append(Job(f"pruning {pruning.key(cfg)}", "pruning",
                        p.setup_s + evals * n_test * p.eval_per_image_s + finetune, name))
    return jobs


def simulate(jobs: list[Job], gpus: int, per_gpu: int = 1, throughput: dict | None = None) -> float:
    """Wall seconds of ``jobs`` on ``gpus`` GPUs running ``per_gpu`` runs each, longest first; a job
    starts when a slot is free and the job it waits for has ended."""
    if gpus < 1 or per_gpu < 1:
        raise ValueError(f"gpus and per_gpu are counts >= 1, got {gpus} and {per_gpu}")
    slow = per_gpu / (throughput or {}).get(per_gpu, 1.0)
    ends: dict[str, float] = {}
    slots = [0.0] * (gpus * per_gpu)  # a heap already
    # prerequisites first (longest first among them), then the rest longest first: LPT list scheduling
    needed = {j.after for j in jobs if j.after}
    order = sorted(jobs, key=lambda j: (j.name not in needed, -j.seconds))
    for job in order:
        ends[job.name] = max(heapq.heappop(slots), ends.get(job.after, 0.0)) + job.seconds * slow
        heapq.heappush(slots, ends[job.name])
    return max(ends.values(), default=0.0)


def projection(jobs: list[Job], gpus=(1, 2, 4, 8), per_gpu=(1,), throughput: dict | None = None) -> pd.DataFrame:
    """Projected hours of the whole grid and of each study alone, per (GPUs, runs per GPU)."""
    rows = []
    studies = list(dict.fromkeys(j.study for j in jobs))
    for k in gpus:
        for r in per_gpu:
            row = {"GPUs": k, "runs per GPU": r, "whole profile (h)": simulate(jobs, k, r, throughput) / 3600}
            for s in studies:
                row[f"{s} alone (h)"] = simulate([j for j in jobs if j.study == s], k, r, throughput) / 3600
            rows.append(row)
    return pd.DataFrame(rows)


def read(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a file: pass a log of `cwl reproduce --dry-run` or of "
                         "benchmarks/gpu_check_retrieval.py (benchmarks/results/ has the H100 ones)")
    return path.read_text()
