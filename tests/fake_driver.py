"""Run the fake study's grid into a store, as a separate driver process (tests only).

    python fake_driver.py STORE LOG N SLEEP WORKERS [BARRIER]

With BARRIER (a folder), the driver says it is ready (``ready-<pid>``) once imported, then waits for
``go`` there, so that two drivers start their grids together however long their imports took.
"""
import os
import sys
import time
from pathlib import Path

import fake_study

from cwl_lib import executor
from cwl_lib.records import Store
from cwl_lib.studies import Context

if __name__ == "__main__":
    store, log, n, sleep, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    configs = [fake_study.Config(i, log, sleep) for i in range(n)]
    if len(sys.argv) > 6:
        barrier = Path(sys.argv[6])
        (barrier / f"ready-{os.getpid()}").touch()
        while not (barrier / "go").exists():
            time.sleep(0.02)
    executor.run(fake_study, configs, Store(store), Context("cpu"), progress=False, workers=workers)
