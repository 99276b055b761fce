#!/usr/bin/env bash
# Lint and type-check the package (worker/ and plugins/), as CI does before the tests.
# Settings: [tool.ruff] and [tool.mypy] in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "lint: ruff check worker plugins"
.venv/bin/ruff check worker plugins
echo "lint: mypy (worker, plugins)"
.venv/bin/mypy
