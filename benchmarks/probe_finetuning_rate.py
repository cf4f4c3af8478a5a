"""How the finetuning rate after pruning shapes FT@1 and FT@5 on the laptop profile's 05 study.

Reruns the unpruned row and tau 0.8 and 0.9 of `05_pruning` (laptop parameters) at each finetuning rate, in a
scratch store that reuses the transferred network `cwl reproduce --profile laptop --only 05` kept in
`results/laptop/05_pruning/runs/shared/` (run that first). The laptop profile's rate is the largest whose first
epoch does not lower the unpruned network: benchmarks/README.md holds the figures behind it.
Usage: python benchmarks/probe_finetuning_rate.py [--rates 1e-4 3e-4 5e-4 1e-3]
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cwl_lib import executor, profiles, records
from cwl_lib.studies import Context
from cwl_lib.studies import pruning as study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[1e-4, 3e-4, 5e-4, 1e-3])
    ap.add_argument("--taus", type=float, nargs="+", default=[0.8, 0.9])
    args = ap.parse_args()
    kept = sorted(Path("results/laptop/05_pruning/runs/shared").glob("transfer-*.pt"))
    if not kept:
        sys.exit("no laptop transfer kept: run `cwl reproduce --profile laptop --only 05 --no-book` first")
    p = profiles.parameters("laptop", "05_pruning")
    with tempfile.TemporaryDirectory() as tmp:
        store = records.Store(Path(tmp) / "runs")
        store.shared.mkdir(parents=True, exist_ok=True)
        for f in kept:
            shutil.copy(f, store.shared / f.name)
        context = Context("cpu")
        for rate in args.rates:
            q = {**p, "finetune_lr": rate, "taus": args.taus}
            configs = [c for c in study.configs(q) if study.variant_of(c, q) == study.PAPER]
            start = time.perf_counter()
            recs = executor.run(study, configs, store, context, progress=False, out=io.StringIO())
            cols = ["tau", "acc", *(f"ft{e}" for e in q["finetune_epochs"]), "params"]
            print(f"finetuning rate {rate:g} ({time.perf_counter() - start:.0f} s)")
            print(study.table(recs)[cols].to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
