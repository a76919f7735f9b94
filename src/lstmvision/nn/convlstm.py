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

Two implementations compute these equations, chosen by ``implementation`` (as
:class:`lstmvision.nn.LSTM`'s):

* ``"equations"``: :meth:`ConvLSTMCell.equations`, the lines above one by one, autograd derives
  them: the reference, for every configuration.
* ``"fast"``: :mod:`lstmvision.nn.convlstm_fast`, the same sums in less time on a CPU (one
  joined convolution per step, one weight gradient per sequence, the gate derivatives written
  out); the parts that do not apply to a configuration (``norm``, peepholes) run as the
  equations.
* ``"auto"`` (default): ``"fast"``, which accepts every configuration; the place where an option
  only the equations can serve would switch.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor, nn

from lstmvision.nn import convlstm_fast
from lstmvision.nn.cells import check_implementation, tanh

IMPLEMENTATIONS = ("auto", "equations", "fast")

State = tuple[Tensor, Tensor]
_CONV = {1: nn.Conv1d, 2: nn.Conv2d}


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
            groups, one per gate), and ``C_t`` before its ``tanh`` in ``H_t`` (one group), each
            with a learnt scale and shift per channel. The memory ``C_t`` itself is not
            normalised.
        init: ``"lstm"``: torch's LSTM's, every weight and bias ``U(-1/sqrt(H), 1/sqrt(H))``;
            ``"fan-in"``: torch's ``Conv`` layers' (and OpenSTL's ConvLSTM's), each convolution's
            ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in`` its input channels times the
            kernel's size: 3x smaller for a 3x3 kernel, so the gates start less saturated.
        forget_bias: added to the forget gate's bias ``b_f`` at initialisation (Gers et al. 2000,
            Jozefowicz et al. 2015 use 1: the memory is kept at first rather than half forgotten).
        implementation: ``"auto"`` (default, the fast path), ``"fast"`` or ``"equations"`` (see
            :mod:`lstmvision.nn.convlstm`).

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
        *,
        implementation: str = "auto",
    ):
        super().__init__()
        if init not in ("lstm", "fan-in"):
            raise ValueError(f"init must be 'lstm' or 'fan-in', not {init!r}")
        if dims not in _CONV:
            raise ValueError(f"dims must be 1 or 2, not {dims}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-size maps), not {kernel_size}")
        self.implementation = check_implementation(implementation, IMPLEMENTATIONS)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.kernel_size, self.dims = kernel_size, dims
        conv, pad = _CONV[dims], kernel_size // 2
        self.conv_x = conv(input_size, 4 * hidden_size, kernel_size, padding=pad, bias=bias)
        self.conv_h = conv(hidden_size, 4 * hidden_size, kernel_size, padding=pad, bias=bias)
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
            self.norm_x = nn.GroupNorm(4, 4 * hidden_size)
            self.norm_h = nn.GroupNorm(4, 4 * hidden_size)
            self.norm_c = nn.GroupNorm(1, hidden_size)
        # within ConvLSTM.batched_weight_grads, on the fast path: the joined convolution
        self._batched_conv: convlstm_fast.BatchedWeightGradConv | None = None

    def initial_state(self, x: Tensor) -> State:
        zeros = x.new_zeros(x.shape[0], self.hidden_size, *x.shape[2:])  # (B, H, *space)
        return zeros, zeros

    def forward(self, x: Tensor, state: State | None = None) -> State:
        if x.dim() != self.dims + 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"ConvLSTMCell: expected (B, {self.input_size}, {', '.join('*' * self.dims)}), "
                f"got {tuple(x.shape)}"
            )
        if self.implementation == "equations":
            return self.equations(x, *(self.initial_state(x) if state is None else state))
        return convlstm_fast.fast_step(self, x, state)

    def equations(self, x: Tensor, h_prev: Tensor, c_prev: Tensor) -> State:
        """The module's equations for ``x`` ``(B, I, *space)`` and ``(H_{t-1}, C_{t-1})``, one
        line of code each, differentiated by autograd -> ``(H_t, C_t)``."""
        if self.norm:  # LN(W_x * X_t) + LN(W_h * H_{t-1}), per gate
            pre = self.norm_x(self.conv_x(x)) + self.norm_h(self.conv_h(h_prev))
        else:  # (B, 4H, *space): W_x * X_t + W_h * H_{t-1} + b
            pre = self.conv_x(x) + self.conv_h(h_prev)
        return self.gates(pre, c_prev)

    def gates(self, pre: Tensor, c_prev: Tensor) -> State:
        """The gates from their pre-activations ``W_x * X_t + W_h * H_{t-1} + b`` ``(B, 4H,
        *space)`` (stacked i, f, g, o) and ``C_{t-1}`` -> ``(H_t, C_t)``."""
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

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, kernel_size={self.kernel_size}, "
            f"dims={self.dims}"
            f"{', peephole=True' if self.peephole else ''}{', norm=True' if self.norm else ''}"
            + ("" if self.implementation == "auto" else f", implementation={self.implementation!r}")
        )


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM layers run over a sequence of maps.

    Args:
        input_size: channels of the input maps.
        hidden_size: channels of every layer's state (an int) or one per layer (a list).
        kernel_size, dims, bias, peephole, norm, init, forget_bias, implementation: as
            :class:`ConvLSTMCell` (every layer).
        num_layers: stacked layers (ignored when ``hidden_size`` is a list).
        batch_first: input ``(B, T, C, *space)`` (default) rather than ``(T, B, C, *space)``.

    ``forward(x, state=None) -> (outputs, states)``: the last layer's ``h`` at every step (same
    layout as ``x``, ``hidden_size[-1]`` channels) and the final ``(h, C)`` of every layer.
    :meth:`step` runs one time step through the stack (what a forecaster feeding back its own
    predictions calls, inside :meth:`batched_weight_grads`).
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
        *,
        implementation: str = "auto",
    ):
        super().__init__()
        if isinstance(hidden_size, (list, tuple)):
            sizes = list(hidden_size)
        else:
            sizes = [hidden_size] * num_layers
        ins = [input_size, *sizes[:-1]]
        self.cells = nn.ModuleList(
            ConvLSTMCell(
                i,
                h,
                kernel_size,
                dims,
                bias,
                peephole,
                norm,
                init,
                forget_bias,
                implementation=implementation,
            )
            for i, h in zip(ins, sizes)
        )
        self.batch_first, self.dims = batch_first, dims

    @property
    def hidden_sizes(self) -> list[int]:
        return [cell.hidden_size for cell in self.cells]

    @property
    def implementation(self) -> str:
        """``"auto"``, ``"fast"`` or ``"equations"`` (see :mod:`lstmvision.nn.convlstm`); setting
        it sets every cell's."""
        return self.cells[0].implementation

    @implementation.setter
    def implementation(self, value: str) -> None:
        for cell in self.cells:
            cell.implementation = check_implementation(value, IMPLEMENTATIONS)

    def batched_weight_grads(self) -> contextlib.AbstractContextManager[None]:
        """Within, on the fast path: the steps share each cell's joined (and, under autocast,
        cast) weights, and their weight gradients are computed once for all steps when the graph
        is run backward (:func:`lstmvision.nn.convlstm_fast.batched_weight_grads`): the same sums
        as step by step, in less time on a CPU. Enter it inside autocast, around all the steps of
        one sequence; :meth:`forward` does. With ``implementation="equations"`` it changes
        nothing."""
        return convlstm_fast.batched_weight_grads(self.cells)

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
                f"ConvLSTM: expected a sequence of {self.dims}-D maps ({self.dims + 3} dims), "
                f"got {tuple(x.shape)}"
            )
        seq = x.transpose(0, 1) if self.batch_first else x  # (T, B, C, *space)
        outputs = []
        with self.batched_weight_grads():
            for x_t in seq:
                h, states = self.step(x_t, states)
                outputs.append(h)
        # (B, T, H, *space) or (T, B, H, *space)
        out = torch.stack(outputs, dim=1 if self.batch_first else 0)
        return out, states
