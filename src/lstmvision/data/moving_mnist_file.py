"""The official Moving MNIST test set, ``mnist_test_seq.npy`` (Srivastava et al. 2015).

The file is one uint8 array of shape ``(20, 10000, 64, 64)``: frame, sequence, height, width
(frame first, as distributed). :class:`MovingMNISTFile` serves its sequences as
:class:`lstmvision.data.moving_mnist.MovingMNIST` does, ``(T, 1, 64, 64)`` floats in [0, 1]
(``/ 255``), the first ``num_frames`` frames of each; the array is memory-mapped, not read whole
(800 MB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lstmvision.data.file_checks import file_problem, numpy_reason, one_line
from lstmvision.errors import DataError


class MovingMNISTFile(Dataset):
    """Sequences ``(num_frames, 1, 64, 64)`` of an ``.npy`` of shape ``(T, N, 64, 64)`` uint8."""

    def __init__(self, path: str | Path, num_frames: int = 20):
        path = Path(path)
        problem = file_problem(path, "no such file", "an .npy file")
        if problem:
            raise DataError(f"{one_line(path)}: {problem} (the Moving MNIST test file)")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(
                f"{one_line(path)}: not a readable .npy array ({numpy_reason(e)})"
            ) from None
        if array.ndim != 4 or array.shape[2:] != (64, 64) or array.dtype != np.uint8:
            raise DataError(
                f"{one_line(path)}: shape {tuple(array.shape)} {array.dtype}, expected "
                "(frames, sequences, 64, 64) uint8 like mnist_test_seq.npy (20, 10000, 64, 64)"
            )
        if array.shape[0] < num_frames or array.shape[1] < 1:
            raise DataError(
                f"{one_line(path)}: {array.shape[0]} frames of {array.shape[1]} sequences; "
                f"--input-frames + --output-frames need {num_frames}"
            )
        self.path, self.array, self.num_frames = path, array, num_frames

    def __len__(self) -> int:
        return self.array.shape[1]

    def __getitem__(self, i: int) -> torch.Tensor:
        seq = np.array(self.array[: self.num_frames, i])  # (T, 64, 64) uint8, copied from the map
        return torch.from_numpy(seq).unsqueeze(1).float().div_(255)  # (T, 1, 64, 64)
