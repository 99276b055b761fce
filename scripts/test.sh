#!/usr/bin/env bash
# Set everything up on a fresh machine, then run the whole test suite:
# unit tests, then integration tests against a real local Argilla stack that the test
# session starts (in its own state directory and ports) and stops again.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
exec .venv/bin/python -m pytest "$@"
