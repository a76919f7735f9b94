"""Attention maps of a captioner: the photo, then one panel per generated word with the
attention weights over the encoder's grid, upsampled onto the photo."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lstmvision.files import atomic_path  # noqa: E402


def plot_attention(
    photo: torch.Tensor, words: list[str], alphas: torch.Tensor, path: str | Path, columns: int = 5
) -> Path:
    """``photo`` uint8 ``(3, S, S)``, ``alphas`` ``(len(words), L)`` with ``L`` a square grid ->
    PNG."""
    path = Path(path)
    grid = math.isqrt(alphas.shape[-1]) if len(alphas) else 1
    image = photo.permute(1, 2, 0).numpy()  # (S, S, 3)
    panels = len(words) + 1
    rows = math.ceil(panels / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(image)
    axes.flat[0].set_title("photo", fontsize=10)
    fig.suptitle(" ".join(words) or "(empty caption)", fontsize=11)
    for ax, word, alpha in zip(axes.flat[1:], words, alphas):
        heat = alpha.float().view(1, 1, grid, grid)
        heat = F.interpolate(heat, size=photo.shape[-2:], mode="bilinear", align_corners=False)[
            0, 0
        ]  # (S, S)
        ax.imshow(image)
        ax.imshow(heat.numpy(), cmap="jet", alpha=0.5)
        ax.set_title(word, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path
