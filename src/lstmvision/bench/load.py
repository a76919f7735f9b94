"""Cold start and per-item latency of the shipped models (``lstmvision bench load``).

Cold start: the wall time of a fresh ``python -c "import lstmvision;
lstmvision.load(NAME).predict(x)"`` (interpreter start, imports, reading the weights, one
prediction), median of ``cold`` runs. Per item: in one process, after one warm-up call, the
median time of ``predict`` on one input (the task's usual options: greedy for text lines, beam 3
for captions). Inputs are real items of the shared data when it is present (an MNIST test digit,
the bronod line of median width, a Flickr8k photo), else arrays of the same size.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lstmvision.data import resolve_data_root

# the targets on 2 cores: (cold start s, per item ms)
TARGETS = {"row-lstm": (3.0, 5.0), "textline": (None, 20.0), "caption": (6.0, 100.0)}
OPTIONS = {"caption": {"beam": 3}, "textline": {"beam": 1}}


def example_input(task: str, data_root=None):
    """A real input of ``task``'s kind from the shared data if present, else an array."""
    root = resolve_data_root(data_root)
    if task in ("row-lstm", "cnn"):
        from lstmvision.data import load_split

        try:
            return load_split("mnist", root, "test")[0][0].numpy()  # uint8 (28, 28)
        except Exception:
            return np.zeros((28, 28), dtype=np.uint8)
    if task == "textline":
        labels = root / "lines-bronod" / "labels.tsv"
        if labels.is_file():
            from PIL import Image

            from lstmvision.data.lines import read_labels_tsv

            lines = [ln for ln in read_labels_tsv(labels) if ln.box is None]
            widths = sorted((Image.open(ln.image).size[0], str(ln.image)) for ln in lines[:400])
            return Path(widths[len(widths) // 2][1])
        return np.full((64, 1200), 230, dtype=np.uint8)
    if task == "caption":
        photos = sorted((root / "flickr8k-1k" / "images").glob("*.jpg"))
        return photos[0] if photos else np.full((375, 500, 3), 128, dtype=np.uint8)
    if task == "char-lm":
        return "ROMEO:"
    if task == "clip-classify":
        video = root / "video" / "ucf101_ApplyEyeMakeup_sample.avi"
        return video if video.is_file() else np.zeros((10, 64, 64), dtype=np.uint8)
    raise ValueError(f"bench load: no example input for a {task!r} model")


def _literal(item) -> str:
    """Python source that rebuilds ``item`` in the fresh process."""
    if isinstance(item, np.ndarray):
        return f"np.zeros({item.shape!r}, {str(item.dtype)!r})"
    return repr(str(item))


def _cold_start(name: str, item, repeats: int) -> float:
    code = f"import numpy as np, lstmvision\nlstmvision.load({name!r}).predict({_literal(item)})\n"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(names: list[str] | None = None, repeats: int = 20, cold: int = 3, data_root=None) -> dict:
    import torch

    import lstmvision
    from lstmvision.pretrained import names as shipped

    rows = []
    for name in names or shipped():
        model = lstmvision.load(name)
        item = example_input(model.task, data_root)
        options = OPTIONS.get(model.task, {})
        model.predict(item, **options)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.predict(item, **options)
            times.append(time.perf_counter() - start)
        target = TARGETS.get(model.task, (None, None))
        rows.append(
            {
                "model": name,
                "task": model.task,
                "input": str(item) if isinstance(item, (str, Path)) else f"array {item.shape}",
                "options": options,
                "cold_start_s": _cold_start(name, item, cold) if cold > 0 else None,
                "per_item_ms": 1000 * statistics.median(times),
                "target_cold_s": target[0],
                "target_ms": target[1],
            }
        )
    return {
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "repeats": repeats,
        "cold_runs": cold,
        "models": rows,
    }


def format_report(report: dict) -> str:
    lines = [
        f"shipped models on {report['cpus']} CPUs, {report['threads']} torch threads "
        f"(per item: median of {report['repeats']}; cold: median of {report['cold_runs']} "
        "fresh processes)",
        f"{'model':24}{'cold start':>12}{'target':>8}{'per item':>11}{'target':>9}  input",
    ]
    for r in report["models"]:
        cold = f"{r['cold_start_s']:.2f} s" if r["cold_start_s"] is not None else "-"
        tc = f"{r['target_cold_s']:g} s" if r["target_cold_s"] else "-"
        tm = f"{r['target_ms']:g} ms" if r["target_ms"] else "-"
        lines.append(
            f"{r['model']:24}{cold:>12}{tc:>8}{r['per_item_ms']:>8.1f} ms{tm:>9}  {r['input']}"
        )
    return "\n".join(lines)
