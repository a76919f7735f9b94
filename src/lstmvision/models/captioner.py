r"""Image captioners: an ImageNet CNN encoder and a recurrent decoder from ``lstmvision.nn``.

Both take photos in [0, 1], ``(B, 3, S, S)``; the encoder is EfficientNet-Lite0 (its
``forward_features`` grid, ``(B, 1280, S/32, S/32)``, read as ``L = (S/32)^2`` feature vectors
``a_i``), the decoder is our LSTM or GRU (``cell``). Words are ids into ``words`` (the vocabulary,
``<pad> <start> <end> <unk>`` first), which the model carries so that a saved model decodes alone.

* ``show-and-tell`` (Vinyals et al. 2015): the image vector (mean of the grid, projected to the
  word-embedding size) is the recurrent network's first input, ``x_{-1} = W_I CNN(I)``, then the
  words ``x_t = W_e S_t``; ``p_{t+1} = softmax(W_o h_t)``. The image is seen once.
* ``show-attend-tell`` (Xu et al. 2015, soft attention): at every word the decoder looks at the
  grid through :class:`~lstmvision.nn.attention.SoftAttention` (see there for ``α_ti``, ``ẑ_t``),

  .. math::

      h_0, c_0 &= \tanh(W_{init} \tfrac{1}{L} \textstyle\sum_i a_i) \\
      \beta_t &= \sigma(f_\beta(h_{t-1}))                  && \text{gating scalar} \\
      h_t, c_t &= \mathrm{LSTM}([E y_{t-1};\ \beta_t \hat z_t],\ (h_{t-1}, c_{t-1})) \\
      p(y_t) &\propto \exp(L_o(E y_{t-1} + L_h h_t + L_z \hat z_t))   && \text{deep output}

  and training adds the doubly stochastic regulariser ``λ Σ_i (1 - Σ_t α_ti)²`` (the task's loss).
  Here the 1280-dimensional ``a_i`` are first projected to ``feature_size`` (a learned linear map
  with ReLU), which the attention, ``β_t ẑ_t`` and ``L_z`` use.

Decoding (``caption``) is greedy or beam search (:mod:`lstmvision.nn.beam`); ``<pad>``,
``<start>`` and ``<unk>`` are never generated.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmvision.errors import ConfigError
from lstmvision.models import register_model
from lstmvision.models.efficientnet import NUM_FEATURES, EfficientNetLite0
from lstmvision.nn import GRU, LSTM, GRUCell, LSTMCell
from lstmvision.nn.attention import SoftAttention
from lstmvision.nn.beam import Decoded, beam_search, greedy_search

SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")
PAD, START, END, UNK = range(4)
CELLS = ("lstm", "gru")


class Captioner(nn.Module):
    """Encoder, vocabulary and decoding shared by the captioners; subclasses give the decoder
    (``teacher_forced``, ``start``, ``step``)."""

    def __init__(
        self,
        words: Sequence[str],
        cell: str = "lstm",
        encoder_weights: str | None = "imagenet",
        image_size: int = 224,
    ):
        super().__init__()
        if tuple(words[:4]) != SPECIALS or len(words) < 5:
            raise ConfigError(
                f"a captioner's words must start with {' '.join(SPECIALS)} "
                "and hold at least one word"
            )
        if cell not in CELLS:
            raise ConfigError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        self.words, self.cell = list(words), cell
        self.encoder = EfficientNetLite0(weights=encoder_weights, input_size=image_size)
        self.encoder.net.classifier = nn.Identity()  # the ImageNet head is not used
        self.image_size, self.feature_channels = image_size, NUM_FEATURES

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, images: Tensor) -> Tensor:
        """Photos ``(B, 3, S, S)`` in [0, 1] -> grid features ``(B, L, 1280)``."""
        grid = self.encoder.net.forward_features(self.encoder.prepare(images))  # (B, 1280, h, w)
        return grid.flatten(2).transpose(1, 2)  # (B, L=h*w, 1280)

    def forward(self, images: Tensor, captions: Tensor) -> Tensor:
        """Teacher-forced word logits ``(B, T-1, V)`` for ``captions (B, T)`` (``<start>``
        first)."""
        return self.teacher_forced(self.encode(images), captions)[0]

    def teacher_forced(
        self, features: Tensor, captions: Tensor, rows: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``(logits (N, T-1, V) predicting captions[:, 1:], attention (N, T-1, L) or None)`` for
        ``captions (N, T)``; caption ``n`` describes photo ``rows[n]`` of ``features (B, L, 1280)``
        (default: photo ``n``), so a photo's 5 captions share one pass through the feature layers.
        Positions after a caption's ``<end>`` get logits 0 (the loss ignores them)."""
        raise NotImplementedError

    def start(self, features: Tensor) -> tuple[tuple, tuple]:
        """``(state, context)`` before the first word, for :mod:`lstmvision.nn.beam`."""
        raise NotImplementedError

    def step(
        self, tokens: Tensor, state: tuple, context: tuple
    ) -> tuple[Tensor, tuple, Tensor | None]:
        """One word: ``(log-probabilities (N, V), state, attention (N, L) or None)``."""
        raise NotImplementedError

    @torch.no_grad()
    def caption(
        self, features: Tensor, beam: int = 1, max_len: int = 20, length_penalty: float = 0.0
    ) -> Decoded:
        """Decode grid features ``(B, L, 1280)``: greedy (``beam=1``) or beam search; captions have
        at least one word and at most ``max_len - 1``; ``length_penalty`` is the search's
        ``alpha``."""
        state, context = self.start(features)
        search = dict(
            start=START,
            end=END,
            max_len=max_len,
            banned=(PAD, START, UNK),
            alpha=length_penalty,
            min_len=2,
        )
        if beam == 1:
            return greedy_search(self.step, state, context, **search)
        return beam_search(self.step, state, context, beam, **search)

    def to_text(self, tokens: Sequence[int]) -> str:
        return " ".join(self.words[t] for t in tokens)

    def _cells(self):
        return (LSTM, LSTMCell) if self.cell == "lstm" else (GRU, GRUCell)


