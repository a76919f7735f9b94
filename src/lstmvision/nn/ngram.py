r"""A character n-gram language model with interpolated Witten-Bell smoothing (for CTC decoding).

Each training line is read as ``⟨s⟩^{n-1} c_1 … c_m ⟨/s⟩``: ``n - 1`` start symbols give every
character a full context, and the end-of-line symbol ``⟨/s⟩`` is predicted like a character. The
model predicts a symbol of the vocabulary ``V = chars ∪ {⟨/s⟩}`` from the ``n - 1`` symbols before
it. With ``C(h c)`` the count of ``c`` after the context ``h``, ``C(h) = Σ_c C(h c)`` and
``T(h) = |{c : C(h c) > 0}|`` the number of distinct symbols seen after ``h``, interpolated
Witten-Bell (Witten & Bell, 1991; Chen & Goodman, 1998) is

    P(c | h) = (C(h c) + T(h) · P(c | h⁻)) / (C(h) + T(h))      if C(h) > 0
    P(c | h) = P(c | h⁻)                                         if C(h) = 0 (unseen context)
    P(c | ε) = (C(c) + T(ε) / |V|) / (C(ε) + T(ε))               (ε: the empty context)

where ``h⁻`` drops the oldest symbol of ``h``: the more different symbols follow a context, the
more weight ``T(h) / (C(h) + T(h))`` goes to the shorter one, down to the uniform ``1 / |V|``.
Every level is normalised over ``V``, so ``Σ_{c ∈ V} P(c | h) = 1`` for every context.

A character outside ``chars`` gets the **floor** probability ``T(ε) / (C(ε) + T(ε)) / |V|``: what
the model gives, with no context, to a vocabulary character the training lines never contain
(the distribution is then no longer normalised over those characters; they only occur when a
recogniser's charset is wider than the model's). Out-of-vocabulary characters in training lines
are context but never counted as predicted symbols.

Only the highest-order counts are stored (:meth:`CharNGram.to_dict`): every lower-order count is
their sum over the dropped oldest symbols, because every event is counted at every order. Per
context distributions are memoised, so decoding asks for each context once.

:class:`LineLM` is such a model with the shallow-fusion weights tuned for one recogniser
(:func:`lstmvision.nn.ctc.prefix_beam_search`'s ``lm_weight`` and ``length_bonus``), kept as plain
JSON (a text-line run's ``lm.json``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lstmvision.files import write_text

FORMAT = "lstmvision-char-ngram"


class CharNGram:
    """Character n-gram model; build it with :meth:`fit` or :meth:`from_dict`."""

    BOS, EOS = "\x02", "\x03"  # start padding and end-of-line symbol (never in a charset)
    max_cache = 200_000  # memoised contexts before the memo is emptied (bounded memory)

    def __init__(self, order: int, chars: str, counts: dict[str, dict[str, int]]):
        if order < 1:
            raise ValueError(f"n-gram order must be >= 1, got {order}")
        if self.BOS in chars or self.EOS in chars or len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct and hold neither \\x02 nor \\x03")
        self.order, self.chars = order, chars
        self.vocab = chars + self.EOS  # the symbols P(· | h) is normalised over
        self.counts = counts  # (n-1)-symbol context -> {next symbol: count}
        self.next: dict[str, dict[str, int]] = {}  # every context of length 0..n-1 -> its counts
        for h, following in counts.items():
            for k in range(len(h) + 1):  # h and each shorter suffix h[k:]
                merged = self.next.setdefault(h[k:], {})
                for c, n in following.items():
                    merged[c] = merged.get(c, 0) + n
        total, types = sum(self.next.get("", {}).values()), len(self.next.get("", {}))
        # the no-context weight of the uniform share: T(ε)/(C(ε)+T(ε)), 1 when nothing was counted
        self.floor = (types / (total + types) if total else 1.0) / len(self.vocab)
        self.log_floor = math.log(self.floor)
        self._probs: dict[str, dict[str, float]] = {}  # memo: context -> P(· | h)
        self._logs: dict[str, dict[str, float]] = {}  # memo: context -> log P(· | h)

    # ------------------------------------------------------------------------------ building

    @classmethod
    def fit(cls, texts: Iterable[str], order: int = 5, chars: str | None = None) -> CharNGram:
        """Count the n-grams of ``texts`` (one line each). ``chars``: the characters the model
        predicts (default: those of ``texts``); others are context only."""
        texts = list(texts)
        if any(cls.BOS in t or cls.EOS in t for t in texts):
            raise ValueError("training texts must not contain \\x02 or \\x03 (start/end symbols)")
        chars = "".join(sorted(set("".join(texts)))) if chars is None else chars
        known, width = set(chars) | {cls.EOS}, order - 1
        counts: dict[str, dict[str, int]] = {}
        for text in texts:
            padded = cls.BOS * width + text + cls.EOS
            for i in range(width, len(padded)):
                c = padded[i]
                if c in known:
                    following = counts.setdefault(padded[i - width : i], {})
                    following[c] = following.get(c, 0) + 1
        return cls(order, chars, counts)

    def to_dict(self) -> dict:
        """Plain JSON-able description (the highest-order counts): :meth:`from_dict` rebuilds it."""
        return {
            "format": FORMAT,
            "order": self.order,
            "chars": self.chars,
            "bos": self.BOS,
            "eos": self.EOS,
            "counts": {h: dict(sorted(f.items())) for h, f in sorted(self.counts.items())},
        }

    @classmethod
    def from_dict(cls, d: dict) -> CharNGram:
        """The model :meth:`to_dict` described; ``ValueError`` for anything else."""
        try:
            if d.get("format") != FORMAT or d["bos"] != cls.BOS or d["eos"] != cls.EOS:
                raise ValueError(f"not a {FORMAT} description")
            order, chars = int(d["order"]), str(d["chars"])
            counts = {
                str(h): {str(c): int(n) for c, n in f.items()} for h, f in d["counts"].items()
            }
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not a {FORMAT} description ({e!r})") from None
        if any(len(h) != order - 1 for h in counts):
            raise ValueError(f"{FORMAT}: every context must have order - 1 = {order - 1} symbols")
        return cls(order, chars, counts)

    # ----------------------------------------------------------------------------- scoring

    def context(self, text: str) -> str:
        """The ``n - 1`` symbols before the next character of ``text`` (start-padded)."""
        width = self.order - 1
        return (self.BOS * width + text)[len(text) :] if width else ""

    def _dist(self, h: str) -> dict[str, float]:
        """``{c: P(c | h)}`` over the vocabulary (the equations above), memoised per context."""
        found = self._probs.get(h)
        if found is not None:
            return found
        following = self.next.get(h)
        if h and not following:
            probs = self._dist(h[1:])  # unseen context: P(c | h) = P(c | h⁻)
        elif h:
            n, t, lower = sum(following.values()), len(following), self._dist(h[1:])
            probs = {c: (following.get(c, 0) + t * lower[c]) / (n + t) for c in self.vocab}
        elif following:
            n, t, v = sum(following.values()), len(following), len(self.vocab)
            probs = {c: (following.get(c, 0) + t / v) / (n + t) for c in self.vocab}
        else:
            probs = dict.fromkeys(self.vocab, 1 / len(self.vocab))  # nothing counted: uniform
        return self._remember(self._probs, h, probs)

    def _log_dist(self, h: str) -> dict[str, float]:
        """``{c: log P(c | h)}``, memoised per context."""
        found = self._logs.get(h)
        if found is not None:
            return found
        return self._remember(self._logs, h, {c: math.log(p) for c, p in self._dist(h).items()})

    def _remember(self, memo: dict, key, value):
        if len(memo) >= self.max_cache:
            memo.clear()
        memo[key] = value
        return value

    def log_prob(self, context: str, char: str) -> float:
        """``log P(char | context)`` (natural log); ``context`` is the text before ``char`` (only
        its last ``n - 1`` characters count; start symbols pad a short one), ``char`` may be
        :attr:`EOS`; a character outside the model's gets the floor (see the module)."""
        return self._log_dist(self.context(context)).get(char, self.log_floor)

    def score(self, text: str) -> float:
        """``log P(text ⟨/s⟩) = Σ_i log P(c_i | c_<i) + log P(⟨/s⟩ | text)``."""
        return sum(self.log_prob(text[:i], c) for i, c in enumerate(text)) + self.log_prob(
            text, self.EOS
        )

    def ctc_scorer(self, charset: Sequence[str]) -> Callable[[tuple[int, ...], int | None], float]:
        """``lm(prefix, c) = log P(c | prefix)`` over CTC class indices (``charset[i - 1]`` is
        class ``i``; ``c = None`` asks for the end of line), as
        :func:`lstmvision.nn.ctc.prefix_beam_search` wants it; memoised per context of ``n - 1``
        classes."""
        width, symbols = (
            self.order - 1,
            [self.EOS, *charset],
        )  # class 0 (blank) never asked: EOS stands in
        memo: dict[tuple[int, ...], list[float]] = {}

        def lm(prefix: tuple[int, ...], c: int | None) -> float:
            key = prefix[-width:] if width else ()
            row = memo.get(key)
            if row is None:
                dist = self._log_dist(self.context("".join(symbols[i] for i in key)))
                row = self._remember(
                    memo, key, [dist.get(s, self.log_floor) for s in symbols]
                )  # [0]: end
            return row[0 if c is None else c]

        return lm


