"""The paper profile's wall time on K GPUs with R runs per GPU: a schedule simulation from measured probes.

Every run of Tables I-IV becomes a *job* with a projected duration on one GPU:

* classification (03): :func:`cwl_lib.dryrun.project`'s per-run model (setup + steps x step +
  evaluation), from the (arch, strategy) probes of the dry-run; a strategy that trains only the
  classifier depends on one pass of the test set through the backbone per (dataset, arch), a job of its own;
* retrieval (04): training steps of 8 images at the paper's 1024x768 (epochs x batches of the queries) and
  MAC extraction of the database and the queries, from :class:`RetrievalProbe` (one per arch);
* pruning (05): the transfer of each study, a job every threshold of it waits for (the file lock of
  :func:`cwl_lib.studies.pruning.transferred`), then per threshold its evaluations and finetuning epochs
  (charged at the unpruned network's finetuning step: an upper bound).

:func:`simulate` packs the jobs on ``gpus x per_gpu`` slots, longest first (LPT), each job starting when a
slot is free and what it waits for has ended. ``per_gpu`` runs share a GPU; each then takes ``per_gpu /
throughput[per_gpu]`` times as long, where ``throughput`` is the measured runs-per-hour gain of packing
(``benchmarks/gpu_check_ray.py``). Without that measurement no gain is assumed (1.0): packing then projects
the same time as one run per GPU, which is the honest default.
"""
from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .data import paper_sizes
from .dryrun import Probe, run_cost, steps_per_epoch
from .studies import classification, pruning, retrieval


@dataclass(frozen=True)
class Job:
    name: str
    study: str
    seconds: float
    after: str | None = None  # the job that must end first


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


def _probe(by_pair: dict, arch: str, strategy: str) -> Probe:
    try:
        return by_pair[(arch, strategy)]
    except KeyError:
        raise ValueError(f"no probe for {arch} {strategy}: probe it (`cwl reproduce --profile paper --dry-run`) "
                         "or pass a log that has it") from None


def classification_jobs(probes: list[Probe], params: dict) -> list[Job]:
    by_pair = {(p.arch, p.strategy): p for p in probes}
    jobs, passes = [], set()
    for cfg in classification.configs(params):
        own, shared = run_cost(_probe(by_pair, cfg.arch, cfg.strategy), cfg)
        after = f"features {cfg.dataset} {cfg.arch}" if shared else None
        if after and after not in passes:
            passes.add(after)
            jobs.append(Job(after, "classification", shared))
        jobs.append(Job(f"classification {classification.key(cfg)}", "classification", own, after))
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
    by_pair = {(p.arch, p.strategy): p for p in probes}
    jobs, transfers = [], set()
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
    slots = [0.0] * (gpus * per_gpu)
    heapq.heapify(slots)
    # prerequisites first (longest first among them), then the rest longest first: LPT list scheduling
    needed = {j.after for j in jobs if j.after}
    order = sorted(jobs, key=lambda j: (j.name not in needed, -j.seconds))
    for job in order:
        free = heapq.heappop(slots)
        start = max(free, ends.get(job.after, 0.0)) if job.after else free
        end = start + job.seconds * slow
        ends[job.name] = end
        heapq.heappush(slots, end)
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


def paper_jobs(params_of: dict, probes: list[Probe], retrieval_probes: dict[str, RetrievalProbe]) -> list[Job]:
    """Every run of Tables I-IV under the notebooks' parameters ``params_of`` (notebook -> params)."""
    return (classification_jobs(probes, params_of["03_classification"])
            + retrieval_jobs(retrieval_probes, params_of["04_retrieval"])
            + pruning_jobs(probes, params_of["05_pruning"]))


def read(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a file: pass a log of `cwl reproduce --dry-run` or of "
                         "benchmarks/gpu_check_retrieval.py (benchmarks/results/ has the H100 ones)")
    return path.read_text()


__all__ = ["Job", "RetrievalProbe", "probes_from_log", "retrieval_probes_from_log", "throughput_from_log", "classification_jobs",
           "retrieval_jobs", "pruning_jobs", "paper_jobs", "simulate", "projection", "read"]
