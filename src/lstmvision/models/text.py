"""Sequence models over tokens and numbers: the three shapes of a recurrent network.

* ``char-lm`` (:class:`CharLM`), **many-to-many**: a character language model, one prediction of
  the next character per input character; :func:`sample` runs it **one-to-many** (a prompt in,
  a stream of characters out).
* ``text-bilstm`` (:class:`TextClassifier`), **many-to-one**: a sentence of word ids in, one
  label out (BiLSTM over GloVe or learnt embeddings); ``text-bilstm-ensemble``
  (:class:`TextClassifierEnsemble`) averages several of them.
* ``adding-rnn`` (:class:`AddingRegressor`), **many-to-one**: the adding problem's sum.

All use :mod:`lstmvision.nn`'s RNN/LSTM/GRU layers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from lstmvision.models import register_model
from lstmvision.nn.recurrent import GRU, LSTM, RNN

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def _layer(cell: str, *args, **kwargs) -> nn.Module:
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
    return CELLS[cell](*args, **kwargs)


def detach_state(state):
    """The recurrent state with its history cut (truncated BPTT between windows)."""
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


@register_model("char-lm")
class CharLM(nn.Module):
    """``(B, T)`` character ids -> ``(B, T, V)`` logits of the next character (many-to-many).

    Embedding -> ``num_layers`` recurrent layers (dropout between them) -> dropout -> linear.
    ``chars`` is the vocabulary (a string, index = id), saved with the model so that a run can
    encode prompts and decode samples with nothing else.
    """

    def __init__(
        self,
        chars: str,
        embed_size: int = 64,
        hidden_size: int = 512,
        num_layers: int = 2,
        cell: str = "lstm",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.chars, self.cell = chars, cell
        self.embed = nn.Embedding(len(chars), embed_size)
        self.rnn = _layer(
            cell,
            embed_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, len(chars))

    def run(self, tokens: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
        """Logits ``(B, T, V)`` and the final state, starting from ``state`` (zeros if ``None``)."""
        out, state = self.rnn(self.embed(tokens), state)  # (B, T, H)
        return self.head(self.dropout(out)), state

    def hidden_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """The last layer's hidden state at every step, ``(B, T, H)`` (for activation pictures)."""
        return self.rnn(self.embed(tokens))[0]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.run(tokens)[0]


