"""Reading IDX files (the MNIST format), plain or gzip-compressed, with checks.

Every failure is a :class:`~lstmvision.errors.DataError` naming the file: a truncated or corrupt
file must not surface as an ``AssertionError`` or ``EOFError`` from deep inside a parser.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from lstmvision.errors import DataError

# IDX type byte -> numpy dtype (big-endian, as the format stores it)
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read IDX file, truncated or corrupt ({e})") from None


def read_idx(path: str | Path, expect_ndim: int | None = None) -> torch.Tensor:
    """Read an IDX file into a tensor of its stored shape (uint8 stays uint8)."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    if expect_ndim is not None and ndim != expect_ndim:
        raise DataError(f"{path}: IDX file has {ndim} dimensions, expected {expect_ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX file (header cut short)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = header + math.prod(shape) * dtype.itemsize  # exact: np.prod wraps past 2**63
    if len(data) != expected:
        raise DataError(
            f"{path}: truncated or corrupt IDX file ({len(data)} bytes, header promises {expected})"
        )
    try:
        array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    except ValueError as e:  # no items, but dimensions numpy cannot hold: (0, 2**32-1, 2**32-1)
        raise DataError(f"{path}: IDX dimensions {shape} are not usable ({e})") from None
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))
