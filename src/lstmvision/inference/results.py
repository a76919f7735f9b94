"""What ``Predictor.predict`` returns: one typed result per input.

``to_dict()`` gives the JSON object ``lstmvision predict --json`` prints for the same input
(arrays left out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Prediction:
    """``source``: the input's file path, or ``<image #i HxW>`` for an in-memory one."""

    source: str

    def to_dict(self) -> dict:
        return {"image": self.source}


@dataclass
class Classification(Prediction):
    label: str
    index: int
    confidence: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict:
        return {
            "image": self.source,
            "label": self.label,
            "class_index": self.index,
            "confidence": round(self.confidence, 4),
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
        }


@dataclass
class Transcription(Prediction):
    text: str
    alignment: str | None = None  # the picture written with out=FOLDER

    def to_dict(self) -> dict:
        extra = {"alignment": self.alignment} if self.alignment else {}
        return {"image": self.source, "text": self.text, **extra}


@dataclass
class Caption(Prediction):
    text: str
    words: list[str]
    attention: np.ndarray | None = None  # (words, grid, grid): where each word looked
    picture: str | None = None  # the attention picture written with out=FOLDER

    def to_dict(self) -> dict:
        extra = {"attention": self.picture} if self.picture else {}
        return {"image": self.source, "caption": self.text, **extra}


@dataclass
class Generated(Prediction):
    """Text sampled by a language model from ``prompt`` (``source`` is the prompt too)."""

    text: str
    temperature: float
    seed: int

    def to_dict(self) -> dict:
        return {
            "prompt": self.source,
            "text": self.text,
            "temperature": self.temperature,
            "seed": self.seed,
        }


@dataclass
class Forecast(Prediction):
    """The frames a video model predicts after the given ones (grey, [0, 1]); with the true
    continuation given, its MSE (OpenSTL's: summed over a frame, averaged over frames) and
    that of repeating the last frame."""

    frames: np.ndarray  # (T_out, H, W)
    mse: float | None = None
    baseline_mse: float | None = None
    png: str | None = None  # the pictures written with out=FOLDER
    gif: str | None = None

    def to_dict(self) -> dict:
        d = {"image": self.source, "predicted_frames": len(self.frames)}
        d.update({k: getattr(self, k) for k in ("png", "gif") if getattr(self, k)})
        if self.mse is not None:
            d.update(mse=self.mse, baseline_mse=self.baseline_mse)
        return d


@dataclass
class TaskPrediction(Prediction):
    """The result of a task without a typed one yet: its ``predict --json`` object, whose keys
    read as attributes (``r.label``)."""

    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict:
        return dict(self.values)
