"""Importing a task's module registers it: one line per task. ``TASKS`` imports this module on
its first lookup, so that ``lstmvision.tasks.run_folder`` and the other plain modules of this
package load without Lightning (``lstmvision.load`` needs none)."""

from lstmvision.tasks import (  # noqa: F401
    adding,
    caption,
    char_lm,
    clip_classify,
    cnn,
    next_frame,
    pixel_gen,
    row_lstm,
    text_classify,
    textline,
)
