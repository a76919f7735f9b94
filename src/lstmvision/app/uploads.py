"""What users upload, checked before a model sees it: a missing or empty (0-byte) file, a file
that is not an image, an image too large to decode safely, an empty drawing and a video that
does not decode are each one clear line (a :class:`~lstmvision.errors.DataError` naming the file
as the user named it), never a traceback.

Image files are opened lazily first, so their size is checked from the header before any pixel
is decoded: a 20,000 px PNG of a few kilobytes is refused without allocating gigabytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lstmvision.data.file_checks import file_problem, one_line
from lstmvision.data.images import image_from_array, to_grey
from lstmvision.errors import DataError

MAX_SIDE = 10_000  # pixels on an image's longer side
MAX_PIXELS = 40_000_000  # an A4 page scanned at 600 dpi is 35 megapixels
MAX_VIDEO_SIDE = 4096  # pixels on a video frame's longer side
IMAGE_LIMITS = f"images up to {MAX_SIDE:,} px a side and {MAX_PIXELS // 1_000_000} megapixels"


def upload_path(value, what: str) -> Path:
    """The file Gradio stored an upload in (a path string), checked to exist and hold bytes;
    ``what`` names the expected upload in the message when there is none."""
    if value is None or value == "" or value == []:
        raise DataError(f"no {what} given: upload one first")
    path = Path(getattr(value, "path", value))
    problem = file_problem(path, kind=f"a {what}")
    if problem:
        raise DataError(f"{one_line(path.name)}: {problem}")
    if path.stat().st_size == 0:
        raise DataError(f"{one_line(path.name)}: the file is empty (0 bytes); not a {what}")
    return path


def check_size(width: int, height: int, name: str) -> None:
    """Refuse an image larger than :data:`MAX_SIDE` a side or :data:`MAX_PIXELS` in all."""
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise DataError(
            f"{name}: {width} x {height} pixels is larger than this app reads ({IMAGE_LIMITS}); "
            "scale it down first"
        )


def open_upload_image(value, what: str = "image") -> Image.Image:
    """The uploaded image file, decoded (EXIF orientation applied): its size is checked from the
    header before decoding (:func:`check_size`)."""
    path = upload_path(value, what)
    name = one_line(path.name)
    try:
        with Image.open(path) as im:
            check_size(im.width, im.height, name)
            im.load()
            return ImageOps.exif_transpose(im)
    except Image.DecompressionBombError:  # PIL's own refusal, past twice its pixel limit
        raise DataError(
            f"{name}: far larger than this app reads ({IMAGE_LIMITS}); scale it down first"
        ) from None
    except UnidentifiedImageError:
        raise DataError(
            f"{name}: not an image file this app can read (upload a PNG, JPEG, GIF, BMP, TIFF "
            "or WebP image)"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:  # a truncated or corrupt image
        raise DataError(f"{name}: the image could not be decoded ({e})") from None


def drawing_image(value) -> Image.Image:
    """The picture drawn on a sketchpad (Gradio's editor value: a dict whose ``composite`` is an
    ``(H, W[, C])`` array or an image file); an empty canvas is refused."""
    composite = value.get("composite") if isinstance(value, dict) else value
    if composite is None:
        raise DataError("the drawing is empty: draw a digit on the canvas first")
    if isinstance(composite, (str, Path)):
        image = open_upload_image(composite, "drawing")
    else:
        image = image_from_array(np.asarray(composite), "drawing")
    check_size(image.width, image.height, "drawing")
    grey = to_grey(image)  # (H, W) in [0, 1], transparency over white
    if grey.max() - grey.min() < 0.05:
        raise DataError("the drawing is empty: draw a digit on the canvas first")
    return image


def check_video(value, what: str = "video clip") -> Path:
    """An uploaded video file that decodes (its container and first stream are read; frames of
    at most :data:`MAX_VIDEO_SIDE` px a side)."""
    from lstmvision.data.video import probe

    path = upload_path(value, what)
    info = probe(path)
    if max(info.width, info.height) > MAX_VIDEO_SIDE:
        raise DataError(
            f"{one_line(path.name)}: {info.width} x {info.height} frames are larger than this app "
            f"reads (at most {MAX_VIDEO_SIDE} px a side)"
        )
    if info.frames == 0:
        raise DataError(f"{one_line(path.name)}: the video holds no frames")
    return path
