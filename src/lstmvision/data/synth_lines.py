"""Synthetic printed text lines for pretraining a line recogniser (data set ``synth-print``).

Text comes from the shared corpora (``text/tinyshakespeare.txt`` and ``text/rt-polarity/``, each
cut into disjoint train/val/test blocks: the first 80 % of its lines train, the next 10 % validate,
the last 10 % test), mixed with the tokens printed technical text has and prose lacks: numbers,
citations, section numbers, percentages, brackets, abbreviations, hyphenated line ends and
``LaTeX-style'' quotes. Every line's text is printable ASCII (:data:`CHARSET`).

Images are drawn with PIL from the fonts that matplotlib and reportlab ship (:data:`FONTS`: Times
clones most often, as UW3 is mostly set in Times; Helvetica, Courier and DejaVu too) and degraded
like a binarised scan: stroke weight (min filter, threshold), word spacing (justified text), letter
spacing (tracking), horizontal scaling, small rotation and shear, blur, noise, contrast and, most
of the time, a threshold to black and white. As in UW3's
``.bin.png`` lines the crop is tight around the ink with a margin of about 3 pixels, dark ink on
white paper.

Everything is drawn from ``random.Random`` seeded by ``(seed, split, index)``: the same seed gives
the same lines, and a line is only drawn when it is read (:func:`synth_line_splits` returns
:class:`~lstmvision.data.lines.Line` objects whose ``draw`` renders it). The typographic quotes
of the print map to UW3's transcription conventions: “ -> ``, ” -> '', ‘ -> `, ’ -> '.
"""

from __future__ import annotations

import functools
import random
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from lstmvision.data.lines import Line
from lstmvision.data.text import CHAR_DATASETS, POLARITY_FOLDER, read_text
from lstmvision.errors import DataError

CHARSET = "".join(chr(i) for i in range(32, 127))  # printable ASCII, space first
"""Every character a synthetic line may contain."""

# (file, relative frequency): fonts from matplotlib's TrueType folder (STIX, a Times-like face, and
# DejaVu) and reportlab's Type 1 folder (``_e*``: URW's clone of Times, the face UW3 is mostly set
# in; ``_a*``: of Helvetica; ``co*``: of Courier); the Computer Modern files are left out (TeX
# encodings: no < > | { }, no curly quotes)
FONTS: tuple[tuple[str, float], ...] = (
    ("_er_____.pfb", 4.0),
    ("_ei_____.pfb", 1.0),
    ("_eb_____.pfb", 0.7),
    ("_ebi____.pfb", 0.2),
    ("STIXGeneral.ttf", 3.0),
    ("STIXGeneralItalic.ttf", 0.8),
    ("STIXGeneralBol.ttf", 0.5),
    ("STIXGeneralBolIta.ttf", 0.15),
    ("DejaVuSerif.ttf", 0.8),
    ("DejaVuSerif-Italic.ttf", 0.3),
    ("DejaVuSerif-Bold.ttf", 0.3),
    ("DejaVuSerif-BoldItalic.ttf", 0.1),
    ("DejaVuSans.ttf", 0.8),
    ("DejaVuSans-Bold.ttf", 0.6),
    ("DejaVuSans-Oblique.ttf", 0.3),
    ("DejaVuSans-BoldOblique.ttf", 0.1),
    ("_a______.pfb", 0.8),
    ("_ab_____.pfb", 0.5),
    ("_ai_____.pfb", 0.2),
    ("_abi____.pfb", 0.1),
    ("com_____.pfb", 0.4),
    ("cob_____.pfb", 0.15),
    ("coo_____.pfb", 0.1),
    ("DejaVuSansMono.ttf", 0.2),
)

SPLITS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}  # corpus fractions per split
_QUOTES = (("``", "\u201c"), ("''", "\u201d"), ("`", "\u2018"), ("'", "\u2019"))  # label -> print


def font_dir(name: str) -> Path:
    """The folder of font file ``name``: matplotlib's TrueType folder for ``.ttf``, reportlab's
    fonts for its ``.pfb`` (both are dependencies, so the fonts exist everywhere)."""
    if name.endswith(".pfb"):
        import reportlab

        return Path(reportlab.__file__).parent / "fonts"
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@functools.lru_cache(maxsize=256)
def load_font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """One of :data:`FONTS` at ``size`` pixels per em (cached)."""
    path = font_dir(name) / name
    if not path.is_file():
        raise DataError(
            f"{path}: font not found (it ships with "
            f"{'reportlab' if name.endswith('.pfb') else 'matplotlib'}; "
            "reinstall it)"
        )
    return ImageFont.truetype(str(path), size)


# --------------------------------------------------------------------------------------- text


