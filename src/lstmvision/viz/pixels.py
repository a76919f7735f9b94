"""Pictures of a generative model of binary images: samples, completions, a per-pixel NLL map,
and the PNG files ``predict`` writes. Each function returns the path it wrote."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from lstmvision.files import atomic_path  # noqa: E402
from lstmvision.viz.plots import _save  # noqa: E402

GAP = 0.5  # the grey of the lines between images in a grid


def image_grid(images: torch.Tensor, columns: int, gap: int = 1) -> np.ndarray:
    """``(N, 1, H, W)`` images in [0, 1] -> one ``(rows*(H+gap)-gap, columns*(W+gap)-gap)``
    array, row by row, grey lines between them (and grey where the last row ends early)."""
    n, _, height, width = images.shape
    rows = -(-n // columns)
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), GAP)
    for k, image in enumerate(images[:, 0].detach().cpu().float().numpy()):
        top, left = (height + gap) * (k // columns), (width + gap) * (k % columns)
        grid[top : top + height, left : left + width] = image
    return grid


def save_png(image: np.ndarray | torch.Tensor, path: Path) -> Path:
    """An ``(H, W)`` array in [0, 1] as an 8-bit grey PNG (1 = white)."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8)).save(tmp)
    return path


def plot_samples(samples: torch.Tensor, path: Path, title: str = "") -> Path:
    """A square-ish grid of ``(N, 1, H, W)`` samples."""
    columns = int(np.ceil(np.sqrt(len(samples))))
    fig, ax = plt.subplots(figsize=(0.55 * columns + 0.6, 0.55 * columns + 0.8))
    ax.imshow(image_grid(samples, columns), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title or f"{len(samples)} samples", fontsize=9)
    return _save(fig, path)


def plot_completions(
    originals: torch.Tensor, completions: torch.Tensor, keep_rows: int, path: Path, title: str = ""
) -> Path:
    """One row per digit: the original ``(N, 1, H, W)``, what the model was given (rows below
    ``keep_rows`` grey), then its completions ``(N, K, 1, H, W)``; a red line at ``keep_rows``."""
    n, k = completions.shape[:2]
    given = originals.clone()
    given[:, :, keep_rows:] = GAP
    rows = torch.cat([originals[:, None], given[:, None], completions], dim=1)  # (N, K+2, ...)
    height, width = originals.shape[-2:]
    grid = image_grid(rows.flatten(0, 1), k + 2)
    fig, ax = plt.subplots(figsize=(0.6 * (k + 2) + 0.6, 0.6 * n + 0.8))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for r in range(n):
        y = r * (height + 1) + keep_rows - 0.5
        ax.plot([-0.5, grid.shape[1] - 0.5], [y, y], color="red", linewidth=0.6)
    ax.set_xticks([width / 2, width + 1 + width / 2, (width + 1) * (2 + (k - 1) / 2) + width / 2])
    ax.set_xticklabels(["original", "given", f"{k} completions"], fontsize=8)
    ax.set_yticks([])
    ax.set_title(title or f"bottom {height - keep_rows} rows completed", fontsize=9)
    return _save(fig, path)


def plot_nll_heatmap(
    pixel_nll: torch.Tensor, images: torch.Tensor, path: Path, title: str = "", examples: int = 4
) -> Path:
    """Where the model is unsure: the mean per-pixel NLL ``(N, H, W)`` (nats) over ``N``
    images, then ``examples`` of the images ``(N, 1, H, W)`` beside their own NLL maps."""
    nll = pixel_nll.detach().cpu().float()
    examples = min(examples, len(nll))
    fig, axes = plt.subplots(2, 1 + examples, figsize=(2.0 * (1 + examples), 4.2))
    mean = axes[0, 0].imshow(nll.mean(0).numpy(), cmap="magma", interpolation="nearest")
    fig.colorbar(mean, ax=axes[0, 0], fraction=0.046).ax.tick_params(labelsize=7)
    axes[0, 0].set_title(
        f"mean over {len(nll)}\n{nll.sum((1, 2)).mean():.1f} nats/image", fontsize=8
    )
    axes[1, 0].imshow(images[:, 0].float().mean(0).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    axes[1, 0].set_title("mean image", fontsize=8)
    top = float(nll[:examples].max()) if examples else 1.0
    for k in range(examples):
        axes[0, k + 1].imshow(nll[k].numpy(), cmap="magma", vmin=0, vmax=top)
        axes[0, k + 1].set_title(f"{nll[k].sum():.1f} nats", fontsize=8)
        axes[1, k + 1].imshow(images[k, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(title or "per-pixel negative log-likelihood (nats)", fontsize=9)
    return _save(fig, path)
