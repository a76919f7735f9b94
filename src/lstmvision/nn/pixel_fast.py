r"""The fast path of :class:`lstmvision.nn.pixel.RowLSTM` and
:class:`lstmvision.nn.pixel.DiagonalBiLSTM` (``implementation="fast"``, the default through
``"auto"``): the same sums as their equations, in less time on a CPU.

Both layers run an LSTM whose state-to-state part is a small convolution along one axis of the
state: the Row LSTM's ``K^{ss}`` reads the previous row at ``j-1, j, j+1``, the Diagonal BiLSTM's
the previous column at rows ``i-1, i``. Written with autograd (the equations path) each step is
a few dozen small operations, and their backward copies and zero-fills whole maps for every
slice and shift. :func:`lstm_scan` runs the whole loop as one autograd function instead:

* **state-to-state as one matrix product per step**: ``K^{ss}`` as a ``(G, 4h, D*h)`` matrix
  times the state's neighbours (zero outside the map), stacked, ``(G, D*h, N)`` (``G`` groups
  with their own weights: the two directions); positions flattened with the batch innermost, so
  a neighbour along the axis is a whole shifted block of positions;
* **only the positions a step changes**: the Diagonal BiLSTM's skewed map is half padding (a
  ``W + H - 1``-column map of ``H x W`` pixels); each step updates only the rows its diagonal
  crosses (``spans``): a position on a diagonal never reads one off the map but its zeros;
* **the gate derivatives written out**: :meth:`lstmvision.nn.cells.LSTMEquations.step_backward`;
* **one weight gradient product per step**, into one buffer; the input pre-activations'
  gradient written in place.

``tests/test_pixelrnn.py`` checks outputs and gradients equal to the equations path.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from lstmvision.nn.cells import LSTM_EQUATIONS


def _overlap(start: int, stop: int, shift: int, size: int) -> tuple[int, int]:
    """The part ``[lo, hi)`` of ``[start, stop)`` whose positions shifted by ``shift`` lie in
    ``[0, size)``."""
    return max(start, -shift), min(stop, size - shift)


def neighbours(h: Tensor, shifts: tuple[int, ...], start: int, stop: int) -> Tensor:
    """``h`` ``(G, C, N)`` -> ``(G, D*C, stop-start)``: for each shift ``s`` (``D`` of them), ``h``
    at positions ``n + s`` for ``n`` in ``[start, stop)`` (zero outside ``[0, N)``), stacked
    along the channels."""
    g, c, n = h.shape
    out = h.new_zeros(g, len(shifts), c, stop - start)  # (G, D, C, stop-start)
    for d, s in enumerate(shifts):
        lo, hi = _overlap(start, stop, s, n)
        out[:, d, :, lo - start : hi - start] = h[:, :, lo + s : hi + s]
    return out.view(g, len(shifts) * c, stop - start)


def add_neighbours_backward(
    grad_h: Tensor, grad: Tensor, shifts: tuple[int, ...], start: int, stop: int
) -> None:
    """Add to ``grad_h`` ``(G, C, N)`` the gradient from ``grad`` ``(G, D*C, stop-start)`` of
    :func:`neighbours`: each block shifted back."""
    g, c, n = grad_h.shape
    grad = grad.view(g, len(shifts), c, stop - start)
    for d, s in enumerate(shifts):
        lo, hi = _overlap(start, stop, s, n)
        grad_h[:, :, lo + s : hi + s] += grad[:, d, :, lo - start : hi - start]


class _Scan(torch.autograd.Function):
    """``x_parts`` ``(T, G, 4h, N)``, ``weight`` ``(G, 4h, D*h)``, ``shifts``, ``spans`` -> hidden
    states ``(T, G, h, N)`` (zero outside each step's span) of the LSTM with ``h_part_t = weight @
    neighbours(h_{t-1})`` over the positions ``spans[t] = (start, stop)`` of step ``t`` (the
    others keep their state; all start at ``h = c = 0``). Channels before positions: each gate is
    one block for the element-wise gate equations."""

    @staticmethod
    def forward(ctx, x_parts: Tensor, weight: Tensor, shifts: tuple, spans: tuple):
        steps, g, gates, n = x_parts.shape
        hid = gates // 4
        h, c = x_parts.new_zeros(g, hid, n), x_parts.new_zeros(g, hid, n)  # each position's state
        out = x_parts.new_zeros(steps, g, hid, n)
        windows, caches = [], []
        for t, (start, stop) in enumerate(spans):
            window = neighbours(h, shifts, start, stop)  # (G, D*h, S): h_{t-1} around the span
            h_part = torch.bmm(weight, window)  # (G, 4h, S): K^ss * h_{t-1}
            x_part = x_parts[t, :, :, start:stop]  # (G, 4h, S)
            c_prev = c[..., start:stop].clone()  # kept for backward: c is updated in place
            (h_new, c_new), cache = LSTM_EQUATIONS.step(x_part, h_part, (None, c_prev))
            h[..., start:stop], c[..., start:stop] = h_new, c_new
            out[t, :, :, start:stop] = h_new
            windows.append(window)
            caches.extend(cache)
        ctx.shifts, ctx.spans = shifts, spans
        ctx.save_for_backward(weight, *windows, *caches)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: Tensor):
        weight, *saved = ctx.saved_tensors
        steps, g, hid, n = d_out.shape
        windows, caches = saved[:steps], saved[steps:]
        per_step = len(caches) // steps
        d_x = d_out.new_zeros(steps, g, 4 * hid, n)
        d_weight = torch.zeros_like(weight)
        d_h, d_c = d_out.new_zeros(g, hid, n), d_out.new_zeros(g, hid, n)  # ∂L/∂(state after t)
        for t in range(steps - 1, -1, -1):
            start, stop = ctx.spans[t]
            d_new = (d_h[..., start:stop] + d_out[t, :, :, start:stop], d_c[..., start:stop])
            cache = caches[t * per_step : (t + 1) * per_step]
            d_gates, _, (_, d_c_prev) = LSTM_EQUATIONS.step_backward(d_new, cache)
            d_part = torch.cat(d_gates, dim=1)  # (G, 4h, S): ∂L/∂x_part_t = ∂L/∂h_part_t
            d_x[t, :, :, start:stop] = d_part
            d_weight.baddbmm_(d_part, windows[t].transpose(1, 2))  # Σ_t ∂L/∂h_part_t window_t^T
            d_h[..., start:stop] = 0  # the span's states before step t were read, not kept
            d_c[..., start:stop] = d_c_prev
            d_window = torch.bmm(weight.transpose(1, 2), d_part)  # (G, D*h, S)
            add_neighbours_backward(d_h, d_window, ctx.shifts, start, stop)
        return d_x, d_weight, None, None


def lstm_scan(
    x_parts: Tensor,
    weight: Tensor,
    shifts: tuple[int, ...],
    spans: list[tuple[int, int]] | None = None,
) -> Tensor:
    """Hidden states ``(T, G, h, N)`` of an LSTM over ``T`` steps whose input part is ``x_parts``
    ``(T, G, 4h, N)`` and whose state-to-state part is ``weight`` ``(G, 4h, D*h)`` times
    ``h_{t-1}`` at positions ``n + s`` for ``s`` in ``shifts`` (zero outside ``[0, N)``); ``G``
    groups (e.g. directions) with their own weights. ``spans``: the positions ``[start, stop)``
    each step updates (default: all; the others keep their state, their output is 0)."""
    steps, n = x_parts.shape[0], x_parts.shape[-1]
    spans = tuple(spans) if spans is not None else ((0, n),) * steps
    return _Scan.apply(x_parts.contiguous(), weight, tuple(shifts), spans)
