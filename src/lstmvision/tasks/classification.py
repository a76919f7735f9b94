"""Shared pieces for image-classification tasks: tensor data module, Lightning module, pictures."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix


class TensorImageData(L.LightningDataModule):
    """Whole-tensor image data (uint8 ``(N, H, W)`` or ``(N, C, H, W)``), served as floats in [0, 1].

    ``load(split)`` returns ``(images, labels)`` for ``"train"`` or ``"test"``; validation is a fixed
    ``val_fraction`` of the training split (never the test split).
    """

    def __init__(self, load, batch_size: int, val_fraction: float, limit_train: int | None = None,
                 num_workers: int = 0):  # fmt: skip
        super().__init__()
        self.load, self.batch_size, self.num_workers = load, batch_size, num_workers
        self.val_fraction, self.limit_train = val_fraction, limit_train
        self.sets: dict[str, TensorDataset] = {}

    @staticmethod
    def _dataset(images: torch.Tensor, labels: torch.Tensor) -> TensorDataset:
        if images.dim() == 3:
            images = images.unsqueeze(1)  # (N, 1, H, W)
        return TensorDataset(images.float().div_(255), labels)

    def setup(self, stage: str | None = None) -> None:
        from lstmvision.data import train_val_indices

        if stage in (None, "fit", "validate") and "train" not in self.sets:
            images, labels = self.load("train")
            train_idx, val_idx = train_val_indices(len(images), self.val_fraction)
            if self.limit_train:
                train_idx = train_idx[: self.limit_train]
            self.sets["train"] = self._dataset(images[train_idx], labels[train_idx])
            self.sets["val"] = self._dataset(images[val_idx], labels[val_idx])
        if stage in (None, "test") and "test" not in self.sets:
            self.sets["test"] = self._dataset(*self.load("test"))

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.sets[split], batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class ClassifierModule(L.LightningModule):
    """Cross-entropy training of any ``(B, ...) -> (B, num_classes)`` model.

    Adam (or AdamW with ``weight_decay``) under a one-cycle learning-rate schedule over the whole
    run; logs ``{train,val,test}_loss`` and ``{train,val,test}_accuracy``.
    """

    def __init__(self, model: nn.Module, num_classes: int, lr: float, weight_decay: float = 0.0,
                 augment=None):  # fmt: skip
        super().__init__()
        self.model, self.lr, self.weight_decay, self.augment = model, lr, weight_decay, augment
        self.acc = nn.ModuleDict({f"{s}_acc": MulticlassAccuracy(num_classes, average="micro") for s in ("train", "val", "test")})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        if split == "train" and self.augment is not None:
            x = self.augment(x)
        logits = self.model(x)  # (B, num_classes)
        loss = F.cross_entropy(logits, y)
        self.acc[f"{split}_acc"](logits, y)
        on_step = split == "train"
        self.log(f"{split}_loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=not on_step)
        self.log(f"{split}_accuracy", self.acc[f"{split}_acc"], on_step=False, on_epoch=True, prog_bar=split != "train")
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def predict_all(model: nn.Module, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, labels and predicted probabilities over a whole loader, in eval mode."""
    was_training = model.training
    model.eval()
    xs, ys, ps = [], [], []
    for x, y in loader:
        xs.append(x), ys.append(y), ps.append(model(x).softmax(-1))
    model.train(was_training)
    return torch.cat(xs), torch.cat(ys), torch.cat(ps)


def classification_pictures(model: nn.Module, loader: DataLoader, classes, run_dir: Path, title: str) -> list[Path]:
    """Confusion matrix and a grid of test images with predicted/true labels."""
    from lstmvision.viz import plot_confusion_matrix, plot_prediction_grid

    images, labels, probs = predict_all(model, loader)
    preds = probs.argmax(-1)
    cm = MulticlassConfusionMatrix(len(classes))(preds, labels)
    return [
        plot_confusion_matrix(cm, classes, run_dir / "confusion_matrix.png", title=title),
        plot_prediction_grid(images, labels, preds, probs.max(-1).values, classes,
                             run_dir / "predictions.png", title=title),
    ]  # fmt: skip
