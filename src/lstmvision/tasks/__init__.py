"""Tasks: data + model + loss + metrics bound into Lightning parts, registered by name (floor 3).

``list_tasks()`` and ``get_task(name)`` (returns the task class); a duplicate name is refused.
"""

from __future__ import annotations

from lstmvision.tasks.base import TASKS, Task, register_task
from lstmvision.tasks.config import TrainConfig


def list_tasks() -> list[str]:
    return TASKS.names()


def get_task(name: str) -> type[Task]:
    return TASKS.get(name)


# importing a task's module registers it: one line per task
from lstmvision.tasks import (  # noqa: E402, F401
    adding,
    caption,
    char_lm,
    clip_classify,
    cnn,
    next_frame,
    row_lstm,
    text_classify,
    textline,
)

__all__ = ["Task", "TrainConfig", "register_task", "list_tasks", "get_task"]
