"""One writer per run folder: an exclusive lock on ``<run>/.lock`` held while a process writes.

Training (new or ``--resume``), ``textline-lm`` and ``evaluate`` of a run folder take it before
they write anything; a second one refuses in one line naming the holder's process id. The lock
is the operating system's (``fcntl.flock``; ``msvcrt.locking`` on Windows), so it dies with its
process: a run killed with SIGKILL leaves the file behind but never blocks the next run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from lstmvision.errors import LstmvisionError

LOCK = ".lock"

try:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class RunFolderBusy(LstmvisionError):
    """Another process holds the run folder's lock."""


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


@contextlib.contextmanager
def hold(run_dir: str | Path, doing: str = "write") -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block (the folder must exist); refuse in one line if
    another process holds it. ``doing`` names the refused action in the message."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise LstmvisionError(f"{run_dir}: cannot {doing} here ({e.strerror})") from None
    try:
        if not _try_lock(fd):
            raise RunFolderBusy(
                f"{run_dir}: in use by {_holder(path)} (a training or evaluation writing it); "
                f"cannot {doing} until it ends (nothing was changed)"
            )
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            _unlock(fd)
    finally:
        os.close(fd)
