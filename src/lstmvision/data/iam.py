"""IAM handwritten text lines (Marti and Bunke 2002) in the layout the database is distributed in.

Under the data root (or its ``iam/`` subfolder):

* the line images ``lines/a01/a01-000u/a01-000u-00.png`` (``lines.tgz``: writer-form folders);
* the transcriptions, either ``ascii/lines.txt`` (or ``lines.txt`` at the top) or, when there is
  none, the form files ``xml/a01-000u.xml``. ``lines.txt`` rows are ``id status graylevel
  components x y w h text`` with ``|`` between the words (``#`` starts a comment); the ``|``
  become spaces. The xml ``<line id=... text=...>`` attribute is the line as written (entities
  such as ``&quot;`` decoded). Both are read as given: case, punctuation and the spacing of
  ``lines.txt`` (which sets punctuation apart: ``tomorrow .``) are kept. Lines whose
  segmentation status is ``err`` are kept too: the split lists decide which lines count;
* the split lists, one line id (``a01-000u-00``) or form id (``a01-000u``: all its lines) a line,
  writer-disjoint, in the data root, its ``splits/`` folder or ``splits/<variant>/``:

  - ``iam`` (the Aachen split, "IAM-A": 6,161 train / 966 validation / 2,915 test lines, as in
    Laia's ``egs/iam/data/part/lines/aachen``): ``tr.lst``, ``va.lst``, ``te.lst``, variant
    folder ``aachen``;
  - ``iam-rwth`` (the RWTH Aachen variant, "IAM-B", Bluche's lists: 6,482 / 976 / 2,915):
    ``train.txt``, ``valid.txt``, ``test.txt`` (``validation.txt`` is read as ``valid.txt``, and
    ``.uttlist`` or ``.lst`` for ``.txt``), variant folder ``rwth``.

A listed line with no transcription or no image, a missing list or an empty split ends in one line
naming what is missing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from lstmvision.data.file_checks import file_problem, one_line
from lstmvision.data.lines import Line, normalize_text
from lstmvision.errors import DataError

IAM_DATASETS = ("iam", "iam-rwth")
SPLIT_FILES = {
    "iam": {"train": ("tr.lst",), "val": ("va.lst",), "test": ("te.lst",)},
    "iam-rwth": {
        "train": tuple(f"train.{s}" for s in ("txt", "uttlist", "lst")),
        "val": tuple(
            f"{n}.{s}" for n in ("valid", "validation") for s in ("txt", "uttlist", "lst")
        ),
        "test": tuple(f"test.{s}" for s in ("txt", "uttlist", "lst")),
    },
}
VARIANT_FOLDER = {"iam": "aachen", "iam-rwth": "rwth"}


def iam_folder(root: Path) -> Path:
    """The IAM folder under the data root: ``root/iam`` when there is one, else ``root``."""
    root = Path(root)
    return root / "iam" if (root / "iam").is_dir() else root


def form_of(line_id: str) -> str:
    """``a01-000u-00`` -> ``a01-000u``."""
    return line_id.rsplit("-", 1)[0]


def line_image(folder: Path, line_id: str) -> Path:
    """``lines/a01/a01-000u/a01-000u-00.png`` of ``line_id``."""
    form = form_of(line_id)
    return folder / "lines" / form.split("-")[0] / form / f"{line_id}.png"


def read_lines_txt(path: Path) -> dict[str, str]:
    """``{line id: text}`` of IAM's ``ascii/lines.txt`` (``|`` between words -> a space)."""
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{one_line(path)}: not a readable UTF-8 lines.txt ({e})") from None
    texts = {}
    for number, row in enumerate(content.splitlines(), 1):
        if not row.strip() or row.startswith("#"):
            continue
        cells = row.split(" ")
        if len(cells) < 9 or cells[1] not in ("ok", "err"):
            raise DataError(
                f"{one_line(path)}:{number}: expected `id ok|err graylevel components x y w h "
                f"text` (IAM lines.txt), got {one_line(row[:60])!r}"
            )
        texts[cells[0]] = normalize_text(" ".join(cells[8:]).replace("|", " "))
    if not texts:
        raise DataError(f"{one_line(path)}: no lines in this lines.txt")
    return texts


