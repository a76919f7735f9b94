"""Hostile and broken files: property-based tests (hypothesis) over every loader of user files.

Each test starts from small valid files written here (IDX, HDF5, line folders, PAGE XML,
captions.tsv, a vocabulary, a YAML config, a run folder's model.json and model.safetensors,
images, videos, an .npz of sequences, a text corpus, UCF101 lists) and feeds the loader broken
copies: truncations, bit flips, overwritten, inserted and deleted byte runs, wholly random bytes,
and for text formats random edits (lines and tokens dropped, repeated or replaced by unicode
junk, a byte-order mark), plus random but well-formed structures (HDF5 layouts, PAGE XML
contents, config values, model kwargs, tensors).

The property: the loader returns normally, or raises an :class:`LstmvisionError` whose message
is one line naming the file; never another exception type. The runs are seeded
(``derandomize``): ``FAST`` cases per loader in the fast tier, ``SLOW`` in the recipe tier
(``pytest -m recipe``: the ``slow`` marker would run them in CI too). The catalogue of cases and
messages is in docs/faults.md.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import h5py
import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save_file

from lstmvision.data.captions import Vocabulary, load_photo, load_photos, read_captions_tsv
from lstmvision.data.digits import load_split
from lstmvision.data.idx import read_idx
from lstmvision.data.images import load_grey_image, open_image
from lstmvision.data.lines import (
    Line,
    load_line,
    read_gt_folder,
    read_labels_tsv,
    read_line_folder,
    read_page_xml,
)
from lstmvision.data.text import load_polarity, read_text
from lstmvision.data.video import (
    load_npz_sequences,
    probe,
    read_clip,
    read_frames,
    ucf101_index,
)
from lstmvision.errors import DataError, LstmvisionError
from lstmvision.models import get_model
from lstmvision.tasks.config import load_yaml_mapping, resolve_config
from lstmvision.tasks.run_folder import load_model, read_weights
from lstmvision.tasks.textline import TextLineConfig, TextLineTask

FAST, SLOW = 300, 3000  # cases per loader: fast tier, recipe tier

TIERS = pytest.mark.parametrize(
    "cases",
    [pytest.param(FAST, id="fast"), pytest.param(SLOW, id="slow", marks=pytest.mark.recipe)],
)


def fuzz(cases: int):
    """Seeded hypothesis settings: the same cases on every run, nothing saved between runs."""
    return settings(
        max_examples=cases,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


def assert_clean(call, named) -> object | None:
    """``call()``'s result, or ``None`` when it raised an LstmvisionError of one line that
    names ``named`` (a file, or the folder of the files the loader was given). Any other
    exception propagates: hypothesis reports it as the failing case."""
    try:
        return call()
    except LstmvisionError as e:
        message = str(e)
        assert len(message.splitlines()) == 1, f"not one line: {message!r}"
        assert str(named) in message, f"does not name {named}: {message!r}"
        return None


@contextlib.contextmanager
def fresh_folder(tmp_path: Path):
    """A new empty folder for one case, removed afterwards."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------------- mutations

# Values that break parsers: empty, separators, numbers out of range, control and odd unicode.
JUNK = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=12),
    st.sampled_from(
        [
            "",
            "\t",
            "\t\t",
            " ",
            "nan",
            "inf",
            "-inf",
            "-1",
            "0",
            "1e400",
            "1" + "0" * 400,
            "\x00",
            "é",
            "\u202e",
            "\U0001d518",
            "\ufeff",
            "\u2028",
            "..",
            "/",
            "*",
            "[",
            "]",
            "a" * 300,
            "&amp;",
            "&undefined;",
            "<",
            "\x85",
        ]
    ),
)


