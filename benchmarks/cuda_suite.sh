#!/usr/bin/env bash
# Every check that needs a GPU, in one go: the CUDA unit tests, then the benchmarks on the GPU.
#
#   bash benchmarks/cuda_suite.sh                       # everything, with .venv/bin/python
#   PYTHON=python3 STEPS="tests precision" bash benchmarks/cuda_suite.sh
#
# STEPS picks from: tests tokenizing host_side gpu precision calibration scoring label_errors active_learning label_error_grid
# active_learning_grid multi_annotator multilabel mc_memory training_memory (default: all). The grids are issue #17's benchmarks:
# label errors on 3 sets × 10 %/20 % noise × 3 seeds plus the real-disagreement movie snippets, active learning on 2 sets × 3
# seeds (about 15 min and 25 min on an H100: 37 s per label-error cell, 130 s per active-learning run measured).
# LIMIT caps each command in seconds (default 1800); DEADLINE (epoch seconds) stops starting commands and cuts the
# running one at that time; GPU_PARTS narrows the gpu step's parts (e.g. "scoring,training"); GPU_ARGS adds gpu.py
# options (e.g. "--paths deterministic --tokenizer-sweep 2,4").
# Results: benchmarks/results/*.{md,json,png}; each step's log: benchmarks/results/logs/<step>.log. A failed step does not stop the others.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-tests tokenizing gpu precision calibration scoring label_errors active_learning label_error_grid \
active_learning_grid multi_annotator multilabel mc_memory training_memory}
LIMIT=${LIMIT:-1800}
LOGS=benchmarks/results/logs
mkdir -p "$LOGS"

if ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "cuda_suite: no CUDA device visible to $PYTHON" >&2
  exit 2
fi

step_command() {  # one command line per line of output, run in order
  case "$1" in
    tests) echo "-m pytest -q -ra tests/unit/test_cuda.py" ;;
    tokenizing) echo "benchmarks/tokenizing.py --records 50000" ;;
    host_side) echo "benchmarks/host_side.py --labels 2 --rounds 2" ;;  # the host's own per-record work, ≈ 40 s
    gpu) echo "benchmarks/gpu.py --compile${GPU_PARTS:+ --parts $GPU_PARTS}${GPU_ARGS:+ $GPU_ARGS}" ;;
    precision) echo "benchmarks/precision.py --device cuda" ;;
    calibration) echo "benchmarks/calibration.py --device cuda" ;;
    scoring) echo "benchmarks/scoring.py --device cuda --layer-sweep" ;;
    label_errors) echo "benchmarks/label_errors.py --device cuda" ;;
    active_learning) echo "benchmarks/active_learning.py --device cuda" ;;
    label_error_grid)
      for seed in 0 1 2; do
        for dataset in newsgroups reuters8 movies; do
          for flip in 0.1 0.2; do echo "benchmarks/label_errors.py --device cuda --dataset $dataset --flip $flip --seed $seed"; done
        done
        echo "benchmarks/label_errors.py --device cuda --dataset movies-raters --seed $seed"
      done ;;
    active_learning_grid)
      for seed in 0 1 2; do
        for dataset in movies newsgroups; do echo "benchmarks/active_learning.py --device cuda --dataset $dataset --seed $seed"; done
      done ;;
    multi_annotator) echo "benchmarks/multi_annotator.py --device cuda" ;;
    multilabel) echo "benchmarks/multilabel.py --device cuda" ;;
    mc_memory) echo "benchmarks/mc_memory.py --device cuda" ;;
    training_memory) echo "benchmarks/training_memory.py --device cuda" ;;
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
  status=0
  : >"$LOGS/$step.log"
  while IFS= read -r line; do
    limit=$LIMIT
    if [ -n "${DEADLINE:-}" ]; then
      left=$(( DEADLINE - $(date +%s) ))
      if [ "$left" -lt 10 ]; then
        echo "cuda_suite: not run (DEADLINE reached): $line" | tee -a "$LOGS/$step.log"
        status=124
        continue
      fi
      [ "$left" -lt "$limit" ] && limit=$left
    fi
    # shellcheck disable=SC2086  # the step's arguments are meant to split
    timeout "$limit" "$PYTHON" $line >>"$LOGS/$step.log" 2>&1 || status=$?
  done <<<"$command_line"
  echo "cuda_suite: $step exit $status in $(( $(date +%s) - started )) s (log: $LOGS/$step.log)"
  [ "$status" -eq 0 ] || failed=1
done
exit "$failed"
