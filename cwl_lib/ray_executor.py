"""Ray tasks for a study's grid: one task per run, returning its record to the driver (:mod:`cwl_lib.executor`).

Imported only when a grid runs through Ray (``workers > 1`` or a Ray address), so ``import cwl_lib`` never
imports Ray.

**What a task loads.** A task gets its config, the study's module name and the driver's
:class:`~cwl_lib.studies.context.Context` settings, put once in Ray's object store per grid (a few hundred
bytes: the device type, the data root, the store's ``shared/`` folder, batch sizes). Data and weights do
not travel with tasks: Ray reuses its worker processes, and each worker keeps one Context per grid, whose
memo holds the dataset (decoded once from the data root, a path every node sees) and the backbone (read
once from torch's hub cache) while its later tasks use them. A pruning study's transferred network is
trained by the first task that needs it, under a file lock, and read by the others from ``shared/``.
So a worker reads each dataset and backbone once per grid, however many tasks it runs.

**Resources.** Each task asks for one CPU and, on a GPU, ``gpus_per_run`` of one (0.25 packs four runs
on a GPU). A local Ray instance is started with ``workers`` CPUs and the machine's GPUs; an existing
cluster is joined at its address (``ray start --head`` on a workstation, or inside a SLURM allocation).
Ray's own retries are off: the driver retries a failed run once and records a second failure.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import uuid

import ray
import torch

from .studies.context import Context

_CONTEXTS: dict[str, Context] = {}  # in a worker process: the current grid's Context (one at a time)


def _context_fields(context: Context) -> dict:
    return {f.name: getattr(context, f.name) for f in dataclasses.fields(Context)
            if f.name not in ("_memo", "device")}


def _run(study_module: str, config, spec: dict, token: str) -> dict:
    context = _CONTEXTS.get(token)
    if context is None:
        _CONTEXTS.clear()  # the previous grid's data and backbone go with it
        if spec["threads"]:
            torch.set_num_threads(spec["threads"])
        context = _CONTEXTS[token] = Context(device=spec["device"], **spec["fields"])
    return importlib.import_module(study_module).run_one(config, context)


def start(workers: int, address: str = "") -> None:
    """Join the Ray cluster at ``address``, or start a local instance with ``workers`` CPUs and this
    machine's GPUs; a Ray instance this process already joined is reused as it is."""
    if ray.is_initialized():
        return
    common = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
              "configure_logging": True}
    if address:
        ray.init(address=address, **common)
    else:
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        ray.init(num_cpus=workers, num_gpus=gpus, **common)


class RayBackend:
    """Submits runs as Ray tasks and hands their results back as they finish."""

    def __init__(self, study, context: Context, *, workers: int, address: str = "", gpus_per_run: float = 1.0,
                 threads: int | None = None):
        start(workers, address)
        cuda = context.device.type == "cuda"
        resources = ray.cluster_resources()
        if workers > 1:
            self.slots = workers
        elif cuda:
            self.slots = max(int(resources.get("GPU", 0) / gpus_per_run), 1)
        else:
            self.slots = max(int(resources.get("CPU", 1)), 1)
        # threads per CPU task: Ray gives each one thread (OMP_NUM_THREADS=1); CWL_RAY_THREADS overrides
        threads = threads if threads is not None else int(os.environ.get("CWL_RAY_THREADS", "0"))
        spec = {"device": context.device.type, "fields": _context_fields(context), "threads": threads}
        self._spec = ray.put(spec)
        self._token = uuid.uuid4().hex
        self._module = study.__name__
        self._task = ray.remote(num_cpus=1, num_gpus=gpus_per_run if cuda else 0, max_retries=0,
                                max_calls=0)(_run)  # max_calls=0: workers live on, keeping the grid's data
        self._refs: dict = {}

    @property
    def pending(self) -> int:
        return len(self._refs)

    def submit(self, config) -> None:
        self._refs[self._task.remote(self._module, config, self._spec, self._token)] = config

    def next_result(self):
        ready, _ = ray.wait(list(self._refs), num_returns=1)
        config = self._refs.pop(ready[0])
        try:
            return config, ray.get(ready[0]), None
        except Exception as err:  # noqa: BLE001 - a task's error, a dead worker, Ray's out-of-memory kill
            return config, None, err

    def close(self) -> None:
        for ref in self._refs:  # the driver stopped early: runs nobody will record
            ray.cancel(ref)
        self._refs.clear()


__all__ = ["RayBackend", "start"]
