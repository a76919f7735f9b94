"""Task ``row-lstm``: classify MNIST / Fashion-MNIST / USPS images read row by row by an RNN.

The defaults are the recipe behind README's results: a bidirectional LSTM (hidden 128) over the 28
rows, AdamW at a one-cycle peak of 3e-3, 20 epochs of batch 128 with random shifts of up to 2
pixels, 10 % of the training split held out for choosing the best epoch, the official test split
for the reported accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lstmvision.data import dataset_info
from lstmvision.nn.recurrent import IMPLEMENTATIONS
from lstmvision.tasks.base import register_task
from lstmvision.tasks.classification import ImageClassificationConfig, ImageClassificationTask


@dataclass
class RowLSTMConfig(ImageClassificationConfig):
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    """recurrent cell"""
    reading: Literal["rows", "columns", "rows+columns", "pixels", "permuted-pixels"] = "rows"
    """how the image becomes a sequence (pixels = 784-step sequential MNIST)"""
    hidden_size: int = 128
    """hidden units per direction"""
    num_layers: int = 1
    """stacked recurrent layers"""
    bidirectional: bool = True
    """also read the sequence backwards"""
    dropout: float = 0.0
    """dropout between stacked layers"""
    head_dropout: float = 0.0
    """dropout before the linear head"""
    forget_bias: float = 0.0
    """lstm: initial forget-gate bias (0: torch's init; 1 helps long readings such as pixels)"""
    chrono: bool = False
    """lstm: chrono initialisation of the gate biases (memory spans up to the sequence length)"""
    implementation: Literal[IMPLEMENTATIONS] = "auto"
    """recurrent kernel: auto (fast where it runs, else fused; docs/bench.md), equations (ours,
    step by step), fast (ours, in C++), fused (torch's)"""
    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3
    grad_clip: float = 1.0
    shift: int = 2


@register_task("row-lstm")
class RowLSTMTask(ImageClassificationTask):
    name = "row-lstm"
    summary = "Row LSTM image classifier (MNIST, Fashion-MNIST, USPS); many-to-one"
    Config = RowLSTMConfig
    smoke_overrides = {"limit_train": 64, "batch_size": 32, "max_steps": 2, "hidden_size": 8}

    def model_spec(self, cfg: RowLSTMConfig):
        info = dataset_info(cfg.dataset)
        return "row-lstm", dict(
            num_classes=len(info.classes),
            image_size=cfg.image_size or info.size,
            channels=1,
            mean=info.mean,
            std=info.std,
            head_dropout=cfg.head_dropout,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            cell=cfg.cell,
            bidirectional=cfg.bidirectional,
            reading=cfg.reading,
            dropout=cfg.dropout,
            implementation=cfg.implementation,
            permutation_seed=0,
            forget_bias=cfg.forget_bias,
            chrono=cfg.chrono,
        )
