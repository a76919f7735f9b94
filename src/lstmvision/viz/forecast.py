"""A forecast of frames as pictures: a PNG grid of input / truth / prediction rows and a GIF of
the truth and the prediction played side by side (:mod:`lstmvision.viz.video`)."""

from __future__ import annotations

from pathlib import Path

import torch

from lstmvision.viz.video import frame_grid, frames_gif


def forecast_pictures(
    inputs: torch.Tensor, truth: torch.Tensor, pred: torch.Tensor, stem: Path
) -> list[Path]:
    """``stem``.png and ``stem``.gif of grey frames in [0, 1]: ``inputs`` ``(T_in, H, W)``, the
    true continuation ``truth`` ``(T, H, W)`` (``T`` may be 0: no truth row or panel) and the
    prediction ``pred`` ``(T_out, H, W)``; small frames are drawn up to about 128 pixels wide."""
    scale = max(1, 128 // inputs.shape[-1])
    rows = {"input": inputs, "prediction": pred}
    panels = {"prediction": torch.cat([inputs, pred])}
    if len(truth):
        rows = {"input": inputs, "truth": truth, "prediction": pred}
        panels = {"truth": torch.cat([inputs, truth]), **panels}
    png = frame_grid(rows, stem.with_suffix(".png"), scale=scale)
    gif = frames_gif(panels, stem.with_suffix(".gif"), scale=scale)
    return [png, gif]
