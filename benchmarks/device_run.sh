#!/usr/bin/env bash
# On a lent GPU machine (no PyPI, no Hub): set up from the carried bundle, run the chosen benchmarks, and leave one
# archive of their results under $OUT. Prepare here with `bash scripts/device_bundle.sh`, then run there:
#
#   run(command="bash benchmarks/device_run.sh", carry=[".device"], timeout_s=570)
#   STEPS="label_error_grid" bash benchmarks/device_run.sh      # another session's share of the budget
#
# STEPS: as benchmarks/cuda_suite.sh (default "tests tokenizing gpu mc_memory": issue #16's figures and MC's GPU
# memory, ≈ 7 min on an H100; gpu runs its Ray rows only with a `RAY=1 WEIGHTS=0` bundle: Ray beside the weights
# is more than a run can carry; GPU_PARTS overrides gpu.py's parts). BUDGET (default 540 s, setup included)
# bounds the whole script inside one device run (cuda_suite.sh's DEADLINE): a command still running then is
# stopped, the ones after it are named "not run" in the summary, and the results are archived either way.
# CHECK_ONLY=1 checks the bundle on any machine (no GPU needed): the same setup, then a tiny CPU run of gpu.py
# (its Ray rows too with a RAY=1 bundle) and of host_side.py.
# Results: $OUT/results.tar.gz (benchmarks/results: *.md, *.json, the steps' logs) and $OUT/summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."

BUNDLE=${BUNDLE:-.device}
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-tests tokenizing gpu mc_memory}
BUDGET=${BUDGET:-540}
deadline=$(( $(date +%s) + BUDGET ))
OUT=${OUT:-/tmp/device-out}
SITE=${SITE:-/tmp/device-site}
mkdir -p "$OUT"

if [ ! -d "$BUNDLE/whl" ] || [ ! -f "$BUNDLE/assets.tar.xz" ]; then
  echo "device_run: no bundle in $BUNDLE: run scripts/device_bundle.sh here and carry \".device\"" >&2
  exit 2
fi
"$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
  "$BUNDLE"/whl/*.whl || exit 2
if [ -f "$BUNDLE/ray.tar.xz" ]; then  # RAY=1 bundle: ray/ unpacked as pip would (modes kept: its binaries run)
  "$PYTHON" -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2], filter="tar")' \
    "$BUNDLE/ray.tar.xz" "$SITE" || exit 2
  GPU_PARTS=${GPU_PARTS:-scoring,training,ray}
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export ARGILLA_WORKER_CACHE=${ARGILLA_WORKER_CACHE:-/tmp/device-cache}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1
mkdir -p "$ARGILLA_WORKER_CACHE"
"$PYTHON" - "$BUNDLE/assets.tar.xz" <<'EOF' || exit 2
"""The carried assets unpacked (Python's tarfile: no xz binary needed), their float16 weights back to the float32
model.safetensors the worker loads."""
import sys
import tarfile

import torch
from safetensors.torch import load_file, save_file

from worker.offline_assets import cache_root

with tarfile.open(sys.argv[1], "r:xz") as archive:
    archive.extractall(cache_root(), filter="data")
for half in (cache_root() / "assets").rglob("model.fp16.safetensors"):
    tensors = load_file(half)
    save_file({name: t.to(torch.float32) if t.is_floating_point() else t for name, t in tensors.items()},
              half.with_name("model.safetensors"), metadata={"format": "pt"})
    half.unlink()
EOF

{
  echo "device_run: $(date -u +%FT%TZ) on $(hostname)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  "$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
} | tee "$OUT/summary.txt"
if [ -n "${CHECK_ONLY:-}" ]; then  # the bundle checked on any machine: a small CPU run of the gpu benchmark
  # (with a RAY=1 bundle its Ray rows too: one actor on a local Ray started from the carried ray/)
  "$PYTHON" benchmarks/gpu.py --device cpu --records 64 --legacy-records 32 --train 32 --samples 4 \
    --parts "${GPU_PARTS:-scoring,training}" --ray-actors 1 2>&1 | tee -a "$OUT/summary.txt"
  status=${PIPESTATUS[0]}
  "$PYTHON" benchmarks/host_side.py --labels 2 --rounds 1 --records 2000 2>&1 | tee -a "$OUT/summary.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else  # gpu.py's Ray rows need Ray, which travels only in a RAY=1 bundle
  PYTHON="$PYTHON" STEPS="$STEPS" DEADLINE="$deadline" GPU_PARTS=${GPU_PARTS:-scoring,training} \
    bash benchmarks/cuda_suite.sh 2>&1 \
    | tee -a "$OUT/summary.txt"
  status=${PIPESTATUS[0]}
fi
tar -czf "$OUT/results.tar.gz" benchmarks/results
exit "$status"
