"""Captioning data sets in Karpathy's splits (Karpathy and Fei-Fei 2015, ``caption_datasets.zip``).

``dataset_flickr8k.json``, ``dataset_flickr30k.json`` and ``dataset_coco.json`` hold
``{"images": [...], "dataset": name}``; each image has ``filename``, ``split`` (``train``,
``val``, ``test`` or ``restval``), ``sentences`` (each with ``raw``, the caption as written, and
``tokens``) and, for COCO, ``filepath`` (``train2014`` or ``val2014``). ``restval`` (COCO's 30,504
validation photos outside Karpathy's 5,000 val and 5,000 test) trains, as in Karpathy's code and
the papers that report on these splits; ``val`` is our ``dev``. Captions are the ``raw`` text
(tokenised here like every caption, :func:`lstmvision.data.captions.tokenize`).

Layout under the data root, by ``--dataset``:

* ``flickr8k-karpathy``: ``flickr8k/dataset_flickr8k.json`` beside the photos in
  ``Flicker8k_Dataset/`` (the official archive's spelling), ``Flickr8k_Dataset/``, ``images/`` or
  ``Images/`` (the same folder as ``--dataset flickr8k``, which reads the official token file);
* ``flickr30k``: ``flickr30k/dataset_flickr30k.json`` with ``flickr30k-images/``, ``images/`` or
  ``Images/``;
* ``coco``: ``coco/dataset_coco.json`` with ``train2014/`` and ``val2014/`` (each image's
  ``filepath``), or every photo in ``images/``.

The json may also sit at the data root itself. A missing json, photos folder or photo ends in one
line naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

from lstmvision.data.file_checks import one_line
from lstmvision.errors import DataError

KARPATHY = {
    "flickr8k-karpathy": (
        "flickr8k",
        "dataset_flickr8k.json",
        ("Flicker8k_Dataset", "Flickr8k_Dataset", "images", "Images"),
    ),
    "flickr30k": ("flickr30k", "dataset_flickr30k.json", ("flickr30k-images", "images", "Images")),
    "coco": ("coco", "dataset_coco.json", ("", "images")),
}
"""``--dataset`` -> (folder under the data root, Karpathy's json, photo folders tried in order;
``""``: the folder itself, the photos under each image's ``filepath``)."""
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "dev", "test": "test"}


def karpathy_json(dataset: str, root: Path) -> Path:
    """Karpathy's json of ``dataset``: in its folder under ``root``, else at ``root``."""
    folder, name, _ = KARPATHY[dataset]
    for path in (Path(root) / folder / name, Path(root) / name):
        if path.is_file():
            return path
    raise DataError(
        f"{one_line(Path(root) / folder / name)}: Karpathy's split file not found (from "
        "caption_datasets.zip; put it beside the photos; see docs/benchmarks.md)"
    )


def _photo_path(folder: Path, image: dict, places: tuple[str, ...]) -> Path:
    name = image["filename"]
    for place in places:
        base = folder / place if place else folder / image.get("filepath", "")
        if (base / name).exists() or place == places[-1]:
            return base / name
    return folder / name  # pragma: no cover - the loop always returns


def read_karpathy(dataset: str, root: str | Path) -> list:
    """The photos of ``dataset`` (``flickr8k-karpathy``, ``flickr30k``, ``coco``) in Karpathy's
    splits, as :class:`lstmvision.data.captions.Photo` (split ``train``/``dev``/``test``)."""
    from lstmvision.data.captions import Photo

    path = karpathy_json(dataset, Path(root))
    folder = Path(root) / KARPATHY[dataset][0]
    folder = folder if folder.is_dir() else path.parent
    try:
        images = json.loads(path.read_text(encoding="utf-8"))["images"]
        if not isinstance(images, list):
            raise TypeError("images is not a list")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{one_line(path)}: not Karpathy's split format ({e!r})") from None
    places = (
        tuple(p for p in KARPATHY[dataset][2] if p == "" or (folder / p).is_dir())
        or KARPATHY[dataset][2][:1]
    )
    if dataset != "coco" and not any((folder / p).is_dir() for p in places):
        raise DataError(
            f"{one_line(folder)}: no photos folder ({' or '.join(KARPATHY[dataset][2])}/)"
        )
    photos = []
    for number, image in enumerate(images):
        try:
            split = KARPATHY_SPLITS[image["split"]]
            captions = [str(s["raw"]).strip() for s in image["sentences"]]
            photos.append(
                Photo(image["filename"], _photo_path(folder, image, places), split, captions)
            )
        except (KeyError, TypeError):
            raise DataError(
                f"{one_line(path)}: image {number} lacks filename, a known split "
                "(train, val, test, restval) or sentences with raw text"
            ) from None
    return photos  # load_photos checks that each photo is there
