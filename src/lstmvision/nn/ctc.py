r"""CTC decoding: greedy (best path) and prefix beam search over per-frame log-probabilities.

CTC (Graves et al., 2006) reads a ``(T, C)`` matrix of per-frame log-probabilities over the
characters and a blank (index ``blank``). A path ``π`` (one symbol per frame) maps to a labelling
by ``B``: merge repeated symbols, then drop blanks. The probability of a labelling is the sum over
its paths, ``p(l | x) = Σ_{π ∈ B⁻¹(l)} Π_t y_t(π_t)``.

* :func:`greedy_decode`: the best path ``π_t = argmax_c y_t(c)`` mapped by ``B``; also which frame
  emitted each character (the alignment).
* :func:`prefix_beam_search`: keeps for each prefix ``l`` the probabilities of the paths so far
  that end in a blank, ``p_b(l)``, or in its last character, ``p_nb(l)``; at frame ``t``:

  - blank:          ``p_b'(l) += (p_b(l) + p_nb(l)) · y_t(blank)``
  - repeat last c:  ``p_nb'(l) += p_nb(l) · y_t(c)``  (merged into ``l``)
  - extend by c:    ``p_nb'(l+c) += (p_b(l) + p_nb(l)) · y_t(c)`` if ``c != last(l)``,
    else ``p_b(l) · y_t(c)`` (a repeat needs a blank between)

  and keeps the ``beam`` best prefixes by ``p_b + p_nb``. With a beam wider than the number of
  prefixes it is exact: ``p_b(l) + p_nb(l) = p(l | x)`` (tested against brute force).

  **Shallow fusion** with a language model ``lm(prefix, c) = log p_lm(c | prefix)`` (e.g. a
  character n-gram, :mod:`lstmvision.nn.ngram`) ranks prefixes by

      score(l) = log p_ctc(l) + α · log p_lm(l) + β · |l|,    log p_lm(l) = Σ_i log p_lm(l_i | l_<i)

  (``α = lm_weight``, ``β = length_bonus``: the LM's per-character penalty otherwise favours short
  labellings). ``log p_lm(l)`` is kept per prefix and grows once, when ``l`` is extended by a new
  character; a repeat merged into ``l`` or a blank adds nothing. The final ranking adds
  ``α · log p_lm(⟨/s⟩ | l)``, the end of line. The returned scores stay ``log p_ctc(l)``.

Texts: class ``i`` is the character ``charset[i - 1]`` (0 is the blank). :func:`greedy_texts` and
:func:`beam_decode` turn log-probabilities into text; :func:`decode_batch` (a padded batch) and
:func:`decode_lines` (lines one at a time) run a CTC recogniser (``model(images, widths)`` gives
``(T, B, C)`` logits, ``model.output_lengths(widths)`` the frames of each line, ``model.charset``
its characters) and decode what it gives.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from lstmvision.nn.ngram import LineLM

NEG_INF = float("-inf")


def _logaddexp(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def greedy_decode(
    log_probs: Tensor, lengths: Tensor | None = None, blank: int = 0
) -> list[tuple[list[int], list[int]]]:
    """Best-path decoding of ``(T, B, C)`` (or ``(T, C)``) scores; only the first ``lengths[b]``
    frames of sequence ``b`` count. Returns per sequence ``(labels, frames)``: the label indices and
    the frame at which each was first emitted."""
    if log_probs.dim() == 2:
        log_probs = log_probs.unsqueeze(1)  # (T, 1, C)
    best = log_probs.argmax(-1).t().cpu()  # (B, T)
    lengths = torch.full((best.size(0),), best.size(1)) if lengths is None else lengths.cpu()
    results = []
    for path, length in zip(best.tolist(), lengths.tolist()):
        labels, frames, previous = [], [], blank
        for t, s in enumerate(path[:length]):
            if s != blank and s != previous:  # B: merge repeats, drop blanks
                labels.append(s)
                frames.append(t)
            previous = s
        results.append((labels, frames))
    return results


def prefix_beam_search(
    log_probs: Tensor,
    beam: int = 10,
    blank: int = 0,
    prune: float | None = -12.0,
    lm: Callable[[tuple[int, ...], int | None], float] | None = None,
    lm_weight: float = 0.0,
    length_bonus: float = 0.0,
) -> list[tuple[list[int], float]]:
    """CTC prefix beam search over ``(T, C)`` log-probabilities (one sequence, its true length).

    Returns up to ``beam`` ``(labels, log p_ctc)`` best first. ``prune``: per frame, characters with
    a log-probability below it are not tried (``None``: all are; exact for a wide enough beam).
    ``lm``, ``lm_weight``, ``length_bonus``: shallow fusion (see the module); the order is then by
    the fused score, the returned scores are still the CTC log-probabilities. ``lm(prefix, c)`` is
    ``log p(c | prefix)``, with ``c = None`` for the end of line. No ``lm`` (or ``lm_weight = 0``)
    and ``length_bonus = 0``: plain CTC ranking."""
    if log_probs.dim() != 2:
        raise ValueError(
            f"prefix_beam_search wants (T, C) log-probabilities, got shape {tuple(log_probs.shape)}"
        )
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    use_lm = lm is not None and lm_weight != 0.0
    fused = use_lm or length_bonus != 0.0
    scores = log_probs.detach().double().cpu().tolist()
    beams: dict[tuple[int, ...], tuple[float, float]] = {
        (): (0.0, NEG_INF)
    }  # prefix -> (log p_b, log p_nb)
    lm_scores: dict[tuple[int, ...], float] = {
        (): 0.0
    }  # prefix -> log p_lm(prefix) of the kept prefixes

    def rank(kv) -> float:  # log p_ctc + α log p_lm + β |l|
        prefix, (pb, pnb) = kv
        return _logaddexp(pb, pnb) + lm_weight * lm_scores[prefix] + length_bonus * len(prefix)

    for frame in scores:
        candidates = [
            c for c, s in enumerate(frame) if c != blank and (prune is None or s >= prune)
        ]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            entry = nxt[prefix]
            entry[0] = _logaddexp(entry[0], total + frame[blank])  # a blank keeps the prefix
            last = prefix[-1] if prefix else None
            if last is not None:
                entry[1] = _logaddexp(entry[1], pnb + frame[last])  # repeated last char merges
            for c in candidates:
                source = pb if c == last else total  # a repeat needs a blank in between
                if source == NEG_INF:
                    continue  # no path reaches prefix + c (e.g. a repeat with no blank yet)
                longer = prefix + (c,)
                extended = nxt[longer]
                extended[1] = _logaddexp(extended[1], source + frame[c])
                if fused and longer not in lm_scores:  # the LM scores a new character once
                    lm_scores[longer] = lm_scores[prefix] + (lm(prefix, c) if use_lm else 0.0)
        if fused:
            ranked = sorted(nxt.items(), key=rank, reverse=True)[:beam]
            lm_scores = {p: lm_scores[p] for p, _ in ranked}
        else:
            ranked = sorted(nxt.items(), key=lambda kv: _logaddexp(*kv[1]), reverse=True)[:beam]
        beams = {p: (v[0], v[1]) for p, v in ranked}
    if not fused:
        results = [(list(p), _logaddexp(*v)) for p, v in beams.items()]
        return sorted(results, key=lambda r: r[1], reverse=True)
    end = {p: lm_weight * lm(p, None) if use_lm else 0.0 for p in beams}  # α log p_lm(</s> | l)
    order = sorted(beams.items(), key=lambda kv: rank(kv) + end[kv[0]], reverse=True)
    return [(list(p), _logaddexp(*v)) for p, v in order]


def brute_force_labellings(log_probs: Tensor, blank: int = 0) -> dict[tuple[int, ...], float]:
    """``log p(l | x)`` of every labelling by summing all ``C^T`` paths (tiny ``T``, ``C`` only:
    the reference the beam search is tested against)."""
    import itertools

    T, C = log_probs.shape
    scores = log_probs.double().tolist()
    out: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(C), repeat=T):
        labels, previous = [], blank
        for s in path:
            if s != blank and s != previous:
                labels.append(s)
            previous = s
        score = sum(scores[t][s] for t, s in enumerate(path))
        out[tuple(labels)] = _logaddexp(out.get(tuple(labels), NEG_INF), score)
    return out


# ------------------------------------------------------------------------------------- texts


def labels_text(labels: Sequence[int], charset: str) -> str:
    """The text of CTC class indices: class ``i`` is ``charset[i - 1]``; the blank (0) and
    indices past the charset give nothing."""
    return "".join(charset[i - 1] for i in labels if 0 < i <= len(charset))


def greedy_texts(log_probs: Tensor, charset: str, lengths: Tensor | None = None) -> list[str]:
    """Best-path texts of ``(T, B, C)`` (or ``(T, C)``) log-probabilities (first ``lengths[b]``
    frames of line ``b``), by :func:`greedy_decode`."""
    return [labels_text(labels, charset) for labels, _ in greedy_decode(log_probs, lengths)]


def beam_decode(log_probs: Tensor, charset: str, beam: int, lm: LineLM | None = None) -> str:
    """The best labelling of one line's ``(T, C)`` log-probabilities by prefix beam search, with
    ``lm``'s n-gram, weight and length bonus fused in (shallow fusion) when given."""
    fusion = lm.fusion(charset) if lm is not None else {}
    return labels_text(prefix_beam_search(log_probs, beam, **fusion)[0][0], charset)


