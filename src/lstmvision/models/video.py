"""Video models: clip classifiers (many-to-one) and next-frame predictors (many-to-many).

Clips and frame sequences are ``(B, T, C, H, W)`` floats in [0, 1].

* ``lrcn`` (:class:`LRCN`, Donahue et al. 2015): a registered CNN backbone's ``forward_features``
  on every frame -> our LSTM or GRU over the frames -> a linear head on the last step.
* ``frame-average`` (:class:`FrameAverage`): the same CNN, its features averaged over the frames
  -> a linear head; blind to frame order, the baseline the LRCN must beat on motion.
* ``convlstm-forecaster`` (:class:`ConvLSTMForecaster`, Shi et al. 2015 as OpenSTL's ConvLSTM):
  frames cut into ``patch x patch`` blocks (space-to-depth) -> stacked ConvLSTM layers -> a 1x1
  convolution back to a frame.
* ``cnn-lstm-forecaster`` (:class:`CNNLSTMForecaster`): a strided CNN encoder to a vector -> our
  LSTM -> a transposed-convolution decoder; the non-convolutional recurrence for comparison.
* ``motion-lstm-forecaster`` (:class:`MotionLSTMForecaster`): for hand-held video, our LSTM over
  the camera motion measured between frames (a global affine fit) forecasts the motion and its
  uncertainty; the last frame is warped and blurred accordingly.

The forecasters run one recurrent stack through time (:meth:`_Forecaster.rollout`): it reads the
given frames ("encoding", each step predicting the next frame) and then feeds back its own
predictions ("forecasting"); in training, a true frame replaces a fed-back prediction with
probability ``teacher_prob`` (scheduled sampling, Bengio et al. 2015; 0 gives a plain forecaster).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.errors import ConfigError
from lstmvision.models import get_model, register_model
from lstmvision.nn import GRU, LSTM, ConvLSTM, LSTMCell
from lstmvision.nn.convlstm import unrolled_conv

# ------------------------------------------------------------------------------- clip classifiers


class _ClipCNN(nn.Module):
    """A registered backbone applied to every frame; its classification head is removed."""

    def __init__(self, backbone: str, in_channels: int, backbone_kwargs: dict | None):
        super().__init__()
        self.cnn = get_model(
            backbone, num_classes=1, in_channels=in_channels, **(backbone_kwargs or {})
        )
        head = self.cnn.get_classifier()  # unused: forward_features stops before it
        name = next(n for n, m in self.cnn.named_modules() if m is head)
        parent, _, attr = name.rpartition(".")
        setattr(self.cnn.get_submodule(parent) if parent else self.cnn, attr, nn.Identity())
        self.num_features = self.cnn.num_features

    def frame_features(self, clips: Tensor) -> Tensor:
        if clips.dim() != 5:
            raise ValueError(f"expected clips (B, T, C, H, W), got {tuple(clips.shape)}")
        b, t = clips.shape[:2]
        feats = self.cnn.forward_features(clips.flatten(0, 1))  # (B*T, F)
        return feats.view(b, t, -1)  # (B, T, F)


@register_model("lrcn")
class LRCN(_ClipCNN):
    """CNN per frame -> LSTM/GRU over frames -> linear head on the last hidden state.

    Args:
        num_classes: clip classes.
        backbone: a registered CNN with ``forward_features`` (e.g. ``lenet5-modern``, ``resnet18``,
            ``efficientnet-lite0``); ``backbone_kwargs`` are passed to it (``weights=...``).
        in_channels: 1 (grey) or 3 (RGB) frames.
        hidden_size, num_layers, cell: the recurrence (``"lstm"`` or ``"gru"``: lstmvision's layers).
        dropout: before the head.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "lenet5-modern",
        in_channels: int = 1,
        hidden_size: int = 128,
        num_layers: int = 1,
        cell: str = "lstm",
        dropout: float = 0.0,
        backbone_kwargs: dict | None = None,
    ):
        super().__init__(backbone, in_channels, backbone_kwargs)
        if cell not in ("lstm", "gru"):
            raise ConfigError(f"cell must be lstm or gru, not {cell!r}")
        rnn = LSTM if cell == "lstm" else GRU
        self.rnn = rnn(self.num_features, hidden_size, num_layers, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, clips: Tensor) -> Tensor:
        feats = self.frame_features(clips)  # (B, T, F)
        out, _ = self.rnn(feats)  # (B, T, hidden)
        return self.head(self.dropout(out[:, -1]))  # (B, num_classes): many-to-one, last step


