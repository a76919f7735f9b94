"""``load(name_or_path)``: a trained model as a :class:`Predictor` that needs no Lightning.

A predictor holds the model in eval mode, the settings it was trained with (``config``, a plain
mapping) and its preprocessing; ``predict`` takes one input or a list (file paths, PIL images,
numpy arrays or tensors; a prompt for a language model) and returns typed results
(:mod:`lstmvision.inference.results`). The tasks' own ``predict`` (the CLI) call the same
predictors, so both give the same answers.

Tasks without a predictor of their own here (``PREDICTORS``) predict through their task
(:class:`TaskPredictor`, which imports Lightning) on file paths.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from lstmvision.errors import ConfigError, DataError
from lstmvision.inference.results import Prediction, TaskPrediction
from lstmvision.pretrained import locate
from lstmvision.tasks import model_folder, run_folder

# task -> "module:Class" of its predictor (imported when a model of that task loads)
PREDICTORS = {
    "row-lstm": "lstmvision.inference.classify:ImagePredictor",
    "cnn": "lstmvision.inference.classify:ImagePredictor",
    "textline": "lstmvision.inference.textline:LinePredictor",
    "caption": "lstmvision.inference.caption:CaptionPredictor",
    "char-lm": "lstmvision.inference.char_lm:CharLMPredictor",
    "clip-classify": "lstmvision.inference.clip:ClipPredictor",
    "next-frame": "lstmvision.inference.next_frame:ForecastPredictor",
}


@dataclass
class Source:
    """Where a model was loaded from and what its folder says about it."""

    folder: Path | None
    kind: str  # "run", "model" (a saved or shipped model folder) or "memory"
    task: str
    config: dict
    model_name: str = ""
    model_kwargs: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


def read_source(source: str | Path) -> Source:
    """What the folder that ``source`` names (:func:`lstmvision.pretrained.locate`) says, its
    weights not yet read."""
    folder, kind = locate(source)
    if kind == "model":
        return _model_source(model_folder.read(folder))
    task, config = run_folder.read_run_config(folder)
    spec = _read_json(folder / "model.json")
    metrics = _read_json(folder / "metrics.json")
    return Source(folder, kind, task, config, spec.get("name", ""), spec.get("kwargs", {}), metrics)


def _model_source(saved: model_folder.ModelFolder) -> Source:
    return Source(
        saved.path,
        "model",
        saved.task,
        saved.config,
        saved.model_name,
        saved.model_kwargs,
        saved.metrics,
        saved.provenance,
    )


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: not a readable JSON file ({e})") from None
    return data if isinstance(data, dict) else {}


def source_model(source: str | Path) -> tuple[Source, nn.Module]:
    """What the folder ``source`` names says, and its model with its weights (eval mode); also
    what ``train --from NAME_OR_RUN`` starts from."""
    folder, kind = locate(source)
    if kind == "model":  # config.json read once: the source and the model from it
        saved = model_folder.read(folder)
        return _model_source(saved), model_folder.load_model(saved)
    src = read_source(folder)
    if src.model_name:
        model = run_folder.load_model(src.folder)
    else:  # a run from before model.json: its task rebuilds the spec (Lightning)
        from lstmvision.tasks.runner import load as load_run

        _, _, model = load_run(src.folder)
    return src, model


def load(source: str | Path) -> Predictor:
    """The predictor of a shipped model's name (``lstmvision models --pretrained``), a saved
    model folder (``save_pretrained``) or a training run folder."""
    src, model = source_model(source)
    return predictor_class(src.task)(src, model)


def predictor_class(task: str) -> type[Predictor]:
    if task not in PREDICTORS:
        return TaskPredictor
    module, name = PREDICTORS[task].split(":")
    return getattr(importlib.import_module(module), name)


def is_single(inputs: Any) -> bool:
    """One input (a path, an image, an array or tensor) rather than a list or tuple of them."""
    return not isinstance(inputs, (list, tuple))


class Predictor:
    """A loaded model, ready to predict. Subclasses implement ``_predict(items, **options)``
    (a list in, one result per item out) and name their ``options``."""

    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, source: Source, model: nn.Module):
        self.source, self.model = source, model.eval()

    @classmethod
    def from_task(cls, task: str, config: dict, model: nn.Module, folder: Path | None):
        """The predictor of a task's model already in memory (the tasks' ``predict``)."""
        kind = (
            "run"
            if folder is not None and (Path(folder) / "config.yaml").is_file()
            else ("model" if folder is not None else "memory")
        )
        return cls(Source(Path(folder) if folder else None, kind, task, config), model)

    @property
    def task(self) -> str:
        return self.source.task

    @property
    def config(self) -> dict:
        return self.source.config

    @property
    def metrics(self) -> dict:
        return self.source.metrics

    @property
    def card(self) -> str:
        """The model card (README.md of a saved model; empty for a run folder)."""
        path = self.source.folder / model_folder.CARD if self.source.folder else None
        return path.read_text(encoding="utf-8") if path is not None and path.is_file() else ""

    def __repr__(self) -> str:
        where = self.source.folder or "memory"
        params = sum(p.numel() for p in self.model.parameters())
        return f"<{type(self).__name__} {self.task} from {where}: {params:,} parameters>"

    @torch.inference_mode()
    def predict(self, inputs: Any, **options) -> Any:
        """The result for one input, or the list of results for a list of inputs."""
        unknown = sorted(k for k, v in options.items() if v is not None and k not in self.options)
        if unknown:
            accepted = ", ".join(self.options) or "none"
            raise ConfigError(
                f"a {self.task!r} model does not take {', '.join(unknown)} (its options: "
                f"{accepted})"
            )
        options = {k: v for k, v in options.items() if v is not None}
        single = is_single(inputs)
        items = [inputs] if single else list(inputs)
        if not items:  # nothing to predict: nothing to answer (a model's batch needs one input)
            return []
        results = self._predict(items, **options)
        return results[0] if single else results

    def _predict(self, items: list, **options) -> list[Prediction]:
        raise NotImplementedError

    def save_pretrained(
        self, folder: str | Path, weights_dtype: str = "float32", card: str | None = None
    ) -> Path:
        """Write a saved model folder (config.json, model.safetensors, README.md and the task's
        extra files) that ``load(folder)`` reads back; ``card`` replaces the generated one."""
        from lstmvision.inference.card import model_card

        src = self.source
        name, kwargs = src.model_name, src.model_kwargs
        if not name:
            raise ConfigError(f"{src.folder}: no model.json; cannot describe this model to save it")
        text = card if card is not None else model_card(Path(folder).name, src, self.model)
        return model_folder.save(
            Path(folder),
            src.task,
            src.config,
            name,
            kwargs,
            self.model,
            source=src.folder,
            weights_dtype=weights_dtype,
            metrics=src.metrics,
            provenance=src.provenance,
            card=text,
            package_weights=self.package_weights(),
        )

    def package_weights(self) -> dict:
        """Weights a package carries, left out of a saved folder: ``{key prefix: model kwargs
        that build them}``. Default: none."""
        return {}


def as_image(item: Any) -> Any:
    """A path stays a Path; a PIL image, numpy array or tensor is passed on as it is (the
    loaders in ``lstmvision.data.images`` take each)."""
    if isinstance(item, (str, Path)):
        return Path(item)
    if isinstance(item, (Image.Image, np.ndarray, torch.Tensor)):
        return item
    raise DataError(
        f"{type(item).__name__}: an input must be a file path, a PIL image, a numpy array or a "
        "tensor"
    )


class TaskPredictor(Predictor):
    """Predicts through the model's task (Lightning is imported), on file paths."""

    def __init__(self, source: Source, model: nn.Module):
        super().__init__(source, model)
        from lstmvision.tasks import get_task
        from lstmvision.tasks.config import saved_config

        self._task = get_task(source.task)()
        self._task.run_dir = source.folder
        cls = self._task.Config
        self._cfg = (
            saved_config(cls, source.config, str(source.folder))
            if source.kind != "run"
            else run_folder.load_run_config(source.folder, self._task)
        )
        self.options = tuple(self._task.predict_options)

    def predict(self, inputs: Any = None, **options) -> Any:
        if inputs is None and not self._task.predict_needs_inputs:
            return self._predict([], **options)
        return super().predict(inputs, **options)

    def _predict(self, items: list, **options) -> list[Prediction]:
        paths = [as_image(item) for item in items]
        if any(not isinstance(p, Path) for p in paths):
            raise DataError(f"a {self.task!r} model predicts on files: give their paths")
        results = self._task.predict(self._cfg, self.model, paths, **options)
        return [TaskPrediction(str(r.get("image", "")), r) for r in results]