@st.composite
def broken_bytes(draw, valid: bytes) -> bytes:
    """``valid`` after 1-3 byte mutations (positions biased to the header), or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=256))
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 3))):
        n = len(data)
        kind = draw(st.sampled_from(("truncate", "flip", "overwrite", "insert", "delete")))
        if n == 0 or kind == "insert":
            at = draw(st.integers(0, n))
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
            continue
        at = draw(st.one_of(st.integers(0, min(n - 1, 64)), st.integers(0, n - 1)))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
            for _ in range(draw(st.integers(0, 7))):
                data[draw(st.integers(0, n - 1))] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            junk = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(junk)] = junk
        else:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


_TOKEN = re.compile(r"\w+|[^\w\s]")


@st.composite
def edited_text(draw, valid: str) -> str:
    """``valid`` after 1-3 text edits: a line dropped, repeated or replaced, a token (a word, a
    number or a punctuation mark) dropped or replaced by junk, junk inserted, the text cut."""
    text = valid
    for _ in range(draw(st.integers(1, 3))):
        lines = text.split("\n")
        kind = draw(
            st.sampled_from(
                ("drop_line", "repeat_line", "junk_line", "drop_token", "junk_token", "insert")
                + ("cut", "tab")
            )
        )
        i = draw(st.integers(0, len(lines) - 1))
        tokens = list(_TOKEN.finditer(text))
        if kind == "drop_line":
            del lines[i]
            text = "\n".join(lines)
        elif kind == "repeat_line":
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif kind == "junk_line":
            lines[i] = draw(JUNK)
            text = "\n".join(lines)
        elif kind in ("drop_token", "junk_token") and tokens:
            m = tokens[draw(st.integers(0, len(tokens) - 1))]
            new = "" if kind == "drop_token" else draw(JUNK)
            text = text[: m.start()] + new + text[m.end() :]
        elif kind == "tab":  # a column separator removed or added
            at = draw(st.integers(0, len(text)))
            text = (
                text.replace("\t", " ", 1) if draw(st.booleans()) else text[:at] + "\t" + text[at:]
            )
        elif kind == "cut":
            text = text[: draw(st.integers(0, len(text)))]
        else:
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(JUNK) + text[at:]
    if draw(st.integers(0, 7)) == 0:
        text = "\ufeff" + text
    return text


def broken_text(valid: str):
    """Text edits or byte mutations of ``valid``, as the bytes of a file."""
    return st.one_of(
        edited_text(valid).map(lambda t: t.encode("utf-8")),
        broken_bytes(valid.encode("utf-8")),
    )


# -------------------------------------------------------------------------------- valid files


def idx_bytes(array: np.ndarray, type_byte: int) -> bytes:
    dims = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return bytes([0, 0, type_byte, array.ndim]) + dims + array.tobytes()


VALID_IDX = {
    "images": idx_bytes(np.arange(60, dtype=">u1").reshape(3, 4, 5), 0x08),
    "labels": idx_bytes(np.array([3, 1, 4], dtype=">u1"), 0x08),
    "floats": idx_bytes(np.linspace(-1, 1, 6, dtype=">f4").reshape(2, 3), 0x0D),
}


def grey_picture(height: int = 24, width: int = 32) -> np.ndarray:
    """Dark strokes on light paper, uint8 (height, width)."""
    a = np.full((height, width), 230, np.uint8)
    a[height // 4 : 3 * height // 4, width // 5 : width // 5 + 3] = 20
    a[height // 2, width // 3 : 4 * width // 5] = 40
    return a


def image_bytes(fmt: str) -> bytes:
    """A small valid image file of the format ``fmt`` (a PIL format name and mode)."""
    grey = grey_picture()
    rgb = np.stack([grey, grey[::-1], 255 - grey], -1)
    im = {
        "png-L": Image.fromarray(grey),
        "png-RGBA": Image.fromarray(np.dstack([rgb, grey])),
        "png-I;16": Image.fromarray(grey.astype(np.uint16) * 257),
        "jpeg-RGB": Image.fromarray(rgb),
        "gif-P": Image.fromarray(rgb).convert("P"),
        "bmp-RGB": Image.fromarray(rgb),
        "tiff-L": Image.fromarray(grey),
        "webp-RGB": Image.fromarray(rgb),
    }[fmt]
    import io

    buffer = io.BytesIO()
    im.save(buffer, format=fmt.split("-")[0].upper())
    return buffer.getvalue()


IMAGE_FORMATS = ("png-L", "png-RGBA", "png-I;16", "jpeg-RGB", "gif-P", "bmp-RGB", "tiff-L")
IMAGE_FORMATS += ("webp-RGB",)


# ------------------------------------------------------------------------------------------ IDX


@st.composite
def idx_headers(draw) -> bytes:
    """Well-formed magic, random type, dimensions (some huge) and payload."""
    type_byte = draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x0A, 0xFF]))
    ndim = draw(st.integers(0, 5))
    big = st.sampled_from([2**16, 2**31, 2**32 - 1, 2**31 + 1])
    dims = draw(st.lists(st.integers(0, 6) | big, min_size=ndim, max_size=ndim))
    header = bytes([0, 0, type_byte, ndim]) + b"".join(n.to_bytes(4, "big") for n in dims)
    items = int(np.prod(dims, dtype=object)) if dims else 1
    if items <= 4096 and draw(st.booleans()):  # the payload the header promises
        size = {0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(type_byte, 1) * items
        return header + draw(st.binary(min_size=size, max_size=size))
    return header + draw(st.binary(max_size=64))


@TIERS
def test_idx_files(tmp_path, cases):
    """IDX files (MNIST's format), plain and .gz, as read_idx and the MNIST loader see them."""
    valid = st.sampled_from(sorted(VALID_IDX)).flatmap(lambda k: broken_bytes(VALID_IDX[k]))
    plain, packed = tmp_path / "data-idx3-ubyte", tmp_path / "data-idx3-ubyte.gz"

    @fuzz(cases)
    @given(
        blob=st.one_of(valid, idx_headers()),
        how=st.sampled_from(["plain", "gz", "broken gz"]),
        ndim=st.sampled_from([None, 1, 3]),
    )
    def check(blob, how, ndim):
        if how == "plain":
            path = plain
            path.write_bytes(blob)
        else:
            path = packed
            path.write_bytes(gzip.compress(blob, mtime=0) if how == "gz" else blob)
        assert_clean(lambda: read_idx(path, expect_ndim=ndim), path)

    check()
    packed.write_bytes(gzip.compress(VALID_IDX["images"], mtime=0))
    assert read_idx(packed).shape == (3, 4, 5)  # the valid file still reads


@st.composite
def gz_of_broken(draw, valid: bytes) -> bytes:
    return draw(broken_bytes(gzip.compress(valid, mtime=0)))


@TIERS
def test_mnist_folder_of_broken_idx_files(tmp_path, cases):
    """load_split over a shared-layout mnist/ folder whose four .gz files are broken copies."""
    images = idx_bytes(np.zeros((2, 28, 28), ">u1"), 0x08)
    labels = idx_bytes(np.array([7, 2], ">u1"), 0x08)
    folder = tmp_path / "mnist"
    folder.mkdir()

    @fuzz(cases // 2)
    @given(
        image_blob=st.one_of(st.just(images), broken_bytes(images), gz_of_broken(images)),
        label_blob=st.one_of(st.just(labels), broken_bytes(labels), gz_of_broken(labels)),
    )
    def check(image_blob, label_blob):
        for prefix in ("train", "t10k"):
            for stem, blob in (("images-idx3", image_blob), ("labels-idx1", label_blob)):
                gz = blob if blob[:2] == b"\x1f\x8b" else gzip.compress(blob, mtime=0)
                (folder / f"{prefix}-{stem}-ubyte.gz").write_bytes(gz)
        assert_clean(lambda: load_split("mnist", tmp_path, "test"), tmp_path)

    check()


# ----------------------------------------------------------------------------------------- HDF5


def write_usps(path: Path, layout: dict) -> None:
    """``layout``: split -> None (absent), an array (a dataset where a group belongs), or
    ``{"data": array, "target": array}`` (either may be absent)."""
    with h5py.File(path, "w") as f:
        for split, item in layout.items():
            if item is None:
                continue
            if isinstance(item, np.ndarray):
                f.create_dataset(split, data=item)
                continue
            group = f.create_group(split)
            for name, array in item.items():
                group.create_dataset(name, data=array)


def valid_usps_layout() -> dict:
    rng = np.random.default_rng(0)
    return {
        split: {
            "data": rng.random((n, 256)).astype(np.float32),
            "target": (np.arange(n) % 10).astype(np.int64),
        }
        for split, n in (("train", 6), ("test", 4))
    }


@st.composite
def h5_arrays(draw) -> np.ndarray:
    """Small arrays of any shape and a mix of dtypes, values in and out of range."""
    n = draw(st.integers(0, 4))
    shape = draw(st.sampled_from([(n, 256), (n, 16, 16), (n, 255), (n,), (n, 1), ()]))
    kind = draw(st.sampled_from(["f4", "f8", "u1", "u2", "i8", "?", "c8", "S3", "str"]))
    fill = draw(st.sampled_from([0.5, 1.0, 0.0, -1.0, 3.0, 11.0, 300.0, np.nan, np.inf]))
    if kind == "str":
        return np.array(np.full(shape, "x"), dtype=h5py.string_dtype())
    if kind == "S3":
        return np.full(shape, b"abc", dtype="S3")
    with np.errstate(invalid="ignore", over="ignore"):
        return np.full(shape, fill).astype(kind)


@st.composite
def usps_layouts(draw) -> dict:
    layout = valid_usps_layout()
    for split in ("train", "test"):
        kind = draw(st.sampled_from(["keep", "arrays", "missing", "dataset", "partial"]))
        if kind == "arrays":
            layout[split] = {"data": draw(h5_arrays()), "target": draw(h5_arrays())}
        elif kind == "missing":
            layout[split] = None
        elif kind == "dataset":
            layout[split] = draw(h5_arrays())
        elif kind == "partial":
            del layout[split][draw(st.sampled_from(["data", "target"]))]
    return layout


@TIERS
def test_usps_hdf5(tmp_path, cases):
    """usps/usps.h5: broken bytes of a valid file, and valid HDF5 files of the wrong layout."""
    (tmp_path / "usps").mkdir()
    path = tmp_path / "usps" / "usps.h5"
    write_usps(path, valid_usps_layout())
    valid = path.read_bytes()

    @fuzz(cases)
    @given(
        case=st.one_of(broken_bytes(valid), usps_layouts()),
        split=st.sampled_from(["train", "test"]),
    )
    def check(case, split):
        if isinstance(case, bytes):
            path.write_bytes(case)
        else:
            path.unlink(missing_ok=True)
            write_usps(path, case)
        assert_clean(lambda: load_split("usps", tmp_path, split), path)

    check()


# ---------------------------------------------------------------------------------- text lines


def write_line_image(path: Path, width: int = 40) -> None:
    Image.fromarray(grey_picture(12, width)).save(path, format="PNG")


VALID_LABELS = "a.png\tfirst line\nb.png\tsecond, é line\n\nsub/c.png\t  third\t(tab kept)\n"


@TIERS
def test_labels_tsv_folder(tmp_path, cases):
    """labels.tsv beside lines/: read_labels_tsv, read_line_folder and load_line of each line."""

    @fuzz(cases)
    @given(blob=broken_text(VALID_LABELS))
    def check(blob):
        with fresh_folder(tmp_path) as folder:
            (folder / "lines" / "sub").mkdir(parents=True)
            for name in ("a.png", "b.png", "sub/c.png"):
                write_line_image(folder / "lines" / name)
            (folder / "labels.tsv").write_bytes(blob)
            assert_clean(lambda: read_labels_tsv(folder / "labels.tsv"), folder)
            lines = assert_clean(lambda: read_line_folder(folder), folder) or []
            for line in lines:
                assert_clean(lambda line=line: load_line(line, 16), folder)

    check()


@st.composite
def file_stems(draw) -> str:
    """File-name stems as users have them: dots, spaces, glob characters, unicode."""
    stem = draw(st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1))
    assume(len(stem.encode("utf-8")) <= 200 and stem not in (".", ".."))
    return stem


@TIERS
def test_gt_txt_folder(tmp_path, cases):
    """NAME.png + NAME.gt.txt pairs: broken transcriptions, odd names, a missing image."""

    @fuzz(cases)
    @given(
        blob=broken_text("The quick brown fox\n"),
        stem=st.one_of(st.just("010001.bin"), file_stems()),
        suffix=st.sampled_from([".png", ".PNG", ".jpg", ".txt", None]),
    )
    def check(blob, stem, suffix):
        with fresh_folder(tmp_path) as folder:
            write_line_image(folder / "010002.bin.png")
            (folder / "010002.gt.txt").write_text("Second line\n", encoding="utf-8")
            (folder / f"{stem}.gt.txt").write_bytes(blob)
            if suffix is not None:
                write_line_image(folder / f"{stem}{suffix}")
            assert_clean(lambda: read_gt_folder(folder), folder)
            lines = assert_clean(lambda: read_line_folder(folder), folder) or []
            for line in lines:
                assert line.image.parent == folder and line.image.name != f"{stem}.gt.txt"
                assert_clean(lambda line=line: load_line(line, 16), folder)

    check()


VALID_PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">
  <Page imageFilename="page.png" imageWidth="120" imageHeight="40">
    <TextRegion id="r1">
      <Coords points="0,0 119,0 119,39 0,39"/>
      <TextLine id="l1">
        <Coords points="2,2 110,2 110,18 2,18"/>
        <TextEquiv><Unicode>first line</Unicode></TextEquiv>
      </TextLine>
      <TextLine id="l2">
        <Coords><Point x="3" y="21"/><Point x="100" y="21"/><Point x="100" y="37"/></Coords>
        <TextEquiv><Unicode>second &amp; last</Unicode></TextEquiv>
      </TextLine>
    </TextRegion>
  </Page>
</PcGts>
"""


# text XML can hold (no control characters but tab and newline), odd values included
XML_TEXT = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=12),
    st.sampled_from(["", "\t", "\n", "a" * 300, "..", "/", "\u202e", "\U0001d518"]),
)
NUMBERS = st.one_of(
    st.integers(-50, 300).map(str),
    st.floats().map(repr),
    st.sampled_from(["inf", "-inf", "nan", "1e400", "", " ", "1,2", "0x10"]),
    XML_TEXT,
)
POINTS = st.one_of(
    st.lists(st.tuples(NUMBERS, NUMBERS), max_size=4).map(
        lambda ps: " ".join(f"{x},{y}" for x, y in ps)
    ),
    st.sampled_from(["inf,0 5,5", "0,0 1e400,3", "nan,1 2,3", "-5,-5 900,900", "3,3", "1,2,3"]),
    XML_TEXT,
)


@st.composite
def page_documents(draw) -> bytes:
    """Well-formed PAGE XML of random content: TextLine ids, Coords points or Point x/y values,
    texts, the page image's file name and the root element."""
    lines = []
    for k in range(draw(st.integers(0, 3))):
        ident = draw(st.one_of(st.just(f"l{k}"), XML_TEXT))
        kind = draw(st.sampled_from(["points", "Point", "none"]))
        if kind == "points":
            coords = f"<Coords points={quoteattr(draw(POINTS))}/>"
        elif kind == "Point":
            coords = "".join(
                f"<Point x={quoteattr(draw(NUMBERS))} y={quoteattr(draw(NUMBERS))}/>"
                for _ in range(draw(st.integers(0, 3)))
            )
            coords = f"<Coords>{coords}</Coords>"
        else:
            coords = ""
        text = escape(draw(XML_TEXT))
        lines.append(
            f"<TextLine id={quoteattr(ident)}>{coords}"
            f"<TextEquiv><Unicode>{text}</Unicode></TextEquiv></TextLine>"
        )
    image = draw(
        st.one_of(
            st.just("page.png"),
            st.sampled_from([".", "..", "/", "page.png/", "missing.png", "a" * 300, "page.xml"]),
            XML_TEXT,
        )
    )
    root = draw(st.sampled_from(["PcGts", "PcGts", "Page", "html"]))
    xmlns = draw(st.sampled_from(['xmlns="http://schema.primaresearch.org/PAGE/gts"', ""]))
    page = f"<Page imageFilename={quoteattr(image)}>{''.join(lines)}</Page>"
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} {xmlns}>{page}</{root}>'.encode()


