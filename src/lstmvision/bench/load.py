"""Cold start and per-item latency of the shipped models (``lstmvision bench load``).

Cold start: the wall time of a fresh ``python -c "import lstmvision;
lstmvision.load(NAME).predict(x)"`` (interpreter start, imports, reading the weights, one
prediction), median of ``cold`` runs. Per item: in one process, after one warm-up call, the
median time of ``predict`` on one input (the task's usual options: greedy for text lines, beam 3
for captions). Inputs are real items of the shared data when it is present (an MNIST test digit,
a Moving MNIST sequence of test digits, the bronod or UW3 test line of median width for a
handwriting or print model, a Flickr8k photo, the UCF101 sample clip), else arrays of the same
size.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lstmvision.console import say
from lstmvision.data import resolve_data_root

# the targets on 2 cores: (cold start s, per item ms)
TARGETS = {"row-lstm": (3.0, 5.0), "textline": (None, 20.0), "caption": (6.0, 100.0)}
OPTIONS = {"caption": {"beam": 3}, "textline": {"beam": 1}}


def _mnist_test_digits(root: Path) -> np.ndarray:
    """MNIST's test digits ``(N, 28, 28)`` uint8, or one blank digit where the data is absent."""
    from lstmvision.data import load_split

    try:
        return load_split("mnist", root, "test")[0].numpy()
    except Exception:
        return np.zeros((1, 28, 28), dtype=np.uint8)


def example_input(task: str, data_root=None, dataset: str | None = None):
    """A real input of ``task``'s kind (and of its training ``dataset``'s kind, where that
    matters: printed or handwritten lines) from the shared data if present, else an array."""
    root = resolve_data_root(data_root)
    if task in ("row-lstm", "cnn"):
        return _mnist_test_digits(root)[0]  # uint8 (28, 28)
    if task == "next-frame":  # one Moving MNIST sequence, 20 frames of 64x64 (two test digits)
        from lstmvision.data.moving_mnist import moving_mnist

        return moving_mnist(_mnist_test_digits(root), 1, seed=0)[0]
    if task == "textline":  # the line of median width of the model's own kind of lines
        from PIL import Image

        if dataset == "uw3":
            images = sorted((root / "lines-uw3" / "test").glob("*.bin.png"))
        else:
            from lstmvision.data.lines import read_labels_tsv

            labels = root / "lines-bronod" / "labels.tsv"
            lines = read_labels_tsv(labels) if labels.is_file() else []
            images = [ln.image for ln in lines if ln.box is None][:400]
        if images:
            widths = sorted((Image.open(image).size[0], str(image)) for image in images)
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


def run(
    names: list[str] | None = None,
    repeats: int = 20,
    cold: int = 3,
    data_root=None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Time each of ``names`` (default: every shipped model); ``log`` gets one line per model as
    it ends (default: stderr)."""
    import torch

    import lstmvision
    from lstmvision.pretrained import names as shipped

    log = log or say
    rows, names = [], names or shipped()
    for k, name in enumerate(names, 1):
        model = lstmvision.load(name)
        item = example_input(model.task, data_root, model.config.get("dataset"))
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
        cold_s = rows[-1]["cold_start_s"]
        log(
            f"bench load {k}/{len(names)}: {name} {rows[-1]['per_item_ms']:.1f} ms an item"
            + (f", cold start {cold_s:.2f} s" if cold_s is not None else "")
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
