#!/usr/bin/env bash
# One short, prepared GPU session: set up, run every gpu_check_*.py and the paper dry-run, keep the logs.
# Usage on a GPU machine: bash benchmarks/run_gpu_checks.sh OUTDIR
set -uo pipefail
out=${1:-gpu-logs}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
py=${PY:-.venv/bin/python}
for script in benchmarks/gpu_check_*.py; do
    name=$(basename "$script" .py)
    echo "== $name"
    timeout ${CHECK_TIMEOUT:-240} "$py" "$script" > "$out/$name.log" 2>&1
    echo "exit $?" >> "$out/$name.log"
    tail -n 25 "$out/$name.log"
done
