#!/usr/bin/env bash
# Lint the code (package, plugins, tests, benchmarks, scripts) and type-check the package, as CI does before the tests.
# Settings: [tool.ruff] and [tool.mypy] in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "lint: ruff check worker plugins tests benchmarks scripts"
.venv/bin/ruff check worker plugins tests benchmarks scripts
echo "lint: mypy (worker, plugins)"
.venv/bin/mypy
