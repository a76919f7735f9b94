"""Pictures drawn fast enough for one request (a few milliseconds, not matplotlib's hundreds):
heat maps coloured by a matplotlib colour map, grey images scaled up, text labels, all as
``(H, W, 3)`` uint8 arrays that Gradio shows as they are."""

from __future__ import annotations

import functools

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

WHITE = 255


@functools.lru_cache(maxsize=8)
def font(size: int = 12) -> ImageFont.FreeTypeFont:
    """DejaVu Sans (matplotlib's, whose glyphs cover accented and most other letters)."""
    from matplotlib import font_manager

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def heat(
    values, vmin: float, vmax: float, cell: tuple[int, int], cmap: str = "viridis"
) -> np.ndarray:
    """``values`` ``(R, C)`` as colours, each cell ``cell = (height, width)`` pixels:
    ``(R * height, C * width, 3)`` uint8."""
    v = np.asarray(values, dtype=np.float32)
    scaled = np.clip((v - vmin) / max(vmax - vmin, 1e-12), 0, 1)  # (R, C) in [0, 1]
    rgb = (colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)  # (R, C, 3)
    return np.repeat(np.repeat(rgb, cell[0], axis=0), cell[1], axis=1)


def grey(image, scale: int = 1, ink_dark: bool = False) -> np.ndarray:
    """A grey image ``(H, W)`` in [0, 1] as ``(H * scale, W * scale, 3)`` uint8 (``ink_dark``:
    inverted, dark on white)."""
    a = np.asarray(image, dtype=np.float32)
    a = 1 - a if ink_dark else a
    a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    a = np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)
    return np.repeat(a[..., None], 3, axis=2)


def text(lines: str, width: int, size: int = 12, height: int | None = None) -> np.ndarray:
    """``lines`` (``\\n`` separated) written black on white in a strip ``width`` pixels wide."""
    rows = lines.split("\n")
    height = height or (size + 4) * len(rows) + 2
    im = Image.new("RGB", (max(1, width), height), "white")
    ImageDraw.Draw(im).multiline_text((3, 2), lines, fill="black", font=font(size), spacing=4)
    return np.asarray(im)


def pad(a: np.ndarray, top: int = 0, right: int = 0, bottom: int = 0, left: int = 0) -> np.ndarray:
    return np.pad(a, ((top, bottom), (left, right), (0, 0)), constant_values=WHITE)


def hstack(parts: list[np.ndarray], gap: int = 8) -> np.ndarray:
    """Side by side, tops aligned, ``gap`` white pixels between."""
    height = max(p.shape[0] for p in parts)
    padded = [pad(p, bottom=height - p.shape[0]) for p in parts]
    spaced = [pad(p, right=gap) for p in padded[:-1]] + padded[-1:]
    return np.concatenate(spaced, axis=1)


def vstack(parts: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """One above the other, left aligned, ``gap`` white pixels between."""
    width = max(p.shape[1] for p in parts)
    padded = [pad(p, right=width - p.shape[1]) for p in parts]
    spaced = [pad(p, bottom=gap) for p in padded[:-1]] + padded[-1:]
    return np.concatenate(spaced, axis=0)


def titled(title: str, picture: np.ndarray, size: int = 12) -> np.ndarray:
    """``picture`` under a one-line ``title``."""
    return vstack([text(title, picture.shape[1], size), picture], gap=2)


def overlay(photo: np.ndarray, weights, cmap: str = "jet", alpha: float = 0.5) -> np.ndarray:
    """``weights`` ``(g, g)`` upsampled (bilinear) over ``photo`` ``(S, S, 3)`` uint8, scaled to
    their maximum and blended with weight ``alpha``."""
    w = np.asarray(weights, dtype=np.float32)
    size = (photo.shape[1], photo.shape[0])
    up = np.asarray(Image.fromarray(w).resize(size, Image.BILINEAR), dtype=np.float32)  # (S, S)
    colours = colormaps[cmap](up / max(float(up.max()), 1e-12))[..., :3] * 255  # (S, S, 3)
    return ((1 - alpha) * photo + alpha * colours).round().astype(np.uint8)