@register_model("show-and-tell")
class ShowAndTell(Captioner):
    """Vinyals et al. 2015: the image vector as the recurrent network's first input."""

    def __init__(
        self,
        words: Sequence[str],
        cell: str = "lstm",
        embed_size: int = 256,
        hidden_size: int = 512,
        dropout: float = 0.5,
        encoder_weights: str | None = "imagenet",
        image_size: int = 224,
    ):
        super().__init__(words, cell, encoder_weights, image_size)
        self.image_proj = nn.Linear(NUM_FEATURES, embed_size)  # W_I
        self.embed = nn.Embedding(self.vocab_size, embed_size, padding_idx=PAD)  # W_e
        self.rnn = self._cells()[0](embed_size, hidden_size, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, self.vocab_size)  # W_o

    def _image(self, features: Tensor) -> Tensor:
        return self.drop(self.image_proj(features.mean(1)))  # (B, E): x_{-1} = W_I CNN(I)

    def teacher_forced(self, features, captions, rows=None):
        image = self._image(features)  # (B, E)
        image = image if rows is None else image[rows]  # (N, E)
        words = self.drop(self.embed(captions[:, :-1]))  # (N, T-1, E): x_t = W_e S_t
        x = torch.cat([image[:, None], words], dim=1)  # (N, T, E): image first
        h, _ = self.rnn(x)  # (B, T, H)
        return self.out(self.drop(h[:, 1:])), None  # (B, T-1, V): h_t after word t predicts t+1

    def _pack(self, hx) -> tuple:
        return tuple(s[0] for s in hx) if isinstance(hx, tuple) else (hx[0],)  # (N, H) each

    def _unpack(self, state: tuple):
        return tuple(s[None] for s in state) if self.cell == "lstm" else state[0][None]  # (1, N, H)

    def start(self, features):
        _, hx = self.rnn(self._image(features)[:, None])  # the image step
        return self._pack(hx), ()

    def step(self, tokens, state, context):
        h, hx = self.rnn(self.embed(tokens)[:, None], self._unpack(state))  # (N, 1, H)
        return self.out(h[:, 0]).log_softmax(-1), self._pack(hx), None


