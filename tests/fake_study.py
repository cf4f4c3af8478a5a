"""A study of the executor's shape whose runs sleep, log their calls and fail on demand (tests only).

Each call of ``run_one`` appends ``<key> <pid>`` to ``Config.log`` before it works, so a test can count
how often each run was started, by which process.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from cwl_lib import records
from cwl_lib.data import MissingDataError

NAME = "fake"


@dataclass(frozen=True)
class Config:
    i: int
    log: str
    sleep: float = 0.0
    fail: str = ""  # "always", "once" (the first call raises, the retry works), "fatal" (missing data),
    # "crash" (the process running it is killed: a Ray worker's death; never in this process)


def key(config: Config) -> str:
    return records.key(NAME, config)


def order(config: Config) -> tuple:
    return (config.i,)


def run_one(config: Config, context) -> dict:
    with open(config.log, "a") as f:
        f.write(f"{key(config)} {os.getpid()}\n")
    time.sleep(config.sleep)
    if config.fail == "always":
        raise ValueError(f"run {config.i} cannot work")
    if config.fail == "once":
        marker = Path(config.log).with_name(f"failed-once-{config.i}")
        if not marker.exists():
            marker.touch()
            raise MemoryError(f"run {config.i} ran out of memory")
    if config.fail == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if config.fail == "fatal":
        raise MissingDataError(f"run {config.i}: dataset absent; fetch it with `cwl fetch`")
    return records.new_record(NAME, config, context.device, value=config.i ** 2)


def calls(log: str | Path) -> list[str]:
    path = Path(log)
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []
