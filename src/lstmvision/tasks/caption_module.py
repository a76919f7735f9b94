"""The ``caption`` task's Lightning parts: the data module (photos, captions, vocabulary and
cached encoder features) and the module (teacher-forced training, decoded evaluation with
BLEU and CIDEr-D); the task itself is in :mod:`lstmvision.tasks.caption`."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lstmvision.data import resolve_data_root
from lstmvision.data.caption_batches import cached_features, caption_sets, collate_captions
from lstmvision.data.captions import (
    SPLITS,
    Vocabulary,
    load_photos,
    load_photos_tensor,
)
from lstmvision.tasks.metrics import bleu_metrics, cider_d
from lstmvision.tasks.schedule import one_cycle

if TYPE_CHECKING:
    from lstmvision.tasks.caption import CaptionConfig


class CaptionData(L.LightningDataModule):
    """Photos, captions and vocabulary of a captioning data set.

    Batches hold ``batch_size`` photos, as dicts: ``inputs`` (cached features ``(B, L, 1280)`` or
    photos ``(B, 3, S, S)`` in [0, 1] when the encoder is fine-tuned), ``captions`` ``(N, T)`` ids
    (``<start>`` ... ``<end>``, padded): in training all captions of each photo (``N = 5B``), on
    dev/test the first reference (for ``val_loss``); ``rows`` ``(N,)`` the photo of each caption,
    ``refs`` (tokenised references, dev/test) and ``names``
    (:func:`~lstmvision.data.caption_batches.collate_captions`)."""

    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.cfg = cfg
        self.photos: dict = {}
        self.vocab: Vocabulary | None = None
        self.inputs: torch.Tensor | None = None  # (N, ...) every photo's features or pixels
        self.sets: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.photos:
            return
        cfg = self.cfg
        photos = load_photos(cfg.dataset, resolve_data_root(cfg.data_root))
        limits = {"train": cfg.limit_train, "dev": cfg.limit_eval, "test": cfg.limit_eval}
        self.photos = {s: photos[s][: limits[s]] for s in SPLITS}
        self.order = [p for s in SPLITS for p in self.photos[s]]  # index into self.inputs

    def bind(self, model) -> None:
        """Captions as the model's word ids; features of every photo through the frozen encoder
        (cached), or the photos themselves when the encoder is fine-tuned."""
        self.setup()
        self.vocab = Vocabulary(model.words)
        self.sets = caption_sets(self.photos, self.vocab)
        paths = [p.path for p in self.order]
        if self.cfg.finetune_encoder is not None:
            self.inputs = load_photos_tensor(paths, self.cfg.image_size)  # uint8 (N, 3, S, S)
            return
        was_training = model.training
        model.encoder.eval()
        self.inputs = cached_features(
            paths, model.encode, self.cfg.image_size, self.cfg.feature_cache
        )  # (N, L, 1280) float16
        model.train(was_training)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        collate = partial(
            collate_captions,
            order=self.order,
            inputs=self.inputs,
            pixels=self.cfg.finetune_encoder is not None,
            with_refs=split != "train",
        )
        return DataLoader(
            self.sets[split],
            batch_size=self.cfg.batch_size,
            shuffle=shuffle,
            collate_fn=collate,
            num_workers=0,
        )

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("dev", False)

    def test_dataloader(self):
        return self._loader("test", False)


# ---------------------------------------------------------------------------------------- module


class CaptionModule(L.LightningModule):
    """Teacher-forced training; dev/test scored on decoded captions (see the module docstring).

    Not a ``SplitSteps`` module: its three steps do different work. Training scores the
    teacher-forced loss with the attention regulariser; validation logs the plain ``val_loss``
    and decodes greedily; test logs no loss and decodes twice (``--beam`` and greedy), so one
    ``_step(batch, split)`` would only hold three branches."""

    def __init__(self, model, cfg: CaptionConfig, frozen: list[nn.Module] = ()):
        super().__init__()
        self.model, self.cfg, self.frozen = model, cfg, list(frozen)
        self.bleu = nn.ModuleDict({k: bleu_metrics() for k in ("val", "test", "test_greedy")})
        self.decoded: dict[str, list] = {}  # split -> [(name, hypothesis, refs)] of this epoch
        self.rows: list[dict] = []  # the last test pass's per-image captions

    def _features(self, batch) -> torch.Tensor:
        x = batch["inputs"]
        return self.model.encode(x) if self.cfg.finetune_encoder is not None else x  # (B, L, 1280)

    def _loss(self, features, captions, rows) -> tuple[torch.Tensor, torch.Tensor]:
        logits, alphas = self.model.teacher_forced(
            features, captions, rows
        )  # (N, T-1, V), (N, T-1, L)
        target = captions[:, 1:]
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=Vocabulary.PAD
        )
        if alphas is None or not self.cfg.attention_reg:
            return ce, ce
        coverage = alphas.sum(1)  # (N, L): Σ_t α_ti (the model's α is 0 after <end>)
        return ce + self.cfg.attention_reg * ((1 - coverage) ** 2).mean(), ce

    def on_train_epoch_start(self):
        for module in self.frozen:
            module.eval()

    def training_step(self, batch, batch_idx):
        loss, ce = self._loss(self._features(batch), batch["captions"], batch["rows"])
        self.log(
            "train_loss",
            ce,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(batch["captions"]),
        )
        return loss

    def _decode(self, features, beam: int) -> list[str]:
        out = self.model.caption(
            features, beam=beam, max_len=self.cfg.max_len, length_penalty=self.cfg.length_penalty
        )
        return [self.model.to_text(t) for t in out.tokens]

    def _score(self, key: str, hyps: list[str], refs: list[list[str]]) -> None:
        for n, metric in enumerate(self.bleu[key], 1):
            metric.update(hyps, refs)
            self.log(
                f"{key}_bleu{n}",
                metric,
                on_step=False,
                on_epoch=True,
                prog_bar=n == 4 and key == "val",
                batch_size=len(hyps),
            )
        self.decoded.setdefault(key, []).extend(zip(hyps, refs))

    def validation_step(self, batch, batch_idx):
        features = self._features(batch)
        _, ce = self._loss(features, batch["captions"], batch["rows"])
        self.log("val_loss", ce, on_step=False, on_epoch=True, batch_size=len(features))
        hyps = self._decode(features, 1)
        self._score("val", hyps, batch["refs"])
        for name, h, refs in zip(batch["names"], hyps, batch["refs"]):
            self.rows.append(
                {"image": name, "caption": h, "greedy_caption": h, "references": " | ".join(refs)}
            )

    def test_step(self, batch, batch_idx):
        features = self._features(batch)
        hyps = self._decode(features, self.cfg.beam)
        greedy = hyps if self.cfg.beam == 1 else self._decode(features, 1)
        self._score("test", hyps, batch["refs"])
        self._score("test_greedy", greedy, batch["refs"])
        for name, h, g, refs in zip(batch["names"], hyps, greedy, batch["refs"]):
            self.rows.append(
                {"image": name, "caption": h, "greedy_caption": g, "references": " | ".join(refs)}
            )

    def _log_cider(self):
        for key, pairs in self.decoded.items():
            self.log(f"{key}_cider", cider_d([h for h, _ in pairs], [r for _, r in pairs]))
        self.decoded = {}

    def on_validation_epoch_start(self):
        self.decoded, self.rows = {}, []

    def on_validation_epoch_end(self):
        self._log_cider()

    def on_test_epoch_start(self):
        self.decoded, self.rows = {}, []

    def on_test_epoch_end(self):
        self._log_cider()

    def configure_optimizers(self):
        encoder = {id(p) for p in self.model.encoder.parameters()}
        trainable = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in trainable if id(p) not in encoder], "lr": self.cfg.lr},
            {
                "params": [p for p in trainable if id(p) in encoder],
                "lr": self.cfg.lr * self.cfg.encoder_lr_scale,
            },
        ]
        groups = [g for g in groups if g["params"]]
        opt = torch.optim.AdamW(groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        return one_cycle(self, opt)


# ---------------------------------------------------------------------------------------- task