@TIERS
def test_page_xml(tmp_path, cases):
    """PAGE XML beside its page image: read_page_xml, read_line_folder, load_line of each line."""
    page = tmp_path / "page.png"
    Image.fromarray(grey_picture(40, 120)).save(page)

    @fuzz(cases)
    @given(blob=st.one_of(broken_text(VALID_PAGE), page_documents()))
    def check(blob):
        with fresh_folder(tmp_path) as folder:
            shutil.copy(page, folder / "page.png")
            xml = folder / "page.xml"
            xml.write_bytes(blob)
            lines = assert_clean(lambda: read_page_xml(xml), folder) or []
            cache: dict = {}
            for line in lines:
                assert_clean(lambda line=line: load_line(line, 16, cache), folder)
            assert_clean(lambda: read_line_folder(folder), folder)

    check()


# ------------------------------------------------------------------------------------ captions

VALID_CAPTIONS = (
    "image\tsplit\tcaption_idx\tcaption\n"
    "a.jpg\ttrain\t0\tA dog runs on the grass.\n"
    "a.jpg\ttrain\t1\tA brown dog.\n"
    "b.jpg\tdev\t0\tTwo people walk.\n"
    "c.jpg\ttest\t0\tA red car, parked.\n"
)


@TIERS
def test_captions_tsv(tmp_path, cases):
    """flickr8k-1k/captions.tsv: read_captions_tsv and load_photos (which checks every photo)."""
    folder = tmp_path / "flickr8k-1k"
    (folder / "images").mkdir(parents=True)
    grey = grey_picture()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.fromarray(np.stack([grey] * 3, -1)).save(folder / "images" / name)
    tsv = folder / "captions.tsv"

    @fuzz(cases)
    @given(blob=broken_text(VALID_CAPTIONS))
    def check(blob):
        tsv.write_bytes(blob)
        assert_clean(lambda: read_captions_tsv(tsv, folder / "images"), tsv)
        assert_clean(lambda: load_photos("flickr8k-1k", tmp_path), folder)

    check()


