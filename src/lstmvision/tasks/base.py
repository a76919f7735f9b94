"""The generic task interface: a task binds data + model + loss + metrics into Lightning parts.

A new task is one file: a config dataclass (its defaults, with a recipe file per data set under
``lstmvision/recipes/<task>/``) and a ``Task`` subclass registered with ``@register_task("name")``.
The runner (``lstmvision.tasks.runner``) does the rest: run folder, checkpoints, resume,
metrics.json, model.safetensors, pictures. ``docs/adding-a-task.md`` walks through one.
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

TASKS: Registry = Registry("task", load="lstmvision.tasks.registered")  # tasks on first use
register_task = TASKS.register


class PredictOption(NamedTuple):
    """An option of ``lstmvision predict`` that a task takes: the type its value is read as (int,
    float, str or Path), and its help line. The CLI reads ``--name VALUE`` (``--name=VALUE``) of
    a run's task by it; a run of another task refuses it."""

    type: type
    help: str


class SplitSteps:
    """Lightning's training/validation/test steps as one ``self._step(batch, split)`` per module.

    Every task's LightningModule uses it, unless its docstring says why its steps differ."""

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")


class SplitLoaders:
    """Lightning's train/val/test data loaders as one ``self._loader(split, shuffle)`` per data
    module; by default ``self.sets[split]`` in batches of ``self.cfg.batch_size`` with
    ``self.cfg.num_workers`` workers (a data module with its own sampler or collation overrides
    it)."""

    def _loader(self, split: str, shuffle: bool = False):
        from torch.utils.data import DataLoader

        return DataLoader(
            self.sets[split],
            batch_size=self.cfg.batch_size,
            shuffle=shuffle,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
        )

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
    # options of `lstmvision predict` this task understands (name -> type and help), passed to
    # predict(); the CLI refuses the others with a clear line
    predict_options: ClassVar[dict[str, PredictOption]] = {}
    predict_needs_inputs: ClassVar[bool] = True  # False: e.g. a language model sampling a --prompt
    # tiny settings for the test over every registered task (tests/test_every_task.py): a few
    # steps on a slice of the shared data, in seconds; that test adds data_root and nothing else
    smoke_overrides: ClassVar[dict[str, Any]] = {}
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
        """Lines to print after ``evaluate`` (e.g. the worst examples); files go to ``out`` if
        given."""
        return []

    def write_outputs(
        self, cfg, module: L.LightningModule, run_dir: Path, split: str
    ) -> list[Path]:
        """Files a finished test/validation pass leaves in the run folder (after training's test and
        after ``evaluate``), e.g. per-example predictions. Default: none."""
        return []

    def save_extras(
        self, cfg, model: nn.Module, datamodule: L.LightningDataModule, run_dir: Path
    ) -> list[Path]:
        """Files besides the weights that a finished training leaves for readers and ``predict``
        (e.g. the vocabulary as vocab.json); written after model.safetensors (rank 0 only).
        Default: none."""
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

    def smoke_inputs(self, cfg, folder: Path) -> list[Path]:
        """A few files ``predict`` takes, made from the data of ``cfg`` (written into ``folder``
        where they must be made), for the test over every registered task; [] when the task
        predicts without inputs (``predict_needs_inputs = False``)."""
        if not self.predict_needs_inputs:
            return []
        raise NotImplementedError(f"{self.name}: name a few inputs for predict (smoke_inputs)")
