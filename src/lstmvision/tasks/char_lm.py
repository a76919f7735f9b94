"""Task ``char-lm``: a character-level language model on tiny Shakespeare (or any UTF-8 text).

"Given q, the next letter is likely u": the model reads characters and predicts the next one at
every step (many-to-many); ``lstmvision predict RUN --prompt "ROMEO:" --length 300`` samples from
it (one-to-many). Training is truncated backpropagation through time: the training text is laid
out as ``batch_size`` parallel streams (:class:`lstmvision.data.text.StreamWindows`), consecutive
batches continue the same streams, and the recurrent state is carried from one batch to the next
with its history cut (``detach``) between windows of ``seq_len`` characters. The state starts from
zeros at each epoch. Validation does the same over the
last ``val_fraction`` of the text (tiny Shakespeare's usual 90/10 split) and logs ``val_loss``
(cross-entropy in nats per character) and ``val_bpc`` (bits per character = nats / ln 2). The
text has no third split: ``test_*`` is computed on the validation text too (no setting is chosen
on it other than the best epoch).

Pictures: ``activations.png``, a few hidden units of the last layer over a passage of the
validation text, each character coloured by the unit's value (Karpathy 2015).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lstmvision.data import resolve_data_root
from lstmvision.data.text import CharVocab, StreamWindows, char_corpus_path, read_text, split_text
from lstmvision.models.text import detach_state
from lstmvision.tasks.base import PredictOption, SplitSteps, Task, register_task
from lstmvision.tasks.config import TrainConfig, config_to_dict
from lstmvision.tasks.schedule import one_cycle


@dataclass
class CharLMConfig(TrainConfig):
    dataset: Literal["tinyshakespeare"] = "tinyshakespeare"
    """text corpus under the data root (ignored when --text-file is given)"""
    text_file: Optional[str] = None
    """train on this UTF-8 text file instead of --dataset"""
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    """recurrent cell"""
    embed_size: int = 64
    """character embedding size"""
    hidden_size: int = 512
    """hidden units per layer"""
    num_layers: int = 2
    """stacked recurrent layers"""
    dropout: float = 0.2
    """dropout between layers and before the output layer"""
    seq_len: int = 100
    """characters per window of truncated backpropagation through time"""
    batch_size: int = 64
    """parallel streams of text (the state of each is carried across batches)"""
    epochs: int = 10
    """passes over the training text (in a 20-epoch run validation loss was lowest at epoch 10)"""
    lr: float = 2e-3
    weight_decay: float = 0.0
    """weight decay (AdamW)"""
    grad_clip: float = 1.0
    """clip the gradient norm (0: off)"""
    limit_train: Optional[int] = None
    """use only the first N characters of the training text"""
    temperature: float = 0.8
    """default sampling temperature of predict (0: greedy)"""


class CharStreams(L.LightningDataModule):
    """Training and validation text as :class:`StreamWindows`; a batch: a window of all streams."""

    def __init__(self, cfg: CharLMConfig):
        super().__init__()
        self.cfg = cfg
        self.vocab: CharVocab | None = None
        self.sets: dict[str, StreamWindows] = {}

    def text_path(self) -> Path:
        if self.cfg.text_file:
            return Path(self.cfg.text_file)
        return char_corpus_path(self.cfg.dataset, resolve_data_root(self.cfg.data_root))

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        path = self.text_path()
        text = read_text(path)
        train, val = split_text(text, self.cfg.val_fraction)
        if self.cfg.limit_train:
            train = train[: self.cfg.limit_train]
        self.vocab = CharVocab(text)  # all characters: a validation character is never unknown
        b, n = self.cfg.batch_size, self.cfg.seq_len
        self.sets["train"] = StreamWindows(
            self.vocab.encode(train, str(path)), b, n, what=f"{path} (training part)"
        )
        self.sets["val"] = StreamWindows(
            self.vocab.encode(val, str(path)), b, n, what=f"{path} (validation part)"
        )
        self.val_text = val

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.sets["train"], batch_size=None, shuffle=False
        )  # in order: the state carries over

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.sets["val"], batch_size=None, shuffle=False)

    test_dataloader = val_dataloader  # tiny Shakespeare has two splits; see the module docstring


class CharLMModule(SplitSteps, L.LightningModule):
    """Next-character cross-entropy with the state carried across consecutive batches; each pass
    over the streams (a training epoch, a validation, a test) starts from zeros."""

    def __init__(self, model, cfg: CharLMConfig):
        super().__init__()
        self.model, self.cfg = model, cfg
        self.state = None  # the recurrent state the next batch continues from

    def _step(self, batch, split: str) -> torch.Tensor:
        x, y = batch  # (B, L), (B, L)
        logits, state = self.model.run(x, self.state)  # (B, L, V)
        self.state = detach_state(state)  # truncated BPTT: no gradient into the previous window
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())  # nats per character
        on_step = split == "train"
        self.log(f"{split}_loss", loss, on_step=on_step, on_epoch=True, prog_bar=True)
        self.log(
            f"{split}_bpc",
            loss / math.log(2),
            on_step=False,
            on_epoch=True,
            prog_bar=split != "train",
        )
        return loss

    def on_train_epoch_start(self):
        self.state = None

    def on_validation_epoch_start(self):
        self._train_state, self.state = self.state, None  # validation keeps training's state

    def on_validation_epoch_end(self):
        self.state = getattr(self, "_train_state", None)

    def on_test_epoch_start(self):
        self.state = None

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
        return one_cycle(self, opt, pct_start=0.1)


@register_task("char-lm")
class CharLMTask(Task):
    name = "char-lm"
    summary = (
        "character language model (tiny Shakespeare), truncated BPTT; many-to-many, "
        "samples one-to-many"
    )
    Config = CharLMConfig
    predict_options = {
        "prompt": PredictOption(str, "text to start from"),
        "length": PredictOption(int, "characters to sample"),
        "temperature": PredictOption(float, "sampling temperature (0: greedy)"),
        "seed": PredictOption(int, "random seed of the sampling"),
    }
    predict_needs_inputs = False
    smoke_overrides = {
        "embed_size": 8,
        "hidden_size": 16,
        "num_layers": 1,
        "seq_len": 32,
        "batch_size": 8,
        "limit_train": 4000,
        "val_fraction": 0.01,
        "max_steps": 2,
    }

    def datamodule(self, cfg) -> CharStreams:
        return CharStreams(cfg)

    def model_spec(self, cfg):
        dm = self.datamodule(cfg)
        dm.setup()
        return "char-lm", dict(
            chars=dm.vocab.chars,
            embed_size=cfg.embed_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            cell=cfg.cell,
            dropout=cfg.dropout,
        )

    def module(self, cfg, model) -> CharLMModule:
        return CharLMModule(model, cfg)

    def pictures(self, cfg, model, datamodule, run_dir: Path):
        from lstmvision.viz.explain import plot_text_activations

        text = datamodule.val_text[:480]
        vocab = CharVocab(model.chars)
        with torch.no_grad():
            acts = model.hidden_states(vocab.encode(text)[None])[0]  # (T, H)
        return [
            plot_text_activations(
                text,
                acts,
                run_dir / "activations.png",
                units=4,
                title=f"char-lm {cfg.cell}: hidden units of the last layer over validation text",
            )
        ]

    def predict(
        self, cfg, model, inputs, prompt=None, length=None, temperature=None, seed=None, **options
    ):
        from lstmvision.inference.char_lm import CharLMPredictor

        predictor = CharLMPredictor.from_task(self.name, config_to_dict(cfg), model, self.run_dir)
        prompt = "\n" if prompt is None else prompt
        result = predictor.predict(prompt, length=length, temperature=temperature, seed=seed)
        return [result.to_dict()]

    def format_prediction(self, prediction: dict) -> str:
        return prediction["text"]
