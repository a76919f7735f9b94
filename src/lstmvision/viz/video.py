"""Frame sequences as pictures (Pillow): a PNG grid and an animated GIF of input / truth /
prediction.

Frames are float arrays or tensors ``(T, H, W)`` (grey) or ``(T, 3, H, W)`` in [0, 1]; each named
row of the grid or panel of the GIF is one sequence, drawn at ``scale`` x its size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lstmvision.files import atomic_path

LABEL_W, GAP = 72, 2


def _to_uint8(frames) -> np.ndarray:
    a = np.asarray(frames.detach().cpu() if hasattr(frames, "detach") else frames, dtype=np.float32)
    if a.ndim == 4:
        a = a[:, 0] if a.shape[1] == 1 else a.transpose(0, 2, 3, 1)  # (T, H, W) or (T, H, W, 3)
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


def _image(frame: np.ndarray, scale: int) -> Image.Image:
    img = Image.fromarray(frame).convert("RGB")
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale != 1 else img


def frame_grid(
    rows: dict[str, object], out: Path, scale: int = 1, offsets: dict[str, int] | None = None
) -> Path:
    """One row per ``{label: frames}``; ``offsets[label]`` shifts a row right by that many cells
    (a prediction of frames 11-20 under the truth of frames 11-20). Writes and returns ``out``
    (PNG)."""
    offsets = offsets or {}
    seqs = {k: _to_uint8(v) for k, v in rows.items()}
    h, w = next(iter(seqs.values())).shape[1:3]
    cell_h, cell_w = h * scale + GAP, w * scale + GAP
    cols = max(len(s) + offsets.get(k, 0) for k, s in seqs.items())
    canvas = Image.new("RGB", (LABEL_W + cols * cell_w, len(seqs) * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, seq) in enumerate(seqs.items()):
        draw.text((4, r * cell_h + cell_h // 2 - 5), label, fill="black")
        for t, frame in enumerate(seq):
            canvas.paste(
                _image(frame, scale), (LABEL_W + (t + offsets.get(label, 0)) * cell_w, r * cell_h)
            )
    with atomic_path(out) as tmp:
        canvas.save(tmp)
    return Path(out)


def frames_gif(
    panels: dict[str, object], out: Path, scale: int = 2, duration_ms: int = 200
) -> Path:
    """An animated GIF with one labelled panel per ``{label: frames}`` side by side (all the same
    length), looping. Writes and returns ``out``."""
    seqs = {k: _to_uint8(v) for k, v in panels.items()}
    length = min(len(s) for s in seqs.values())
    h, w = next(iter(seqs.values())).shape[1:3]
    pw, ph = w * scale + GAP, h * scale
    images = []
    for t in range(length):
        canvas = Image.new("RGB", (len(seqs) * pw, ph + 14), "white")
        draw = ImageDraw.Draw(canvas)
        for p, (label, seq) in enumerate(seqs.items()):
            draw.text((p * pw + 2, 1), f"{label} {t + 1}", fill="black")
            canvas.paste(_image(seq[t], scale), (p * pw, 14))
        images.append(canvas)
    with atomic_path(out) as tmp:
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return Path(out)
