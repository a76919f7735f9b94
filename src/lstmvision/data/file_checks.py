"""File names in one-line errors: why a path is not a readable file, and names made printable.

``Path.is_file()`` says only yes or no (and raises ``OSError`` for a name too long), so a folder, a
symlink loop and a missing file were all reported as "no such file"; :func:`file_problem` tells
them apart. :func:`one_line` keeps a name with a line break in it (from a folder listing or a
file's content) from splitting a message in two.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def file_problem(
    path: str | Path, missing: str = "no such file", kind: str = "a file"
) -> str | None:
    """``None`` when ``path`` is a regular file (symlinks followed); otherwise what is wrong:
    ``missing`` when nothing is there, ``"is a folder, not <kind>"``, ``"is a symlink loop"``,
    ``"is a broken symlink (to ...)"``, a name too long, a device or pipe, no permission."""
    try:
        mode = os.stat(path).st_mode
    except ValueError:  # the name holds a NUL character
        return "not a valid file name (it holds a NUL character)"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symlink loop"
        if e.errno == errno.ENAMETOOLONG:
            return "file name too long"
        if e.errno == errno.EACCES:
            return "permission denied (on a folder in its path)"
        if e.errno == errno.ENOENT and os.path.islink(path):
            return f"is a broken symlink (to {one_line(os.readlink(path))})"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return missing
        return f"cannot be read ({e.strerror})"
    if stat.S_ISDIR(mode):
        return f"is a folder, not {kind}"
    if not stat.S_ISREG(mode):
        return f"is not a regular file (a device, pipe or socket), not {kind}"
    return None


def one_line(name: str | Path) -> str:
    """``name`` (a path, an id) for a one-line message: a name from a folder listing or from a
    file's content may hold line breaks or other control characters; those are written as Python
    escapes (``\\r``, ``\\x1b``)."""
    text = str(name)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def numpy_reason(error: Exception) -> str:
    """Why numpy could not read an ``.npy``/``.npz`` file, in our words: its own message for an
    array of Python objects advises loading the file unsafely, which we never do."""
    text = str(error)
    if "pickle" in text.lower() or "python objects" in text.lower():
        return (
            "not plain numbers: reading it would unpickle Python objects, which could run code; "
            "refused"
        )
    return one_line(text.splitlines()[0] if text else type(error).__name__)
