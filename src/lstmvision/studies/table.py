"""A study's table of results: ``results.csv`` and ``results.md``, each written whole."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from lstmvision.files import write_text


def write_table(rows: list[dict], out: Path, markdown: str) -> None:
    """A study's ``results.csv`` (one row per run, the keys of the first row as columns) and its
    ``results.md``, each written whole (a crash never leaves half a table)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "results.csv", buffer.getvalue())
    write_text(out / "results.md", markdown)
