#!/usr/bin/env bash
# The test command: set up .venv if needed, check formatting and lint (ruff, configured in
# pyproject.toml), then run the fast test tier (add pytest arguments freely; `-m recipe` runs the
# full trainings behind README's figures instead).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff format --check --quiet src tests
.venv/bin/ruff check --quiet src tests
exec .venv/bin/python -m pytest -q "$@"
