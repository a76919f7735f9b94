"""Moving MNIST (Srivastava et al. 2015), generated from the real MNIST digits.

:func:`moving_mnist`: the standard generator. Each sequence has ``num_digits`` (2) MNIST digits,
28x28, bouncing inside a 64x64 frame for ``num_frames`` (20) frames: a digit starts at a uniform
position with a uniform direction ``θ`` and moves ``step_length = 0.1`` of the free range
(``64 - 28 = 36`` px, so 3.6 px) per frame; at an edge the velocity component is reflected. The
digits are combined by a pixelwise maximum. Positions are computed in the unit square and
truncated to integer pixels, as in the original code, so every digit stays wholly in the frame.

:func:`motion_mnist`: a labelled variant for clip classification where one frame cannot give the
answer. One digit moves in a straight line (no bounce) at 2-3 px per frame, at an angle within
60 degrees of the horizontal; the label is ``left`` or ``right``. The start point is uniform among
those that keep the whole path in frame, so a right-moving clip played backwards is a left-moving
clip drawn from the same distribution: any order-blind model (frame averaging) is at chance, 50 %.

Both are pure functions of ``(digits, seed)``: the same seed gives the same sequences, byte for
byte. :class:`MovingMNIST` serves fresh sequences each epoch (training) or a fixed set (seeded
validation/test sets); digits come from :func:`lstmvision.data.load_split` (``mnist``).

:func:`moving_mnist_splits`: next-frame's three sets. Training sequences are fresh every epoch,
from the digits of MNIST's training split minus a held-out ``val_fraction``; validation: fixed
sequences (seed 1) of the held-out digits; test: fixed sequences (seed 2015) of MNIST's test
digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lstmvision.data.digits import load_split, train_val_indices

SIZE, DIGIT = 64, 28
SPLIT_SEEDS = {"val": 1, "test": 2015}
MOTION_CLASSES = ("left", "right")


def _paste(canvas: np.ndarray, digit: np.ndarray, top: int, left: int) -> None:
    window = canvas[top : top + DIGIT, left : left + DIGIT]
    np.maximum(window, digit, out=window)


def _trajectory(rng: np.random.Generator, num_frames: int, step_length: float) -> np.ndarray:
    """``(T, 2)`` integer (top, left) positions of one bouncing digit (Srivastava's code)."""
    y, x = rng.random(2)
    theta = rng.random() * 2 * np.pi
    vy, vx = np.sin(theta), np.cos(theta)
    out = np.empty((num_frames, 2))
    for t in range(num_frames):
        y, x = y + vy * step_length, x + vx * step_length
        if x <= 0:
            x, vx = 0.0, -vx
        if x >= 1:
            x, vx = 1.0, -vx
        if y <= 0:
            y, vy = 0.0, -vy
        if y >= 1:
            y, vy = 1.0, -vy
        out[t] = y, x
    return (out * (SIZE - DIGIT)).astype(np.int64)  # (T, 2) in [0, 36]


def moving_mnist(
    digits: np.ndarray,
    count: int,
    seed: int,
    num_frames: int = 20,
    num_digits: int = 2,
    step_length: float = 0.1,
) -> np.ndarray:
    """``count`` sequences ``(count, num_frames, 64, 64)`` uint8 from ``digits`` ``(N, 28, 28)``."""
    rng = np.random.default_rng(seed)
    out = np.zeros((count, num_frames, SIZE, SIZE), np.uint8)
    for n in range(count):
        for _ in range(num_digits):
            digit = digits[rng.integers(len(digits))]
            for t, (top, left) in enumerate(_trajectory(rng, num_frames, step_length)):
                _paste(out[n, t], digit, top, left)
    return out


def motion_mnist(
    digits: np.ndarray, count: int, seed: int, num_frames: int = 10, size: int = SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` clips ``(count, num_frames, size, size)`` uint8 and their labels (0 = left,
    1 = right)."""
    rng = np.random.default_rng(seed)
    free = size - DIGIT
    clips = np.zeros((count, num_frames, size, size), np.uint8)
    labels = rng.integers(0, 2, count)
    for n in range(count):
        digit = digits[rng.integers(len(digits))]
        speed = rng.uniform(2.0, 3.0)
        angle = rng.uniform(-np.pi / 3, np.pi / 3)
        vx, vy = speed * np.cos(angle) * (1 if labels[n] else -1), speed * np.sin(angle)
        span_x, span_y = abs(vx) * (num_frames - 1), abs(vy) * (num_frames - 1)
        x0 = rng.uniform(0, free - span_x) + (span_x if vx < 0 else 0)
        y0 = rng.uniform(0, free - span_y) + (span_y if vy < 0 else 0)
        for t in range(num_frames):
            top, left = int(round(y0 + vy * t)), int(round(x0 + vx * t))
            _paste(clips[n, t], digit, top, left)
    return clips, labels.astype(np.int64)


class MovingMNIST(torch.utils.data.Dataset):
    """Moving MNIST sequences as float tensors ``(T, 1, 64, 64)`` in [0, 1].

    ``fixed=True``: ``count`` sequences generated once from ``seed`` (validation and test sets).
    ``fixed=False``: ``count`` fresh sequences per epoch (training; call :meth:`set_epoch`, which
    reseeds with ``seed + epoch`` so a run is repeatable), generated in chunks as they are read.
    """

    def __init__(
        self,
        digits: np.ndarray,
        count: int,
        seed: int,
        fixed: bool = True,
        num_frames: int = 20,
        num_digits: int = 2,
        chunk: int = 256,
    ):
        self.digits, self.count, self.seed, self.fixed = digits, count, seed, fixed
        self.num_frames, self.num_digits, self.chunk = num_frames, num_digits, chunk
        self.epoch, self._cache = 0, {}
        if fixed:
            self._cache = {0: moving_mnist(digits, count, seed, num_frames, num_digits)}
            self.chunk = count

    def set_epoch(self, epoch: int) -> None:
        if not self.fixed and epoch != self.epoch:
            self.epoch, self._cache = epoch, {}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> torch.Tensor:
        k = i // self.chunk
        if k not in self._cache:
            self._cache = {
                k: moving_mnist(
                    self.digits,
                    min(self.chunk, self.count - k * self.chunk),
                    [self.seed, self.epoch, k],
                    self.num_frames,
                    self.num_digits,
                )
            }
        seq = self._cache[k][i - k * self.chunk]  # (T, 64, 64) uint8
        return torch.from_numpy(seq).unsqueeze(1).float().div_(255)  # (T, 1, 64, 64)


def moving_mnist_splits(
    root: Path,
    num_frames: int,
    train_size: int,
    val_size: int,
    test_size: int,
    seed: int = 0,
    val_fraction: float = 0.1,
    limit_train: int | None = None,
    download: bool = False,
) -> dict[str, MovingMNIST]:
    """``{"train", "val", "test": MovingMNIST}`` (see the module doc): ``train_size`` fresh
    sequences an epoch (seeded by ``seed``), ``val_size`` and ``test_size`` fixed ones
    (``SPLIT_SEEDS``); ``limit_train``: only the first that many training digits."""
    train, _ = load_split("mnist", root, "train", download=download)
    test, _ = load_split("mnist", root, "test", download=download)
    train_idx, val_idx = train_val_indices(len(train), val_fraction)
    digits = {
        "train": train[train_idx].numpy(),
        "val": train[val_idx].numpy(),
        "test": test.numpy(),
    }
    if limit_train:
        digits["train"] = digits["train"][:limit_train]
    sets = {
        "train": MovingMNIST(digits["train"], train_size, seed, fixed=False, num_frames=num_frames)
    }
    for split, count in (("val", val_size), ("test", test_size)):
        sets[split] = MovingMNIST(digits[split], count, SPLIT_SEEDS[split], num_frames=num_frames)
    return sets
