"""Text-line images and their transcriptions: loaders, height normalisation, charsets (floor 1).

Layouts read by :func:`read_line_folder` (a user's own lines, or the shared data sets):

* ``labels.tsv`` of ``file<TAB>text`` lines, the files relative to a ``lines/`` folder beside it
  (or to the tsv's folder): ``../shared/data/lines-bronod``;
* images with a ``.gt.txt`` beside each (``010001.bin.png`` + ``010001.gt.txt``), searched
  recursively: ``../shared/data/lines-uw3``;
* PAGE XML: :func:`read_page_xml` gives the line regions (bounding box of ``Coords``) and their
  ``TextEquiv``; :func:`write_page_xml` fills the ``TextEquiv`` back in, and
  :func:`transcribe_page_xml` does both around a recogniser.

Per-line results of a recogniser (:func:`line_result`, :func:`write_line_results`) are a CSV,
worst line first. Batching (augmentation, padding, width batches):
:mod:`lstmvision.data.line_batches`.

Line images become float tensors ``(height, W)`` in [0, 1] with **ink bright on a dark
background** (0 = paper), so zero padding and affine fills are blank paper.
"""

from __future__ import annotations

import csv
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lstmvision.data.file_checks import file_problem, one_line
from lstmvision.data.images import open_image, to_grey
from lstmvision.errors import DataError
from lstmvision.files import atomic_open, atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
BLANK = 0  # CTC blank index; characters are 1..len(charset)


@dataclass(frozen=True)
class Line:
    """One text line: its image file (or a page crop ``box = (x0, y0, x1, y1)``) and transcription.
    ``draw`` (synthetic lines, :mod:`lstmvision.data.synth_lines`) makes the image instead of
    reading ``image``, which then only names the line."""

    image: Path
    text: str
    box: tuple[int, int, int, int] | None = None
    id: str = ""
    draw: Callable[[], Image.Image] | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.id or self.image.name


def normalize_text(text: str) -> str:
    """Unicode NFC (``e`` + combining accent == ``é``), surrounding whitespace stripped."""
    return unicodedata.normalize("NFC", text).strip()


# ----------------------------------------------------------------------------------- charsets


class Charset:
    """Characters <-> indices ``1..n`` (0 is the CTC blank). Unknown characters are dropped by
    :meth:`encode` and counted in :attr:`unknown` (a Counter), never an error."""

    def __init__(self, chars: str):
        if len(set(chars)) != len(chars):
            raise ValueError("charset has repeated characters")
        self.chars = chars
        self.index = {c: i + 1 for i, c in enumerate(chars)}
        self.unknown: Counter = Counter()

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> Charset:
        return cls("".join(sorted(set("".join(texts)))))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def num_classes(self) -> int:
        """Characters + the blank."""
        return len(self.chars) + 1

    def count_unknown(self, text: str) -> int:
        return sum(1 for c in text if c not in self.index)

    def encode(self, text: str) -> list[int]:
        missing = [c for c in text if c not in self.index]
        self.unknown.update(missing)
        return [self.index[c] for c in text if c in self.index]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.chars[i - 1] for i in ids if 0 < i <= len(self.chars))


# ------------------------------------------------------------------------------------- images


def line_tensor(
    image: Image.Image | np.ndarray, height: int, max_width: int = 6000
) -> torch.Tensor:
    """A line image (any PIL mode: colour, 16-bit, alpha; or a grey array in [0, 1]) -> ``(height,
    W)`` float in [0, 1], ink bright (dark text on light paper is inverted; the polarity is
    guessed from the median, which is paper). The aspect ratio is kept (``W >= 1``); a line wider
    than ``max_width`` after scaling is squeezed to it."""
    grey = image if isinstance(image, np.ndarray) else to_grey(image)  # (h, w) in [0, 1]
    if grey.ndim != 2 or grey.size == 0:
        raise ValueError(f"not a 2-D image: shape {grey.shape}")
    if np.median(grey) > 0.5:
        grey = 1.0 - grey  # dark ink on light paper -> ink bright, paper 0
    h, w = grey.shape
    width = min(max_width, max(1, round(w * height / h)))
    im = Image.fromarray((grey * 255).round().astype(np.uint8))
    if (w, h) != (width, height):
        im = im.resize((width, height), Image.BILINEAR if h > height else Image.BICUBIC)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)