@register_model("frame-average")
class FrameAverage(_ClipCNN):
    """CNN per frame -> features averaged over the frames -> linear head (order-blind baseline)."""

    def __init__(
        self,
        num_classes: int,
        backbone: str = "lenet5-modern",
        in_channels: int = 1,
        dropout: float = 0.0,
        backbone_kwargs: dict | None = None,
    ):
        super().__init__(backbone, in_channels, backbone_kwargs)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward(self, clips: Tensor) -> Tensor:
        feats = self.frame_features(clips).mean(1)  # (B, F): mean over T
        return self.head(self.dropout(feats))  # (B, num_classes)


# ---------------------------------------------------------------------------------- forecasters


class _Forecaster(nn.Module):
    """Shared rollout; a subclass gives ``step(frame (B, C, H, W), state) -> (next frame, state)``."""

    output_frames: int

    def step(self, frame: Tensor, state, fed_back: Tensor | None = None):
        """``fed_back`` ``(B,)`` bool: which sequences' ``frame`` is the model's own last prediction
        (``None``: none)."""
        raise NotImplementedError

    def check_frames(self, frames: Tensor) -> None:
        if frames.dim() != 5 or frames.shape[2] != self.channels:
            raise ValueError(
                f"expected frames (B, T, {self.channels}, H, W), got {tuple(frames.shape)}"
            )
        h, w = frames.shape[-2:]
        if h % self.divisor or w % self.divisor:
            raise ValueError(
                f"frame size {h}x{w}: height and width must be multiples of {self.divisor}"
            )

    def rollout(self, frames: Tensor, input_frames: int, teacher_prob: float = 0.0) -> Tensor:
        """Predictions of frames ``1 .. T-1`` of ``frames`` ``(B, T, C, H, W)``: ``(B, T-1, C, H, W)``.

        Step ``t`` reads the true frame ``t`` while ``t < input_frames``, afterwards its own
        prediction of frame ``t`` or, with probability ``teacher_prob`` (per sequence and step),
        the true frame ``t`` (scheduled sampling)."""
        self.check_frames(frames)
        state, preds, x, fed = None, [], frames[:, 0], None
        for t in range(frames.shape[1] - 1):
            pred, state = self.step(x, state, fed)  # (B, C, H, W): prediction of frame t+1
            preds.append(pred)
            x, fed = frames[:, t + 1], None
            if t + 1 >= input_frames and teacher_prob < 1:
                fed = torch.rand(x.shape[0], device=x.device) >= teacher_prob  # (B,)
                x = torch.where(fed[:, None, None, None], pred, x)
        return torch.stack(preds, 1)  # (B, T-1, C, H, W)

    def forward(self, frames: Tensor, future: int | None = None) -> Tensor:
        """The ``future`` (default ``output_frames``) frames after ``frames`` ``(B, T_in, C, H, W)``."""
        future = self.output_frames if future is None else future
        b, t_in = frames.shape[:2]
        padded = torch.cat(
            [frames, frames.new_zeros(b, future, *frames.shape[2:])], 1
        )  # (B, T_in+future, ...)
        return self.rollout(padded, t_in)[:, t_in - 1 :]  # (B, future, C, H, W)