@TIERS
def test_vocabulary_json(tmp_path, cases):
    """A caption run's vocab.json (Vocabulary.load)."""
    path = tmp_path / "vocab.json"
    valid = json.dumps(["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "é"], ensure_ascii=False)

    @fuzz(cases)
    @given(blob=st.one_of(broken_text(valid), st.just(b"[" * 100_000)))
    def check(blob):
        path.write_bytes(blob)
        assert_clean(lambda: Vocabulary.load(path), path)

    check()


# -------------------------------------------------------------------------------- YAML configs

CONFIG_KEYS = sorted(f for f in TextLineConfig.__dataclass_fields__)

# YAML values of every type, including the ones that break naive coercion
YAML_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec="utf-8"), max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
)
YAML_SNIPPETS = st.sampled_from(
    [
        "2001-13-01",
        "2001-02-30",
        "!!binary YWJj",
        "!!python/object:os.system ls",
        "*undefined",
        "1" + "0" * 400,
        "0x1F",
        "0o17",
        "1_000",
        ".inf",
        "-.nan",
        "~",
        "[" * 2000,
        "{a: " * 2000,
        "'unclosed",
        "\t",
        "? [1, 2]\n  : 3",
        "uw3\x00",
        "a" * 300,
        "../../etc",
        "!!set {a, b}",
        "!!omap [a: 1]",
    ]
)


