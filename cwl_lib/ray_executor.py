"""Ray actors for a study's grid (:mod:`cwl_lib.executor`); imported only when a grid runs through Ray.

Each actor holds one CPU and, on a GPU, ``gpus_per_run`` of one for its whole life, and keeps one Context
across its runs. Each dataset is decoded once per grid by a registry actor (:mod:`cwl_lib.ray_splits`) into
Ray's object store, which every actor on a node reads without copying: N actors hold one copy, not N. ``auto``
lets the cluster decide the device. Ray's own retries are off: a dead actor fails its run and is replaced,
and the driver retries the run once.
"""
from __future__ import annotations

import atexit
import dataclasses
import importlib
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import ray
import torch

from .data.classification import ImageSet, Split
from .ray_splits import SplitRegistry
from .executor import check_ray_address
from .paths import project_root
from .studies.context import Context

# Ray's session folder holds Unix sockets, whose paths may not pass 107 bytes; Ray adds up to about 70.
_SOCKET_ROOM = 107 - 70


class Worker:
    """One Ray actor's state: the grid's Context, built once in the worker process."""

    def __init__(self, spec: dict):
        if spec["threads"]:
            torch.set_num_threads(spec["threads"])
        self.context = Context(device=spec["device"], **spec["fields"])

    def run(self, study_module: str, config) -> dict:
        return importlib.import_module(study_module).run_one(config, self.context)


def _from_arrays(d: dict) -> Split:
    with warnings.catch_warnings():  # the object store's arrays are read-only, and only read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        parts = {part: ImageSet(torch.from_numpy(d[f"{part}_images"]), torch.from_numpy(d[f"{part}_labels"]),
                                list(d["classes"])) for part in ("train", "test")}
    return Split(d["name"], parts["train"], parts["test"])


class SharedSplits:
    """A :class:`Context`'s ``load_split`` for Ray actors: each split decoded once, read from the object store."""

    def __init__(self, load, registry):
        self.load, self.registry = load, registry

    def __call__(self, name: str, input_size: int, data_root: str | None) -> Split:
        try:
            held = ray.get(self.registry.take.remote((name, input_size, data_root), self.load))
        except ray.exceptions.RayTaskError as err:  # absent or damaged data: its own error, not Ray's wrapper
            raise err.cause if isinstance(err.cause, Exception) else err from None
        return _from_arrays(ray.get(held[0]))


def device_for(requested: str, cluster_gpus: float) -> str:
    """The device type the actors use: ``auto`` becomes cuda where the cluster has a GPU."""
    if requested == "auto":
        return "cuda" if cluster_gpus > 0 else "cpu"
    kind = requested.split(":")[0]
    if kind == "cuda" and cluster_gpus <= 0:
        raise ValueError("device cuda was asked, but the Ray cluster has no GPU: pass -p device cpu, or join a "
                         "cluster with GPUs (--address)")
    return kind


def capacity(resources: dict, device: str, gpus_per_run: float) -> int:
    """How many actors the cluster can hold at once: one CPU each, and ``gpus_per_run`` of a GPU on cuda."""
    cpus = int(resources.get("CPU", 1))
    gpus = int(resources.get("GPU", 0) / gpus_per_run + 1e-9) if device == "cuda" else cpus
    return max(min(cpus, gpus), 1)


def temp_dir() -> tuple[Path, bool]:
    """Where a local Ray instance keeps its session: ``_build/ray``, or a short temporary folder (removed when
    this process ends: the second value) when that path is too long for Ray's sockets."""
    inside = project_root() / "_build" / "ray"
    if len(str(inside)) <= _SOCKET_ROOM:
        inside.mkdir(parents=True, exist_ok=True)
        return inside, False
    return Path(tempfile.mkdtemp(prefix="cwl-ray-")), True


def start(workers: int, address: str = "") -> None:
    """Join the Ray cluster at ``address``, or start a local one with ``workers`` CPUs and this machine's GPUs;
    one this process already joined is reused."""
    if ray.is_initialized():
        return
    common = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
              "configure_logging": True}
    if address:
        check_ray_address(address)
        ray.init(address=address, **common)
    else:
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        folder, remove = temp_dir()
        ray.init(num_cpus=workers, num_gpus=gpus, _temp_dir=str(folder), **common)
        if remove:  # registered after ray.init's own exit hook, so it runs first: shut down, then removed
            atexit.register(lambda: (ray.shutdown(), shutil.rmtree(folder, ignore_errors=True)))


class RayBackend:
    """Hands runs to a pool of Ray actors and gives their results back as they finish."""

    def __init__(self, study, context: Context, *, workers: int, address: str = "", gpus_per_run: float = 1.0):
        start(workers, address)
        resources = ray.cluster_resources()
        device = device_for(context.requested, resources.get("GPU", 0))
        room = capacity(resources, device, gpus_per_run)
        self.slots = min(workers, room) if workers > 1 else room
        if workers > room:
            each = "one CPU each" if device != "cuda" else f"{gpus_per_run} GPU and one CPU each"
            print(f"{workers} runs at once were asked; the Ray cluster holds {room} ({each})", file=sys.stderr)
        # threads per actor: Ray gives each one (OMP_NUM_THREADS=1); CWL_RAY_THREADS sets another count
        threads = int(os.environ.get("CWL_RAY_THREADS", "0"))
        self._registry = ray.remote(num_cpus=0)(SplitRegistry).remote()
        fields = {f.name: getattr(context, f.name) for f in dataclasses.fields(Context)
                  if f.name not in ("_memo", "device", "requested")}
        fields["load_split"] = SharedSplits(fields["load_split"], self._registry)
        self._spec = ray.put({"device": device, "fields": fields, "threads": threads})
        self._module = study.__name__
        self._actor = ray.remote(num_cpus=1, num_gpus=gpus_per_run if device == "cuda" else 0, max_restarts=0,
                                 max_task_retries=0)(Worker)
        self._actors = [self._actor.remote(self._spec) for _ in range(self.slots)]
        self._idle = list(range(self.slots))
        self._refs: dict = {}  # pending result -> (config, actor index)

    @property
    def pending(self) -> int:
        return len(self._refs)

    def submit(self, config) -> None:
        i = self._idle.pop()
        self._refs[self._actors[i].run.remote(self._module, config)] = (config, i)

    def next_result(self):
        ready, _ = ray.wait(list(self._refs), num_returns=1)
        config, i = self._refs.pop(ready[0])
        try:
            result = config, ray.get(ready[0]), None
        except ray.exceptions.RayActorError as err:  # the worker process died: a fresh one takes its place
            self._actors[i] = self._actor.remote(self._spec)
            result = config, None, err
        except Exception as err:  # noqa: BLE001 - the run's own error, Ray's out-of-memory kill
            result = config, None, err
        self._idle.append(i)
        return result

    def close(self) -> None:
        for ref in self._refs:  # the driver stopped early: runs nobody will record
            ray.cancel(ref)
        self._refs.clear()
        # frees the actors' CPUs and GPU shares for the next grid, and the datasets the registry owns
        for actor in self._actors + ([self._registry] if self._registry is not None else []):
            ray.kill(actor)
        self._actors, self._registry = [], None