@register_model("show-attend-tell")
class ShowAttendTell(Captioner):
    """Xu et al. 2015: soft attention over the encoder's grid at every word (see the module)."""

    def __init__(
        self,
        words: Sequence[str],
        cell: str = "lstm",
        embed_size: int = 256,
        hidden_size: int = 512,
        feature_size: int = 512,
        attention_size: int = 256,
        dropout: float = 0.5,
        encoder_weights: str | None = "imagenet",
        image_size: int = 224,
    ):
        super().__init__(words, cell, encoder_weights, image_size)
        self.feature_proj = nn.Sequential(nn.Linear(NUM_FEATURES, feature_size), nn.ReLU())
        self.init_state = nn.Linear(
            feature_size, hidden_size * (2 if cell == "lstm" else 1)
        )  # W_init
        self.attention = SoftAttention(feature_size, hidden_size, attention_size)
        self.f_beta = nn.Linear(hidden_size, 1)  # gating scalar β_t
        self.embed = nn.Embedding(self.vocab_size, embed_size, padding_idx=PAD)  # E
        self.rnn = self._cells()[1](embed_size + feature_size, hidden_size)
        self.L_h = nn.Linear(hidden_size, embed_size, bias=False)
        self.L_z = nn.Linear(feature_size, embed_size, bias=False)
        self.L_o = nn.Linear(embed_size, self.vocab_size)
        self.drop = nn.Dropout(dropout)

    def start(self, features):
        a = self.drop(self.feature_proj(features))  # (B, L, D)
        state = tuple(
            torch.tanh(self.init_state(a.mean(1))).chunk(2 if self.cell == "lstm" else 1, dim=-1)
        )
        return state, (a, self.attention.project(a))  # state: (h_0, c_0) or (h_0,), each (B, H)

    def _advance(
        self, embedded: Tensor, state: tuple, context: tuple
    ) -> tuple[Tensor, tuple, Tensor]:
        """One decoder step from the embedded previous word ``(N, E)``: (deep output (N, V),
        state, α)."""
        a, projected = context
        h = state[0]
        z, alpha = self.attention(a, projected, h)  # (N, D), (N, L)
        z = torch.sigmoid(self.f_beta(h)) * z  # β_t ẑ_t
        x = torch.cat([embedded, z], dim=-1)  # (N, E + D)
        state = self.rnn(x, state) if self.cell == "lstm" else (self.rnn(x, h),)
        # p(y_t) ∝ exp(L_o(E y_{t-1} + L_h h_t + L_z ẑ_t))
        logits = self.L_o(self.drop(embedded + self.L_h(state[0]) + self.L_z(z)))
        return logits, tuple(state), alpha

    def teacher_forced(self, features, captions, rows=None):
        state, context = self.start(features)
        rows = torch.arange(len(captions)) if rows is None else rows
        # longest caption first, so that at step t the captions still running are the first n_t rows
        lengths = (captions[:, 1:] != PAD).sum(1)  # (N,) targets per caption
        order = lengths.argsort(descending=True)
        lengths, rows = lengths[order], rows[order]
        state, context = tuple(s[rows] for s in state), tuple(c[rows] for c in context)  # (N, ...)
        embedded = self.drop(self.embed(captions[order, :-1]))  # (N, T-1, E)
        logits, alphas = [], []
        for t in range(embedded.shape[1]):
            n = int((lengths > t).sum())  # captions still running
            if n == 0:
                break
            state, context = tuple(s[:n] for s in state), tuple(c[:n] for c in context)
            step_logits, state, alpha = self._advance(embedded[:n, t], state, context)
            logits.append(
                F.pad(step_logits, (0, 0, 0, len(rows) - n))
            )  # (N, V), zero rows past the end
            alphas.append(F.pad(alpha, (0, 0, 0, len(rows) - n)))  # (N, L)
        logits, alphas = torch.stack(logits, 1), torch.stack(alphas, 1)  # (N, t, V), (N, t, L)
        pad = embedded.shape[1] - logits.shape[1]
        logits, alphas = (
            F.pad(logits, (0, 0, 0, pad)),
            F.pad(alphas, (0, 0, 0, pad)),
        )  # (N, T-1, ...)
        unsort = order.argsort()
        return logits[unsort], alphas[unsort]

    def step(self, tokens, state, context):
        logits, state, alpha = self._advance(self.embed(tokens), state, context)
        return logits.log_softmax(-1), state, alpha
