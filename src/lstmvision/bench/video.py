"""Video decoding throughput: frames per second that PyAV decodes from a file (default: the shared
``video/vtest.avi``, 795 frames of 768x576 MPEG-4), at full size as RGB, and resized to grey
64x48 (what ``next-frame`` reads). Each figure is the median of ``repeats`` whole-file passes.

Also the seconds of one training step of the Moving MNIST recipe's ConvLSTM forecaster (batch 16 of
20 random 64x64 frames: rollout, mean squared error, backward, Adam) in float32 and, where the CPU
computes bfloat16 natively, bf16-mixed (autocast, as Lightning's): the median of ``repeats`` steps
after 2 warm-up steps. Training time on another CPU scales with it.
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


def train_step_seconds(
    bf16: bool, repeats: int, batch: int = 16, model: dict | None = None
) -> float:
    """Seconds of one training step of the Moving MNIST recipe's model on ``batch`` sequences;
    ``model``: next-frame settings that replace the recipe's (``patch``, ``hidden_sizes``, ...)."""
    import torch

    from lstmvision.data.video import parse_size
    from lstmvision.tasks import get_task
    from lstmvision.tasks.budget import step_seconds
    from lstmvision.tasks.config import resolve_config

    task = get_task("next-frame")()
    # the recipe's model, as `train next-frame --dataset moving-mnist` builds it
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", **(model or {})})
    task.resolve(cfg)
    net = task.build_model(cfg)
    frames = torch.rand(batch, cfg.input_frames + cfg.output_frames, 1, *parse_size(cfg.frame_size))
    return step_seconds(
        net, frames, cfg.input_frames, "bf16-mixed" if bf16 else "32-true", repeats=repeats
    )


def run(path: str | Path | None = None, repeats: int = 3, model: dict | None = None) -> dict:
    import torch

    from lstmvision.tasks.budget import native_bf16

    path = Path(path) if path else resolve_data_root() / "video" / "vtest.avi"
    info = probe(path)
    rows = []
    for label, size, grey in CASES:
        fps, count = frames_per_second(path, size, grey, repeats)
        rows.append({"decode": label, "frames": count, "frames_per_s": round(fps, 1)})
    steps = {"32-true": round(train_step_seconds(False, repeats, model=model), 3)}
    if native_bf16("cpu"):
        steps["bf16-mixed"] = round(train_step_seconds(True, repeats, model=model), 3)
    return {
        "file": str(path),
        "width": info.width,
        "height": info.height,
        "header_frames": info.header_frames,
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "rows": rows,
        "model": model or {},
        "moving_mnist_train_step_s": steps,
    }


def format_report(report: dict) -> str:
    lines = [
        f"{report['file']}: {report['width']}x{report['height']}, "
        f"header {report['header_frames']} frames; "
        f"{report['cpus']} CPU(s), median of {report['repeats']}",
        f"{'decode':16} {'frames':>7} {'frames/s':>10}",
    ]
    lines += [
        f"{r['decode']:16} {r['frames']:>7} {r['frames_per_s']:>10.1f}" for r in report["rows"]
    ]
    steps = ", ".join(f"{p} {s:.3f} s" for p, s in report["moving_mnist_train_step_s"].items())
    changed = ", ".join(f"{k} {v}" for k, v in report.get("model", {}).items())
    which = f"recipe with {changed}" if changed else "recipe"
    step = f"one training step of batch 16 ({report['threads']} threads)"
    lines.append(f"Moving MNIST {which}, {step}: {steps}")
    return "\n".join(lines)
