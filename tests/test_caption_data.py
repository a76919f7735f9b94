"""Captioning data: vocabulary, Flickr8k layouts (the shared slice and the full archive's), photos
of every awkward kind, bad caption files, the feature cache."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lstmvision.data.captions import (
    FeatureCache,
    Vocabulary,
    load_photo,
    load_photos,
    read_captions_tsv,
    tokenize,
)
from lstmvision.errors import DataError


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("A dog's ball, 2 kids .") == ["a", "dog", "s", "ball", "2", "kids"]


def test_vocabulary_round_trip(tmp_path):
    vocab = Vocabulary.build(["A dog runs .", "a dog sits", "the cat"], min_count=2)
    assert vocab.words == ["<pad>", "<start>", "<end>", "<unk>", "a", "dog"]
    ids = vocab.encode("A dog flies")
    assert ids == [Vocabulary.START, 4, 5, Vocabulary.UNK, Vocabulary.END]
    assert vocab.decode(ids + [Vocabulary.PAD, 4]) == "a dog <unk>"  # stops at <end>
    again = Vocabulary.load(vocab.save(tmp_path / "vocab.json"))
    assert again.words == vocab.words and again.encode("a dog") == vocab.encode("a dog")


def test_vocabulary_file_errors(tmp_path):
    bad = tmp_path / "v.json"
    bad.write_text('["a", "b"]')
    with pytest.raises(DataError, match="v.json: a vocabulary must start with"):
        Vocabulary.load(bad)
    bad.write_text("{")
    with pytest.raises(DataError, match="v.json: not a vocabulary file"):
        Vocabulary.load(bad)


def test_shared_slice_splits(data_root):
    photos = load_photos("flickr8k-1k", data_root)
    assert {s: len(p) for s, p in photos.items()} == {"train": 753, "dev": 113, "test": 125}
    assert all(len(p.captions) == 5 for s in photos.values() for p in s)
    train_names = {p.name for p in photos["train"]}
    assert not train_names & {p.name for p in photos["test"]}


def _slice_copy(data_root, tmp_path, photos_per_split=2):
    """A full-Flickr8k layout (token file + official split lists) holding a few real photos."""
    source = load_photos("flickr8k-1k", data_root)
    root = tmp_path / "flickr8k"
    (root / "Flicker8k_Dataset").mkdir(parents=True)
    (root / "Flickr8k_text").mkdir()
    lines = []
    for split in ("train", "dev", "test"):
        chosen = source[split][:photos_per_split]
        (root / "Flickr8k_text" / f"Flickr_8k.{split}Images.txt").write_text(
            "".join(p.name + "\n" for p in chosen)
        )
        for p in chosen:
            shutil.copy(p.path, root / "Flicker8k_Dataset" / p.name)
            lines += [f"{p.name}#{k}\t{c}" for k, c in enumerate(p.captions)]
    (root / "Flickr8k_text" / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    return tmp_path, source


def test_full_flickr8k_layout(data_root, tmp_path):
    root, source = _slice_copy(data_root, tmp_path)
    photos = load_photos("flickr8k", root)
    assert [p.name for p in photos["dev"]] == [p.name for p in source["dev"][:2]]
    assert photos["test"][1].captions == source["test"][1].captions


def test_missing_data_sets_name_where(tmp_path):
    with pytest.raises(DataError, match=r"flickr8k-1k: Flickr8k slice not found"):
        load_photos("flickr8k-1k", tmp_path)
    with pytest.raises(DataError, match=r"flickr8k: full Flickr8k not found"):
        load_photos("flickr8k", tmp_path)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty captions file"),
        (b"image\tsplit\tcaption_idx\tcaption\n", "no train photos"),
        (b"image\tsplit\tcaption_idx\tcaption\na.jpg\ttrain\t0\n", "line 2 has 3 columns"),
        (
            b"image\tsplit\tcaption_idx\tcaption\na.jpg\ttrain\t0\ta caf\xe9\n",
            "line 2 is not valid UTF-8",
        ),
        (b"image,split,caption_idx,caption\n", "line 1 must be the header"),
        (b"image\tsplit\tcaption_idx\tcaption\na.jpg\tval\t0\tx\n", "split 'val' is not"),
    ],
)
def test_bad_captions_file(tmp_path, content, message):
    folder = tmp_path / "flickr8k-1k"
    folder.mkdir()
    (folder / "captions.tsv").write_bytes(content)
    with pytest.raises(DataError, match=message) as e:
        load_photos("flickr8k-1k", tmp_path)
    assert "\n" not in str(e.value)


def test_missing_photo_is_named(data_root, tmp_path):
    root, _ = _slice_copy(data_root, tmp_path)
    victim = next((root / "flickr8k" / "Flicker8k_Dataset").iterdir())
    victim.unlink()
    with pytest.raises(DataError, match=f"{victim.name}: missing photo"):
        load_photos("flickr8k", root)


def test_read_captions_tsv_groups_by_photo(tmp_path):
    tsv = tmp_path / "c.tsv"
    tsv.write_text(
        "image\tsplit\tcaption_idx\tcaption\na.jpg\ttrain\t0\tone\na.jpg\ttrain\t1\ttwo\nb.jpg\tdev\t0\tx\n"
    )
    photos = read_captions_tsv(tsv, tmp_path)
    assert [(p.name, p.split, p.captions) for p in photos] == [
        ("a.jpg", "train", ["one", "two"]),
        ("b.jpg", "dev", ["x"]),
    ]


def _save(tmp_path, name, array, mode=None):
    path = tmp_path / name
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_photos_of_every_kind_become_rgb_squares(tmp_path, data_root):
    rng = np.random.default_rng(0)
    grey = _save(tmp_path, "grey.png", rng.integers(0, 255, (30, 40), dtype=np.uint8))
    rgba = rng.integers(0, 255, (20, 20, 4), dtype=np.uint8)
    rgba[..., 3] = 0  # fully transparent: white after compositing
    transparent = _save(tmp_path, "rgba.png", rgba)
    deep = _save(tmp_path, "deep.png", np.full((16, 16), 65535, dtype=np.uint16))
    tiny = _save(tmp_path, "tiny.png", rng.integers(0, 255, (10, 10, 3), dtype=np.uint8))
    huge = _save(tmp_path, "huge.jpg", rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    real = next((data_root / "flickr8k-1k" / "images").glob("*.jpg"))
    for path in (grey, transparent, deep, tiny, huge, real):
        photo = load_photo(path, 64)
        assert photo.shape == (3, 64, 64) and photo.dtype == torch.uint8, path
    assert load_photo(transparent, 8).min() == 255 and load_photo(deep, 8).min() == 255


def test_unreadable_photos_are_one_line_errors(tmp_path, data_root):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    real = next((data_root / "flickr8k-1k" / "images").glob("*.jpg")).read_bytes()
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(real[: len(real) // 2])
    for path in (text, truncated, tmp_path / "absent.jpg"):
        with pytest.raises(DataError, match=str(path.name)) as e:
            load_photo(path)
        assert "\n" not in str(e.value)


def test_feature_cache_computes_each_photo_once(tmp_path, data_root):
    paths = sorted((data_root / "flickr8k-1k" / "images").glob("*.jpg"))[:3]
    calls = []

    def encode(u8):
        calls.append(len(u8))
        return u8.float().mean((2, 3))  # (B, 3): a stand-in encoder

    cache = FeatureCache(tmp_path, "test", image_size=32)
    first = cache.get(paths[:2], encode)
    both = cache.get(paths, encode)
    assert calls == [2, 1] and both.shape == (3, 3)
    assert torch.equal(both[:2], first)
    assert torch.equal(cache.get(paths[::-1], encode), both.flip(0)) and calls == [2, 1]
    cache.path.write_bytes(b"garbage")  # a broken cache file is rebuilt, not trusted
    assert torch.equal(cache.get(paths, encode), both)
