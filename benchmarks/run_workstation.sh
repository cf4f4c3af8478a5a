#!/usr/bin/env bash
# The laptop miniature at the paper's scale of grid, for one GPU: Fashion-MNIST and MobileNetV2 at 224 px, all
# four strategies of Tables I-II and the bn-affine baseline, the paper's learning-rate grids and 10 repeats (03),
# and the pruning study at 224 px (05); then the claims ledger (06). Keeps the wall time of each notebook, the
# executed notebooks and the ledger under OUTDIR, for benchmarks/README.md and the book.
# Usage on a GPU machine, after `make setup`: bash benchmarks/run_workstation.sh OUTDIR
set -uo pipefail
out=${1:-workstation}
mkdir -p "$out"
cwl=${CWL:-.venv/bin/cwl}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
common=(--profile laptop --no-book -p device cuda -p input_size 224)
run() {  # run NOTEBOOK [-p NAME VALUE]...: one notebook of the miniature, timed
    local nb=$1; shift
    local start=$SECONDS
    "$cwl" reproduce "${common[@]}" --only "$nb" "$@" > "$out/$nb.log" 2>&1
    echo "$nb exit $? wall $((SECONDS - start)) s" | tee -a "$out/times.txt"
}
run 03_classification -p strategies '["freeze", "freeze+cwl", "finetune", "finetune+cwl", "bn-affine"]' \
    -p repeats 10 -p shots '[1, 3, 5, 10]' -p lr_freeze '[0.001, 0.005, 0.01, 0.05]' \
    -p lr_finetune '[1e-05, 5e-05, 0.0001, 0.0005, 0.001]' -p steps 200 -p batch_size 32 -p test_size 2000
run 05_pruning -p bn_gamma true -p test_size 2000 -p finetune_epochs '[1, 30]'
"$cwl" reproduce --profile laptop --no-book --only 06_comparison > "$out/06_comparison.log" 2>&1
cp results/laptop/06_comparison/ledger.csv "$out/ledger.csv" 2>/dev/null
cp _build/executed/laptop/0[356]_*.ipynb "$out/" 2>/dev/null
cat "$out/times.txt"
