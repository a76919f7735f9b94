"""Pictures of a text-line recogniser: the CTC alignment of a line (which frame emitted which
character, and the per-frame probabilities behind it); ``lstmvision.inference.textline`` draws
it for the line images it transcribes (``out``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from lstmvision.files import atomic_path  # noqa: E402
from lstmvision.nn.ctc import decode_batch, greedy_decode  # noqa: E402


def plot_alignment(
    image: torch.Tensor, log_probs: torch.Tensor, charset: str, out: Path, title: str = ""
) -> Path:
    """The CTC alignment of one line: the image with each emitted character written above the
    column strip (``reduction`` pixels per frame) that emitted it, and below it the per-frame
    probabilities of the blank and of the characters the line's decoding uses."""
    ((labels, frames),) = greedy_decode(log_probs)
    probs = log_probs.exp().T.cpu().numpy()  # (C, T)
    rows = [0] + sorted(set(labels))
    names = ["blank"] + [{" ": "space"}.get(charset[i - 1], charset[i - 1]) for i in rows[1:]]
    height, width = image.shape[-2:]
    reduction = -(-width // max(1, probs.shape[1]))  # image columns per time step
    fig, (top, bottom) = plt.subplots(
        2,
        1,
        figsize=(min(40, max(6, width / 60)), 2 + 0.18 * len(rows)),
        gridspec_kw={"height_ratios": [1.3, max(1, 0.2 * len(rows))]},
    )
    top.imshow(
        1 - image.reshape(height, width).cpu().numpy(), cmap="gray", aspect="auto", vmin=0, vmax=1
    )
    for label, t in zip(labels, frames):
        x = reduction * (t + 0.5)
        top.axvline(x, color="tab:red", lw=0.5, alpha=0.6)
        top.text(x, -2, charset[label - 1], ha="center", va="bottom", fontsize=7, color="tab:red")
    top.set_xlim(0, width), top.set_yticks([]), top.set_title(title, fontsize=8, pad=12)
    bottom.imshow(
        probs[rows],
        aspect="auto",
        cmap="viridis",
        interpolation="nearest",
        extent=(0, probs.shape[1] * reduction, len(rows) - 0.5, -0.5),
        vmin=0,
        vmax=1,
    )
    bottom.set_yticks(range(len(rows)), names, fontsize=6)
    bottom.set_xlim(0, width), bottom.set_xlabel(f"image column ({reduction} per time step)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out


@torch.no_grad()
def plot_alignments(model: nn.Module, lines, folder: Path, count: int = 3) -> list[Path]:
    """``alignment_0.png`` ... of ``count`` lines spread over ``lines`` (a
    :class:`~lstmvision.data.line_batches.LineSet`), each decoded alone by ``model``."""
    paths = []
    for k, i in enumerate(range(0, len(lines), max(1, len(lines) // count))[:count]):
        image = lines[i][0]  # (1, H, W)
        _, (lp,) = decode_batch(model, image[None])
        line = lines.lines[i]
        title = f"{line.name}: {line.text}"
        paths.append(
            plot_alignment(image, lp, model.charset, Path(folder) / f"alignment_{k}.png", title)
        )
    return paths
