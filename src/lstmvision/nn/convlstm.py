r"""Convolutional LSTM (Shi et al. 2015): an LSTM whose input-to-state and state-to-state
transitions are convolutions, so ``x``, ``h`` and ``C`` are maps ``(B, channels, *space)``.

One class for 1D and 2D (``dims``), after Keras' ``ConvLSTM1D/2D`` over one base class.

.. math::

    i_t &= \sigma(W_{xi} * X_t + W_{hi} * H_{t-1} + w_{ci} \odot C_{t-1} + b_i) \\
    f_t &= \sigma(W_{xf} * X_t + W_{hf} * H_{t-1} + w_{cf} \odot C_{t-1} + b_f) \\
    g_t &= \tanh(W_{xg} * X_t + W_{hg} * H_{t-1} + b_g) \\
    C_t &= f_t \odot C_{t-1} + i_t \odot g_t \\
    o_t &= \sigma(W_{xo} * X_t + W_{ho} * H_{t-1} + w_{co} \odot C_t + b_o) \\
    H_t &= o_t \odot \tanh(C_t)

``*`` is a convolution with ``kernel_size`` and "same" padding (odd kernels only, so the maps keep
their size), ``⊙`` the elementwise product. The peephole terms ``w_c ⊙ C`` (Shi's equation 3)
are present only with ``peephole=True``; their weights are one value per channel, ``(H, 1, 1)``,
not Shi's full ``(H, height, width)`` maps, so a model is not tied to one frame size. Without
peepholes these are exactly :class:`lstmvision.nn.LSTM`'s equations (torch's gate order ``i, f,
g, o``) with the two matrix products replaced by convolutions: with 1x1 kernels on 1x1 maps the
cell *is* our LSTM cell (``weight_ih`` = ``conv_x.weight``, ``weight_hh`` = ``conv_h.weight``,
both biases kept, as torch keeps ``b_ih`` and ``b_hh``; the tests check this).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.nn.cells import tanh

State = tuple[Tensor, Tensor]
_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_CONV_FN = {1: F.conv1d, 2: F.conv2d}
_CONV_T_FN = {1: F.conv_transpose1d, 2: F.conv_transpose2d}


class _UnrolledConv:
    """One "same" convolution applied at every step of an unrolled sequence, whose weight gradient
    is computed once for all steps instead of once per step.

    The weight's gradient is the sum over steps of ``conv_weight_grad(x_t, g_t)``, which is one
    call on the steps stacked as a batch, ``conv_weight_grad([x_1..x_T], [g_1..g_T])``: on a CPU
    the per-step calls on small maps (an 8x8 grid, batch 16) are slow: for the Moving MNIST recipe's
    two layers 19 calls took 71 and 89 ms, the stacked one 49 and 66 ms (bf16, 2-core AMX Xeon).
    Each step's backward (:class:`_StepConv`) computes only the gradient of its input and leaves
    ``(x_t, g_t)``; a node that all steps read (:class:`_StepWeightGrad`, through a scalar
    ``token`` whose gradient is zero) runs after the last of them, so autograd
    itself orders the work, and turns the stack into the weight's and bias's gradients (on a CPU
    as matrix products, :func:`_shifted_weight_grad`, faster still). The weights are cast once
    (under autocast, to its type) rather than at every step.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None, dims: int, padding: int):
        device = weight.device.type
        if torch.is_autocast_enabled(
            device
        ):  # what autocast would do to the convolution at every step
            dtype = torch.get_autocast_dtype(device)
            weight, bias = weight.to(dtype), None if bias is None else bias.to(dtype)
        self.weight, self.bias, self.dims, self.padding = weight, bias, dims, padding
        self.pending: list[
            tuple[Tensor, Tensor]
        ] = []  # (x_t, g_t) of the steps whose backward has run
        self.token = _StepWeightGrad.apply(weight, bias, self)

    def __call__(self, x: Tensor) -> Tensor:
        return _StepConv.apply(x.to(self.weight.dtype), self.weight, self.bias, self.token, self)