@torch.no_grad()
def sample_ids(
    model: CharLM,
    prompt_ids: torch.Tensor,
    length: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Iterator[int]:
    """The ``length`` ids drawn after the prompt ``(P,)`` (P >= 1), one at a time as they are
    drawn, from ``softmax(logits / temperature)``; ``temperature`` 0 is greedy. The same
    ``generator`` seed gives the same ids. Runs without oneDNN's LSTM: its set-up on every call
    costs more than a one-character step (2.5-3x slower sampling on CPU)."""
    model.eval()
    with torch.backends.mkldnn.flags(enabled=False):
        logits, state = model.run(prompt_ids[None])  # (1, P, V): read the whole prompt
    for n in range(length):
        last = logits[0, -1]  # (V,)
        if temperature <= 0:
            nxt = last.argmax()
        else:
            nxt = torch.multinomial((last / temperature).softmax(-1), 1, generator=generator)[0]
        yield int(nxt)
        if n < length - 1:
            with torch.backends.mkldnn.flags(enabled=False):
                logits, state = model.run(nxt.view(1, 1), state)  # (1, 1, V)


def sample(
    model: CharLM,
    prompt_ids: torch.Tensor,
    length: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """:func:`sample_ids` as one tensor ``(length,)``."""
    return torch.tensor(
        list(sample_ids(model, prompt_ids, length, temperature, generator)), dtype=torch.long
    )


@register_model("text-bilstm")
class TextClassifier(nn.Module):
    """``(B, T)`` word ids (0 = padding) -> ``(B, num_classes)`` logits (many-to-one).

    ``words`` (the vocabulary, index = id) and ``classes`` (label names) are optional and only
    stored, so that a saved model can read sentences with nothing else.

    Embedding (``vocab_size x embed_size``; a task copies GloVe vectors into it) -> dropout ->
    (bi)directional recurrent layer(s) over the *packed* batch (each sentence stops at its own
    length, so padding never changes a result) -> sentence vector -> dropout -> linear.
    ``pooling="last"``: the final hidden state of each direction (forward at the sentence's last
    word, backward at its first); ``"max"``: the element-wise maximum of the outputs over the
    sentence's real words.

    ``fixed_words``: the last ``fixed_words`` ids of the vocabulary live in a separate embedding,
    ``embed_fixed``, that is never trained (pretrained vectors of words the training data lacks);
    the optimiser then carries state only for ``embed``, the trained words.
    """

    def __init__(
        self,
        vocab_size: int | None = None,
        num_classes: int = 2,
        embed_size: int = 50,
        hidden_size: int = 128,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = True,
        dropout: float = 0.0,
        embed_dropout: float = 0.0,
        pooling: str = "last",
        words: list[str] | None = None,
        classes: list[str] | None = None,
        fixed_words: int = 0,
    ):
        super().__init__()
        if pooling not in ("last", "max"):
            raise ValueError(f"pooling must be last or max, not {pooling!r}")
        if vocab_size is None and words is None:
            raise ValueError("give vocab_size or words (the vocabulary, index = id, 0 = padding)")
        vocab_size = len(words) if words is not None else vocab_size
        self.pooling, self.words, self.classes = pooling, words, classes
        if not 0 <= fixed_words < vocab_size:
            raise ValueError(f"fixed_words must be in [0, {vocab_size}), got {fixed_words}")
        self.embed = nn.Embedding(vocab_size - fixed_words, embed_size, padding_idx=0)
        self.embed_fixed = (
            nn.Embedding(fixed_words, embed_size).requires_grad_(False) if fixed_words else None
        )
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.rnn = _layer(
            cell,
            embed_size,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.feature_dim = hidden_size * (2 if bidirectional else 1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward_features(
        self, tokens: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        if lengths is None:
            lengths = (tokens != 0).sum(1).clamp(min=1)  # (B,)
        return self.encode(self.embed_tokens(tokens), lengths)

    def encode(self, vectors: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, T, E)`` word vectors of sentences ``lengths`` long -> ``(B, feature_dim)``."""
        out, state = self.rnn(
            self.embed_dropout(vectors), lengths=lengths.cpu()
        )  # (B, T, D*H), 0 past ends
        if self.pooling == "max":
            valid = (
                torch.arange(vectors.size(1), device=vectors.device)[None]
                < lengths.to(vectors.device)[:, None]
            )
            return out.masked_fill(~valid[..., None], float("-inf")).amax(1)  # (B, D*H)
        h_n = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
        if self.rnn.bidirectional:
            return torch.cat([h_n[-2], h_n[-1]], dim=1)  # (B, 2H): last layer, both directions
        return h_n[-1]  # (B, H)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` ids -> ``(B, T, E)`` vectors, from ``embed`` or, past its rows,
        ``embed_fixed``."""
        if self.embed_fixed is None:
            return self.embed(tokens)
        trained = self.embed.num_embeddings
        fixed = tokens >= trained
        ours = self.embed(tokens.masked_fill(fixed, 0))  # row 0 (padding) is zero
        theirs = self.embed_fixed((tokens - trained).clamp(min=0))
        return torch.where(fixed[..., None], theirs, ours)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))

    def member_vectors(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` ids -> ``(1, B, T, E)``: the word vectors, as
        :class:`TextClassifierEnsemble` 's for one member."""
        return self.embed_tokens(tokens)[None]

    def logits_from_vectors(self, vectors: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(1, B, T, E)`` word vectors -> ``(1, B, num_classes)`` logits."""
        return self.forward_head(self.encode(vectors[0], lengths))[None]

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(tokens, lengths))


@register_model("text-bilstm-ensemble")
class TextClassifierEnsemble(nn.Module):
    """``members`` independently initialised :class:`TextClassifier` s read the same batch; the
    ensemble predicts the mean of their class probabilities. ``forward`` returns its *log*,
    ``(B, num_classes)``, so softmax, argmax and cross-entropy read it as they read logits.

    Training should give every member its own loss (:meth:`member_logits`, ``(M, B, C)``): the
    members differ by their random start and their dropout masks. Each member fine-tunes its own
    copy of the trained words' embedding; the never-trained table of ``fixed_words`` pretrained
    vectors (see :class:`TextClassifier`) is held once, here, and read by all. Other arguments
    are :class:`TextClassifier`'s.
    """

    def __init__(
        self,
        members: int = 5,
        vocab_size: int | None = None,
        num_classes: int = 2,
        embed_size: int = 50,
        words: list[str] | None = None,
        classes: list[str] | None = None,
        fixed_words: int = 0,
        **kwargs,
    ):
        super().__init__()
        if members < 1:
            raise ValueError(f"members must be at least 1, got {members}")
        if vocab_size is None and words is None:
            raise ValueError("give vocab_size or words (the vocabulary, index = id, 0 = padding)")
        vocab_size = len(words) if words is not None else vocab_size
        if not 0 <= fixed_words < vocab_size:
            raise ValueError(f"fixed_words must be in [0, {vocab_size}), got {fixed_words}")
        self.words, self.classes = words, classes
        self.members = nn.ModuleList(
            TextClassifier(vocab_size - fixed_words, num_classes, embed_size, **kwargs)
            for _ in range(members)
        )
        self.embed_fixed = (
            nn.Embedding(fixed_words, embed_size).requires_grad_(False) if fixed_words else None
        )

    def member_vectors(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` ids -> ``(M, B, T, E)``: each member's word vectors (its own trained words,
        the shared fixed table past them)."""
        trained = self.members[0].embed.num_embeddings
        fixed = tokens >= trained  # (B, T)
        ours = tokens.masked_fill(fixed, 0)
        theirs = (
            self.embed_fixed((tokens - trained).clamp(min=0))
            if self.embed_fixed is not None
            else None
        )
        out = []
        for member in self.members:
            x = member.embed(ours)  # (B, T, E)
            out.append(x if theirs is None else torch.where(fixed[..., None], theirs, x))
        return torch.stack(out)

    def logits_from_vectors(self, vectors: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(M, B, T, E)`` word vectors, one set per member -> ``(M, B, num_classes)`` logits."""
        return torch.stack(
            [m.forward_head(m.encode(x, lengths)) for m, x in zip(self.members, vectors)]
        )

    def member_logits(
        self, tokens: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, T)`` ids -> ``(M, B, num_classes)``: each member's logits."""
        if lengths is None:
            lengths = (tokens != 0).sum(1).clamp(min=1)  # (B,)
        return self.logits_from_vectors(self.member_vectors(tokens), lengths)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        log_p = self.member_logits(tokens, lengths).log_softmax(-1)  # (M, B, C)
        return log_p.logsumexp(0) - math.log(len(self.members))  # log of the mean probability


@register_model("adding-rnn")
class AddingRegressor(nn.Module):
    """``(B, T, 2)`` adding-problem sequences -> ``(B,)`` predicted sums (many-to-one): one
    recurrent layer, a linear map of its final hidden state.

    ``forget_bias`` (LSTM only): the forget gate's bias starts here (1, as Gers et al. 2000 and
    Jozefowicz et al. 2015 advise), so ``f_t`` starts near σ(1) = 0.73 rather than 0.5 and the cell
    state, and its gradient, survive long sequences from the first step; 0 keeps torch's init.
    """

    def __init__(
        self,
        cell: str = "lstm",
        hidden_size: int = 128,
        input_size: int = 2,
        nonlinearity: str = "tanh",
        forget_bias: float = 1.0,
    ):
        super().__init__()
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.rnn = _layer(cell, input_size, hidden_size, batch_first=True, **extra)
        self.head = nn.Linear(hidden_size, 1)
        if cell == "lstm" and forget_bias:
            self.rnn.set_forget_bias(forget_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state  # (1, B, H)
        return self.head(h_n[-1]).squeeze(-1)  # (B,)
