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
