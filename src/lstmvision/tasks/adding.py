"""Task ``adding``: the adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015), many-to-one.

Each input is ``seq_len`` steps of (value in [0, 1), marker); two steps are marked, one in each
half, and the target is the sum of their values. The network must carry the first marked value
across ~``seq_len / 2`` steps: a vanilla RNN's gradient vanishes over that distance (it stays at
the trivial MSE ~0.167 of always answering 1), an LSTM or GRU learns it. Data is generated with
fixed seeds: training, validation and test sets never share a sequence. Logs ``*_mse``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from lstmvision.data.text import adding_problem
from lstmvision.tasks.base import SplitSteps, Task, one_cycle, register_task
from lstmvision.tasks.config import TrainConfig

BASELINE_MSE = 1 / 6  # Var(U1 + U2): the MSE of always predicting the mean, 1


@dataclass
class AddingConfig(TrainConfig):
    dataset: Literal["adding"] = "adding"
    """generated data (the adding problem)"""
    seq_len: int = 100
    """sequence length T (the issue's benchmarks: 100 and 400)"""
    train_size: int = 20000
    """training sequences (generated)"""
    val_size: int = 2000
    """validation sequences (generated)"""
    test_size: int = 2000
    """test sequences (generated)"""
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    """recurrent cell"""
    hidden_size: int = 128
    """hidden units"""
    epochs: int = 10
    batch_size: int = 50
    lr: float = 2e-3
    grad_clip: float = 1.0
    """clip the gradient norm (0: off)"""


class AddingData(L.LightningDataModule):
    def __init__(self, cfg: AddingConfig):
        super().__init__()
        self.cfg = cfg
        self.sets: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        sizes = {
            "train": self.cfg.limit_train or self.cfg.train_size,
            "val": self.cfg.val_size,
            "test": self.cfg.test_size,
        }
        for k, (split, n) in enumerate(sizes.items()):
            data = adding_problem(
                n, self.cfg.seq_len, seed=self.cfg.seed * 10 + k + 1
            )  # a seed per split
            self.sets[split] = TensorDataset(data.x, data.y)

    def train_dataloader(self):
        return DataLoader(self.sets["train"], batch_size=self.cfg.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.sets["val"], batch_size=500)

    def test_dataloader(self):
        return DataLoader(self.sets["test"], batch_size=500)


class RegressionModule(SplitSteps, L.LightningModule):
    """Mean squared error; AdamW under a one-cycle schedule; logs ``{split}_loss`` and ``{split}_mse``."""

    def __init__(self, model, lr: float):
        super().__init__()
        self.model, self.lr = model, lr

    def _step(self, batch, split):
        x, y = batch
        loss = F.mse_loss(self.model(x), y)
        self.log(f"{split}_loss", loss, on_step=split == "train", on_epoch=True, prog_bar=True)
        if split != "train":
            self.log(f"{split}_mse", loss, on_epoch=True)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr)
        return one_cycle(self, opt)


@register_task("adding")
class AddingTask(Task):
    name = "adding"
    summary = (
        "the adding problem (T = 100/400): RNN vs LSTM vs GRU on a long dependency; many-to-one"
    )
    Config = AddingConfig

    def model_spec(self, cfg):
        return "adding-rnn", dict(cell=cfg.cell, hidden_size=cfg.hidden_size)

    def datamodule(self, cfg):
        return AddingData(cfg)

    def module(self, cfg, model):
        return RegressionModule(model, cfg.lr)