@contextlib.contextmanager
def unrolled_conv(conv: nn.Module | None) -> Iterator[_UnrolledConv | None]:
    """Within: for ``conv`` (a ``Conv1d``/``Conv2d`` of stride 1, "same" padding, one group) the
    function to apply at every step of one sequence instead, its weight gradient computed once for
    all steps (:class:`_UnrolledConv`); ``None`` without gradients or for another module."""
    dims = {nn.Conv1d: 1, nn.Conv2d: 2}.get(type(conv))
    same = (
        dims
        and conv.groups == 1
        and set(conv.stride) == {1}
        and set(conv.dilation) == {1}
        and (
            list(conv.padding) == [k // 2 for k in conv.kernel_size]
            and len(set(conv.kernel_size)) == 1
        )
    )
    yield (
        _UnrolledConv(conv.weight, conv.bias, dims, conv.padding[0])
        if same and torch.is_grad_enabled()
        else None
    )


class _StepWeightGrad(torch.autograd.Function):
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
        if conv.weight.device.type == "cpu":
            return (
                *_shifted_weight_grad(xs, gs, conv.weight.shape[2:], conv.padding, ctx.has_bias),
                None,
            )
        d = conv.dims
        bias_sizes = [conv.weight.shape[0]] if ctx.has_bias else None
        _, grad_w, grad_b = torch.ops.aten.convolution_backward(
            torch.cat(gs),
            torch.cat(xs),
            conv.weight,
            bias_sizes,
            [1] * d,
            [conv.padding] * d,
            [1] * d,
            False,
            [0] * d,
            1,
            [False, True, ctx.has_bias],
        )
        return grad_w, grad_b, None


def _shifted_weight_grad(xs, gs, kernel, padding: int, bias: bool) -> tuple[Tensor, Tensor | None]:
    """The weight and bias gradients of a stride-1 convolution from its inputs ``xs`` and output
    gradients ``gs`` (lists of ``(B, I, *space)`` and ``(B, O, *space)``, summed over the list), as
    one matrix product per kernel offset: ``dW[:, :, k] = G @ X_k`` with ``G`` the gradients
    ``(O, positions)`` and ``X_k`` the inputs moved by ``k``, ``(positions, I)`` (from one zero-padded
    channels-last copy). On a CPU oneDNN's weight gradient of many small maps is slow (the Moving
    MNIST recipe's two layers: 47 and 61 ms at 0.74 TFLOP/s, bf16, 2-core AMX Xeon); these products
    run at the matrix-multiplication speed (26 and 34 ms)."""
    n = sum(x.shape[0] for x in xs)
    space, cin, cout = xs[0].shape[2:], xs[0].shape[1], gs[0].shape[1]
    padded = xs[0].new_zeros(n, *(s + 2 * padding for s in space), cin)  # channels last
    grads = gs[0].new_empty(cout, n, *space)
    inner = tuple(slice(padding, padding + s) for s in space)
    start = 0
    for x, g in zip(xs, gs):
        stop = start + x.shape[0]
        padded[(slice(start, stop), *inner)] = x.movedim(1, -1)
        grads[:, start:stop] = g.movedim(1, 0)
        start = stop
    grads = grads.reshape(cout, -1)  # (O, N * positions)
    grad_w = grads.new_empty(cout, *kernel, cin)
    for offset in itertools.product(*(range(k) for k in kernel)):
        window = padded[(slice(None), *(slice(k, k + s) for k, s in zip(offset, space)))]
        torch.mm(grads, window.reshape(-1, cin), out=grad_w[(slice(None), *offset)])
    return grad_w.movedim(-1, 1), grads.sum(1) if bias else None


class _StepConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, token, conv):
        ctx.conv = conv
        ctx.save_for_backward(x, weight)
        return _CONV_FN[conv.dims](x, weight, bias, padding=conv.padding)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        conv = ctx.conv
        if ctx.needs_input_grad[3]:  # the weights are trained: _StepWeightGrad sums this step in
            conv.pending.append((x, g))
        grad_x = (
            _CONV_T_FN[conv.dims](g, weight, padding=conv.padding)
            if ctx.needs_input_grad[0]
            else None
        )
        return grad_x, None, None, g.new_zeros(()), None