@register_model("convlstm-forecaster")
class ConvLSTMForecaster(_Forecaster):
    """Stacked ConvLSTM next-frame predictor (OpenSTL's ConvLSTM layout).

    Args:
        channels: frame channels (1 grey, 3 RGB).
        hidden_sizes: channels of each ConvLSTM layer.
        kernel_size: ConvLSTM kernel (odd).
        patch: space-to-depth factor: a ``(C, H, W)`` frame enters as ``(C*p*p, H/p, W/p)``
            (OpenSTL uses 4 for 64x64 Moving MNIST); frame sides must be multiples of it.
        peephole: Shi's peephole terms.
        output_frames: how many frames ``forward`` predicts by default.
        residual: predict the change from the frame read, ``x_{t+1} = x_t + Δ`` (the output
            layer starts at zero, so the untrained model is the copy-last-frame baseline).
        flow: predict a motion field ``u`` (in pixels, per ``patch x patch`` block, upsampled
            bilinearly) from the frame and its difference from the previous one, and warp by it
            (Patraucean et al. 2016's idea): ``x_{t+1} = warp(x_t, u)``, plus ``Δ`` if ``residual``. While the model forecasts from its own predictions, the
            fields add up and warp the last frame it read, ``x_{t+k} = warp(x_t, u_1 + ... + u_k)``,
            so a slow drift is not blurred by one bilinear resampling per step. ``u`` starts at
            zero: the untrained model is the copy-last-frame baseline. Camera motion moves every
            pixel; warping moves them at once, where a change ``Δ`` must redraw every edge.
        readout_kernel: side of the convolution that reads each frame patch out of the last layer's
            ``h`` (odd; 1: each ``patch x patch`` block from its own cell alone, as OpenSTL).
        measured_motion: (with ``flow``) also give the ConvLSTM the motion measured between the
            previous frame and this one (:func:`robust_affine_params` as a global affine field,
            averaged per block: 2 more input channels), so that it learns to *forecast* motion
            from its history (how fast, how steady) instead of having to learn to measure it from
            pixels. While forecasting, the pair is its own last prediction and the frame before.
        norm: layer-normalised ConvLSTM cells (:class:`lstmvision.nn.ConvLSTMCell`'s ``norm``).
        readout_hidden: channels of a hidden layer in the read-out: the ``readout_kernel``
            convolution to that many channels, a GELU, then a 1x1 convolution to the patch pixels
            (a nonlinear decoder of each patch); 0: the read-out is one linear convolution.
        cell_init, forget_bias: the cells' ``init`` and ``forget_bias``
            (:class:`lstmvision.nn.ConvLSTMCell`).

    The prediction is linear (no squashing), as in OpenSTL; metrics clamp it to [0, 1].
    """

    def __init__(
        self,
        channels: int = 1,
        hidden_sizes: Sequence[int] = (64, 64),
        kernel_size: int = 5,
        patch: int = 4,
        peephole: bool = False,
        output_frames: int = 10,
        residual: bool = False,
        flow: bool = False,
        measured_motion: bool = False,
        readout_kernel: int = 1,
        norm: bool = False,
        readout_hidden: int = 0,
        cell_init: str = "lstm",
        forget_bias: float = 0.0,
    ):
        super().__init__()
        if readout_kernel % 2 == 0:
            raise ConfigError(f"readout_kernel {readout_kernel}: must be odd")
        if measured_motion and not flow:
            raise ConfigError(
                "measured_motion needs flow: it is the input from which the motion is forecast"
            )
        self.channels, self.patch, self.divisor, self.output_frames = (
            channels,
            patch,
            patch,
            output_frames,
        )
        self.measured_motion = measured_motion
        c = channels * patch * patch
        inputs = (2 * c if flow else c) + (2 if measured_motion else 0)
        self.convlstm = ConvLSTM(
            inputs,
            list(hidden_sizes),
            kernel_size,
            peephole=peephole,
            norm=norm,
            init=cell_init,
            forget_bias=forget_bias,
        )
        self.residual = residual
        if readout_hidden < 0:
            raise ConfigError(
                f"readout_hidden {readout_hidden}: must be 0 (a linear read-out) or more"
            )
        self.out = None
        self._readout = None  # inside rollout: self.out with one weight gradient per sequence
        if residual or not flow:
            pad = readout_kernel // 2
            self.out = (
                nn.Sequential(
                    nn.Conv2d(hidden_sizes[-1], readout_hidden, readout_kernel, padding=pad),
                    nn.GELU(),
                    nn.Conv2d(readout_hidden, c, 1),
                )
                if readout_hidden
                else nn.Conv2d(hidden_sizes[-1], c, readout_kernel, padding=pad)
            )
        if residual:  # the last layer starts at zero: no change
            last = self.out[-1] if readout_hidden else self.out
            nn.init.zeros_(last.weight), nn.init.zeros_(last.bias)
        self.flow = nn.Conv2d(hidden_sizes[-1], 2, 1) if flow else None
        if flow:
            nn.init.zeros_(self.flow.weight), nn.init.zeros_(self.flow.bias)

    def rollout(self, frames: Tensor, input_frames: int, teacher_prob: float = 0.0) -> Tensor:
        # the weight gradients of all steps at once (less time), the cells' and the read-out's
        with self.convlstm.unrolled(), unrolled_conv(self.out) as self._readout:
            try:
                return super().rollout(frames, input_frames, teacher_prob)
            finally:
                self._readout = None

    def step(self, frame: Tensor, state, fed_back: Tensor | None = None):
        lstm_state, anchor, total, prev = state if state is not None else (None, None, None, frame)
        x = (
            frame if self.flow is None else torch.cat([frame, frame - prev], 1)
        )  # with the temporal difference
        x = F.pixel_unshuffle(x, self.patch)  # (B, C', H/p, W/p)
        if self.measured_motion:
            a = robust_affine_params(
                prev.mean(1, keepdim=True), frame.mean(1, keepdim=True)
            )  # (B, 6)
            moved = affine_field(a, *frame.shape[-2:])  # (B, 2, H, W)
            x = torch.cat([x, F.avg_pool2d(moved, self.patch)], 1)
        h, lstm_state = self.convlstm.step(x, lstm_state)  # (B, hidden, H/p, W/p)
        prev = frame
        if self.flow is not None:
            u = F.interpolate(self.flow(h), size=frame.shape[-2:], mode="bilinear")  # (B, 2, H, W)
            if (
                fed_back is not None and anchor is not None
            ):  # forecasting: add up the fields since the last true frame
                keep = fed_back[:, None, None, None]
                anchor, total = torch.where(keep, anchor, frame), torch.where(keep, total + u, u)
            else:
                anchor, total = frame, u
            frame = warp(anchor, total)
        if self.out is not None:
            out = F.pixel_shuffle((self._readout or self.out)(h), self.patch)  # (B, C, H, W)
            frame = frame + out if self.residual else out
        return frame, (lstm_state, anchor, total, prev)


