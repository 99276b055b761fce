#!/usr/bin/env bash
# Set everything up on a fresh machine, lint and type-check (scripts/lint.sh), then run the whole test suite:
# unit tests, then integration tests against a real local Argilla stack that the test
# session starts (in its own state directory and ports) and stops again.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/lint.sh

# The annotator-UI test drives Debian's chromium; install it where we can (root with apt-get).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "test: installing Debian's chromium for the UI test"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
exec .venv/bin/python -m pytest "$@"
