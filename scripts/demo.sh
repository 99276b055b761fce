#!/usr/bin/env bash
# Set everything up on a fresh machine, then run the worker on the embedded default:
# a local Argilla stack, offline movie-review snippets, the offline MiniLM model.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
exec .venv/bin/argilla-worker demo "$@"
