"""Task ``next-frame``: predict the next ``output_frames`` frames from ``input_frames``.

Data sets (``--dataset``): ``moving-mnist`` (:mod:`lstmvision.data.moving_mnist`), ``visp`` (5
hand-held camera sequences) or a video file / folder of videos, served as windows of consecutive
frames (:mod:`lstmvision.data.frame_windows`). The defaults are for real videos, the recipe files
``recipes/next-frame/<dataset>.yaml`` over them; settings given as 0 that depend on ``--model``
come from ``BY_MODEL`` (:mod:`lstmvision.tasks.next_frame_settings`, with the refused
combinations). Models: ``convlstm``, ``cnn-lstm`` and ``motion-lstm``
(:mod:`lstmvision.models.video`).

Training (OpenSTL's method for ConvLSTM): the model predicts every next frame of the window, the
loss is their mean squared error; with ``scheduled_sampling N`` the forecaster is fed the true
frame instead of its own prediction with a probability falling linearly from 1 to 0 over the
first N steps (0: never; -1: over the first ``sampling_share`` of the steps). Adam under a
one-cycle schedule (:mod:`lstmvision.tasks.schedule`) for a fixed number of epochs, or as many as
fit in ``--budget-minutes`` (:mod:`lstmvision.tasks.budget`).

Metrics (``val_*``, ``test_*``; :class:`lstmvision.tasks.metrics.FrameMetrics`) of the
``output_frames`` predicted from the inputs alone, clamped to [0, 1]: ``mse``, ``mae``, ``ssim``,
``psnr``, each beside the copy-last-frame baseline (``val_baseline_*``, ``baseline_*``).
Pictures: ``next_frames.png`` (input / truth / prediction rows) and ``next_frames.gif``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lstmvision.data import resolve_data_root
from lstmvision.data.frame_windows import window_splits
from lstmvision.data.moving_mnist import MovingMNIST, moving_mnist_splits
from lstmvision.data.moving_mnist_file import MovingMNISTFile
from lstmvision.data.video import parse_size
from lstmvision.errors import ConfigError
from lstmvision.tasks.base import PredictOption, SplitLoaders, SplitSteps, Task, register_task
from lstmvision.tasks.budget import EpochBudget, sampling_steps
from lstmvision.tasks.config import TrainConfig, config_to_dict
from lstmvision.tasks.metrics import FrameMetrics
from lstmvision.tasks.next_frame_settings import BY_MODEL, fill_old_run, int_list, refusal
from lstmvision.tasks.schedule import one_cycle

CONVLSTM_KEYS = (
    "kernel_size patch peephole output_frames residual flow measured_motion readout_kernel norm "
    "readout_hidden cell_init forget_bias"
).split()
"""The ConvLSTM forecaster's arguments that are config keys of the same name."""


