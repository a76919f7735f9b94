"""Loading user image files (PNG/JPEG of any size and mode) the way a model needs them."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from lstmvision.data.file_checks import file_problem, one_line
from lstmvision.errors import DataError


def input_name(source, index: int = 0) -> str:
    """How results and errors name an input: a file's path, else ``<KIND #index HxW>``."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, Image.Image):
        return f"<image #{index} {source.height}x{source.width}>"
    shape = "x".join(str(n) for n in getattr(source, "shape", ()))
    return f"<{type(source).__name__} #{index} {shape}>"


def image_from_array(a, name: str = "array") -> Image.Image:
    """A numpy array or torch tensor as a PIL image: ``(H, W)`` grey, ``(H, W, C)`` or (tensors,
    as torchvision has them) ``(C, H, W)`` with C = 1, 3 or 4; uint8 0-255, or floats in [0, 1]."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
            a = a.permute(1, 2, 0)  # (C, H, W) -> (H, W, C)
        a = a.numpy()
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)) or 0 in a.shape:
        raise DataError(
            f"{name}: an image array must be (H, W), (H, W, 3|4) or (3|4, H, W), not {a.shape}"
        )
    if not (
        a.dtype == np.bool_
        or np.issubdtype(a.dtype, np.integer)
        or np.issubdtype(a.dtype, np.floating)
    ):
        raise DataError(
            f"{name}: an image array must hold numbers (bool, int or float), not {a.dtype}"
        )
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise DataError(f"{name}: the image array has NaN or infinite values")
        a = (np.clip(a, 0.0, 1.0) * 255).round().astype(np.uint8)
    elif a.dtype != np.uint8:
        if a.min() < 0 or a.max() > 255:
            raise DataError(f"{name}: integer pixels must lie in 0-255 (or give floats in [0, 1])")
        a = a.astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a))


def open_image(path) -> Image.Image:
    """Open and fully decode an image file (any failure is one DataError naming the file); a PIL
    image is copied, a numpy array or tensor converted (:func:`image_from_array`)."""
    if isinstance(path, Image.Image):
        path.load()
        return path.copy()
    if isinstance(path, (np.ndarray, torch.Tensor)):
        return image_from_array(path, input_name(path))
    path = Path(path)
    problem = file_problem(path, kind="an image file")
    if problem:
        raise DataError(f"{one_line(path)}: {problem}")
    try:
        with warnings.catch_warnings():
            # PIL's notes on broken metadata ("Corrupt EXIF data"): the image decodes, or the one
            # line below says why not; a stderr full of warnings says nothing more
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(path) as im:
                im.load()  # decode now: a truncated file fails here, not later
                return im.copy()
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
    ) as e:
        raise DataError(f"{one_line(path)}: not a readable image ({e})") from None


def to_grey(im: Image.Image) -> np.ndarray:
    """Any PIL mode -> float array in [0, 1], (H, W). 16-bit and float images are rescaled;
    transparent pixels are composited over white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        return np.clip(a / top, 0, 1)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return np.asarray(im.convert("L"), dtype=np.float64) / 255.0


def load_grey_image(
    path: str | Path, size: int, frame: float | None, light_on_dark: bool = True
) -> torch.Tensor:
    """Load an image as a model input like the training data: ``(size, size)`` float in [0, 1].

    - Polarity: if the border is lighter than the middle's opposite (mean border > 0.5), the image
      is inverted so that objects are bright on dark, as in MNIST (``light_on_dark``).
    - Framing: an image already ``size x size`` is used as it is. Otherwise, with ``frame`` set
      (MNIST: the digit's box fills 20 of 28 pixels), the object's bounding box is cropped, scaled
      to ``frame * size`` on its long side and centred; with ``frame=None`` the whole image is
      resized.
    """
    grey = to_grey(open_image(path))  # (H, W) in [0, 1]
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if light_on_dark and border.mean() > 0.5:
        grey = 1.0 - grey
    if grey.shape != (size, size):
        grey = _reframe(grey, size, frame)
    return torch.from_numpy(grey.astype(np.float32))


def _reframe(grey: np.ndarray, size: int, frame: float | None) -> np.ndarray:
    im = Image.fromarray((grey * 255).round().astype(np.uint8))
    if frame is None:
        return np.asarray(im.resize((size, size), Image.BILINEAR), dtype=np.float64) / 255.0
    ys, xs = np.nonzero(grey > 0.2 * grey.max()) if grey.max() > 0 else ((), ())
    if len(ys):
        im = im.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    box = max(1, round(frame * size))
    w, h = im.size  # the long side becomes box, as ImageOps.contain(im, (box, box)) does, but
    # the short one never rounds to 0 pixels (a 1 x 5000 crop: contain raised ValueError)
    fit = (box, max(1, round(h / w * box))) if w > h else (max(1, round(w / h * box)), box)
    im = im.resize(fit, Image.LANCZOS)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
    return np.asarray(canvas, dtype=np.float64) / 255.0
