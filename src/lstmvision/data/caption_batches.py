"""Photos and captions as training batches: caption ids per photo, collation, encoder features.

* :func:`caption_sets`: each split's photos as a ``TensorDataset`` of (photo index, padded
  caption ids) - training keeps every caption of a photo, dev/test the first reference.
* :func:`collate_captions`: a batch of photos -> the dict the captioning module steps on.
* :func:`cached_features`: every photo through a frozen encoder once, kept in a
  :class:`~lstmvision.data.captions.FeatureCache`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from lstmvision.data.captions import SPLITS, FeatureCache, Photo, Vocabulary, tokenize
from lstmvision.data.root import CACHE

ENCODER_TAG = "efficientnet-lite0-imagenet-{size}px-grid"
"""name of the feature cache file of the frozen EfficientNet-Lite0 at a photo size"""


def caption_sets(photos: dict[str, list[Photo]], vocab: Vocabulary) -> dict[str, TensorDataset]:
    """Per split a ``TensorDataset`` of ``(index, captions)``: ``index`` the photo's place in the
    train, dev, test order (``(P,)``), ``captions`` its caption ids ``(P, C, T)``
    (``<start>`` ... ``<end>``, padded; a photo with fewer than ``C`` captions gets all-pad rows).
    Training holds all captions of each photo, dev/test the first (for ``val_loss``)."""
    sets, first = {}, 0
    for split in SPLITS:
        items = photos[split]
        captions = [
            p.captions if split == "train" else p.captions[:1] for p in items
        ]  # dev/test: the first
        most = max(len(c) for c in captions)
        ids = [
            torch.tensor(vocab.encode(c) if c is not None else [Vocabulary.PAD])
            for cs in captions
            for c in cs + [None] * (most - len(cs))
        ]
        padded = nn.utils.rnn.pad_sequence(
            ids, batch_first=True, padding_value=Vocabulary.PAD
        )  # (P*C, T)
        sets[split] = TensorDataset(
            torch.arange(first, first + len(items)), padded.view(len(items), most, -1)
        )
        first += len(items)
    return sets


def collate_captions(
    items, order: list[Photo], inputs: torch.Tensor, pixels: bool, with_refs: bool
) -> dict:
    """A batch of ``(index, captions)`` items -> dict: ``inputs`` (cached features
    ``(B, L, 1280)``, or with ``pixels`` the uint8 photos scaled to ``(B, 3, S, S)`` in [0, 1]),
    ``captions`` ``(N, T)`` ids without all-pad rows or columns, ``rows`` ``(N,)`` the photo of
    each caption, ``refs`` (every reference tokenised and space-joined, when ``with_refs``, else
    None) and ``names``. ``order`` and ``inputs`` are indexed by the items' photo index."""
    index = torch.stack([i for i, _ in items])  # (B,) photos
    captions = torch.stack([c for _, c in items])  # (B, C, T): C captions per photo
    rows = torch.arange(len(index)).repeat_interleave(
        captions.shape[1]
    )  # (B*C,) photo of each caption
    captions = captions.flatten(0, 1)  # (B*C, T)
    real = captions[:, 0] == Vocabulary.START  # a photo with fewer captions has empty padding rows
    captions, rows = captions[real], rows[real]
    captions = captions[
        :, : int((captions != Vocabulary.PAD).sum(1).max())
    ]  # (N, T): no all-pad columns
    batch_inputs = inputs[index].float()  # (B, L, 1280) features, or (B, 3, S, S) photos
    if pixels:
        batch_inputs = batch_inputs / 255  # photos in [0, 1]
    photos = [order[i] for i in index.tolist()]
    refs = [[" ".join(tokenize(c)) for c in p.captions] for p in photos] if with_refs else None
    return {
        "inputs": batch_inputs,
        "captions": captions,
        "rows": rows,
        "refs": refs,
        "names": [p.name for p in photos],
    }


def cached_features(
    paths: list[Path],
    encode: Callable[[torch.Tensor], torch.Tensor],
    image_size: int,
    folder: str | Path | None = None,
) -> torch.Tensor:
    """float16 ``(N, L, C)`` features of the photos by the frozen encoder ``encode`` (photos
    ``(B, 3, S, S)`` in [0, 1] -> ``(B, L, C)``), computed once per photo file and kept in
    ``folder`` (default ``~/.cache/lstmvision/features``) under :data:`ENCODER_TAG`."""
    folder = Path(folder).expanduser() if folder else CACHE / "features"
    cache = FeatureCache(folder, ENCODER_TAG.format(size=image_size), image_size)
    with torch.no_grad():
        features = cache.get(paths, lambda u8: encode(u8.float() / 255), progress=print)
    return features.half()  # float16 to halve the memory
