"""Run a study's configurations into a record store: the one loop every notebook and page goes through.

A study (:mod:`cwl_lib.studies`) gives ``key(config)``, ``order(config)`` and ``run_one(config,
context) -> record``; the store (:class:`cwl_lib.records.Store`) keeps each record as soon as its run
ends, so a stopped grid resumes where it stopped and a rerun does no finished run again.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

from .records import Store
from .studies.context import Context


OPTIONS = ("workers", "ray_address", "gpus_per_run")


def options(params: dict) -> dict:
    """The executor's options among a notebook's parameters (:data:`cwl_lib.profiles.EXECUTOR`)."""
    return {k: params[k] for k in OPTIONS if k in params}


def missing(study, configs: list, store: Store) -> list:
    """The configs whose record is not in ``store``, in the study's preferred order, without duplicates."""
    todo = {study.key(c): c for c in configs if not store.has(study.key(c))}
    return sorted(todo.values(), key=study.order)


def run(study, configs: list, store: Store, context: Context, *, progress: bool = True,
        describe=str, out=None, workers: int = 1, ray_address: str = "", gpus_per_run: float = 1.0) -> list[dict]:
    """Run every config not yet recorded; return the records of ``configs``, in their order.

    With one worker and no Ray address the runs go one after another in this process. A progress bar
    (stderr) shows while it runs; one summary line is printed at the end (stdout, or ``out``).
    """
    if workers != 1 or ray_address:
        raise NotImplementedError("the Ray executor (issue 15) is not in yet: run with workers=1")
    out = out or sys.stdout
    if context.shared is None:
        context.shared = store.shared
    todo = missing(study, configs, store)
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"{study.NAME} runs", disable=not progress, file=sys.stderr)
    try:
        for config in todo:
            bar.set_postfix_str(describe(config)[:80])
            store.write(study.run_one(config, context))
            bar.update(1)
    finally:
        bar.close()
    done = {c: store.get(study.key(c)) for c in dict.fromkeys(configs)}
    print(f"{study.NAME}: {len(done)} runs, {len(todo)} run now in {time.perf_counter() - start:.0f} s, "
          f"{len(done) - len(todo)} already recorded", file=out)
    return [done[c] for c in configs]


__all__ = ["run", "missing"]
