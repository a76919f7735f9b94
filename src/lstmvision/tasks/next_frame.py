"""Task ``next-frame``: predict the next ``output_frames`` frames from ``input_frames`` (many-to-many).

Data sets (``--dataset``):

* ``moving-mnist``: Srivastava et al.'s bouncing digits, 64x64, 20 frames (10 -> 10). Training
  sequences are fresh every epoch (``train_size`` of them) from the digits of MNIST's training
  split minus a held-out ``val_fraction``; validation: ``val_size`` fixed sequences (seed 1) of the
  held-out digits; test: ``test_size`` fixed sequences (seed 2015) of MNIST's test digits.
* ``visp``: the 5 real hand-held camera sequences of ``video/visp_sequences_h96.npz``, split by
  sequence, never by frame: train ``mire2`` (501 frames), ``mbt_cube`` (218), ``line`` (33);
  validation ``ellipse1`` (50); test ``cube`` (80). Frames resized to ``frame_size`` (48x64).
* a PATH: a video file or a folder of videos, grey frames (every ``frame_step``-th, ``frame_size``).
  Three or more videos are split by video (sorted names: the last is test, the one before it
  validation, the rest training); fewer are each cut in time into 80 % / 10 % / 10 % blocks
  (training, validation, test), so no window crosses a block.

Real sequences are served as every window of ``input_frames + output_frames`` consecutive frames.

Training (OpenSTL's method for ConvLSTM): the model predicts every next frame of the window, the
loss is their mean squared error; with ``scheduled_sampling N`` the forecaster is fed the true
frame instead of its own prediction with a probability falling linearly from 1 to 0 over the
first N steps (0: a plain forecaster from the start). Adam under a one-cycle schedule. The Moving
MNIST recipe: two ConvLSTM layers of 128 channels on 8x8 blocks (``patch`` 8: an 8x8 grid of cells;
4x the weights of 64 channels on 4x4 blocks for about a sixth more time per step), as many epochs as
fit in ``budget_minutes`` (59) of training on this machine (:func:`budget_epochs` times a few steps
first; then ``refit_epochs`` fits the count again after each epoch of the first half from the
epochs' own times, :class:`EpochBudget`: 17 on a 2-core AMX Xeon, whose epochs take 200 s) at a peak
learning rate of 3e-3, scheduled sampling over the first 70 % of the steps (``sampling_share``), a 3x3 read-out
(``readout_kernel``) and bf16-mixed arithmetic where the CPU computes bfloat16 natively
(:func:`native_bf16`).

On real videos the default model is ``motion-lstm``
(:class:`lstmvision.models.video.MotionLSTMForecaster`): each step measures the camera motion
from the previous frame (a global affine fit by Lucas-Kanade alignment, refused where it explains
the pair worse than no motion), our LSTM reads that history and forecasts the next motion and a
blur variance for what it cannot foresee; the prediction is the last frame warped and blurred
(16 epochs at a peak learning rate of 3e-3 by default). It starts as the copy-last-frame baseline
and learns from the training windows how much of a hand-held motion goes on and how much is shake.

With ``--model convlstm`` on real videos the ConvLSTM predicts a motion field that warps the last
frame (``--flow``) plus a change (``--residual``), both on by default there: it starts as the
copy-last-frame baseline and learns the motion. Hand-held sequences hold the camera still much of
the time, so for either model their training windows are cut from frames at twice the size by a
crop moving along random camera paths (``--motion-augment``, :class:`MotionWindows`); validation
and test windows are the plain frames. ``--measured-motion`` also feeds the ConvLSTM the camera
motion measured between consecutive frames (:func:`lstmvision.models.video.robust_affine_params`),
so that it forecasts motion instead of measuring it.

Metrics (validation ``val_*``, test ``test_*``) on the ``output_frames`` predicted from the
inputs alone, clamped to [0, 1]: ``mse`` and ``mae`` as OpenSTL defines them (per frame: summed
over the pixels, averaged over frames and sequences), ``ssim`` and ``psnr`` (torchmetrics, per
frame, averaged), each beside the copy-last-frame baseline (``baseline_*`` on the test set,
``val_baseline_*``). Pictures: ``next_frames.png`` (input / truth / prediction rows) and
``next_frames.gif``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchmetrics import MeanMetric
from torchmetrics.image import StructuralSimilarityIndexMeasure

from lstmvision.data import load_split, resolve_data_root, train_val_indices
from lstmvision.data.moving_mnist import MovingMNIST
from lstmvision.data.video import find_videos, load_npz_sequences, parse_size, read_frames
from lstmvision.errors import ConfigError, DataError
from lstmvision.models.video import sample_pixels
from lstmvision.tasks.base import PredictOption, Task, one_cycle, register_task, stretch_one_cycle
from lstmvision.tasks.config import TrainConfig

VISP_FILE = "video/visp_sequences_h96.npz"
VISP_SPLIT = {"train": ("mire2", "mbt_cube", "line"), "val": ("ellipse1",), "test": ("cube",)}
MOVING_MNIST_SEEDS = {"val": 1, "test": 2015}


@dataclass
class NextFrameConfig(TrainConfig):
    dataset: str = "moving-mnist"
    """moving-mnist, visp, or a video file / folder of videos"""
    model: Optional[Literal["convlstm", "cnn-lstm", "motion-lstm"]] = None
    """convlstm (ConvLSTM encoder-forecaster), cnn-lstm (CNN encoder + LSTM + decoder) or motion-lstm (an LSTM over the measured camera motion; real videos) (default: convlstm for moving-mnist, motion-lstm for real videos; saved)"""
    input_frames: int = 10
    """frames given"""
    output_frames: int = 10
    """frames predicted"""
    hidden_sizes: Optional[str] = None
    """convlstm: channels of each ConvLSTM layer, comma-separated (default: 128,128 for moving-mnist, else 64,64; saved)"""
    kernel_size: int = 3
    """convlstm: kernel size (odd)"""
    patch: Optional[int] = None
    """convlstm: space-to-depth factor (frame sides must be multiples of it) (default: 8 for moving-mnist, else 4; saved)"""
    peephole: bool = False
    """convlstm: Shi's peephole connections"""
    norm: bool = False
    """convlstm: layer-normalised cells: each gate's input and recurrent terms, and the memory read into h"""
    readout_kernel: Optional[int] = None
    """convlstm: kernel of the convolution that reads the frame out of the last layer (odd; 1: each patch from its own cell) (default: 3 for moving-mnist, else 1; saved)"""
    readout_hidden: int = 0
    """convlstm: channels of a hidden layer in the read-out (its convolution, a GELU, then a 1x1 convolution to the pixels); 0: one linear convolution"""
    cell_init: Literal["lstm", "fan-in"] = "lstm"
    """convlstm: initial weights of the cells: lstm (torch's LSTM's, U(±1/sqrt(hidden))) or fan-in (torch's Conv2d's and OpenSTL's, U(±1/sqrt(fan_in)))"""
    forget_bias: float = 0.0
    """convlstm: added to the forget gates' bias at initialisation (1: Jozefowicz et al. 2015)"""
    residual: Optional[bool] = None
    """convlstm: predict the change from the last frame (default: on for real videos, off for moving-mnist)"""
    flow: Optional[bool] = None
    """convlstm: also predict a motion field and warp the frame by it (default: on for real videos)"""
    measured_motion: bool = False
    """convlstm with --flow: also feed it the camera motion measured between each frame and the one before (a global affine field)"""
    motion_augment: Optional[float] = None
    """real videos: training windows follow random camera paths of this strength, px/frame (default 1; 0 off)"""
    hidden_size: Optional[int] = None
    """cnn-lstm, motion-lstm: LSTM units (default 256 for cnn-lstm, 64 for motion-lstm)"""
    scheduled_sampling: Optional[int] = None
    """steps over which the true-frame probability falls from 1 to 0 (0: plain forecaster) (default: the first --sampling-share of training on moving-mnist, else 0; saved)"""
    sampling_share: float = 0.7
    """moving-mnist without --scheduled-sampling: the share of the training steps that scheduled sampling spans"""
    frame_size: Optional[str] = None
    """HEIGHTxWIDTH of the frames (default 64x64 for moving-mnist, else 48x64)"""
    frame_step: int = 1
    """real videos: take every k-th frame"""
    train_size: int = 10000
    """moving-mnist: training sequences per epoch (fresh each epoch)"""
    val_size: int = 500
    """moving-mnist: validation sequences"""
    test_size: int = 2000
    """moving-mnist: test sequences"""
    epochs: Optional[int] = None
    """training epochs (default: for moving-mnist as many as fit in --budget-minutes here, from a few training steps timed first, then refitted to the epochs' own times (--refit-epochs; 17 on a 2-core AMX Xeon, fewer on a slower CPU); on real videos 16 for motion-lstm, 2 for the others; saved)"""
    budget_minutes: float = 59.0
    """moving-mnist without --epochs: the training time the epochs are chosen to fit"""
    refit_epochs: Optional[bool] = None
    """after each epoch of the first half, fit the epochs to --budget-minutes again from the time the epochs so far took; the one-cycle schedule and scheduled sampling stretch with them; past the half the count only drops, where the run would end over a minute late (default: on when the budget chose the epochs; saved)"""
    batch_size: int = 16
    lr: Optional[float] = None
    """peak learning rate (default: 3e-3 for moving-mnist and motion-lstm, 1e-3 for the others; saved)"""
    precision: Optional[Literal["32-true", "bf16-mixed", "16-mixed"]] = None
    """arithmetic (Lightning): 32-true, bf16-mixed or 16-mixed (GPU) (default: bf16-mixed for moving-mnist on a CPU that computes bfloat16 natively, AVX512-BF16 or AMX; else 32-true; saved)"""
    grad_clip: float = 1.0
    """clip the gradient norm (0: off)"""