def _detokenize(line: str) -> str:
    """rt-polarity is lower-cased and tokenised (``it's a film , " conan " .``): glue the
    punctuation back, capitalise sentences and the pronoun I."""
    s = line.strip()
    s = re.sub(r' " (.*?) " ', r" ``\1'' ", f" {s} ")
    s = re.sub(r" ([,.;:!?%)\]]|n't|'s|'re|'ve|'ll|'d|'m)(?=\s|$)", r"\1", s)
    s = re.sub(r"([(\[$]) ", r"\1", s)
    s = re.sub(r"\bi\b", "I", s)
    s = re.sub(r"(^\s*|[.!?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), s)
    return " ".join(s.split())


def _ascii(text: str) -> str:
    text = (
        text.replace("\u2019", "'")
        .replace("\u2018", "`")
        .replace("\u201c", "``")
        .replace("\u201d", "''")
    )
    return "".join(c for c in text if c in CHARSET)


@functools.lru_cache(maxsize=4)
def corpus_words(root: str, split: str) -> tuple[str, ...]:
    """The running words of ``split``'s blocks of the two corpora under the data root ``root``."""
    sources = [
        Path(root) / CHAR_DATASETS["tinyshakespeare"],
        *(Path(root) / POLARITY_FOLDER / f"rt-polarity.{kind}" for kind in ("pos", "neg")),
    ]
    lo, hi = SPLITS[split]
    words: list[str] = []
    for path in sources:
        if not path.is_file():
            raise DataError(
                f"{path}: corpus for synth-print not found "
                f"(expected {CHAR_DATASETS['tinyshakespeare']} "
                f"and {POLARITY_FOLDER}/ under the data root; see --data-root)"
            )
        lines = [ln for ln in read_text(path).splitlines() if ln.strip()]
        block = lines[int(lo * len(lines)) : int(hi * len(lines))]
        if path.parent.name == Path(POLARITY_FOLDER).name:
            block = [_detokenize(ln) for ln in block]
        words.extend(w for w in _ascii(" ".join(block)).split() if w)
    return tuple(words)


_NAMES = (
    "Aho",
    "Hopcroft",
    "Ullman",
    "Tarjan",
    "Knuth",
    "Galil",
    "Even",
    "Karp",
    "Gabow",
    "Lawler",
    "Smith",
    "Jones",
    "Miller",
    "Baker",
    "Cook",
    "Levin",
    "Edmonds",
    "Turing",
    "Dijkstra",
    "Floyd",
)
_ABBREV = (
    "e.g.,",
    "i.e.,",
    "et al.",
    "etc.",
    "Fig.",
    "Eq.",
    "pp.",
    "vol.",
    "no.",
    "Sec.",
    "Ch.",
    "vs.",
    "Dr.",
    "Prof.",
    "U.S.A.",
    "N.Y.",
    "Inc.",
    "Univ.",
    "Dept.",
    "Proc.",
    "ACM",
    "IEEE",
    "SIAM",
)


def _number(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        return str(rng.randint(0, 99))
    if kind < 0.5:
        return str(rng.randint(1900, 2024))
    if kind < 0.65:
        return f"{rng.randint(0, 999)}.{rng.randint(0, 99)}"
    if kind < 0.8:
        return str(rng.randint(100, 99999))
    return f"{rng.randint(1, 999):,}" if rng.random() < 0.5 else f"{rng.randint(1000, 999999):,}"


def _token(rng: random.Random) -> str:
    """One token of technical print: a number, citation, reference, symbol or abbreviation."""
    r = rng.random()
    if r < 0.22:
        return _number(rng) + rng.choice(("", "", "", "%", ",", ".", ";", ":"))
    if r < 0.32:
        year = rng.randint(1950, 1995)
        return (
            f"[{rng.choice(_NAMES)} {rng.choice(('', 'et al. '))}"
            f"{year}{rng.choice(('', 'a', 'b'))}]"
        )
    if r < 0.40:
        return (
            f"({rng.choice('abcdefghi')})"
            if rng.random() < 0.5
            else f"({rng.choice(('i', 'ii', 'iii', 'iv', 'v'))})"
        )
    if r < 0.48:
        return ".".join(str(rng.randint(1, 9)) for _ in range(rng.randint(2, 3)))  # section number
    if r < 0.56:
        return rng.choice(_ABBREV)
    if r < 0.64:
        a, b = rng.randint(1, 500), rng.randint(1, 99)
        return rng.choice(
            (f"{a}-{a + b}", f"pp. {a}-{a + b}", f"{a}/{b}", f"{a}:{b}", f"[{b}]", f"[{a}, {b}]")
        )
    if r < 0.72:
        x = rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        return rng.choice(
            (
                f"O({x})",
                f"{x} = {rng.randint(0, 99)}",
                f"{x}_{rng.randint(1, 9)}",
                f"{x}^2",
                f"{x} < {rng.randint(0, 99)}",
                f"{x} > {rng.randint(0, 99)}",
                f"{x}+1",
                f"{x}*{x}",
                f"|{x}|",
                f"{{{x}}}",
                f"#{rng.randint(1, 99)}",
                f"${rng.randint(1, 999)}",
                f"{x} & {rng.choice('abcxyz')}",
                f"@{x}",
                f"~{x}",
                f"\\{x}",
            )
        )
    if r < 0.86:
        return "".join(rng.choice(CHARSET[1:]) for _ in range(rng.randint(1, 6)))  # any character
    return "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rng.randint(2, 5))
    )  # acronym


def synth_text(words: tuple[str, ...], rng: random.Random) -> str:
    """One line of text: a run of corpus words (random length and start) with technical tokens
    mixed in, sometimes upper- or title-cased, quoted, bracketed or hyphenated at the end."""
    target = rng.choice((rng.randint(4, 30), rng.randint(30, 90), rng.randint(50, 80)))
    start = rng.randrange(len(words))
    out: list[str] = []
    token_rate = rng.choice((0.0, 0.05, 0.15, 0.4))
    i = start
    while sum(len(w) + 1 for w in out) < target:
        if rng.random() < token_rate:
            out.append(_token(rng))
        else:
            out.append(words[i % len(words)])
            i += 1
    style = rng.random()
    if style < 0.06:
        out = [w.upper() for w in out]
    elif style < 0.14:
        out = [w[:1].upper() + w[1:] for w in out]
    elif style < 0.20:
        out = [w.lower() for w in out]
    if rng.random() < 0.1 and len(out) > 2:  # ``a quotation''
        a = rng.randrange(len(out) - 1)
        b = rng.randrange(a, min(len(out), a + 4))
        out[a], out[b] = "``" + out[a], out[b] + "''"
    if rng.random() < 0.1 and len(out) > 2:  # (a parenthesis)
        a = rng.randrange(len(out) - 1)
        b = rng.randrange(a, min(len(out), a + 5))
        out[a], out[b] = "(" + out[a], out[b] + ")"
    if rng.random() < 0.15 and len(out[-1]) >= 5 and out[-1].isalpha():  # hyphenated line end
        out[-1] = out[-1][: rng.randint(2, len(out[-1]) - 2)] + "-"
    text = " ".join(out)
    while len(text) > 100:  # keep a line a line
        text = text[: text.rfind(" ")] if " " in text[:100] else text[:100]
    return text.strip() or "."


# ------------------------------------------------------------------------------------- images


def print_text(text: str, rng: random.Random) -> str:
    """The characters printed for a label: typographic quotes for the ASCII transcription ones
    (most of the time; UW3 transcribes “ ” ’ as `` '' ')."""
    if rng.random() < 0.2:
        return text
    for label, glyph in _QUOTES:
        text = text.replace(label, glyph)
    return text


def render_line(
    text: str, rng: random.Random, font: str | None = None, size: int | None = None
) -> np.ndarray:
    """``text`` printed and degraded like a binarised scan: uint8 ``(h, w)``, dark ink (0) on
    white paper (255), cropped to the ink with a margin of about 3 pixels (UW3's ``.bin.png``)."""
    font = font or rng.choices([f for f, _ in FONTS], [w for _, w in FONTS])[0]
    size = size or rng.randint(26, 44)  # pixels per em: UW3's lines are 34-54 pixels high
    face = load_font(font, size)
    words = print_text(text, rng).split(" ")
    r = rng.random()  # word spacing: the font's, or shrunk or stretched as in justified print
    space = face.getlength(" ") * (
        1.0 if r < 0.4 else rng.uniform(0.75, 1.0) if r < 0.6 else rng.uniform(1.0, 2.2)
    )
    # letter spacing (tracking), pixels added between the letters of a word: none, tight or loose
    tracking = 0.0 if rng.random() < 0.5 else size * rng.uniform(-0.03, 0.12)
    ascent, descent = face.getmetrics()
    pad = size // 2

    def length(word: str) -> float:
        return face.getlength(word) + tracking * (len(word) - 1)

    width = sum(length(w) for w in words) + space * (len(words) - 1)
    canvas = Image.new("L", (int(width) + 2 * pad, ascent + descent + 2 * pad), 255)
    draw, x = ImageDraw.Draw(canvas), float(pad)
    for word in words:  # one word at a time: the word spacing varies as in justified print
        if tracking:
            for k, char in enumerate(word):  # one letter at a time: the letter spacing varies too
                draw.text(
                    (x + face.getlength(word[:k]) + tracking * k, pad), char, font=face, fill=0
                )
        else:
            draw.text((x, pad), word, font=face, fill=0)
        x += length(word) + space
    grey = np.asarray(_distort(canvas, rng), dtype=np.float32) / 255.0  # (h, w), paper 1
    return (_degrade(_crop(grey, rng), rng) * 255).round().astype(np.uint8)


def _distort(canvas: Image.Image, rng: random.Random) -> Image.Image:
    """Stroke weight, horizontal scale, rotation and shear (PIL, white fill)."""
    if rng.random() < 0.15:  # bolder: dark ink grows (lighter strokes come from the threshold)
        canvas = canvas.filter(ImageFilter.MinFilter(3))
    w, h = canvas.size
    scale = rng.uniform(0.85, 1.15)
    canvas = canvas.resize((max(1, round(w * scale)), h), Image.BILINEAR)
    shear, angle = rng.gauss(0.0, 0.06), rng.gauss(0.0, 0.2)
    if abs(shear) > 0.01:
        w, h = canvas.size
        canvas = canvas.transform(
            (w + int(abs(shear) * h), h),
            Image.AFFINE,
            (1, shear, -abs(shear) * h if shear > 0 else 0, 0, 1, 0),
            Image.BILINEAR,
            fillcolor=255,
        )
    if abs(angle) > 0.05:
        canvas = canvas.rotate(angle, Image.BILINEAR, expand=True, fillcolor=255)
    return canvas


def _blur(grey: np.ndarray, sigma: float) -> np.ndarray:
    im = Image.fromarray((grey * 255).astype(np.uint8))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(sigma)), dtype=np.float32) / 255.0


