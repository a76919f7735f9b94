"""Image captioning data: Flickr8k captions, the vocabulary, photos as encoder inputs, and a
cache of a frozen encoder's features (floor 1: the encoder is any callable; no model is imported).

Layouts read here (under the data root):

* ``flickr8k-1k/`` (the shared slice): ``images/*.jpg`` and ``captions.tsv`` with the header
  ``image, split, caption_idx, caption`` (tab-separated; ``split`` is train, dev, test or none).
* ``flickr8k/`` (the full data set as distributed): the photos in ``Flicker8k_Dataset/`` (the
  official archive's spelling), ``Flickr8k_Dataset/`` or ``images/``; the captions in
  ``Flickr8k.token.txt`` (``name.jpg#k<TAB>caption``), beside the official split lists
  ``Flickr_8k.{train,dev,test}Images.txt``, either at the top or in ``Flickr8k_text/``.
* ``flickr8k-karpathy``, ``flickr30k``, ``coco``: Karpathy's split files with the photos
  (:mod:`lstmvision.data.karpathy`).

torchvision's ``Flickr8k``/``Flickr30k`` are not used: they parse other annotation files and carry
no train/dev/test split, which the evaluation here needs. Nothing is downloaded: Flickr8k is
distributed on request under research-only terms, so a missing folder ends with a line saying
where to put it.

Tokenisation (training captions, references and generated captions alike): lower case, then the
runs of ``[a-z0-9]`` (punctuation and apostrophes split words: ``dog's`` -> ``dog s``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lstmvision.data.file_checks import file_problem, one_line
from lstmvision.data.images import open_image, to_grey
from lstmvision.errors import DataError
from lstmvision.files import atomic_open, atomic_path

SPLITS = ("train", "dev", "test")
KARPATHY_DATASETS = ("flickr8k-karpathy", "flickr30k", "coco")
CAPTION_DATASETS = ("flickr8k-1k", "flickr8k", *KARPATHY_DATASETS)
TSV_COLUMNS = ("image", "split", "caption_idx", "caption")
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """``"A dog's ball."`` -> ``["a", "dog", "s", "ball"]``."""
    return _WORD.findall(text.lower())


@dataclass
class Photo:
    """One photo and its reference captions (raw text, as in the data set)."""

    name: str
    path: Path
    split: str
    captions: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------ vocabulary


class Vocabulary:
    """Words <-> ids; ids 0-3 are ``<pad> <start> <end> <unk>``, then words by falling count.

    Built from training captions only (``build``); saved and loaded as a JSON list of words."""

    SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")
    PAD, START, END, UNK = range(4)

    def __init__(self, words: Iterable[str]):
        self.words = list(words)
        if tuple(self.words[:4]) != self.SPECIALS:
            raise DataError(f"a vocabulary must start with {' '.join(self.SPECIALS)}")
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> Vocabulary:
        """Words seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        counts = Counter(w for c in captions for w in tokenize(c))
        kept = sorted(
            (w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls([*cls.SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """``<start> w1 ... wn <end>`` as ids (unknown words -> ``<unk>``)."""
        return [self.START, *(self.index.get(w, self.UNK) for w in tokenize(text)), self.END]

    def decode(self, ids: Iterable[int]) -> str:
        """Words up to the first ``<end>``; ``<pad>`` and ``<start>`` are skipped."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.END:
                break
            if i not in (self.PAD, self.START):
                out.append(self.words[i])
        return " ".join(out)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_open(path, "w", encoding="utf-8") as f:
            json.dump(self.words, f, ensure_ascii=False)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        path = Path(path)
        try:
            words = json.loads(path.read_text(encoding="utf-8"))
        except RecursionError:
            raise DataError(f"{path}: not a vocabulary file (JSON nested too deeply)") from None
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a vocabulary file ({e})") from None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DataError(f"{path}: a vocabulary file is a JSON list of words")
        try:
            return cls(words)
        except DataError as e:
            raise DataError(f"{path}: {e}") from None


# ------------------------------------------------------------------------------------ captions


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    for number, line in enumerate(raw.split(b"\n"), 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{path}: line {number} is not valid UTF-8") from None
    lines = [line for line in raw.decode("utf-8").splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path}: empty captions file")
    return lines


def read_captions_tsv(path: str | Path, images: str | Path) -> list[Photo]:
    """The shared slice's ``captions.tsv`` -> photos in file order, each with its captions."""
    path, images = Path(path), Path(images)
    lines = _read_lines(path)
    header = tuple(c.strip() for c in lines[0].split("\t"))
    if header != TSV_COLUMNS:
        raise DataError(
            f"{path}: line 1 must be the header {' '.join(TSV_COLUMNS)} (tab-separated), "
            f"got {' '.join(header)}"
        )
    photos: dict[str, Photo] = {}
    for number, line in enumerate(lines[1:], 2):
        cells = line.split("\t")
        if len(cells) != 4 or not cells[0].strip() or not cells[3].strip():
            raise DataError(
                f"{path}: line {number} has {len(cells)} columns (or an empty one); "
                f"expected 4: {', '.join(TSV_COLUMNS)}"
            )
        name, split, _, caption = (c.strip() for c in cells)
        if split not in (*SPLITS, "none"):
            raise DataError(
                f"{path}: line {number}: split {split!r} is not train, dev, test or none"
            )
        photo = photos.setdefault(name, Photo(name, images / name, split))
        photo.captions.append(caption)
    return list(photos.values())


def read_flickr8k_tokens(
    path: str | Path, images: str | Path, splits: dict[str, str]
) -> list[Photo]:
    """The official ``Flickr8k.token.txt`` (``name.jpg#k<TAB>caption``) with ``splits``
    (name -> split)."""
    path, images = Path(path), Path(images)
    photos: dict[str, Photo] = {}
    for number, line in enumerate(_read_lines(path), 1):
        key, tab, caption = line.partition("\t")
        name = key.split("#")[0].strip()
        if not tab or not name or not caption.strip():
            raise DataError(f"{path}: line {number} is not `image.jpg#k<TAB>caption`")
        photo = photos.setdefault(name, Photo(name, images / name, splits.get(name, "none")))
        photo.captions.append(caption.strip())
    return list(photos.values())


def _read_split_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: missing split list (the official Flickr_8k.*Images.txt files)")
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.strip()
    ]


def _first_dir(root: Path, names: Iterable[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def load_photos(dataset: str, root: str | Path) -> dict[str, list[Photo]]:
    """``{"train": [...], "dev": [...], "test": [...]}`` of one of ``CAPTION_DATASETS``.

    Every listed photo must exist (checked here, so a broken data set fails before training)."""
    root = Path(root)
    folder = root / dataset
    if dataset == "flickr8k-1k":
        tsv = folder / "captions.tsv"
        if not tsv.is_file():
            raise DataError(
                f"{folder}: Flickr8k slice not found "
                "(expected images/*.jpg and captions.tsv there; "
                "set --data-root or $LSTMVISION_DATA to the folder that holds flickr8k-1k/)"
            )
        photos = read_captions_tsv(tsv, folder / "images")
    elif dataset == "flickr8k":
        text = _first_dir(folder, ["Flickr8k_text"]) or folder
        images = _first_dir(folder, ["Flicker8k_Dataset", "Flickr8k_Dataset", "images", "Images"])
        token = text / "Flickr8k.token.txt"
        if images is None or not token.is_file():
            raise DataError(
                f"{folder}: full Flickr8k not found (expected Flicker8k_Dataset/*.jpg and "
                "Flickr8k.token.txt with the Flickr_8k.*Images.txt split lists, as in the official "
                "archives Flickr8k_Dataset.zip and Flickr8k_text.zip; "
                "research use only, by request)"
            )
        splits = {n: s for s in SPLITS for n in _read_split_list(text / f"Flickr_8k.{s}Images.txt")}
        photos = read_flickr8k_tokens(token, images, splits)
    elif dataset in KARPATHY_DATASETS:  # Karpathy's splits: lstmvision.data.karpathy
        from lstmvision.data.karpathy import read_karpathy

        photos = read_karpathy(dataset, root)
    else:
        raise DataError(
            f"unknown captioning data set {dataset!r}; choose {' or '.join(CAPTION_DATASETS)}"
        )
    by_split = {s: [p for p in photos if p.split == s] for s in SPLITS}
    for split, items in by_split.items():
        if not items:
            raise DataError(f"{folder}: no {split} photos listed")
        problems = [(p.path, file_problem(p.path, "missing photo", "a photo")) for p in items]
        problems = [(path, problem) for path, problem in problems if problem]
        if problems:
            path, problem = problems[0]
            raise DataError(
                f"{one_line(path)}: {problem} "
                f"({len(problems)} of the {split} split's are missing or unreadable)"
            )
    return by_split


# ------------------------------------------------------------------------------------ photos


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB: grey is repeated, 16-bit and float images are rescaled,
    transparent pixels are composited over white, palette and CMYK images converted."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F", "RGBA", "LA", "PA") or (
        im.mode == "P" and "transparency" in im.info
    ):
        grey_only = im.mode in ("I;16", "I;16B", "I;16L", "I", "F", "LA")
        if grey_only:
            grey = (to_grey(im) * 255).round().astype(np.uint8)  # (H, W), scaled and composited
            return Image.fromarray(grey).convert("RGB")
        im = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im).convert(
            "RGB"
        )
    return im.convert("RGB")


def load_photo(path: str | Path, size: int = 224) -> torch.Tensor:
    """A photo file as the encoder's input: uint8 ``(3, size, size)``.

    The whole photo is resized to a square (aspect ratio not kept, nothing cropped away), bicubic;
    a tiny photo is enlarged the same way, a huge one reduced (JPEGs decode at reduced scale first).
    Unreadable or truncated files raise one DataError naming the file."""
    im = to_rgb(open_image(path)).resize((size, size), Image.BICUBIC, reducing_gap=3.0)
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(
        2, 0, 1
    )  # (3, size, size)


def load_photos_tensor(paths: Iterable[Path], size: int = 224) -> torch.Tensor:
    """uint8 ``(N, 3, size, size)``."""
    return torch.stack([load_photo(p, size) for p in paths])


# ------------------------------------------------------------------------------------ feature cache


def file_digest(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


class FeatureCache:
    """Features of a frozen encoder, one float16 tensor per photo file, keyed by the file's SHA-1,
    in one safetensors file per encoder (``tag``), e.g.
    ``~/.cache/lstmvision/features/<tag>.safetensors``.

    ``get(paths, encode)`` returns ``(N, ...)`` float16 features, computing (and adding to the
    file) only those of photos not cached yet; ``encode`` maps a uint8 ``(B, 3, S, S)`` batch to
    features. The file is replaced atomically, so an interrupted run never leaves a broken cache."""

    def __init__(self, folder: str | Path, tag: str, image_size: int = 224, batch_size: int = 32):
        self.path = Path(folder) / f"{tag}.safetensors"
        self.image_size, self.batch_size = image_size, batch_size

    def _load(self) -> dict[str, torch.Tensor]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not self.path.is_file():
            return {}
        try:
            return load_file(self.path)
        except (SafetensorError, OSError, ValueError):
            return {}  # a broken cache is rebuilt, never trusted

    def get(
        self,
        paths: list[Path],
        encode: Callable[[torch.Tensor], torch.Tensor],
        progress: Callable[[str], None] | None = None,
    ) -> torch.Tensor:
        from safetensors.torch import save_file

        keys = [file_digest(p) for p in paths]
        cached = self._load()
        todo = sorted({k: p for k, p in zip(keys, paths) if k not in cached}.items())
        if todo and progress:
            progress(f"encoding {len(todo)} photos once (cache: {self.path})")
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            with torch.no_grad():
                feats = encode(load_photos_tensor([p for _, p in chunk], self.image_size))
            cached.update({k: f.to(torch.float16).contiguous() for (k, _), f in zip(chunk, feats)})
        if todo:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path) as tmp:
                save_file(cached, tmp)
        return torch.stack([cached[k] for k in keys])  # float16


def write_captions_csv(path: str | Path, rows: list[dict]) -> Path:
    """Per-image captions (columns: the keys of the first row), written atomically."""
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["image", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return path
