#!/usr/bin/env bash
# Every check that needs a GPU, in one go: the CUDA unit tests, then the benchmarks on the GPU.
#
#   bash benchmarks/cuda_suite.sh                       # everything, with .venv/bin/python
#   PYTHON=python3 STEPS="tests precision" bash benchmarks/cuda_suite.sh
#
# STEPS picks from: tests gpu precision calibration scoring label_errors active_learning (default: all).
# LIMIT caps each step in seconds (default 1800). Results: benchmarks/results/*.{md,json,png};
# each step's log: benchmarks/results/logs/<step>.log. A failed step does not stop the others.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-tests gpu precision calibration scoring label_errors active_learning}
LIMIT=${LIMIT:-1800}
LOGS=benchmarks/results/logs
mkdir -p "$LOGS"

if ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "cuda_suite: no CUDA device visible to $PYTHON" >&2
  exit 2
fi

step_command() {
  case "$1" in
    tests) echo "-m pytest -q -ra tests/unit/test_cuda.py" ;;
    gpu) echo "benchmarks/gpu.py --compile" ;;
    precision) echo "benchmarks/precision.py --device cuda" ;;
    calibration) echo "benchmarks/calibration.py --device cuda" ;;
    scoring) echo "benchmarks/scoring.py --device cuda --layer-sweep" ;;
    label_errors) echo "benchmarks/label_errors.py --device cuda" ;;
    active_learning) echo "benchmarks/active_learning.py --device cuda" ;;
    *) return 1 ;;
  esac
}

failed=0
for step in $STEPS; do
  if ! command_line=$(step_command "$step"); then
    echo "cuda_suite: unknown step '$step'" >&2
    failed=1
    continue
  fi
  started=$(date +%s)
  # shellcheck disable=SC2086  # the step's arguments are meant to split
  timeout "$LIMIT" "$PYTHON" $command_line >"$LOGS/$step.log" 2>&1
  status=$?
  echo "cuda_suite: $step exit $status in $(( $(date +%s) - started )) s (log: $LOGS/$step.log)"
  [ "$status" -eq 0 ] || failed=1
done
exit "$failed"