@st.composite
def config_files(draw) -> bytes:
    """Well-formed YAML mappings of real keys (now and then an unknown one, or one that is no
    string) to values of every type, and lines with YAML's odd scalars and tags."""
    odd_key = st.one_of(st.text(max_size=6), st.integers(0, 3), st.none(), st.booleans())
    keys = st.sampled_from(CONFIG_KEYS) if draw(st.integers(0, 4)) else odd_key
    mapping = draw(st.dictionaries(keys, YAML_VALUES, max_size=4))
    text = yaml.safe_dump(mapping, allow_unicode=True)
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(CONFIG_KEYS))
        text += f"{key}: {draw(YAML_SNIPPETS)}\n"
    return text.encode("utf-8")


@TIERS
def test_yaml_config(tmp_path, cases):
    """A --config file: load_yaml_mapping and resolve_config with textline's Config (its recipe
    files are read under it)."""
    recipe = Path(__file__).resolve().parents[1] / "src/lstmvision/recipes/textline/uw3.yaml"
    valid = recipe.read_text(encoding="utf-8") + "lr: 0.001\nseed: 3\ncharset: null\n"
    path = tmp_path / "config.yaml"

    @fuzz(cases)
    @given(blob=st.one_of(broken_text(valid), config_files()))
    def check(blob):
        path.write_bytes(blob)
        assert_clean(lambda: load_yaml_mapping(path), path)
        assert_clean(lambda: resolve_config(TextLineConfig, path), path)

    check()


# ------------------------------------------------------------------------- model.json + weights

MODEL_KWARGS = {"num_classes": 3, "image_size": 8, "hidden_size": 4, "cell": "lstm"}


def write_run_folder(run_dir: Path) -> None:
    run_dir.mkdir(exist_ok=True)
    model = get_model("row-lstm", **MODEL_KWARGS)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, run_dir / "model.safetensors", metadata={"model": "row-lstm"})
    spec = {"name": "row-lstm", "kwargs": MODEL_KWARGS}
    (run_dir / "model.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")


def small_numbers(value) -> bool:
    """Every integer in a parsed model.json at most 64 in size: a bigger hidden size is a model
    of gigabytes (see the report in docs/faults.md), not a case for a fast test."""
    if isinstance(value, dict):
        return all(small_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(small_numbers(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return abs(value) <= 64
    return not isinstance(value, int) or abs(value) <= 64


MODEL_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 64),
    st.floats(allow_nan=True, allow_infinity=True).filter(small_numbers),
    st.sampled_from(["lstm", "gru", "rnn", "rows", "pixels", "", "é"]),
    st.lists(st.integers(0, 3), max_size=3),
)


@st.composite
def model_specs(draw) -> bytes:
    """model.json with real and unknown kwargs of every type, or another name."""
    kwargs = dict(MODEL_KWARGS)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*MODEL_KWARGS, "reading", "num_layers", "dropout", "bogus"]))
        kwargs[key] = draw(MODEL_VALUES)
    name = draw(st.sampled_from(["row-lstm", "row-lstm", "no-such-model", "", "lenet5"]))
    spec = draw(st.sampled_from([{"name": name, "kwargs": kwargs}, [name, kwargs], {"name": name}]))
    return json.dumps(spec).encode("utf-8")


@TIERS
def test_model_json(tmp_path, cases):
    """model.json of a run folder (load_model), its weights valid."""
    run_dir = tmp_path / "run"
    write_run_folder(run_dir)
    spec = run_dir / "model.json"
    valid = spec.read_text(encoding="utf-8")

    @fuzz(cases)
    @given(blob=st.one_of(broken_text(valid), model_specs(), st.just(b"[" * 100_000)))
    def check(blob):
        with contextlib.suppress(ValueError, UnicodeDecodeError, RecursionError):
            assume(small_numbers(json.loads(blob)))
        spec.write_bytes(blob)
        assert_clean(lambda: load_model(run_dir), run_dir)

    check()


@st.composite
def weight_sets(draw) -> dict:
    """Well-formed safetensors contents: the model's keys, some dropped, renamed, of another
    shape or dtype."""
    own = get_model("row-lstm", **MODEL_KWARGS).state_dict()
    state = {}
    for key, value in own.items():
        kind = draw(st.sampled_from(["keep", "keep", "drop", "rename", "shape", "dtype"]))
        if kind == "keep":
            state[key] = value.clone()
        elif kind == "rename":
            state[key + ".x"] = value.clone()
        elif kind == "shape":
            state[key] = torch.zeros(draw(st.lists(st.integers(0, 3), max_size=3)))
        elif kind == "dtype":
            dtype = draw(st.sampled_from([torch.float16, torch.bfloat16, torch.int64, torch.uint8]))
            state[key] = value.to(dtype)
    return state


@TIERS
def test_model_safetensors(tmp_path, cases):
    """model.safetensors of a run folder: read_weights and load_model."""
    run_dir = tmp_path / "run"
    write_run_folder(run_dir)
    weights = run_dir / "model.safetensors"
    valid = weights.read_bytes()

    @fuzz(cases)
    @given(case=st.one_of(broken_bytes(valid), weight_sets()))
    def check(case):
        if isinstance(case, bytes):
            weights.write_bytes(case)
        else:
            save_file(case, weights)
        assert_clean(lambda: read_weights(weights), weights)
        assert_clean(lambda: load_model(run_dir), run_dir)

    check()


