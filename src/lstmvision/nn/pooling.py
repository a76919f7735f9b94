"""Pooling layers: max and average pooling (torch's own), sum pooling, and LeNet-5's trainable
subsampling.

* :class:`MaxPool2d`, :class:`AvgPool2d`: ``torch.nn``'s layers, re-exported.
* :class:`SumPool2d`: the sum over each window, ``avg_pool(x) * kh * kw``.
* :class:`TrainableSubsampling`: ``a_c * sum_window(x) + b_c``, one coefficient and one bias per
  map (LeCun et al. 1998, layers S2 and S4 of LeNet-5, before their squashing function).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import AvgPool2d, MaxPool2d


class SumPool2d(nn.AvgPool2d):
    """Sum over each ``kernel_size`` window: ``y = sum_{window} x = avg_pool(x) * window area``.

    Average pooling with the divisor fixed at 1 (``divisor_override=1``); ``stride`` defaults to
    ``kernel_size`` (non-overlapping windows), as in torch's pooling layers.
    """

    def __init__(
        self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None
    ):
        super().__init__(kernel_size, stride, divisor_override=1)


class TrainableSubsampling(nn.Module):
    """LeNet-5's subsampling: ``y_c = a_c * sum_{k x k window} x_c + b_c`` for each map ``c``.

    Non-overlapping ``kernel_size`` windows (stride = kernel size), so ``(B, C, H, W)`` becomes
    ``(B, C, H // k, W // k)``. Two trainable parameters per map: the coefficient ``weight`` (``a``,
    initialised to ``1 / k^2``, so the layer starts as average pooling) and ``bias`` (``b``, zero).
    No activation: LeNet-5 applies its sigmoid after this layer (see ``models.cnn.LeNet5``).
    """

    def __init__(self, channels: int, kernel_size: int = 2):
        super().__init__()
        self.sum = SumPool2d(kernel_size)
        self.weight = nn.Parameter(torch.full((channels,), 1.0 / kernel_size**2))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H/k, W/k) * (C, 1, 1) + (C, 1, 1)
        return self.sum(x) * self.weight[:, None, None] + self.bias[:, None, None]


__all__ = ["AvgPool2d", "MaxPool2d", "SumPool2d", "TrainableSubsampling"]