def _degrade(grey: np.ndarray, rng: random.Random) -> np.ndarray:
    """Blur, noise, contrast and (80 %) a threshold to black and white, in [0, 1] paper-bright."""
    noise = np.random.default_rng(rng.getrandbits(32))
    if rng.random() < 0.7:
        grey = _blur(grey, rng.uniform(0.3, 1.0))
    grey = grey + noise.normal(0.0, rng.uniform(0.0, 0.1), grey.shape).astype(np.float32)
    if (
        rng.random() < 0.8
    ):  # binarised, as UW3's .bin.png lines; the threshold sets the stroke weight
        grey = (grey > rng.uniform(0.4, 0.75)).astype(np.float32)
        if rng.random() < 0.3:  # specks
            specks = noise.random(grey.shape) < rng.uniform(0.0, 0.002)
            grey[specks] = 1.0 - grey[specks]
    else:
        ink, paper = rng.uniform(0.0, 0.3), rng.uniform(0.75, 1.0)
        grey = ink + (paper - ink) * grey
    return np.clip(grey, 0.0, 1.0)


def _crop(grey: np.ndarray, rng: random.Random) -> np.ndarray:
    """Tight crop around the ink plus a margin of 3 pixels (sometimes 1-5)."""
    m = 3 if rng.random() < 0.7 else rng.randint(1, 5)
    grey = np.pad(grey, m, constant_values=1.0)  # white beyond the canvas
    rows, cols = np.nonzero(grey.min(1) < 0.5)[0], np.nonzero(grey.min(0) < 0.5)[0]
    if len(rows):
        grey = grey[rows[0] - m : rows[-1] + 1 + m, cols[0] - m : cols[-1] + 1 + m]
    return grey


