"""The ``text-classify`` task's data module: sentences of the folds, padded batches; the task
(config, LightningModule, hooks) is in :mod:`lstmvision.tasks.text_classify`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

from lstmvision.data import resolve_data_root
from lstmvision.data.text import (
    IMDB,
    WordVocab,
    glove_words,
    kfold_indices,
    load_polarity,
)
from lstmvision.tasks.base import SplitLoaders

CLASSES = ["negative", "positive"]

if TYPE_CHECKING:
    from lstmvision.tasks.text_classify import TextClassifyConfig


def _collate(batch):
    ids, labels = zip(*batch)
    lengths = torch.tensor([len(t) for t in ids])
    return (
        pad_sequence(list(ids), batch_first=True),
        lengths,
        torch.tensor(labels),
    )  # (B, T), (B,), (B,)


class SentenceData(SplitLoaders, L.LightningDataModule):
    """Token-id sentences per split; the vocabulary from the training part (plus GloVe's words)."""

    def __init__(self, cfg: TextClassifyConfig):
        super().__init__()
        self.cfg = cfg
        self.vocab: WordVocab | None = None
        self.sets: dict[str, list] = {}

    def _texts(self):
        """``{split: (token lists, labels)}`` before encoding."""
        cfg, root = self.cfg, resolve_data_root(self.cfg.data_root)
        if cfg.dataset == "imdb":
            train, test = (IMDB(root, s, download=cfg.download) for s in ("train", "test"))
            train_texts, train_labels = zip(*(train[i] for i in range(len(train))))
            test_texts, test_labels = zip(*(test[i] for i in range(len(test))))
            train_texts, train_labels = list(train_texts), torch.tensor(train_labels)
            test = (list(test_texts), torch.tensor(test_labels))
        else:
            texts, labels = load_polarity(root)
            train_idx, test_idx = kfold_indices(
                len(texts), cfg.folds, cfg.fold, seed=0
            )  # fixed folds
            train_texts, train_labels = [texts[i] for i in train_idx], labels[train_idx]
            test = ([texts[i] for i in test_idx], labels[test_idx])
        order = torch.randperm(len(train_texts), generator=torch.Generator().manual_seed(cfg.seed))
        n_val = max(1, int(round(len(order) * cfg.val_fraction)))
        val_idx, fit_idx = order[:n_val], order[n_val:]
        if cfg.limit_train:
            fit_idx = fit_idx[: cfg.limit_train]
        pick = lambda idx: ([train_texts[i] for i in idx], train_labels[idx])  # noqa: E731
        return {"train": pick(fit_idx), "val": pick(val_idx), "test": test}

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        splits = self._texts()
        self.vocab = WordVocab.build(
            splits["train"][0], self.cfg.min_freq
        )  # never validation or test
        self.trained_words = len(self.vocab)  # ids past these: GloVe's words that training lacks
        if self.cfg.embeddings == "glove" and self.cfg.glove_words > 0:
            self.vocab = self.vocab.extended(glove_words(self.cfg.glove_words))
        for split, (texts, labels) in splits.items():
            ids = [
                torch.tensor(self.vocab.encode(t[: self.cfg.max_tokens] or ["<unk>"]))
                for t in texts
            ]
            self.sets[split] = list(zip(ids, labels.tolist()))

    def _loader(self, split, shuffle=False):
        return DataLoader(
            self.sets[split], batch_size=self.cfg.batch_size, shuffle=shuffle, collate_fn=_collate
        )
