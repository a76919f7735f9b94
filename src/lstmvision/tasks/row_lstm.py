"""Task ``row-lstm``: classify MNIST / Fashion-MNIST / USPS images read row by row by an RNN.

The defaults are the recipe behind README's results: a bidirectional LSTM (hidden 128) over the 28
rows, AdamW at a one-cycle peak of 3e-3, 20 epochs of batch 128 with random shifts of up to 2 pixels,
10 % of the training split held out for choosing the best epoch, the official test split for the reported accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import torch

from lstmvision.data import dataset_info, load_grey_image, load_split, resolve_data_root
from lstmvision.data.transforms import random_shift
from lstmvision.tasks.base import Task, register_task
from lstmvision.tasks.classification import ClassifierModule, TensorImageData, classification_pictures
from lstmvision.tasks.config import TrainConfig


@dataclass
class RowLSTMConfig(TrainConfig):
    dataset: Literal["mnist", "fashion-mnist", "usps"] = "mnist"
    """data set: mnist, fashion-mnist or usps"""
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
    implementation: Literal["auto", "equations", "fused"] = "auto"
    """recurrent kernel: auto (fused when possible), equations (ours), fused (torch)"""
    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    """AdamW weight decay"""
    grad_clip: float = 1.0
    """clip the gradient norm (0: off)"""
    shift: int = 2
    """training augmentation: random translation of up to this many pixels (0: off)"""


@register_task("row-lstm")
class RowLSTMTask(Task):
    name = "row-lstm"
    summary = "Row LSTM image classifier (MNIST, Fashion-MNIST, USPS); many-to-one"
    Config = RowLSTMConfig
    monitor, monitor_mode = "val_accuracy", "max"

    def model_spec(self, cfg: RowLSTMConfig):
        info = dataset_info(cfg.dataset)
        return "row-lstm", dict(
            num_classes=len(info.classes), image_size=info.size, channels=1, mean=info.mean, std=info.std,
            head_dropout=cfg.head_dropout, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
            cell=cfg.cell, bidirectional=cfg.bidirectional, reading=cfg.reading, dropout=cfg.dropout,
            implementation=cfg.implementation, permutation_seed=0,
        )  # fmt: skip

    def datamodule(self, cfg: RowLSTMConfig) -> TensorImageData:
        load = partial(load_split, cfg.dataset, resolve_data_root(cfg.data_root), download=cfg.download)
        return TensorImageData(load, cfg.batch_size, cfg.val_fraction,
                               cfg.limit_train, cfg.num_workers)  # fmt: skip

    def module(self, cfg: RowLSTMConfig, model) -> ClassifierModule:
        augment = partial(random_shift, pad=cfg.shift) if cfg.shift else None
        return ClassifierModule(model, len(dataset_info(cfg.dataset).classes), cfg.lr, cfg.weight_decay, augment)

    def pictures(self, cfg, model, datamodule, run_dir: Path):
        info = dataset_info(cfg.dataset)
        return classification_pictures(model, datamodule.test_dataloader(), info.classes, run_dir,
                                       title=f"{self.name} {cfg.dataset}")  # fmt: skip

    @torch.no_grad()
    def predict(self, cfg, model, inputs):
        info = dataset_info(cfg.dataset)
        images = torch.stack([load_grey_image(p, info.size, info.frame) for p in inputs])  # (N, H, W)
        probs = model.eval()(images.unsqueeze(1)).softmax(-1)  # (N, classes)
        results = []
        for path, p in zip(inputs, probs):
            top = int(p.argmax())
            results.append({"image": str(path), "label": info.classes[top], "class_index": top,
                            "confidence": round(float(p[top]), 4),
                            "probabilities": {c: round(float(q), 4) for c, q in zip(info.classes, p)}})  # fmt: skip
        return results

    def format_prediction(self, prediction: dict) -> str:
        return f"{prediction['image']}: {prediction['label']} ({prediction['confidence']:.1%})"
