"""Digits tab (``row-lstm``, ``cnn``): a drawn or uploaded digit -> its class probabilities; for
a Row LSTM also the answer forming as the rows arrive (the class probabilities had the reader
stopped after each row, :meth:`RowLSTMClassifier.prefix_logits
<lstmvision.models.row_lstm.RowLSTMClassifier.prefix_logits>`) and, for an LSTM cell, its input,
forget and output gates and cell state over the rows (what ``lstmvision explain gates`` draws).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from lstmvision.app import pictures
from lstmvision.app.uploads import drawing_image, open_upload_image
from lstmvision.data.digits import dataset_info
from lstmvision.data.images import load_grey_image
from lstmvision.data.transforms import resize_images
from lstmvision.inference.base import Predictor
from lstmvision.inference.results import Classification
from lstmvision.viz.explain import lstm_gates

SIDE = 224  # pixels the model input is drawn at


@dataclass
class DigitReading:
    """A digit read by the model, and what happened inside."""

    result: Classification
    image: torch.Tensor  # (S, S) in [0, 1]: what the model reads
    steps: torch.Tensor | None = None  # (T, classes): probabilities after each step (row)
    gates: dict[str, torch.Tensor] | None = None  # input/forget/output/cell, each (T, H)
    reading: str = ""  # "rows", "columns" (a Row LSTM) or "" (a CNN)

    def settled(self) -> int | None:
        """The first step (1-based) from which the answer stays the final one."""
        if self.steps is None:
            return None
        top = self.steps.argmax(-1)  # (T,)
        changed = (top != self.result.index).nonzero()
        return int(changed[-1]) + 2 if len(changed) else 1


@torch.inference_mode()
def read_digit(predictor: Predictor, image: Image.Image) -> DigitReading:
    """The predictor's answer for ``image`` and, for a Row LSTM reading one sequence, the
    probabilities after each step and (LSTM cell) the first layer's gates over the steps."""
    result = predictor.predict(image)
    info = dataset_info(predictor.config["dataset"])
    x = load_grey_image(image, info.size, info.frame)  # (size, size), as the predictor reads it
    x = resize_images(x[None, None], predictor.config.get("image_size"))  # (1, 1, S, S)
    reading = DigitReading(result, x[0, 0])
    model = predictor.model
    reader = getattr(model, "reader", None)
    if reader is None or len(reader.readers) != 1 or reader.reading not in ("rows", "columns"):
        return reading
    reading.reading = reader.reading
    reading.steps = model.prefix_logits(x)[0].softmax(-1)  # (T, classes)
    if reader.cell == "lstm":
        (seq,) = reader.sequences((x - model.mean) / model.std)  # (1, T, step size)
        reading.gates = lstm_gates(reader.readers[0], seq[0])
    return reading


