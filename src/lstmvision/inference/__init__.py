"""Trained models without Lightning: ``load(name_or_path)`` -> a predictor, typed results.

See :mod:`lstmvision.inference.base`; ``lstmvision.load`` is :func:`load`.
"""

from lstmvision.inference.base import Predictor, load
from lstmvision.inference.results import (
    Caption,
    Classification,
    Generated,
    Prediction,
    TaskPrediction,
    Transcription,
)

__all__ = [
    "load",
    "Predictor",
    "Prediction",
    "Classification",
    "Transcription",
    "Caption",
    "Generated",
    "TaskPrediction",
]
