#!/usr/bin/env bash
# Lint the code (package, plugins, tests, benchmarks, scripts) and type-check the package, as CI does before the tests.
# Settings: [tool.ruff] and [tool.mypy] in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "lint: ruff check worker plugins tests benchmarks scripts"
.venv/bin/ruff check worker plugins tests benchmarks scripts
# mypy's cache lives outside the checkout, so a fresh clone (CI's) checks in seconds what it checked before, not in
# a minute and a half; mypy checks each cached module against its source's hash, so a stale entry is never used
export MYPY_CACHE_DIR="${MYPY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/argilla-worker/mypy}"
echo "lint: mypy (worker, plugins; cache $MYPY_CACHE_DIR)"
.venv/bin/mypy
