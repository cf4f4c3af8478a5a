#!/usr/bin/env bash
# Write requirements.lock: every package of the environment (pyproject's dependencies and its dev extra,
# with everything they pull in), pinned, with the SHA-256 of every file PyPI serves for it, for the
# platform the book is built and tested on (CPython 3.11 on Linux x86_64, glibc 2.28 or later).
# scripts/setup.sh installs from it. Versions already locked stay (the old lock constrains the new one)
# unless UPGRADE=1, so a change to pyproject.toml moves only what it must. Needs PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
UV_VERSION=0.13.8
TOOLS=_build/lock-tools
LOCK=requirements.lock

[ -x "$TOOLS/bin/uv" ] || { "$PYTHON" -m venv "$TOOLS" && "$TOOLS/bin/pip" install --quiet "uv==$UV_VERSION"; }
keep=()
if [ -f "$LOCK" ] && [ "${UPGRADE:-0}" != 1 ]; then
    grep -E '^[A-Za-z0-9_.-]+==' "$LOCK" | sed 's/ .*//' > "$TOOLS/previous.txt"  # pins without hashes
    keep=(-c "$TOOLS/previous.txt")
fi
"$TOOLS/bin/uv" pip compile pyproject.toml --extra dev --generate-hashes --no-header --no-annotate --quiet \
    --python-version 3.11.5 --python-platform x86_64-manylinux_2_28 ${keep[@]+"${keep[@]}"} -o "$TOOLS/body.txt"
{
    echo "# The locked environment: CPython 3.11 on Linux x86_64 (glibc 2.28 or later). Written by scripts/lock.sh"
    echo "# (make lock) with uv $UV_VERSION from pyproject.toml; scripts/setup.sh installs it with"
    echo "#   pip install --no-deps --require-hashes -r requirements.lock"
    echo "# pyproject-dependencies: $("$PYTHON" cwl_lib/environment.py pyproject-digest)"
    cat "$TOOLS/body.txt"
} > "$LOCK.tmp"
mv "$LOCK.tmp" "$LOCK"
echo "lock: wrote $LOCK ($(grep -cE '^[A-Za-z0-9_.-]+==' "$LOCK") packages, sha256 $("$PYTHON" cwl_lib/environment.py lock-digest))"