@dataclass
class NextFrameConfig(TrainConfig):
    """Defaults for real videos; ``recipes/next-frame/<dataset>.yaml`` over them. ``residual``,
    ``flow``, ``motion_augment``, ``hidden_size`` and ``frame_size`` may be None only in the
    config.yaml of a run of an older version (filled by data set then, as :func:`fill_old_run`
    does)."""

    recipes: ClassVar[str] = "next-frame"

    dataset: str = "moving-mnist"
    """moving-mnist, visp, or a video file / folder of videos"""
    model: Literal["convlstm", "cnn-lstm", "motion-lstm"] = "motion-lstm"
    """convlstm (ConvLSTM forecaster), cnn-lstm (CNN + LSTM + decoder), motion-lstm (real videos)"""
    input_frames: int = 10
    """frames given"""
    output_frames: int = 10
    """frames predicted"""
    hidden_sizes: str = "64,64"
    """convlstm: channels of each ConvLSTM layer, comma-separated"""
    kernel_size: int = 3
    """convlstm: kernel size (odd)"""
    patch: int = 4
    """convlstm: space-to-depth factor (frame sides must be multiples of it)"""
    peephole: bool = False
    """convlstm: Shi's peephole connections"""
    norm: bool = False
    """convlstm: layer-normalised gate inputs, recurrent terms and memory read into h"""
    readout_kernel: int = 1
    """convlstm: kernel of the read-out convolution (odd; 1: each patch from its own cell)"""
    readout_hidden: int = 0
    """convlstm: channels of a hidden layer in the read-out (its convolution, a GELU, then a 1x1
    convolution to the pixels); 0: one linear convolution"""
    cell_init: Literal["lstm", "fan-in"] = "lstm"
    """convlstm: initial weights of the cells: lstm (torch's LSTM's, U(±1/sqrt(hidden))) or fan-in
    (torch's Conv2d's and OpenSTL's, U(±1/sqrt(fan_in)))"""
    forget_bias: float = 0.0
    """convlstm: added to the forget gates' bias at initialisation (1: Jozefowicz et al. 2015)"""
    residual: Optional[bool] = True
    """convlstm: predict the change from the last frame"""
    flow: Optional[bool] = True
    """convlstm: also predict a motion field and warp the frame by it"""
    measured_motion: bool = False
    """convlstm with --flow: also feed it the camera motion measured between frames (affine)"""
    motion_augment: Optional[float] = 1.0
    """real videos: training windows follow random camera paths this strong, px/frame (0: off)"""
    hidden_size: Optional[int] = 0
    """cnn-lstm, motion-lstm: LSTM units (0: by model, 256 cnn-lstm, 64 motion-lstm; saved)"""
    scheduled_sampling: int = 0
    """steps over which the true-frame probability falls from 1 to 0 (0: plain forecaster; -1:
    the first --sampling-share of the steps, moving-mnist; saved)"""
    sampling_share: float = 0.7
    """with --scheduled-sampling -1: the share of the training steps that it spans"""
    frame_size: Optional[str] = "48x64"
    """HEIGHTxWIDTH of the frames"""
    frame_step: int = 1
    """real videos: take every k-th frame"""
    train_size: int = 10000
    """moving-mnist: training sequences per epoch (fresh each epoch)"""
    val_size: int = 500
    """moving-mnist: validation sequences"""
    test_size: int = 2000
    """moving-mnist: test sequences"""
    test_file: Optional[str] = None
    """moving-mnist: test on this .npy of (frames, sequences, 64, 64) uint8 instead of the
    generated test set, e.g. the official mnist_test_seq.npy (10,000 sequences)"""
    epochs: int = 0
    """training epochs (0: by model, 16 for motion-lstm, 2 for the others; saved)"""
    budget_minutes: float = 0.0
    """train as many epochs as fit in this many minutes here instead (machine-dependent: timed
    steps choose them; saved); 0: off, train --epochs"""
    refit_epochs: bool = True
    """with --budget-minutes: after each epoch of the first half, fit the epochs to the budget
    again from the epochs' own times; later only cut a run that would end over a minute late"""
    batch_size: int = 16
    lr: float = 0.0
    """peak learning rate (0: by model, 3e-3 for motion-lstm, 1e-3 for the others; saved)"""
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true"
    """32-true, bf16-mixed (fast where a CPU has AVX512-BF16 or AMX) or 16-mixed (GPU)"""
    grad_clip: float = 1.0
    """clip the gradient norm (0: off)"""


