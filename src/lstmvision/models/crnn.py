"""CRNN text-line recogniser: a CNN that keeps the width, a BiLSTM along the line, CTC scores.

``(B, 1, H, W)`` line images (ink bright, in [0, 1], height ``H = height``) -> ``(T, B, C)``
logits, ``T = ceil(W / reduction)`` time steps (one per column strip of ``reduction`` = 2 or 4
pixels, "many-to-many"), ``C = len(charset) + 1`` with the CTC blank at index 0. The CNN pools
height by 2 four times (to ``height / 16``) and width by 2 in the first one or two of them;
each column's features (channels x remaining rows) are one time step of a stacked bidirectional
:class:`lstmvision.nn.LSTM`, which sees the true lengths of a padded batch. The charset travels
with the model (``charset`` is a constructor argument, so ``model.json`` keeps it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lstmvision.models import register_model
from lstmvision.nn import LSTM


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


@register_model("crnn")
class CRNN(nn.Module):
    """Args:
    charset: the characters, in index order 1..n (0 is the blank).
    height: input height (a multiple of 16).
    channels: output channels of the four convolution blocks.
    reduction: image columns per time step, 2 or 4 (CTC needs at least one step per character,
    two between repeated ones: bronod at height 32 has ~7 px per character).
    hidden_size: LSTM units per direction; num_layers: stacked BiLSTM layers.
    dropout: before and between the LSTM layers and before the head.
    """

    def __init__(
        self,
        charset: str = "ab",
        height: int = 32,
        channels: tuple[int, ...] = (16, 32, 64, 96),
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.2,
        reduction: int = 4,
    ):
        super().__init__()
        if height % 16:
            raise ValueError(f"height must be a multiple of 16, got {height}")
        if len(channels) != 4:
            raise ValueError(f"channels must list 4 convolution widths, got {channels}")
        if reduction not in (2, 4):
            raise ValueError(f"reduction must be 2 or 4, got {reduction}")
        self.charset, self.height, self.reduction = charset, height, reduction
        c1, c2, c3, c4 = channels
        self.cnn = nn.Sequential(
            *_conv(1, c1),
            nn.MaxPool2d(2),  # (B, c1, H/2, W/2)
            *_conv(c1, c2),
            nn.MaxPool2d((2, reduction // 2)),  # (B, c2, H/4, W/r)
            *_conv(c2, c3),
            nn.MaxPool2d((2, 1)),  # (B, c3, H/8, W/r)
            *_conv(c3, c4),
            nn.MaxPool2d((2, 1)),  # (B, c4, H/16, W/r)
        )
        self.dropout = nn.Dropout(dropout)
        self.rnn = LSTM(
            c4 * (height // 16),
            hidden_size,
            num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=True,
        )
        self.head = nn.Linear(2 * hidden_size, len(charset) + 1)

    @property
    def num_classes(self) -> int:
        return len(self.charset) + 1

    def output_lengths(self, widths: Tensor) -> Tensor:
        """Time steps for images of these (unpadded) widths: ``ceil(W / reduction)``, at least 1."""
        return ((widths + self.reduction - 1) // self.reduction).clamp(min=1)

    def pad_width(self, images: Tensor) -> Tensor:
        """Zero-pad (blank paper) on the right to a multiple of the reduction (at least one
        step)."""
        width = images.size(-1)
        target = max(self.reduction, -(-width // self.reduction) * self.reduction)
        return nn.functional.pad(images, (0, target - width)) if target != width else images

    def forward_features(self, images: Tensor, widths: Tensor | None = None) -> Tensor:
        if images.size(-2) != self.height:
            raise ValueError(f"CRNN expects images of height {self.height}, got {images.size(-2)}")
        feats = self.cnn(self.pad_width(images))  # (B, c4, H/16, T)
        seq = feats.flatten(1, 2).permute(2, 0, 1)  # (T, B, c4*H/16): each column a time step
        lengths = None if widths is None else self.output_lengths(widths).clamp(max=seq.size(0))
        out, _ = self.rnn(
            self.dropout(seq), lengths=lengths
        )  # (T, B, 2*hidden), zero past each length
        return out

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(self.dropout(features))  # (T, B, C)

    def forward(self, images: Tensor, widths: Tensor | None = None) -> Tensor:
        """Logits ``(T, B, len(charset) + 1)``; ``widths``: true widths of a right-padded batch."""
        return self.forward_head(self.forward_features(images, widths))

    def reset_classifier(self, charset: str) -> None:
        """A new head for another charset (the rows of characters both share are kept)."""
        old, old_chars = self.head, self.charset
        self.head = nn.Linear(old.in_features, len(charset) + 1)
        with torch.no_grad():
            self.head.weight[0], self.head.bias[0] = old.weight[0], old.bias[0]  # the blank
            for i, c in enumerate(charset, 1):
                j = old_chars.find(c)
                if j >= 0:
                    self.head.weight[i], self.head.bias[i] = old.weight[j + 1], old.bias[j + 1]
        self.charset = charset