# --------------------------------------------------------------------------------------- images


@TIERS
def test_image_files(tmp_path, cases):
    """Broken PNG, JPEG, GIF, BMP, TIFF and WebP files through every predict-path loader:
    open_image, load_grey_image (classifiers), load_photo (captioning), load_line (lines)."""
    valid = {fmt: image_bytes(fmt) for fmt in IMAGE_FORMATS}
    path = tmp_path / "input.img"

    @fuzz(cases)
    @given(blob=st.sampled_from(IMAGE_FORMATS).flatmap(lambda f: broken_bytes(valid[f])))
    def check(blob):
        path.write_bytes(blob)
        assert_clean(lambda: open_image(path), path)
        assert_clean(lambda: load_grey_image(path, 28, frame=20 / 28), path)
        assert_clean(lambda: load_photo(path, 32), path)
        assert_clean(lambda: load_line(Line(path, ""), 16), path)

    check()


# --------------------------------------------------------------------------------------- videos


def write_video(path: Path, frames: int = 8) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for i in range(frames):
            rgb = np.zeros((24, 32, 3), np.uint8)
            rgb[:, (4 * i) % 32 : (4 * i) % 32 + 4] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@TIERS
def test_video_files(tmp_path, cases):
    """Broken AVI and MP4 files: probe, read_frames (next-frame) and read_clip (clip-classify)."""
    valid = {}
    for suffix in (".avi", ".mp4"):
        write_video(tmp_path / f"valid{suffix}")
        valid[suffix] = (tmp_path / f"valid{suffix}").read_bytes()

    @fuzz(cases // 2)
    @given(
        case=st.sampled_from(sorted(valid)).flatmap(
            lambda s: st.tuples(st.just(s), broken_bytes(valid[s]))
        )
    )
    def check(case):
        suffix, blob = case
        path = tmp_path / f"input{suffix}"
        path.write_bytes(blob)
        assert_clean(lambda: probe(path), path)
        assert_clean(lambda: read_frames(path, 2, (12, 16), grey=True, max_frames=3), path)
        assert_clean(lambda: read_clip(path, 3), path)

    check()


@TIERS
def test_npz_sequences(tmp_path, cases):
    """An .npz of grey sequences (load_npz_sequences), stored and compressed."""
    frames = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.savez(tmp_path / "plain.npz", a=frames, b=frames[:, :2])
    np.savez_compressed(tmp_path / "packed.npz", a=frames)
    valid = [(tmp_path / n).read_bytes() for n in ("plain.npz", "packed.npz")]
    path = tmp_path / "input.npz"

    @fuzz(cases)
    @given(blob=st.sampled_from(valid).flatmap(broken_bytes))
    def check(blob):
        path.write_bytes(blob)
        assert_clean(lambda: load_npz_sequences(path), path)

    check()


# ----------------------------------------------------------------------------------- text files


@TIERS
def test_text_corpus(tmp_path, cases):
    """A char-lm corpus (read_text) and the MR polarity files (load_polarity)."""
    folder = tmp_path / "text" / "rt-polarity"
    folder.mkdir(parents=True)
    valid = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    (folder / "rt-polarity.neg").write_text("a dull , tired film .\n", encoding="utf-8")
    pos = folder / "rt-polarity.pos"

    @fuzz(cases)
    @given(blob=broken_text(valid))
    def check(blob):
        pos.write_bytes(blob)
        assert_clean(lambda: read_text(pos), pos)
        assert_clean(lambda: load_polarity(tmp_path), pos)

    check()


VALID_CLASS_LIST = "1 ApplyEyeMakeup\n2 Biking\n"
VALID_SPLIT_LIST = "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nBiking/v_Biking_g09_c01.avi 2\n"


@TIERS
def test_ucf101_lists(tmp_path, cases):
    """UCF101's classInd.txt and trainlist01.txt (ucf101_index)."""
    videos, lists = tmp_path / "videos", tmp_path / "lists"
    for clip in VALID_SPLIT_LIST.split()[::2]:
        (videos / clip).parent.mkdir(parents=True, exist_ok=True)
        (videos / clip).write_bytes(b"")
    lists.mkdir()

    @fuzz(cases)
    @given(classes=broken_text(VALID_CLASS_LIST), split=broken_text(VALID_SPLIT_LIST))
    def check(classes, split):
        (lists / "classInd.txt").write_bytes(classes)
        (lists / "trainlist01.txt").write_bytes(split)
        assert_clean(lambda: ucf101_index(videos, lists, "train"), tmp_path)

    check()


# ------------------------------------------------------- regression tests: each crash found above


def test_idx_dimensions_whose_product_overflows_int64(tmp_path):
    """65536 x 2**31 x 2**31 = 2**78 items wrapped to 0 in np.prod: an empty payload "fit" and
    reshape raised ValueError."""
    path = tmp_path / "bomb-idx3-ubyte"
    path.write_bytes(
        bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (2**16, 2**31, 2**31))
    )
    with pytest.raises(
        DataError, match=r"bomb-idx3-ubyte: truncated or corrupt IDX file .*promises"
    ):
        read_idx(path)


def test_idx_of_no_items_but_dimensions_too_big_for_numpy(tmp_path):
    """(0, 2**32-1, 2**32-1): no payload is due, but numpy cannot make the empty array."""
    path = tmp_path / "empty-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 0]) + b"\xff" * 8)
    with pytest.raises(DataError, match=r"empty-idx3-ubyte: IDX dimensions \(0, 4294967295, "):
        read_idx(path)  # was ValueError from reshape


