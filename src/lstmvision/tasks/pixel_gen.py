"""Task ``pixel-gen``: a generative model of binarized MNIST digits, pixel by pixel (PixelRNN).

The model (``--model``: ``pixelrnn-row``, ``pixelrnn-diagonal`` or the ``pixelcnn`` baseline,
:mod:`lstmvision.models.pixelrnn`) gives every pixel's Bernoulli logit from the pixels before it
in raster order, so an image's likelihood is exact: its negative log-likelihood in nats is the sum
of the 784 pixels' binary cross-entropies (``{split}_nll``, nats per image; ``{split}_loss`` is
the same per pixel, what the optimiser minimises; ``{split}_bits_per_dim`` is
``nll / (784 ln 2)``). ``val_nll`` picks the best checkpoint.

Data (:mod:`lstmvision.data.binarized`): training digits binarized afresh each time they are
drawn (in the training step), validation and test digits binarized once with a fixed seed and
cached, so every model is scored on the same bits; validation is ``val_fraction`` of MNIST's
training split, test is its official test split.

Pictures: ``samples.png`` (16 digits drawn from nothing), ``completions.png`` (test digits' bottom
halves drawn from their top halves, three times each: the paper's Figure 1 idea) and
``nll_heatmap.png`` (where the model is unsure, per pixel). ``lstmvision predict RUN`` draws
``--count`` digits (``--seed``); ``lstmvision predict RUN digit.png`` completes a black-and-white
28x28 image below its first ``--keep-rows`` rows. Both write PNGs (to ``--out``, default ``.``).

The defaults are the recipe (``recipes/pixel-gen/binarized-mnist.yaml``): 3 Diagonal BiLSTM
layers of h = 16, 7 epochs of batches of 32, about 70 minutes on 2 CPU cores; docs/pixel-gen.md
gives the commands of the Row LSTM and PixelCNN beside it and how the sizes were chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Optional

import lightning as L
import torch
from torch.utils.data import TensorDataset

from lstmvision.data import resolve_data_root, train_val_indices
from lstmvision.data.binarized import load_binarized_mnist, read_binary_image
from lstmvision.errors import ConfigError
from lstmvision.nn.pixel import IMPLEMENTATIONS, bernoulli_nll
from lstmvision.tasks.base import PredictOption, SplitLoaders, SplitSteps, Task, register_task
from lstmvision.tasks.config import TrainConfig
from lstmvision.tasks.schedule import one_cycle

MODELS = ("pixelrnn-row", "pixelrnn-diagonal", "pixelcnn")
IMAGE_SIZE = 28
SAMPLES, COMPLETED_DIGITS, COMPLETIONS, HEATMAP_DIGITS = 16, 6, 3, 1000


@dataclass
class PixelGenConfig(TrainConfig):
    recipes: ClassVar[str] = "pixel-gen"  # recipes/pixel-gen/<dataset>.yaml
    dataset: Literal["binarized-mnist"] = "binarized-mnist"
    """MNIST, binarized: training digits afresh each draw, validation and test once (fixed seed)"""
    model: Literal[MODELS] = "pixelrnn-diagonal"
    """pixelrnn-row, pixelrnn-diagonal or pixelcnn (masked convolutions, the baseline)"""
    hidden_size: int = 16
    """the paper's h: LSTM units (or masked-convolution channels), 2h features between layers"""
    num_layers: int = 3
    """residual layers between the 7x7 mask-A convolution and the output layers"""
    implementation: Literal[IMPLEMENTATIONS] = "auto"
    """LSTM layers: auto (fast), equations (autograd over the equations), fast (written backward)"""
    limit_eval: Optional[int] = None
    """score only the first N validation and test digits (a quick look; default: all)"""
    binarized_cache: Optional[str] = None
    """folder of the fixed validation and test bits (default ~/.cache/lstmvision/binarized-mnist)"""
    grad_clip: float = 1.0
    """clip the gradient norm (0: off)"""
    epochs: int = 7
    batch_size: int = 32
    lr: float = 2e-3


