r"""The fast path of :class:`lstmvision.nn.ConvLSTM` (``implementation="fast"``, the default
through ``"auto"``): the same sums as the equations of :mod:`lstmvision.nn.convlstm`, in less
time on a CPU, where a ConvLSTM's maps are small and each of autograd's many small operations
costs more to dispatch than to compute. Six changes, each checked equal to the equations by
``tests/test_convlstm.py``:

* **One joined convolution per step**: ``W_x * X + W_h * H + b_ih + b_hh`` as one convolution
  of ``[X, H]`` (channels stacked) with ``[W_x, W_h]`` (:func:`joint_weights`); the parameters
  stay ``conv_x`` and ``conv_h``.
* **One weight gradient per sequence** (:func:`batched_weight_grads`): over the steps of one
  sequence the joined weights are built (and, under autocast, cast) once, and their gradient,
  a sum over the steps, is computed once for all steps when the graph runs backward
  (:class:`BatchedWeightGradConv`); on a CPU with AMX as one matrix product per kernel offset
  (:func:`_shifted_weight_grad`).
* **Only what is needed**: from a zero state only the input's part of the convolution runs, and
  the backward computes the input gradient only of the parts of ``[X, H]`` that need one (not
  the frames a first layer reads).
* **Channels last in 16-bit types** (:func:`_memory_format`): under bfloat16 autocast the steps'
  convolutions take and give 2-d maps channels last, which oneDNN runs without reordering them
  at every call; the compiled gates then read each position's channels as one row. What a step
  hands back lies as its input did (:func:`_in_layout_of`), as torch's convolutions keep it.
* **Winograd's products** (:func:`winograd_dtype`): a 3x3 "same" convolution of 32 channels and
  more, its input gradients and its weight gradient as Winograd F(2x2, 3x3): 16 matrix products
  over 4x4 tiles of the maps, with compiled transforms (``csrc/winograd.h``), 16 multiplications
  per 2x2 outputs and channel pair where the direct convolution takes 36 (the Moving MNIST
  recipe's step 1.9x as fast in float32 on a 2-core Zen 3 EPYC, 1.4x in bf16-mixed on a Zen
  4). It runs channels last, in float32, or in bfloat16 where the CPU computes it natively;
  elsewhere a bfloat16 step computes in float32 (torch emulates bfloat16 convolutions there many
  times slower).
* **Gate derivatives written out** (:class:`LSTMGates`) for cells without peepholes or
  normalisation: the backward of the gate equations in a few whole-map operations (as
  :meth:`lstmvision.nn.cells.LSTMEquations.step_backward`) instead of autograd's graph of a few
  dozen small ones.

A cell with ``norm`` normalises each convolution apart, so it has nothing to join: its step is
the equations; with peepholes the joined convolution is used and the gates are the equations'.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.nn import recurrent_fast
from lstmvision.nn.cells import tanh

if TYPE_CHECKING:
    from lstmvision.nn.convlstm import ConvLSTMCell

_CONV_FN = {1: F.conv1d, 2: F.conv2d}
_CONV_T_FN = {1: F.conv_transpose1d, 2: F.conv_transpose2d}


def fast_step(
    cell: ConvLSTMCell, x: Tensor, state: tuple[Tensor, Tensor] | None
) -> tuple[Tensor, Tensor]:
    """One step of ``cell`` on the fast path: ``x`` ``(B, I, *space)``, ``(H_{t-1}, C_{t-1})``
    or ``None`` (zeros) -> ``(H_t, C_t)``, each ``(B, H, *space)``. From a zero state
    ``W_h * H_{t-1}`` is zero: only the input's part of the convolution runs."""
    if cell.norm:  # LN of each convolution apart: nothing to join
        return cell.equations(x, *(cell.initial_state(x) if state is None else state))
    h_prev, c_prev = (None, cell.initial_state(x)[1]) if state is None else state
    if cell._batched_conv is not None and torch.is_grad_enabled():  # in batched_weight_grads
        pre = cell._batched_conv(x, h_prev, same_layout=False)
    else:
        weight, bias = joint_weights(cell, with_h=h_prev is not None)
        inputs = x if h_prev is None else torch.cat([x, h_prev], 1)  # (B, I [+ H], *space)
        params = (cell.conv_x.weight, cell.conv_h.weight)
        pre = _inference_winograd(cell, params, inputs, weight, bias, cell.kernel_size // 2)
        if pre is None:
            pre = _CONV_FN[cell.dims](inputs, weight, bias, padding=cell.kernel_size // 2)
    # pre: (B, 4H, *space) = W_x * X_t + W_h * H_{t-1} + b
    h, c = cell.gates(pre, c_prev) if cell.peephole else LSTMGates.apply(pre, c_prev)
    return _in_layout_of(x, h), _in_layout_of(x, c)


_INFERENCE_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Each module's last transformed weights at inference (:func:`_inference_winograd`), by their
input channels (a cell's ``W_x`` alone from a zero state, ``[W_x, W_h]``)."""


def _inference_winograd(
    owner: nn.Module,
    params: tuple[Tensor, ...],
    inputs: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    padding: int,
    emulated_only: bool = False,
) -> Tensor | None:
    """A convolution of ``inputs`` with ``weight`` (made from ``owner``'s parameters ``params``)
    as Winograd's products where no gradient is recorded (validation rollouts, ``predict``, the
    app) and :func:`winograd_dtype` serves it (with ``emulated_only``, only where it computes in
    float32 what would be emulated bfloat16), else ``None``. The weight's transform is kept per
    module until its parameters change."""
    if torch.is_grad_enabled() or inputs.dim() != 4:
        return None
    device = inputs.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
    compute = winograd_dtype(weight, padding, dtype)
    if compute is None or (emulated_only and compute == dtype):
        return None
    key = (dtype, compute, *((p.data_ptr(), p._version) for p in params))
    kept = _INFERENCE_WEIGHTS.setdefault(owner, {})  # a cell's: from a zero state, from a state
    if kept.get(weight.shape[1], (None,))[0] != key:  # cast and transformed once, then kept
        kept[weight.shape[1]] = (key, winograd_weight(weight.to(dtype), compute))
    x = inputs.to(dtype, memory_format=torch.channels_last)
    u = kept[weight.shape[1]][1]
    return winograd_conv(x, u, None if bias is None else bias.to(dtype), dtype)


def inference_conv(conv: nn.Module, x: Tensor) -> Tensor:
    """``conv(x)``, or where torch would emulate it, as Winograd's products computed in float32:
    a "same" convolution (:func:`_same_conv_dims`) called without gradients in bfloat16 on a
    CPU without bfloat16 arithmetic (:func:`winograd_dtype`), the weight's transform kept until
    the weight changes. A forecaster's read-out in validation rollouts, ``predict`` and the app:
    a bf16-mixed validation batch of the Moving MNIST recipe (32 sequences) took 0.58 s against
    1.54 s with oneDNN capped at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``) on a Zen 4 EPYC; with its
    native bfloat16, or in float32, the read-out's Winograd products made no difference there
    (0.36-0.38 s, 0.59-0.60 s), so there the module runs as it is."""
    if _same_conv_dims(conv) == 2:
        w = conv.weight
        y = _inference_winograd(conv, (w,), x, w, conv.bias, conv.padding[0], emulated_only=True)
        if y is not None:
            return _in_layout_of(x, y)
    return conv(x)


def _in_layout_of(x: Tensor, maps: Tensor) -> Tensor:
    """``maps`` in ``x``'s layout, as torch's convolutions give their output: the usual one
    unless ``x`` lies channels last (the 16-bit steps compute channels last within)."""
    return maps if _is_channels_last(x) or not _is_channels_last(maps) else maps.contiguous()


def joint_weights(cell: ConvLSTMCell, with_h: bool = True) -> tuple[Tensor, Tensor | None]:
    """``[W_x, W_h]`` ``(4H, I + H, *kernel)`` (``W_x`` alone without ``with_h``) and ``b_ih +
    b_hh`` (``None`` without biases)."""
    weight = cell.conv_x.weight
    if with_h:
        weight = torch.cat([weight, cell.conv_h.weight], 1)
    bias = cell.conv_x.bias + cell.conv_h.bias if cell.conv_x.bias is not None else None
    return weight, bias


@contextlib.contextmanager
def batched_weight_grads(cells: Iterable[ConvLSTMCell]) -> Iterator[None]:
    """Within: the steps of ``cells`` on the fast path (and without ``norm``) share each cell's
    joined (under autocast, cast) weights, and each cell's weight gradient is computed once for
    all steps (:class:`BatchedWeightGradConv`). Enter it inside autocast, around all the steps
    of one sequence. Without gradients it changes nothing."""
    cells = list(cells)
    for cell in cells:
        if cell.implementation != "equations" and not cell.norm and torch.is_grad_enabled():
            weight, bias = joint_weights(cell)
            cell._batched_conv = BatchedWeightGradConv(
                weight, bias, cell.dims, cell.kernel_size // 2, (cell.input_size, cell.hidden_size)
            )
    try:
        yield
    finally:
        for cell in cells:
            cell._batched_conv = None


class BatchedWeightGradConv:
    """One "same" convolution applied at every step of a sequence, whose weight gradient is
    computed once for all steps instead of once per step.

    The weight's gradient is the sum over steps of ``conv_weight_grad(x_t, g_t)``, which is one
    call on the steps stacked as a batch, ``conv_weight_grad([x_1..x_T], [g_1..g_T])``; on a CPU
    many per-step calls on small maps take longer than one stacked call. Each step's backward
    (:class:`_StepConv`) computes only the gradient of its input and leaves ``(x_t, g_t)``; a node
    that all steps read (:class:`_StepWeightGrad`, through a scalar ``token`` whose gradient is
    zero) runs after the last of them, so autograd itself orders the work, and turns the stack
    into the weight's and bias's gradients (:func:`_stacked_weight_grad`). The weights are cast
    once (under autocast, to its type) rather than at every step.

    The input may come in parts stacked along the channels (``sizes``: a ConvLSTM's ``[X_t,
    H_{t-1}]``), each part ``None`` where it is zero (a zero first state): no convolution, and no
    gradient, is computed for a part that is zero or that needs no gradient (the frames read).
    """

    def __init__(
        self,
        weight: Tensor,
        bias: Tensor | None,
        dims: int,
        padding: int,
        sizes: tuple[int, ...] | None = None,
    ):
        device = weight.device.type
        if torch.is_autocast_enabled(device):  # what autocast would do to the convolution each step
            dtype = torch.get_autocast_dtype(device)
            weight, bias = weight.to(dtype), None if bias is None else bias.to(dtype)
        # the type its products compute in where it runs as Winograd's (None: oneDNN's direct)
        self.winograd = winograd_dtype(weight, padding)
        self.memory_format = (
            torch.channels_last if self.winograd is not None else _memory_format(weight)
        )
        weight = weight.contiguous(memory_format=self.memory_format)
        self.weight, self.bias, self.dims, self.padding = weight, bias, dims, padding
        # Winograd's transformed weights (16, I, O) for the steps' forward, and (16, O, I) of each
        # part for their input gradients (made at the first backward)
        self.winograd_u = None if self.winograd is None else winograd_weight(weight, self.winograd)
        self.winograd_back: dict[int | None, Tensor] = {}
        self.sizes = tuple(sizes or (weight.shape[1],))  # input channels of each part
        self._part_weights: list[Tensor] | None = None  # made at first use: part_weights()
        # ((x_t's given parts joined, which parts were given), g_t) of the steps whose backward ran
        self.pending: list[tuple[tuple[Tensor, list[bool]], Tensor]] = []
        self.token = _StepWeightGrad.apply(weight, bias, self)

    def __call__(self, *parts: Tensor | None, same_layout: bool = True) -> Tensor:
        """The convolution of the parts stacked along the channels (a missing or ``None`` part:
        zeros); the first part is given. The output lies as the first part does (as torch's
        convolution gives it), or without ``same_layout`` as the convolution ran (channels last
        in a 16-bit type: :func:`_memory_format`), for a caller that keeps it within."""
        parts = (*parts, *[None] * (len(self.sizes) - len(parts)))
        out = _StepConv.apply(self.weight, self.bias, self.token, self, *parts)
        return _in_layout_of(parts[0], out) if same_layout else out

    def part_weights(self) -> list[Tensor]:
        """Each part's weight in the convolution's layout (copies, made once), for the direct
        convolutions of steps that convolve or differentiate fewer parts than all."""
        if self._part_weights is None:
            parts = self.weight.split(self.sizes, 1)
            self._part_weights = (
                [w.contiguous(memory_format=self.memory_format) for w in parts]
                if len(parts) > 1
                else [self.weight]
            )
        return self._part_weights

    def input_grad(self, g: Tensor, part: int | None) -> Tensor:
        """The gradient of the input's part ``part`` (``None``: of the whole input) from the
        output's ``g``: the transposed convolution, or Winograd's."""
        if self.winograd is None:
            w = self.weight if part is None else self.part_weights()[part]
            return _CONV_T_FN[self.dims](g, w, padding=self.padding)
        if part not in self.winograd_back:  # the flipped, transposed weight's transform
            w = self.weight if part is None else self.weight.split(self.sizes, 1)[part]
            self.winograd_back[part] = winograd_weight(w.flip(2, 3).transpose(0, 1), self.winograd)
        return winograd_conv(g, self.winograd_back[part], None, self.weight.dtype)


@contextlib.contextmanager
def batched_weight_grad_conv(conv: nn.Module | None) -> Iterator[BatchedWeightGradConv | None]:
    """Within: for ``conv`` (a ``Conv1d``/``Conv2d`` of stride 1, "same" padding, one group) the
    function to apply at every step of one sequence instead, its weight gradient computed once for
    all steps (:class:`BatchedWeightGradConv`); ``None`` without gradients or for another
    module."""
    dims = _same_conv_dims(conv)
    yield (
        BatchedWeightGradConv(conv.weight, conv.bias, dims, conv.padding[0])
        if dims and torch.is_grad_enabled()
        else None
    )


def _same_conv_dims(conv: nn.Module | None) -> int | None:
    """1 or 2 for a ``Conv1d`` or ``Conv2d`` of stride 1 and "same" zero padding (one odd kernel
    side), one group, no dilation; else ``None``."""
    dims = {nn.Conv1d: 1, nn.Conv2d: 2}.get(type(conv))
    same = (
        dims
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and set(conv.stride) == {1}
        and set(conv.dilation) == {1}
        and list(conv.padding) == [k // 2 for k in conv.kernel_size]
        and len(set(conv.kernel_size)) == 1
    )
    return dims if same else None


class _StepWeightGrad(torch.autograd.Function):
    """The node every step's convolution reads (through ``token``): its backward runs after all
    the steps' and computes the weight and bias gradients of the whole sequence at once."""

    @staticmethod
    def forward(ctx, weight, bias, conv):
        ctx.conv, ctx.has_bias = conv, bias is not None
        return weight.new_zeros(())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, _):
        conv = ctx.conv
        xs, gs = zip(*conv.pending)
        conv.pending = []
        return (*_stacked_weight_grad(conv, xs, gs, ctx.has_bias), None)


def _stacked_weight_grad(conv: BatchedWeightGradConv, xs, gs, bias: bool):
    """The weight and bias gradients of ``conv`` summed over the steps whose backward ran (``xs``:
    each step's given input parts joined and which parts were given, ``gs``: its output's
    gradient): as Winograd's products where the steps ran so (:func:`_winograd_weight_grad`), as
    one matrix product per kernel offset (:func:`_shifted_weight_grad`) on a CPU with AMX, else
    one convolution backward of the steps stacked as a batch (:func:`_stacked`)."""
    if conv.winograd is not None:
        return _winograd_weight_grad(conv, xs, gs, bias)
    if conv.weight.device.type == "cpu" and products_are_faster():
        parts = [_step_parts(inputs, given, conv.sizes) for inputs, given in xs]
        return _shifted_weight_grad(
            parts, gs, conv.weight.shape[2:], conv.padding, bias, conv.sizes
        )
    d = conv.dims
    _, grad_w, grad_b = torch.ops.aten.convolution_backward(
        torch.cat(gs),  # (T*B, O, *space): the steps stacked as a batch
        _stacked(xs, conv),  # (T*B, I, *space)
        conv.weight,
        [conv.weight.shape[0]] if bias else None,
        [1] * d,  # stride
        [conv.padding] * d,
        [1] * d,  # dilation
        False,  # not transposed
        [0] * d,  # output padding
        1,  # groups
        [False, True, bias],  # input, weight, bias gradients
    )
    return grad_w, grad_b


@functools.cache
def products_are_faster() -> bool:
    """Whether this CPU takes a convolution's weight gradient faster as one matrix product per
    kernel offset than as oneDNN's convolution backward: where it has AMX. Measured on the
    Moving MNIST recipe's two layers in bf16 (the steps of a batch stacked): on a 2-core AMX Xeon
    the products 26 and 34 ms, oneDNN 47 and 61 ms; on a 2-core AMD EPYC without AMX (AVX-512
    with bf16) oneDNN 82 and 107 ms, the products 99 and 129 ms (float32: 188 and 239 against
    232 and 313 ms)."""
    try:  # a private torch function
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def _memory_format(weight: Tensor) -> torch.memory_format:
    """The layout of a step's convolution with ``weight``: channels last for 2-d maps in a 16-bit
    type (oneDNN's bfloat16 convolutions of the Moving MNIST recipe's maps took 8-11 % less time
    so on a 2-core AMD EPYC: no reordering of input, weight and output at every call), else
    torch's usual (in float32 channels last was no faster)."""
    if weight.dim() == 4 and weight.dtype in (torch.bfloat16, torch.float16):
        return torch.channels_last
    return torch.contiguous_format


WINOGRAD_MIN_CHANNELS = 32
"""The fewest input and output channels of a step's convolution that runs as Winograd's."""


def winograd_dtype(
    weight: Tensor, padding: int, dtype: torch.dtype | None = None
) -> torch.dtype | None:
    """The type in which a step's convolution with ``weight`` (cast to ``dtype``, if given, as
    autocast would) computes as Winograd F(2x2, 3x3) products (:func:`winograd_conv`), or
    ``None`` where it runs as oneDNN's direct convolution.

    Winograd's for 3x3 kernels with "same" padding, 2-d maps on a CPU, at least
    :data:`WINOGRAD_MIN_CHANNELS` channels in and out, where the compiled kernels are built: 16
    multiplications per 2x2 outputs and channel pair where the direct convolution takes 36. On a
    2-core AMD EPYC (AVX2) at the Moving MNIST recipe's shapes (16 maps of 8x8, 192 and 256
    channels in, 512 out) in float32 it took 6.3 and 8.5 ms against oneDNN's 12.2 and 18.0
    (input gradients 7.0 and 7.6 against 15.0 and 15.0). It computes in float32, and in
    bfloat16 where the CPU computes bfloat16 natively
    (:func:`~lstmvision.nn.recurrent_fast.cpu_computes_bf16`; on a 2-core Zen 4 EPYC with
    AVX512-BF16 the two forwards took 2.2 and 3.1 ms against oneDNN's 3.9 and 5.0, in float32
    5.3 and 6.9 against 7.7 and 9.9); a CPU without emulates bfloat16 convolutions and
    products at a small fraction of its float32 speed, so there a bfloat16 step computes in
    float32 (its inputs and weights rounded to bfloat16 as autocast's, its outputs rounded to
    bfloat16)."""
    if (
        weight.device.type != "cpu"
        or weight.dim() != 4
        or tuple(weight.shape[2:]) != (3, 3)
        or padding != 1
        or min(weight.shape[:2]) < WINOGRAD_MIN_CHANNELS
        or torch.jit.is_tracing()
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_compiling()
    ):
        return None
    given = weight.dtype if dtype is None else dtype
    if given == torch.float32:
        compute = torch.float32
    elif given == torch.bfloat16:
        compute = torch.bfloat16 if recurrent_fast.cpu_computes_bf16() else torch.float32
    else:
        return None
    return compute if recurrent_fast.extension() is not None else None


_WINOGRAD_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def winograd_weight(weight: Tensor, dtype: torch.dtype) -> Tensor:
    """A 3x3 kernel's Winograd F(2x2, 3x3) transform ``G w G^T``: ``(O, I, 3, 3)`` -> ``(16, I,
    O)`` in ``dtype`` (computed in float32, or float64 for float64)."""
    exact = torch.float64 if weight.dtype == torch.float64 else torch.float32
    g = torch.tensor(_WINOGRAD_G, dtype=exact, device=weight.device)
    u = torch.einsum("ka,oiab,lb->klio", g, weight.detach().to(exact), g)
    return u.reshape(16, *u.shape[2:]).to(dtype).contiguous()


def winograd_conv(x: Tensor, u: Tensor, bias: Tensor | None, dtype: torch.dtype) -> Tensor:
    """The stride-1 3x3 convolution with padding 1 of maps ``x`` ``(B, C, H, W)`` with a weight
    transformed by :func:`winograd_weight`, ``u`` ``(16, C, O)``, plus ``bias``: ``(B, O, H, W)``
    in ``dtype``, channels last (``csrc/winograd.h``: 4x4 tiles 2 apart, transformed, 16 matrix
    products in ``u``'s type, the 2x2 outputs of each tile transformed back)."""
    nhwc = x.permute(0, 2, 3, 1).contiguous()  # no copy for maps that lie channels last
    with torch.autocast(x.device.type, enabled=False):  # the products in u's type, as given
        y = recurrent_fast.extension().winograd_conv(nhwc, u, bias, dtype)
    return y.permute(0, 3, 1, 2)


def _winograd_weight_grad(conv: BatchedWeightGradConv, xs, gs, bias: bool):
    """:func:`_stacked_weight_grad` where the steps ran as Winograd's: the gradient of the
    transformed weight, ``dU``, one product per tile offset over all steps' tiles
    (``csrc/winograd.h``), then the weight's own, ``G^T dU G`` (16 multiplications per tile and
    channel pair, where the convolution backward takes 36 per 2x2 outputs)."""
    x = _stacked(xs, conv).permute(0, 2, 3, 1)  # (N, H, W, I), channels last: no copy
    g = torch.cat(gs)  # (N, O, H, W)
    nhwc = g.permute(0, 2, 3, 1).contiguous()
    with torch.autocast(x.device.type, enabled=False):
        du, grad_b = recurrent_fast.extension().winograd_weight_grad(x, nhwc, conv.winograd)
    gm = torch.tensor(_WINOGRAD_G, dtype=grad_b.dtype, device=du.device)
    grad_w = torch.einsum("ka,klio,lb->oiab", gm, du.view(4, 4, *du.shape[1:]).to(gm.dtype), gm)
    dtype = conv.weight.dtype
    grad_w = grad_w.to(dtype).contiguous(memory_format=conv.memory_format)
    return grad_w, grad_b.to(dtype) if bias else None


def _joined(parts: list[Tensor], conv: BatchedWeightGradConv) -> Tensor:
    """The given parts stacked along the channels in ``conv``'s type and layout: one copy."""
    if len(parts) == 1:
        return parts[0].to(conv.weight.dtype, memory_format=conv.memory_format)
    first = parts[0]
    shape = (first.shape[0], sum(p.shape[1] for p in parts), *first.shape[2:])
    out = torch.empty(
        shape, dtype=conv.weight.dtype, device=first.device, memory_format=conv.memory_format
    )
    for part, piece in zip(parts, out.split([p.shape[1] for p in parts], 1)):
        piece.copy_(part)
    return out


def _step_parts(
    inputs: Tensor, given: list[bool], sizes: tuple[int, ...]
) -> tuple[Tensor | None, ...]:
    """A step's parts (``None`` where zero) from its joined given parts ``inputs``."""
    pieces = iter(inputs.split([n for n, g in zip(sizes, given) if g], 1))
    return tuple(next(pieces) if g else None for g in given)


def _stacked(xs: list[tuple[Tensor, list[bool]]], conv: BatchedWeightGradConv) -> Tensor:
    """The steps' inputs (each its given parts joined, and which parts were given) stacked as
    one batch ``(N, I, *space)`` in ``conv``'s layout, zeros for the parts not given."""
    n = sum(inputs.shape[0] for inputs, _ in xs)
    shape = (n, sum(conv.sizes), *xs[0][0].shape[2:])
    out = torch.empty(
        shape, dtype=conv.weight.dtype, device=conv.weight.device, memory_format=conv.memory_format
    )
    start = 0
    for inputs, given in xs:
        block = out[start : start + inputs.shape[0]]
        if all(given):  # the step's whole input: one copy
            block.copy_(inputs)
        else:
            parts = _step_parts(inputs, given, conv.sizes)
            for part, piece in zip(parts, block.split(conv.sizes, 1)):
                piece.zero_() if part is None else piece.copy_(part)
        start += inputs.shape[0]
    return out


def _shifted_weight_grad(
    xs, gs, kernel, padding: int, bias: bool, sizes: tuple[int, ...]
) -> tuple[Tensor, Tensor | None]:
    """The weight and bias gradients of a stride-1 convolution from its inputs ``xs`` and output
    gradients ``gs`` (lists of ``(B, I, *space)`` and ``(B, O, *space)``, summed over the list), as
    one matrix product per kernel offset: ``dW[:, :, k] = G @ X_k`` with ``G`` the gradients
    ``(O, positions)`` and ``X_k`` the inputs moved by ``k``, ``(positions, I)`` (from one
    zero-padded channels-last copy). Each input is a tuple of parts of ``sizes`` channels, stacked
    along the channels (``None``: zeros). On a CPU with AMX oneDNN's weight gradient of many small
    maps runs well below the matrix-multiplication speed that these products reach (elsewhere it
    is the faster: :func:`products_are_faster`)."""
    firsts = [next(p for p in parts if p is not None) for parts in xs]
    n = sum(x.shape[0] for x in firsts)
    space, cin, cout = firsts[0].shape[2:], sum(sizes), gs[0].shape[1]
    padded = firsts[0].new_zeros(n, *(s + 2 * padding for s in space), cin)  # channels last
    grads = gs[0].new_empty(cout, n, *space)  # (O, N, *space)
    inner = tuple(slice(padding, padding + s) for s in space)
    bounds = list(itertools.accumulate(sizes, initial=0))
    start = 0
    for parts, first, g in zip(xs, firsts, gs):
        stop = start + first.shape[0]
        for part, lo, hi in zip(parts, bounds, bounds[1:]):
            if part is not None:  # a zero part stays the zeros it was made with
                padded[(slice(start, stop), *inner, slice(lo, hi))] = part.movedim(1, -1)
        grads[:, start:stop] = g.movedim(1, 0)
        start = stop
    grads = grads.reshape(cout, -1)  # (O, N * positions)
    grad_w = grads.new_empty(cout, *kernel, cin)  # (O, *kernel, I)
    for offset in itertools.product(*(range(k) for k in kernel)):
        window = padded[(slice(None), *(slice(k, k + s) for k, s in zip(offset, space)))]
        torch.mm(grads, window.reshape(-1, cin), out=grad_w[(slice(None), *offset)])
    return grad_w.movedim(-1, 1), grads.sum(1) if bias else None  # (O, I, *kernel), (O,)


class _StepConv(torch.autograd.Function):
    """One step's convolution of its input parts (stacked along the channels, ``None``: zeros):
    its backward gives the gradient of each part that needs one (in the part's type) and leaves
    ``((joined input, parts given), g_t)`` for :class:`_StepWeightGrad`."""

    @staticmethod
    def forward(ctx, weight, bias, token, conv, *parts):
        ctx.conv = conv
        ctx.given = [p is not None for p in parts]
        given = [p for p in parts if p is not None]
        ctx.dtypes = [None if p is None else p.dtype for p in parts]
        inputs = _joined(given, conv)  # cast to the weight's type (autocast's) in the same copy
        ctx.save_for_backward(inputs)
        if conv.winograd is not None:  # the given parts' rows of the transformed weight
            u = conv.winograd_u
            if not all(ctx.given):
                rows = [r for r, p in zip(u.split(conv.sizes, 1), parts) if p is not None]
                u = rows[0] if len(rows) == 1 else torch.cat(rows, 1)
            return winograd_conv(inputs, u, bias, weight.dtype)
        w = weight
        if not all(ctx.given):  # a zero part adds nothing: the others' convolution (one bias)
            ws = [pw for pw, p in zip(conv.part_weights(), parts) if p is not None]
            w = ws[0] if len(ws) == 1 else torch.cat(ws, 1)
        return _CONV_FN[conv.dims](inputs, w, bias, padding=conv.padding)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        (inputs,) = ctx.saved_tensors
        conv = ctx.conv
        if ctx.needs_input_grad[2]:  # the weights are trained: _StepWeightGrad sums this step in
            conv.pending.append(((inputs, ctx.given), g))
        wanted = ctx.needs_input_grad[4:]
        grads = [None] * len(ctx.given)
        if all(wanted):
            whole = conv.input_grad(g, None)
            grads = list(whole.split(conv.sizes, 1))
        else:  # only the parts that need a gradient (not the frames read, not a zero state)
            for k, need in enumerate(wanted):
                if need:
                    grads[k] = conv.input_grad(g, k)
        grads = [None if d is None else d.to(t) for d, t in zip(grads, ctx.dtypes)]  # parts' types
        return None, None, g.new_zeros(()), None, *grads


def _compiled_gates(gates: Tensor, training: bool):
    """The compiled kernels of :mod:`lstmvision.nn.recurrent_fast` where they serve these gates
    (when training: at inference the gate arithmetic is a small share of a step), else None."""
    if not training or not recurrent_fast.supports(gates):
        return None
    return recurrent_fast.extension()


def _is_channels_last(maps: Tensor) -> bool:
    """Whether ``maps`` ``(B, C, H, W)`` lie channels last (as the 16-bit convolutions give them:
    :func:`_memory_format`) and not also as usual (one position, or one channel)."""
    return (
        maps.dim() == 4
        and not maps.is_contiguous()
        and maps.is_contiguous(memory_format=torch.channels_last)
    )


def _rows(maps: Tensor, channels_last: bool) -> Tensor:
    """Maps ``(B, k H, *space)`` as the rows of ``k`` blocks of ``n`` that the compiled gates
    take: ``(B, k H * positions)`` (an image's channels one after another, ``n = H *
    positions``), or, channels last, ``(B * positions, k H)`` (a position's, ``n = H``)."""
    if channels_last:
        maps = maps.contiguous(memory_format=torch.channels_last)
        return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])  # a view
    return maps.contiguous().view(maps.shape[0], -1)


def _maps(rows: Tensor, shape: torch.Size, channels_last: bool) -> Tensor:
    """The inverse of :func:`_rows`: rows as maps of ``shape``."""
    if channels_last:
        batch, channels, *space = shape
        return rows.view(batch, *space, channels).permute(0, 3, 1, 2)
    return rows.view(shape)


class LSTMGates(torch.autograd.Function):
    """The gate equations of a cell without peepholes or normalisation, pre-activations ``(B, 4H,
    *space)`` and ``C_{t-1}`` -> ``(h_t, C_t)``, with their derivatives written out in few
    whole-map operations. The gates are computed in ``C``'s type (float32 under autocast)."""

    @staticmethod
    def forward(ctx, pre, c_prev):
        ctx.pre_dtype = pre.dtype
        gates = pre.to(torch.promote_types(pre.dtype, c_prev.dtype), copy=True)  # (B, 4H, *space)
        ctx.compiled = _compiled_gates(gates, training=any(ctx.needs_input_grad))
        if ctx.compiled is not None:  # the same equations in one compiled loop, over rows
            ctx.channels_last = _is_channels_last(gates)
            ctx.shapes = pre.shape, c_prev.shape
            rows = _rows(gates, ctx.channels_last)
            c_rows = _rows(c_prev.to(gates.dtype), ctx.channels_last)
            h, c, tanh_c = ctx.compiled.lstm_gates_forward(rows, c_rows)
            ctx.save_for_backward(rows, c_rows, tanh_c)
            return _maps(h, c_prev.shape, ctx.channels_last), _maps(
                c, c_prev.shape, ctx.channels_last
            )
        i, f, g, o = gates.chunk(4, 1)
        g.mul_(2)
        gates.sigmoid_()  # i, f, o = σ(.), and σ(2 g)
        g.mul_(2).sub_(1)  # g = tanh(.) = 2σ(2 .) - 1
        c = torch.addcmul(f * c_prev, i, g)  # C_t = f ⊙ C_{t-1} + i ⊙ g
        tanh_c = tanh(c)
        ctx.save_for_backward(gates, c_prev, tanh_c)
        return o * tanh_c, c  # h_t = o ⊙ tanh(C_t)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh, dc):
        gates, c_prev, tanh_c = ctx.saved_tensors
        if ctx.compiled is not None:
            layout = ctx.channels_last
            dh, dc = (
                torch.zeros_like(tanh_c) if d is None else _rows(d.to(tanh_c.dtype), layout)
                for d in (dh, dc)
            )
            d, dc_prev = ctx.compiled.lstm_gates_backward(dh, dc, gates, c_prev, tanh_c)
            pre_shape, c_shape = ctx.shapes
            return _maps(d, pre_shape, layout).to(ctx.pre_dtype), _maps(dc_prev, c_shape, layout)
        i, f, g, o = gates.chunk(4, 1)
        d = torch.empty_like(gates)
        di, df, dg, do = d.chunk(4, 1)
        if dh is None:
            dh = torch.zeros_like(tanh_c)
        # ∂L/∂C_t, total: dC_t + dh_t ⊙ o ⊙ (1 - tanh²C_t)
        dc_total = dh * o
        dc_total.mul_(1 - tanh_c * tanh_c)
        if dc is not None:
            dc_total.add_(dc)
        torch.mul(dc_total, g, out=di)  # i: dC ⊙ g ⊙ i(1 - i)
        torch.mul(dc_total, c_prev, out=df)  # f: dC ⊙ C_{t-1} ⊙ f(1 - f)
        torch.mul(dh, tanh_c, out=do)  # o: dh ⊙ tanh(C_t) ⊙ o(1 - o)
        sig = gates * (1 - gates)  # σ' where the gate is a sigmoid (its g block is overwritten)
        d.mul_(sig)
        torch.mul(dc_total, i, out=dg).mul_(1 - g * g)  # g: dC ⊙ i ⊙ (1 - g²)
        return d.to(ctx.pre_dtype), dc_total.mul_(f)  # ∂L/∂C_{t-1} = dC ⊙ f
