r"""Greedy and beam-search decoding of a step-by-step sequence model, batched.

The model is a function ``step(tokens (N,), state, context) -> (log_probs (N, V), state, extra)``:
``state`` and ``context`` are tuples of tensors whose first dimension is ``N`` (the rows being
decoded); ``state`` changes at every step and follows its beam, ``context`` (e.g. an image's
features) is fixed; ``extra`` is ``None`` or an ``(N, ...)`` tensor recorded per generated token
(e.g. attention weights).

What is searched for. A sequence is ``w_1 ... w_n <end>`` with at most ``max_len`` tokens
(``<end>`` included; at step ``max_len`` only ``<end>`` may come, before step ``min_len`` it may
not), never a ``banned`` token. Its
score is the sum of the tokens' log-probabilities, ``<end>``'s included, and sequences compare by
the length-normalised score

.. math::  \hat s = \frac{\sum_{t=1}^{n+1} \log p(y_t \mid y_{<t})}{(n+1)^{\alpha}}

(``alpha = 0``: the plain sum, which favours short sequences; ``alpha = 1``: the mean per token).

Beam search keeps the ``k`` best partial sequences of each input. At every step all extensions of
the live ones are ranked by their summed score, the best ``k`` are taken, those that end in
``<end>`` are set aside as finished and no longer extended, so ``k`` shrinks by one for each
(as in Show, Attend and Tell's implementations); it stops when no sequence is live. The answer is
the finished sequence with the best normalised score. With ``k = 1`` this is exactly greedy
decoding; with ``k`` at least the number of possible prefixes it is an exhaustive search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Step = Callable[[Tensor, tuple, tuple], tuple[Tensor, tuple, Tensor | None]]


@dataclass
class Decoded:
    """Per input: ``tokens`` (without ``<end>``), its summed log-probability ``score``, its
    normalised score ``normalized``, and ``extras`` ``(n, ...)`` for the ``n`` tokens (or None)."""

    tokens: list[list[int]]
    score: list[float]
    normalized: list[float]
    extras: list[Tensor | None]


def _mask(
    log_probs: Tensor, t: int, max_len: int, end: int, banned: Sequence[int], min_len: int
) -> Tensor:
    log_probs = log_probs.float().clone()
    if banned:
        log_probs[:, list(banned)] = float("-inf")
    if t < min_len - 1 < max_len - 1:  # too early to end
        log_probs[:, end] = float("-inf")
    if t == max_len - 1:  # the last step may only end the sequence
        keep = log_probs[:, end].clone()
        log_probs.fill_(float("-inf"))
        log_probs[:, end] = keep
    return log_probs


def greedy_search(
    step: Step,
    state: tuple,
    context: tuple,
    start: int,
    end: int,
    max_len: int,
    banned: Sequence[int] = (),
    alpha: float = 0.0,
    min_len: int = 1,
) -> Decoded:
    """The most probable token at every step, for each of the ``N`` inputs at once."""
    n = state[0].shape[0] if state else context[0].shape[0]
    tokens = torch.full((n,), start, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    length = torch.zeros(n, dtype=torch.long)
    score = torch.zeros(n)
    out, extras = [], []
    for t in range(max_len):
        log_probs, state, extra = step(tokens, state, context)
        log_probs = _mask(log_probs, t, max_len, end, banned, min_len)
        best, tokens = log_probs.max(-1)  # (N,), (N,)
        score += torch.where(done, 0.0, best)
        length += (~done).long()
        out.append(tokens)
        extras.append(extra)
        done |= tokens == end
        if done.all():
            break
    out = torch.stack(out, 1)  # (N, T)
    results = Decoded([], [], [], [])
    for i in range(n):
        words = int(length[i]) - 1  # the last counted token is <end>
        results.tokens.append(out[i, :words].tolist())
        results.score.append(float(score[i]))
        results.normalized.append(float(score[i]) / float(length[i]) ** alpha)
        if extras[0] is None:
            results.extras.append(None)
        else:  # (words, ...): what each generated word saw
            results.extras.append(torch.stack([e[i] for e in extras[: max(words, 1)]])[:words])
    return results


def beam_search(
    step: Step,
    state: tuple,
    context: tuple,
    beam: int,
    start: int,
    end: int,
    max_len: int,
    banned: Sequence[int] = (),
    alpha: float = 0.0,
    min_len: int = 1,
) -> Decoded:
    """Beam search of width ``beam`` for each of the ``B`` inputs at once (``B * beam`` rows
    run)."""
    if beam < 1:
        raise ValueError(f"beam width must be at least 1, not {beam}")
    B, K = (state[0] if state else context[0]).shape[0], beam
    state = tuple(
        s.repeat_interleave(K, 0) for s in state
    )  # (B*K, ...): row b*K + j = beam j of input b
    context = tuple(c.repeat_interleave(K, 0) for c in context)
    tokens = torch.full((B * K,), start, dtype=torch.long)
    scores = torch.full((B, K), float("-inf"))
    scores[:, 0] = 0.0  # one live beam to start from
    live = torch.full((B,), K)  # how many extensions each input may keep at this step
    history = torch.zeros(B, K, 0, dtype=torch.long)  # (B, K, t) tokens of each beam
    extra_history = None  # (B, K, t, ...) or None
    offsets = torch.arange(B)[:, None] * K  # (B, 1)
    best = [(float("-inf"), 0.0, [], None)] * B  # (normalised, score, tokens, extras)
    for t in range(max_len):
        log_probs, state, extra = step(tokens, state, context)
        log_probs = _mask(log_probs, t, max_len, end, banned, min_len)
        V = log_probs.shape[-1]
        total = scores[:, :, None] + log_probs.view(B, K, V)  # (B, K, V)
        top, index = total.view(B, K * V).topk(min(K, K * V), dim=1)  # (B, K) best extensions
        parent, word = index // V, index % V  # (B, K) beam it extends, token it adds
        rank = torch.arange(top.shape[1])[None]
        chosen = (rank < live[:, None]) & torch.isfinite(top)
        flat_parent = (parent + offsets).view(-1)  # (B*K,) rows of the extended beams
        if extra is not None:
            step_extra = extra[flat_parent].view(B, K, 1, *extra.shape[1:])
            old = (
                extra_history[torch.arange(B)[:, None], parent]
                if extra_history is not None
                else step_extra[:, :, :0]
            )
        for b, j in (chosen & (word == end)).nonzero().tolist():
            normalized = float(top[b, j]) / float(t + 1) ** alpha
            if normalized > best[b][0]:
                kept = old[b, j] if extra is not None else None
                best[b] = (normalized, float(top[b, j]), history[b, parent[b, j]].tolist(), kept)
        going = chosen & (word != end)
        live = live - (chosen & (word == end)).sum(
            1
        )  # each finished sequence takes one place for good
        scores = torch.where(going, top, torch.full_like(top, float("-inf")))
        history = torch.cat(
            [history[torch.arange(B)[:, None], parent], word[:, :, None]], dim=2
        )  # (B, K, t+1)
        if extra is not None:
            extra_history = torch.cat([old, step_extra], dim=2)  # (B, K, t+1, ...)
        if not going.any():
            break
        state = tuple(s[flat_parent] for s in state)
        tokens = word.view(-1)
    return Decoded(
        [b[2] for b in best], [b[1] for b in best], [b[0] for b in best], [b[3] for b in best]
    )
