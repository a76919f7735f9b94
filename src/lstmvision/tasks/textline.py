"""Task ``textline``: text-line recognition with a CRNN (CNN + BiLSTM) trained by CTC.

Data (``--dataset``): ``bronod`` (handwritten French notarial register, split **by page**: pages
10, 20, ..., 90 validate, pages 5, 15, ..., 85 test, the other 72 pages train), ``uw3`` (printed
English: 45 of the 50 training lines train, every 10th validates, the 20 official test lines
test), ``synth-print`` (``--lines`` printed lines drawn from matplotlib's fonts and the shared
text corpora, :mod:`lstmvision.data.synth_lines`: pretraining for uw3 with ``--from``) or a folder
in a generic layout (see :mod:`lstmvision.data.lines`). The charset is built from the training
labels (with ``--from``, joined to the source run's), stored in ``config.yaml`` and
``model.json``; characters a model does not know are counted at test time
(``test_unknown_chars``), never an error.

Metrics: ``{val,test}_cer`` and ``{val,test}_wer`` (torchmetrics, 0-1 scale, greedy decoding) and
``{train,val,test}_loss`` (CTC); ``val_cer`` picks the checkpoint. Training augments each line
(torchvision transforms v2: small rotation, shear and scale, elastic distortion, contrast and
brightness; max-pool dilation or erosion of the strokes); evaluation never does.

Language model (``--lm``, the default; ``--no-lm`` skips all of it): after the test pass a
character n-gram (:class:`lstmvision.nn.ngram.CharNGram`, order ``--lm-order``, Witten-Bell) is
fit on the **training** lines' transcriptions and fused into CTC prefix beam search (shallow
fusion: ``log p_ctc + α · log p_lm + β · |l|``). ``α = lm_weight`` and ``β = length_bonus`` are
chosen on the **validation** lines alone (beam 10, the grid :data:`LM_GRID`, which includes
``(0, 0)``, plain beam search); the test lines are decoded once with that choice. The run gets
``lm.json`` (counts + weights + the grid's validation CER) and metrics ``val_cer_lm``,
``val_wer_lm``, ``test_cer_lm``, ``test_wer_lm``, ``lm_weight``, ``length_bonus``; the greedy
``val_cer``/``test_cer`` are unchanged. ``predict --beam N`` (N > 1) uses ``lm.json`` with its tuned
weights (``--lm-weight`` overrides, 0 turns it off); :func:`add_lm` (``lstmvision textline-lm
RUN``) gives an already-trained run the same.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchmetrics.functional.text import char_error_rate, word_error_rate
from torchmetrics.text import CharErrorRate, WordErrorRate

from lstmvision.data import resolve_data_root
from lstmvision.data.images import open_image
from lstmvision.data.lines import (
    Charset,
    Line,
    line_splits,
    load_line,
    read_line_folder,
    read_page_xml,
    shuffled_width_batches,
    write_page_xml,
)
from lstmvision.data.synth_lines import CHARSET as SYNTH_CHARSET
from lstmvision.data.synth_lines import synth_line_splits
from lstmvision.errors import ConfigError, DataError
from lstmvision.nn.ctc import greedy_decode, prefix_beam_search
from lstmvision.nn.ngram import CharNGram
from lstmvision.tasks import runs
from lstmvision.tasks.base import PredictOption, Task, one_cycle, register_task
from lstmvision.tasks.config import TrainConfig

# ------------------------------------------------------------------------------- augmentation


def elastic(x: torch.Tensor, pixels: float, sigma: float = 6.0) -> torch.Tensor:
    """Elastic distortion of ``(1, H, W)`` by a smooth random field of about ``pixels`` pixels
    (torchvision's ``ElasticTransform`` scales its field by the height for both axes, which on a
    line 20x wider than high moves columns 20x further than rows)."""
    from torchvision.transforms.v2 import functional as TF

    h, w = x.shape[-2:]
    k = 2 * int(2 * sigma) + 1
    field = TF.gaussian_blur(torch.rand(2, 1, h, w) * 2 - 1, [k, k], [sigma, sigma])  # (2, 1, H, W)
    field = field / field.std().clamp(min=1e-6) * pixels  # in pixels, about N(0, pixels)
    scale = torch.tensor([2.0 / max(w, 2), 2.0 / max(h, 2)]).view(
        2, 1, 1, 1
    )  # pixels -> grid units
    displacement = (
        (field * scale).squeeze(1).permute(1, 2, 0).unsqueeze(0)
    )  # (1, H, W, 2): (dx, dy)
    return TF.elastic(x, displacement)


class LineAugment:
    """Random distortions of one ``(1, H, W)`` ink-bright line (training only), torchvision
    transforms v2: rotation/shear/scale/vertical shift, elastic field, brightness/contrast; and
    stroke dilation/erosion by a max-pool."""

    def __init__(self, strength: float = 1.0):
        from torchvision.transforms import v2

        s = self.strength = strength
        self.affine = v2.RandomAffine(
            degrees=1.0 * s,
            translate=(0.0, 0.04 * s),
            scale=(1 - 0.08 * s, 1 + 0.04 * s),
            shear=(-8 * s, 8 * s),
        )
        self.jitter = v2.ColorJitter(brightness=0.3 * s, contrast=0.4 * s)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if random.random() < 0.7:
            x = self.affine(x)
        if random.random() < 0.3:
            x = elastic(x, pixels=1.0 * self.strength)
        r = random.random()
        if r < 0.15:  # thicker strokes (dilation of bright ink)
            x = F.max_pool2d(x[None], (3, 3), 1, 1)[0]
        elif r < 0.3:  # thinner strokes (erosion)
            x = -F.max_pool2d(-x[None], (2, 2), 1, 1)[0, :, 1:, 1:]
        if random.random() < 0.5:
            x = self.jitter(x)
        return x.clamp_(0, 1)


# --------------------------------------------------------------------------------------- data


class LineSet(Dataset):
    """Line images held in memory as uint8 ``(height, W)``; items ``(image (1, H, W), ids, text,
    name)``. ``ids`` drops characters outside the charset (counted in ``unknown``)."""

    def __init__(self, lines: list[Line], height: int, charset: Charset, augment=None):
        cache: dict = {}
        self.lines, self.augment = lines, augment
        self.images = [(load_line(ln, height, cache) * 255).round().to(torch.uint8) for ln in lines]
        self.widths = [im.size(1) for im in self.images]
        self.targets = [torch.tensor(charset.encode(ln.text), dtype=torch.long) for ln in lines]
        self.unknown = [charset.count_unknown(ln.text) for ln in lines]

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, i: int):
        x = self.images[i].float().div(255).unsqueeze(0)  # (1, H, W)
        if self.augment is not None:
            x = self.augment(x)
        return x, self.targets[i], self.lines[i].text, self.lines[i].name, self.unknown[i]


def collate_lines(items) -> dict:
    """Right-pad to the widest line: ``images (B, 1, H, W_max)``, true ``widths (B,)``, CTC
    ``targets`` (all labels concatenated) and ``target_lengths (B,)``."""
    images, targets, texts, names, unknown = zip(*items)
    widths = torch.tensor([im.size(-1) for im in images])
    batch = images[0].new_zeros(len(images), 1, images[0].size(1), int(widths.max()))
    for b, im in enumerate(images):
        batch[b, :, :, : im.size(-1)] = im
    return {
        "images": batch,
        "widths": widths,
        "targets": torch.cat(targets),
        "target_lengths": torch.tensor([len(t) for t in targets]),
        "texts": list(texts),
        "names": list(names),
        "unknown": torch.tensor(unknown),
    }


class WidthBatches(torch.utils.data.Sampler):
    """Reshuffled every epoch: batches of lines of similar width (less padding to compute)."""

    def __init__(self, widths: list[int], batch_size: int, seed: int):
        self.widths, self.batch_size, self.seed, self.epoch = widths, batch_size, seed, 0

    def __iter__(self):
        self.epoch += 1
        return iter(
            shuffled_width_batches(
                self.widths, self.batch_size, random.Random(self.seed * 1000 + self.epoch)
            )
        )

    def __len__(self) -> int:
        return -(-len(self.widths) // self.batch_size)


class TextLineData(L.LightningDataModule):
    """``splits`` maps train/val/test to line lists (a missing split is empty)."""

    def __init__(
        self,
        splits: dict[str, list[Line]],
        charset: Charset,
        height: int,
        batch_size: int,
        augment: float,
        seed: int,
        num_workers: int = 0,
    ):
        super().__init__()
        self.splits, self.charset, self.height, self.batch_size = (
            splits,
            charset,
            height,
            batch_size,
        )
        self.augment, self.seed, self.num_workers = augment, seed, num_workers
        self.sets: dict[str, LineSet] = {}

    def _set(self, split: str) -> LineSet:
        if split not in self.sets:
            aug = LineAugment(self.augment) if split == "train" and self.augment > 0 else None
            self.sets[split] = LineSet(self.splits.get(split, []), self.height, self.charset, aug)
        return self.sets[split]

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(
            stage, ("train", "val", "test")
        )
        for split in wanted:
            self._set(split)

    def _loader(self, split: str) -> DataLoader:
        data = self._set(split)
        if split == "train":
            sampler = WidthBatches(data.widths, self.batch_size, self.seed)
            return DataLoader(
                data, batch_sampler=sampler, collate_fn=collate_lines, num_workers=self.num_workers
            )
        # evaluation: sorted by width, so batches pad little; order does not change the metrics
        order = sorted(range(len(data)), key=lambda i: data.widths[i])
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return DataLoader(
            data, batch_sampler=batches, collate_fn=collate_lines, num_workers=self.num_workers
        )

    def train_dataloader(self):
        return self._loader("train")

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")


# ------------------------------------------------------------------------------------- module


def decode_batch(
    model: nn.Module,
    images: torch.Tensor,
    widths: torch.Tensor | None = None,
    beam: int = 1,
    lm: LineLM | None = None,
):
    """Texts of a batch and the per-line ``(T_b, C)`` log-probabilities (greedy, or beam search
    with the language model ``lm`` fused in when one is given)."""
    log_probs = model(images, widths).log_softmax(-1)  # (T, B, C)
    lengths = (
        model.output_lengths(widths)
        if widths is not None
        else torch.full((images.size(0),), log_probs.size(0))
    )
    lengths = lengths.clamp(max=log_probs.size(0))
    per_line = [log_probs[: int(n), b] for b, n in enumerate(lengths)]  # (T_b, C) each
    if beam > 1:
        texts = [beam_decode(lp, model.charset, beam, lm) for lp in per_line]
    else:
        charset = Charset(model.charset)
        texts = [charset.decode(labels) for labels, _ in greedy_decode(log_probs, lengths)]
    return texts, per_line


def beam_decode(log_probs: torch.Tensor, charset: str, beam: int, lm: LineLM | None = None) -> str:
    """The best labelling of one line's ``(T, C)`` log-probabilities by prefix beam search, with
    ``lm``'s n-gram, weight and length bonus fused in (shallow fusion) when given."""
    fusion = lm.fusion(charset) if lm is not None else {}
    return Charset(charset).decode(prefix_beam_search(log_probs, beam, **fusion)[0][0])


