"""Every value checked before anything is written: a bad one is one line and creates no folder.

``check_config`` applies a rule to each numeric setting by name (the same name means the same
thing in every task, e.g. ``dropout`` is a probability everywhere); every float must be finite.
A task's own cross-field checks stay in its ``Task.resolve``. ``check_out_dir`` makes sure a new
run folder can be created where ``--out`` points.
"""

from __future__ import annotations

import math
import os
from dataclasses import fields
from pathlib import Path

from lstmvision.errors import ConfigError, LstmvisionError

AT_LEAST_1 = "at least 1"
AT_LEAST_0 = "0 or more"
POSITIVE = "above 0"
PROBABILITY = "in [0, 1)"
SHARE = "in [0, 1]"
SEED = "in 0 .. 4294967295"
STEPS = "-1 (no limit) or at least 1"
SAMPLING = "-1, 0 or more"
ANY = "any finite number"

RULES: dict[str, str] = {
    **dict.fromkeys(
        (
            "epochs",
            "num_nodes",
            "batch_size",
            "checkpoint_every",
            "attention_size",
            "embed_size",
            "feature_size",
            "ensemble",
            "folds",
            "height",
            "image_size",
            "input_frames",
            "output_frames",
            "kernel_size",
            "lm_order",
            "max_len",
            "max_tokens",
            "num_frames",
            "num_layers",
            "patch",
            "readout_kernel",
            "reduction",
            "seq_len",
            "train_size",
            "val_size",
            "test_size",
            "frame_step",
            "limit_train",
            "limit_eval",
            "epoch_size",
            "lines",
            "beam",
        ),
        AT_LEAST_1,
    ),
    **dict.fromkeys(
        (
            "num_workers",
            "shift",
            "freeze_depth",
            "readout_hidden",
            "glove_words",
            "min_count",
            "min_freq",
            "finetune_encoder",
            "fold",
            "grad_clip",
            "weight_decay",
            "temperature",
            "augment",
            "adversarial",
            "attention_reg",
            "body_lr_scale",
            "encoder_lr_scale",
            "budget_minutes",
            "motion_augment",
        ),
        AT_LEAST_0,
    ),
    **dict.fromkeys(("lr",), POSITIVE),
    **dict.fromkeys(
        ("dropout", "embed_dropout", "head_dropout", "momentum", "val_fraction"), PROBABILITY
    ),
    "sampling_share": SHARE,
    "seed": SEED,
    "max_steps": STEPS,
    "scheduled_sampling": SAMPLING,
    "length_penalty": ANY,
    "forget_bias": ANY,
}
"""The rule of each numeric config key (a test checks that every task's numeric key has one)."""

PER_TASK: dict[tuple[str, str], str] = {
    ("next-frame", "hidden_size"): AT_LEAST_0,
    ("next-frame", "epochs"): AT_LEAST_0,
    ("next-frame", "lr"): AT_LEAST_0,
}
"""Where a task gives a key another meaning (next-frame: 0 = the model's own setting)."""

_OK = {
    AT_LEAST_1: lambda v: v >= 1,
    AT_LEAST_0: lambda v: v >= 0,
    POSITIVE: lambda v: v > 0,
    PROBABILITY: lambda v: 0 <= v < 1,
    SHARE: lambda v: 0 <= v <= 1,
    SEED: lambda v: 0 <= v <= 2**32 - 1,
    STEPS: lambda v: v == -1 or v >= 1,
    SAMPLING: lambda v: v >= -1,
    ANY: lambda v: True,
}


def rule(task: str, key: str) -> str | None:
    return PER_TASK.get((task, key), RULES.get(key, AT_LEAST_1 if key == "hidden_size" else None))


def check_config(task: str, cfg) -> None:
    """Refuse the first setting of ``cfg`` that breaks its rule, in one line naming the flag."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{flag} {value}: must be a finite number")
        wanted = rule(task, f.name)
        if wanted is not None and not _OK[wanted](value):
            raise ConfigError(f"{flag} {value}: must be {wanted}")


def check_out_dir(run_dir: Path) -> None:
    """A new run folder can be made at ``run_dir``: no file in the way, its nearest existing
    parent a folder this process may write in."""
    run_dir = Path(run_dir)
    parent = run_dir
    while not parent.exists():
        if parent.is_symlink():
            raise LstmvisionError(f"{run_dir}: {parent} is a broken symbolic link")
        parent = parent.parent
    if parent != run_dir and not parent.is_dir():
        raise LstmvisionError(f"{run_dir}: cannot make a run folder under the file {parent}")
    if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        raise LstmvisionError(f"{run_dir}: cannot write in {parent} (permission denied)")


def make_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` (and its parents); any failure is one line."""
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LstmvisionError(f"{run_dir}: cannot create the run folder ({e.strerror})") from None
