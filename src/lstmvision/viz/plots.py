"""Plots written to PNG files. Each function returns the path it wrote."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lstmvision.files import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def read_metrics_csv(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Lightning CSVLogger's metrics.csv -> {metric: [(step, value), ...]} (empty cells skipped)."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = float(row.get("step") or 0)
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in ("", None):
                    series[key].append((step, float(value)))
    return dict(series)


def plot_training_curves(metrics_csvs: list[Path], out: Path, title: str = "") -> Path | None:
    """Loss (left) and every other metric (right) against optimizer steps, from the CSV logs of
    each (re)start of a run, in order (a resumed run continues the same curves)."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for path in metrics_csvs:
        for key, points in read_metrics_csv(path).items():
            series[key].extend(points)
    if not series:
        return None
    losses = {k: v for k, v in series.items() if "loss" in k and not k.startswith("test")}
    others = {
        k: v for k, v in series.items() if k not in losses and not k.startswith(("test", "lr"))
    }
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, group, label in ((axes[0], losses, "loss"), (axes[1], others, "metric")):
        for key, points in sorted(group.items()):
            steps, values = zip(*points)
            style = "-" if len(points) > 20 else "o-"
            ax.plot(
                steps,
                values,
                style,
                label=key,
                lw=1,
                ms=3,
                alpha=0.5 if key.endswith("_step") else 1,
            )
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if group:
            ax.legend(fontsize=8)
    if losses:
        axes[0].set_yscale("log")
    fig.suptitle(title or "training curves")
    return _save(fig, out)


def plot_confusion_matrix(cm: torch.Tensor, classes, out: Path, title: str = "") -> Path:
    cm = cm.float()
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    ax.imshow((cm / cm.sum(1, keepdim=True).clamp(min=1)).numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            value = int(cm[i, j])
            if value:
                dark = cm[i, j] > 0.5 * cm[i].sum()
                ax.text(
                    j,
                    i,
                    value,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if dark else "black",
                )
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = cm.diag().sum() / cm.sum().clamp(min=1)
    ax.set_title(f"{title} confusion matrix (accuracy {accuracy:.2%})")
    return _save(fig, out)


def plot_prediction_grid(
    images, labels, preds, confidences, classes, out: Path, title: str = "", count: int = 32
) -> Path:
    """``pred (conf)`` over ``true`` for the first ``count // 2`` images (a fair sample), then up
    to ``count // 2`` mistakes (what goes wrong), in red."""
    sample = torch.arange(min(count // 2, len(labels)))
    wrong = torch.nonzero(preds != labels).flatten()
    order = torch.cat([sample, wrong[~torch.isin(wrong, sample)][: count - len(sample)]])
    cols = 8
    rows = math.ceil(len(order) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.6))
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order.tolist()):
        img = images[i]
        ax.imshow(img[0] if img.shape[0] == 1 else img.permute(1, 2, 0), cmap="gray")
        ok = preds[i] == labels[i]
        ax.set_title(
            f"{classes[preds[i]]} ({confidences[i]:.0%})\ntrue {classes[labels[i]]}",
            fontsize=7,
            color="black" if ok else "red",
        )
    fig.suptitle(f"{title} test predictions: first {len(sample)} images, then mistakes (red)")
    return _save(fig, out)


def plot_series_panels(
    panels: dict[str, dict[str, list[tuple[float, float]]]],
    out: Path,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logx: bool = False,
) -> Path:
    """One panel per key of ``panels``; in each, one line per ``{label: [(x, y), ...]}``."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (name, lines) in zip(axes[0], panels.items()):
        for label, points in lines.items():
            xs, ys = zip(*sorted(points))
            ax.plot(xs, ys, "o-", label=label, lw=1.5, ms=4)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if logx:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, out)
