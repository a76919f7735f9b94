"""Captions tab (``caption``): an uploaded photo -> its caption by beam search (width chosen in
the page) and, for an attending decoder, where it looked for each word: the attention weights
over the encoder's grid, upsampled onto the photo as the encoder saw it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lstmvision.app import pictures
from lstmvision.app.uploads import open_upload_image
from lstmvision.data.captions import load_photo
from lstmvision.inference.base import Predictor
from lstmvision.inference.results import Caption

MAX_BEAM = 10


def caption(predictor: Predictor, photo: Image.Image, beam: int) -> tuple[Caption, np.ndarray]:
    """The predictor's caption of ``photo`` at beam width ``beam`` and the photo as the encoder
    reads it, ``(S, S, 3)`` uint8."""
    result = predictor.predict(photo, beam=int(beam))
    seen = load_photo(photo, predictor.model.image_size).permute(1, 2, 0).numpy()  # (S, S, 3)
    return result, seen


def caption_outputs(predictor: Predictor, path, beam: int = 3) -> tuple[str, list]:
    """What the tab shows: the caption and a gallery of ``(picture, word)``, the attention of
    each word over the photo (only the photo for a decoder without attention)."""
    result, seen = caption(predictor, open_upload_image(path, "photo"), beam)
    if result.attention is None:
        return result.text, [(seen, "the photo (this decoder does not attend)")]
    gallery = [
        (pictures.overlay(seen, weights), f"{i + 1}. {word}")
        for i, (word, weights) in enumerate(zip(result.words, result.attention))
    ]
    return result.text, gallery


def build(served, handler) -> None:
    import gradio as gr

    predictor = served.predictor
    default = int(predictor.config.get("beam", 3))
    with gr.Row():
        with gr.Column():
            photo = gr.File(label="upload a photo", type="filepath", elem_id="caption-file")
            beam = gr.Slider(1, MAX_BEAM, value=default, step=1, label="beam width")
            run = gr.Button("Caption", variant="primary")
        with gr.Column():
            text = gr.Textbox(label="caption (beam search)", elem_id="caption-text")
    gallery = gr.Gallery(  # JPEG: a photo's overlays encode 100x faster than as PNG or WebP
        label="where the decoder looked for each word", columns=5, height="auto", format="jpeg"
    )
    fn = handler("caption", lambda path, beam: caption_outputs(predictor, path, beam))
    run.click(fn, [photo, beam], [text, gallery], api_name="caption")
    photo.upload(fn, [photo, beam], [text, gallery], api_name=False)
