"""Ray actors for a study's grid: each run is a call on one of them, returning its record to the driver
(:mod:`cwl_lib.executor`).

Imported only when a grid runs through Ray (``workers > 1`` or a Ray address), so ``import cwl_lib`` never
imports Ray.

**Workers.** The backend starts one Ray actor per slot: a worker process that holds one CPU and, on a GPU,
``gpus_per_run`` of one GPU (0.25 packs four on a GPU) for its whole life, so the CUDA device it opened is
the one Ray gave it. Each actor builds one :class:`~cwl_lib.studies.context.Context` from the driver's
settings (put once in Ray's object store: the device, the data root, the store's ``shared/`` folder,
batch sizes) and keeps it across its runs. Data and weights do not travel with the runs: the Context's
memo holds the latest dataset and backbone (read from torch's hub cache) while the actor's next runs use
them; the driver hands runs out in the study's order, which keeps those blocks long.

**One decoded copy of each dataset per node.** The first time an actor needs a dataset, a registry actor
that lives as long as the grid (:class:`SplitRegistry`) decodes it (from the data root, a path every node
must see) and puts its uint8 arrays in Ray's object store, which it owns; every actor then reads the
arrays from the object store without copying them (the store is shared memory on each node, and Ray
copies an object to another node once). So N actors on a node hold one copy, not N (a few GB each for the paper's
largest at 224 px). The arrays are read-only: the studies index them (which copies), never write them.
A pruning study's transferred network is trained by the first run that needs it, under a file lock, and
read by the others from ``shared/``.

**Device.** A driver asked for ``auto`` lets the cluster decide: its actors run on a GPU when the cluster
has one, whatever the driver's own machine has. ``cuda`` or ``cpu`` is obeyed.

**Failures.** An actor that dies (a crash, Ray's out-of-memory kill) fails its run and is replaced; Ray's
own retries are off: the driver retries a failed run once and records a second failure.
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
    if device != "cuda":
        return max(cpus, 1)
    return max(min(cpus, int(resources.get("GPU", 0) / gpus_per_run + 1e-9)), 1)


def temp_dir() -> tuple[Path, bool]:
    """Where a local Ray instance keeps its session (logs, sockets, spilled objects): ``_build/ray`` of the
    checkout, or, when that path is too long for Ray's sockets, a short temporary folder, which is removed
    when this process ends (the second value says so)."""
    inside = project_root() / "_build" / "ray"
    if len(str(inside)) <= _SOCKET_ROOM:
        inside.mkdir(parents=True, exist_ok=True)
        return inside, False
    return Path(tempfile.mkdtemp(prefix="cwl-ray-")), True


def _shutdown_and_remove(folder: Path) -> None:
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


def start(workers: int, address: str = "") -> None:
    """Join the Ray cluster at ``address`` (refused in one line when nothing answers there within
    :data:`cwl_lib.executor.RAY_CONNECT_TIMEOUT` seconds), or start a local instance with ``workers`` CPUs
    and this machine's GPUs, its session kept under ``_build/ray`` (:func:`temp_dir`); a Ray instance this
    process already joined is reused as it is."""
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
        if remove:  # registered after ray.init's own exit hook, so it runs first (last in, first out): shut down, then removed
            atexit.register(_shutdown_and_remove, folder)


class RayBackend:
    """Hands runs to a pool of Ray actors and gives their results back as they finish."""

    def __init__(self, study, context: Context, *, workers: int, address: str = "", gpus_per_run: float = 1.0,
                 threads: int | None = None, out=sys.stderr):
        start(workers, address)
        resources = ray.cluster_resources()
        device = device_for(context.requested, resources.get("GPU", 0))
        room = capacity(resources, device, gpus_per_run)
        self.slots = min(workers, room) if workers > 1 else room
        if workers > room:
            print(f"{workers} runs at once were asked; the Ray cluster holds {room} "
                  f"({'one CPU each' if device != 'cuda' else f'{gpus_per_run} GPU and one CPU each'})", file=out)
        # threads per actor: Ray gives each one (OMP_NUM_THREADS=1); CWL_RAY_THREADS sets another count
        threads = threads if threads is not None else int(os.environ.get("CWL_RAY_THREADS", "0"))
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