class NextFrameData(SplitLoaders, L.LightningDataModule):
    def __init__(self, cfg: NextFrameConfig):
        super().__init__()
        self.cfg, self.sets = fill_old_run(cfg), {}

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        cfg, root = self.cfg, resolve_data_root(self.cfg.data_root)
        length = cfg.input_frames + cfg.output_frames
        if cfg.dataset == "moving-mnist":
            self.sets = moving_mnist_splits(
                root,
                num_frames=length,
                train_size=cfg.train_size,
                val_size=cfg.val_size,
                test_size=cfg.test_size,
                seed=cfg.seed,
                val_fraction=cfg.val_fraction,
                limit_train=cfg.limit_train,
                download=cfg.download,
            )
            if cfg.test_file:
                self.sets["test"] = MovingMNISTFile(cfg.test_file, length)
        else:
            self.sets = window_splits(
                cfg.dataset,
                root,
                parse_size(cfg.frame_size),
                length,
                frame_step=cfg.frame_step,
                motion=cfg.motion_augment,
                limit_train=cfg.limit_train,
            )

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        data = self.sets[split]
        return DataLoader(
            data,
            batch_size=self.cfg.batch_size,
            shuffle=shuffle and not isinstance(data, MovingMNIST),  # fresh sequences: random
            num_workers=self.cfg.num_workers if split == "train" else 0,
        )


class NextFrameModule(SplitSteps, L.LightningModule):
    def __init__(self, model, cfg: NextFrameConfig):
        super().__init__()
        self.model, self.cfg = model, cfg
        self.scores = torch.nn.ModuleDict(
            {k: FrameMetrics() for k in ("val", "val_baseline", "test", "baseline")}
        )

    def teacher_prob(self) -> float:
        n = self.cfg.scheduled_sampling
        return max(0.0, 1.0 - self.global_step / n) if n > 0 else 0.0

    def on_train_epoch_start(self) -> None:
        data = self.trainer.train_dataloader.dataset
        if hasattr(data, "set_epoch"):
            data.set_epoch(self.current_epoch)

    def _step(self, frames, split: str):
        t_in = self.cfg.input_frames
        if split == "train":
            preds = self.model.rollout(frames, t_in, self.teacher_prob())  # (B, T-1, C, H, W)
            loss = F.mse_loss(preds, frames[:, 1:])
            self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
            return loss
        inputs, truth = frames[:, :t_in], frames[:, t_in:]  # (B, T_in, ...), (B, T_out, ...)
        pred = self.model(inputs, truth.shape[1]).clamp(0, 1)  # (B, T_out, C, H, W)
        copy = inputs[:, -1:].expand_as(truth)  # copy-last-frame baseline
        base = "val_baseline" if split == "val" else "baseline"
        self.scores[split].update(pred, truth)
        self.scores[base].update(copy, truth)
        for key in (split, base):
            for name, metric in self.scores[key].items():
                bar = name == "mse" and key == split
                self.log(f"{key}_{name}", metric, on_step=False, on_epoch=True, prog_bar=bar)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        return one_cycle(self, opt)


