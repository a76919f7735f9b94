"""Real frame sequences served as windows of consecutive frames (next-frame prediction).

Sources (:func:`real_sequences`):

* ``visp``: the 5 real hand-held camera sequences of ``video/visp_sequences_h96.npz``, split by
  sequence, never by frame: train ``mire2`` (501 frames), ``mbt_cube`` (218), ``line`` (33);
  validation ``ellipse1`` (50); test ``cube`` (80).
* a PATH: a video file or a folder of videos, grey frames (every ``frame_step``-th). Three or
  more videos are split by video (sorted names: the last is test, the one before it validation,
  the rest training); fewer are each cut in time into 80 % / 10 % / 10 % blocks (training,
  validation, test), so no window crosses a block.

:class:`Windows` serves every window of ``length`` consecutive frames; :class:`MotionWindows`
serves training windows cut by a crop moving along random camera paths (ego-motion
augmentation). Frames are uint8 ``(N, H, W)`` sequences until served as floats in [0, 1].
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from lstmvision.data.video import find_videos, load_npz_sequences, read_frames
from lstmvision.errors import DataError
from lstmvision.nn.geometry import sample_pixels

VISP_FILE = "video/visp_sequences_h96.npz"
VISP_SPLIT = {"train": ("mire2", "mbt_cube", "line"), "val": ("ellipse1",), "test": ("cube",)}
SOURCE_SCALE = 2
"""camera-path training frames are stored at twice the output size ..."""
CROP_SCALE = 0.75
"""... and cut out 1.33x zoomed in, leaving a margin for the camera path to move in"""


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


def _log_uniform(low: float, high: float) -> float:
    return math.exp(torch.empty(()).uniform_(math.log(low), math.log(high)).item())


def _drifting_rate(t: int, strength: float) -> torch.Tensor:
    """``(T,)``: a random rate (standard deviation 0.005 x ``strength``) plus a random walk
    (steps of 0.001 x ``strength``)."""
    return torch.randn(()) * 0.005 * strength + torch.cumsum(torch.randn(t) * 0.001 * strength, 0)


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
            speed = s * _log_uniform(0.05, 3.0)
            heading = torch.rand(()) * 2 * math.pi
            start = speed * torch.stack([torch.cos(heading), torch.sin(heading)])
            shake = s * _log_uniform(0.02, 1.0)  # hand tremor
            velocity = start + torch.cumsum(torch.randn(t, 2) * shake, 0)  # (T, 2) output px/frame
            turn = _drifting_rate(t, s)  # rad/frame
            zoom = _drifting_rate(t, s)  # log-scale/frame
        offset = torch.cumsum(velocity, 0) * k  # (T, 2) in source pixels
        offset = offset - offset[0]
        room = torch.tensor([src[1] - self.size[1] * k, src[0] - self.size[0] * k])
        margin = room.clamp(min=0) / 2
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
        cos = (torch.cos(angle) * scale)[:, None, None]  # (T, 1, 1)
        sin = (torch.sin(angle) * scale)[:, None, None]
        sx = centre[:, 0, None, None] + cos * gx - sin * gy  # (T, h, w) source pixels
        sy = centre[:, 1, None, None] + sin * gx + cos * gy
        return sample_pixels(frames, sx, sy)  # (T, 1, h, w)


def resize_frames(seq: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(N, H, W)`` -> uint8 ``(N, h, w)`` (bilinear, antialiased)."""
    x = torch.from_numpy(seq).unsqueeze(1).float()  # (N, 1, H, W)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.squeeze(1).round().clamp(0, 255).to(torch.uint8)


def time_split(seq: torch.Tensor) -> dict[str, torch.Tensor]:
    """The first 80 % of a sequence's frames for training, the next 10 % validation, the rest
    test."""
    n = len(seq)
    a, b = int(0.8 * n), int(0.9 * n)
    return {"train": seq[:a], "val": seq[a:b], "test": seq[b:]}


def real_sequences(
    dataset: str, root: Path, size: tuple[int, int], frame_step: int = 1
) -> dict[str, list[torch.Tensor]]:
    """``{split: [uint8 (N, h, w) sequences]}`` of ``visp`` or a video PATH (see the module doc),
    frames resized to ``size`` ``(h, w)``; ``root``: the data root (for ``visp``)."""
    if dataset == "visp":
        path = root / VISP_FILE
        seqs = load_npz_sequences(path)
        missing = [n for names in VISP_SPLIT.values() for n in names if n not in seqs]
        if missing:
            raise DataError(
                f"{path}: lacks the sequence(s) {', '.join(missing)} (has {', '.join(seqs)})"
            )
        return {
            split: [resize_frames(seqs[n], size) for n in names]
            for split, names in VISP_SPLIT.items()
        }
    videos = find_videos(dataset)
    frames = [torch.from_numpy(read_frames(v, frame_step, size, grey=True)) for v in videos]
    if len(frames) >= 3:
        return {"train": frames[:-2], "val": [frames[-2]], "test": [frames[-1]]}
    parts = [time_split(f) for f in frames]
    return {split: [p[split] for p in parts] for split in ("train", "val", "test")}


def window_splits(
    dataset: str,
    root: Path,
    size: tuple[int, int],
    length: int,
    frame_step: int = 1,
    motion: float = 0.0,
    limit_train: int | None = None,
) -> dict[str, Windows]:
    """``{split: windows of length frames}`` of ``visp`` or a video PATH, frames ``size``; with
    ``motion`` > 0 the training windows follow random camera paths of that strength
    (:class:`MotionWindows`, cut from frames read at ``SOURCE_SCALE`` times the size);
    ``limit_train``: only the first that many training windows."""
    scale = SOURCE_SCALE if motion else 1
    seqs = real_sequences(dataset, root, (size[0] * scale, size[1] * scale), frame_step)
    source = seqs["train"]
    if motion:
        seqs = {s: [resize_frames(p.numpy(), size) for p in parts] for s, parts in seqs.items()}
    sets = {}
    for split, parts in seqs.items():
        windows = Windows(parts, length)
        if split == "train" and motion:
            windows = MotionWindows(source, length, size, motion)
        if len(windows) == 0:
            longest = max((len(p) for p in parts), default=0)
            raise DataError(
                f"{dataset}: the {split} split's longest sequence has {longest} frame(s); "
                f"a window needs {length} (input_frames + output_frames)"
            )
        sets[split] = windows
    if limit_train:
        sets["train"].index = sets["train"].index[:limit_train]
    return sets
