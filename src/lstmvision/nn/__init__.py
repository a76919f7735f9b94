"""Recurrent layers and cells written from their gate equations (the package's bottom floor:
it imports nothing else from lstmvision).

* :class:`RNN`, :class:`LSTM`, :class:`GRU`: drop-ins for torch's layers, with
  ``implementation="auto" | "equations" | "fast" | "fused"`` and ``lengths=`` for padded
  batches (fast path: :mod:`lstmvision.nn.recurrent_fast`).
* :class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell`: drop-ins for torch's cells.
* :class:`RNNEquations`, :class:`LSTMEquations`, :class:`GRUEquations`: one step and its
  derivative, the code both the cells and the layers run.
* :class:`MaxPool2d`, :class:`AvgPool2d`, :class:`SumPool2d`, :class:`TrainableSubsampling`
  (LeNet-5's subsampling): pooling layers.
* :class:`ConvLSTMCell`, :class:`ConvLSTM`: convolutional LSTM (Shi 2015), 1D or 2D maps, with
  ``implementation="auto" | "equations" | "fast"`` (fast path: :mod:`lstmvision.nn.convlstm_fast`).
* :mod:`lstmvision.nn.geometry`: warping by motion fields, affine motion fits, blurs.
* :class:`RowLSTM`: an image read as a sequence of rows, columns or pixels by one of the layers.
"""

from lstmvision.nn.cells import (
    GRUCell,
    GRUEquations,
    LSTMCell,
    LSTMEquations,
    RNNCell,
    RNNEquations,
)
from lstmvision.nn.convlstm import ConvLSTM, ConvLSTMCell
from lstmvision.nn.pooling import AvgPool2d, MaxPool2d, SumPool2d, TrainableSubsampling
from lstmvision.nn.recurrent import GRU, IMPLEMENTATIONS, LSTM, RNN
from lstmvision.nn.row import READINGS, RowLSTM

__all__ = [
    "ConvLSTM",
    "ConvLSTMCell",
    "GRU",
    "GRUCell",
    "GRUEquations",
    "IMPLEMENTATIONS",
    "LSTM",
    "LSTMCell",
    "LSTMEquations",
    "RNN",
    "RNNCell",
    "RNNEquations",
    "READINGS",
    "RowLSTM",
    "AvgPool2d",
    "MaxPool2d",
    "SumPool2d",
    "TrainableSubsampling",
]