def sample_pixels(frames: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """``frames`` ``(N, C, H, W)`` read at pixel coordinates ``x``, ``y`` ``(N, h, w)`` (pixel
    centres at integers): bilinear, border pixels repeated outside the frame -> ``(N, C, h, w)``."""
    height, width = frames.shape[-2:]
    grid = torch.stack(
        [(x + 0.5) * (2 / width) - 1, (y + 0.5) * (2 / height) - 1], -1
    )  # align_corners=False
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp(frames: Tensor, flow: Tensor) -> Tensor:
    """``frames`` ``(B, C, H, W)`` moved by ``flow`` ``(B, 2, H, W)`` (x, y in pixels): output pixel
    ``p`` is the input at ``p - flow(p)``, bilinear, border pixels repeated outside the frame."""
    h, w = frames.shape[-2:]
    ys = torch.arange(h, device=frames.device, dtype=frames.dtype)
    xs = torch.arange(w, device=frames.device, dtype=frames.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    return sample_pixels(frames, gx - flow[:, 0], gy - flow[:, 1])


def _blur(frames: Tensor, k: int) -> Tensor:
    """Box blur of side ``k`` (odd), borders repeated: ``(B, C, H, W)`` -> same shape."""
    return F.avg_pool2d(F.pad(frames, (k // 2,) * 4, mode="replicate"), k, 1)


def _affine_basis(h: int, w: int, like: Tensor) -> Tensor:
    """``(2, 6, H, W)``: the field of affine parameters ``a`` is ``basis @ a`` (x, y in pixels).
    Coordinates run from the centre in [-1, 1] of the longer side, so the 6 parameters are
    comparable: ``a[2]``, ``a[5]`` are the x, y shifts in pixels, the others pixels per half-side."""
    scale = max(h, w) / 2
    ys = (torch.arange(h, device=like.device, dtype=like.dtype) - (h - 1) / 2) / scale
    xs = (torch.arange(w, device=like.device, dtype=like.dtype) - (w - 1) / 2) / scale
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W)
    one, zero = torch.ones_like(gx), torch.zeros_like(gx)
    return torch.stack(
        [torch.stack([gx, gy, one, zero, zero, zero]), torch.stack([zero, zero, zero, gx, gy, one])]
    )


def affine_field(params: Tensor, h: int, w: int) -> Tensor:
    """Affine parameters ``(B, 6)`` (:func:`affine_params`' convention) -> field ``(B, 2, H, W)`` in pixels."""
    return torch.einsum("bk,ckhw->bchw", params, _affine_basis(h, w, params))


@torch.no_grad()
def affine_params(
    prev: Tensor,
    frame: Tensor,
    blurs: Sequence[int] = (7, 5, 3),
    iterations: int = 4,
    margin: int = 4,
) -> Tensor:
    """The global affine motion from ``prev`` to ``frame`` (grey ``(B, 1, H, W)``) as 6 parameters
    ``(B, 6)``: :func:`affine_field` turns them into a field in :func:`warp`'s convention,
    ``frame ≈ warp(prev, affine_field(a, H, W))``.

    Lucas & Kanade's image alignment (forward additive, Gauss-Newton) of the 6 affine parameters,
    coarse to fine: ``iterations`` steps on box-blurred frames for each blur side in ``blurs``
    (wide blurs first, so motions of a few pixels are caught); ``margin`` pixels at the borders are
    left out of the fit. A still pair gives zero; a frame with no texture (zero gradients) too.
    Camera motion in a hand-held video is close to affine between consecutive frames.
    """
    b, _, h, w = frame.shape
    basis = _affine_basis(h, w, frame)  # (2, 6, H, W)
    inside = torch.zeros(h, w, device=frame.device, dtype=frame.dtype)
    inside[margin : h - margin, margin : w - margin] = 1
    a = frame.new_zeros(b, 6)
    ridge = 1e-4 * torch.eye(6, device=frame.device, dtype=frame.dtype)
    for k in blurs:
        src, dst = _blur(prev, k), _blur(frame, k)
        for _ in range(iterations):
            moved = warp(src, torch.einsum("bk,ckhw->bchw", a, basis))  # (B, 1, H, W)
            padded = F.pad(moved, (1, 1, 1, 1), mode="replicate")
            grad = (
                torch.cat(
                    [
                        padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2],
                        padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1],
                    ],
                    1,
                )
                / 2
            )  # (B, 2, H, W): d/dx, d/dy
            # warp samples src at p - field(p): d moved / d a = -grad . basis
            jac = -(grad[:, :, None] * basis).sum(1) * inside  # (B, 6, H, W)
            resid = (dst - moved)[:, 0] * inside  # (B, H, W)
            hess = torch.einsum("bihw,bjhw->bij", jac, jac) + ridge
            a = a + torch.linalg.solve(hess, torch.einsum("bihw,bhw->bi", jac, resid))
    return a


def heat_blur(frames: Tensor, variance: Tensor, pad: int = 8) -> Tensor:
    """``frames`` ``(B, C, H, W)`` blurred by the discrete Gaussian (heat) kernel of ``variance``
    ``(B,)`` pixels² along each axis, computed in the Fourier domain (gain ``exp(-variance * (2 -
    2 cos 2πf) / 2)`` per axis), after ``pad`` border pixels repeated. Unlike a sampled Gaussian its
    weights move linearly with a small variance, so the variance learns from zero: variance 0 is
    the identity."""
    x = F.pad(frames, (pad,) * 4, mode="replicate")
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device, dtype=x.dtype)
    fx = torch.fft.rfftfreq(w, device=x.device, dtype=x.dtype)
    rate = (2 - 2 * torch.cos(2 * math.pi * fy))[:, None] + (2 - 2 * torch.cos(2 * math.pi * fx))[
        None, :
    ]
    gain = torch.exp(-variance[:, None, None, None] / 2 * rate)  # (B, 1, h, w//2+1)
    x = torch.fft.irfft2(torch.fft.rfft2(x) * gain, s=(h, w))
    return x[..., pad : pad + frames.shape[-2], pad : pad + frames.shape[-1]]


@torch.no_grad()
def robust_affine_params(prev: Tensor, frame: Tensor) -> Tensor:
    """:func:`affine_params` of grey ``(B, 1, H, W)`` pairs, set to zero where warping ``prev`` by
    them matches ``frame`` worse than ``prev`` itself does (a failed fit: a jump too large to
    align, a change of scene or light)."""
    a = affine_params(prev, frame)
    moved = warp(prev, affine_field(a, *frame.shape[-2:]))
    worse = (moved - frame).square().mean((1, 2, 3)) > (prev - frame).square().mean((1, 2, 3))
    return torch.where(worse[:, None], torch.zeros_like(a), a)


@register_model("motion-lstm-forecaster")
class MotionLSTMForecaster(_Forecaster):
    """Camera-motion forecaster for hand-held video: an LSTM over the measured global motion.

    Each step measures the affine motion ``a_t`` from the previous frame to this one
    (:func:`robust_affine_params`, 6 numbers), and our LSTM cell reads ``a_t``, its change
    ``a_t - a_{t-1}``, the sizes of both shifts (pixels) and whether it is forecasting (15
    numbers). A linear head gives the motion to the next frame ``v`` (6 affine parameters)
    and a blur variance ``s = softplus(.)`` (pixels²): the prediction is the frame warped by ``v``
    and blurred by a Gaussian (:func:`heat_blur`) of variance ``s``, the blur standing for the
    motion it cannot foresee (under uncertainty the blurred frame has the lower expected squared
    error). While it forecasts from its own predictions, the LSTM reads its own ``v`` as ``a_t``,
    and motions and variances add up on the last frame it read:
    ``x_{t+k} = blur(warp(x_t, v_1 + ... + v_k), s_1 + ... + s_k)``, one resampling however far it
    looks.

    The LSTM learns from the history how much of the recent motion goes on (a steady pan) and how
    much is shake, and how unsure to be. ``v`` starts at zero and the blur at a variance of 0.01
    pixels² a step: the untrained model is the copy-last-frame baseline, all but a faint blur.
    Frames with several channels are measured on their mean.

    Args:
        channels: frame channels.
        hidden_size: LSTM units.
        output_frames: how many frames ``forward`` predicts by default.
    """

    START_VARIANCE = 0.01

    def __init__(self, channels: int = 1, hidden_size: int = 64, output_frames: int = 10):
        super().__init__()
        self.channels, self.divisor, self.output_frames = channels, 1, output_frames
        self.lstm = LSTMCell(15, hidden_size)
        self.head = nn.Linear(hidden_size, 7)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        with torch.no_grad():
            self.head.bias[6] = math.log(math.expm1(self.START_VARIANCE))  # softplus^-1

    def step(self, frame: Tensor, state, fed_back: Tensor | None = None):
        b, _, h, w = frame.shape
        fed = (
            fed_back
            if fed_back is not None
            else torch.zeros(b, dtype=torch.bool, device=frame.device)
        )
        if state is None:  # no previous frame: no motion
            lstm_state, anchor, total, var, prev, a_last, v = (
                None,
                None,
                None,
                None,
                frame,
                frame.new_zeros(b, 6),
                None,
            )
            a = frame.new_zeros(b, 6)
        else:
            lstm_state, anchor, total, var, prev, a_last, v = state
            a = v  # its own forecast where it reads its own prediction: nothing to measure
            if not fed.all():
                a = torch.where(
                    fed[:, None],
                    v,
                    robust_affine_params(prev.mean(1, keepdim=True), frame.mean(1, keepdim=True)),
                )
        jerk = a - a_last
        sizes = torch.stack(
            [a[:, [2, 5]].norm(dim=1), jerk[:, [2, 5]].norm(dim=1)], 1
        )  # shift, its change: px
        x = torch.cat([a, jerk, sizes, fed[:, None].to(frame.dtype)], 1)  # (B, 15)
        lstm_state = self.lstm(x, lstm_state)
        out = self.head(lstm_state[0])  # (B, 7)
        v, s = out[:, :6], F.softplus(out[:, 6])
        if (
            anchor is not None
        ):  # forecasting rows add up since the last true frame; the others restart
            anchor = torch.where(fed[:, None, None, None], anchor, frame)
            total, var = torch.where(fed[:, None], total + v, v), torch.where(fed, var + s, s)
        else:
            anchor, total, var = frame, v, s
        pred = heat_blur(warp(anchor, affine_field(total, h, w)), var)
        return pred, (lstm_state, anchor, total, var, frame, a, v)


@register_model("cnn-lstm-forecaster")
class CNNLSTMForecaster(_Forecaster):
    """CNN encoder -> LSTM on the code vector -> transposed-CNN decoder, one frame per step.

    The encoder halves the frame ``depth`` times (3x3 stride-2 convolutions, ReLU; ``width``
    doubling per level); the code ``(width*2^(depth-1), H/2^depth, W/2^depth)`` is flattened into
    our LSTM cell (``hidden_size``), whose ``h`` a linear layer maps back to the code's shape for the
    mirror decoder. ``frame_size`` fixes ``(H, W)`` (the linear layers depend on it).
    """

    def __init__(
        self,
        channels: int = 1,
        frame_size: Sequence[int] = (64, 64),
        width: int = 16,
        depth: int = 3,
        hidden_size: int = 512,
        output_frames: int = 10,
    ):
        super().__init__()
        self.channels, self.divisor, self.output_frames = channels, 2**depth, output_frames
        h, w = frame_size
        if h % self.divisor or w % self.divisor:
            raise ConfigError(
                f"frame size {h}x{w}: height and width must be multiples of {self.divisor}"
            )
        widths = [channels] + [width * 2**k for k in range(depth)]
        self.code_shape = (widths[-1], h // self.divisor, w // self.divisor)
        code = widths[-1] * self.code_shape[1] * self.code_shape[2]
        enc = []
        for a, b in zip(widths, widths[1:]):
            enc += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*enc)
        self.lstm = LSTMCell(code, hidden_size)
        self.expand = nn.Linear(hidden_size, code)
        dec = []
        for a, b in zip(widths[:0:-1], widths[-2::-1]):
            dec += [nn.ReLU(inplace=True), nn.ConvTranspose2d(a, b, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def step(self, frame: Tensor, state, fed_back: Tensor | None = None):
        code = self.encoder(frame).flatten(1)  # (B, C'*h*w)
        h, c = self.lstm(code, state)  # (B, hidden) each
        x = self.expand(h).view(-1, *self.code_shape)  # (B, C', h, w)
        return self.decoder(x), (h, c)  # (B, C, H, W)
