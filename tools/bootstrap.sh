#!/usr/bin/env bash
# Fresh-machine set-up: a venv in .venv with torch and canet_ros (editable, test extras).
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch is pinned here, not in setup.py, so pip never replaces a robot's own build.
.venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.14.1}" \
    "torchvision==${TORCHVISION_VERSION:-0.29.1}"
.venv/bin/python -m pip install -q -e '.[test]'
