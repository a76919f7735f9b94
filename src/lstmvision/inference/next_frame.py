"""Video forecasters (``next-frame``): the first ``input_frames`` frames of a video -> the next
``output_frames``.

A video file is read as in training (every ``frame_step``-th frame, grey, at the recipe's frame
size); an in-memory video (an array, a tensor or a list of images) is converted the same way
(:func:`lstmvision.data.video.frames_from_memory`). When the video holds the true continuation
too, the result has the MSE of the forecast and of repeating the last given frame.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from lstmvision.data.images import input_name
from lstmvision.data.video import frames_from_memory, parse_size, read_frames
from lstmvision.errors import DataError
from lstmvision.inference.base import Predictor
from lstmvision.inference.results import Forecast
from lstmvision.tasks.next_frame_settings import fill_old_run


def frame_mse(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """OpenSTL's MSE (summed over a frame's pixels, averaged over frames), 3 decimals."""
    return round(float((pred - truth).square().sum((2, 3, 4)).mean()), 3)


class ForecastPredictor(Predictor):
    options = ("out",)

    def _predict(self, items: list, out=None) -> list[Forecast]:
        cfg = fill_old_run(SimpleNamespace(**self.config))
        t_in, t_out, size = cfg.input_frames, cfg.output_frames, parse_size(cfg.frame_size)
        results = []
        for i, item in enumerate(items):
            name = input_name(item, i)
            if isinstance(item, (str, Path)):
                frames = read_frames(item, cfg.frame_step, size, grey=True, max_frames=t_in + t_out)
            else:
                frames = frames_from_memory(item, size, True, name)[: t_in + t_out]
            if len(frames) < t_in:
                raise DataError(
                    f"{name}: {len(frames)} frame(s) at step {cfg.frame_step}; "
                    f"the model needs {t_in} to predict from"
                )
            x = torch.from_numpy(frames).float().div(255)[None, :, None]  # (1, N, 1, H, W)
            pred = self.model(x[:, :t_in], t_out).clamp(0, 1)  # (1, T_out, 1, H, W)
            result = Forecast(name, pred[0, :, 0].numpy())
            truth = x[:, t_in:]
            if truth.shape[1] == t_out:
                copy = x[:, t_in - 1 : t_in]
                result.mse, result.baseline_mse = frame_mse(pred, truth), frame_mse(copy, truth)
            if out is not None:
                from lstmvision.viz.forecast import forecast_pictures

                folder = Path(out)
                folder.mkdir(parents=True, exist_ok=True)
                stem = Path(item).stem if isinstance(item, (str, Path)) else f"input{i}"
                png, gif = forecast_pictures(
                    x[0, :t_in, 0], truth[0, :, 0], pred[0, :, 0], folder / f"{stem}_next_frames"
                )
                result.png, result.gif = str(png), str(gif)
            results.append(result)
        return results
