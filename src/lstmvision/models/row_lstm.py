"""Row LSTM image classifier: an image read row by row, a linear head on the final state."""

from __future__ import annotations

import torch
from torch import nn

from lstmvision.models import register_model
from lstmvision.nn.row import RowLSTM


@register_model("row-lstm")
class RowLSTMClassifier(nn.Module):
    """``(B, C, H, W)`` images in [0, 1] -> ``(B, num_classes)`` logits ("many-to-one").

    The model normalises its input itself (``(x - mean) / std``, stored as buffers), so a saved
    model needs nothing but images on the [0, 1] scale. Reader arguments: see
    :class:`lstmvision.nn.row.RowLSTM`.
    """

    def __init__(
        self,
        num_classes: int = 10,
        image_size: int = 28,
        channels: int = 1,
        mean: float = 0.0,
        std: float = 1.0,
        head_dropout: float = 0.0,
        **reader,
    ):
        super().__init__()
        self.reader = RowLSTM(image_size, image_size, channels, **reader)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.dropout = nn.Dropout(head_dropout)
        self.head = nn.Linear(self.reader.feature_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.reader((x - self.mean) / self.std)  # (B, feature_dim)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))  # (B, num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.reader.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def prefix_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, T, num_classes)``: row ``t`` holds the logits the head gives
        had the reader stopped after its first ``t + 1`` steps (rows, for ``reading="rows"``):
        the many-to-one answer forming as the rows arrive. One-directional: the head on the
        hidden state after each step; bidirectional: the backward pass starts at step ``t`` too.
        The last row equals ``forward(x)``. A single reader only (not ``rows+columns``)."""
        if len(self.reader.readers) != 1:
            raise ValueError(f"prefix_logits reads one sequence, not {self.reader.reading!r}")
        (seq,) = self.reader.sequences((x - self.mean) / self.std)  # (B, T, step size)
        b, t, _ = seq.shape
        prefixes = seq.repeat_interleave(t, dim=0)  # (B*T, T, step size): each image T times
        lengths = torch.arange(1, t + 1).repeat(b)  # (B*T,): 1..T for each image
        layer = self.reader.readers[0]
        _, state = layer(prefixes, lengths=lengths)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers*dirs, B*T, H)
        last = torch.cat([h_n[-2], h_n[-1]], dim=1) if layer.bidirectional else h_n[-1]
        return self.forward_head(last).view(b, t, -1)  # (B, T, num_classes)
