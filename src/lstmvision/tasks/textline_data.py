"""The ``textline`` task's data module: line batches drawn by width, augmented for training;
the task (config, LightningModule, hooks) is in :mod:`lstmvision.tasks.textline`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L
from torch.utils.data import DataLoader

from lstmvision.data.line_batches import LineAugment, LineSet, line_loader
from lstmvision.data.lines import Charset, Line
from lstmvision.tasks.base import SplitLoaders

if TYPE_CHECKING:
    from lstmvision.tasks.textline import TextLineConfig


class TextLineData(SplitLoaders, L.LightningDataModule):
    """``splits`` maps train/val/test to line lists (a missing split is empty), served at
    ``cfg``'s charset, height and batch size; training batches are augmented (``evaluation``:
    never, and no worker processes) and drawn by width (:func:`line_loader`)."""

    def __init__(self, splits: dict[str, list[Line]], cfg: TextLineConfig, evaluation=False):
        super().__init__()
        self.splits, self.charset, self.height = splits, Charset(cfg.charset), cfg.height
        self.batch_size, self.seed = cfg.batch_size, cfg.seed
        self.augment = 0.0 if evaluation else cfg.augment
        self.num_workers = 0 if evaluation else cfg.num_workers
        self.sets: dict[str, LineSet] = {}

    def _set(self, split: str) -> LineSet:
        if split not in self.sets:
            aug = LineAugment(self.augment) if split == "train" and self.augment > 0 else None
            self.sets[split] = LineSet(self.splits.get(split, []), self.height, self.charset, aug)
        return self.sets[split]

    def setup(self, stage: str | None = None) -> None:
        stages = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
        for split in stages.get(stage, ("train", "val", "test")):
            self._set(split)

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        seed = self.seed if shuffle else None  # WidthBatches, else sorted by width
        return line_loader(self._set(split), self.batch_size, seed, self.num_workers)
