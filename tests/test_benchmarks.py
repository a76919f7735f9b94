"""Standard benchmark layouts (issue 34), each on a copy of its layout built from the shared data:
IAM lines (from bronod), Karpathy's caption splits (from the Flickr8k slice), the official Moving
MNIST test file's shape (from generated sequences); and the coco-caption metrics against ours."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmvision.data.captions import load_photos, tokenize
from lstmvision.data.digits import load_split
from lstmvision.data.lines import line_splits, read_labels_tsv
from lstmvision.data.moving_mnist import moving_mnist
from lstmvision.data.moving_mnist_file import MovingMNISTFile
from lstmvision.errors import ConfigError, DataError
from lstmvision.tasks.coco_caption import (
    coco_caption_scores,
    coco_tokenize,
    java_available,
    ptb_like_tokens,
)
from lstmvision.tasks.config import recipe_defaults
from lstmvision.tasks.metrics import FrameMetrics, bleu_metrics, cider_d
from lstmvision.tasks.textline import TextLineConfig

# ------------------------------------------------------------------------------------------ IAM


def _iam_layout(data_root: Path, tmp: Path, forms: int = 4, per_form: int = 3) -> dict:
    """bronod lines renamed into IAM's layout: form ``a01-00{k}`` holds ``per_form`` lines."""
    lines = read_labels_tsv(data_root / "lines-bronod" / "labels.tsv")[: forms * per_form]
    rows, texts = ["# IAM lines.txt layout copy", "#"], {}
    for i, line in enumerate(lines):
        form = f"a01-00{i // per_form}"
        ident = f"{form}-{i % per_form:02d}"
        image = tmp / "lines" / "a01" / form / f"{ident}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(line.image, image)  # a jpg under a .png name: PIL reads the content
        rows.append(f"{ident} ok 154 19 408 746 1661 89 {line.text.replace(' ', '|')}")
        texts[ident] = line.text
    (tmp / "ascii").mkdir()
    (tmp / "ascii" / "lines.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return texts


def _write(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_iam_aachen_lines_txt(data_root, tmp_path):
    texts = _iam_layout(data_root, tmp_path)
    _write(tmp_path / "tr.lst", ["a01-000", "a01-001"])  # forms: all their lines
    _write(tmp_path / "va.lst", ["a01-002-00", "a01-002-01", "a01-002-02"])  # line ids
    _write(tmp_path / "te.lst", ["a01-003"])
    splits = line_splits("iam", tmp_path)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [6, 3, 3]
    for line in splits["train"] + splits["val"] + splits["test"]:
        assert line.text == texts[line.id]  # spaces and case as written
        assert line.image.name == f"{line.id}.png" and line.image.is_file()
    assert any(" " in ln.text for ln in splits["train"])
    assert recipe_defaults(TextLineConfig, "iam")["height"] == 64  # the GPU recipe file


def test_iam_xml_and_rwth_lists(data_root, tmp_path):
    texts = _iam_layout(data_root, tmp_path, forms=3, per_form=2)
    (tmp_path / "ascii" / "lines.txt").unlink()
    for form in ("a01-000", "a01-001", "a01-002"):
        ids = [i for i in texts if i.startswith(form)]
        xml = "".join(
            f'<line id="{i}" text="{texts[i].replace("&", "&amp;").replace(chr(34), "&quot;")}"/>'
            for i in ids
        )
        _write(tmp_path / "xml" / f"{form}.xml", [f"<form><handwritten-part>{xml}"])
        (tmp_path / "xml" / f"{form}.xml").write_text(
            f'<?xml version="1.0"?><form id="{form}"><handwritten-part>{xml}'
            "</handwritten-part></form>"
        )
    rwth = tmp_path / "splits" / "rwth"
    _write(rwth / "train.txt", ["a01-000-00", "a01-000-01", "a01-001-00"])
    _write(rwth / "valid.txt", ["a01-001-01"])
    _write(rwth / "test.txt", ["a01-002"])
    splits = line_splits("iam-rwth", tmp_path)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [3, 1, 2]
    assert all(ln.text == texts[ln.id] for s in splits.values() for ln in s)
    with pytest.raises(DataError, match=r"no iam split lists \(tr.lst, va.lst, te.lst\)"):
        line_splits("iam", tmp_path)  # only the RWTH lists are there


def test_iam_partial_layouts_name_what_is_missing(data_root, tmp_path):
    with pytest.raises(DataError, match="IAM lines not found.*lines/a01"):
        line_splits("iam", tmp_path)
    _iam_layout(data_root, tmp_path, forms=2, per_form=2)
    _write(tmp_path / "tr.lst", ["a01-000"])
    _write(tmp_path / "va.lst", ["a01-001-00"])
    with pytest.raises(DataError, match="split lists incomplete: no te.lst") as e:
        line_splits("iam", tmp_path)
    assert "\n" not in str(e.value)
    _write(tmp_path / "te.lst", ["a01-001-01", "a01-009-00"])
    with pytest.raises(DataError, match="te.lst: a01-009-00 is neither a line nor a form"):
        line_splits("iam", tmp_path)
    _write(tmp_path / "te.lst", ["a01-001-01"])
    (tmp_path / "lines" / "a01" / "a01-001" / "a01-001-01.png").unlink()
    with pytest.raises(DataError, match=r"a01-001-01.png: no such line image \(line a01-001-01"):
        line_splits("iam", tmp_path)
    (tmp_path / "ascii" / "lines.txt").write_text("a01-000-00 ok 1 2\n")
    with pytest.raises(DataError, match=r"lines.txt:1: expected `id ok\|err"):
        line_splits("iam", tmp_path)


# ------------------------------------------------------------------------------------- captions


def _karpathy_flickr8k(data_root: Path, tmp: Path) -> dict:
    """The slice as Karpathy's dataset_flickr8k.json, beside a link to its photos."""
    slice_ = load_photos("flickr8k-1k", data_root)
    names = {"train": "train", "dev": "val", "test": "test"}
    images = []
    for split, photos in slice_.items():
        for k, p in enumerate(photos):
            kind = "restval" if split == "train" and k % 50 == 0 else names[split]
            sentences = [{"raw": c, "tokens": tokenize(c)} for c in p.captions]
            images.append({"filename": p.name, "split": kind, "sentences": sentences})
    folder = tmp / "flickr8k"
    folder.mkdir()
    (folder / "images").symlink_to(data_root / "flickr8k-1k" / "images")
    (folder / "dataset_flickr8k.json").write_text(json.dumps({"images": images}))
    return slice_


def test_karpathy_flickr8k_layout(data_root, tmp_path):
    slice_ = _karpathy_flickr8k(data_root, tmp_path)
    photos = load_photos("flickr8k-karpathy", tmp_path)
    for split in ("train", "dev", "test"):  # restval trains; val is our dev
        assert [p.name for p in photos[split]] == [p.name for p in slice_[split]]
        assert [p.captions for p in photos[split]] == [p.captions for p in slice_[split]]
        assert all(p.path.is_file() for p in photos[split])


def test_karpathy_coco_filepath_and_missing_files(data_root, tmp_path):
    source = sorted((data_root / "flickr8k-1k" / "images").glob("*.jpg"))[:3]
    images = []
    folders = ("train2014", "val2014", "val2014")
    for path, split, folder in zip(source, ("train", "val", "test"), folders):
        (tmp_path / "coco" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "coco" / folder / path.name).symlink_to(path)
        sentences = [{"raw": "A dog runs.", "tokens": ["a", "dog", "runs"]}]
        images.append(
            {"filepath": folder, "filename": path.name, "split": split, "sentences": sentences}
        )
    with pytest.raises(DataError, match="dataset_coco.json: Karpathy's split file not found"):
        load_photos("coco", tmp_path)
    (tmp_path / "coco" / "dataset_coco.json").write_text(json.dumps({"images": images}))
    photos = load_photos("coco", tmp_path)
    assert photos["dev"][0].path == tmp_path / "coco" / "val2014" / source[1].name
    (tmp_path / "coco" / "val2014" / source[2].name).unlink()
    with pytest.raises(DataError, match=f"{source[2].name}: missing photo") as e:
        load_photos("coco", tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "coco" / "dataset_coco.json").write_text(json.dumps({"images": [{"x": 1}]}))
    with pytest.raises(DataError, match="image 0 lacks filename"):
        load_photos("coco", tmp_path)


def _brevity_penalty(hyps: list[str], refs: list[list[str]], shorter_on_tie: bool) -> float:
    c = r = 0
    for h, rs in zip(hyps, refs):
        n, lengths = len(h.split()), [len(x.split()) for x in rs]
        closest = min(lengths, key=lambda x, n=n: (abs(x - n), x if shorter_on_tie else 0))
        c, r = c + n, r + closest  # min keeps the first of equal keys
    return 1.0 if c > r else math.exp(1 - r / c)


def test_coco_caption_metrics_match_ours_on_the_slice(data_root):
    """Leave-one-out on the slice's test photos: the first caption against the other four."""
    photos = load_photos("flickr8k-1k", data_root)["test"]
    hyps = [" ".join(tokenize(p.captions[0])) for p in photos]
    refs = [[" ".join(tokenize(c)) for c in p.captions[1:]] for p in photos]
    ours = []
    for metric in bleu_metrics():
        metric.update(hyps, refs)
        ours.append(float(metric.compute()))
    coco, notes = coco_caption_scores(hyps, refs, tokenized=True, java=False)
    assert coco["cider"] == pytest.approx(cider_d(hyps, refs), abs=1e-12)  # the same code
    # BLEU: the same clipped n-gram precisions; the brevity penalty's reference length breaks
    # ties between equally close references differently (coco-caption: the shorter one).
    bp_ratio = _brevity_penalty(hyps, refs, True) / _brevity_penalty(hyps, refs, False)
    assert bp_ratio != 1.0  # the slice has such ties: the check below can fail
    for n in range(4):
        assert coco[f"bleu{n + 1}"] == pytest.approx(ours[n] * bp_ratio, rel=1e-5)
    assert 0.15 < coco["bleu4"] < 0.3 and 0.3 < coco["rouge_l"] < 0.7
    assert "METEOR skipped: it needs Java" in " ".join(notes) and "meteor" not in coco
    raw_hyps, raw_refs = [p.captions[0] for p in photos], [p.captions[1:] for p in photos]
    raw, _ = coco_caption_scores(raw_hyps, raw_refs, java=False)
    assert raw["bleu4"] == pytest.approx(coco["bleu4"], abs=0.01)  # tokens differ a little


@pytest.mark.skipif(not java_available(), reason="no Java: coco-caption's PTBTokenizer needs it")
def test_pure_python_tokens_equal_ptbtokenizer_on_the_slice(data_root):
    photos = [p for s in load_photos("flickr8k-1k", data_root).values() for p in s]
    captions = {i: [c] for i, c in enumerate(c for p in photos for c in p.captions)}
    java = coco_tokenize(captions, java=True)
    assert all(ptb_like_tokens(captions[i][0]) == java[i][0] for i in captions)


# ----------------------------------------------------------------------------- Moving MNIST npy


def test_moving_mnist_official_shape_and_openstl_metrics(data_root, tmp_path):
    digits, _ = load_split("mnist", data_root, "test")
    sequences = moving_mnist(digits[:200].numpy(), 6, seed=3)  # (N, 20, 64, 64)
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, sequences.transpose(1, 0, 2, 3))  # the official (20, N, 64, 64)
    data = MovingMNISTFile(path, num_frames=20)
    assert len(data) == 6 and data[4].shape == (20, 1, 64, 64)
    assert torch.equal(data[4][:, 0], torch.from_numpy(sequences[4]).float() / 255)
    # OpenSTL: per-frame sums over pixels, averaged over frames and sequences, pixels in [0, 1]
    frames = torch.stack([data[i] for i in range(len(data))])  # (N, 20, 1, 64, 64)
    truth, copy_last = frames[:, 10:], frames[:, 9:10].expand(-1, 10, -1, -1, -1)
    metrics = FrameMetrics()
    metrics.update(copy_last, truth)
    t, p = sequences[:, 10:] / 255.0, np.repeat(sequences[:, 9:10], 10, 1) / 255.0
    openstl_mse = np.mean(np.sum((p - t) ** 2, axis=(2, 3)))
    openstl_mae = np.mean(np.sum(np.abs(p - t), axis=(2, 3)))
    assert float(metrics.mse.compute()) == pytest.approx(openstl_mse, rel=1e-5)
    assert float(metrics.mae.compute()) == pytest.approx(openstl_mae, rel=1e-5)
    assert openstl_mse > 10  # digits move: the check above can fail


def test_moving_mnist_test_file_wrong_layouts(tmp_path, data_root):
    from lstmvision.tasks.next_frame import NextFrameConfig, NextFrameData, NextFrameTask

    with pytest.raises(DataError, match="mnist_test_seq.npy: no such file"):
        MovingMNISTFile(tmp_path / "mnist_test_seq.npy")
    np.save(tmp_path / "bad.npy", np.zeros((20, 3, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"shape \(20, 3, 32, 32\) uint8, expected"):
        MovingMNISTFile(tmp_path / "bad.npy")
    np.save(tmp_path / "short.npy", np.zeros((12, 3, 64, 64), np.uint8))
    with pytest.raises(DataError, match="12 frames of 3 sequences.*need 20"):
        MovingMNISTFile(tmp_path / "short.npy", 20)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="junk.npy: not a readable .npy array"):
        MovingMNISTFile(tmp_path / "junk.npy")
    np.save(tmp_path / "ok.npy", np.zeros((20, 2, 64, 64), np.uint8))
    cfg = NextFrameConfig(
        dataset="moving-mnist",
        frame_size="64x64",
        input_frames=10,
        output_frames=10,
        test_file=str(tmp_path / "ok.npy"),
        data_root=str(data_root),
        limit_train=50,
        train_size=4,
        val_size=2,
    )
    dm = NextFrameData(cfg)
    dm.setup("test")
    assert isinstance(dm.sets["test"], MovingMNISTFile) and len(dm.sets["test"]) == 2
    assert len(dm.sets["val"]) == 2  # the generated sets stay for training
    dm = NextFrameTask().evaluation_datamodule(cfg, tmp_path / "ok.npy")
    assert list(dm.sets) == ["test"]
    with pytest.raises(ConfigError, match="--data takes a Moving MNIST .npy"):
        NextFrameTask().evaluation_datamodule(cfg, tmp_path / "folder")
    cfg.dataset = "visp"
    with pytest.raises(ConfigError, match="--test-file is a Moving MNIST .npy"):
        NextFrameTask().resolve(cfg)
