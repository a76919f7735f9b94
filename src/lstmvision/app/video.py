"""Video tab: a clip -> the clip model's class probabilities (``clip-classify``), with the frames
it read; and next frames (``next-frame``): a Moving MNIST sequence generated from a seed, or
uploaded frames or a clip, -> the forecast beside the truth as an animation, with the MSE of the
model and of copying the last frame.

Sequences from a seed are drawn from the MNIST test digits in the data folder
(:func:`lstmvision.data.moving_mnist.moving_mnist`, :func:`~lstmvision.data.moving_mnist.
motion_mnist`), so the tab needs ``mnist/`` there for them; uploads need nothing.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import torch

from lstmvision.app import pictures
from lstmvision.app.uploads import check_video, open_upload_image, upload_path
from lstmvision.data.moving_mnist import motion_mnist, moving_mnist
from lstmvision.data.video import frames_from_memory, parse_size
from lstmvision.errors import DataError
from lstmvision.inference.base import Predictor
from lstmvision.inference.clip import clip_tensor

NO_FORECASTER = (
    "No next-frame model is loaded: train one (`lstmvision train next-frame --dataset "
    "moving-mnist`) and start `lstmvision app --shipped RUN_FOLDER` with its run folder."
)


@functools.lru_cache(maxsize=2)
def test_digits(data_root: str) -> np.ndarray:
    """The MNIST test digits ``(N, 28, 28)`` uint8 that seeded sequences are drawn from."""
    from lstmvision.data import load_split

    try:
        return load_split("mnist", data_root, "test")[0].numpy()
    except DataError as e:
        raise DataError(f"sequences from a seed need MNIST in the data folder: {e}") from None


def _seed(value) -> int:
    try:
        seed = int(value)
    except (TypeError, ValueError):
        raise DataError(f"seed {value!r}: give a whole number") from None
    if not 0 <= seed < 2**32:
        raise DataError(f"seed {seed}: must be between 0 and 2**32 - 1")
    return seed


def strip(frames: torch.Tensor, scale: int = 2) -> np.ndarray:
    """Frames ``(T, C, H, W)`` in [0, 1] side by side, ``(H * scale, T * (W * scale + 2), 3)``."""
    shown = []
    for frame in frames:
        rgb = frame.expand(3, -1, -1).permute(1, 2, 0).numpy()  # (H, W, 3)
        rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
        shown.append((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))
    return pictures.hstack(shown, gap=2)


def classify(predictor: Predictor, frames, name: str, truth: str = "") -> tuple:
    """``({class: probability}, picture of the frames read, markdown line)`` of one clip,
    ``frames`` as :func:`~lstmvision.inference.clip.clip_tensor` reads them."""
    clip = clip_tensor(frames, predictor.config, name)  # (T, C, H, W) in [0, 1]
    result = predictor.predict(clip)
    line = f"**{result.label}** ({result.confidence:.1%})"
    line += f"; the true motion: **{truth}**" if truth else ""
    picture = pictures.titled(f"the {len(clip)} frames the model read", strip(clip))
    return result.probabilities, picture, line


def clip_outputs(predictor: Predictor, path) -> tuple:
    """An uploaded clip, classified."""
    video = check_video(path)
    return classify(predictor, video, video.name)


def motion_clip_outputs(predictor: Predictor, seed, data_root: str) -> tuple:
    """A motion-mnist clip (one test digit moving left or right) drawn from ``seed``,
    classified."""
    num_frames = int(predictor.config["num_frames"])
    clips, labels = motion_mnist(test_digits(data_root), 1, _seed(seed), num_frames)
    truth = ("left", "right")[int(labels[0])]
    return classify(predictor, clips[0], f"motion clip (seed {seed})", truth)


def forecast_outputs(predictor: Predictor, frames, folder: Path) -> tuple[str, str, str]:
    """The forecast of ``frames`` (an array ``(T, H, W)`` or a video file): the GIF of truth and
    prediction played side by side, the PNG grid, and the MSE line."""
    out = Path(tempfile.mkdtemp(prefix="forecast-", dir=folder))
    r = predictor.predict(frames, out=out)
    if r.mse is None:
        line = (
            f"{len(r.frames)} frames forecast; give {_needed(predictor)} frames to compare "
            "with the truth"
        )
    else:
        better = "better" if r.mse < r.baseline_mse else "worse"
        line = (
            f"MSE per frame (summed over pixels, 0-1 scale): model **{r.mse:.1f}**, copying the "
            f"last frame {r.baseline_mse:.1f} (the model is {better})"
        )
    return r.gif, r.png, line


def _needed(predictor: Predictor) -> int:
    return int(predictor.config["input_frames"]) + int(predictor.config["output_frames"])


def seeded_forecast(predictor: Predictor, seed, data_root: str, folder: Path) -> tuple:
    """A Moving MNIST sequence (two test digits bouncing) drawn from ``seed``, forecast."""
    sequence = moving_mnist(test_digits(data_root), 1, _seed(seed), _needed(predictor))[0]
    return forecast_outputs(predictor, sequence, folder)


def uploaded_forecast(predictor: Predictor, files, folder: Path) -> tuple:
    """One uploaded clip, or several frames as image files (in the order of their names),
    forecast."""
    files = [files] if isinstance(files, (str, Path)) else list(files or [])
    if not files:
        raise DataError("no frames given: upload a clip or the frames as image files")
    if len(files) == 1:
        return forecast_outputs(predictor, check_video(files[0]), folder)
    paths = sorted((upload_path(f, "frame image") for f in files), key=lambda p: p.name)
    images = [open_upload_image(p, "frame image") for p in paths]
    size = parse_size(predictor.config.get("frame_size") or "64x64")
    return forecast_outputs(predictor, frames_from_memory(images, size, True), folder)


def build(clip, forecaster, handler, folder: Path, data_root: str) -> None:
    """The tab: ``clip`` and ``forecaster`` (Served or None) each get their part."""
    import gradio as gr

    if clip is not None:
        gr.Markdown("### What moves in a clip\n" + clip.summary())
        _clip_part(clip.predictor, handler, data_root)
    gr.Markdown("### Next frames")
    if forecaster is None:
        gr.Markdown(NO_FORECASTER)
        return
    gr.Markdown(forecaster.summary())
    _forecast_part(forecaster.predictor, handler, folder, data_root)


def _clip_part(predictor: Predictor, handler, data_root: str) -> None:
    import gradio as gr

    with gr.Row():
        with gr.Column():
            video = gr.File(label="upload a clip (a video file)", type="filepath")
            run = gr.Button("Classify the clip", variant="primary")
        with gr.Column():
            seed = gr.Number(value=0, precision=0, label="or a motion-mnist clip from seed")
            make = gr.Button("Make and classify")
        with gr.Column():
            line = gr.Markdown()
            label = gr.Label(label="class probabilities")
    frames = gr.Image(label="the frames the model read", type="numpy", format="png")
    outputs = [label, frames, line]
    run.click(
        handler("clip", lambda path: clip_outputs(predictor, path)),
        video,
        outputs,
        api_name="clip",
    )
    make.click(
        handler("clip_seed", lambda seed: motion_clip_outputs(predictor, seed, data_root)),
        seed,
        outputs,
        api_name="clip_seed",
    )


def _forecast_part(predictor: Predictor, handler, folder: Path, data_root: str) -> None:
    import gradio as gr

    t_in = int(predictor.config["input_frames"])
    with gr.Row():
        with gr.Column():
            seed = gr.Number(value=0, precision=0, label="a Moving MNIST sequence from seed")
            generate = gr.Button("Generate and forecast", variant="primary")
        with gr.Column():
            files = gr.File(
                label=f"or upload a clip, or {t_in} (or {_needed(predictor)}) frames as images",
                file_count="multiple",
                type="filepath",
            )
            upload = gr.Button("Forecast the upload")
    line = gr.Markdown()
    with gr.Row():
        gif = gr.Image(label="truth and forecast, played", type="filepath")
        grid = gr.Image(label="input, truth and forecast frames", type="filepath")
    generate.click(
        handler("forecast_seed", lambda seed: seeded_forecast(predictor, seed, data_root, folder)),
        seed,
        [gif, grid, line],
        api_name="forecast_seed",
    )
    upload.click(
        handler("forecast_upload", lambda files: uploaded_forecast(predictor, files, folder)),
        files,
        [gif, grid, line],
        api_name="forecast_upload",
    )