class BinarizedData(SplitLoaders, L.LightningDataModule):
    """Batches ``(images,)`` of uint8 ``(B, 1, 28, 28)``: grey levels 0-255 for training (the
    training step binarizes them), 0 or 255 for validation and test (the fixed bits)."""

    def __init__(self, cfg: PixelGenConfig):
        super().__init__()
        self.cfg, self.sets = cfg, {}

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        cfg = self.cfg
        data = load_binarized_mnist(
            resolve_data_root(cfg.data_root), cfg.binarized_cache, download=cfg.download
        )
        train_idx, val_idx = train_val_indices(len(data.train_grey), cfg.val_fraction)
        images = {
            "train": data.train_grey[train_idx[: cfg.limit_train]],
            "val": data.train_bits[val_idx[: cfg.limit_eval]] * 255,
            "test": data.test_bits[: cfg.limit_eval] * 255,
        }
        self.sets = {split: TensorDataset(x[:, None]) for split, x in images.items()}  # (N,1,H,W)

    def bits(self, split: str, count: int) -> torch.Tensor:
        """The first ``count`` fixed digits of ``split`` (val or test): float 0./1.
        ``(count, 1, 28, 28)``."""
        return self.sets[split].tensors[0][:count].float() / 255


def image_nll(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``-log p(x)`` in nats of each binary image ``(B, 1, H, W)``: ``(B,)``."""
    return bernoulli_nll(model(images), images).flatten(1).sum(1)


class PixelModule(SplitSteps, L.LightningModule):
    """Maximum likelihood: the mean over images of ``-log p(x)``, per pixel; AdamW under the
    one-cycle schedule."""

    def __init__(self, model: torch.nn.Module, cfg: PixelGenConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def _step(self, batch, split: str) -> torch.Tensor:
        (grey,) = batch  # uint8 (B, 1, H, W)
        p = grey.float() / 255
        x = torch.bernoulli(p) if split == "train" else p  # fresh bits; fixed ones are 0./1.
        nll = image_nll(self.model, x)  # (B,) nats per image
        pixels = x[0].numel()
        loss = nll.mean() / pixels  # nats per pixel
        on_step = split == "train"
        log = dict(on_epoch=True, batch_size=len(x), sync_dist=not on_step)
        self.log(f"{split}_loss", loss, on_step=on_step, prog_bar=on_step, **log)
        self.log(f"{split}_nll", nll.mean(), on_step=False, prog_bar=not on_step, **log)
        self.log(f"{split}_bits_per_dim", loss / math.log(2), on_step=False, **log)
        return loss

    def configure_optimizers(self):
        return one_cycle(self, torch.optim.AdamW(self.parameters(), lr=self.cfg.lr))


@register_task("pixel-gen")
class PixelGenTask(Task):
    name = "pixel-gen"
    summary = "PixelRNN: generate and complete binarized MNIST digits (Row LSTM, Diagonal BiLSTM)"
    Config = PixelGenConfig
    monitor = "val_nll"
    predict_options = {
        "count": PredictOption(
            int, "digits to draw (no input: default 16), or completions per input image (4)"
        ),
        "seed": PredictOption(int, "random seed of the drawing (default 0)"),
        "keep_rows": PredictOption(int, "input images: rows kept from the top (default 14)"),
        "out": PredictOption(Path, "folder for the PNGs (default: .)"),
    }
    predict_needs_inputs = False
    smoke_overrides = {
        "model": "pixelrnn-diagonal",
        "hidden_size": 4,
        "num_layers": 1,
        "limit_train": 64,
        "limit_eval": 32,
        "batch_size": 32,
        "max_steps": 2,
        "binarized_cache": "smoke-binarized",  # relative: in the folder the test runs in
    }

    def model_spec(self, cfg: PixelGenConfig):
        kwargs = dict(hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, image_size=IMAGE_SIZE)
        if cfg.model != "pixelcnn":
            kwargs["implementation"] = cfg.implementation
        return cfg.model, kwargs

    def datamodule(self, cfg):
        return BinarizedData(cfg)

    def module(self, cfg, model):
        return PixelModule(model, cfg)

    @torch.no_grad()
    def pictures(self, cfg, model, datamodule, run_dir: Path) -> list[Path]:
        from lstmvision.viz.pixels import plot_completions, plot_nll_heatmap, plot_samples

        model.eval()
        title = f"{self.name} {cfg.model}"
        samples = model.sample(SAMPLES, seed=0)
        digits = datamodule.bits("test", COMPLETED_DIGITS)  # (N, 1, H, W)
        known = digits.repeat_interleave(COMPLETIONS, dim=0)  # each digit COMPLETIONS times
        completed = model.sample(len(known), seed=0, known=known, keep_rows=IMAGE_SIZE // 2)
        heat = datamodule.bits("test", HEATMAP_DIGITS)
        pixel_nll = torch.cat([bernoulli_nll(model(x), x) for x in heat.split(cfg.batch_size)])
        return [
            plot_samples(samples, run_dir / "samples.png", f"{title}: {SAMPLES} samples"),
            plot_completions(
                digits,
                completed.view(len(digits), COMPLETIONS, *digits.shape[1:]),
                IMAGE_SIZE // 2,
                run_dir / "completions.png",
                f"{title}: bottom halves of test digits completed",
            ),
            plot_nll_heatmap(
                pixel_nll[:, 0], heat, run_dir / "nll_heatmap.png", f"{title}: per-pixel NLL"
            ),
        ]

    @torch.no_grad()
    def predict(self, cfg, model, inputs, count=None, seed=None, keep_rows=None, out=None):
        from lstmvision.viz.pixels import image_grid, save_png

        model.eval()
        seed = 0 if seed is None else seed
        folder = Path(out) if out is not None else Path(".")
        if count is not None and count < 1:
            raise ConfigError(f"--count {count}: must be at least 1")
        keep = IMAGE_SIZE // 2 if keep_rows is None else keep_rows
        if not 0 <= keep <= IMAGE_SIZE:
            raise ConfigError(f"--keep-rows {keep}: must be in 0 .. {IMAGE_SIZE}")
        folder.mkdir(parents=True, exist_ok=True)
        if not inputs:
            samples = model.sample(SAMPLES if count is None else count, seed=seed)
            nll = image_nll(model, samples)
            return [
                {
                    "image": str(save_png(x[0], folder / f"sample-seed{seed}-{k:03d}.png")),
                    "seed": seed,
                    "index": k,
                    "nll": round(float(nll[k]), 2),
                }
                for k, x in enumerate(samples)
            ]
        results = []
        for path in inputs:
            image = read_binary_image(path, IMAGE_SIZE)[None, None]  # (1, 1, H, W)
            n = 4 if count is None else count
            completed = model.sample(n, seed=seed, known=image, keep_rows=keep)
            strip = image_grid(torch.cat([image, completed]), n + 1)  # the image, then its n
            png = save_png(strip, folder / f"{Path(path).stem}-completed.png")
            results.append(
                {
                    "image": str(path),
                    "keep_rows": keep,
                    "completions": n,
                    "png": str(png),
                    "nll": round(float(image_nll(model, image)[0]), 2),
                }
            )
        return results

    def format_prediction(self, p: dict) -> str:
        if "png" in p:
            return (
                f"{p['image']}: {p['completions']} completions below row {p['keep_rows']} -> "
                f"{p['png']} (the image: {p['nll']} nats)"
            )
        return f"{p['image']}: sample {p['index']} of seed {p['seed']} ({p['nll']} nats)"

    def smoke_inputs(self, cfg, folder: Path) -> list[Path]:
        from lstmvision.viz.pixels import save_png

        data = load_binarized_mnist(resolve_data_root(cfg.data_root), cfg.binarized_cache)
        return [save_png(data.test_bits[k].float(), folder / f"digit-{k}.png") for k in (0, 1)]