def _scale(side: int) -> int:
    return max(1, SIDE // side)


def steps_picture(reading: DigitReading, classes: tuple[str, ...]) -> np.ndarray:
    """The model input beside a heat map: one row per step read (aligned with the image's rows
    when it reads rows), one column per class, coloured by the probability the model gives had
    it stopped there; a white box marks each row's top class."""
    scale = _scale(reading.image.shape[-1])
    image = pictures.grey(reading.image, scale)  # (S*scale, S*scale, 3)
    steps = reading.steps.numpy()  # (T, classes)
    cell = (max(2, image.shape[0] // len(steps)), 24)
    grid = Image.fromarray(pictures.heat(steps, 0.0, 1.0, cell))
    draw = ImageDraw.Draw(grid)
    for t, k in enumerate(steps.argmax(-1)):
        x, y = int(k) * cell[1], t * cell[0]
        draw.rectangle((x, y, x + cell[1] - 1, y + cell[0] - 1), outline="white")
    header = pictures.hstack(
        [pictures.text(name[:3], cell[1], 11) for name in classes], gap=0
    )  # (h, classes * 24, 3)
    step = reading.reading.rstrip("s")
    right = pictures.vstack([header, np.asarray(grid)], gap=0)
    left = pictures.titled("model input", image)
    return pictures.vstack(
        [
            pictures.hstack([left, pictures.titled(f"answer after each {step}", right)]),
            pictures.text(
                f"P(class) had the reader stopped after {step} t (t = 1 at the top)",
                image.shape[1] + right.shape[1] + 8,
            ),
        ]
    )


def gates_picture(reading: DigitReading) -> np.ndarray:
    """The model input, then input, forget and output gates (0..1) and cell state (blue -,
    red +) of the first LSTM layer's forward direction, one row per step, one column per unit."""
    scale = _scale(reading.image.shape[-1])
    image = pictures.grey(reading.image, scale)
    panels = [pictures.titled("model input", image)]
    for name, values in reading.gates.items():
        v = values.numpy()  # (T, H)
        cell = (max(2, image.shape[0] // v.shape[0]), max(1, 160 // v.shape[1]))
        if name == "cell":
            lim = float(np.percentile(np.abs(v), 99)) or 1.0  # a few large units saturate
            heat = pictures.heat(v, -lim, lim, cell, "coolwarm")
            title = f"cell C_t (±{lim:.2g})"
        else:
            heat = pictures.heat(v, 0.0, 1.0, cell)
            title = f"{name} gate (0..1)"
        panels.append(pictures.titled(title, heat))
    step = reading.reading.rstrip("s")
    note = (
        f"first LSTM layer, forward direction: one row per {step} read, one column per unit\n"
        "gates viridis 0..1; cell state blue - / red +, clipped at its 99th percentile"
    )
    row = pictures.hstack(panels)
    return pictures.vstack([row, pictures.text(note, row.shape[1])])


def digit_outputs(predictor: Predictor, image: Image.Image) -> tuple:
    """What the tab shows: ``({class: probability}, steps picture or None, gates picture or
    None, markdown line)``."""
    reading = read_digit(predictor, image)
    r = reading.result
    classes = dataset_info(predictor.config["dataset"]).classes
    line = f"**{r.label}** ({r.confidence:.1%})"
    steps = gates = None
    if reading.steps is not None:
        step = reading.reading.rstrip("s")
        line += f"; the answer stays {r.label} from {step} {reading.settled()} of "
        line += f"{len(reading.steps)} on"
        steps = steps_picture(reading, classes)
    else:
        scale = _scale(reading.image.shape[-1])
        steps = pictures.titled("model input", pictures.grey(reading.image, scale))
    if reading.gates is not None:
        gates = gates_picture(reading)
    return r.probabilities, steps, gates, line


def from_upload(predictor: Predictor, path) -> tuple:
    return digit_outputs(predictor, open_upload_image(path, "digit image"))


def from_drawing(predictor: Predictor, value) -> tuple:
    return digit_outputs(predictor, drawing_image(value))


def build(served, handler) -> None:
    """The tab's components and events (inside a ``gr.Tab``); ``handler(name, fn)`` wraps a
    function for Gradio (errors as messages, timing)."""
    import gradio as gr

    predictor = served.predictor
    with gr.Row():
        with gr.Column():
            canvas = gr.Sketchpad(
                label="draw a digit",
                canvas_size=(280, 280),
                fixed_canvas=True,
                type="numpy",
                brush=gr.Brush(default_size=12, colors=["#000000"], color_mode="fixed"),
                layers=False,
                transforms=(),
            )
            read_drawing = gr.Button("Read the drawing", variant="primary")
            upload = gr.File(label="or upload a digit image", type="filepath", elem_id="digit-file")
        with gr.Column():
            line = gr.Markdown(elem_id="digit-answer")
            label = gr.Label(num_top_classes=10, label="class probabilities", elem_id="digit-label")
    steps = gr.Image(label="the answer forming as the rows arrive", type="numpy", format="png")
    gates = gr.Image(label="gates over the rows (explain gates)", type="numpy", format="png")
    outputs = [label, steps, gates, line]
    upload.upload(
        handler("digit", lambda path: from_upload(predictor, path)),
        upload,
        outputs,
        api_name="digit",
    )
    read_drawing.click(
        handler("digit_drawing", lambda value: from_drawing(predictor, value)),
        canvas,
        outputs,
        api_name="digit_drawing",
    )