def test_usps_targets_of_the_wrong_shape_type_or_range(tmp_path):
    (tmp_path / "usps").mkdir()
    path = tmp_path / "usps" / "usps.h5"
    data = np.full((2, 256), 0.5, np.float32)
    for target, message in [
        (np.zeros((2, 1)), r"train/target has shape \(2, 1\), expected \(N,\)"),
        (np.array([b"1", b"2"]), r"train/data is float32 and train/target \|S1; expected"),
        (np.array([1.0, np.nan]), "train/target has labels outside 0..9"),
        (np.array([3, 12]), "train/target has labels outside 0..9"),
    ]:
        write_usps(path, {"train": {"data": data, "target": target}})
        with pytest.raises(DataError, match="usps.h5: " + message):
            load_split("usps", tmp_path, "train")
    write_usps(path, {"train": {"data": data.astype(np.complex64), "target": np.arange(2)}})
    with pytest.raises(DataError, match="usps.h5: train/data is complex64"):
        load_split("usps", tmp_path, "train")


def test_names_with_line_breaks_stay_on_one_line(tmp_path):
    """A .gt.txt named with a carriage return, a TextLine id and a page image name with a
    newline (&#10;): the message escapes them (it was two lines)."""
    (tmp_path / "a\rb.gt.txt").write_text("text", encoding="utf-8")
    with pytest.raises(DataError) as error:
        read_gt_folder(tmp_path)
    assert str(error.value).endswith(
        "a\\rb.gt.txt: no image beside it (expected a\\rb.png or .jpg)"
    )
    xml = tmp_path / "page.xml"
    xml.write_text(VALID_PAGE.replace('"page.png"', '"page&#10;.png"'), encoding="utf-8")
    with pytest.raises(DataError, match=r"page\\n\.png: no such page image") as error:
        read_page_xml(xml)
    Image.fromarray(grey_picture(40, 120)).save(tmp_path / "page.png")
    xml.write_text(VALID_PAGE.replace('id="l2"', 'id="l&#10;2"').replace("<Point", "<Pt"))
    with pytest.raises(DataError, match=r"TextLine l\\n2 has malformed Coords") as error:
        read_page_xml(xml)
    for message in (str(error.value),):
        assert len(message.splitlines()) == 1


def test_page_xml_of_an_unknown_encoding_or_infinite_coords(tmp_path):
    Image.fromarray(grey_picture(40, 120)).save(tmp_path / "page.png")
    xml = tmp_path / "page.xml"
    xml.write_text(VALID_PAGE.replace('encoding="UTF-8"', 'encoding="TTF-8"'), encoding="utf-8")
    with pytest.raises(DataError, match="page.xml: not well-formed XML .*unknown encoding"):
        read_page_xml(xml)  # was LookupError
    for bad in ('points="2,2 inf,2 110,18"', 'points="2,2 1e400,2"'):
        xml.write_text(VALID_PAGE.replace('points="2,2 110,2 110,18 2,18"', bad))
        with pytest.raises(DataError, match="page.xml: TextLine l1 has malformed Coords"):
            read_page_xml(xml)  # was OverflowError: int(inf)
    xml.write_text(VALID_PAGE.replace('x="100"', 'x="-inf"'))
    with pytest.raises(DataError, match="page.xml: TextLine l2 has malformed Coords"):
        read_page_xml(xml)


def test_page_xml_entity_expansion_is_refused_quickly(tmp_path):
    """The "billion laughs" document: expat refuses it (amplification limit)."""
    entities = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10 if i else "lol"}">' for i in range(10))
    xml = tmp_path / "page.xml"
    xml.write_text(
        f'<?xml version="1.0"?><!DOCTYPE PcGts [{entities}]>'
        '<PcGts><Page imageFilename="&e9;"/></PcGts>'
    )
    with pytest.raises(DataError, match="page.xml: not well-formed XML .*amplification"):
        read_page_xml(xml)


