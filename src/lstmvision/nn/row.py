"""Row LSTM: an image read as a sequence of rows (or columns, or pixels) by a recurrent layer.

For an image ``x`` of shape ``(B, C, H, W)`` read by rows, step ``t`` sees row ``t``,
``x_t = x[:, :, t, :]`` flattened to ``C*W`` values, and the recurrence runs top to bottom::

    h_1 -> h_2 -> ... -> h_H

(with ``bidirectional=True`` a second pass runs bottom to top). Reading by columns is the same
with the image transposed; ``rows+columns`` runs one recurrent layer each way and concatenates
their features; ``pixels`` is the 784-step "sequential MNIST" (one pixel per step, raster order)
and ``permuted-pixels`` the same under a fixed random permutation (Le et al. 2015).

The module returns the final hidden state(s): ``(B, feature_dim)`` -- the "many-to-one" summary a
classifier head reads.
"""

from __future__ import annotations

import torch
from torch import nn

from lstmvision.nn.recurrent import GRU, LSTM, RNN

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
READINGS = ("rows", "columns", "rows+columns", "pixels", "permuted-pixels")


class RowLSTM(nn.Module):
    """Read ``(B, C, H, W)`` images along an axis with an RNN/LSTM/GRU; return ``(B, feature_dim)``.

    Args:
        height, width, channels: image geometry (fixes each step's input size).
        hidden_size, num_layers, dropout, bidirectional: of the recurrent layer(s).
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"`` (our equations-based layers, fused when possible).
        reading: one of ``rows``, ``columns``, ``rows+columns``, ``pixels``, ``permuted-pixels``.
        implementation: passed to the recurrent layers (``auto``/``equations``/``fused``).
        permutation_seed: seed of the fixed pixel permutation for ``permuted-pixels``.
        forget_bias: LSTM only: the forget gates' initial bias (0: torch's init; 1 helps the
            784-step pixel readings, see :meth:`LSTM.set_forget_bias`).
        chrono: LSTM only: chrono initialisation for the reading's number of steps instead
            (:meth:`LSTM.set_chrono_bias`).
    """

    def __init__(
        self,
        height: int,
        width: int,
        channels: int = 1,
        hidden_size: int = 128,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = True,
        reading: str = "rows",
        dropout: float = 0.0,
        implementation: str = "auto",
        permutation_seed: int = 0,
        forget_bias: float = 0.0,
        chrono: bool = False,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        if reading not in READINGS:
            raise ValueError(f"reading must be one of {', '.join(READINGS)}, not {reading!r}")
        self.reading, self.cell = reading, cell
        rows, columns, pixels = (
            (channels * width, height),
            (channels * height, width),
            (channels, height * width),
        )
        shapes = {
            "rows": [rows],
            "columns": [columns],
            "rows+columns": [rows, columns],
            "pixels": [pixels],
            "permuted-pixels": [pixels],
        }[reading]  # (step size, steps) per reader
        self.readers = nn.ModuleList(
            CELLS[cell](
                size,
                hidden_size,
                num_layers,
                batch_first=True,
                dropout=dropout,
                bidirectional=bidirectional,
                implementation=implementation,
            )
            for size, _ in shapes
        )
        for reader, (_, num_steps) in zip(self.readers, shapes):
            if cell == "lstm" and chrono:
                reader.set_chrono_bias(num_steps)
            elif cell == "lstm" and forget_bias:
                reader.set_forget_bias(forget_bias)
        self.feature_dim = len(shapes) * hidden_size * (2 if bidirectional else 1)
        if reading == "permuted-pixels":
            g = torch.Generator().manual_seed(permutation_seed)
            self.register_buffer("permutation", torch.randperm(height * width, generator=g))

    def sequences(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input sequence(s) each reader sees, batch first: ``(B, T, step_size)``."""
        b, c, h, w = x.shape
        rows = x.permute(0, 2, 1, 3).reshape(b, h, c * w)  # (B, T=H, C*W)
        columns = x.permute(0, 3, 1, 2).reshape(b, w, c * h)  # (B, T=W, C*H)
        pixels = x.flatten(2).transpose(1, 2)  # (B, T=H*W, C)
        if self.reading == "rows":
            return [rows]
        if self.reading == "columns":
            return [columns]
        if self.reading == "rows+columns":
            return [rows, columns]
        if self.reading == "pixels":
            return [pixels]
        return [pixels[:, self.permutation]]  # (B, T=H*W, C), fixed order

    def final_state(self, reader: nn.Module, seq: torch.Tensor) -> torch.Tensor:
        _, state = reader(seq)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers*dirs, B, H)
        if reader.bidirectional:
            return torch.cat([h_n[-2], h_n[-1]], dim=1)  # (B, 2H): last layer, both directions
        return h_n[-1]  # (B, H)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [self.final_state(r, s) for r, s in zip(self.readers, self.sequences(x))]
        return torch.cat(feats, dim=1)  # (B, feature_dim)
