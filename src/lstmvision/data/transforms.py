"""Batch augmentations on image tensors (on the [0, 1] scale, background 0)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Translate each image of ``(B, C, H, W)`` by its own random offset in ``[-pad, pad]`` pixels
    on both axes, filling with 0 (the background of MNIST-like data)."""
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]  # (B, 1, 1, 1)
    chans = torch.arange(c, device=x.device)[None, :, None, None]  # (1, C, 1, 1)
    return padded[batch, chans, rows, cols]  # (B, C, H, W)


def resize_images(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` images to ``size x size`` (bilinear, antialiased); ``None``:
    unchanged."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(
        x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    ).clamp_(0, 1)
