#!/usr/bin/env bash
# Create .venv with the worker and its dev tools. Safe to run again (reuses what is there).
#
# torch goes in first: on a machine with an NVIDIA GPU the normal (CUDA) build from PyPI;
# on a CPU-only machine torch==2.13.0, whose CPU wheel lies on disk on our CI machines.
# Override with TORCH_SPEC='torch==X.Y.Z' (and PIP_EXTRA_INDEX_URL for another build).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip

if [ -z "${TORCH_SPEC:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    TORCH_SPEC='torch>=2.4,<3'
  else
    TORCH_SPEC='torch==2.13.0'
  fi
fi
if ! "$VENV/bin/python" -c 'import torch' >/dev/null 2>&1; then
  echo "setup: installing $TORCH_SPEC"
  "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
fi

echo "setup: installing argilla-worker and its dependencies"
"$VENV/bin/python" -m pip install --quiet -e '.[dev,ray]'
echo "setup: done ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
