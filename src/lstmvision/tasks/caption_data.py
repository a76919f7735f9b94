"""The ``caption`` task's data module: photos, captions, vocabulary and cached encoder features;
the task (config, LightningModule, hooks) is in :mod:`lstmvision.tasks.caption`."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from lstmvision.data import resolve_data_root
from lstmvision.data.caption_batches import cached_features, caption_sets, collate_captions
from lstmvision.data.captions import (
    SPLITS,
    Vocabulary,
    load_photos,
    load_photos_tensor,
)

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
