"""Files written whole or not at all: a temporary name in the same folder, renamed when complete.

A crash (or a full disk, or Ctrl+C) mid-write leaves the previous file, or none, never half of
one. The file gets the mode a plain ``open`` would give it (0644 under the usual umask), not the
0600 of :func:`tempfile.mkstemp`. Every file a run folder, a saved model or a picture holds is
written through here; Lightning's checkpoints are written the same way by Lightning itself
(``fsspec`` transactions).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lstmvision.errors import ConfigError


def default_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0666 less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def check_output_file(path: str | Path, option: str = "--out", example: str = "") -> None:
    """Raise a one-line :class:`ConfigError` unless ``path`` can be written as a file: before the
    work whose result it holds, not after (``option`` names where the path came from; ``example``
    a file name to suggest when it is a folder)."""
    path = Path(path)
    if path.is_dir():
        hint = f"; give the file to write, e.g. {example}" if example else ""
        raise ConfigError(f"{option} {path}: a folder{hint}")
    if not path.parent.is_dir():
        what = "is a file, not a folder" if path.parent.exists() else "does not exist"
        raise ConfigError(f"{option} {path}: folder {path.parent} {what}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers that infer the format from it
    work); when the block ends without an error it replaces ``path``, else it is removed."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    except OSError as e:  # name the file asked for, not the temporary one
        raise type(e)(e.errno, f"cannot write it ({e.strerror})", str(path)) from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs) -> Iterator:
    """``open(path, mode)`` whose content appears at ``path`` only once the block completes."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)