# --------------------------------------------------------------------------------------- lines


def _line_seed(seed: int, split: str, index: int) -> int:
    return (seed * 1_000_003 + list(SPLITS).index(split)) * 10_000_019 + index


def draw_line(seed: int, split: str, index: int, text: str) -> Image.Image:
    """The image of line ``index`` of ``split`` (deterministic for ``seed``), mode ``L``."""
    return Image.fromarray(render_line(text, random.Random(_line_seed(seed, split, index) + 1)))


def synth_line_splits(root: Path, sizes: dict[str, int], seed: int = 0) -> dict[str, list[Line]]:
    """``{"train", "val", "test"}``: ``sizes[split]`` synthetic lines each, their texts from
    disjoint blocks of the corpora under the data root ``root``. The texts are drawn now, the
    images when a line is loaded (``Line.draw``); both depend only on ``seed``."""
    out: dict[str, list[Line]] = {}
    for split in SPLITS:
        words = corpus_words(str(root), split)
        lines = []
        for i in range(sizes.get(split, 0)):
            text = synth_text(words, random.Random(_line_seed(seed, split, i)))
            lines.append(
                Line(
                    Path(f"synth-print/{split}/{i:06d}"),
                    text,
                    id=f"synth-{split}-{i:06d}",
                    draw=functools.partial(draw_line, seed, split, i, text),
                )
            )
        out[split] = lines
    return out
