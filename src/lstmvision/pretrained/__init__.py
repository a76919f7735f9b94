"""The models shipped inside the package, one saved-model folder each (``NAME/config.json``,
``model.safetensors``, ``README.md``: ``lstmvision.tasks.model_folder``), and where a name or a
path given to ``load``, ``predict``, ``evaluate`` or ``--from`` points.

The cards' hand-written parts (licence of the data, what a model is not good at) are in
``catalog.json`` beside this file; ``scripts/ship_pretrained.py`` writes a folder from a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from lstmvision.errors import LstmvisionError

PRETRAINED = Path(__file__).parent
CATALOG = PRETRAINED / "catalog.json"


def names() -> list[str]:
    """The shipped models' names (folders here with a config.json)."""
    return sorted(p.name for p in PRETRAINED.iterdir() if (p / "config.json").is_file())


def catalog() -> dict[str, dict]:
    """Every planned shipped model: its task, recipe command, data licence and limits."""
    return json.loads(CATALOG.read_text(encoding="utf-8"))


def locate(source: str | Path) -> tuple[Path, Literal["run", "model"]]:
    """The folder a model ``source`` names and its kind: ``"run"`` (a training run folder,
    config.yaml) or ``"model"`` (a saved or shipped model folder, config.json). A folder on disk
    wins over a shipped model of the same name; anything else is one error listing the names."""
    path = Path(source)
    if path.is_dir():
        if (path / "config.yaml").is_file():
            return path, "run"
        if (path / "config.json").is_file():
            return path, "model"
        raise LstmvisionError(
            f"{path}: neither a run folder (config.yaml) nor a saved model (config.json)"
        )
    shipped = PRETRAINED / str(source)
    if str(source) in names():
        return shipped, "model"
    known = ", ".join(names()) or "none"
    raise LstmvisionError(
        f"{source}: no such run folder, saved model folder or shipped model "
        f"(shipped: {known}; `lstmvision models --pretrained` lists them)"
    )