class TextLineModule(L.LightningModule):
    """CTC training (AdamW, one-cycle learning rate) and CER/WER evaluation of a CRNN.

    After a test run, ``line_results`` holds one dict per line (name, target, prediction, cer).
    ``lm_order`` (training runs): at the end of the test epoch, fit a character n-gram of that
    order on the data module's training lines and tune it on its validation lines
    (:func:`tune_lm`); the LM figures are logged with the test metrics and the tuned model is
    left in ``lm`` (the task writes it to ``lm.json``)."""

    def __init__(
        self, model: nn.Module, lr: float, weight_decay: float = 0.0, lm_order: int | None = None
    ):
        super().__init__()
        self.model, self.lr, self.weight_decay, self.lm_order = model, lr, weight_decay, lm_order
        self.cer = nn.ModuleDict({s: CharErrorRate() for s in ("val", "test")})
        self.wer = nn.ModuleDict({s: WordErrorRate() for s in ("val", "test")})
        self.line_results: list[dict] = []
        self.lm: LineLM | None = None

    def forward(self, images, widths=None):
        return self.model(images, widths)

    def _loss(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.model(batch["images"], batch["widths"])  # (T, B, C)
        log_probs = logits.log_softmax(-1)
        lengths = self.model.output_lengths(batch["widths"]).clamp(max=logits.size(0))
        # zero_infinity: a line with more labels than time steps gives no (infinite) loss
        loss = F.ctc_loss(
            log_probs.float(),
            batch["targets"],
            lengths,
            batch["target_lengths"],
            blank=0,
            reduction="mean",
            zero_infinity=True,
        )
        return loss, log_probs, lengths

    def training_step(self, batch, batch_idx):
        loss, _, _ = self._loss(batch)
        self.log(
            "train_loss",
            loss,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(batch["texts"]),
        )
        return loss

    def _evaluate(self, batch, split: str) -> None:
        loss, log_probs, lengths = self._loss(batch)
        charset = Charset(self.model.charset)
        preds = [charset.decode(labels) for labels, _ in greedy_decode(log_probs, lengths)]
        n = len(preds)
        self.cer[split](preds, batch["texts"])
        self.wer[split](preds, batch["texts"])
        self.log(f"{split}_loss", loss, on_epoch=True, batch_size=n)
        self.log(f"{split}_cer", self.cer[split], on_epoch=True, prog_bar=True, batch_size=n)
        self.log(f"{split}_wer", self.wer[split], on_epoch=True, batch_size=n)
        if split == "test":
            self.log(
                "test_unknown_chars",
                batch["unknown"].sum().float(),
                on_epoch=True,
                reduce_fx="sum",
                batch_size=n,
            )
            for name, target, pred, unknown in zip(
                batch["names"], batch["texts"], preds, batch["unknown"].tolist()
            ):
                cer = float(char_error_rate(pred, target)) if target else float(len(pred) > 0)
                self.line_results.append(
                    {
                        "line": name,
                        "cer": round(cer, 4),
                        "target": target,
                        "prediction": pred,
                        "unknown_chars": unknown,
                    }
                )

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
        ngram = CharNGram.fit(
            [ln.text for ln in data.splits["train"]], self.lm_order, self.model.charset
        )
        self.lm, metrics = tune_lm(
            self.model, ngram, data._set("val"), data._set("test"), batch_size=data.batch_size
        )
        self.lm.info["train_lines"] = len(data.splits["train"])
        for key, value in metrics.items():  # float64: lm_weight 0.6 stays 0.6 in metrics.json
            self.log(key, torch.tensor(value, dtype=torch.float64))

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        return one_cycle(self, opt, pct_start=0.15)


def write_line_results(results: list[dict], path: Path) -> Path:
    """Per-line CSV, worst lines (highest CER) first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(
            f, fieldnames=["line", "cer", "unknown_chars", "target", "prediction"]
        )
        writer.writeheader()
        writer.writerows(sorted(results, key=lambda r: -r["cer"]))
    return path


# ---------------------------------------------------------------------------- language model

# (lm_weight, length_bonus) tried on the validation lines; (0, 0) is plain beam search, kept when
# the LM does not help
LM_GRID = ((0.0, 0.0), *((w, b) for w in (0.3, 0.6, 1.0) for b in (0.0, 1.0, 2.0)))
LM_BEAM = 10  # beam width of the tuning and of the *_lm metrics


@dataclass
class LineLM:
    """A character n-gram and the shallow-fusion weights tuned for one recogniser: the run
    folder's ``lm.json`` (plain JSON: the counts, the weights, how they were chosen)."""

    ngram: CharNGram
    lm_weight: float = 0.0
    length_bonus: float = 0.0
    info: dict = field(default_factory=dict)  # beam, validation CER, the tuning grid, lines counted
    _scorers: dict = field(default_factory=dict, repr=False)

    def fusion(self, charset: str) -> dict:
        """Keyword arguments of :func:`prefix_beam_search` for a model with ``charset``."""
        if self.lm_weight == 0.0 and self.length_bonus == 0.0:
            return {}
        if charset not in self._scorers:
            self._scorers[charset] = self.ngram.ctc_scorer(charset)
        return {
            "lm": self._scorers[charset],
            "lm_weight": self.lm_weight,
            "length_bonus": self.length_bonus,
        }

    def save(self, path: Path) -> Path:
        data = {
            "lm_weight": self.lm_weight,
            "length_bonus": self.length_bonus,
            **self.info,
            "ngram": self.ngram.to_dict(),
        }
        runs.write_atomic(Path(path), json.dumps(data, ensure_ascii=False) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> LineLM:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            ngram = CharNGram.from_dict(data.pop("ngram"))
            weight, bonus = float(data.pop("lm_weight")), float(data.pop("length_bonus"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise DataError(f"{path}: not a textline language model ({e})") from None
        return cls(ngram, weight, bonus, data)


@torch.no_grad()
def line_log_probs(
    model: nn.Module, lines: LineSet | list[Line], batch_size: int = 16
) -> list[torch.Tensor]:
    """Per line (in order) the ``(T, C)`` CPU log-probabilities of ``model`` (eval mode), batched
    by width like the evaluation loader."""
    data = (
        lines
        if isinstance(lines, LineSet)
        else LineSet(lines, model.height, Charset(model.charset))
    )
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    order = sorted(range(len(data)), key=lambda i: data.widths[i])
    out: list[torch.Tensor | None] = [None] * len(data)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = collate_lines([data[i] for i in chunk])
        _, per_line = decode_batch(model, batch["images"].to(device), batch["widths"].to(device))
        for i, lp in zip(chunk, per_line):
            out[i] = lp.float().cpu()
    model.train(was_training)
    return out


def error_rates(preds: list[str], targets: list[str]) -> tuple[float, float]:
    """(CER, WER) of whole lists (torchmetrics: edits over reference characters/words)."""
    return float(char_error_rate(preds, targets)), float(word_error_rate(preds, targets))


def _texts(lines: LineSet | list[Line]) -> list[str]:
    return [ln.text for ln in (lines.lines if isinstance(lines, LineSet) else lines)]


def tune_lm(
    model: nn.Module,
    ngram: CharNGram,
    lines_val: LineSet | list[Line],
    lines_test: LineSet | list[Line],
    grid=LM_GRID,
    beam: int = LM_BEAM,
    batch_size: int = 16,
    progress=None,
) -> tuple[LineLM, dict]:
    """Choose ``(lm_weight, length_bonus)`` from ``grid`` by the CER of beam search (width
    ``beam``) on the **validation** lines only, then decode the test lines once with that choice.

    Returns the tuned :class:`LineLM` (its ``info`` records the beam, the grid's validation CER and
    the greedy CER of both splits, from the same log-probabilities) and the metrics ``val_cer_lm``,
    ``val_wer_lm``, ``test_cer_lm``, ``test_wer_lm`` (none without test lines), ``lm_weight`` and
    ``length_bonus``. ``progress``: called with one line of text per decoding pass."""
    say = progress or (lambda text: None)
    charset = Charset(model.charset)

    def rates(
        log_probs: list[torch.Tensor], texts: list[str], lm: LineLM | None
    ) -> tuple[float, float]:
        if lm is None:  # greedy
            return error_rates([charset.decode(greedy_decode(lp)[0][0]) for lp in log_probs], texts)
        return error_rates([beam_decode(lp, model.charset, beam, lm) for lp in log_probs], texts)

    val, val_texts = line_log_probs(model, lines_val, batch_size), _texts(lines_val)
    tried = []
    for weight, bonus in grid:
        cer, wer = rates(val, val_texts, LineLM(ngram, float(weight), float(bonus)))
        tried.append(
            {
                "lm_weight": float(weight),
                "length_bonus": float(bonus),
                "val_cer": cer,
                "val_wer": wer,
            }
        )
        say(
            f"lm_weight {weight:g} length_bonus {bonus:g}: val CER {cer:.4f} ({len(val)} lines, beam {beam})"
        )
    best = min(tried, key=lambda r: (r["val_cer"], r["val_wer"]))  # equals: the first in the grid
    info = {
        "beam": beam,
        "val_cer_lm": best["val_cer"],
        "val_cer_greedy": rates(val, val_texts, None)[0],
        "grid": tried,
    }
    lm = LineLM(ngram, best["lm_weight"], best["length_bonus"], info)
    metrics = {
        "val_cer_lm": best["val_cer"],
        "val_wer_lm": best["val_wer"],
        "lm_weight": lm.lm_weight,
        "length_bonus": lm.length_bonus,
    }
    test, test_texts = line_log_probs(model, lines_test, batch_size), _texts(lines_test)
    if test:
        metrics["test_cer_lm"], metrics["test_wer_lm"] = rates(test, test_texts, lm)
        info.update(
            test_cer_lm=metrics["test_cer_lm"], test_cer_greedy=rates(test, test_texts, None)[0]
        )
    say(
        f"chose lm_weight {lm.lm_weight:g} length_bonus {lm.length_bonus:g}"
        + (f": test CER {metrics['test_cer_lm']:.4f}" if test else "")
    )
    return lm, metrics


# ----------------------------------------------------------------------------------- pictures


def plot_alignment(
    image: torch.Tensor, log_probs: torch.Tensor, charset: str, out: Path, title: str = ""
) -> Path:
    """The CTC alignment of one line: the image with each emitted character written above the
    column strip (``reduction`` pixels per frame) that emitted it, and below it the per-frame probabilities of
    the blank and of the characters the line's decoding uses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ((labels, frames),) = greedy_decode(log_probs)
    probs = log_probs.exp().T.cpu().numpy()  # (C, T)
    rows = [0] + sorted(set(labels))
    names = ["blank"] + [{" ": "space"}.get(charset[i - 1], charset[i - 1]) for i in rows[1:]]
    height, width = image.shape[-2:]
    reduction = -(-width // max(1, probs.shape[1]))  # image columns per time step
    fig, (top, bottom) = plt.subplots(
        2,
        1,
        figsize=(min(40, max(6, width / 60)), 2 + 0.18 * len(rows)),
        gridspec_kw={"height_ratios": [1.3, max(1, 0.2 * len(rows))]},
    )
    top.imshow(
        1 - image.reshape(height, width).cpu().numpy(), cmap="gray", aspect="auto", vmin=0, vmax=1
    )
    for label, t in zip(labels, frames):
        x = reduction * (t + 0.5)
        top.axvline(x, color="tab:red", lw=0.5, alpha=0.6)
        top.text(x, -2, charset[label - 1], ha="center", va="bottom", fontsize=7, color="tab:red")
    top.set_xlim(0, width), top.set_yticks([]), top.set_title(title, fontsize=8, pad=12)
    bottom.imshow(
        probs[rows],
        aspect="auto",
        cmap="viridis",
        interpolation="nearest",
        extent=(0, probs.shape[1] * reduction, len(rows) - 0.5, -0.5),
        vmin=0,
        vmax=1,
    )
    bottom.set_yticks(range(len(rows)), names, fontsize=6)
    bottom.set_xlim(0, width), bottom.set_xlabel(f"image column ({reduction} per time step)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# --------------------------------------------------------------------------------------- task


# per data set (--epochs/--batch-size/--hidden-size/--lines unset): uw3's 45 lines need many small
# steps; handwriting underfits at 128 LSTM units (training loss above validation loss at 40
# epochs); synth-print keeps uw3's 128 units so that `--dataset uw3 --from` fine-tunes its run,
# and its lines x epochs fit 40 minutes of one CPU thread
DATASET_DEFAULTS = {
    "bronod": {"epochs": 60, "batch_size": 16, "hidden_size": 192},
    "uw3": {"epochs": 300, "batch_size": 4, "hidden_size": 128},
    "synth-print": {"epochs": 3, "batch_size": 16, "hidden_size": 128, "lines": 20000},
    "folder": {"epochs": 60, "batch_size": 16, "hidden_size": 192},
}
SYNTH_EVAL_LINES = 400  # synth-print validation and test lines (at most a tenth of --lines each)


def _dataset_defaults(cfg) -> None:
    """Fill the unset per-data-set settings, so config.yaml records what ran. With ``--from``,
    an unset ``hidden_size`` is the source run's (its weights must fit)."""
    if cfg.from_run and cfg.hidden_size is None:
        _, saved = runs.read_run_config(Path(cfg.from_run))
        cfg.hidden_size = saved.get("hidden_size")
    for key, value in DATASET_DEFAULTS.get(cfg.dataset, DATASET_DEFAULTS["folder"]).items():
        if getattr(cfg, key, None) is None:
            setattr(cfg, key, value)


@dataclass
class TextLineConfig(TrainConfig):
    dataset: str = "bronod"
    """bronod (handwriting, split by page), uw3 (printed), synth-print (synthetic printed lines) or a folder
    (labels.tsv + lines/, or .gt.txt files)"""
    lines: Optional[int] = None
    """synth-print: synthetic training lines (default 20000; validation and test: a tenth each, at most 400)"""
    height: int = 32
    """line height the images are scaled to (a multiple of 16)"""
    channels: str = "16,32,64,96"
    """output channels of the 4 convolution blocks"""
    reduction: int = 4
    """image columns per time step (2 or 4)"""
    hidden_size: Optional[int] = None
    """LSTM units per direction (default: the --from run's, else 192; 128 for uw3 and synth-print; saved)"""
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
    """start from a finished textline run's weights (e.g. handwriting -> printed); its charset is kept"""
    epochs: Optional[int] = None
    """training epochs (default: 60 for bronod and folders, 300 for uw3's 45 lines, 3 for synth-print; saved)"""
    batch_size: Optional[int] = None
    """mini-batch size (default: 16; 4 for uw3; saved with the run)"""
    lr: float = 2e-3
    lm: bool = True
    """fit a character n-gram LM on the training lines and tune its weight on validation (lm.json)"""
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


def _source(cfg):
    if not cfg.from_run:
        return None
    task_name, _ = runs.read_run_config(Path(cfg.from_run))
    if task_name != "textline":
        raise ConfigError(f"{cfg.from_run}: a {task_name!r} run, not a textline run (--from)")
    return runs.load_model(Path(cfg.from_run))


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

    def _splits(self, cfg) -> dict[str, list[Line]]:
        if cfg.height % 16 or cfg.height < 16:
            raise ConfigError(f"height={cfg.height}: must be a positive multiple of 16")
        if cfg.dataset == "synth-print":
            _dataset_defaults(cfg)
            if cfg.lines < 1:
                raise ConfigError(f"lines={cfg.lines}: must be at least 1")
            held_out = min(SYNTH_EVAL_LINES, max(2, cfg.lines // 10))
            sizes = {"train": cfg.lines, "val": held_out, "test": held_out}
            return synth_line_splits(resolve_data_root(cfg.data_root), sizes, cfg.seed)
        return line_splits(cfg.dataset, resolve_data_root(cfg.data_root))

    def _resolve_charset(self, cfg, splits) -> None:
        """Sets ``cfg.charset`` (saved in config.yaml) from the training labels (+ --from's)."""
        if cfg.charset is not None:
            return
        chars = set("".join(ln.text for ln in splits["train"]))
        if cfg.dataset == "synth-print":
            chars |= set(SYNTH_CHARSET)  # all of printable ASCII, however few lines
        if cfg.from_run:
            _, saved = runs.read_run_config(Path(cfg.from_run))
            chars |= set(saved.get("charset") or "")
        cfg.charset = "".join(sorted(chars))
        if not cfg.charset:
            raise DataError(f"{cfg.dataset}: the training lines have no characters to learn")

    def model_spec(self, cfg):
        if cfg.charset is None:
            self._resolve_charset(cfg, self._splits(cfg))
        _dataset_defaults(cfg)
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
        source = _source(cfg)
        if source is not None:
            source.reset_classifier(model.charset)  # keep the rows of the shared characters
            try:
                model.load_state_dict(source.state_dict())
            except RuntimeError as e:
                raise ConfigError(
                    f"{cfg.from_run}: its model does not fit this config ({str(e).splitlines()[0]}); "
                    "use the same --height, --channels, --hidden-size and --num-layers"
                ) from None
        return model

    def datamodule(self, cfg) -> TextLineData:
        splits = self._splits(cfg)
        if not splits["train"] or not splits["val"]:
            raise DataError(
                f"{cfg.dataset}: need training and validation lines, found "
                f"{len(splits['train'])} and {len(splits['val'])}"
            )
        self._resolve_charset(cfg, splits)
        _dataset_defaults(cfg)
        if cfg.limit_train:
            splits = {**splits, "train": splits["train"][: cfg.limit_train]}
        return TextLineData(
            splits,
            Charset(cfg.charset),
            cfg.height,
            cfg.batch_size,
            cfg.augment,
            cfg.seed,
            cfg.num_workers,
        )

    def evaluation_datamodule(self, cfg, data: Path) -> TextLineData:
        """All lines of ``data`` (its ``test/`` subfolder if it has one) as the test split."""
        data = Path(data)
        lines = read_line_folder(data / "test" if (data / "test").is_dir() else data)
        return TextLineData(
            {"test": lines}, Charset(cfg.charset), cfg.height, cfg.batch_size, 0.0, cfg.seed
        )

    def module(self, cfg, model) -> TextLineModule:
        if cfg.lm_order < 1:
            raise ConfigError(f"lm_order={cfg.lm_order}: must be at least 1")
        training = self.run_dir is None  # a loaded run's evaluate leaves its lm.json alone
        return TextLineModule(
            model, cfg.lr, cfg.weight_decay, lm_order=cfg.lm_order if cfg.lm and training else None
        )

    def write_outputs(self, cfg, module: TextLineModule, run_dir: Path, split: str) -> list[Path]:
        """``lm.json`` after training's test (the n-gram and its weights tuned on validation)."""
        if split != "test" or module.lm is None:
            return []
        return [module.lm.save(Path(run_dir) / "lm.json")]

    def evaluation_report(self, cfg, module: TextLineModule, out: Path | None) -> list[str]:
        """The worst lines (and, with ``out``, the per-line CSV ``out/lines.csv``)."""
        results = sorted(module.line_results, key=lambda r: -r["cer"])
        report = [
            f"worst line {r['line']} cer {r['cer']:.3f}: {r['target']!r} -> {r['prediction']!r}"
            for r in results[:5]
        ]
        if out is not None and results:
            report.append(
                f"per-line results: {write_line_results(results, Path(out) / 'lines.csv')}"
            )
        return report

    def pictures(self, cfg, model, datamodule, run_dir: Path) -> list[Path]:
        """``test_lines.csv`` (per-line results, worst first) and ``alignment.png`` of 3 validation lines."""
        results, val = [], datamodule.sets.get("val") or datamodule._set("val")
        with torch.no_grad():
            for batch in datamodule.test_dataloader():
                preds, _ = decode_batch(model, batch["images"], batch["widths"])
                for name, target, pred, unknown in zip(
                    batch["names"], batch["texts"], preds, batch["unknown"].tolist()
                ):
                    cer = float(char_error_rate(pred, target)) if target else float(len(pred) > 0)
                    results.append(
                        {
                            "line": name,
                            "cer": round(cer, 4),
                            "target": target,
                            "prediction": pred,
                            "unknown_chars": unknown,
                        }
                    )
            paths = [write_line_results(results, run_dir / "test_lines.csv")] if results else []
            for k, i in enumerate(range(0, len(val), max(1, len(val) // 3))[:3]):
                image = val[i][0]  # (1, H, W)
                _, (lp,) = decode_batch(model, image[None])
                paths.append(
                    plot_alignment(
                        image,
                        lp,
                        model.charset,
                        run_dir / f"alignment_{k}.png",
                        title=f"{val.lines[i].name}: {val.lines[i].text}",
                    )
                )
        return paths

    # ------------------------------------------------------------------------------- predict

    @torch.no_grad()
    def transcribe(
        self, model, images: list[torch.Tensor], beam: int = 1, lm: LineLM | None = None
    ) -> list[tuple[str, torch.Tensor]]:
        """Texts and log-probabilities of ``(H, W)`` line tensors (one at a time: no padding);
        ``lm`` is fused into the beam search (``beam > 1``)."""
        model.eval()
        out = []
        for image in images:
            (text,), (lp,) = decode_batch(model, image[None, None], beam=beam, lm=lm)
            out.append((text, lp))
        return out

    def line_lm(self, beam: int, lm_weight: float | None = None) -> LineLM | None:
        """The loaded run's ``lm.json`` for a beam search (its tuned weights, ``lm_weight`` if given);
        None for greedy decoding, ``lm_weight = 0`` or a run without one."""
        if lm_weight is not None and lm_weight < 0:
            raise ConfigError(f"--lm-weight {lm_weight}: must be at least 0")
        path = self.run_dir / "lm.json" if self.run_dir is not None else None
        if beam == 1 or lm_weight == 0:
            if lm_weight:
                raise ConfigError(
                    "--lm-weight needs --beam 2 or more: the language model is fused into the beam search"
                )
            return None
        if path is None or not path.is_file():
            if lm_weight is not None:
                raise ConfigError(
                    f"{self.run_dir}: no lm.json to weigh (train with --lm, or add one with "
                    f"`lstmvision textline-lm {self.run_dir}`)"
                )
            return None
        lm = LineLM.load(path)
        if lm_weight is not None:
            lm.lm_weight = float(lm_weight)
        return lm

    def predict(
        self,
        cfg,
        model,
        inputs,
        beam=None,
        lm_weight=None,
        page=None,
        page_xml=None,
        out=None,
        **options,
    ):
        beam = 1 if beam is None else int(beam)
        if beam < 1:
            raise ConfigError(f"--beam {beam}: must be at least 1")
        lm = self.line_lm(beam, lm_weight)
        if page is not None or page_xml is not None:
            if inputs:
                raise ConfigError("give line images or --page with --page-xml, not both")
            return self._predict_page(model, page, page_xml, out, beam, lm)
        if not inputs:
            raise ConfigError(
                "name line images to transcribe, or --page PAGE.png --page-xml PAGE.xml"
            )
        results = []
        for path in inputs:
            image = load_line(Line(Path(path), ""), model.height)
            ((text, lp),) = self.transcribe(model, [image], beam, lm)
            result = {"image": str(path), "text": text}
            if out is not None:
                picture = plot_alignment(
                    image, lp, model.charset, Path(out) / f"{Path(path).stem}.alignment.png", text
                )
                result["alignment"] = str(picture)
            results.append(result)
        return results

    def _predict_page(self, model, page, page_xml, out, beam, lm=None) -> list[dict]:
        if page_xml is None:
            raise ConfigError("--page needs --page-xml (the line regions to transcribe)")
        lines = read_page_xml(Path(page_xml), Path(page) if page is not None else None)
        cache = {lines[0].image: open_image(lines[0].image)} if lines else {}
        images = [load_line(ln, model.height, cache) for ln in lines]
        texts = [t for t, _ in self.transcribe(model, images, beam, lm)]
        target = Path(out or ".") / Path(page_xml).name
        if target.resolve() == Path(page_xml).resolve():
            target = target.with_name(Path(page_xml).stem + ".transcribed.xml")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_page_xml(Path(page_xml), {ln.id: t for ln, t in zip(lines, texts)}, target)
        return [
            {"image": str(ln.image), "line": ln.id, "text": t, "page_xml": str(target)}
            for ln, t in zip(lines, texts)
        ]

    def format_prediction(self, prediction: dict) -> str:
        where = prediction["image"] + (f"#{prediction['line']}" if "line" in prediction else "")
        return f"{where}\t{prediction['text']}"


def add_lm(
    run_dir: Path, order: int | None = None, data_root: str | None = None, progress=None
) -> dict:
    """Give a finished textline run its language model, as training with ``--lm`` does: fit the
    character n-gram on the run's **training** lines (its config's data set and ``limit_train``),
    tune its weights on the validation lines (:func:`tune_lm`), write ``lm.json`` and merge the LM
    figures into ``metrics.json``. Returns those figures plus the greedy CER of both splits."""
    run_dir = Path(run_dir)
    task_name, _ = runs.read_run_config(run_dir)
    if task_name != "textline":
        raise ConfigError(f"{run_dir}: a {task_name!r} run, not a textline run")
    cfg = runs.load_run_config(
        run_dir, TextLineTask, {"data_root": data_root} if data_root else None
    )
    order = cfg.lm_order if order is None else order
    if order < 1:
        raise ConfigError(f"--order {order}: must be at least 1")
    model = runs.load_model(run_dir)
    splits = TextLineTask()._splits(cfg)
    train = splits["train"][: cfg.limit_train] if cfg.limit_train else splits["train"]
    if not splits["val"]:
        raise DataError(f"{cfg.dataset}: no validation lines to tune the language model on")
    ngram = CharNGram.fit([ln.text for ln in train], order, model.charset)
    lm, metrics = tune_lm(
        model,
        ngram,
        splits["val"],
        splits["test"],
        batch_size=cfg.batch_size or 16,
        progress=progress,
    )
    lm.info["train_lines"] = len(train)
    lm.save(run_dir / "lm.json")
    runs.update_metrics(run_dir, metrics)
    return {
        **metrics,
        "val_cer_greedy": lm.info["val_cer_greedy"],
        "test_cer_greedy": lm.info.get("test_cer_greedy"),
        "train_lines": len(train),
        "lm_file": str(run_dir / "lm.json"),
    }
