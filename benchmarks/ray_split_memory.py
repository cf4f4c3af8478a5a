"""Memory of Ray workers holding one dataset: each decoding its own copy, against one copy in Ray's object
store read by all (:class:`cwl_lib.ray_executor.SharedSplits`, what `cwl reproduce --workers N` uses).

Starts a local Ray instance of ``--workers`` CPUs; each worker builds the :class:`~cwl_lib.studies.Context`
a Ray actor of the executor builds, asks it for the split (as every run does), reads every byte of it,
and reports how much its resident memory grew: RSS (shared pages counted in full by every process that
maps them), PSS (shared pages divided among the processes that map them) and USS (pages of its own). The
object store's copy is counted once, in ``object store``.

    python benchmarks/ray_split_memory.py [--dataset fashion-mnist] [--size 64] [--workers 4]
"""
from __future__ import annotations

import argparse
import platform
import time

import ray
import torch

from cwl_lib import ray_executor
from cwl_lib.studies.context import Context, default_split


def memory() -> dict:
    """This process's resident memory in MiB (from /proc/self/smaps_rollup)."""
    fields = {}
    with open("/proc/self/smaps_rollup") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return {"rss": fields["Rss"], "pss": fields["Pss"],
            "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)}


@ray.remote(num_cpus=1)
class Probe:
    def __init__(self, load_split):
        torch.set_num_threads(1)
        self.context = Context(device="cpu", load_split=load_split)
        self.split = None

    def before(self) -> dict:
        return memory()

    def load(self, name: str, size: int) -> dict:
        self.split = self.context.split(name, size)
        touched = sum(int(t.sum(dtype=torch.int64)) for t in (self.split.train.images, self.split.test.images))
        return {**memory(), "touched": touched}


def measure(shared: bool, workers: int, name: str, size: int) -> dict:
    ray_executor.start(workers)
    registry = ray.remote(num_cpus=0)(ray_executor.SplitRegistry).remote() if shared else None
    load = ray_executor.SharedSplits(default_split, registry) if shared else default_split
    probes = [Probe.remote(load) for _ in range(workers)]
    before = ray.get([p.before.remote() for p in probes])
    after = ray.get([p.load.remote(name, size) for p in probes])
    assert len({a["touched"] for a in after}) == 1, "the workers read different data"
    store = 0.0
    if shared:
        used = ray.available_resources().get("object_store_memory"), ray.cluster_resources().get("object_store_memory")
        store = (used[1] - used[0]) / 2**20 if None not in used else float("nan")
    grown = {k: [a[k] - b[k] for a, b in zip(after, before)] for k in ("rss", "pss", "uss")}
    for p in probes:
        ray.kill(p)
    if registry is not None:
        ray.kill(registry)
    return {"grown": grown, "store": store}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    split = default_split(args.dataset, args.size, None)
    nbytes = sum(t.numel() * t.element_size() for s in (split.train, split.test) for t in (s.images, s.labels))
    del split
    print(f"[ray memory] {args.dataset} at input {args.size}: {nbytes / 2**20:.0f} MiB decoded; {args.workers} workers; "
          f"{platform.node()} ({platform.machine()}), {time.strftime('%Y-%m-%d')}")
    for shared in (False, True):
        result = measure(shared, args.workers, args.dataset, args.size)
        g = result["grown"]
        label = "one copy in the object store" if shared else "each worker decodes its own"
        print(f"[ray memory] {label}: per worker RSS +{max(g['rss']):.0f} MiB, PSS +{max(g['pss']):.0f} MiB, "
              f"USS +{max(g['uss']):.0f} MiB; {args.workers} workers together: RSS +{sum(g['rss']):.0f} MiB, "
              f"PSS +{sum(g['pss']):.0f} MiB, USS +{sum(g['uss']):.0f} MiB"
              + (f"; object store {result['store']:.0f} MiB" if shared else ""))
    ray.shutdown()


if __name__ == "__main__":
    main()
