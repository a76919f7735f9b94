r"""Recurrent cells written from their gate equations.

Every cell type is written once, as an *equations* object with two methods:

* ``step(x_part, h_part, state) -> (new_state, cache)``: one time step, one line of code under
  each equation;
* ``step_backward(d_new_state, cache) -> (d_x_part, d_h_part, d_state)``: the derivative
  equations of that step (backpropagation through one step), used by the layers in
  :mod:`lstmvision.nn.recurrent`, which run the steps over a sequence. ``d_x_part`` and
  ``d_h_part`` are lists of per-gate blocks ``(B, H)`` (the caller concatenates them where it
  stores them), ``d_state`` the gradient reaching ``state_{t-1}`` other than through ``h_part``
  (``None`` where there is none).

``x_part = W_ih x_t + b_ih`` and ``h_part = W_hh h_{t-1} + b_hh`` are the input and hidden
pre-activations, ``(B, G*H)`` for ``G`` gate blocks of ``H`` units, stacked along dim 1 in torch's
gate order. The steps only split and combine along dim 1, so they work unchanged for
convolutional pre-activations ``(B, G*H, height, width)`` (a ConvLSTM is the same ``step`` with
convolutions in place of the two matrix products). ``cache`` holds the gate activations of the
step (what ``step_backward`` needs; also what a gate visualisation would record).
``sums_parts`` is true when the step reads the two parts only through ``x_part + h_part`` (then
``d_x_part`` is ``d_h_part`` and a layer may fold ``b_hh`` into ``x_part``).

The modules :class:`RNNCell`, :class:`LSTMCell` and :class:`GRUCell` subclass torch's cells
(same parameter names, shapes, initialisation and call signature) and compute their forward with
``step``; autograd differentiates it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

State = tuple[Tensor, ...]


def tanh(x: Tensor) -> Tensor:
    """``tanh(x) = 2σ(2x) - 1``: the same function through torch's sigmoid, which on CPU is far
    faster than ``torch.tanh`` (these four operations take a third of one ``torch.tanh`` on
    100,000 elements, a ``(256, 512)`` block or a ConvLSTM's gate maps, and three quarters of it on
    the 4,096 of a long sequence's step; torch 2.14, AVX-512). ``2x`` and ``2σ`` are written
    ``x + x`` and ``s + s``: at a recurrent step's sizes an operation with a Python number costs
    about twice one between two tensors. Every ``tanh`` in the cells is this one."""
    s = torch.sigmoid(x + x)
    return s + s - 1


def sigmoid_derivative(s: Tensor) -> Tensor:
    """``σ'(x) = σ(x)(1 - σ(x))`` from ``s = σ(x)``, as ``s - s²`` (one operation)."""
    return torch.addcmul(s, s, s, value=-1)


def tanh_derivative(t: Tensor) -> Tensor:
    """``tanh'(x) = 1 - tanh²(x)`` from ``t = tanh(x)``."""
    return 1 - t * t


class LSTMEquations:
    r"""Long short-term memory step, torch's gate order ``i, f, g, o``.

    .. math::

        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi})   && \text{input gate} \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf})   && \text{forget gate} \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg})    && \text{candidate} \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho})   && \text{output gate} \\
        C_t &= f_t \odot C_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(C_t)

    The input gate is a sigmoid, like the forget and output gates: it decides how much of the
    candidate ``g_t`` is written, so it lies in (0, 1). One of the project's source texts writes
    it as ``tanh``; that is a mistake (torch, cuDNN and the LSTM literature use a sigmoid).
    The state is ``(h, C)``.
    """

    num_gates = 4
    num_states = 2
    sums_parts = True
    kernel = "lstm"  # its loop in lstmvision.nn.recurrent_fast

    def step(self, x_part: Tensor, h_part: Tensor, state: State) -> tuple[State, State]:
        """One step: pre-activations ``(B, 4H)`` and state ``(h_{t-1}, C_{t-1})`` ->
        ``(h_t, C_t)``."""
        _, c_prev = state
        i, f, g, o = (x_part + h_part).chunk(4, dim=1)  # 4 x (B, H)
        # i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
        i = torch.sigmoid(i)
        # f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        f = torch.sigmoid(f)
        # g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        g = tanh(g)
        # o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        o = torch.sigmoid(o)
        # C_t = f_t ⊙ C_{t-1} + i_t ⊙ g_t
        c = torch.addcmul(f * c_prev, i, g)
        # h_t = o_t ⊙ tanh(C_t)
        tanh_c = tanh(c)
        h = o * tanh_c
        return (h, c), (i, f, g, o, c_prev, tanh_c)

    def step_backward(self, d_state: State, cache: State) -> tuple[list, list, State]:
        r"""Derivative equations of :meth:`step` (``σ' = σ(1-σ)``, ``tanh' = 1-tanh²``).

        Given ``(∂L/∂h_t, ∂L/∂C_t)``, returns ``∂L/∂x_part = ∂L/∂h_part`` (both pre-activations
        enter as a sum), and ``(None, ∂L/∂C_{t-1})``: ``h_{t-1}`` reaches the step only through
        ``h_part``.
        """
        dh, dc = d_state
        i, f, g, o, c_prev, tanh_c = cache
        # ∂L/∂C_t, total: dC_t + dh_t ⊙ o_t ⊙ (1 - tanh²C_t)
        dc = torch.addcmul(dc, dh * o, tanh_derivative(tanh_c))
        # ∂L/∂(pre-activation of i) = dC_t ⊙ g_t ⊙ i_t(1 - i_t)
        di = dc * g * sigmoid_derivative(i)
        # ∂L/∂(pre-activation of f) = dC_t ⊙ C_{t-1} ⊙ f_t(1 - f_t)
        df = dc * c_prev * sigmoid_derivative(f)
        # ∂L/∂(pre-activation of g) = dC_t ⊙ i_t ⊙ (1 - g_t²)
        dg = dc * i * tanh_derivative(g)
        # ∂L/∂(pre-activation of o) = dh_t ⊙ tanh(C_t) ⊙ o_t(1 - o_t)
        do = dh * tanh_c * sigmoid_derivative(o)
        # ∂L/∂C_{t-1} = dC_t ⊙ f_t
        dc_prev = dc * f
        d_gates = [di, df, dg, do]
        return d_gates, d_gates, (None, dc_prev)


class GRUEquations:
    r"""Gated recurrent unit step, torch's gate order ``r, z, n``.

    .. math::

        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr})   && \text{reset gate} \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz})   && \text{update gate} \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))
            && \text{candidate} \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    (torch's form: the reset gate multiplies ``W_hn h + b_hn``, not ``h`` before the product).
    The state is ``(h,)``.
    """

    num_gates = 3
    num_states = 1
    sums_parts = False
    kernel = "gru"  # its loop in lstmvision.nn.recurrent_fast

    def step(self, x_part: Tensor, h_part: Tensor, state: State) -> tuple[State, State]:
        """One step: pre-activations ``(B, 3H)`` and state ``(h_{t-1},)`` -> ``(h_t,)``."""
        (h_prev,) = state
        x_r, x_z, x_n = x_part.chunk(3, dim=1)  # 3 x (B, H)
        h_r, h_z, h_n = h_part.chunk(3, dim=1)  # 3 x (B, H)
        # r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        r = torch.sigmoid(x_r + h_r)
        # z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        z = torch.sigmoid(x_z + h_z)
        # n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
        n = tanh(torch.addcmul(x_n, r, h_n))
        # h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}  (= n_t + z_t ⊙ (h_{t-1} - n_t))
        h = torch.addcmul(n, z, h_prev - n)
        return (h,), (r, z, n, h_n, h_prev)

    def step_backward(self, d_state: State, cache: State) -> tuple[list, list, State]:
        r"""Derivative equations of :meth:`step`.

        Given ``(∂L/∂h_t,)``, returns ``∂L/∂x_part``, ``∂L/∂h_part`` (they differ in the ``n``
        block, where ``r_t`` scales the hidden part) and ``(∂L/∂h_{t-1},)`` along the direct
        path ``z_t ⊙ h_{t-1}``.
        """
        (dh,) = d_state
        r, z, n, h_n, h_prev = cache
        # ∂L/∂(pre-activation of n) = dh_t ⊙ (1 - z_t) ⊙ (1 - n_t²)
        dn = dh * (1 - z) * tanh_derivative(n)
        # ∂L/∂(pre-activation of z) = dh_t ⊙ (h_{t-1} - n_t) ⊙ z_t(1 - z_t)
        dz = dh * (h_prev - n) * sigmoid_derivative(z)
        # ∂L/∂(pre-activation of r) = dn ⊙ (W_hn h_{t-1} + b_hn) ⊙ r_t(1 - r_t)
        dr = dn * h_n * sigmoid_derivative(r)
        # ∂L/∂h_{t-1}, direct path = dh_t ⊙ z_t
        dh_prev = dh * z
        # ∂L/∂(W_hn h_{t-1} + b_hn) = dn ⊙ r_t
        return [dr, dz, dn], [dr, dz, dn * r], (dh_prev,)


class RNNEquations:
    r"""Elman RNN step.

    .. math::

        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),
        \qquad \phi = \tanh \text{ or } \mathrm{ReLU}

    Args:
        nonlinearity: ``"tanh"`` or ``"relu"`` (``φ``).
    """

    num_gates = 1
    num_states = 1
    sums_parts = True
    nonlinearities = ("tanh", "relu")

    def __init__(self, nonlinearity: str = "tanh"):
        if nonlinearity not in self.nonlinearities:
            raise ValueError(
                f"nonlinearity must be one of {', '.join(self.nonlinearities)}, "
                f"not {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearity
        self.kernel = nonlinearity  # its loop in lstmvision.nn.recurrent_fast

    def step(self, x_part: Tensor, h_part: Tensor, state: State) -> tuple[State, State]:
        """One step: pre-activations ``(B, H)`` -> ``(h_t,)``."""
        # h_t = φ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        h = tanh(x_part + h_part) if self.nonlinearity == "tanh" else F.relu(x_part + h_part)
        return (h,), (h,)

    def step_backward(self, d_state: State, cache: State) -> tuple[list, list, State]:
        """Derivative: ``∂L/∂pre = dh_t ⊙ φ'``, with ``tanh' = 1 - h_t²`` and
        ``ReLU' = [h_t > 0]``."""
        (dh,) = d_state
        (h,) = cache
        d_pre = [dh * tanh_derivative(h) if self.nonlinearity == "tanh" else dh * (h > 0)]
        return d_pre, d_pre, (None,)


LSTM_EQUATIONS = LSTMEquations()
GRU_EQUATIONS = GRUEquations()
RNN_EQUATIONS = {name: RNNEquations(name) for name in RNNEquations.nonlinearities}


def _batched(cell: torch.nn.RNNCellBase, input: Tensor, hx: State | None, num_states: int):
    """Adds the batch dimension to an unbatched call and fills a missing state with zeros.

    Returns ``(input (B, I), state (num_states x (B, H)), batched)``.
    """
    name = type(cell).__name__
    if input.dim() not in (1, 2):
        raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
    batched = input.dim() == 2
    if hx is None:
        zeros = input.new_zeros(input.size(0) if batched else 1, cell.hidden_size)
        return (input if batched else input[None]), (zeros,) * num_states, batched
    if any(s.dim() != input.dim() for s in hx):
        raise ValueError(f"{name}: Expected hidden state(s) to be {input.dim()}D like the input")
    if batched:
        return input, tuple(hx), batched
    return input[None], tuple(s[None] for s in hx), batched  # (1, I), (1, H)


def _pre_activations(cell: torch.nn.RNNCellBase, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """``(W_ih x + b_ih, W_hh h + b_hh)``, each ``(B, G*H)``."""
    return F.linear(x, cell.weight_ih, cell.bias_ih), F.linear(h, cell.weight_hh, cell.bias_hh)


CELL_IMPLEMENTATIONS = ("equations", "fast", "fused")  # LSTMCell's implementation=


def check_implementation(value: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a ``ValueError`` naming them."""
    if value not in choices:
        names = ", ".join(map(repr, choices))
        raise ValueError(f"implementation must be one of {names}, not {value!r}")
    return value


class LSTMCell(torch.nn.LSTMCell):
    """LSTM cell computed from :class:`LSTMEquations`; a drop-in for :class:`torch.nn.LSTMCell`.

    Args:
        input_size: features of ``x``.
        hidden_size: features of ``h`` and ``C``.
        bias: if ``False``, no ``bias_ih``/``bias_hh``.
        device, dtype: of the parameters.
        implementation: ``"equations"`` (default: :meth:`LSTMEquations.step`, autograd
            differentiates it), ``"fast"`` (the same gate equations and their derivatives in one
            compiled loop each when training, :class:`lstmvision.nn.convlstm_fast.LSTMGates`) or
            ``"fused"`` (torch's ``LSTMCell``); equal within 1e-5
            (``tests/test_recurrent_fast.py``). There is no ``"auto"``: in the captioner's
            training step the gates are 1-2 % of the time (docs/bench.md), so the default
            stays the equations, and the recipes' figures with it.

    ``forward(input (B, I) or (I,), hx=(h, C) or None) -> (h', C')``; ``hx`` defaults to zeros.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        implementation: str = "equations",
    ):
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.implementation = implementation

    @property
    def implementation(self) -> str:
        """``"equations"``, ``"fast"`` or ``"fused"``; checked when set, like the layers'."""
        return self._implementation

    @implementation.setter
    def implementation(self, value: str) -> None:
        self._implementation = check_implementation(value, CELL_IMPLEMENTATIONS)

    def extra_repr(self) -> str:
        default = self.implementation == "equations"
        return super().extra_repr() + (
            "" if default else f", implementation={self.implementation!r}"
        )

    def forward(self, input: Tensor, hx: State | None = None) -> tuple[Tensor, Tensor]:
        if self.implementation == "fused":
            return super().forward(input, hx)
        x, (h, c), batched = _batched(self, input, hx, num_states=2)
        x_part, h_part = _pre_activations(self, x, h)
        if self.implementation == "fast":
            from lstmvision.nn.convlstm_fast import LSTMGates

            h, c = LSTMGates.apply(x_part + h_part, c)
        else:
            (h, c), _ = LSTM_EQUATIONS.step(x_part, h_part, (h, c))
        return (h, c) if batched else (h[0], c[0])


class GRUCell(torch.nn.GRUCell):
    """GRU cell computed from :class:`GRUEquations`; a drop-in for :class:`torch.nn.GRUCell`.

    Args:
        input_size: features of ``x``.
        hidden_size: features of ``h``.
        bias: if ``False``, no ``bias_ih``/``bias_hh``.
        device, dtype: of the parameters.

    ``forward(input (B, I) or (I,), hx=h or None) -> h'``; ``hx`` defaults to zeros.
    """

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = _batched(self, input, None if hx is None else (hx,), num_states=1)
        (h,), _ = GRU_EQUATIONS.step(*_pre_activations(self, x, h), (h,))
        return h if batched else h[0]


class RNNCell(torch.nn.RNNCell):
    """Elman RNN cell computed from :class:`RNNEquations`; a drop-in for :class:`torch.nn.RNNCell`.

    Args:
        input_size: features of ``x``.
        hidden_size: features of ``h``.
        bias: if ``False``, no ``bias_ih``/``bias_hh``.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        device, dtype: of the parameters.

    ``forward(input (B, I) or (I,), hx=h or None) -> h'``; ``hx`` defaults to zeros.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
    ):
        RNNEquations(nonlinearity)  # validates
        super().__init__(input_size, hidden_size, bias, nonlinearity, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = _batched(self, input, None if hx is None else (hx,), num_states=1)
        (h,), _ = RNN_EQUATIONS[self.nonlinearity].step(*_pre_activations(self, x, h), (h,))
        return h if batched else h[0]