@register_task("next-frame")
class NextFrameTask(Task):
    name = "next-frame"
    summary = (
        "next-frame prediction (ConvLSTM or CNN+LSTM; Moving MNIST, ViSP, videos); many-to-many"
    )
    Config = NextFrameConfig
    monitor, monitor_mode = "val_mse", "min"
    smoke_overrides = {  # tests/test_every_task.py
        "dataset": "visp",
        "model": "convlstm",
        "hidden_sizes": "8",
        "patch": 4,
        "frame_size": "24x32",
        "residual": False,
        "flow": False,
        "motion_augment": 0.0,
        "limit_train": 16,
        "batch_size": 8,
        "max_steps": 2,
    }
    predict_options = {
        "out": PredictOption(Path, "folder for the GIF and PNG of the predictions (default: .)")
    }

    def resolve(self, cfg: NextFrameConfig) -> None:
        """Refuse bad settings (:func:`refusal`); then ``BY_MODEL`` for the settings given as 0,
        ``--scheduled-sampling -1`` as a number of steps, and no refit without a budget."""
        problem = refusal(fill_old_run(cfg))
        if problem:
            raise ConfigError(problem)
        cfg.refit_epochs = cfg.refit_epochs and cfg.budget_minutes > 0
        for key, value in BY_MODEL[cfg.model].items():
            if not getattr(cfg, key):
                setattr(cfg, key, value)
        if cfg.scheduled_sampling < 0:
            cfg.scheduled_sampling = sampling_steps(cfg, cfg.epochs)
        if cfg.model == "convlstm":
            int_list(cfg.hidden_sizes, "hidden_sizes")  # refuses a bad list

    def evaluation_datamodule(self, cfg, data: Path) -> NextFrameData:
        """``evaluate --data FILE.npy`` of a moving-mnist model: FILE (e.g. the official
        mnist_test_seq.npy) is the test set; no MNIST digits are read."""
        if cfg.dataset != "moving-mnist" or data.suffix != ".npy":
            raise ConfigError(
                f"{data}: --data takes a Moving MNIST .npy (frames, sequences, 64, 64), for a "
                "moving-mnist model"
            )
        dm = NextFrameData(cfg)
        dm.sets = {"test": MovingMNISTFile(data, cfg.input_frames + cfg.output_frames)}
        return dm

    def model_spec(self, cfg: NextFrameConfig):
        fill_old_run(cfg)
        hidden_size = cfg.hidden_size or BY_MODEL[cfg.model].get("hidden_size", 0)
        if cfg.model == "motion-lstm":
            kwargs = dict(hidden_size=hidden_size, output_frames=cfg.output_frames)
            return "motion-lstm-forecaster", dict(channels=1, **kwargs)
        if cfg.model == "cnn-lstm":
            kwargs = dict(frame_size=list(parse_size(cfg.frame_size)), hidden_size=hidden_size)
            return "cnn-lstm-forecaster", dict(
                channels=1, **kwargs, output_frames=cfg.output_frames
            )
        hidden_sizes = int_list(cfg.hidden_sizes, "hidden_sizes")
        kwargs = {k: getattr(cfg, k) for k in CONVLSTM_KEYS}
        return "convlstm-forecaster", dict(channels=1, hidden_sizes=hidden_sizes, **kwargs)

    def callbacks(self, cfg, clock) -> list:
        return [EpochBudget(cfg, clock, self.name)] if cfg.budget_minutes > 0 else []

    def datamodule(self, cfg) -> NextFrameData:
        return NextFrameData(cfg)

    def module(self, cfg, model) -> NextFrameModule:
        return NextFrameModule(model, cfg)

    @torch.no_grad()
    def pictures(self, cfg, model, datamodule, run_dir: Path) -> list[Path]:
        frames = datamodule.sets["test"][0].unsqueeze(0)  # (1, T, 1, H, W)
        return self._draw(cfg, model, frames, run_dir / "next_frames")

    def _draw(self, cfg, model, frames: torch.Tensor, stem: Path) -> list[Path]:
        from lstmvision.viz.forecast import forecast_pictures

        inputs, truth = frames[0, : cfg.input_frames, 0], frames[0, cfg.input_frames :, 0]
        pred = model.eval()(frames[:, : cfg.input_frames], cfg.output_frames)  # (1, T, 1, H, W)
        return forecast_pictures(inputs, truth, pred.clamp(0, 1)[0, :, 0], stem)

    def predict(self, cfg, model, inputs, out: Path | None = None, **options):
        from lstmvision.inference.next_frame import ForecastPredictor

        predictor = ForecastPredictor.from_task(self.name, config_to_dict(cfg), model, self.run_dir)
        folder = Path(out) if out is not None else Path(".")
        return [r.to_dict() for r in predictor.predict(list(inputs), out=folder)]

    def smoke_inputs(self, cfg, folder: Path) -> list[Path]:
        return [resolve_data_root(cfg.data_root) / "video" / "carphone_pristine.mp4"]

    def format_prediction(self, p: dict) -> str:
        score = f" (mse {p['mse']}, copy-last-frame {p['baseline_mse']})" if "mse" in p else ""
        frames = f"{p['predicted_frames']} frames predicted"
        return f"{p['image']}: {frames} -> {p['gif']}, {p['png']}{score}"
