"""The generic task interface: a task binds data + model + loss + metrics into Lightning parts.

A new task is one file: a config dataclass (its defaults are its recipe) and a ``Task`` subclass
registered with ``@register_task("name")``. The runner (``lstmvision.tasks.runner``) does the rest:
run folder, checkpoints, resume, metrics.json, model.safetensors, pictures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import lightning as L
from torch import nn

from lstmvision.errors import ConfigError
from lstmvision.models import get_model
from lstmvision.registry import Registry
from lstmvision.tasks.config import TrainConfig

TASKS: Registry = Registry("task")
register_task = TASKS.register


def one_cycle(module: L.LightningModule, opt, pct_start: float = 0.3) -> dict:
    """``configure_optimizers``'s answer for ``opt`` under a one-cycle learning rate stepped every
    batch over the whole run, peaking at each parameter group's own ``lr``."""
    import torch

    total = max(1, int(module.trainer.estimated_stepping_batches))
    peaks = [g["lr"] for g in opt.param_groups]
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=peaks, total_steps=total, pct_start=pct_start
    )
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def stretch_one_cycle(sched, total: int) -> None:
    """Make a running ``OneCycleLR`` end at ``total`` steps instead, keeping its shape (warm-up
    share, peak, final rate): from its current step on it computes what one built for ``total``
    would. Its totals are part of its ``state_dict``, so a checkpoint keeps the new length."""
    import torch

    if (
        not isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
        or len(sched._schedule_phases) != 2
    ):
        raise TypeError(f"stretch_one_cycle: a two-phase OneCycleLR, not {type(sched).__name__}")
    warmup = sched._schedule_phases[0]["end_step"] + 1  # float(pct_start * total_steps)
    share = warmup / sched.total_steps
    sched.total_steps = int(total)
    sched._schedule_phases[0]["end_step"] = float(share * sched.total_steps) - 1
    sched._schedule_phases[1]["end_step"] = sched.total_steps - 1


class PredictOption(NamedTuple):
    """An option of ``lstmvision predict`` that a task takes: the type its value is read as, and
    its help line. The CLI builds ``--name`` from it; a run of another task refuses it."""

    type: type
    help: str


class SplitSteps:
    """Lightning's training/validation/test steps as one ``self._step(batch, split)`` per module."""

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")


class SplitLoaders:
    """Lightning's train/val/test data loaders as one ``self._loader(split, shuffle)`` per data module."""

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")


class Task:
    """Override the hooks below; every one receives the resolved config."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Config: ClassVar[type[TrainConfig]] = TrainConfig
    monitor: ClassVar[str] = "val_loss"  # metric that picks checkpoints/best.ckpt
    monitor_mode: ClassVar[str] = "min"
    # options of `lstmvision predict` this task understands (name -> help), passed to predict();
    # the CLI refuses the others with a clear line
    predict_options: ClassVar[dict[str, PredictOption]] = {}
    predict_needs_inputs: ClassVar[bool] = (
        True  # False: e.g. a language model sampling from --prompt
    )
    # True: `evaluate` on the run's own test/val split also records its scores in metrics.json
    # (the same keys training wrote, refreshed), beside the files write_outputs leaves
    evaluate_records_metrics: ClassVar[bool] = False
    run_dir: Path | None = None  # the run folder of a loaded run (set by runner.load)

    def resolve(self, cfg) -> None:
        """The one resolve step, after the defaults, the recipe file, ``--config`` and the flags
        are merged and before any data is read or model built: refuse bad values with a clear
        line, and fill the settings derived from others, so config.yaml records what ran."""

    def model_spec(self, cfg) -> tuple[str, dict[str, Any]]:
        """Registered model name and keyword arguments; saved as model.json beside the weights."""
        raise NotImplementedError

    def build_model(self, cfg) -> nn.Module:
        name, kwargs = self.model_spec(cfg)
        return get_model(name, **kwargs)

    def datamodule(self, cfg) -> L.LightningDataModule:
        raise NotImplementedError

    def module(self, cfg, model: nn.Module) -> L.LightningModule:
        raise NotImplementedError

    def bind(self, cfg, model: nn.Module, datamodule: L.LightningDataModule) -> None:
        """Called once the model and the set-up data both exist (train and evaluate), e.g. to
        cache a frozen encoder's features in the data module. Default: nothing."""

    def callbacks(self, cfg, clock) -> list:
        """Extra Lightning callbacks for a training run of ``cfg``; ``clock`` is the run's
        ``TrainClock`` (training seconds so far, resumed parts included). Default: none."""
        return []

    def evaluation_datamodule(self, cfg, data: Path) -> L.LightningDataModule:
        """A data module whose test split is the folder ``data`` (``evaluate --data``)."""
        raise ConfigError(f"{data}: the {self.name!r} task does not evaluate on a folder (--data)")

    def evaluation_report(self, cfg, module: L.LightningModule, out: Path | None) -> list[str]:
        """Lines to print after ``evaluate`` (e.g. the worst examples); files go to ``out`` if given."""
        return []

    def write_outputs(
        self, cfg, module: L.LightningModule, run_dir: Path, split: str
    ) -> list[Path]:
        """Files a finished test/validation pass leaves in the run folder (after training's test and
        after ``evaluate``), e.g. per-example predictions. Default: none."""
        return []

    def pictures(
        self, cfg, model: nn.Module, datamodule: L.LightningDataModule, run_dir: Path
    ) -> list[Path]:
        """Write task-specific pictures of the trained model into the run folder (rank 0 only)."""
        return []

    def predict(self, cfg, model: nn.Module, inputs: list[Path], **options) -> list[dict]:
        """One JSON-able dict per input (each with an ``"image"`` key naming the file).

        ``options`` are the ``predict_options`` the user gave (others never reach here)."""
        raise NotImplementedError

    def format_prediction(self, prediction: dict) -> str:
        return str(prediction)
