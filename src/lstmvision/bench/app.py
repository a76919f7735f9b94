"""Server-side latency of the app's requests (``lstmvision bench app``): the function a tab runs
for one request, from the uploaded file to the pictures it returns, plus the PNG encoding of those
pictures that Gradio does before sending them; median of ``repeats`` after one warm-up, in one
process with the shipped models loaded once (as the app loads them). Gradio's own HTTP and queue
work is not included; the running app logs the handler time of every request (``NAME: N ms``).

Inputs are real items of the shared data: the first MNIST test digit (as a PNG file), the bronod
test line of median width, the first Flickr8k test photo.
"""

from __future__ import annotations

import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lstmvision.data import resolve_data_root
from lstmvision.errors import DataError

TARGETS = {"digit": 50.0, "text line": 100.0, "caption": 300.0}  # ms on 2 cores (the issue)


def _encode_pictures(outputs, fmt: str = "png") -> None:
    """Encode every picture among a request's outputs as Gradio does: PNG for the tabs' images,
    JPEG for the caption gallery's (its ``format``)."""
    for value in outputs if isinstance(outputs, (tuple, list)) else [outputs]:
        if isinstance(value, np.ndarray) and value.ndim == 3:
            Image.fromarray(value).save(io.BytesIO(), format=fmt)
        elif isinstance(value, list):  # a gallery: [(picture, label), ...]
            _encode_pictures(value, "jpeg")
        elif isinstance(value, tuple):
            _encode_pictures(value, fmt)


def _time(fn, repeats: int) -> float:
    _encode_pictures(fn())  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _encode_pictures(fn())
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _median_line(root: Path) -> Path:
    from lstmvision.data.lines import line_splits

    lines = line_splits("bronod", root)["test"]
    widths = sorted((Image.open(ln.image).size[0], str(ln.image)) for ln in lines[:200])
    return Path(widths[len(widths) // 2][1])


def run(repeats: int = 20, threads: int | None = None, data_root=None) -> dict:
    import torch

    import lstmvision
    from lstmvision.app import captions, digits, lines
    from lstmvision.data.captions import load_photos
    from lstmvision.data.samples import export_samples

    if threads:
        torch.set_num_threads(threads)
    root = resolve_data_root(data_root)
    if not (root / "mnist").is_dir():
        raise DataError(f"{root}: bench app reads real inputs from the shared data (no mnist/)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        (digit,) = export_samples("mnist", Path(tmp), 1, "test", root)
        line = _median_line(root)
        photo = load_photos("flickr8k-1k", root)["test"][0].path
        row_lstm = lstmvision.load("row-lstm-mnist")
        textline = lstmvision.load("textline-handwriting")
        captioner = lstmvision.load("caption-flickr8k")
        requests = [
            ("digit", "row-lstm-mnist", digit, lambda: digits.from_upload(row_lstm, digit)),
            (
                "text line",
                "greedy",
                line,
                lambda: lines.line_outputs(textline, line, "greedy"),
            ),
            (
                "text line",
                "beam 10 + LM",
                line,
                lambda: lines.line_outputs(textline, line, "beam search + LM", 10),
            ),
            ("caption", "beam 3", photo, lambda: captions.caption_outputs(captioner, photo, 3)),
        ]
        for request, setting, item, fn in requests:
            rows.append(
                {
                    "request": request,
                    "setting": setting,
                    "input": Path(item).name,
                    "ms": _time(fn, repeats),
                    "target_ms": TARGETS[request],
                }
            )
    return {
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "repeats": repeats,
        "requests": rows,
    }


def format_report(report: dict) -> str:
    lines = [
        f"app requests on {report['cpus']} CPUs, torch threads: {report['threads']} (median of "
        f"{report['repeats']}: upload read, model, pictures, PNG encoding)",
        f"{'request':12}{'setting':16}{'ms':>8}{'target':>10}  input",
    ]
    for r in report["requests"]:
        lines.append(
            f"{r['request']:12}{r['setting']:16}{r['ms']:8.1f}{r['target_ms']:>7g} ms  {r['input']}"
        )
    return "\n".join(lines)