@dataclass
class LineLM:
    """A character n-gram and the shallow-fusion weights tuned for one recogniser: a text-line
    run's ``lm.json`` (plain JSON: the counts, the weights, how they were chosen)."""

    ngram: CharNGram
    lm_weight: float = 0.0
    length_bonus: float = 0.0
    info: dict = field(default_factory=dict)  # beam, validation CER, the tuning grid, lines counted
    _scorers: dict = field(default_factory=dict, repr=False)

    def fusion(self, charset: str) -> dict:
        """Keyword arguments of :func:`~lstmvision.nn.ctc.prefix_beam_search` for a model with
        ``charset`` (none when both weights are 0: plain beam search)."""
        if self.lm_weight == 0.0 and self.length_bonus == 0.0:
            return {}
        if charset not in self._scorers:
            self._scorers[charset] = self.ngram.ctc_scorer(charset)
        return {
            "lm": self._scorers[charset],
            "lm_weight": self.lm_weight,
            "length_bonus": self.length_bonus,
        }

    def save(self, path: Path) -> Path:
        """Write the JSON file (atomically: a crash never leaves half of it)."""
        path = Path(path)
        data = {
            "lm_weight": self.lm_weight,
            "length_bonus": self.length_bonus,
            **self.info,
            "ngram": self.ngram.to_dict(),
        }
        return write_text(path, json.dumps(data, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: Path) -> LineLM:
        """The model :meth:`save` wrote; ``ValueError`` naming ``path`` for anything else."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            ngram = CharNGram.from_dict(data.pop("ngram"))
            weight, bonus = float(data.pop("lm_weight")), float(data.pop("length_bonus"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{path}: not a textline language model ({e})") from None
        return cls(ngram, weight, bonus, data)
