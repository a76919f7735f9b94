"""lstmvision: PyTorch library for recurrent neural networks in computer vision.

``lstmvision.load(name_or_path)`` gives a trained model ready to predict: a shipped model's name
(``lstmvision models --pretrained``), a saved model folder or a training run folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from lstmvision.inference import Predictor


def load(name_or_path) -> Predictor:
    """A shipped model's name, a saved model folder or a run folder -> its predictor
    (:mod:`lstmvision.inference`)."""
    from lstmvision.inference import load as _load

    return _load(name_or_path)