def load_line(line: Line, height: int, page_cache: dict | None = None) -> torch.Tensor:
    """The image of ``line`` (a file, a crop of a page, or drawn) as :func:`line_tensor` gives
    it."""
    if line.draw is not None:
        image = line.draw()
    elif line.box is None:
        image = open_image(line.image)
    else:
        page = page_cache.get(line.image) if page_cache is not None else None
        if page is None:
            page = open_image(line.image)
            if page_cache is not None:
                page_cache[line.image] = page
        image = page.crop(line.box)
    try:
        return line_tensor(image, height)
    except ValueError as e:
        raise DataError(f"{one_line(line.image)}: {e}") from None


# ------------------------------------------------------------------------------------ folders


def read_labels_tsv(path: Path) -> list[Line]:
    """``file<TAB>text`` lines; files relative to ``lines/`` beside the tsv if it exists, else to
    the tsv's folder. A line without a tab, or a named image that does not exist, is an error."""
    path = Path(path)
    base = path.parent / "lines" if (path.parent / "lines").is_dir() else path.parent
    lines = []
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable UTF-8 labels file ({e})") from None
    for number, row in enumerate(content.splitlines(), 1):
        if not row.strip():
            continue
        if "\t" not in row:
            raise DataError(f"{path}:{number}: expected file<TAB>text, found no tab")
        name, text = row.split("\t", 1)
        image = base / name.strip()
        problem = file_problem(image, "no such image", "an image file")
        if problem:
            raise DataError(f"{one_line(image)}: {problem} (named on line {number} of {path})")
        lines.append(Line(image, normalize_text(text)))
    if not lines:
        raise DataError(f"{path}: no labelled lines")
    return lines


def _gt_image(gt: Path) -> Path | None:
    stem = gt.name[: -len(".gt.txt")]
    for candidate in sorted(gt.parent.glob(glob_escape(stem) + ".*")):
        if candidate.suffix.lower() in IMAGE_SUFFIXES and candidate.name != gt.name:
            return candidate
    return None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)


def read_gt_folder(folder: Path) -> list[Line]:
    """Every ``NAME.gt.txt`` under ``folder`` (recursively) with the image ``NAME.<png|jpg|...>``
    beside it (``NAME`` may itself have dots: ``010001.bin.png``)."""
    folder = Path(folder)
    lines = []
    for gt in sorted(folder.rglob("*.gt.txt")):
        image = _gt_image(gt)
        if image is None:
            stem = one_line(gt.name[: -len(".gt.txt")])
            raise DataError(f"{one_line(gt)}: no image beside it (expected {stem}.png or .jpg)")
        try:
            text = gt.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{one_line(gt)}: not a readable UTF-8 transcription ({e})") from None
        lines.append(Line(image, normalize_text(text.replace("\n", " "))))
    return lines


