"""Text lines as training batches: augmentation, the in-memory data set, padding, width batches.

* :class:`LineAugment`: random distortions of one ink-bright ``(1, H, W)`` line (training only),
  torchvision transforms v2 plus :func:`elastic` and a stroke dilation/erosion.
* :class:`LineSet`: the line images of a split held in memory (uint8), with their CTC targets.
* :func:`collate_lines`: right-pads a batch to its widest line, keeps the true widths;
  :func:`batch_results`: the per-line results of a batch read by a model.
* :class:`WidthBatches` (training, reshuffled every epoch) and :func:`width_sorted_batches`
  (evaluation): batches of lines of similar width, so little padding is computed.
* :func:`line_loader`: a DataLoader of a :class:`LineSet` over those batches.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from lstmvision.data.lines import Charset, Line, line_result, load_line

# ------------------------------------------------------------------------------- augmentation


def elastic(x: torch.Tensor, pixels: float, sigma: float = 6.0) -> torch.Tensor:
    """Elastic distortion of ``(1, H, W)`` by a smooth random field of about ``pixels`` pixels
    (torchvision's ``ElasticTransform`` scales its field by the height for both axes, which on a
    line 20x wider than high moves columns 20x further than rows)."""
    from torchvision.transforms.v2 import functional as TF

    h, w = x.shape[-2:]
    k = 2 * int(2 * sigma) + 1
    noise = torch.rand(2, 1, h, w) * 2 - 1  # (2, 1, H, W): dx, dy
    field = TF.gaussian_blur(noise, [k, k], [sigma, sigma])  # (2, 1, H, W)
    field = field / field.std().clamp(min=1e-6) * pixels  # in pixels, about N(0, pixels)
    scale = torch.tensor([2.0 / max(w, 2), 2.0 / max(h, 2)]).view(2, 1, 1, 1)  # px -> grid units
    displacement = (field * scale).squeeze(1).permute(1, 2, 0).unsqueeze(0)  # (1, H, W, 2)
    return TF.elastic(x, displacement)


class LineAugment:
    """Random distortions of one ``(1, H, W)`` ink-bright line (training only), torchvision
    transforms v2: rotation/shear/scale/vertical shift, elastic field, brightness/contrast; and
    stroke dilation/erosion by a max-pool."""

    def __init__(self, strength: float = 1.0):
        from torchvision.transforms import v2

        s = self.strength = strength
        self.affine = v2.RandomAffine(
            degrees=1.0 * s,
            translate=(0.0, 0.04 * s),
            scale=(1 - 0.08 * s, 1 + 0.04 * s),
            shear=(-8 * s, 8 * s),
        )
        self.jitter = v2.ColorJitter(brightness=0.3 * s, contrast=0.4 * s)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if random.random() < 0.7:
            x = self.affine(x)
        if random.random() < 0.3:
            x = elastic(x, pixels=1.0 * self.strength)
        r = random.random()
        if r < 0.15:  # thicker strokes (dilation of bright ink)
            x = F.max_pool2d(x[None], (3, 3), 1, 1)[0]
        elif r < 0.3:  # thinner strokes (erosion)
            x = -F.max_pool2d(-x[None], (2, 2), 1, 1)[0, :, 1:, 1:]
        if random.random() < 0.5:
            x = self.jitter(x)
        return x.clamp_(0, 1)


# ------------------------------------------------------------------------------------ data set


class LineSet(Dataset):
    """Line images held in memory as uint8 ``(height, W)``; items ``(image (1, H, W), ids, text,
    name, unknown)``. ``ids`` drops characters outside the charset (counted in ``unknown``)."""

    def __init__(self, lines: list[Line], height: int, charset: Charset, augment=None):
        cache: dict = {}
        self.lines, self.augment = lines, augment
        self.images = [(load_line(ln, height, cache) * 255).round().to(torch.uint8) for ln in lines]
        self.widths = [im.size(1) for im in self.images]
        self.targets = [torch.tensor(charset.encode(ln.text), dtype=torch.long) for ln in lines]
        self.unknown = [charset.count_unknown(ln.text) for ln in lines]

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, i: int):
        x = self.images[i].float().div(255).unsqueeze(0)  # (1, H, W)
        if self.augment is not None:
            x = self.augment(x)
        return x, self.targets[i], self.lines[i].text, self.lines[i].name, self.unknown[i]


def collate_lines(items) -> dict:
    """Right-pad to the widest line: ``images (B, 1, H, W_max)``, true ``widths (B,)``, CTC
    ``targets`` (all labels concatenated) and ``target_lengths (B,)``."""
    images, targets, texts, names, unknown = zip(*items)
    widths = torch.tensor([im.size(-1) for im in images])
    batch = images[0].new_zeros(len(images), 1, images[0].size(1), int(widths.max()))
    for b, im in enumerate(images):
        batch[b, :, :, : im.size(-1)] = im
    return {
        "images": batch,
        "widths": widths,
        "targets": torch.cat(targets),
        "target_lengths": torch.tensor([len(t) for t in targets]),
        "texts": list(texts),
        "names": list(names),
        "unknown": torch.tensor(unknown),
    }


def batch_results(batch: dict, preds: list[str]) -> list[dict]:
    """The :func:`~lstmvision.data.lines.line_result` rows of a :func:`collate_lines` batch whose
    lines were read as ``preds``."""
    rows = zip(batch["names"], batch["texts"], preds, batch["unknown"].tolist())
    return [line_result(*row) for row in rows]


# ---------------------------------------------------------------------------- width batches


def shuffled_width_batches(
    widths: Sequence[int], batch_size: int, rng: random.Random, pool: int = 50
) -> list[list[int]]:
    """Batches of similar widths (less padding): shuffle, sort pools of ``pool`` batches by width,
    cut them into batches, shuffle the batches."""
    order = list(range(len(widths)))
    rng.shuffle(order)
    batches = []
    step = batch_size * pool
    for start in range(0, len(order), step):
        chunk = sorted(order[start : start + step], key=lambda i: widths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def width_sorted_batches(widths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches: all lines sorted by width, cut into ``batch_size`` (the order does not
    change the metrics, the padding it saves does the time)."""
    order = sorted(range(len(widths)), key=lambda i: widths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class WidthBatches(Sampler):
    """Reshuffled every epoch: batches of lines of similar width (less padding to compute)."""

    def __init__(self, widths: list[int], batch_size: int, seed: int):
        self.widths, self.batch_size, self.seed, self.epoch = widths, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Epoch ``epoch`` (0-based) comes next: its order is that of the ``epoch + 1``-th
        iteration."""
        self.epoch = epoch

    def __iter__(self):
        self.epoch += 1
        rng = random.Random(self.seed * 1000 + self.epoch)
        return iter(shuffled_width_batches(self.widths, self.batch_size, rng))

    def __len__(self) -> int:
        return -(-len(self.widths) // self.batch_size)


def line_loader(
    data: LineSet, batch_size: int, seed: int | None = None, num_workers: int = 0
) -> DataLoader:
    """Padded batches of ``data`` (:func:`collate_lines`): drawn by :class:`WidthBatches` with
    ``seed`` (training), else sorted by width (evaluation)."""
    batches = (
        WidthBatches(data.widths, batch_size, seed)
        if seed is not None
        else width_sorted_batches(data.widths, batch_size)
    )
    return DataLoader(
        data, batch_sampler=batches, collate_fn=collate_lines, num_workers=num_workers
    )
