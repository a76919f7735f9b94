"""Text lines tab (``textline``): an uploaded line image -> its text (greedy, or prefix beam search
with the model's n-gram LM fused in) and the CTC alignment picture; a page image with its PAGE
XML -> the PAGE XML with every ``TextLine`` transcribed, to download.

The alignment picture is that of ``lstmvision.viz.textline.plot_alignment`` drawn without
matplotlib (fast enough for a request): the line as the model reads it with each character of
the best path written above the frame that emitted it, and under it the per-frame probabilities
of the blank and of the characters that path uses.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from lstmvision.app import pictures
from lstmvision.app.uploads import open_upload_image, upload_path
from lstmvision.data.lines import Line, load_line, transcribe_page_xml
from lstmvision.errors import DataError
from lstmvision.inference.base import Predictor
from lstmvision.nn.ctc import decode_lines, greedy_decode
from lstmvision.tasks.textline_lm import run_lm

DECODINGS = ("greedy", "beam search + LM")
LABEL_W, ROW_H = 56, 12  # pixels: the row names' column, one probability row


def _beam(decoding: str, beam: int) -> int:
    if decoding not in DECODINGS:
        raise DataError(f"decoding {decoding!r}: choose {' or '.join(DECODINGS)}")
    return 1 if decoding == DECODINGS[0] else max(2, int(beam))


@torch.inference_mode()
def transcribe(
    predictor: Predictor, image: Image.Image, beam: int = 1
) -> tuple[str, torch.Tensor, torch.Tensor]:
    """The text of one line image (greedy for ``beam`` 1, else beam search with the model's LM
    when it has one), the ``(H, W)`` line as the model reads it and the ``(T, C)`` per-frame
    log-probabilities: what ``LinePredictor`` computes, kept for the picture."""
    model = predictor.model
    line = load_line(Line(image, ""), model.height)  # (H, W)
    lm = run_lm(predictor.source.folder, beam)
    ((text, log_probs),) = decode_lines(model, [line], beam, lm)
    return text, line, log_probs


def alignment_picture(line: torch.Tensor, log_probs: torch.Tensor, charset: str) -> np.ndarray:
    """The line (ink dark) under the characters of the best path, each above the column strip
    of the frame that emitted it; below, the probabilities of the blank and of those characters
    per frame (viridis, 0..1)."""
    ((labels, frames),) = greedy_decode(log_probs)
    scale = 2 if line.shape[0] < 64 and line.shape[1] <= 1500 else 1
    width = line.shape[-1] * scale
    reduction = -(-width // max(1, log_probs.shape[0]))  # picture columns per frame
    image = Image.fromarray(pictures.grey(line, scale, ink_dark=True))
    chars = Image.new("RGB", (width, 18), "white")
    draw, marks = ImageDraw.Draw(chars), ImageDraw.Draw(image)
    for label, t in zip(labels, frames):
        x = reduction * t + reduction // 2
        marks.line((x, 0, x, image.height), fill=(214, 39, 40))
        draw.text(
            (x, 2), charset[label - 1], fill=(214, 39, 40), font=pictures.font(13), anchor="mt"
        )
    rows = [0] + sorted(set(labels))
    names = ["blank"] + [{" ": "space"}.get(charset[i - 1], charset[i - 1]) for i in rows[1:]]
    probs = log_probs.exp().T[rows].numpy()  # (rows, T)
    heat = pictures.heat(probs, 0.0, 1.0, (ROW_H, reduction))[:, :width]
    column = pictures.vstack([pictures.text(n, LABEL_W, 10, ROW_H) for n in names], gap=0)
    top = pictures.vstack([np.asarray(chars), np.asarray(image)], gap=0)
    return pictures.vstack(
        [
            pictures.hstack([pictures.text("", LABEL_W, 9, top.shape[0]), top], gap=0),
            pictures.hstack([column, heat], gap=0),
            pictures.text(
                f"one frame per {reduction // scale} image columns; characters of the greedy path",
                width + LABEL_W,
            ),
        ]
    )


def line_outputs(predictor: Predictor, path, decoding: str = "greedy", beam: int = 10):
    """What the tab shows for a line image: its text and the alignment picture."""
    image = open_upload_image(path, "line image")
    text, line, log_probs = transcribe(predictor, image, _beam(decoding, beam))
    return text, alignment_picture(line, log_probs, predictor.model.charset)


def page_outputs(
    predictor: Predictor, page, page_xml, decoding: str, beam: int, folder: Path
) -> tuple[str, str]:
    """Every ``TextLine`` of the uploaded PAGE XML read from the uploaded page image: the path of
    the filled PAGE XML (written into a new folder under ``folder``) and ``id<TAB>text`` lines."""
    open_upload_image(page, "page image")  # its size and decoding checked first
    xml = upload_path(page_xml, "PAGE XML file")
    model, beam = predictor.model, _beam(decoding, beam)
    lm = run_lm(predictor.source.folder, beam)

    @torch.inference_mode()
    def read(images: list[torch.Tensor]) -> list[str]:
        return [text for text, _ in decode_lines(model, images, beam, lm)]

    out = Path(tempfile.mkdtemp(prefix="page-", dir=folder))
    rows = transcribe_page_xml(xml, Path(page), model.height, read, out)
    if not rows:
        raise DataError(f"{xml.name}: no TextLine regions to transcribe")
    return rows[0]["page_xml"], "\n".join(f"{r['line']}\t{r['text']}" for r in rows)


def build(served, handler, folder: Path) -> None:
    import gradio as gr

    predictor = served.predictor
    has_lm = (Path(predictor.source.folder or ".") / "lm.json").is_file()
    decoding = dict(
        choices=list(DECODINGS),
        value=DECODINGS[1] if has_lm else DECODINGS[0],
        label="decoding" + ("" if has_lm else " (this model has no LM: beam search alone)"),
    )
    with gr.Tab("A line"):
        with gr.Row():
            with gr.Column():
                image = gr.File(label="upload a line image", type="filepath", elem_id="line-file")
                mode = gr.Radio(**decoding)
                beam = gr.Slider(2, 20, value=10, step=1, label="beam width")
                run = gr.Button("Transcribe", variant="primary")
            text = gr.Textbox(label="text", elem_id="line-text")
        alignment = gr.Image(label="CTC alignment", type="numpy", format="png")
        fn = handler("textline", lambda path, mode, beam: line_outputs(predictor, path, mode, beam))
        run.click(fn, [image, mode, beam], [text, alignment], api_name="textline")
        image.upload(fn, [image, mode, beam], [text, alignment], api_name=False)
    with gr.Tab("A page (PAGE XML)"):
        with gr.Row():
            page = gr.File(label="page image", type="filepath")
            xml = gr.File(label="its PAGE XML (TextLine regions)", type="filepath")
        with gr.Row():
            page_mode = gr.Radio(**decoding)
            page_beam = gr.Slider(2, 20, value=10, step=1, label="beam width")
        read = gr.Button("Transcribe the page", variant="primary")
        filled = gr.File(label="the PAGE XML with the transcriptions")
        texts = gr.Textbox(label="line id and text", lines=8)
        read.click(
            handler(
                "page_xml",
                lambda page, xml, mode, beam: page_outputs(
                    predictor, page, xml, mode, beam, folder
                ),
            ),
            [page, xml, page_mode, page_beam],
            [filled, texts],
            api_name="page_xml",
        )
