"""Binarized MNIST for generative models: each pixel 0 or 1, drawn with probability its grey level.

* Training digits are binarized afresh each time they are drawn (dynamic binarization): this
  module serves their grey levels (uint8 0-255) and the training step draws
  ``x ~ Bernoulli(grey / 255)``, so every epoch sees other bits of the same digits.
* Validation and test digits are binarized once, by the same rule with NumPy's
  ``default_rng(BINARIZE_SEED)`` over MNIST's official training and test splits in order, and
  the bits are kept in a cache file (``<cache>/mnist-<digest>-seed<seed>.npz``, default folder
  ``~/.cache/lstmvision/binarized-mnist``; ``digest`` is of the grey images they were drawn
  from), so every model and every run is scored on the same bits. A missing, unreadable or
  mismatched cache file is drawn again (the same bits) and rewritten; a folder that cannot be
  written leaves the bits uncached.

The validation digits are ``val_fraction`` of MNIST's training split
(:func:`lstmvision.data.train_val_indices`, as for the classifiers); the test digits are MNIST's
official test split.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstmvision.data.digits import load_split
from lstmvision.data.file_checks import one_line
from lstmvision.data.images import open_image, to_grey
from lstmvision.data.root import CACHE
from lstmvision.errors import DataError
from lstmvision.files import atomic_path

BINARIZE_SEED = 1601
"""The seed of the fixed validation and test bits (arXiv 1601.06759, the PixelRNN paper)."""
CACHE_FOLDER = CACHE / "binarized-mnist"
CHUNK = 10_000  # images binarized per draw (bounds the memory of the uniform numbers)


def binarize(grey: np.ndarray, seed: int) -> np.ndarray:
    """``grey`` uint8 images ``(N, H, W)`` -> uint8 bits: pixel ``1`` with probability
    ``grey / 255`` (``u < grey / 255``, ``u`` uniform from ``default_rng(seed)``, drawn image
    by image in order)."""
    rng = np.random.default_rng(seed)
    bits = np.empty(grey.shape, dtype=np.uint8)
    for start in range(0, len(grey), CHUNK):
        part = grey[start : start + CHUNK]
        uniform = rng.random(part.shape, dtype=np.float32)
        bits[start : start + CHUNK] = uniform < part.astype(np.float32) / 255
    return bits


@dataclass
class BinarizedMNIST:
    """MNIST's official splits: the training digits' grey levels and both splits' fixed bits."""

    train_grey: torch.Tensor  # uint8 (60000, 28, 28), 0-255: binarized afresh in training
    train_bits: torch.Tensor  # uint8 (60000, 28, 28), 0/1: the fixed bits (validation part)
    test_bits: torch.Tensor  # uint8 (10000, 28, 28), 0/1


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _read_cache(path: Path, shapes: dict[str, tuple]) -> dict[str, np.ndarray] | None:
    """The bits in ``path``, or ``None`` when it is missing, unreadable or of other shapes."""
    bits = {}
    try:
        with np.load(path, allow_pickle=False) as f:
            for split, shape in shapes.items():
                packed, size = f[split], int(np.prod(shape))
                if packed.dtype != np.uint8 or packed.shape != ((size + 7) // 8,):
                    return None
                bits[split] = np.unpackbits(packed, count=size).reshape(shape)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    return bits


def _write_cache(path: Path, bits: dict[str, np.ndarray]) -> None:
    """Keep ``bits`` in ``path`` (written whole or not at all); a folder that cannot be written
    is left alone: the bits are drawn again next time (the same bits)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{split: np.packbits(b) for split, b in bits.items()})
    except OSError:
        pass


def load_binarized_mnist(
    root: str | Path,
    cache: str | Path | None = None,
    download: bool = False,
    seed: int = BINARIZE_SEED,
) -> BinarizedMNIST:
    """MNIST from ``root`` (as :func:`lstmvision.data.load_split`), its fixed bits from the
    cache folder ``cache`` (default :data:`CACHE_FOLDER`), drawn and kept there when missing."""
    train, _ = load_split("mnist", root, "train", download=download)
    test, _ = load_split("mnist", root, "test", download=download)
    grey = {"train": train.numpy(), "test": test.numpy()}
    folder = Path(cache).expanduser() if cache else CACHE_FOLDER
    path = folder / f"mnist-{_digest(grey['train'], grey['test'])}-seed{seed}.npz"
    bits = _read_cache(path, {split: g.shape for split, g in grey.items()})
    if bits is None:
        # one generator over the training split, then the test split: fixed bits of both
        drawn = binarize(np.concatenate([grey["train"], grey["test"]]), seed)
        bits = {"train": drawn[: len(train)], "test": drawn[len(train) :]}
        _write_cache(path, bits)
    return BinarizedMNIST(
        train, torch.from_numpy(bits["train"].copy()), torch.from_numpy(bits["test"].copy())
    )


def read_binary_image(path: str | Path, size: int) -> torch.Tensor:
    """A black-and-white image file as ``(size, size)`` float 0./1. (white = 1: a digit white on
    black, as MNIST's); any other size, or a grey or coloured pixel, is one ``DataError`` naming
    the file."""
    grey = to_grey(open_image(path))  # (H, W) in [0, 1]
    name = one_line(path)
    if grey.shape != (size, size):
        height, width = grey.shape
        raise DataError(
            f"{name}: the image is {width}x{height} pixels; the model draws {size}x{size} images"
        )
    grey_pixels = int(np.count_nonzero((grey != 0) & (grey != 1)))
    if grey_pixels:
        raise DataError(
            f"{name}: not a black-and-white image ({grey_pixels} pixel(s) neither black nor "
            "white); binarize it first (a digit white on black)"
        )
    return torch.from_numpy(grey.astype(np.float32))
