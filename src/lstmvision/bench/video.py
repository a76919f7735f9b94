"""Video decoding throughput: frames per second that PyAV decodes from a file (default: the shared
``video/vtest.avi``, 795 frames of 768x576 MPEG-4), at full size as RGB, and resized to grey
64x48 (what ``next-frame`` reads). Each figure is the median of ``repeats`` whole-file passes.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from lstmvision.data import resolve_data_root
from lstmvision.data.video import iter_frames, probe

CASES = (("full size, RGB", None, False), ("64x48, grey", "48x64", True))


def frames_per_second(path: Path, size, grey: bool, repeats: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = sum(1 for _ in iter_frames(path, size=size, grey=grey))
        times.append(time.perf_counter() - start)
    return count / statistics.median(times), count


def run(path: str | Path | None = None, repeats: int = 3) -> dict:
    path = Path(path) if path else resolve_data_root() / "video" / "vtest.avi"
    info = probe(path)
    rows = []
    for label, size, grey in CASES:
        fps, count = frames_per_second(path, size, grey, repeats)
        rows.append({"decode": label, "frames": count, "frames_per_s": round(fps, 1)})
    return {"file": str(path), "width": info.width, "height": info.height, "header_frames": info.header_frames,
            "cpus": os.cpu_count(), "repeats": repeats, "rows": rows}  # fmt: skip


def format_report(report: dict) -> str:
    lines = [f"{report['file']}: {report['width']}x{report['height']}, header {report['header_frames']} frames; "
             f"{report['cpus']} CPU(s), median of {report['repeats']}",
             f"{'decode':16} {'frames':>7} {'frames/s':>10}"]  # fmt: skip
    lines += [f"{r['decode']:16} {r['frames']:>7} {r['frames_per_s']:>10.1f}" for r in report["rows"]]
    return "\n".join(lines)