def decode_batch(
    model: nn.Module,
    images: Tensor,
    widths: Tensor | None = None,
    beam: int = 1,
    lm: LineLM | None = None,
) -> tuple[list[str], list[Tensor]]:
    """Texts of a batch of ``(B, 1, H, W)`` line images (true ``widths``, default: all of ``W``)
    and the per-line ``(T_b, C)`` log-probabilities: greedy, or beam search of width ``beam``
    with the language model ``lm`` fused in when one is given."""
    log_probs = model(images, widths).log_softmax(-1)  # (T, B, C)
    lengths = (
        model.output_lengths(widths)
        if widths is not None
        else torch.full((images.size(0),), log_probs.size(0))
    )
    lengths = lengths.clamp(max=log_probs.size(0))
    per_line = [log_probs[: int(n), b] for b, n in enumerate(lengths)]  # (T_b, C) each
    if beam > 1:
        texts = [beam_decode(lp, model.charset, beam, lm) for lp in per_line]
    else:
        texts = greedy_texts(log_probs, model.charset, lengths)
    return texts, per_line


@torch.no_grad()
def decode_lines(
    model: nn.Module, images: Sequence[Tensor], beam: int = 1, lm: LineLM | None = None
) -> list[tuple[str, Tensor]]:
    """Text and ``(T, C)`` log-probabilities of each ``(H, W)`` line tensor, decoded alone (no
    padding) by ``model`` in eval mode, as :func:`decode_batch` does."""
    model.eval()
    out = []
    for image in images:
        (text,), (lp,) = decode_batch(model, image[None, None], beam=beam, lm=lm)  # (1, 1, H, W)
        out.append((text, lp))
    return out
