"""Task ``textline``: text-line recognition with a CRNN (CNN + BiLSTM) trained by CTC.

Data (``--dataset``, each named one with its recipe file ``recipes/textline/<dataset>.yaml``):
``bronod`` (handwritten French notarial register, split **by page**: pages 10, 20, ..., 90
validate, pages 5, 15, ..., 85 test, the other 72 pages train), ``uw3`` (printed English: 45 of
the 50 training lines train, every 10th validates, the 20 official test lines test),
``synth-print`` (``--lines`` printed lines, :mod:`lstmvision.data.synth_lines`: pretraining for
uw3 with ``--from``) or a folder in a generic layout (:mod:`lstmvision.data.lines`; the config's
defaults, bronod's). The charset is built from the training labels (with ``--from``, joined to the
source run's), stored in ``config.yaml`` and ``model.json``; characters a model does not know are
counted at test time (``test_unknown_chars``), never an error.

Metrics: ``{val,test}_cer`` and ``{val,test}_wer`` (torchmetrics, 0-1 scale, greedy decoding) and
``{train,val,test}_loss`` (CTC); ``val_cer`` picks the checkpoint. Training augments each line
(:class:`~lstmvision.data.line_batches.LineAugment`); evaluation never does. ``--lm`` (the
default) adds a character n-gram tuned on the validation lines, ``lm.json`` and the ``*_lm``
metrics (:mod:`lstmvision.tasks.textline_lm`); ``predict --beam N`` fuses it into beam search.

The Lightning data module is in :mod:`lstmvision.tasks.textline_data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.text import CharErrorRate, WordErrorRate

from lstmvision.data import resolve_data_root
from lstmvision.data.line_batches import batch_results
from lstmvision.data.lines import (
    Charset,
    Line,
    line_splits,
    read_line_folder,
    transcribe_page_xml,
    worst_lines,
    write_line_results,
)
from lstmvision.data.synth_lines import CHARSET as SYNTH_CHARSET
from lstmvision.data.synth_lines import synth_line_splits
from lstmvision.errors import ConfigError, DataError
from lstmvision.inference.base import read_source, source_model
from lstmvision.nn.ctc import beam_decode, decode_batch, decode_lines, greedy_texts
from lstmvision.nn.ngram import LineLM
from lstmvision.tasks.base import PredictOption, SplitSteps, Task, register_task
from lstmvision.tasks.config import TrainConfig, config_to_dict
from lstmvision.tasks.schedule import one_cycle
from lstmvision.tasks.textline_data import TextLineData
from lstmvision.tasks.textline_lm import LM_BEAM, fit_lm, run_lm

SYNTH_EVAL_LINES = 400  # synth-print validation and test lines (at most a tenth of --lines each)


@dataclass
class TextLineConfig(TrainConfig):
    recipes: ClassVar[str] = "textline"

    dataset: str = "bronod"
    """bronod (handwriting, split by page), uw3 (printed), synth-print (synthetic printed lines),
    iam / iam-rwth (IAM's layout, Aachen / RWTH split) or a folder (labels.tsv + lines/, or
    .gt.txt files)"""
    lines: Optional[int] = 20000
    """synth-print: synthetic training lines (validation and test: a tenth each, at most 400)"""
    height: int = 32
    """line height the images are scaled to (a multiple of 16)"""
    channels: str = "16,32,64,96"
    """output channels of the 4 convolution blocks"""
    reduction: int = 4
    """image columns per time step (2 or 4)"""
    hidden_size: int = 192
    """LSTM units per direction (with --from: the source run's, whatever is given)"""
    num_layers: int = 2
    """stacked BiLSTM layers"""
    dropout: float = 0.2
    """dropout before, between and after the LSTM layers"""
    augment: float = 1.0
    """strength of the training augmentation (0: off)"""
    weight_decay: float = 1e-4
    """AdamW weight decay"""
    grad_clip: float = 5.0
    """clip the gradient norm (0: off)"""
    charset: Optional[str] = None
    """characters the model outputs (default: those of the training labels; saved with the run)"""
    from_run: Optional[str] = field(default=None, metadata={"flag": "--from"})
    """start from a finished textline run's weights, a saved model folder or a shipped model's
    name (e.g. textline-handwriting -> printed); its charset and LSTM size are kept"""
    epochs: int = 60
    """training epochs"""
    batch_size: int = 16
    """mini-batch size"""
    lr: float = 2e-3
    lm: bool = True
    """fit a character n-gram LM on the training lines, its weight tuned on validation (lm.json)"""
    lm_order: int = 5
    """order n of the character n-gram (a character is predicted from the n - 1 before it)"""
    val_fraction: float = 0.1
    """unused: the validation split is fixed (pages 10, 20, ... for bronod; see the task)"""


def _channels(text: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or min(values) < 1:
        raise ConfigError(f"channels={text!r}: give 4 positive integers such as 16,32,64,96")
    return values


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


@register_task("textline")
class TextLineTask(Task):
    name = "textline"
    summary = (
        "Text-line recognition: CNN + BiLSTM + CTC (bronod handwriting, UW3 print, your lines)"
    )
    Config = TextLineConfig
    monitor, monitor_mode = "val_cer", "min"
    predict_options = {
        "beam": PredictOption(int, "beam width of the CTC prefix beam search (1 = greedy)"),
        "lm_weight": PredictOption(
            float, "weight of the run's lm.json n-gram in the beam search (default: tuned; 0: off)"
        ),
        "page": PredictOption(Path, "page image whose --page-xml line regions are transcribed"),
        "page_xml": PredictOption(
            Path, "PAGE XML whose TextLine TextEquiv are filled (written to --out)"
        ),
        "out": PredictOption(Path, "folder for the alignment pictures and the filled PAGE XML"),
    }
    predict_needs_inputs = False  # --page --page-xml instead of line images
    smoke_overrides = {  # tests/test_every_task.py
        "dataset": "uw3",
        "limit_train": 8,
        "lm": False,
        "channels": "4,8,8,8",
        "hidden_size": 8,
        "num_layers": 1,
        "batch_size": 8,
        "max_steps": 2,
    }

    def resolve(self, cfg) -> None:
        """Refuse bad values; with ``--from``, ``hidden_size`` is the source run's (its weights
        must fit: a value given beside ``--from`` is replaced)."""
        if cfg.height % 16 or cfg.height < 16:
            raise ConfigError(f"height={cfg.height}: must be a positive multiple of 16")
        _channels(cfg.channels)
        if cfg.dataset == "synth-print" and (cfg.lines is None or cfg.lines < 1):
            raise ConfigError(f"lines={cfg.lines}: must be at least 1")
        if cfg.lm_order < 1:
            raise ConfigError(f"lm_order={cfg.lm_order}: must be at least 1")
        if cfg.from_run:
            source = read_source(cfg.from_run)
            if source.task != "textline":
                raise ConfigError(
                    f"{cfg.from_run}: a {source.task!r} model, not a textline model (--from)"
                )
            cfg.hidden_size = int(source.config.get("hidden_size") or cfg.hidden_size)

    def splits(self, cfg) -> dict[str, list[Line]]:
        """The train/val/test lines of ``cfg.dataset``."""
        root = resolve_data_root(cfg.data_root)
        if cfg.dataset == "synth-print":
            held_out = min(SYNTH_EVAL_LINES, max(2, cfg.lines // 10))
            sizes = {"train": cfg.lines, "val": held_out, "test": held_out}
            return synth_line_splits(root, sizes, cfg.seed)
        return line_splits(cfg.dataset, root)

    def _resolve_charset(self, cfg, splits) -> None:
        """Sets ``cfg.charset`` (saved in config.yaml) from the training labels (+ --from's)."""
        if cfg.charset is not None:
            return
        texts = [ln.text for ln in splits["train"]]
        if cfg.dataset == "synth-print":
            texts.append(SYNTH_CHARSET)  # all of printable ASCII, however few lines
        if cfg.from_run:
            texts.append(read_source(cfg.from_run).config.get("charset") or "")
        cfg.charset = Charset.from_texts(texts).chars
        if not cfg.charset:
            raise DataError(f"{cfg.dataset}: the training lines have no characters to learn")

    def model_spec(self, cfg):
        if cfg.charset is None:
            self._resolve_charset(cfg, self.splits(cfg))
        return "crnn", dict(
            charset=cfg.charset,
            height=cfg.height,
            channels=_channels(cfg.channels),
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout,
            reduction=cfg.reduction,
        )

    def build_model(self, cfg):
        model = super().build_model(cfg)
        if cfg.from_run:
            _, source = source_model(cfg.from_run)
            source.reset_classifier(model.charset)  # keep the rows of the shared characters
            try:
                model.load_state_dict(source.state_dict())
            except RuntimeError as e:
                raise ConfigError(
                    f"{cfg.from_run}: its model does not fit this config "
                    f"({str(e).splitlines()[0]}); use the same --height, --channels and "
                    "--num-layers"
                ) from None
        return model

    def datamodule(self, cfg) -> TextLineData:
        splits = self.splits(cfg)
        if not splits["train"] or not splits["val"]:
            raise DataError(
                f"{cfg.dataset}: need training and validation lines, found "
                f"{len(splits['train'])} and {len(splits['val'])}"
            )
        self._resolve_charset(cfg, splits)
        if cfg.limit_train:
            splits = {**splits, "train": splits["train"][: cfg.limit_train]}
        return TextLineData(splits, cfg)

    def evaluation_datamodule(self, cfg, data: Path) -> TextLineData:
        """All lines of ``data`` (its ``test/`` subfolder if it has one) as the test split."""
        data = Path(data)
        lines = read_line_folder(data / "test" if (data / "test").is_dir() else data)
        return TextLineData({"test": lines}, cfg, evaluation=True)

    def module(self, cfg, model) -> TextLineModule:
        """Training fits the LM (``lm_order``); a loaded model's evaluate leaves its lm.json
        alone and, when it has one, also reports the CER/WER with it (``*_lm``)."""
        if self.run_dir is None:
            lm_order = cfg.lm_order if cfg.lm else None
            return TextLineModule(model, cfg.lr, cfg.weight_decay, lm_order=lm_order)
        lm = run_lm(self.run_dir, LM_BEAM)
        return TextLineModule(model, cfg.lr, cfg.weight_decay, lm=lm)

    def write_outputs(self, cfg, module: TextLineModule, run_dir: Path, split: str) -> list[Path]:
        """``lm.json`` after training's test (the n-gram and its weights tuned on validation;
        a loaded model's own LM is not written again)."""
        if split != "test" or module.lm is None or module.lm_order is None:
            return []
        return [module.lm.save(Path(run_dir) / "lm.json")]

    def evaluation_report(self, cfg, module: TextLineModule, out: Path | None) -> list[str]:
        """The worst lines (and, with ``out``, the per-line CSV ``out/lines.csv``)."""
        report = worst_lines(module.line_results)
        if out is not None and module.line_results:
            csv = write_line_results(module.line_results, Path(out) / "lines.csv")
            report.append(f"per-line results: {csv}")
        return report

    @torch.no_grad()
    def pictures(self, cfg, model, datamodule, run_dir: Path) -> list[Path]:
        """``test_lines.csv`` (per-line results, worst first) and ``alignment_*.png`` of 3
        validation lines."""
        from lstmvision.viz.textline import plot_alignments

        results = []
        for batch in datamodule.test_dataloader():
            preds, _ = decode_batch(model, batch["images"], batch["widths"])
            results.extend(batch_results(batch, preds))
        paths = [write_line_results(results, run_dir / "test_lines.csv")] if results else []
        return paths + plot_alignments(model, datamodule._set("val"), run_dir)

    def predict(
        self, cfg, model, inputs, beam=None, lm_weight=None, page=None, page_xml=None, out=None
    ):
        beam = 1 if beam is None else int(beam)
        if beam < 1:
            raise ConfigError(f"--beam {beam}: must be at least 1")
        if page is not None or page_xml is not None:
            lm = run_lm(self.run_dir, beam, lm_weight)
            if inputs:
                raise ConfigError("give line images or --page with --page-xml, not both")
            if page_xml is None:
                raise ConfigError("--page needs --page-xml (the line regions to transcribe)")

            def read(images: list[torch.Tensor]) -> list[str]:
                return [text for text, _ in decode_lines(model, images, beam, lm)]

            return transcribe_page_xml(Path(page_xml), page, model.height, read, out)
        if not inputs:
            raise ConfigError(
                "name line images to transcribe, or --page PAGE.png --page-xml PAGE.xml"
            )
        from lstmvision.inference.textline import LinePredictor

        predictor = LinePredictor.from_task(self.name, config_to_dict(cfg), model, self.run_dir)
        return [
            r.to_dict()
            for r in predictor.predict(list(inputs), beam=beam, out=out, lm_weight=lm_weight)
        ]

    def smoke_inputs(self, cfg, folder: Path) -> list[Path]:
        return [line.image for line in self.splits(cfg)["test"][:2]]

    def format_prediction(self, prediction: dict) -> str:
        where = prediction["image"] + (f"#{prediction['line']}" if "line" in prediction else "")
        return f"{where}\t{prediction['text']}"
