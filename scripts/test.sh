#!/usr/bin/env bash
# The test command: set up .venv if needed, then run the fast test tier (add pytest arguments freely;
# `-m recipe` runs the full trainings behind README's figures instead).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
