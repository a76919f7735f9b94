"""Progress lines of long commands (studies, benchmarks, a training's budget): on stderr, flushed
at once, so that stdout keeps only the result (a table, JSON) and a pipe or a log shows each line
as it happens."""

from __future__ import annotations

import sys


def say(line: str) -> None:
    """Print one progress line to stderr now."""
    print(line, file=sys.stderr, flush=True)
