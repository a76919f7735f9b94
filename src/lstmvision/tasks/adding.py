"""Task ``adding``: the adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015), many-to-one.

Each input is ``seq_len`` steps of (value in [0, 1), marker); two steps are marked, one in each
half, and the target is the sum of their values. The network must carry the first marked value
across ~``seq_len / 2`` steps: a vanilla RNN's gradient vanishes over that distance (it stays at
the trivial MSE ~0.167 of always answering 1), an LSTM or GRU learns it. Data is generated with
fixed seeds: training, validation and test sets never share a sequence. Logs ``*_mse``.

``lstmvision predict RUN seq.csv``: a sequence as a text file, one step per line, ``value,marker``
(marker 1 on the two steps to add, else 0); it prints the predicted sum beside the true one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from lstmvision.data.text import adding_problem
from lstmvision.errors import DataError
from lstmvision.files import write_text
from lstmvision.tasks.base import SplitSteps, Task, register_task
from lstmvision.tasks.config import TrainConfig
from lstmvision.tasks.schedule import one_cycle

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
    """Mean squared error; AdamW under a one-cycle schedule; logs ``*_loss`` and ``*_mse``."""

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


def write_sequence(path: Path, x: torch.Tensor) -> Path:
    """One sequence ``(T, 2)`` as predict reads it: a ``value,marker`` line per step."""
    return write_text(path, "".join(f"{v:.6f},{m:g}\n" for v, m in x.tolist()))


def read_sequence(path: Path) -> torch.Tensor:
    """The ``(T, 2)`` sequence in a file of ``value,marker`` lines (see the module docstring)."""
    try:
        lines = [ln for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
        x = torch.tensor([[float(v) for v in line.split(",")] for line in lines])  # (T, 2)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: not a sequence of value,marker lines ({e})") from None
    if x.dim() != 2 or x.shape[1] != 2 or len(x) < 2:
        raise DataError(f"{path}: need at least 2 lines of value,marker")
    return x


@register_task("adding")
class AddingTask(Task):
    name = "adding"
    summary = (
        "the adding problem (T = 100/400): RNN vs LSTM vs GRU on a long dependency; many-to-one"
    )
    Config = AddingConfig
    smoke_overrides = {
        "seq_len": 20,
        "train_size": 64,
        "val_size": 64,
        "test_size": 64,
        "hidden_size": 8,
        "batch_size": 32,
        "max_steps": 2,
    }

    def model_spec(self, cfg):
        return "adding-rnn", dict(cell=cfg.cell, hidden_size=cfg.hidden_size)

    def datamodule(self, cfg):
        return AddingData(cfg)

    def module(self, cfg, model):
        return RegressionModule(model, cfg.lr)

    @torch.no_grad()
    def predict(self, cfg, model, inputs, **options):
        results = []
        for path in inputs:
            x = read_sequence(path)  # (T, 2)
            predicted = float(model.eval()(x[None])[0])
            results.append(
                {
                    "image": str(path),
                    "steps": len(x),
                    "sum": round(predicted, 4),
                    "marked_sum": round(float(x[x[:, 1] > 0.5, 0].sum()), 4),
                }
            )
        return results

    def format_prediction(self, prediction: dict) -> str:
        return (
            f"{prediction['image']}: {prediction['sum']:.4f} "
            f"(the marked values add up to {prediction['marked_sum']:.4f})"
        )

    def smoke_inputs(self, cfg, folder: Path) -> list[Path]:
        x = adding_problem(2, cfg.seq_len, seed=12345).x  # (2, T, 2), a seed of their own
        return [write_sequence(Path(folder) / f"sequence-{i}.csv", seq) for i, seq in enumerate(x)]
