"""Run the fake study's grid into a store, as a separate driver process (tests only).

    python fake_driver.py STORE LOG N SLEEP WORKERS
"""
import sys

import fake_study

from cwl_lib import executor
from cwl_lib.records import Store
from cwl_lib.studies import Context

if __name__ == "__main__":
    store, log, n, sleep, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    configs = [fake_study.Config(i, log, sleep) for i in range(n)]
    executor.run(fake_study, configs, Store(store), Context("cpu"), progress=False, workers=workers)