def read_line_folder(folder: Path) -> list[Line]:
    """Lines of a folder in any of the generic layouts (labels.tsv, .gt.txt files, PAGE XML
    pages)."""
    folder = Path(folder)
    if folder.is_file() and folder.suffix == ".tsv":
        return read_labels_tsv(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of text lines")
    if (folder / "labels.tsv").is_file():
        return read_labels_tsv(folder / "labels.tsv")
    lines = read_gt_folder(folder)
    if not lines:
        for xml in sorted(folder.rglob("*.xml")):
            lines.extend(ln for ln in read_page_xml(xml) if ln.text)
    if not lines:
        raise DataError(
            f"{folder}: no text lines found (expected labels.tsv with a lines/ folder, "
            "NAME.png + NAME.gt.txt files, or PAGE XML with its page images)"
        )
    return lines


# ------------------------------------------------------------------------------------ PAGE XML


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(node: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in node if _local(c.tag) == name]


def _parse_page_xml(xml: Path) -> ET.ElementTree:
    try:
        return ET.parse(xml)
    except FileNotFoundError:
        raise DataError(f"{xml}: no such file") from None
    except (ET.ParseError, OSError, UnicodeDecodeError, LookupError) as e:
        # LookupError: the XML declaration names an encoding Python does not know
        raise DataError(f"{xml}: not well-formed XML ({e})") from None


def _text_lines(tree: ET.ElementTree) -> list[ET.Element]:
    return [n for n in tree.iter() if _local(n.tag) == "TextLine"]


def _box(line: ET.Element, xml: Path, size: tuple[int, int] | None) -> tuple[int, int, int, int]:
    coords = _children(line, "Coords")
    ident = one_line(line.get("id", "?"))
    if not coords:
        raise DataError(f"{xml}: TextLine {ident} has no Coords")
    points = coords[0].get("points")
    try:
        if points is not None:
            xy = [tuple(map(float, p.split(","))) for p in points.split()]
        else:  # PAGE 2010: <Point x= y=/>
            xy = [
                (float(p.get("x")), float(p.get("y")))
                for p in coords[0]
                if _local(p.tag) == "Point"
            ]
        xs, ys = [p[0] for p in xy], [p[1] for p in xy]
        box = (int(min(xs)), int(min(ys)), int(np.ceil(max(xs))) + 1, int(np.ceil(max(ys))) + 1)
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: int(inf)
        raise DataError(f"{xml}: TextLine {ident} has malformed Coords points {points!r}") from None
    if size is not None:
        box = (max(0, box[0]), max(0, box[1]), min(size[0], box[2]), min(size[1], box[3]))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise DataError(f"{xml}: TextLine {ident} has an empty region {box}")
    return box


def _line_text(line: ET.Element) -> str:
    for equiv in _children(line, "TextEquiv"):
        for uni in _children(equiv, "Unicode"):
            return normalize_text(uni.text or "")
    return ""


def _page_image(tree: ET.ElementTree, xml: Path, image: Path | None) -> Path:
    if image is not None:
        return Path(image)
    pages = [n for n in tree.iter() if _local(n.tag) == "Page"]
    name = pages[0].get("imageFilename") if pages else None
    if not name:
        raise DataError(f"{xml}: no Page imageFilename; name the page image")
    return xml.parent / name


def read_page_xml(xml: Path, image: Path | None = None) -> list[Line]:
    """The ``TextLine`` regions of a PAGE XML file as lines cropping ``image`` (default: the
    Page's ``imageFilename`` beside the xml); text from each line's ``TextEquiv/Unicode`` (or
    "")."""
    xml = Path(xml)
    tree = _parse_page_xml(xml)
    if _local(tree.getroot().tag) != "PcGts":
        raise DataError(
            f"{xml}: not a PAGE XML file (root <{_local(tree.getroot().tag)}>, expected <PcGts>)"
        )
    page = _page_image(tree, xml, image)
    problem = file_problem(page, "no such page image", "an image file")
    if problem:
        raise DataError(f"{one_line(page)}: {problem} (named by {xml})")
    size = open_image(page).size
    return [
        Line(page, _line_text(n), _box(n, xml, size), n.get("id", f"line{i}"))
        for i, n in enumerate(_text_lines(tree))
    ]


def write_page_xml(xml: Path, texts: dict[str, str], out: Path) -> Path:
    """Copy of ``xml`` with each ``TextLine``'s ``TextEquiv/Unicode`` set to ``texts[line id]``."""
    tree = _parse_page_xml(Path(xml))
    root = tree.getroot()
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    if ns:
        ET.register_namespace("", ns)
    q = (lambda name: f"{{{ns}}}{name}") if ns else (lambda name: name)  # noqa: E731
    for line in _text_lines(tree):
        if line.get("id") not in texts:
            continue
        for old in _children(line, "TextEquiv"):
            line.remove(old)
        equiv = ET.SubElement(line, q("TextEquiv"))
        ET.SubElement(equiv, q("Unicode")).text = texts[line.get("id")]
    with atomic_path(out) as tmp:
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
    return Path(out)


def transcribe_page_xml(
    xml: Path,
    image: Path | None,
    height: int,
    transcribe: Callable[[list[torch.Tensor]], list[str]],
    out: Path | None = None,
) -> list[dict]:
    """Read every ``TextLine`` region of the PAGE XML ``xml`` from ``image`` (default: the one the
    xml names), scaled to ``height``, let ``transcribe`` read the ``(height, W)`` line tensors,
    and write a copy of ``xml`` with those texts as ``TextEquiv`` into the folder ``out`` (default:
    the working folder; ``NAME.transcribed.xml`` where it would overwrite ``xml``). One dict per
    line: ``image``, ``line`` (its id), ``text``, ``page_xml`` (the file written)."""
    xml = Path(xml)
    lines = read_page_xml(xml, Path(image) if image is not None else None)
    cache = {lines[0].image: open_image(lines[0].image)} if lines else {}
    texts = transcribe([load_line(ln, height, cache) for ln in lines])
    target = Path(out or ".") / xml.name
    if target.resolve() == xml.resolve():
        target = target.with_name(xml.stem + ".transcribed.xml")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_page_xml(xml, {ln.id: t for ln, t in zip(lines, texts)}, target)
    return [
        {"image": str(ln.image), "line": ln.id, "text": t, "page_xml": str(target)}
        for ln, t in zip(lines, texts)
    ]


# ---------------------------------------------------------------------------- per-line results


def line_result(name: str, target: str, prediction: str, unknown_chars: int) -> dict:
    """One row of the per-line results: the line's CER (torchmetrics; an empty target scores 1
    for any output, 0 for none) beside its texts."""
    from torchmetrics.functional.text import char_error_rate

    cer = float(char_error_rate(prediction, target)) if target else float(len(prediction) > 0)
    return {
        "line": name,
        "cer": round(cer, 4),
        "target": target,
        "prediction": prediction,
        "unknown_chars": unknown_chars,
    }


def write_line_results(results: list[dict], path: Path) -> Path:
    """Per-line CSV of :func:`line_result` rows, worst lines (highest CER) first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        fields = ["line", "cer", "unknown_chars", "target", "prediction"]
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(sorted(results, key=lambda r: -r["cer"]))
    return path


def worst_lines(results: list[dict], count: int = 5) -> list[str]:
    """One report line for each of the ``count`` :func:`line_result` rows of highest CER."""
    worst = sorted(results, key=lambda r: -r["cer"])[:count]
    return [
        f"worst line {r['line']} cer {r['cer']:.3f}: {r['target']!r} -> {r['prediction']!r}"
        for r in worst
    ]


# -------------------------------------------------------------------------------- data sets


def page_of(line: Line) -> int:
    """bronod: the page is the file name's first number (``0012_004.jpg`` -> 12)."""
    match = re.match(r"\D*(\d+)", line.image.name)
    if not match:
        raise DataError(f"{line.image}: no page number at the start of the file name")
    return int(match.group(1))


def split_by_group(lines: list[Line], groups: list[int]) -> dict[str, list[Line]]:
    """Fixed, documented rule: group ``g % 10 == 0`` -> val, ``g % 10 == 5`` -> test, others train.

    For bronod the group is the page (val pages 10, 20, ..., 90; test pages 5, 15, ..., 85): no
    page has lines on both sides of a split."""
    out: dict[str, list[Line]] = {"train": [], "val": [], "test": []}
    for line, g in zip(lines, groups, strict=True):
        out["val" if g % 10 == 0 else "test" if g % 10 == 5 else "train"].append(line)
    return out


def line_splits(dataset: str, root: Path) -> dict[str, list[Line]]:
    """``{"train", "val", "test"}`` line lists of ``bronod``, ``uw3``, ``iam`` / ``iam-rwth``
    (:mod:`lstmvision.data.iam`) or a folder path.

    * bronod: by page (:func:`split_by_group`), 72 training pages, 9 validation, 9 test.
    * uw3: ``train/`` (every 10th line held out as validation) and the official ``test/``.
    * a folder: ``train/``, ``val/``, ``test/`` subfolders when present (no ``val/``: every 10th
      training line; no ``test/``: the validation lines); otherwise every line by its index.
    """
    if dataset in ("iam", "iam-rwth"):  # IAM's own layout and split lists
        from lstmvision.data.iam import iam_line_splits

        return iam_line_splits(dataset, root)
    if dataset == "bronod":
        folder = Path(root) / "lines-bronod"
        if not (folder / "labels.tsv").is_file():
            raise DataError(
                f"{folder / 'labels.tsv'}: bronod lines not found (expected lines-bronod/ "
                "with labels.tsv and lines/ under the data root; see --data-root)"
            )
        lines = read_labels_tsv(folder / "labels.tsv")
        return split_by_group(lines, [page_of(ln) for ln in lines])
    folder = Path(root) / "lines-uw3" if dataset == "uw3" else Path(dataset)
    problem = file_problem(folder, "no such folder", kind="a folder")
    if problem not in (None, "no such folder", "is a folder, not a folder"):  # e.g. name too long
        name = one_line(str(folder))
        raise DataError(
            f"{name[:60]}{'...' if len(name) > 60 else ''}: not bronod, uw3 or a folder of "
            f"lines ({problem})"
        )
    if dataset == "uw3" and not (folder / "train").is_dir():
        raise DataError(
            f"{folder}: UW3 lines not found (expected train/ and test/ under the data root)"
        )
    if (folder / "train").is_dir():
        train = read_line_folder(folder / "train")
        val = read_line_folder(folder / "val") if (folder / "val").is_dir() else train[9::10]
        if not (folder / "val").is_dir():
            train = [ln for i, ln in enumerate(train) if i % 10 != 9]
        test = read_line_folder(folder / "test") if (folder / "test").is_dir() else val
        return {"train": train, "val": val, "test": test}
    lines = read_line_folder(folder)
    return split_by_group(lines, list(range(1, len(lines) + 1)))
