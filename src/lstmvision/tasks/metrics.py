"""Metrics that a task's LightningModule logs, built from torchmetrics (no task code)."""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric
from torchmetrics.image import StructuralSimilarityIndexMeasure

PSNR_CAP = 100.0
"""dB: the PSNR of a frame predicted exactly (copy-last on a still frame) instead of infinity"""


class FrameMetrics(torch.nn.Module):
    """Predicted frames against the true ones, pixels in [0, 1]: OpenSTL's per-frame MSE and MAE
    (sums over the pixels of a frame, averaged over frames and sequences), torchmetrics' SSIM, and
    the PSNR per frame, ``-10 log10(mean squared error)``, averaged, capped at ``PSNR_CAP`` dB."""

    def __init__(self):
        super().__init__()
        self.mse, self.mae = MeanMetric(), MeanMetric()
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self.psnr = MeanMetric()

    def update(self, pred: torch.Tensor, truth: torch.Tensor) -> None:
        diff = pred - truth  # (B, T, C, H, W)
        self.mse.update(diff.square().sum((2, 3, 4)))  # (B, T): one value per frame
        self.mae.update(diff.abs().sum((2, 3, 4)))
        self.ssim.update(pred.flatten(0, 1), truth.flatten(0, 1))  # (B*T, C, H, W)
        frame_mse = diff.square().mean((2, 3, 4)).clamp(min=10 ** (-PSNR_CAP / 10))  # (B, T)
        self.psnr.update(-10 * torch.log10(frame_mse))  # data range 1

    def items(self):
        return (("mse", self.mse), ("mae", self.mae), ("ssim", self.ssim), ("psnr", self.psnr))


def cider_d(hypotheses: list[str], references: list[list[str]]) -> float:
    """Corpus CIDEr-D (pycocoevalcap) of tokenised, space-joined captions."""
    from pycocoevalcap.cider.cider import Cider

    if not hypotheses:
        return 0.0
    gts = {i: refs for i, refs in enumerate(references)}
    res = {i: [h] for i, h in enumerate(hypotheses)}
    score, _ = Cider().compute_score(gts, res)
    return float(score)


def bleu_metrics() -> torch.nn.ModuleList:
    """torchmetrics' corpus ``BLEUScore`` for n = 1..4, unsmoothed."""
    from torchmetrics.text import BLEUScore

    return torch.nn.ModuleList([BLEUScore(n_gram=n, smooth=False) for n in range(1, 5)])
