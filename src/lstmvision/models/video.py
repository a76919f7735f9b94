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

The geometry (warping, affine motion fits, blurs) lives in :mod:`lstmvision.nn.geometry`.

The forecasters run one recurrent stack through time (:meth:`_Forecaster.rollout`): it reads the
given frames ("encoding", each step predicting the next frame) and then feeds back its own
predictions ("forecasting"); in training, a true frame replaces a fed-back prediction with
probability ``teacher_prob`` (scheduled sampling, Bengio et al. 2015; 0 gives a plain forecaster).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.errors import ConfigError
from lstmvision.models import get_model, register_model
from lstmvision.nn import GRU, LSTM, ConvLSTM, LSTMCell
from lstmvision.nn.convlstm_fast import batched_weight_grad_conv, inference_conv
from lstmvision.nn.geometry import affine_field, heat_blur, robust_affine_params, warp

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
        hidden_size, num_layers, cell: the recurrence (``"lstm"`` or ``"gru"``: lstmvision's
            layers).
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
    """Shared rollout; a subclass gives ``step(frame (B, C, H, W), state) -> (next frame,
    state)``, its state a named tuple (``None`` before the first step)."""

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
        """Predictions of frames ``1 .. T-1`` of ``frames`` ``(B, T, C, H, W)``: ``(B, T-1, C, H,
        W)``.

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
        """The ``future`` (default ``output_frames``) frames after ``frames`` ``(B, T_in, C, H,
        W)``."""
        future = self.output_frames if future is None else future
        b, t_in = frames.shape[:2]
        padded = torch.cat(
            [frames, frames.new_zeros(b, future, *frames.shape[2:])], 1
        )  # (B, T_in+future, ...)
        return self.rollout(padded, t_in)[:, t_in - 1 :]  # (B, future, C, H, W)


class ConvLSTMForecastState(NamedTuple):
    """What :class:`ConvLSTMForecaster` carries from one step to the next."""

    lstm: list[tuple[Tensor, Tensor]] | None
    """each ConvLSTM layer's ``(h, C)``, ``(B, hidden, H/p, W/p)`` each (None: zeros)"""
    anchor: Tensor | None
    """with ``flow``: the frame the summed fields warp (the last true frame read), else None"""
    flow_sum: Tensor | None
    """with ``flow``: the motion fields ``(B, 2, H, W)`` added up since ``anchor``, else None"""
    prev_frame: Tensor
    """the frame read at this step ``(B, C, H, W)``: the next step's previous frame"""


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
            (Patraucean et al. 2016's idea): ``x_{t+1} = warp(x_t, u)``, plus ``Δ`` if
            ``residual``. While the model forecasts from its own predictions, the fields add up
            and warp the last frame it read, ``x_{t+k} = warp(x_t, u_1 + ... + u_k)``, so a slow
            drift is not blurred by one bilinear resampling per step. ``u`` starts at
            zero: the untrained model is the copy-last-frame baseline. Camera motion moves every
            pixel; warping moves them at once, where a change ``Δ`` must redraw every edge.
        readout_kernel: side of the convolution that reads each frame patch out of the last layer's
            ``h`` (odd; 1: each ``patch x patch`` block from its own cell alone, as OpenSTL).
        measured_motion: (with ``flow``) also give the ConvLSTM the motion measured between the
            previous frame and this one (:func:`lstmvision.nn.geometry.robust_affine_params` as
            a global affine field, averaged per block: 2 more input channels), so that it learns
            to *forecast* motion from its history (how fast, how steady) instead of having to
            learn to measure it from pixels. While forecasting, the pair is its own last
            prediction and the frame before.
        norm: layer-normalised ConvLSTM cells (:class:`lstmvision.nn.ConvLSTMCell`'s ``norm``).
        readout_hidden: channels of a hidden layer in the read-out: the ``readout_kernel``
            convolution to that many channels, a GELU, then a 1x1 convolution to the patch pixels
            (a nonlinear decoder of each patch); 0: the read-out is one linear convolution.
        cell_init, forget_bias: the cells' ``init`` and ``forget_bias``
            (:class:`lstmvision.nn.ConvLSTMCell`).
        implementation: the ConvLSTM's (:mod:`lstmvision.nn.convlstm`): ``"auto"`` (default) and
            ``"fast"`` also compute the read-out's weight gradient once per sequence;
            ``"equations"`` runs every step as the plain equations.

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
        implementation: str = "auto",
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
            implementation=implementation,
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
        if self.convlstm.implementation == "equations":
            return super().rollout(frames, input_frames, teacher_prob)
        # the fast path: the weight gradients of all steps at once, the cells' and the read-out's
        readout = batched_weight_grad_conv(self.out)
        with self.convlstm.batched_weight_grads(), readout as self._readout:
            try:
                return super().rollout(frames, input_frames, teacher_prob)
            finally:
                self._readout = None

    def step(
        self, frame: Tensor, state: ConvLSTMForecastState | None, fed_back: Tensor | None = None
    ) -> tuple[Tensor, ConvLSTMForecastState]:
        if state is None:  # the first step: no previous frame, no fields yet
            state = ConvLSTMForecastState(lstm=None, anchor=None, flow_sum=None, prev_frame=frame)
        lstm_state, anchor, total, prev = state.lstm, state.anchor, state.flow_sum, state.prev_frame
        # with flow, the frame and its temporal difference
        x = frame if self.flow is None else torch.cat([frame, frame - prev], 1)
        x = F.pixel_unshuffle(x, self.patch)  # (B, C', H/p, W/p)
        if self.measured_motion:
            grey_prev, grey = prev.mean(1, keepdim=True), frame.mean(1, keepdim=True)
            a = robust_affine_params(grey_prev, grey)  # (B, 6)
            moved = affine_field(a, *frame.shape[-2:])  # (B, 2, H, W)
            x = torch.cat([x, F.avg_pool2d(moved, self.patch)], 1)
        h, lstm_state = self.convlstm.step(x, lstm_state)  # (B, hidden, H/p, W/p)
        prev = frame
        if self.flow is not None:
            u = F.interpolate(self.flow(h), size=frame.shape[-2:], mode="bilinear")  # (B, 2, H, W)
            if fed_back is not None and anchor is not None:
                # forecasting: add up the fields since the last true frame
                keep = fed_back[:, None, None, None]
                anchor, total = torch.where(keep, anchor, frame), torch.where(keep, total + u, u)
            else:
                anchor, total = frame, u
            frame = warp(anchor, total)
        if self.out is not None:
            # training: the read-out's weight gradient once per sequence; else the module, or
            # Winograd's products where torch would emulate bfloat16
            out = self._readout(h) if self._readout is not None else inference_conv(self.out, h)
            out = F.pixel_shuffle(out, self.patch)  # (B, C, H, W)
            frame = frame + out if self.residual else out
        return frame, ConvLSTMForecastState(lstm_state, anchor, total, prev)


class MotionForecastState(NamedTuple):
    """What :class:`MotionLSTMForecaster` carries from one step to the next."""

    lstm: tuple[Tensor, Tensor]
    """the LSTM cell's ``(h, c)``, ``(B, hidden)`` each"""
    anchor: Tensor
    """the frame the summed motions warp and blur (the last true frame read) ``(B, C, H, W)``"""
    motion_sum: Tensor
    """the forecast affine motions ``(B, 6)`` added up since ``anchor``"""
    variance_sum: Tensor
    """the blur variances ``(B,)`` (pixels²) added up since ``anchor``"""
    prev_frame: Tensor
    """the frame read at this step ``(B, C, H, W)``: the next step measures motion from it"""
    motion: Tensor
    """the motion read at this step ``a_t`` ``(B, 6)`` (measured, or its own forecast)"""
    forecast: Tensor
    """the motion forecast to the next frame ``v`` ``(B, 6)``"""


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

    def step(
        self, frame: Tensor, state: MotionForecastState | None, fed_back: Tensor | None = None
    ) -> tuple[Tensor, MotionForecastState]:
        b, _, h, w = frame.shape
        fed = fed_back
        if fed is None:
            fed = torch.zeros(b, dtype=torch.bool, device=frame.device)
        if state is None:  # no previous frame: no motion
            lstm_state, anchor, total, var = None, None, None, None
            a_last = a = frame.new_zeros(b, 6)
        else:
            lstm_state, anchor, a_last = state.lstm, state.anchor, state.motion
            total, var = state.motion_sum, state.variance_sum
            # where it reads its own prediction, its own forecast: nothing to measure
            a = state.forecast
            if not fed.all():
                grey_prev = state.prev_frame.mean(1, keepdim=True)  # (B, 1, H, W)
                measured = robust_affine_params(grey_prev, frame.mean(1, keepdim=True))  # (B, 6)
                a = torch.where(fed[:, None], a, measured)
        jerk = a - a_last
        # the sizes of the shift and of its change: px
        sizes = torch.stack([a[:, [2, 5]].norm(dim=1), jerk[:, [2, 5]].norm(dim=1)], 1)  # (B, 2)
        x = torch.cat([a, jerk, sizes, fed[:, None].to(frame.dtype)], 1)  # (B, 15)
        lstm_state = self.lstm(x, lstm_state)
        out = self.head(lstm_state[0])  # (B, 7)
        v, s = out[:, :6], F.softplus(out[:, 6])
        if anchor is not None:  # forecasting rows add up since the last true frame; others restart
            anchor = torch.where(fed[:, None, None, None], anchor, frame)
            total, var = torch.where(fed[:, None], total + v, v), torch.where(fed, var + s, s)
        else:
            anchor, total, var = frame, v, s
        pred = heat_blur(warp(anchor, affine_field(total, h, w)), var)
        return pred, MotionForecastState(lstm_state, anchor, total, var, frame, a, v)


@register_model("cnn-lstm-forecaster")
class CNNLSTMForecaster(_Forecaster):
    """CNN encoder -> LSTM on the code vector -> transposed-CNN decoder, one frame per step.

    The encoder halves the frame ``depth`` times (3x3 stride-2 convolutions, ReLU; ``width``
    doubling per level); the code ``(width*2^(depth-1), H/2^depth, W/2^depth)`` is flattened into
    our LSTM cell (``hidden_size``), whose ``h`` a linear layer maps back to the code's shape for
    the mirror decoder. ``frame_size`` fixes ``(H, W)`` (the linear layers depend on it).
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
