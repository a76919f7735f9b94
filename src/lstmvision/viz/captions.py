"""A captioner on one photo file: its caption and, for an attention model, the picture of where
it looked for each word."""

from __future__ import annotations

from pathlib import Path

import torch

from lstmvision.data.captions import load_photo


@torch.no_grad()
def caption_photo(
    model,
    path: str | Path,
    beam: int,
    max_len: int,
    length_penalty: float,
    out: Path | None = None,
) -> dict:
    """``{"image", "caption"}`` of the photo at ``path`` (decoded with beam width ``beam``), plus
    ``"attention"``: the picture written into ``out`` when the model attends and ``out`` is
    given. Puts the model in eval mode."""
    pixels = load_photo(path, model.image_size)  # uint8 (3, S, S)
    features = model.eval().encode(pixels[None].float() / 255)  # (1, L, 1280)
    decoded = model.caption(features, beam=beam, max_len=max_len, length_penalty=length_penalty)
    words = [model.words[t] for t in decoded.tokens[0]]
    result = {"image": str(path), "caption": " ".join(words)}
    if decoded.extras[0] is not None and out is not None:
        from lstmvision.viz.attention import plot_attention

        out.mkdir(parents=True, exist_ok=True)
        picture = plot_attention(
            pixels, words, decoded.extras[0], out / f"{Path(path).stem}_attention.png"
        )
        result["attention"] = str(picture)
    return result
