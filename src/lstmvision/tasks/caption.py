"""Task ``caption``: describe a photo in a sentence (Flickr8k), CNN encoder + recurrent decoder.

Data: the official Flickr8k splits (``--dataset flickr8k-1k``: the shared 1,000-photo slice with
753 train, 113 dev, 125 test photos; ``flickr8k``: the full data set), or Karpathy's splits
(``flickr8k-karpathy``, ``flickr30k``, ``coco``; ``--coco-eval`` adds the coco-caption
scores). The vocabulary is built from the training captions only (``--min-count``) and saved as
``vocab.json`` in the run folder (the model carries it too). Training is teacher-forced
cross-entropy over every (photo, caption) pair, plus for ``show-attend-tell`` the doubly
stochastic attention regulariser
``λ · mean_i (1 - Σ_t α_ti)²`` (``--attention-reg``; the mean over locations is Show, Attend and
Tell's public implementations' form of its sum).

Encoder: EfficientNet-Lite0 with real ImageNet weights, frozen by default: its grid features of
every photo are computed once and cached (``--feature-cache``, default
``~/.cache/lstmvision/features``), so an epoch costs only the decoder. ``--finetune-encoder K``
trains the encoder's stages from ``K`` on (0 = stem ... 8 = last 1x1 convolution) at ``lr *
encoder_lr_scale``; photos then go through the encoder at every step (slow on a CPU).

Metrics, all without teacher forcing: validation decodes greedily on the dev split and
``val_bleu4`` picks the best checkpoint; test decodes with ``--beam`` (3) on the test split and also
greedily (``test_greedy_*``), against all 5 references each:

* BLEU-1..4: torchmetrics' ``BLEUScore`` (corpus BLEU, Papineni et al. 2002: clipped n-gram
  precisions pooled over the corpus, geometric mean, brevity penalty against the closest
  reference length), no smoothing, on the tokens of :func:`lstmvision.data.captions.tokenize`
  (lower case, runs of letters and digits) joined by spaces; 0-1 scale.
* CIDEr-D: pycocoevalcap's ``Cider`` (the COCO caption evaluation code: TF-IDF n-grams 1-4,
  document frequencies from the evaluated split's references, Gaussian length penalty σ = 6,
  clipped counts, ×10), on the same tokens; its own scale (1.0 = 100 in papers' tables).

``evaluate`` (and training's final test) writes ``<split>_captions.csv`` (image, caption, greedy
caption, references) into the run folder. ``predict`` captions photos (``--beam``) and, for the
attention model, writes a picture per photo of the attention over it for each generated word.

The Lightning data module is in :mod:`lstmvision.tasks.caption_data`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from lstmvision.data import resolve_data_root
from lstmvision.data.captions import (
    Vocabulary,
    load_photos,
    write_captions_csv,
)
from lstmvision.errors import ConfigError
from lstmvision.models import get_model
from lstmvision.tasks.base import PredictOption, Task, register_task
from lstmvision.tasks.caption_data import CaptionData
from lstmvision.tasks.coco_caption import coco_caption_scores
from lstmvision.tasks.config import TrainConfig, config_to_dict
from lstmvision.tasks.metrics import bleu_metrics, cider_d
from lstmvision.tasks.schedule import one_cycle


@dataclass
class CaptionConfig(TrainConfig):
    dataset: Literal["flickr8k-1k", "flickr8k", "flickr8k-karpathy", "flickr30k", "coco"] = (
        "flickr8k-1k"
    )
    """flickr8k-1k (the shared 1,000-photo slice), flickr8k (the full data set's layout) or
    Karpathy's splits: flickr8k-karpathy, flickr30k, coco (lstmvision.data.karpathy)"""
    coco_eval: bool = False
    """test: also score the captions by the coco-caption protocol (pycocoevalcap: test_coco_*
    BLEU-1..4, METEOR with Java, ROUGE-L, CIDEr-D; lstmvision.tasks.coco_caption)"""
    model: Literal["show-attend-tell", "show-and-tell"] = "show-attend-tell"
    """show-attend-tell (soft attention at every word) or show-and-tell (image as first input)"""
    cell: Literal["lstm", "gru"] = "lstm"
    """decoder cell (ours, lstmvision.nn)"""
    embed_size: int = 256
    """word embedding size"""
    hidden_size: int = 512
    """decoder hidden units"""
    feature_size: int = 512
    """show-attend-tell: size the 1280 encoder channels are projected to"""
    attention_size: int = 256
    """show-attend-tell: hidden size of the attention MLP"""
    dropout: float = 0.5
    """dropout in the decoder"""
    attention_reg: float = 1.0
    """show-attend-tell: weight λ of the doubly stochastic attention regulariser"""
    min_count: int = 3
    """vocabulary: words seen fewer times in the training captions become <unk>"""
    max_len: int = 20
    """decoding: at most this many tokens (words + <end>)"""
    beam: int = 3
    """beam width for the test metrics and predict (1 = greedy)"""
    length_penalty: float = 0.0
    """beam search ranks finished captions by log p / length^this (0: plain sum)"""
    finetune_encoder: Optional[int] = None
    """fine-tune the encoder from stage K on (0 = stem ... 8); default: frozen, features cached"""
    encoder_lr_scale: float = 0.1
    """learning-rate factor for the fine-tuned encoder stages"""
    feature_cache: Optional[str] = None
    """folder of the frozen encoder's cached features (default ~/.cache/lstmvision/features)"""
    limit_eval: Optional[int] = None
    """use only the first N dev and test photos (quick checks; not for reported figures)"""
    limit_train: Optional[int] = None
    """use only the first N training photos (with all their captions)"""
    val_fraction: float = 0.1
    """unused here: Flickr8k's official dev split validates"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    grad_clip: float = 5.0
    """clip the gradient norm (0: off)"""
    image_size: int = 224
    """photos are resized to this square size for the encoder"""
    epochs: int = 20
    batch_size: int = 16
    """photos per mini-batch (training: each with all its 5 captions)"""
    lr: float = 1e-3


# ---------------------------------------------------------------------------------------- data


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
        if self.cfg.coco_eval and self.rows:
            self._log_coco()

    def _log_coco(self):
        """coco-caption scores of the test captions against the raw references."""
        raw = {p.name: p.captions for p in self.trainer.datamodule.photos["test"]}
        rows = [r for r in self.rows if r["image"] in raw]
        hyps, refs = [r["caption"] for r in rows], [raw[r["image"]] for r in rows]
        scores, notes = coco_caption_scores(hyps, refs)
        for note in notes:
            print(f"coco-caption: {note}", file=sys.stderr, flush=True)
        for name, value in scores.items():
            self.log(f"test_coco_{name}", value)

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


@register_task("caption")
class CaptionTask(Task):
    name = "caption"
    evaluate_records_metrics = True
    summary = (
        "image captioning (Flickr8k): EfficientNet encoder + LSTM/GRU decoder, attention, "
        "beam search"
    )
    Config = CaptionConfig
    monitor, monitor_mode = "val_bleu4", "max"
    smoke_overrides = {
        "hidden_size": 32,
        "embed_size": 16,
        "feature_size": 32,
        "attention_size": 16,
        "image_size": 96,
        "limit_train": 4,
        "limit_eval": 2,
        "batch_size": 4,
        "max_steps": 2,
        "beam": 2,
        "feature_cache": "smoke-features",  # relative: in the folder the test runs in
    }
    predict_options = {
        "beam": PredictOption(int, "beam width (1 = greedy; default: the run's --beam)"),
        "out": PredictOption(
            Path, "folder for the attention pictures (default: RUN_DIR/predictions of a run)"
        ),
    }

    def __init__(self):
        self._vocab_key, self._vocab = None, None

    def vocabulary(self, cfg: CaptionConfig) -> Vocabulary:
        """Built from the training captions only (memoised per data set, limit and min count)."""
        key = (cfg.dataset, str(resolve_data_root(cfg.data_root)), cfg.limit_train, cfg.min_count)
        if key != self._vocab_key:
            train = load_photos(cfg.dataset, resolve_data_root(cfg.data_root))["train"]
            captions = (c for p in train[: cfg.limit_train] for c in p.captions)
            self._vocab_key, self._vocab = key, Vocabulary.build(captions, cfg.min_count)
        return self._vocab

    def _check(self, cfg: CaptionConfig) -> None:
        if cfg.beam < 1 or cfg.max_len < 2 or cfg.min_count < 1:
            raise ConfigError(
                f"--beam {cfg.beam}, --max-len {cfg.max_len}, --min-count {cfg.min_count}: "
                "need beam >= 1, max_len >= 2, min_count >= 1"
            )
        if cfg.finetune_encoder is not None and not 0 <= cfg.finetune_encoder <= 8:
            raise ConfigError(
                f"--finetune-encoder {cfg.finetune_encoder}: EfficientNet-Lite0 has stages "
                "0 (stem) to 8"
            )

    def model_spec(self, cfg: CaptionConfig):
        self._check(cfg)
        kwargs = dict(
            words=self.vocabulary(cfg).words,
            cell=cfg.cell,
            embed_size=cfg.embed_size,
            hidden_size=cfg.hidden_size,
            dropout=cfg.dropout,
            encoder_weights=None,
            image_size=cfg.image_size,
        )
        if cfg.model == "show-attend-tell":
            kwargs.update(feature_size=cfg.feature_size, attention_size=cfg.attention_size)
        return cfg.model, kwargs  # the encoder's weights are in the saved state dict

    def build_model(self, cfg: CaptionConfig):
        name, kwargs = self.model_spec(cfg)
        model = get_model(name, **{**kwargs, "encoder_weights": "imagenet"})
        for module in self.frozen(cfg, model):
            module.requires_grad_(False)
        return model

    def frozen(self, cfg: CaptionConfig, model) -> list[nn.Module]:
        stages = model.encoder.stages()
        return (
            stages[: cfg.finetune_encoder] if cfg.finetune_encoder is not None else [model.encoder]
        )

    def datamodule(self, cfg):
        self._check(cfg)
        return CaptionData(cfg)

    def bind(self, cfg, model, datamodule):
        datamodule.bind(model)

    def module(self, cfg, model):
        return CaptionModule(model, cfg, self.frozen(cfg, model))

    def write_outputs(self, cfg, module, run_dir: Path, split: str) -> list[Path]:
        if not module.rows:
            return []
        return [write_captions_csv(Path(run_dir) / f"{split}_captions.csv", module.rows)]

    def save_extras(self, cfg, model, datamodule, run_dir: Path) -> list[Path]:
        """vocab.json: the words of the model's output layer, in order (model.json has them too)."""
        return [self.vocabulary(cfg).save(Path(run_dir) / "vocab.json")]

    def pictures(self, cfg, model, datamodule, run_dir: Path):
        if cfg.model != "show-attend-tell":
            return []
        folder, photos = Path(run_dir) / "attention", datamodule.photos["test"][:3]
        return [
            self._caption_photo(cfg, model, p.path, cfg.beam, folder)["attention"] for p in photos
        ]

    def _caption_photo(self, cfg, model, path, beam: int, out: Path | None, index=0) -> dict:
        from lstmvision.viz.captions import caption_photo

        return caption_photo(model, path, beam, cfg.max_len, cfg.length_penalty, out, index)

    def predict(self, cfg, model, inputs, beam=None, out=None, **options):
        from lstmvision.inference.caption import CaptionPredictor

        run = Path(self.run_dir) if self.run_dir is not None else None
        # the attention pictures: into --out, else a run folder's predictions/ (never into a
        # saved or shipped model's folder: no pictures then)
        if out is None and run is not None and (run / "config.yaml").is_file():
            out = run / "predictions"
        predictor = CaptionPredictor.from_task(self.name, config_to_dict(cfg), model, run)
        return [r.to_dict() for r in predictor.predict(list(inputs), beam=beam, out=out)]

    def smoke_inputs(self, cfg, folder: Path) -> list[Path]:
        photos = load_photos(cfg.dataset, resolve_data_root(cfg.data_root))["test"]
        return [photos[0].path]

    def format_prediction(self, prediction: dict) -> str:
        extra = f"  [attention: {prediction['attention']}]" if "attention" in prediction else ""
        return f"{prediction['image']}: {prediction['caption']}{extra}"
