r"""PixelRNN layers (van den Oord, Kalchbrenner, Kavukcuoglu 2016, "Pixel Recurrent Neural
Networks", arXiv 1601.06759): layers that see only the pixels before each position.

A generative image model writes ``p(x) = Π_k p(x_k | x_1 .. x_{k-1})`` over the pixels in raster
order (row by row, left to right). Every layer here keeps that order: its output at position
``(i, j)`` depends on its input at ``(i, j)`` and at positions before it, never after (the
*mask B* rule); the network's first layer, a :class:`MaskedConv2d` with mask A, also leaves out
``(i, j)`` itself, so the whole network's output at a pixel is a function of the pixels before it
only. ``tests/test_pixelrnn.py`` checks this for every layer by its exact gradients.

* :class:`MaskedConv2d` (§3.4): a convolution with the weights below the centre row and right of
  the centre zeroed (mask A also zeroes the centre).
* :class:`RowLSTM` (§3.1): one row per step; a triangular context above the pixel.
* :class:`DiagonalBiLSTM` (§3.2): one diagonal per step, both directions; the whole context
  (but one pixel, see the class).
* :class:`ResidualLayer` (§3.4, Figure 5 right): ``x + 1x1(layer(x))`` around either LSTM;
  :class:`MaskedConvBlock` (§3.4, Figure 5 left): PixelCNN's residual block of masked convolutions.
* :func:`skew` / :func:`unskew`: diagonals of a map as its columns, and back.

Besides ``forward`` (a whole map at once, for training and likelihoods), each layer steps through
the positions in raster order (``raster_cache``, ``raster_step``: its output at ``(i, j)`` from its
input there and what it cached of the positions before), the same numbers one position at a time,
which is how :meth:`lstmvision.models.pixelrnn.PixelModel.sample` draws pixels: each new pixel
costs one position of each layer, not a pass over the whole image. The LSTM gates are our LSTM's
(:class:`lstmvision.nn.cells.LSTMEquations`, gate order ``i, f, g, o``, sigmoid input gate).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.nn.cells import LSTM_EQUATIONS, check_implementation
from lstmvision.nn.pixel_fast import lstm_scan

MASKS = ("A", "B")
IMPLEMENTATIONS = ("auto", "equations", "fast")


def causal_mask(height: int, width: int, kind: str) -> Tensor:
    """``(height, width)`` 0/1 mask of a kernel centred at ``(height // 2, width // 2)``: ones at
    the rows above the centre and left of the centre in its row; mask ``"B"`` also keeps the
    centre, mask ``"A"`` does not (for one-channel images, the paper's channel split of the
    centre is not needed)."""
    if kind not in MASKS:
        raise ValueError(f"mask must be 'A' or 'B', not {kind!r}")
    mask = torch.ones(height, width)
    row, col = height // 2, width // 2
    mask[row, col + (kind == "B") :] = 0  # the centre row from the centre (A) or after it (B)
    mask[row + 1 :] = 0  # every row below the centre
    return mask


def bernoulli_nll(logits: Tensor, images: Tensor) -> Tensor:
    r"""Per-pixel negative log-likelihood in nats of binary ``images`` under Bernoulli
    ``logits`` (both ``(B, 1, H, W)``): ``-[x log σ(l) + (1 - x) log(1 - σ(l))]``, the binary
    cross-entropy; summed over the pixels it is ``-log p(x)`` of the image."""
    return F.binary_cross_entropy_with_logits(logits, images, reduction="none")


def pointwise(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """A 1x1 convolution at one position: ``(B, C_in)`` -> ``(B, C_out)``."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)


class MaskedConv2d(nn.Conv2d):
    r"""A 2-D convolution that sees only the positions before its centre (§3.4, Figure 4).

    .. math::

        y_{i,j} = b + \sum_{(u,v)} (M \odot W)_{u,v}\, x_{i+u-r,\, j+v-c}

    with ``(r, c)`` the kernel's centre and ``M`` :func:`causal_mask`: mask A (the first layer,
    on the image) leaves out the pixel ``(i, j)`` itself, mask B (every later layer, on features
    that already leave it out) keeps it. Odd kernel sizes, stride 1, "same" zero padding.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask: str = "B",
        bias: bool = True,
    ):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"a masked convolution needs odd kernel sizes, not {kh}x{kw}")
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        self.mask_kind = mask
        self.register_buffer("mask", causal_mask(kh, kw, mask), persistent=False)
        if not self.mask.any():
            raise ValueError(f"a {kh}x{kw} convolution with mask {mask} sees nothing")
        # the kernel's rows and columns that hold a weight: a top-left block of the kernel
        self.support = (
            int(self.mask.any(1).nonzero().max()) + 1,
            int(self.mask.any(0).nonzero().max()) + 1,
        )

    def masked_weight(self) -> Tensor:
        return self.weight * self.mask  # (O, I, kh, kw): M ⊙ W

    def forward(self, x: Tensor) -> Tensor:
        # the same sum without the kernel's all-zero rows (below the centre) and columns (right
        # of the centre, for a one-row kernel): the input padded to match
        ph, pw = self.padding
        rows, cols = self.support
        weight = self.masked_weight()[:, :, :rows, :cols]  # (O, I, rows, cols)
        padded = F.pad(x, (pw, cols - 1 - pw, ph, rows - 1 - ph))  # (B, I, H+rows-1, W+cols-1)
        return F.conv2d(padded, weight, self.bias)  # (B, O, H, W)

    def at(self, padded: Tensor, i: int, j: int) -> Tensor:
        """The output at ``(i, j)`` from ``padded``, the input zero-padded by ``self.padding``
        on each side ``(B, C_in, H + 2*pad_h, W + 2*pad_w)``: ``(B, C_out)``."""
        kh, kw = self.kernel_size
        window = padded[:, :, i : i + kh, j : j + kw]  # (B, C_in, kh, kw): centred on (i, j)
        out = torch.einsum("bchw,ochw->bo", window, self.masked_weight())
        return out if self.bias is None else out + self.bias


def skew(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, C, H, W + H - 1)``: row ``i`` shifted right by ``i`` (zeros
    around), so ``skewed[..., i, i + j] = x[..., i, j]`` and each diagonal ``i + j = t`` of ``x``
    is column ``t``."""
    b, c, height, width = x.shape
    padded = F.pad(x, (0, height))  # (B, C, H, W + H): each row followed by H zeros
    flat = padded.flatten(2)[..., : height * (width + height - 1)]  # row i starts i further on
    return flat.view(b, c, height, width + height - 1)


def unskew(x: Tensor) -> Tensor:
    """``(B, C, H, W + H - 1)`` -> ``(B, C, H, W)``: the inverse of :func:`skew`."""
    b, c, height, skewed_width = x.shape
    width = skewed_width - height + 1
    flat = F.pad(x.flatten(2), (0, height))  # (B, C, H * (W + H)): rows of W + H again
    return flat.view(b, c, height, width + height)[..., :width]


@dataclass
class _Cache:
    """What a layer keeps of the positions already stepped (:meth:`raster_step`)."""

    tensors: dict[str, Tensor]
    done_rows: int = 0  # DiagonalBiLSTM: rows whose right-to-left pass has run


class RowLSTM(nn.Module):
    r"""Row LSTM (§3.1): an LSTM over the rows of a feature map, one whole row per step.

    For input ``x`` ``(B, C, H, W)``, hidden size ``h``, row ``i`` (``h_{-1} = c_{-1} = 0``):

    .. math::

        [\,i_i, f_i, g_i, o_i\,] &= \mathrm{MaskedConv1d}_B(x_i; K^{is})
            + \mathrm{Conv1d}(h_{i-1}; K^{ss})
            && \text{each } (B, h, W) \\
        c_i &= \sigma(f_i) \odot c_{i-1} + \sigma(i_i) \odot \tanh(g_i) \\
        h_i &= \sigma(o_i) \odot \tanh(c_i)

    The input-to-state part ``K^{is}`` (``4h x C x k``, kernel ``k = 3`` along the row) is masked
    (mask B: taps ``j-1, j``, not ``j+1``) and computed for every row at once as one 2-D
    convolution with a ``1 x k`` kernel; the state-to-state part ``K^{ss}`` (``4h x h x k``,
    unmasked, no bias) reads the previous row's hidden state at ``j-1, j, j+1``, all above the
    pixel. Position ``(i, j)`` thus sees ``x`` at ``(i, j-1), (i, j)`` and, through the rows
    before, a triangle above it. Returns the hidden states ``(B, h, H, W)``.

    ``implementation``: ``"equations"`` (the loop above, differentiated by autograd), ``"fast"``
    (:func:`lstmvision.nn.pixel_fast.lstm_scan`: the same sums with a written-out backward) or
    ``"auto"`` (fast).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_size: int,
        kernel_size: int = 3,
        implementation: str = "auto",
    ):
        super().__init__()
        self.hidden_size, self.kernel_size = hidden_size, kernel_size
        self.implementation = check_implementation(implementation, IMPLEMENTATIONS)
        self.input_to_state = MaskedConv2d(in_channels, 4 * hidden_size, (1, kernel_size), "B")
        self.state_to_state = nn.Conv1d(
            hidden_size, 4 * hidden_size, kernel_size, padding=kernel_size // 2, bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        x_part = self.input_to_state(x)  # (B, 4h, H, W): K^is * x for every row at once
        if self.implementation == "equations":
            return self._equations(x_part)
        k, hid = self.kernel_size, self.hidden_size
        b, _, height, width = x_part.shape
        rows = x_part.permute(2, 1, 3, 0).reshape(height, 1, 4 * hid, width * b)  # (H,1,4h,W*B)
        # K^ss as a matrix over the k neighbours' states stacked: (1, 4h, k*h)
        weight = self.state_to_state.weight.permute(0, 2, 1).reshape(1, 4 * hid, k * hid)
        shifts = [d * b for d in range(-(k // 2), k // 2 + 1)]  # column j+d: B positions on
        states = lstm_scan(rows, weight, shifts).view(height, hid, width, b)  # one row per step
        return states.permute(3, 1, 0, 2)  # (B, h, H, W)

    def _equations(self, x_part: Tensor) -> Tensor:
        """The recurrence, one line per equation (autograd differentiates it)."""
        b, _, height, width = x_part.shape
        x_rows = x_part.unbind(2)  # H x (B, 4h, W)
        h = c = x_part.new_zeros(b, self.hidden_size, width)  # h_{-1}, c_{-1}: (B, h, W)
        rows = []
        for i in range(height):
            h_part = self.state_to_state(h)  # (B, 4h, W): K^ss * h_{i-1}
            (h, c), _ = LSTM_EQUATIONS.step(x_rows[i], h_part, (h, c))
            rows.append(h)
        return torch.stack(rows, dim=2)  # (B, h, H, W)

    def raster_cache(self, batch: int, height: int, width: int, like: Tensor) -> _Cache:
        pad = self.kernel_size // 2
        new = like.new_zeros
        return _Cache(
            {
                "x": new(batch, self.input_to_state.in_channels, height, width + 2 * pad),
                "h": new(batch, self.hidden_size, height + 1, width + 2 * pad),  # row 0: h_{-1}
                "c": new(batch, self.hidden_size, height + 1, width),
            }
        )

    def raster_step(self, cache: _Cache, x: Tensor, i: int, j: int) -> Tensor:
        """Output ``(B, h)`` at ``(i, j)`` from the input there ``(B, C)`` and the cache."""
        k = self.kernel_size
        t = cache.tensors
        t["x"][:, :, i, j + k // 2] = x
        x_part = self.input_to_state.at(t["x"], i, j)  # (B, 4h): x at (i, j-1), (i, j)
        above = t["h"][:, :, i, j : j + k]  # (B, h, k): h_{i-1} at j-1, j, j+1
        h_part = torch.einsum("bck,ock->bo", above, self.state_to_state.weight)  # (B, 4h)
        (h, c), _ = LSTM_EQUATIONS.step(x_part, h_part, (above[:, :, k // 2], t["c"][:, :, i, j]))
        t["h"][:, :, i + 1, j + k // 2], t["c"][:, :, i + 1, j] = h, c
        return h


class DiagonalBiLSTM(nn.Module):
    r"""Diagonal BiLSTM (§3.2): two LSTMs along the diagonals of a feature map, one from the
    top-left corner, one from the top-right.

    The input map ``x`` ``(B, C, H, W)`` goes through a 1x1 convolution ``K^{is}`` (the
    input-to-state part, ``4h`` channels per direction), then :func:`skew`: the diagonal
    ``i + j = t`` becomes column ``t``, and the LSTM runs over the ``W + H - 1`` columns, with a
    2x1 column convolution ``K^{ss}`` (no bias) of the previous column's hidden state as its
    state-to-state part. In the map's own coordinates, for the left-to-right direction
    (``h = c = 0`` outside the map):

    .. math::

        [\,i, f, g, o\,]_{i,j} &= K^{is} x_{i,j} + K^{ss}_0 h_{i-1,j} + K^{ss}_1 h_{i,j-1} \\
        c_{i,j} &= \sigma(f_{i,j}) \odot c_{i,j-1} + \sigma(i_{i,j}) \odot \tanh(g_{i,j}) \\
        h_{i,j} &= \sigma(o_{i,j}) \odot \tanh(c_{i,j})

    so ``h_{i,j}`` sees every position above-left of ``(i, j)``, ``(i, j)`` included. The
    right-to-left direction is the same computation (its own weights) on the map mirrored left to
    right, mirrored back: its ``r_{i,j}`` sees the positions above-right, ``(i, j+1)`` among them,
    which lies after ``(i, j)``; so it is shifted down one row before the two are added:

    .. math::

        y_{i,j} = h_{i,j} + r_{i-1,j} \qquad (r_{-1,j} = 0)

    ``y_{i,j}`` then sees every position before ``(i, j)`` in raster order (the whole context),
    and ``(i, j)`` itself, none after. Returns ``y`` ``(B, h, H, W)``. Both directions run in one
    loop of ``W + H - 1`` steps (stacked along the batch; the grouped convolution
    ``state_to_state`` holds the two ``K^{ss}``). ``implementation`` as for :class:`RowLSTM`.

    One pixel before ``(i, j)`` stays out of reach: the last of the row above, ``(i-1, W-1)``,
    for ``j < W-1-r`` with ``r`` the first layer's reach to the right (3 for its 7x7 kernel).
    Only ``r_{i-1,j}`` reads row ``i-1`` at columns past ``j + r``, through features at row
    ``i-1``, and a causal feature at ``(i-1, W-1)`` never holds its own pixel.
    """

    def __init__(self, in_channels: int, hidden_size: int, implementation: str = "auto"):
        super().__init__()
        self.hidden_size = hidden_size
        self.implementation = check_implementation(implementation, IMPLEMENTATIONS)
        # both directions' K^is: output channels [left 4h; right 4h]
        self.input_to_state = nn.Conv2d(in_channels, 2 * 4 * hidden_size, 1)
        # both directions' K^ss (groups: [h_left; h_right] -> [left 4h; right 4h]); taps: the
        # row above (0) and the position itself (1) of the previous column of the skewed map
        self.state_to_state = nn.Conv1d(
            2 * hidden_size, 2 * 4 * hidden_size, 2, groups=2, bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.implementation != "equations":
            return self._fast(x)
        b, _, height, width = x.shape
        hid = self.hidden_size
        # K^is before skewing: the zeros skew puts around the map stay zero (no bias there)
        parts = self.input_to_state(x).view(b, 2, 4 * hid, height, width)  # (B, dir, 4h, H, W)
        parts = torch.stack((parts[:, 0], parts[:, 1].flip(-1)))  # right-to-left: mirrored
        parts = skew(parts.flatten(0, 1))  # (2*B, 4h, H, W+H-1): diagonals as columns
        states = unskew(self._equations(parts)).view(2, b, hid, height, width)  # (dir, B, h, H, W)
        left, right = states[0], states[1].flip(-1)  # right-to-left, mirrored back
        right = F.pad(right, (0, 0, 1, 0))[:, :, :height]  # r_{i-1,j}: shifted down one row
        return left + right  # (B, h, H, W)

    def _fast(self, x: Tensor) -> Tensor:
        """The same sums as :meth:`forward`'s equations, with the skew, mirror and layout
        changes on the input ``x`` (``C`` channels, not the gates' ``8h``), ``K^{is}`` as one
        matrix product into the scan's layout, then the scan
        (:func:`~lstmvision.nn.pixel_fast.lstm_scan`) and the states unskewed."""
        b, channels, height, width = x.shape
        hid, steps = self.hidden_size, width + height - 1
        both = skew(torch.cat((x, x.flip(-1))))  # (2*B, C, H, T): right-to-left mirrored
        columns = both.view(2, b, channels, height, steps).permute(4, 0, 2, 3, 1)  # (T,2,C,H,B)
        weight = self.input_to_state.weight.view(2, 4 * hid, channels)  # K^is per direction
        parts = torch.matmul(weight, columns.reshape(steps, 2, channels, height * b))
        parts.add_(self.input_to_state.bias.view(1, 2, 4 * hid, 1))  # (T, 2, 4h, H*B)
        # K^ss of each direction as a matrix over [state above; state itself]: (2, 4h, 2h)
        kernel = self.state_to_state.weight.view(2, 4 * hid, hid, 2).permute(0, 1, 3, 2)
        # the rows diagonal t crosses: lo..hi (B positions each); the others are skew's zeros
        spans = [(max(0, t - width + 1) * b, (min(t, height - 1) + 1) * b) for t in range(steps)]
        states = lstm_scan(parts, kernel.reshape(2, 4 * hid, 2 * hid), (-b, 0), spans)
        states = states.view(steps, 2, hid, height, b)  # (T, 2, h, H, B): zero off the map
        skewed = states.permute(1, 4, 2, 3, 0).reshape(2 * b, hid, height, steps)
        states = unskew(skewed).view(2, b, hid, height, width)  # (dir, B, h, H, W)
        left, right = states[0], states[1].flip(-1)  # right-to-left, mirrored back
        right = F.pad(right, (0, 0, 1, 0))[:, :, :height]  # r_{i-1,j}: shifted down one row
        return left + right  # (B, h, H, W)

    def _equations(self, parts: Tensor) -> Tensor:
        """The recurrence over the columns of the skewed map ``(2*B, 4h, H, T)`` (both
        directions stacked along the batch), one line per equation (autograd differentiates
        it): the hidden states ``(2*B, h, H, T)``."""
        batch2, _, height, steps = parts.shape
        columns = parts.unbind(3)  # T x (2*B, 4h, H)
        h = c = parts.new_zeros(batch2, self.hidden_size, height)  # the column before the first
        states = []
        kernels = self.state_to_state.weight.chunk(2)  # each direction's K^ss: (4h, h, 2)
        for t in range(steps):
            above = F.pad(h, (1, 0)).chunk(2)  # per direction (B, h, H+1): row -1 is zero
            # K^ss * h_{t-1}: taps on the row above and on the row itself: (2*B, 4h, H)
            h_part = torch.cat([F.conv1d(a, k) for a, k in zip(above, kernels, strict=True)])
            (h, c), _ = LSTM_EQUATIONS.step(columns[t], h_part, (h, c))
            states.append(h)
        return torch.stack(states, dim=-1)  # (2*B, h, H, T)

    def raster_cache(self, batch: int, height: int, width: int, like: Tensor) -> _Cache:
        new, hid = like.new_zeros, self.hidden_size
        return _Cache(
            {
                "x": new(batch, self.input_to_state.in_channels, height, width),
                "h": new(batch, hid, height + 1, width + 1),  # left-to-right; row 0, column 0: 0
                "c": new(batch, hid, height + 1, width + 1),
                "r": new(batch, hid, height + 1, width),  # right-to-left; row 0: r_{-1} = 0
            }
        )

    def _gates(self, x: Tensor, direction: int) -> Tensor:
        """``K^is x`` of one direction at one position: ``(B, C)`` -> ``(B, 4h)``."""
        rows = slice(direction * 4 * self.hidden_size, (direction + 1) * 4 * self.hidden_size)
        weight = self.input_to_state.weight[rows].flatten(1)  # (4h, C)
        return F.linear(x, weight, self.input_to_state.bias[rows])

    def _taps(self, direction: int) -> tuple[Tensor, Tensor]:
        """``K^ss`` of one direction: its taps on the position above and on the one before."""
        rows = slice(direction * 4 * self.hidden_size, (direction + 1) * 4 * self.hidden_size)
        weight = self.state_to_state.weight[rows]  # (4h, h, 2)
        return weight[..., 0], weight[..., 1]

    def _right_to_left(self, t: dict[str, Tensor], i: int) -> None:
        """The right-to-left states of row ``i`` (complete by now) into ``t["r"][:, :, i + 1]``."""
        above_tap, before_tap = self._taps(1)
        width = t["x"].shape[-1]
        r = c = t["r"].new_zeros(t["r"].shape[:2])  # r_{i,W}, c_{i,W} = 0: (B, h)
        for j in range(width - 1, -1, -1):
            h_part = F.linear(t["r"][:, :, i, j], above_tap) + F.linear(r, before_tap)
            (r, c), _ = LSTM_EQUATIONS.step(self._gates(t["x"][:, :, i, j], 1), h_part, (r, c))
            t["r"][:, :, i + 1, j] = r

    def raster_step(self, cache: _Cache, x: Tensor, i: int, j: int) -> Tensor:
        """Output ``(B, h)`` at ``(i, j)`` from the input there ``(B, C)`` and the cache; the
        right-to-left pass over row ``i - 1`` runs when row ``i`` begins."""
        t = cache.tensors
        while cache.done_rows < i:  # rows above, complete: their right-to-left states
            self._right_to_left(t, cache.done_rows)
            cache.done_rows += 1
        t["x"][:, :, i, j] = x
        above_tap, before_tap = self._taps(0)
        h_part = F.linear(t["h"][:, :, i, j + 1], above_tap) + F.linear(
            t["h"][:, :, i + 1, j], before_tap
        )  # K^ss_0 h_{i-1,j} + K^ss_1 h_{i,j-1}: (B, 4h)
        state = (t["h"][:, :, i + 1, j], t["c"][:, :, i + 1, j])  # h_{i,j-1}, c_{i,j-1}
        (h, c), _ = LSTM_EQUATIONS.step(self._gates(x, 0), h_part, state)
        t["h"][:, :, i + 1, j + 1], t["c"][:, :, i + 1, j + 1] = h, c
        return h + t["r"][:, :, i, j]  # y_{i,j} = h_{i,j} + r_{i-1,j}


class ResidualLayer(nn.Module):
    r"""A PixelRNN layer with its residual connection (§3.4, Figure 5 right): ``2h`` features in
    and out, the LSTM's ``h`` brought back to ``2h`` by a 1x1 convolution and added.

    .. math::

        y = x + K^{out} * \mathrm{LSTM}(x)
    """

    def __init__(self, layer: nn.Module, channels: int):
        super().__init__()
        self.layer = layer
        self.out = nn.Conv2d(layer.hidden_size, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.out(self.layer(x))  # (B, 2h, H, W)

    def raster_cache(self, batch: int, height: int, width: int, like: Tensor) -> _Cache:
        return self.layer.raster_cache(batch, height, width, like)

    def raster_step(self, cache: _Cache, x: Tensor, i: int, j: int) -> Tensor:
        return x + pointwise(self.out, self.layer.raster_step(cache, x, i, j))  # (B, 2h)


class MaskedConvBlock(nn.Module):
    r"""PixelCNN's residual block (§3.4, Figure 5 left): ``2h`` features in and out.

    .. math::

        a &= K_1 * \mathrm{ReLU}(x)                      && 1\times1,\ 2h \to h \\
        b &= \mathrm{MaskedConv}_B(\mathrm{ReLU}(a))     && k\times k,\ h \to h \\
        y &= x + K_2 * \mathrm{ReLU}(b)                  && 1\times1,\ h \to 2h
    """

    def __init__(self, channels: int, hidden_size: int, kernel_size: int = 3):
        super().__init__()
        self.hidden_size = hidden_size
        self.reduce = nn.Conv2d(channels, hidden_size, 1)
        self.conv = MaskedConv2d(hidden_size, hidden_size, kernel_size, "B")
        self.expand = nn.Conv2d(hidden_size, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.reduce(F.relu(x))  # (B, h, H, W)
        b = self.conv(F.relu(a))  # (B, h, H, W)
        return x + self.expand(F.relu(b))  # (B, 2h, H, W)

    def raster_cache(self, batch: int, height: int, width: int, like: Tensor) -> _Cache:
        ph, pw = self.conv.padding
        shape = (batch, self.hidden_size, height + 2 * ph, width + 2 * pw)
        return _Cache({"a": like.new_zeros(shape)})  # ReLU(a), zero-padded

    def raster_step(self, cache: _Cache, x: Tensor, i: int, j: int) -> Tensor:
        ph, pw = self.conv.padding
        padded = cache.tensors["a"]
        padded[:, :, i + ph, j + pw] = F.relu(pointwise(self.reduce, F.relu(x)))
        b = self.conv.at(padded, i, j)  # (B, h)
        return x + pointwise(self.expand, F.relu(b))  # (B, 2h)
