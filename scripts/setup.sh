#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv: torch, lstmvision and its tools.
# Re-running is cheap: it reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.lstmvision-installed
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing $TORCH_SPEC and lstmvision into .venv (a few minutes the first time)" >&2
  # shellcheck disable=SC2086
  .venv/bin/python -m pip install --quiet --disable-pip-version-check $TORCH_SPEC
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  echo "$want" > "$stamp"
  # the fast recurrent kernels compile at first use (30-40 s); do it now, not in the first test
  # that needs them (where no compiler exists it prints one line and the library falls back)
  .venv/bin/python -c "from lstmvision.nn.recurrent_fast import extension; extension()" || true
fi
