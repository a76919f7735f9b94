"""The ``textline`` task's Lightning parts: the data module (line batches by width, augmented
for training) and the module (CTC training of a CRNN, CER/WER evaluation, greedy and with an
n-gram LM beam search); the task itself is in :mod:`lstmvision.tasks.textline`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.text import CharErrorRate, WordErrorRate

from lstmvision.data.line_batches import LineAugment, LineSet, batch_results, line_loader
from lstmvision.data.lines import Charset, Line
from lstmvision.nn.ctc import beam_decode, greedy_texts
from lstmvision.nn.ngram import LineLM
from lstmvision.tasks.base import SplitLoaders, SplitSteps
from lstmvision.tasks.schedule import one_cycle
from lstmvision.tasks.textline_lm import LM_BEAM, fit_lm

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


class TextLineModule(SplitSteps, L.LightningModule):
    """CTC training (AdamW, one-cycle learning rate) and CER/WER evaluation of a CRNN.

    After a test run, ``line_results`` holds one dict per line (name, target, prediction, cer).
    ``lm_order`` (training runs): at the end of the test epoch, fit a character n-gram of that
    order on the data module's training lines and tune it on its validation lines
    (:func:`~lstmvision.tasks.textline_lm.fit_lm`); the LM figures are logged with the test
    metrics and the tuned model is left in ``lm`` (the task writes it to ``lm.json``).
    ``lm`` given (evaluating a saved model that has one): validation and test also decode with
    beam search (width :data:`~lstmvision.tasks.textline_lm.LM_BEAM`) and that LM, logged as
    ``{val,test}_cer_lm`` and ``{val,test}_wer_lm`` beside the greedy figures."""

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        weight_decay: float = 0.0,
        lm_order: int | None = None,
        lm: LineLM | None = None,
    ):
        super().__init__()
        self.model, self.lr, self.weight_decay, self.lm_order = model, lr, weight_decay, lm_order
        self.cer = nn.ModuleDict({s: CharErrorRate() for s in ("val", "test")})
        self.wer = nn.ModuleDict({s: WordErrorRate() for s in ("val", "test")})
        self.cer_lm = nn.ModuleDict({s: CharErrorRate() for s in ("val", "test")})
        self.wer_lm = nn.ModuleDict({s: WordErrorRate() for s in ("val", "test")})
        self.line_results: list[dict] = []
        self.lm: LineLM | None = lm

    def forward(self, images, widths=None):
        return self.model(images, widths)

    def _loss(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.model(batch["images"], batch["widths"])  # (T, B, C)
        log_probs = logits.log_softmax(-1)
        lengths = self.model.output_lengths(batch["widths"]).clamp(max=logits.size(0))
        # blank 0, mean over the batch of the loss per target character; zero_infinity: a line
        # with more labels than time steps gives no (infinite) loss
        targets, target_lengths = batch["targets"], batch["target_lengths"]
        loss = F.ctc_loss(
            log_probs.float(), targets, lengths, target_lengths, blank=0, zero_infinity=True
        )
        return loss, log_probs, lengths

    def _step(self, batch, split: str):
        loss, log_probs, lengths = self._loss(batch)
        n = len(batch["texts"])
        if split == "train":
            self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
            return loss
        preds = greedy_texts(log_probs, self.model.charset, lengths)
        self.cer[split](preds, batch["texts"])
        self.wer[split](preds, batch["texts"])
        self.log(f"{split}_loss", loss, on_epoch=True, batch_size=n)
        self.log(f"{split}_cer", self.cer[split], on_epoch=True, prog_bar=True, batch_size=n)
        self.log(f"{split}_wer", self.wer[split], on_epoch=True, batch_size=n)
        if self.lm is not None and self.lm_order is None:  # a saved model's LM, not being fitted
            per_line = [log_probs[: int(t), i].float().cpu() for i, t in enumerate(lengths)]
            preds_lm = [beam_decode(lp, self.model.charset, LM_BEAM, self.lm) for lp in per_line]
            self.cer_lm[split](preds_lm, batch["texts"])
            self.wer_lm[split](preds_lm, batch["texts"])
            self.log(f"{split}_cer_lm", self.cer_lm[split], on_epoch=True, batch_size=n)
            self.log(f"{split}_wer_lm", self.wer_lm[split], on_epoch=True, batch_size=n)
        if split == "test":
            total = batch["unknown"].sum().float()
            self.log("test_unknown_chars", total, on_epoch=True, reduce_fx="sum", batch_size=n)
            self.line_results.extend(batch_results(batch, preds))

    def on_test_epoch_start(self):
        self.line_results = []

    def on_test_epoch_end(self):
        data = self.trainer.datamodule
        if (
            self.lm_order is None
            or not isinstance(data, TextLineData)
            or not data.splits.get("val")
        ):
            return
        train, val, test = (
            [ln.text for ln in data.splits["train"]],
            data._set("val"),
            data._set("test"),
        )
        self.lm, metrics = fit_lm(self.model, train, self.lm_order, val, test, data.batch_size)
        for key, value in metrics.items():  # float64: lm_weight 0.6 stays 0.6 in metrics.json
            self.log(key, torch.tensor(value, dtype=torch.float64))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        return one_cycle(self, opt, pct_start=0.15)
