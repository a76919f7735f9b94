"""Clip classifiers (``clip-classify``): a video -> its class.

A video file is read as in training (``num_frames`` frames spread evenly over it, at the
recipe's frame size, grey or RGB); an in-memory video (frames as an array, a tensor or a list
of images) is sampled and resized the same way (:func:`lstmvision.data.video.clip_from_frames`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lstmvision.data.images import input_name
from lstmvision.data.moving_mnist import MOTION_CLASSES
from lstmvision.data.video import clip_from_frames, parse_size, read_clip
from lstmvision.errors import DataError
from lstmvision.inference.base import Predictor
from lstmvision.inference.results import Classification


def clip_tensor(source, cfg: dict, name: str = "frames") -> torch.Tensor:
    """A video file or in-memory frames as the model's clip ``(T, C, H, W)`` floats in [0, 1]."""
    size, grey, frames = parse_size(cfg.get("frame_size")), bool(cfg.get("grey")), cfg["num_frames"]
    if isinstance(source, (str, Path)):
        clip = read_clip(
            source, frames, cfg.get("sampling", "uniform"), cfg.get("frame_step", 1), size, grey
        )
    else:
        clip = clip_from_frames(source, frames, size, grey, name)
    x = torch.from_numpy(clip).float().div(255)  # (T, H, W) or (T, H, W, 3)
    return x.unsqueeze(1) if grey else x.permute(0, 3, 1, 2)  # (T, C, H, W)


class ClipPredictor(Predictor):
    def classes(self) -> list[str]:
        saved = self.source.folder / "classes.json" if self.source.folder else None
        if saved is not None and saved.is_file():
            return json.loads(saved.read_text(encoding="utf-8"))
        if self.config.get("dataset") == "motion-mnist":
            return list(MOTION_CLASSES)
        raise DataError(f"{self.source.folder}: no classes.json (the class names)")

    def _predict(self, items: list, **options) -> list[Classification]:
        classes, results = self.classes(), []
        for i, item in enumerate(items):
            name = input_name(item, i)
            clip = clip_tensor(Path(item) if isinstance(item, str) else item, self.config, name)
            probs = self.model(clip.unsqueeze(0)).softmax(-1)[0]  # (classes,)
            top = int(probs.argmax())
            results.append(
                Classification(
                    name,
                    label=classes[top],
                    index=top,
                    confidence=float(probs[top]),
                    probabilities={c: float(p) for c, p in zip(classes, probs)},
                )
            )
        return results