def read_form_xmls(folder: Path) -> dict[str, str]:
    """``{line id: text}`` of every IAM form file ``xml/*.xml`` (``<line id text>``)."""
    texts = {}
    for xml in sorted(folder.glob("*.xml")):
        try:
            tree = ET.parse(xml)
        except (ET.ParseError, OSError, UnicodeDecodeError, LookupError) as e:
            raise DataError(f"{one_line(xml)}: not well-formed XML ({e})") from None
        for node in tree.iter("line"):
            ident, text = node.get("id"), node.get("text")
            if not ident or text is None:
                raise DataError(f"{one_line(xml)}: a <line> without its id or text attribute")
            texts[ident] = normalize_text(text)
    if not texts:
        raise DataError(f"{one_line(folder)}: no IAM form files with <line> elements (xml/*.xml)")
    return texts


def read_split_list(path: Path) -> list[str]:
    """The ids of a split list, one a line (blank lines and ``#`` comments skipped)."""
    try:
        rows = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{one_line(path)}: not a readable split list ({e})") from None
    ids = [r.split()[0] for r in rows if r.strip() and not r.startswith("#")]
    if not ids:
        raise DataError(f"{one_line(path)}: empty split list")
    return ids


def split_list_files(folder: Path, dataset: str) -> dict[str, Path]:
    """The three split lists of ``dataset`` (``iam`` or ``iam-rwth``; see the module doc)."""
    names = SPLIT_FILES[dataset]
    places = [folder, folder / "splits", folder / "splits" / VARIANT_FOLDER[dataset]]
    for place in places:
        found = {
            s: next((place / n for n in names[s] if (place / n).is_file()), None) for s in names
        }
        if any(found.values()):
            missing = [names[s][0] for s, p in found.items() if p is None]
            if missing:
                raise DataError(
                    f"{one_line(place)}: {dataset} split lists incomplete: no {', '.join(missing)}"
                )
            return found  # type: ignore[return-value]
    wanted = ", ".join(n[0] for n in names.values())
    raise DataError(
        f"{one_line(folder)}: no {dataset} split lists ({wanted}) there, in splits/ or in "
        f"splits/{VARIANT_FOLDER[dataset]}/"
    )


def iam_line_splits(dataset: str, root: Path) -> dict[str, list[Line]]:
    """``{"train", "val", "test"}`` IAM lines of ``dataset`` (``iam``: Aachen split,
    ``iam-rwth``: RWTH variant) under ``root`` (the module doc gives the layout)."""
    folder = iam_folder(root)
    if not (folder / "lines").is_dir():
        raise DataError(
            f"{one_line(folder)}: IAM lines not found (expected lines/a01/a01-000u/*.png, "
            "ascii/lines.txt or xml/, and the split lists; see docs/benchmarks.md)"
        )
    txt = next(
        (p for p in (folder / "ascii" / "lines.txt", folder / "lines.txt") if p.is_file()), None
    )
    if txt is not None:
        texts, source = read_lines_txt(txt), txt
    elif (folder / "xml").is_dir():
        texts, source = read_form_xmls(folder / "xml"), folder / "xml"
    else:
        raise DataError(f"{one_line(folder)}: no IAM transcriptions (ascii/lines.txt or xml/)")
    by_form: dict[str, list[str]] = {}
    for ident in texts:
        by_form.setdefault(form_of(ident), []).append(ident)
    splits = {}
    for split, path in split_list_files(folder, dataset).items():
        ids: list[str] = []
        for listed in read_split_list(path):
            if listed in texts:
                ids.append(listed)
            elif listed in by_form:
                ids.extend(by_form[listed])
            else:
                raise DataError(
                    f"{one_line(path)}: {one_line(listed)} is neither a line nor a form of "
                    f"{one_line(source)}"
                )
        lines = []
        for ident in ids:
            image = line_image(folder, ident)
            problem = file_problem(image, "no such line image", "an image file")
            if problem:
                raise DataError(f"{one_line(image)}: {problem} (line {ident} of {path.name})")
            lines.append(Line(image, texts[ident], id=ident))
        splits[split] = lines
    return splits
