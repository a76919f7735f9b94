"""Tasks: data + model + loss + metrics bound into Lightning parts, registered by name (floor 3).

``list_tasks()`` and ``get_task(name)`` (returns the task class); a duplicate name is refused.
The task modules (and Lightning) load on the first lookup (``registered.py`` lists them), so the
plain modules here (``run_folder``, ``model_folder``, ``config``) import without them.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "TASKS": "lstmvision.tasks.base",
    "Task": "lstmvision.tasks.base",
    "register_task": "lstmvision.tasks.base",
    "TrainConfig": "lstmvision.tasks.config",
}


def list_tasks() -> list[str]:
    from lstmvision.tasks.base import TASKS

    return TASKS.names()


def get_task(name: str) -> Any:
    """The registered task class ``name``."""
    from lstmvision.tasks.base import TASKS

    return TASKS.get(name)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lstmvision.tasks' has no attribute {name!r}")


__all__ = ["Task", "TrainConfig", "register_task", "list_tasks", "get_task"]
