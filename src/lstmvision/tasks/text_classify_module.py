"""The ``text-classify`` task's Lightning parts: the sentence data module (folds, padding
batches) and the module (cross-entropy, optional adversarial training on the embeddings); the
task itself is in :mod:`lstmvision.tasks.text_classify`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy

from lstmvision.data import resolve_data_root
from lstmvision.data.text import (
    IMDB,
    WordVocab,
    glove_words,
    kfold_indices,
    load_polarity,
)
from lstmvision.tasks.base import SplitLoaders, SplitSteps
from lstmvision.tasks.schedule import one_cycle

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


class SentenceClassifierModule(SplitSteps, L.LightningModule):
    """Cross-entropy on ``(ids, lengths, labels)`` batches (in training, every ensemble member's,
    plus its adversarial loss); logs ``*_loss`` and ``*_accuracy``."""

    def __init__(self, model, cfg: TextClassifyConfig):
        super().__init__()
        self.model, self.cfg = model, cfg
        self.acc = torch.nn.ModuleDict(
            {
                f"{s}_acc": MulticlassAccuracy(len(CLASSES), average="micro")
                for s in ("train", "val", "test")
            }
        )

    def _step(self, batch, split):
        ids, lengths, y = batch
        if split == "train":  # each ensemble member its own loss
            vectors = self.model.member_vectors(ids)  # (M, B, T, E)
            members = self.model.logits_from_vectors(vectors, lengths)  # (M, B, 2)
            loss = F.cross_entropy(members.flatten(0, 1), y.repeat(len(members)))
            if self.cfg.adversarial > 0:
                loss = loss + self._adversarial_loss(vectors, lengths, y, loss)
            logits = members.log_softmax(-1).logsumexp(
                0
            )  # the ensemble's (unnormalised) log-probabilities
        else:
            logits = self.model(ids, lengths)  # (B, 2)
            loss = F.cross_entropy(logits, y)
        self.acc[f"{split}_acc"](logits, y)
        self.log(f"{split}_loss", loss, on_step=split == "train", on_epoch=True, prog_bar=True)
        self.log(
            f"{split}_accuracy",
            self.acc[f"{split}_acc"],
            on_step=False,
            on_epoch=True,
            prog_bar=split != "train",
        )
        return loss

    def _adversarial_loss(self, vectors, lengths, y, loss):
        """Miyato et al. 2017: the loss after moving each sentence's word vectors ``(M, B, T, E)``
        by ``cfg.adversarial`` (L2 norm over the whole sentence) along the gradient of ``loss``
        (their clean loss; ``None``: computed here), the direction that raises it fastest."""
        if not vectors.requires_grad:  # frozen embedding: perturb the vectors alone
            return self._adversarial_loss(vectors.detach().requires_grad_(), lengths, y, None)
        if loss is None:
            members = self.model.logits_from_vectors(vectors, lengths)
            loss = F.cross_entropy(members.flatten(0, 1), y.repeat(len(members)))
        (grad,) = torch.autograd.grad(loss, vectors, retain_graph=True)  # (M, B, T, E)
        norm = grad.flatten(2).norm(dim=2).clamp(min=1e-12)[..., None, None]  # (M, B, 1, 1)
        moved = self.model.logits_from_vectors(
            vectors + self.cfg.adversarial * grad / norm, lengths
        )
        return F.cross_entropy(moved.flatten(0, 1), y.repeat(len(moved)))

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        return one_cycle(self, opt)
