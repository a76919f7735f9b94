"""Where data sets live: one resolution rule for every loader.

``--data-root`` (argument), else ``$LSTMVISION_DATA``, else ``../shared/data`` (next to the
project checkout, or next to the current directory) when it exists, else ``~/.cache/lstmvision``.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LSTMVISION_DATA"
CACHE = Path.home() / ".cache" / "lstmvision"


def _shared_candidates() -> list[Path]:
    project = Path(__file__).resolve().parents[3]  # src/lstmvision/data/root.py -> checkout
    return [project.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]


def resolve_data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Return the data root following the documented precedence (does not check contents)."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    for candidate in _shared_candidates():
        if candidate.is_dir():
            return candidate
    return CACHE
