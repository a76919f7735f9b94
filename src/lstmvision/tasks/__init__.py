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


from lstmvision.tasks import cnn, row_lstm  # noqa: E402,F401  (registers the tasks)
from lstmvision.tasks import textline  # noqa: E402,F401
from lstmvision.tasks import caption  # noqa: E402,F401
from lstmvision.tasks import clip_classify, next_frame  # noqa: E402,F401
from lstmvision.tasks import adding, char_lm, text_classify  # noqa: E402,F401

__all__ = ["Task", "TrainConfig", "register_task", "list_tasks", "get_task"]