# -------------------------------------------------------------------------------------------- data


class Windows(Dataset):
    """Every window of ``length`` consecutive frames of some uint8 sequences ``(N, H, W)``, as
    ``(length, 1, H, W)`` floats in [0, 1]."""

    def __init__(self, seqs: list[torch.Tensor], length: int):
        self.seqs = [s for s in seqs if len(s) >= length]
        self.length = length
        self.index = [(k, t) for k, s in enumerate(self.seqs) for t in range(len(s) - length + 1)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        k, t = self.index[i]
        return self.seqs[k][t : t + self.length].unsqueeze(1).float().div(255)  # (T, 1, H, W)


class MotionWindows(Windows):
    """Training windows under a random camera path (synthetic ego-motion augmentation).

    ``seqs`` are stored at ``SOURCE_SCALE`` times the output ``size``; each window is cut out of
    them, zoomed in by ``1 / CROP_SCALE`` so that the path has room to move, by a crop that moves
    along a smooth random path: a velocity (a random heading; a speed log-uniform in 0.05-3 output
    pixels per frame) with a random acceleration each frame (its standard deviation, the shake,
    log-uniform in 0.02-1 px/frame², so some paths are smooth and some jerky), a rotation rate and
    a zoom rate, all times ``strength``. The window's own motion stays in it. With probability
    ``still`` the crop does not move. Real hand-held sequences often hold the camera still for long
    stretches; this fills the training set with the motions a forecaster must learn to continue.
    """

    def __init__(
        self,
        seqs: list[torch.Tensor],
        length: int,
        size: tuple[int, int],
        strength: float = 1.0,
        still: float = 0.25,
    ):
        super().__init__(seqs, length)
        self.size, self.strength, self.still = size, strength, still

    def path(self, src: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Crop centre ``(T, 2)`` (source pixels, x y), angle ``(T,)`` (radians), scale ``(T,)``
        (source pixels per output pixel) of one window."""
        t, k = self.length, SOURCE_SCALE * CROP_SCALE  # source pixels per output pixel
        if torch.rand(()) < self.still:
            velocity, turn, zoom = torch.zeros(t, 2), torch.zeros(t), torch.zeros(t)
        else:
            s = self.strength
            speed = s * math.exp(
                torch.empty(()).uniform_(math.log(0.05), math.log(3.0)).item()
            )  # log-uniform
            heading = torch.rand(()) * 2 * math.pi
            start = speed * torch.stack([torch.cos(heading), torch.sin(heading)])
            shake = s * math.exp(
                torch.empty(()).uniform_(math.log(0.02), math.log(1.0)).item()
            )  # hand tremor
            velocity = start + torch.cumsum(torch.randn(t, 2) * shake, 0)  # (T, 2) output px/frame
            turn = torch.randn(()) * 0.005 * s + torch.cumsum(
                torch.randn(t) * 0.001 * s, 0
            )  # rad/frame
            zoom = torch.randn(()) * 0.005 * s + torch.cumsum(
                torch.randn(t) * 0.001 * s, 0
            )  # log-scale/frame
        offset = torch.cumsum(velocity, 0) * k  # (T, 2) in source pixels
        offset = offset - offset[0]
        margin = (
            torch.tensor([src[1] - self.size[1] * k, src[0] - self.size[0] * k]).clamp(min=0) / 2
        )
        low = -margin - offset.min(0).values  # where the start may lie, keeping the path in frame
        high = margin - offset.max(0).values
        start = torch.where(low <= high, low + torch.rand(2) * (high - low), (low + high) / 2)
        centre = torch.tensor([src[1] / 2, src[0] / 2]) + start + offset
        angle = torch.cumsum(turn, 0) - turn[0]
        scale = k * torch.exp(-(torch.cumsum(zoom, 0) - zoom[0]))
        return centre, angle, scale

    def __getitem__(self, i: int) -> torch.Tensor:
        k, t = self.index[i]
        frames = self.seqs[k][t : t + self.length].unsqueeze(1).float().div(255)  # (T, 1, Hs, Ws)
        h, w = self.size
        centre, angle, scale = self.path(tuple(frames.shape[-2:]))
        ys = torch.arange(h, dtype=torch.float32) - (h - 1) / 2
        xs = torch.arange(w, dtype=torch.float32) - (w - 1) / 2
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (h, w) output pixels about the centre
        cos, sin = (
            (torch.cos(angle) * scale)[:, None, None],
            (torch.sin(angle) * scale)[:, None, None],
        )
        sx = centre[:, 0, None, None] + cos * gx - sin * gy  # (T, h, w) source pixels
        sy = centre[:, 1, None, None] + sin * gx + cos * gy
        return sample_pixels(frames, sx, sy)  # (T, 1, h, w)


SOURCE_SCALE = 2  # training frames are stored at twice the output size ...
CROP_SCALE = (
    0.75  # ... and cut out 1.33x zoomed in, leaving a margin for the camera path to move in
)


def _resize(seq: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(N, H, W)`` -> uint8 ``(N, h, w)`` (bilinear, antialiased)."""
    x = torch.from_numpy(seq).unsqueeze(1).float()  # (N, 1, H, W)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.squeeze(1).round().clamp(0, 255).to(torch.uint8)


def _time_split(seq: torch.Tensor) -> dict[str, torch.Tensor]:
    n = len(seq)
    a, b = int(0.8 * n), int(0.9 * n)
    return {"train": seq[:a], "val": seq[a:b], "test": seq[b:]}


def real_sequences(cfg, root: Path, scale: int = 1) -> dict[str, list[torch.Tensor]]:
    """``{split: [uint8 (N, H, W) sequences]}`` of ``visp`` or a video PATH (see the module doc),
    frames ``scale`` times ``--frame-size``."""
    h, w = parse_size(cfg.frame_size or "48x64")
    size = (h * scale, w * scale)
    if cfg.dataset == "visp":
        path = root / VISP_FILE
        seqs = load_npz_sequences(path)
        missing = [n for names in VISP_SPLIT.values() for n in names if n not in seqs]
        if missing:
            raise DataError(
                f"{path}: lacks the sequence(s) {', '.join(missing)} (has {', '.join(seqs)})"
            )
        return {
            split: [_resize(seqs[n], size) for n in names] for split, names in VISP_SPLIT.items()
        }
    videos = find_videos(cfg.dataset)
    frames = [torch.from_numpy(read_frames(v, cfg.frame_step, size, grey=True)) for v in videos]
    if len(frames) >= 3:
        return {"train": frames[:-2], "val": [frames[-2]], "test": [frames[-1]]}
    parts = [_time_split(f) for f in frames]
    return {split: [p[split] for p in parts] for split in ("train", "val", "test")}


class NextFrameData(L.LightningDataModule):
    def __init__(self, cfg: NextFrameConfig):
        super().__init__()
        self.cfg, self.sets = cfg, {}

    @property
    def length(self) -> int:
        return self.cfg.input_frames + self.cfg.output_frames

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        cfg, root = self.cfg, resolve_data_root(self.cfg.data_root)
        if cfg.dataset == "moving-mnist":
            size = parse_size(cfg.frame_size or "64x64")
            if size != (64, 64):
                raise ConfigError(f"--frame-size {cfg.frame_size}: moving-mnist frames are 64x64")
            train, _ = load_split("mnist", root, "train", download=cfg.download)
            test, _ = load_split("mnist", root, "test", download=cfg.download)
            train_idx, val_idx = train_val_indices(len(train), cfg.val_fraction)
            digits = {
                "train": train[train_idx].numpy(),
                "val": train[val_idx].numpy(),
                "test": test.numpy(),
            }
            if cfg.limit_train:
                digits["train"] = digits["train"][: cfg.limit_train]
            self.sets = {
                "train": MovingMNIST(
                    digits["train"], cfg.train_size, cfg.seed, fixed=False, num_frames=self.length
                ),
                **{
                    s: MovingMNIST(digits[s], n, MOVING_MNIST_SEEDS[s], num_frames=self.length)
                    for s, n in (("val", cfg.val_size), ("test", cfg.test_size))
                },
            }
            return
        size = parse_size(cfg.frame_size or "48x64")
        motion = motion_augment(cfg)
        seqs = real_sequences(cfg, root, SOURCE_SCALE if motion else 1)
        source = seqs["train"]
        if motion:
            seqs = {
                split: [_resize(p.numpy(), size) for p in parts] for split, parts in seqs.items()
            }
        for split, parts in seqs.items():
            windows = Windows(parts, self.length)
            if split == "train" and motion:
                windows = MotionWindows(source, self.length, size, motion)
            if len(windows) == 0:
                longest = max((len(p) for p in parts), default=0)
                raise DataError(
                    f"{cfg.dataset}: the {split} split's longest sequence has {longest} frame(s); "
                    f"a window needs {self.length} (input_frames + output_frames)"
                )
            self.sets[split] = windows
        if cfg.limit_train:
            self.sets["train"].index = self.sets["train"].index[: cfg.limit_train]

    def train_dataloader(self) -> DataLoader:
        moving = isinstance(
            self.sets["train"], MovingMNIST
        )  # fresh random sequences: order is already random
        return DataLoader(
            self.sets["train"],
            batch_size=self.cfg.batch_size,
            shuffle=not moving,
            num_workers=self.cfg.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.sets["val"], batch_size=self.cfg.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.sets["test"], batch_size=self.cfg.batch_size)


def native_bf16(accelerator: str) -> bool:
    """Whether training on ``accelerator`` runs on a CPU whose oneDNN computes bfloat16 natively
    (AVX512-BF16 or AMX): there bf16-mixed is about 1.6x faster per step; elsewhere it is emulated
    and slower than float32."""
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    try:
        return on_cpu and bool(
            torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )  # oneDNN's own check (a private torch function)
    except (AttributeError, RuntimeError):  # a torch build without it: keep float32
        return False


EVAL_STEP_COST = 0.4
"""A validation batch (rollout without backward, metrics) against a training step."""
STEP_OVERHEAD = 1.11
"""A training step in a run (data, scheduled sampling, logging, checkpoints, validation's share)
against the timed step: with the weight gradients computed once per sequence (``ConvLSTM.unrolled``)
the Moving MNIST recipe's epochs took 258 and 260 s on a 2-core AMX Xeon where :func:`step_seconds`
gave 0.366 s just before (1.11 x 0.366 x (625 + 0.4 x 32) = 259 s); with them as matrix products
(``_shifted_weight_grad``) 200 s on average after a timed 0.280 s (1.12). The timed step varies by
about 5 % from one process to the next. Before the first change the ratio was 1.06 (epochs of
286 s on average after a timed 0.413 s)."""
MAX_BUDGET_EPOCHS = 200


def step_seconds(
    model: torch.nn.Module,
    frames: torch.Tensor,
    input_frames: int,
    precision: str = "32-true",
    repeats: int = 3,
    warmup: int = 2,
) -> float:
    """Median seconds of one training step of a forecaster on ``frames`` ``(B, T, C, H, W)`` (its
    rollout, mean squared error, backward and an Adam step; autocast as Lightning's ``precision``),
    after ``warmup`` steps. The model is trained by it: time a copy you mean to keep."""
    import statistics
    import time

    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    device = next(model.parameters()).device
    frames = frames.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = F.mse_loss(model.rollout(frames, input_frames), frames[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def train_batches(cfg: NextFrameConfig) -> int:
    """Training steps per epoch of ``cfg.train_size`` Moving MNIST sequences."""
    return math.ceil(cfg.train_size / cfg.batch_size)


def sampling_steps(cfg: NextFrameConfig, epochs: int) -> int:
    """Moving MNIST's default ``scheduled_sampling``: the first ``sampling_share`` of ``epochs``'s steps."""
    return int(epochs * train_batches(cfg) * cfg.sampling_share)


def budget_epochs(
    cfg: NextFrameConfig, name: str, kwargs: dict, frame_size: tuple[int, int], log=None
) -> int:
    """The epochs of ``cfg.train_size`` sequences (and a validation of ``cfg.val_size``) that fit in
    ``cfg.budget_minutes`` of training on this machine, from a few timed steps of the model; at
    least 1, at most ``MAX_BUDGET_EPOCHS``."""
    from lstmvision.models import get_model

    if cfg.budget_minutes <= 0:
        raise ConfigError(f"--budget-minutes {cfg.budget_minutes}: must be positive")
    gpu = torch.cuda.is_available() and cfg.accelerator in ("gpu", "cuda", "auto")
    with torch.random.fork_rng(devices=[]):  # the run's own random numbers stay as they were
        torch.manual_seed(cfg.seed)
        model = get_model(name, **kwargs).to("cuda" if gpu else "cpu")
        frames = torch.rand(cfg.batch_size, cfg.input_frames + cfg.output_frames, 1, *frame_size)
        step = step_seconds(model, frames, cfg.input_frames, cfg.precision)
    batches = train_batches(cfg) + EVAL_STEP_COST * math.ceil(cfg.val_size / cfg.batch_size)
    epochs = max(
        1, min(MAX_BUDGET_EPOCHS, int(cfg.budget_minutes * 60 // (STEP_OVERHEAD * step * batches)))
    )
    (log or _stderr)(
        f"next-frame: a training step takes {step:.3f} s here ({cfg.precision}, {torch.get_num_threads()} threads): "
        f"{epochs} epoch(s) fit in --budget-minutes {cfg.budget_minutes:g} (--epochs sets them)"
    )
    return epochs


LATE_GRACE_S = 60.0
"""Past the first half of a refitted run (:func:`refit_epochs`), how far past the budget the run
may be expected to end before its epochs are cut."""


def refit_epochs(done: int, seconds: float, epochs: int, budget_s: float) -> int:
    """The epochs a run should train in all, after its first ``done`` of ``epochs`` took
    ``seconds`` (validation and checkpoints included), to end within ``budget_s``: in the first
    half of the run as many as fit at the mean time per epoch so far (up or down); past it the
    count stays unless the run would end more than ``LATE_GRACE_S`` past the budget, so that the
    learning rate's annealing is not moved late. Never fewer than ``done`` (``done``: stop now),
    never more than ``MAX_BUDGET_EPOCHS``."""
    per_epoch = seconds / max(1, done)
    if 2 * done <= epochs:
        fit = int(budget_s // per_epoch)
    else:
        fit = min(epochs, int((budget_s + LATE_GRACE_S) // per_epoch))
    return max(done, min(MAX_BUDGET_EPOCHS, fit))


class EpochBudget(L.Callback):
    """``--refit-epochs``: after each validation, :func:`refit_epochs` from the run's training
    clock; a new count sets the trainer's ``max_epochs``, stretches the one-cycle schedule
    (:func:`stretch_one_cycle`) and scheduled sampling (when it is ``--sampling-share`` of the
    steps), and is written to the run's ``config.yaml`` (so ``--resume`` and ``--config`` use it)."""

    def __init__(self, cfg: NextFrameConfig, clock, say=_stderr):
        self.cfg, self.clock, self.say = cfg, clock, say

    def on_train_start(self, trainer, pl_module) -> None:
        # a resumed run: config.yaml's count wins over a checkpoint saved before its last refit
        self._apply(trainer, self.cfg.epochs)

    def on_validation_end(
        self, trainer, pl_module
    ) -> None:  # before ModelCheckpoint saves (it runs last)
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        done, seconds = trainer.current_epoch + 1, self.clock.seconds
        epochs = refit_epochs(done, seconds, self.cfg.epochs, self.cfg.budget_minutes * 60)
        if epochs == self.cfg.epochs:
            return
        self.say(
            f"next-frame: {done} epoch(s) took {seconds:.0f} s: {epochs} epochs in all fit in "
            f"--budget-minutes {self.cfg.budget_minutes:g} (were {self.cfg.epochs})"
        )
        self._apply(trainer, epochs)
        if trainer.is_global_zero:
            from lstmvision.tasks import runs

            runs.save_config(Path(trainer.default_root_dir), "next-frame", self.cfg)

    def _apply(self, trainer, epochs: int) -> None:
        cfg = self.cfg
        if cfg.scheduled_sampling == sampling_steps(
            cfg, cfg.epochs
        ):  # the default share, not a given count
            cfg.scheduled_sampling = sampling_steps(cfg, epochs)
        cfg.epochs = trainer.fit_loop.max_epochs = epochs
        for config in trainer.lr_scheduler_configs:
            stretch_one_cycle(config.scheduler, epochs * trainer.num_training_batches)


def motion_augment(cfg) -> float:
    """The ``--motion-augment`` strength: default 1 on real videos; moving-mnist has none."""
    if cfg.dataset == "moving-mnist":
        if cfg.motion_augment:
            raise ConfigError(
                "--motion-augment: moving-mnist has no camera; it applies to real videos"
            )
        return 0.0
    return 1.0 if cfg.motion_augment is None else float(cfg.motion_augment)


# ------------------------------------------------------------------------------------------ module


PSNR_CAP = 100.0


class FrameMetrics(torch.nn.Module):
    """OpenSTL's per-frame MSE and MAE (sums over the pixels of a frame, averaged over frames and
    sequences, [0, 1] scale), torchmetrics' SSIM, and PSNR per frame, averaged, capped at
    ``PSNR_CAP`` dB: a frame predicted exactly (copy-last on a still frame) would be infinite."""

    def __init__(self):
        super().__init__()
        self.mse, self.mae = MeanMetric(), MeanMetric()
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self.psnr = MeanMetric()

    def update(self, pred: torch.Tensor, truth: torch.Tensor) -> None:
        diff = pred - truth  # (B, T, C, H, W)
        self.mse.update(diff.square().sum((2, 3, 4)))  # (B, T): one value per frame
        self.mae.update(diff.abs().sum((2, 3, 4)))
        self.ssim.update(pred.flatten(0, 1), truth.flatten(0, 1))  # (B*T, C, H, W)
        frame_mse = diff.square().mean((2, 3, 4)).clamp(min=10 ** (-PSNR_CAP / 10))  # (B, T)
        self.psnr.update(-10 * torch.log10(frame_mse))  # data range 1

    def items(self):
        return (("mse", self.mse), ("mae", self.mae), ("ssim", self.ssim), ("psnr", self.psnr))


class NextFrameModule(L.LightningModule):
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

    def training_step(self, frames, batch_idx):
        preds = self.model.rollout(
            frames, self.cfg.input_frames, self.teacher_prob()
        )  # (B, T-1, C, H, W)
        loss = F.mse_loss(preds, frames[:, 1:])
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def _evaluate(self, frames, split: str) -> None:
        t_in = self.cfg.input_frames
        inputs, truth = frames[:, :t_in], frames[:, t_in:]  # (B, T_in, ...), (B, T_out, ...)
        pred = self.model(inputs, truth.shape[1]).clamp(0, 1)  # (B, T_out, C, H, W)
        copy = inputs[:, -1:].expand_as(truth)  # copy-last-frame baseline
        base = "val_baseline" if split == "val" else "baseline"
        self.scores[split].update(pred, truth)
        self.scores[base].update(copy, truth)
        for key in (split, base):
            for name, metric in self.scores[key].items():
                self.log(
                    f"{key}_{name}",
                    metric,
                    on_step=False,
                    on_epoch=True,
                    prog_bar=name == "mse" and key == split,
                )

    def validation_step(self, frames, batch_idx):
        self._evaluate(frames, "val")

    def test_step(self, frames, batch_idx):
        self._evaluate(frames, "test")

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        return one_cycle(self, opt)


# -------------------------------------------------------------------------------------------- task


def _int_list(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ConfigError(
            f"--{name.replace('_', '-')} {text!r}: give positive integers separated by commas"
        )
    return values


@register_task("next-frame")
class NextFrameTask(Task):
    name = "next-frame"
    summary = (
        "next-frame prediction (ConvLSTM or CNN+LSTM; Moving MNIST, ViSP, videos); many-to-many"
    )
    Config = NextFrameConfig
    monitor, monitor_mode = "val_mse", "min"
    predict_options = {
        "out": PredictOption(
            Path, "folder for the GIF and PNG of the predicted frames (default: current folder)"
        )
    }

    def frame_size(self, cfg) -> tuple[int, int]:
        return parse_size(cfg.frame_size or ("64x64" if cfg.dataset == "moving-mnist" else "48x64"))

    @staticmethod
    def real_video_default(value: bool | None, cfg) -> bool:
        """``--residual``/``--flow`` as given, else on for real videos and off for moving-mnist."""
        return value if value is not None else cfg.dataset != "moving-mnist"

    def model_spec(self, cfg: NextFrameConfig):
        name, kwargs = self._model_spec(cfg)
        mnist = cfg.dataset == "moving-mnist"
        if cfg.refit_epochs is None:
            cfg.refit_epochs = mnist and cfg.epochs is None and cfg.max_steps < 0
        if cfg.epochs is None:
            cfg.epochs = (
                budget_epochs(cfg, name, kwargs, self.frame_size(cfg))
                if mnist
                else 16
                if cfg.model == "motion-lstm"
                else 2
            )
        if cfg.scheduled_sampling is None:  # the first --sampling-share of the steps (70 %)
            cfg.scheduled_sampling = sampling_steps(cfg, cfg.epochs) if mnist else 0
        return name, kwargs

    def _model_spec(self, cfg: NextFrameConfig):
        if cfg.input_frames < 1 or cfg.output_frames < 1:
            raise ConfigError("--input-frames and --output-frames must be at least 1")
        motion_augment(cfg)  # checks the setting before any data is read
        if not 0 <= cfg.sampling_share <= 1:
            raise ConfigError(f"--sampling-share {cfg.sampling_share:g}: must be between 0 and 1")
        if cfg.refit_epochs and cfg.max_steps >= 0:
            raise ConfigError(
                "--refit-epochs fits epochs to the time budget; it does not go with --max-steps"
            )
        # defaults per data set and model, recorded in config.yaml
        mnist = cfg.dataset == "moving-mnist"
        if cfg.model is None:
            cfg.model = "convlstm" if mnist else "motion-lstm"
        if cfg.lr is None:
            cfg.lr = 3e-3 if mnist or cfg.model == "motion-lstm" else 1e-3
        if cfg.readout_kernel is None:
            cfg.readout_kernel = 3 if mnist else 1
        if cfg.patch is None:  # moving-mnist: 8x8 blocks, twice the channels: 4x the weights
            cfg.patch = 8 if mnist else 4
        if cfg.hidden_sizes is None:
            cfg.hidden_sizes = "128,128" if mnist else "64,64"
        if cfg.precision is None:
            cfg.precision = "bf16-mixed" if mnist and native_bf16(cfg.accelerator) else "32-true"
        if cfg.measured_motion and cfg.model != "convlstm":
            raise ConfigError(f"--measured-motion is an input of --model convlstm, not {cfg.model}")
        h, w = self.frame_size(cfg)
        if cfg.model == "convlstm":
            if cfg.patch < 1:
                raise ConfigError(f"--patch {cfg.patch}: must be positive")
            if h % cfg.patch or w % cfg.patch:
                raise ConfigError(
                    f"--frame-size {h}x{w}: both sides must be multiples of --patch {cfg.patch}"
                )
            for name in ("kernel_size", "readout_kernel"):
                if getattr(cfg, name) % 2 == 0 or getattr(cfg, name) < 1:
                    raise ConfigError(
                        f"--{name.replace('_', '-')} {getattr(cfg, name)}: must be odd and positive"
                    )
            if cfg.readout_hidden < 0:
                raise ConfigError(
                    f"--readout-hidden {cfg.readout_hidden}: must be 0 (a linear read-out) or more"
                )
            flow = self.real_video_default(cfg.flow, cfg)
            if cfg.measured_motion and not flow:
                raise ConfigError(
                    "--measured-motion needs --flow: it is the input the motion field is forecast from"
                )
            return "convlstm-forecaster", dict(
                channels=1,
                hidden_sizes=_int_list(cfg.hidden_sizes, "hidden_sizes"),
                kernel_size=cfg.kernel_size,
                patch=cfg.patch,
                peephole=cfg.peephole,
                output_frames=cfg.output_frames,
                residual=self.real_video_default(cfg.residual, cfg),
                flow=flow,
                measured_motion=cfg.measured_motion,
                readout_kernel=cfg.readout_kernel,
                norm=cfg.norm,
                readout_hidden=cfg.readout_hidden,
                cell_init=cfg.cell_init,
                forget_bias=cfg.forget_bias,
            )
        if cfg.model == "motion-lstm":
            if cfg.dataset == "moving-mnist":
                raise ConfigError(
                    "--model motion-lstm forecasts camera motion; moving-mnist has no camera (use a real video)"
                )
            return "motion-lstm-forecaster", dict(
                channels=1, hidden_size=cfg.hidden_size or 64, output_frames=cfg.output_frames
            )
        return "cnn-lstm-forecaster", dict(
            channels=1,
            frame_size=[h, w],
            hidden_size=cfg.hidden_size or 256,
            output_frames=cfg.output_frames,
        )

    def callbacks(self, cfg, clock) -> list:
        return [EpochBudget(cfg, clock)] if cfg.refit_epochs else []

    def datamodule(self, cfg) -> NextFrameData:
        return NextFrameData(cfg)

    def module(self, cfg, model) -> NextFrameModule:
        return NextFrameModule(model, cfg)

    @torch.no_grad()
    def pictures(self, cfg, model, datamodule, run_dir: Path) -> list[Path]:
        frames = datamodule.sets["test"][0].unsqueeze(0)  # (1, T, 1, H, W)
        return self._draw(cfg, model, frames, run_dir / "next_frames")

    def _draw(self, cfg, model, frames: torch.Tensor, stem: Path) -> list[Path]:
        from lstmvision.viz.video import frame_grid, frames_gif

        t_in = cfg.input_frames
        inputs, truth = frames[:, :t_in], frames[:, t_in:]
        pred = model.eval()(inputs, cfg.output_frames).clamp(0, 1)[0, :, 0]  # (T_out, H, W)
        scale = max(1, 128 // frames.shape[-1])
        rows = {"input": inputs[0, :, 0], "prediction": pred}
        panels = {"prediction": torch.cat([inputs[0, :, 0], pred])}
        if truth.shape[1]:
            rows = {"input": inputs[0, :, 0], "truth": truth[0, :, 0], "prediction": pred}
            panels = {"truth": frames[0, :, 0], **panels}
        png = frame_grid(rows, stem.with_suffix(".png"), scale=scale)
        gif = frames_gif(panels, stem.with_suffix(".gif"), scale=scale)
        return [png, gif]

    @torch.no_grad()
    def predict(self, cfg, model, inputs, out: Path | None = None, **options):
        results = []
        folder = Path(out) if out is not None else Path(".")
        folder.mkdir(parents=True, exist_ok=True)
        for path in inputs:
            frames = read_frames(
                path,
                cfg.frame_step,
                self.frame_size(cfg),
                grey=True,
                max_frames=cfg.input_frames + cfg.output_frames,
            )
            if len(frames) < cfg.input_frames:
                raise DataError(
                    f"{path}: {len(frames)} frame(s) at step {cfg.frame_step}; "
                    f"the model needs {cfg.input_frames} to predict from"
                )
            x = torch.from_numpy(frames).float().div(255)[None, :, None]  # (1, N, 1, H, W)
            png, gif = self._draw(cfg, model, x, folder / f"{Path(path).stem}_next_frames")
            result = {
                "image": str(path),
                "predicted_frames": cfg.output_frames,
                "png": str(png),
                "gif": str(gif),
            }
            truth = x[:, cfg.input_frames :]
            if truth.shape[1] == cfg.output_frames:
                pred = model(x[:, : cfg.input_frames], cfg.output_frames).clamp(0, 1)
                copy = x[:, cfg.input_frames - 1 : cfg.input_frames]
                result["mse"] = round(float((pred - truth).square().sum((2, 3, 4)).mean()), 3)
                result["baseline_mse"] = round(
                    float((copy - truth).square().sum((2, 3, 4)).mean()), 3
                )
            results.append(result)
        return results

    def format_prediction(self, p: dict) -> str:
        score = f" (mse {p['mse']}, copy-last-frame {p['baseline_mse']})" if "mse" in p else ""
        return f"{p['image']}: {p['predicted_frames']} frames predicted -> {p['gif']}, {p['png']}{score}"