def test_file_names_too_long(tmp_path):
    """A name of 300 characters in labels.tsv, captions.tsv or a UCF101 list: Path.is_file()
    raised OSError (ENAMETOOLONG)."""
    long = "a" * 300 + ".png"
    (tmp_path / "labels.tsv").write_text(f"{long}\ttext\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"\.png: file name too long \(named on line 1 of"):
        read_labels_tsv(tmp_path / "labels.tsv")
    folder = tmp_path / "flickr8k-1k"
    (folder / "images").mkdir(parents=True)
    for name in ("a.jpg", "c.jpg"):
        Image.fromarray(grey_picture()).save(folder / "images" / name)
    tsv = VALID_CAPTIONS.replace("b.jpg", "b" * 300 + ".jpg")
    (folder / "captions.tsv").write_text(tsv, encoding="utf-8")
    with pytest.raises(DataError, match=r"\.jpg: file name too long \(1 of the dev split"):
        load_photos("flickr8k-1k", tmp_path)


def test_a_folder_a_symlink_loop_and_a_broken_symlink_are_named_as_such(tmp_path):
    """They were all "no such file"."""
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    (tmp_path / "broken.png").symlink_to(tmp_path / "gone.png")
    cases = {
        "folder.png": "is a folder, not an image file",
        "loop.png": "is a symlink loop",
        "broken.png": f"is a broken symlink \\(to {re.escape(str(tmp_path))}/gone.png\\)",
        "missing.png": "no such file",
    }
    for name, message in cases.items():
        with pytest.raises(DataError, match=f"{name}: {message}$"):
            open_image(tmp_path / name)
        with pytest.raises(DataError, match=f"{name}: {message}"):
            load_grey_image(tmp_path / name, 28, frame=None)
    (tmp_path / "clips.avi").mkdir()
    with pytest.raises(DataError, match="clips.avi: is a folder, not a video file"):
        read_frames(tmp_path / "clips.avi")
    (tmp_path / "lines" / "a.png").mkdir(parents=True)
    (tmp_path / "labels.tsv").write_text("a.png\ttext\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"a.png: is a folder, not an image file \(named on line 1"):
        read_labels_tsv(tmp_path / "labels.tsv")


def test_pil_warnings_on_broken_image_metadata_stay_quiet(tmp_path):
    """A TIFF cut inside its tags: PIL printed UserWarnings ("Corrupt EXIF data") to stderr
    before (or instead of) the one line."""

    def pil_warns(path):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with contextlib.suppress(Exception):
                Image.open(path).load()
        return any(issubclass(w.category, UserWarning) for w in caught)

    path = _first_cut(image_bytes("tiff-L"), tmp_path / "cut.tif", pil_warns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with contextlib.suppress(DataError):
            open_image(path)


def test_a_very_thin_image_is_framed_not_refused(tmp_path):
    """A 300 x 3 image whose object is one row: framing scaled the row to 0 pixels high
    (ImageOps.contain raised ValueError); it is now 1 pixel high."""
    line = np.zeros((3, 300), np.uint8)
    line[1] = 255
    Image.fromarray(line).save(tmp_path / "thin.png")
    x = load_grey_image(tmp_path / "thin.png", 28, frame=20 / 28)
    (row,) = (x > 0).any(1).nonzero()[:, 0].tolist()  # one row, 20 pixels long
    assert x.shape == (28, 28) and (x[row] > 0).sum() == 20


def test_vocabulary_nested_too_deeply(tmp_path):
    (tmp_path / "vocab.json").write_text("[" * 100_000)
    with pytest.raises(DataError, match="vocab.json: not a vocabulary file .*nested too deeply"):
        Vocabulary.load(tmp_path / "vocab.json")  # was RecursionError


def _first_cut(valid: bytes, path: Path, wanted, start: int = 0) -> Path:
    """``path`` holding the shortest prefix of ``valid`` (from ``start`` bytes on) for which
    ``wanted(path)`` holds."""
    for n in range(start, len(valid)):
        path.write_bytes(valid[:n])
        if wanted(path):
            return path
    raise AssertionError(f"no prefix of the {len(valid)} bytes is such a file")


def test_video_cut_before_its_codec_or_its_first_frame(tmp_path):
    """An MP4 cut inside its stream description (the stream has no codec: AttributeError on
    .width), and an AVI cut so that the first decode fails (UnboundLocalError on the frame
    count)."""
    import av

    write_video(tmp_path / "valid.mp4")
    valid = (tmp_path / "valid.mp4").read_bytes()

    def no_codec(path):
        try:
            with av.open(str(path)) as container:
                video = container.streams.video
                return bool(video) and video[0].codec_context is None
        except av.FFmpegError:
            return False

    def first_decode_fails(path):
        try:
            read_frames(path)
        except DataError as e:
            return "decoding failed at frame 1 " in str(e)
        return False

    cut = _first_cut(valid, tmp_path / "cut.mp4", no_codec)
    for read in (probe, read_frames, lambda p: read_clip(p, 3)):
        with pytest.raises(DataError, match="cut.mp4: its video stream names no codec"):
            read(cut)
    write_video(tmp_path / "valid.avi")
    valid = (tmp_path / "valid.avi").read_bytes()
    movi = valid.index(b"movi")  # the frames' list: cut inside the first frame
    _first_cut(valid, tmp_path / "cut.avi", first_decode_fails, movi)  # was UnboundLocalError


def test_npz_of_an_unknown_zip_version_or_a_broken_deflate_stream(tmp_path):
    import zipfile

    frames = np.zeros((2, 3, 4), np.uint8)
    path = tmp_path / "seq.npz"
    np.savez(path, a=frames)
    raw = bytearray(path.read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[central + 6 : central + 8] = (64).to_bytes(2, "little")  # "version needed": 6.4
    path.write_bytes(raw)
    with pytest.raises(DataError, match="seq.npz: not a readable .npz file .*zip file version"):
        load_npz_sequences(path)  # was NotImplementedError
    np.savez_compressed(path, a=frames)
    with zipfile.ZipFile(path) as z:
        info = z.infolist()[0]
    raw = bytearray(path.read_bytes())
    name_len, extra_len = (int.from_bytes(raw[i : i + 2], "little") for i in (26, 28))
    raw[info.header_offset + 30 + name_len + extra_len] = 0  # a stored block of bad lengths
    path.write_bytes(raw)
    with pytest.raises(DataError, match="seq.npz: not a readable .npz file .*invalid stored"):
        load_npz_sequences(path)  # was zlib.error


def test_ucf101_class_list_of_one_column_or_not_utf8(tmp_path):
    (tmp_path / "videos" / "Biking").mkdir(parents=True)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"classInd.txt: line 2 is not `INDEX CLASS_NAME`"):
        ucf101_index(tmp_path / "videos", lists)  # was IndexError
    (lists / "classInd.txt").write_bytes(b"1 Biking\xff\n")
    with pytest.raises(DataError, match="classInd.txt: not a readable UTF-8 list"):
        ucf101_index(tmp_path / "videos", lists)  # was UnicodeDecodeError


# ------------------------------------------ crashes found in config / run_folder, fixed there


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 5000, id="nested-too-deeply"),
        pytest.param("epochs: 2001-13-01\n", id="impossible-date"),
        pytest.param("1: 2\n", id="integer-key"),
        pytest.param("lr: 1" + "0" * 400 + "\n", id="integer-too-big-for-float"),
        pytest.param("dataset: " + "a" * 300 + "\n", id="dataset-name-too-long"),
    ],
)
def test_config_crashes_found_by_fuzzing(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LstmvisionError, match="config.yaml|not bronod, uw3 or a folder"):
        cfg = resolve_config(TextLineConfig, path)
        TextLineTask().splits(cfg)  # a data set name is checked where the data is read


def test_model_json_nested_too_deeply(tmp_path):
    write_run_folder(tmp_path / "run")
    (tmp_path / "run" / "model.json").write_text("[" * 100_000)
    with pytest.raises(LstmvisionError, match="model.json"):
        load_model(tmp_path / "run")