class _Gates(torch.autograd.Function):
    """The gate equations of a cell without peepholes or normalisation, pre-activations ``(B, 4H,
    *space)`` and ``C_{t-1}`` -> ``(h_t, C_t)``, with their derivatives written out (as
    :meth:`lstmvision.nn.cells.LSTMEquations.step_backward`) in few whole-map operations instead of
    autograd's graph of a few dozen small ones: less time on a CPU, where these maps are small.
    The gates are computed in ``C``'s type (float32 under autocast)."""

    @staticmethod
    def forward(ctx, pre, c_prev):
        ctx.pre_dtype = pre.dtype
        gates = pre.to(torch.promote_types(pre.dtype, c_prev.dtype), copy=True)  # (B, 4H, *space)
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
        sig = gates * (
            1 - gates
        )  # σ' where the gate is a sigmoid (its g block is overwritten below)
        d.mul_(sig)
        torch.mul(dc_total, i, out=dg).mul_(1 - g * g)  # g: dC ⊙ i ⊙ (1 - g²)
        return d.to(ctx.pre_dtype), dc_total.mul_(f)  # ∂L/∂C_{t-1} = dC ⊙ f


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step.

    Args:
        input_size: channels of ``x``.
        hidden_size: channels of ``h`` and ``C``.
        kernel_size: odd size of both convolutions (``W_x*`` and ``W_h*``).
        dims: 1 (sequences of 1-D signals ``(B, C, L)``) or 2 (of images ``(B, C, H, W)``).
        bias: biases ``b_ih`` (in ``conv_x``) and ``b_hh`` (in ``conv_h``), as torch's LSTM.
        peephole: add the ``w_c ⊙ C`` terms (per-channel weights, zero at start).
        norm: layer normalisation (Ba et al. 2016's LSTM form): each gate's ``W_x * X_t`` and
            ``W_h * H_{t-1}`` normalised apart over its channels and space (a ``GroupNorm`` of 4
            groups, one per gate), and ``C_t`` before its ``tanh`` in ``H_t`` (one group), each with
            a learnt scale and shift per channel. The memory ``C_t`` itself is not normalised.
        init: ``"lstm"``: torch's LSTM's, every weight and bias ``U(-1/sqrt(H), 1/sqrt(H))``;
            ``"fan-in"``: torch's ``Conv`` layers' (and OpenSTL's ConvLSTM's), each convolution's
            ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in`` its input channels times the
            kernel's size: 3x smaller for a 3x3 kernel, so the gates start less saturated.
        forget_bias: added to the forget gate's bias ``b_f`` at initialisation (Gers et al. 2000,
            Jozefowicz et al. 2015 use 1: the memory is kept at first rather than half forgotten).

    ``forward(x (B, I, *space), state=(h, C) or None) -> (h', C')``, each ``(B, H, *space)``;
    a missing state is zeros.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        kernel_size: int = 3,
        dims: int = 2,
        bias: bool = True,
        peephole: bool = False,
        norm: bool = False,
        init: str = "lstm",
        forget_bias: float = 0.0,
    ):
        super().__init__()
        if init not in ("lstm", "fan-in"):
            raise ValueError(f"init must be 'lstm' or 'fan-in', not {init!r}")
        if dims not in _CONV:
            raise ValueError(f"dims must be 1 or 2, not {dims}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-size maps), not {kernel_size}")
        conv = _CONV[dims]
        self.input_size, self.hidden_size, self.kernel_size, self.dims = (
            input_size,
            hidden_size,
            kernel_size,
            dims,
        )
        self.conv_x = conv(
            input_size, 4 * hidden_size, kernel_size, padding=kernel_size // 2, bias=bias
        )
        self.conv_h = conv(
            hidden_size, 4 * hidden_size, kernel_size, padding=kernel_size // 2, bias=bias
        )
        self.peephole = peephole
        if peephole:
            self.w_ci, self.w_cf, self.w_co = (
                nn.Parameter(torch.zeros(hidden_size, *[1] * dims)) for _ in range(3)
            )
        if init == "lstm":
            bound = 1 / math.sqrt(hidden_size)
            for p in (*self.conv_x.parameters(), *self.conv_h.parameters()):
                nn.init.uniform_(p, -bound, bound)
        if forget_bias and bias:  # gates are stacked i, f, g, o
            with torch.no_grad():
                self.conv_x.bias[hidden_size : 2 * hidden_size] += forget_bias
        self.norm = norm
        if norm:
            self.norm_x, self.norm_h = (
                nn.GroupNorm(4, 4 * hidden_size),
                nn.GroupNorm(4, 4 * hidden_size),
            )
            self.norm_c = nn.GroupNorm(1, hidden_size)
        self._unrolled: _UnrolledConv | None = None  # set by ConvLSTM.unrolled

    def initial_state(self, x: Tensor) -> State:
        zeros = x.new_zeros(x.shape[0], self.hidden_size, *x.shape[2:])  # (B, H, *space)
        return zeros, zeros

    def forward(self, x: Tensor, state: State | None = None) -> State:
        if x.dim() != self.dims + 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"ConvLSTMCell: expected (B, {self.input_size}, {', '.join('*' * self.dims)}), "
                f"got {tuple(x.shape)}"
            )
        h_prev, c_prev = self.initial_state(x) if state is None else state
        if self.norm:  # LN(W_x * X_t) + LN(W_h * H_{t-1}), per gate
            pre = self.norm_x(self.conv_x(x)) + self.norm_h(self.conv_h(h_prev))
        else:  # (B, 4H, *space): W_x * X_t + W_h * H_{t-1} + b
            pre = self._joint_conv(x, h_prev)
        if not (self.peephole or self.norm):
            return _Gates.apply(pre, c_prev)  # the equations below, their derivatives written out
        i, f, g, o = pre.chunk(4, dim=1)  # 4 x (B, H, *space)
        if self.peephole:
            i, f = i + self.w_ci * c_prev, f + self.w_cf * c_prev
        # i_t = σ(W_xi * X_t + W_hi * H_{t-1} [+ w_ci ⊙ C_{t-1}] + b_i)
        i = torch.sigmoid(i)
        # f_t = σ(W_xf * X_t + W_hf * H_{t-1} [+ w_cf ⊙ C_{t-1}] + b_f)
        f = torch.sigmoid(f)
        # g_t = tanh(W_xg * X_t + W_hg * H_{t-1} + b_g)
        g = tanh(g)
        # C_t = f_t ⊙ C_{t-1} + i_t ⊙ g_t
        c = torch.addcmul(f * c_prev, i, g)
        # o_t = σ(W_xo * X_t + W_ho * H_{t-1} [+ w_co ⊙ C_t] + b_o)
        o = torch.sigmoid(o + self.w_co * c if self.peephole else o)
        # H_t = o_t ⊙ tanh(C_t)   (tanh(LN(C_t)) with norm)
        h = o * tanh(self.norm_c(c) if self.norm else c)
        return h, c

    def _joint_conv(self, x: Tensor, h: Tensor) -> Tensor:
        """``W_x * X + W_h * H + b_ih + b_hh`` as one convolution of ``[X, H]`` (channels stacked)
        with ``[W_x, W_h]``: the same sum, one call instead of two and an addition (less time on a
        CPU). The parameters stay ``conv_x`` and ``conv_h``. Inside :meth:`ConvLSTM.unrolled`, the
        weights are joined once for all steps and their gradient computed once (:class:`_UnrolledConv`)."""
        if self._unrolled is not None and torch.is_grad_enabled():
            return self._unrolled(torch.cat([x, h], 1))
        weight, bias = self._joint_weights()
        return _CONV_FN[self.dims](
            torch.cat([x, h], 1), weight, bias, padding=self.kernel_size // 2
        )

    def _joint_weights(self) -> tuple[Tensor, Tensor | None]:
        """``[W_x, W_h]`` ``(4H, I + H, *kernel)`` and ``b_ih + b_hh`` (``None`` without biases)."""
        weight = torch.cat([self.conv_x.weight, self.conv_h.weight], 1)
        bias = self.conv_x.bias + self.conv_h.bias if self.conv_x.bias is not None else None
        return weight, bias

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, kernel_size={self.kernel_size}, dims={self.dims}"
            f"{', peephole=True' if self.peephole else ''}{', norm=True' if self.norm else ''}"
        )


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM layers run over a sequence of maps.

    Args:
        input_size: channels of the input maps.
        hidden_size: channels of every layer's state (an int) or one per layer (a list).
        kernel_size, dims, bias, peephole, norm, init, forget_bias: as :class:`ConvLSTMCell` (every layer).
        num_layers: stacked layers (ignored when ``hidden_size`` is a list).
        batch_first: input ``(B, T, C, *space)`` (default) rather than ``(T, B, C, *space)``.

    ``forward(x, state=None) -> (outputs, states)``: the last layer's ``h`` at every step (same
    layout as ``x``, ``hidden_size[-1]`` channels) and the final ``(h, C)`` of every layer.
    :meth:`step` runs one time step through the stack (what a forecaster feeding back its own
    predictions calls).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int | list[int],
        kernel_size: int = 3,
        num_layers: int = 1,
        dims: int = 2,
        bias: bool = True,
        peephole: bool = False,
        batch_first: bool = True,
        norm: bool = False,
        init: str = "lstm",
        forget_bias: float = 0.0,
    ):
        super().__init__()
        sizes = (
            list(hidden_size)
            if isinstance(hidden_size, (list, tuple))
            else [hidden_size] * num_layers
        )
        ins = [input_size, *sizes[:-1]]
        self.cells = nn.ModuleList(
            ConvLSTMCell(i, h, kernel_size, dims, bias, peephole, norm, init, forget_bias)
            for i, h in zip(ins, sizes)
        )
        self.batch_first, self.dims = batch_first, dims

    @property
    def hidden_sizes(self) -> list[int]:
        return [cell.hidden_size for cell in self.cells]

    @contextlib.contextmanager
    def unrolled(self) -> Iterator[None]:
        """Within: the steps share each cell's joined (and, under autocast, cast) weights, and
        their weight gradients are computed once for all steps when the graph is run backward
        (:class:`_UnrolledConv`): the same sums as step by step, in less time on a CPU. Enter it
        inside autocast, around all the steps of one sequence; :meth:`forward` does."""
        for cell in self.cells:
            if not cell.norm and torch.is_grad_enabled():
                cell._unrolled = _UnrolledConv(
                    *cell._joint_weights(), cell.dims, cell.kernel_size // 2
                )
        try:
            yield
        finally:
            for cell in self.cells:
                cell._unrolled = None

    def step(self, x: Tensor, states: list[State] | None = None) -> tuple[Tensor, list[State]]:
        """``x (B, I, *space)`` and each layer's state -> last layer's ``h`` and the new states."""
        states = states or [None] * len(self.cells)
        new = []
        for cell, state in zip(self.cells, states):
            h, c = cell(x, state)
            new.append((h, c))
            x = h  # layer l's h_t is layer l+1's input at step t
        return x, new

    def forward(self, x: Tensor, states: list[State] | None = None) -> tuple[Tensor, list[State]]:
        if x.dim() != self.dims + 3:
            raise ValueError(
                f"ConvLSTM: expected a sequence of {self.dims}-D maps ({self.dims + 3} dims), got {tuple(x.shape)}"
            )
        seq = x.transpose(0, 1) if self.batch_first else x  # (T, B, C, *space)
        outputs = []
        with self.unrolled():
            for x_t in seq:
                h, states = self.step(x_t, states)
                outputs.append(h)
        out = torch.stack(
            outputs, dim=1 if self.batch_first else 0
        )  # (B, T, H, *space) or (T, B, ...)
        return out, states
