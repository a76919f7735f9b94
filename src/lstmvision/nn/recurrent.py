r"""Multi-layer, bidirectional :class:`RNN`, :class:`LSTM` and :class:`GRU` layers.

The layers subclass torch's, so parameters (names, shapes, gate order, initialisation
``U(-1/sqrt(H), 1/sqrt(H))``), ``state_dict`` and the call convention are torch's. Each runs one
of three implementations, chosen by ``implementation``:

* ``"fused"``: torch's kernel (``super().forward``: cuDNN on GPU, oneDNN/ATen on CPU).
* ``"equations"``: our code. For each layer and direction, :class:`_Recurrence` computes the
  input pre-activations of all time steps in one matrix product, ``x_part = x W_ih^T + b_ih``
  ``(T, B, G*H)``, runs the loop ``h_part = h_{t-1} W_hh^T + b_hh``, ``state_t =
  equations.step(x_part_t, h_part, state_{t-1})`` with the cell equations of
  :mod:`lstmvision.nn.cells`, and backpropagates through time with the cells' derivative
  equations (``step_backward``), gathering the weight gradients of all steps in one matrix
  product each at the end.
* ``"fast"``: the same loop with each step's gate equations (and their derivatives) in one
  compiled loop, :mod:`lstmvision.nn.recurrent_fast` (a C++ extension built at first use; where
  it cannot be built, the equations path).
* ``"auto"`` (default): the faster of torch's kernel and ours, as measured
  (``scripts/rnn_auto_rule.py``, docs/bench.md): ``fast`` for every call the kernels serve
  (training and inference, all three cells: 1.0-13x torch's speed at 1 thread, 1.15-16x at 2,
  an LSTM's inference on 4-16 sequences at 1 thread about even, 0.84-1.09x), ``fused`` for GPU
  tensors, other dtypes than float32/64, CPU autocast (on a CPU without bfloat16 arithmetic,
  where oneDNN has no bfloat16 LSTM, ``fast`` in float32), tracing and export, and where the
  kernels cannot be built.

Speed: the equations path does the matrix products torch's kernel does, but its gate
arithmetic is about 35 separate eager operations per step (forward and backward), so it is
slower than torch's fused LSTM where each small operation costs more to dispatch than to compute
(small batches, long sequences; 1.1-1.3x torch's time there at 1 thread, 1.3-2x at 2, where only
its matrix products use the second thread); torch's CPU GRU is not fused either. The fast path
removes that cost and more (1.2-6x torch's throughput when training, docs/bench.md).
``lstmvision bench rnn`` measures them all on your machine.

Variable lengths. ``input`` may be a :class:`~torch.nn.utils.rnn.PackedSequence` (the output
is then packed too, like torch), or a padded batched tensor with ``lengths=`` (``B`` lengths,
each in ``[1, T]``): it is packed (``enforce_sorted=False``), run, and padded back to ``T`` steps,
so it gives exactly what torch gives for the packed batch: outputs past each length are zero,
``h_n``/``c_n`` are taken at each sequence's last valid step and the reverse direction starts at
each sequence's own last step. The equations path reads a packed batch as a padded one sorted
by decreasing length, where step ``t`` updates only the first ``batch_sizes[t]`` rows (the
sequences still running) and the other rows keep their state.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmvision.nn.cells import (
    GRU_EQUATIONS,
    LSTM_EQUATIONS,
    RNN_EQUATIONS,
    RNNEquations,
    check_implementation,
)

IMPLEMENTATIONS = ("auto", "equations", "fast", "fused")

State = tuple[Tensor, ...]


def _time_order(num_steps: int, reverse: bool) -> range:
    """Time indices in the order a direction visits them."""
    return range(num_steps - 1, -1, -1) if reverse else range(num_steps)


def _with_rows(head: Tensor, full: Tensor) -> Tensor:
    """``full`` with its first ``len(head)`` rows replaced by ``head`` (a new tensor)."""
    rows = head.shape[0]
    return head if rows == full.shape[0] else torch.cat([head, full[rows:]])


def _head(tensor: Tensor, rows: int) -> Tensor:
    """The first ``rows`` rows of ``tensor`` (itself when that is all of them: a view costs a
    dispatch, and the steps of an unpadded batch are many)."""
    return tensor if rows == tensor.shape[0] else tensor[:rows]


def _buffer(like: Tensor, shape: tuple[int, ...], padded: bool) -> Tensor:
    """A buffer every row of which is written (``empty``), or zeros when padding rows are not."""
    return like.new_zeros(shape) if padded else like.new_empty(shape)


class _Recurrence(torch.autograd.Function):
    """One layer in one direction: the input part of every step in one product, the loop of
    ``equations.step``, and backpropagation through time with ``equations.step_backward``.

    Inputs: ``equations`` (a cell of :mod:`lstmvision.nn.cells`), ``batch_sizes`` (``T``
    non-increasing ints: step ``t`` updates rows ``[:batch_sizes[t]]``, the others keep their
    state), ``reverse`` (run from ``t = T-1`` down to 0), ``x`` ``(T, B, I)``, ``weight_ih``
    ``(G*H, I)``, ``weight_hh`` ``(G*H, H)``, ``bias_ih``, ``bias_hh`` ``(G*H,)`` or ``None``, the
    initial state (``num_states`` tensors ``(B, H)``). Outputs: the hidden states ``(T, B, H)``
    (zero at rows past each sequence's end), then the final state.

    The per-step views of the ``(T, ...)`` buffers come from one ``unbind`` each, and a step that
    updates every row takes whole tensors, not slices of them: at the small sizes of a long
    sequence each operation costs mostly its dispatch, so the loop avoids the ones it can.
    """

    @staticmethod
    def forward(
        ctx, equations, batch_sizes, reverse, x, weight_ih, weight_hh, bias_ih, bias_hh, *state
    ):
        num_steps, batch, _ = x.shape
        padded = batch_sizes[-1] < batch
        folded = equations.sums_parts and bias_hh is not None
        if folded:  # b_hh reaches the step only through x_part + h_part: add it once, not per step
            bias_ih, bias_hh = bias_ih + bias_hh, None
        x_part = F.linear(x, weight_ih, bias_ih)  # (T, B, G*H): x W_ih^T + b_ih for every step
        output = _buffer(x, (num_steps, batch, weight_hh.size(1)), padded)  # (T, B, H)
        x_steps, output_steps = x_part.unbind(0), output.unbind(0)
        h_prevs, caches = [], []
        for t in _time_order(num_steps, reverse):
            rows = batch_sizes[t]
            active = tuple(_head(s, rows) for s in state)  # each (b_t, H): sequences still running
            h_part = F.linear(active[0], weight_hh, bias_hh)  # (b_t, G*H)
            new, cache = equations.step(_head(x_steps[t], rows), h_part, active)
            state = tuple(_with_rows(n, s) for n, s in zip(new, state, strict=True))
            _head(output_steps[t], rows).copy_(new[0])
            h_prevs.append(active[0])
            caches.extend(cache)
        ctx.equations, ctx.batch_sizes, ctx.reverse = equations, batch_sizes, reverse
        ctx.has_bias, ctx.folded, ctx.padded = bias_ih is not None, folded, padded
        # x_part is kept as the memory for ∂L/∂x_part (same shape, never read again: its values
        # are in the caches): a fresh buffer that size costs its page faults, several percent of
        # a long sequence's time. Kept on ctx, not saved, as the backward writes into it
        ctx.x_part = x_part
        ctx.save_for_backward(x, weight_ih, weight_hh, *h_prevs, *caches)
        return (output, *state)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_output, *d_state):
        x, weight_ih, weight_hh, *saved = ctx.saved_tensors
        d_x_part = ctx.x_part
        batch_sizes, num_steps = ctx.batch_sizes, len(ctx.batch_sizes)
        h_prevs, caches = saved[:num_steps], saved[num_steps:]
        cache_size = len(caches) // num_steps
        if ctx.padded:  # rows past a sequence's end get no gradient
            d_x_part.zero_()  # (T, B, G*H), written step by step below
        d_steps, d_output_steps = d_x_part.unbind(0), d_output.unbind(0)
        d_weight_hh = torch.zeros_like(weight_hh)  # (G*H, H)
        d_bias_hh = (
            weight_hh.new_zeros(weight_hh.size(0)) if ctx.has_bias and not ctx.folded else None
        )
        for k, t in reversed(list(enumerate(_time_order(num_steps, ctx.reverse)))):
            rows = batch_sizes[t]
            # ∂L/∂state_t: through the next step (d_state) and, for h_t, the output at t
            d_new = (
                _head(d_state[0], rows) + _head(d_output_steps[t], rows),
                *(_head(d, rows) for d in d_state[1:]),
            )
            cache = caches[k * cache_size : (k + 1) * cache_size]
            d_x_blocks, d_h_blocks, d_direct = ctx.equations.step_backward(d_new, cache)
            d_x_t = _head(d_steps[t], rows)  # (b_t, G*H)
            torch.cat(d_x_blocks, dim=1, out=d_x_t)
            d_h = d_x_t if ctx.equations.sums_parts else torch.cat(d_h_blocks, dim=1)
            # ∂L/∂W_hh = Σ_t ∂L/∂h_part_t^T h_{t-1} (per step: as fast as one product, and no copy
            # of every h_{t-1}), ∂L/∂b_hh = Σ_t ∂L/∂h_part_t
            d_weight_hh.addmm_(d_h.t(), h_prevs[k])
            if d_bias_hh is not None:
                d_bias_hh += d_h.sum(0)
            # ∂L/∂h_{t-1} = ∂L/∂h_part W_hh (+ the step's direct path, if any)
            d_h_prev = (
                d_h @ weight_hh if d_direct[0] is None else torch.addmm(d_direct[0], d_h, weight_hh)
            )
            d_state = tuple(
                _with_rows(n, s) for n, s in zip((d_h_prev, *d_direct[1:]), d_state, strict=True)
            )
        d_x = d_x_part @ weight_ih if ctx.needs_input_grad[3] else None  # (T, B, I)
        # ∂L/∂W_ih = Σ_t ∂L/∂x_part_t^T x_t in one product, as (x^T ∂L/∂x_part)^T:
        # (I, T*B) @ (T*B, G*H) is MKL's faster operand order
        d_weight_ih = (x.flatten(0, 1).t() @ d_x_part.flatten(0, 1)).t()
        d_bias_ih = d_x_part.sum((0, 1)) if ctx.has_bias else None
        d_bias_hh = d_bias_ih if ctx.folded else d_bias_hh
        return None, None, None, d_x, d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh, *d_state


def _to_float(input):
    """``input`` (a tensor or a packed batch) in float32."""
    if isinstance(input, PackedSequence):
        return input._replace(data=input.data.float())
    return input.float()


def _step_mask(batch_sizes: Tensor) -> Tensor:
    """``(T, B)`` bool, true where sequence ``b`` has step ``t``; packed data is its true cells in
    row-major order."""
    return torch.arange(int(batch_sizes[0])) < batch_sizes[:, None]


def _packed_to_padded(data: Tensor, batch_sizes: Tensor) -> Tensor:
    """Packed ``(N, I)`` -> padded ``(T, B, I)``, batch sorted by decreasing length, zero
    padding."""
    mask = _step_mask(batch_sizes).to(data.device)  # (T, B)
    padded = data.new_zeros(*mask.shape, data.size(1))  # (T, B, I)
    return padded.masked_scatter(mask[..., None], data)


def _padded_to_packed(padded: Tensor, batch_sizes: Tensor) -> Tensor:
    """Padded ``(T, B, H)`` -> packed ``(N, H)``; inverse of :func:`_packed_to_padded`."""
    return padded[_step_mask(batch_sizes).to(padded.device)]  # (N, H)


def _check_lengths(lengths: Tensor | Sequence[int], batch: int, num_steps: int) -> Tensor:
    """``lengths`` as a CPU int64 tensor of ``batch`` values in ``[1, num_steps]``."""
    lengths = torch.as_tensor(lengths, dtype=torch.int64, device="cpu")
    if lengths.shape != (batch,):
        raise ValueError(
            f"lengths must hold one length per sequence ({batch}), got shape {tuple(lengths.shape)}"
        )
    if lengths.min() < 1 or lengths.max() > num_steps:
        raise ValueError(
            f"lengths must lie in [1, {num_steps}] (the padded length), got {lengths.tolist()}"
        )
    return lengths


class _RecurrentLayer:
    """What our RNN, LSTM and GRU add to torch's: ``implementation``, ``lengths=`` and the
    equations path. Mixed in before the torch class, whose ``forward`` is the fused path."""

    @property
    def implementation(self) -> str:
        """``"auto"``, ``"equations"``, ``"fast"`` or ``"fused"`` (see
        :mod:`lstmvision.nn.recurrent`)."""
        return self._implementation

    @implementation.setter
    def implementation(self, value: str) -> None:
        self._implementation = check_implementation(value, IMPLEMENTATIONS)

    def extra_repr(self) -> str:
        extra = "" if self.implementation == "auto" else f", implementation={self.implementation!r}"
        return super().extra_repr() + extra

    def forward(self, input, hx=None, *, lengths=None):
        """Runs the layer(s) over a sequence; torch's convention, plus ``lengths``.

        Args:
            input: ``(T, B, I)`` (``(B, T, I)`` if ``batch_first``), unbatched ``(T, I)``, or a
                :class:`~torch.nn.utils.rnn.PackedSequence`.
            hx: initial state, zeros if ``None``: ``h_0`` ``(L*D, B, H)`` (``D = 2`` if
                bidirectional), for an LSTM the pair ``(h_0, c_0)``; ``(L*D, H)`` if unbatched.
            lengths: for a padded batched tensor, the ``B`` valid lengths (1-D tensor or list,
                each in ``[1, T]``); the result equals torch's on the packed batch, padded with
                zeros to ``T`` steps.

        Returns:
            ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``): ``output`` ``(T, B, D*H)`` (or
            packed like the input), ``h_n``/``c_n`` ``(L*D, B, H)`` at each sequence's last step.
        """
        if lengths is not None:
            return self._forward_padded(input, hx, lengths)
        path = self._path(input)
        if path == "fused":
            return super().forward(input, hx)
        if path == "equations":
            return self._forward_equations(input, hx, _Recurrence)
        from lstmvision.nn.recurrent_fast import FastInference, FastRecurrence

        function = FastRecurrence if self._builds_graph(input, hx) else FastInference
        if torch.is_autocast_enabled("cpu"):  # the kernels run in float32
            with torch.autocast("cpu", enabled=False):
                return self._forward_equations(_to_float(input), hx, function)
        return self._forward_equations(input, hx, function)

    def _builds_graph(self, input, hx) -> bool:
        """Whether this call records a graph for a backward (grad mode on, and the input, the
        initial state or a parameter requires a gradient)."""
        if not torch.is_grad_enabled():
            return False
        data = input.data if isinstance(input, PackedSequence) else input
        states = () if hx is None else (hx if isinstance(hx, tuple) else (hx,))
        tensors = (data, *states, *self.parameters())
        return any(t.requires_grad for t in tensors if isinstance(t, Tensor))

    def _path(self, input) -> str:
        """The implementation that runs this call: ``"fused"``, ``"equations"`` or ``"fast"``."""
        if self.implementation in ("equations", "fused"):
            return self.implementation
        from lstmvision.nn import recurrent_fast

        data = input.data if isinstance(input, PackedSequence) else input
        autocast = torch.is_autocast_enabled("cpu")
        if self.implementation == "fast":
            usable = (recurrent_fast.supports(data) or autocast) and data.device.type == "cpu"
            return "fast" if usable and recurrent_fast.extension() else "equations"
        # auto: the fast kernels wherever they serve the call (the faster in every configuration
        # measured but an LSTM's inference on 4-16 sequences at 1 thread, 0.84-1.09x: docs/bench.md)
        if autocast and data.device.type == "cpu" and not recurrent_fast.cpu_computes_bf16():
            # torch's kernel under CPU autocast is oneDNN's bfloat16 LSTM, which a CPU without
            # bfloat16 arithmetic cannot create ("could not create a primitive descriptor"): our
            # paths run such a call in float32
            return "fast" if recurrent_fast.extension() else "equations"
        if autocast or not recurrent_fast.supports(data):
            return "fused"
        return "fast" if recurrent_fast.extension() else "fused"

    def _forward_padded(self, input, hx, lengths):
        """A padded batch with lengths: pack it, run, pad the output back to ``T`` steps."""
        if isinstance(input, PackedSequence) or input.dim() != 3:
            raise ValueError(
                "lengths= needs a padded batched 3-D tensor (a PackedSequence has its lengths)"
            )
        time_dim = 1 if self.batch_first else 0
        num_steps = input.size(time_dim)
        lengths = _check_lengths(lengths, input.size(1 - time_dim), num_steps)
        packed = pack_padded_sequence(input, lengths, self.batch_first, enforce_sorted=False)
        output, hx = self.forward(packed, hx)
        output, _ = pad_packed_sequence(output, self.batch_first, total_length=num_steps)
        return output, hx

    def _forward_equations(self, input, hx, function):
        """The equations (``function=_Recurrence``) or fast path for a tensor input, with torch's
        layout conventions."""
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx, function)
        if input.dim() not in (2, 3):
            raise ValueError(
                f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D instead"
            )
        batched = input.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        if not batched:
            input = input.unsqueeze(batch_dim)
            hx = None if hx is None else self._to_hx([s.unsqueeze(1) for s in self._to_states(hx)])
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
        state = self._initial_states(hx, x)
        self.check_forward_args(input, self._to_hx(state), None)
        output, state = self._run_layers(x, [x.size(1)] * x.size(0), state, function)  # (T, B, D*H)
        output = (
            output.transpose(0, 1) if self.batch_first else output
        )  # (B, T, D*H) or (T, B, D*H)
        if not batched:
            output, state = output.squeeze(batch_dim), [s.squeeze(1) for s in state]
        return output, self._to_hx(state)

    def _forward_packed(self, input: PackedSequence, hx, function):
        """The equations or fast path for a packed batch (sorted by decreasing length inside)."""
        data, batch_sizes, sorted_indices, unsorted_indices = input
        hx = None if hx is None else self.permute_hidden(hx, sorted_indices)
        x = _packed_to_padded(data, batch_sizes)  # (T, B, I)
        state = self._initial_states(hx, x)
        self.check_forward_args(data, self._to_hx(state), batch_sizes)
        output, state = self._run_layers(x, batch_sizes.tolist(), state, function)  # (T, B, D*H)
        output = PackedSequence(
            _padded_to_packed(output, batch_sizes), batch_sizes, sorted_indices, unsorted_indices
        )
        return output, self.permute_hidden(self._to_hx(state), unsorted_indices)

    def _run_layers(
        self, x: Tensor, batch_sizes: list[int], state: State, function
    ) -> tuple[Tensor, State]:
        """All layers and directions over ``x`` ``(T, B, I)``, each by ``function``
        (``_Recurrence`` or the fast path's); returns ``(T, B, D*H)`` and the final states,
        each ``(L*D, B, H)``."""
        directions = 2 if self.bidirectional else 1
        final = []
        for layer in range(self.num_layers):
            if layer > 0:
                x = F.dropout(x, self.dropout, self.training)  # between layers only
            outputs = []
            for direction in range(directions):
                initial = (s[layer * directions + direction] for s in state)  # each (B, H)
                output, *last = function.apply(
                    self._equations,
                    batch_sizes,
                    direction == 1,
                    x,
                    *self._weights(layer, direction),
                    *initial,
                )
                outputs.append(output)  # (T, B, H)
                final.append(last)
            x = outputs[0] if directions == 1 else torch.cat(outputs, dim=2)  # (T, B, D*H)
        return x, tuple(torch.stack(s) for s in zip(*final, strict=True))  # each (L*D, B, H)

    def _weights(
        self, layer: int, direction: int
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """``weight_ih, weight_hh, bias_ih, bias_hh`` of one layer and direction (biases may be
        None)."""
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        weights = tuple(getattr(self, f"weight_{kind}{suffix}") for kind in ("ih", "hh"))
        biases = (
            tuple(getattr(self, f"bias_{kind}{suffix}") for kind in ("ih", "hh"))
            if self.bias
            else (None, None)
        )
        return (*weights, *biases)

    def _initial_states(self, hx, x: Tensor) -> State:
        """``hx`` as a tuple of states ``(L*D, B, H)``; zeros for ``x`` ``(T, B, I)`` if ``hx`` is
        None."""
        if hx is not None:
            return self._to_states(hx)
        directions = 2 if self.bidirectional else 1
        zeros = x.new_zeros(self.num_layers * directions, x.size(1), self.hidden_size)
        return (zeros,) * self._equations.num_states

    def _to_states(self, hx) -> State:
        """torch's ``hx`` (``h`` or, for an LSTM, ``(h, c)``) -> tuple of states."""
        return tuple(hx) if self._equations.num_states > 1 else (hx,)

    def _to_hx(self, states: Sequence[Tensor]):
        """Tuple of states -> torch's ``hx`` form."""
        return tuple(states) if self._equations.num_states > 1 else states[0]


_LAYER_ARGS = """
    Args:
        input_size: features of ``x_t``.
        hidden_size: features ``H`` of ``h`` (and ``c``).
        num_layers: stacked layers ``L``; layer ``l > 0`` reads layer ``l - 1``'s output.
        {nonlinearity}bias: if ``False``, no ``bias_ih``/``bias_hh``.
        batch_first: input and output ``(B, T, F)`` instead of ``(T, B, F)`` (states unchanged).
        dropout: probability of dropout on each layer's output except the last (training only).
        bidirectional: also run each layer from the last step to the first, ``D = 2``; the output
            concatenates both directions' hidden states.
        device, dtype: of the parameters.
        implementation: ``"auto"`` (default: ``"fast"`` wherever it serves the call, else
            ``"fused"``), ``"fused"`` (torch's), ``"equations"`` (our step loop from the cell
            equations) or ``"fast"`` (that loop in C++).
"""


class LSTM(_RecurrentLayer, torch.nn.LSTM):
    __doc__ = (
        "LSTM layer(s) from :class:`~lstmvision.nn.cells.LSTMEquations` or torch's kernel; "
        "a drop-in for :class:`torch.nn.LSTM` (without ``proj_size``).\n"
        + _LAYER_ARGS.format(nonlinearity="")
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        implementation: str = "auto",
    ):
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
        )
        self.implementation = implementation

    _equations = LSTM_EQUATIONS

    @torch.no_grad()
    def set_forget_bias(self, value: float) -> LSTM:
        """Start every forget gate's bias at ``value`` (``bias_ih`` rows ``H..2H``, gate order i, f,
        g, o; ``bias_hh``'s zeroed), in every layer and direction. At 1 (Gers et al. 2000,
        Jozefowicz et al. 2015) ``f_t`` starts near σ(1) = 0.73 rather than 0.5, so the cell state
        and its gradient survive long sequences from the first step."""
        h = self.hidden_size
        for name, param in self.named_parameters():
            if name.startswith("bias_ih"):
                param[h : 2 * h] = value
            elif name.startswith("bias_hh"):
                param[h : 2 * h] = 0.0
        return self

    @torch.no_grad()
    def set_chrono_bias(self, max_steps: int, generator: torch.Generator | None = None) -> LSTM:
        """Chrono initialisation (Tallec & Ollivier 2018): each unit's forget bias is
        ``log(u)``, ``u ~ U(1, max_steps - 1)``, and its input bias the opposite, so the units'
        memory spans start spread over 1 .. ``max_steps`` steps (``bias_hh``'s i and f zeroed)."""
        h = self.hidden_size
        for name, param in self.named_parameters():
            if name.startswith("bias_ih"):
                span = 1 + torch.rand(h, generator=generator) * max(max_steps - 2, 0)
                param[h : 2 * h] = span.log().to(param)
                param[:h] = -param[h : 2 * h]
            elif name.startswith("bias_hh"):
                param[: 2 * h] = 0.0
        return self


class GRU(_RecurrentLayer, torch.nn.GRU):
    __doc__ = (
        "GRU layer(s) from :class:`~lstmvision.nn.cells.GRUEquations` or torch's kernel; a drop-in "
        "for :class:`torch.nn.GRU`.\n" + _LAYER_ARGS.format(nonlinearity="")
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        implementation: str = "auto",
    ):
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
        )
        self.implementation = implementation

    _equations = GRU_EQUATIONS


class RNN(_RecurrentLayer, torch.nn.RNN):
    __doc__ = (
        "Elman RNN layer(s) from :class:`~lstmvision.nn.cells.RNNEquations` or torch's kernel; a "
        "drop-in for :class:`torch.nn.RNN`.\n"
        + _LAYER_ARGS.format(nonlinearity='nonlinearity: ``"tanh"`` or ``"relu"``.\n        ')
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        implementation: str = "auto",
    ):
        RNNEquations(nonlinearity)  # validates
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            nonlinearity,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
        )
        self.implementation = implementation

    @property
    def _equations(self) -> RNNEquations:
        return RNN_EQUATIONS[self.nonlinearity]
