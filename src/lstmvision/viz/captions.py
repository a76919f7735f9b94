"""A captioner on one photo file: its caption and, for an attention model, the picture of where
it looked for each word."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from lstmvision.data.captions import load_photo
from lstmvision.data.images import input_name


@torch.no_grad()
def caption_photo(
    model,
    path: str | Path,
    beam: int,
    max_len: int,
    length_penalty: float,
    out: Path | None = None,
    index: int = 0,
) -> dict:
    """``{"image", "caption"}`` of the photo ``path`` (a file, a PIL image or an array; named
    by ``index`` if not a file), decoded with beam width ``beam``; an attending model adds
    ``"attention_weights"`` (words, grid, grid), and with ``out`` ``"attention"``, the picture
    written there. Puts the model in eval mode."""
    pixels = load_photo(path, model.image_size)  # uint8 (3, S, S)
    features = model.eval().encode(pixels[None].float() / 255)  # (1, L, 1280)
    decoded = model.caption(features, beam=beam, max_len=max_len, length_penalty=length_penalty)
    words = [model.words[t] for t in decoded.tokens[0]]
    result = {"image": input_name(path, index), "caption": " ".join(words)}
    alphas = decoded.extras[0]  # (words, L) over the encoder's square grid, or None
    if alphas is not None:
        grid = math.isqrt(alphas.shape[-1])
        result["attention_weights"] = alphas.float().reshape(len(words), grid, grid).numpy()
    if alphas is not None and out is not None:
        from lstmvision.viz.attention import plot_attention

        out.mkdir(parents=True, exist_ok=True)
        stem = Path(path).stem if isinstance(path, (str, Path)) else f"input{index}"
        picture = plot_attention(pixels, words, alphas, out / f"{stem}_attention.png")
        result["attention"] = str(picture)
    return result
