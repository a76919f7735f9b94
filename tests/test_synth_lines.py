"""Synthetic printed lines (synth-print): deterministic rendering, fonts, charset, splits,
training."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from PIL import ImageFont

from lstmvision.data.lines import Charset, load_line
from lstmvision.data.synth_lines import (
    CHARSET,
    FONTS,
    corpus_words,
    font_dir,
    load_font,
    render_line,
    synth_line_splits,
    synth_text,
)

TINY = {"channels": "4,8,8,8", "hidden_size": 8, "num_layers": 1, "batch_size": 8}


def test_rendering_is_deterministic_for_a_seed(data_root):
    a = synth_line_splits(data_root, {"train": 6, "val": 2, "test": 2}, seed=3)
    b = synth_line_splits(data_root, {"train": 6, "val": 2, "test": 2}, seed=3)
    c = synth_line_splits(data_root, {"train": 6, "val": 2, "test": 2}, seed=4)
    assert [ln.text for ln in a["train"]] == [ln.text for ln in b["train"]]
    assert [ln.text for ln in a["train"]] != [ln.text for ln in c["train"]]
    for x, y in zip(a["train"], b["train"]):
        assert np.array_equal(np.asarray(x.draw()), np.asarray(y.draw()))
        assert np.array_equal(
            np.asarray(x.draw()), np.asarray(x.draw())
        )  # drawing twice: the same image
    assert not np.array_equal(np.asarray(a["train"][0].draw()), np.asarray(c["train"][0].draw()))


def test_images_are_grey_cropped_lines_of_the_expected_height(data_root):
    lines = synth_line_splits(data_root, {"train": 8}, seed=0)["train"]
    for line in lines:
        image = np.asarray(line.draw())
        assert image.dtype == np.uint8 and image.ndim == 2
        assert 10 <= image.shape[0] < 120 and image.shape[1] > image.shape[0] // 2
        assert np.median(image) > 128 and image.min() < 100  # dark ink on white paper, some ink
        tensor = load_line(line, 32)  # what the task trains on: ink bright, height 32
        assert tensor.shape[0] == 32 and 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0
        assert float(tensor.mean()) < 0.5


def test_texts_round_trip_through_the_charset_and_splits_are_disjoint(data_root):
    charset = Charset(CHARSET)
    splits = synth_line_splits(data_root, {"train": 200, "val": 50, "test": 50}, seed=0)
    for lines in splits.values():
        for line in lines:
            assert line.text and line.text == line.text.strip() and len(line.text) <= 100
            assert charset.count_unknown(line.text) == 0
            assert charset.decode(charset.encode(line.text)) == line.text

    # the corpus blocks of the splits are disjoint: the 8-word runs they share are the corpora's own
    # repeats (3 stock phrases such as "one of the best films of the year.")
    def grams(split):
        words = corpus_words(str(data_root), split)
        return {words[i : i + 8] for i in range(len(words) - 8)}

    train, val, test = grams("train"), grams("val"), grams("test")
    assert len(train) > 8 * len(val) > 0 and len(test) > 0
    assert len(train & val) <= 5 and len(train & test) <= 5 and len(val & test) <= 5
    # technical print: digits, brackets and LaTeX quotes appear in the text
    text = "".join(ln.text for ln in splits["train"])
    assert set("0123456789()[]-/%:;,.'") <= set(text) and "``" in text


@pytest.mark.parametrize("font", [name for name, _ in FONTS])
def test_every_character_of_every_font_renders(font):
    face = load_font(font, 32)
    missing = np.asarray(face.getmask("\U000f0000"))  # a code point no font has: the .notdef box
    for char in CHARSET[1:] + "\u201c\u201d\u2018\u2019":
        mask = face.getmask(char)
        assert mask.getbbox() is not None, (font, char)
        a = np.asarray(mask)
        assert not (a.shape == missing.shape and np.array_equal(a, missing)), (font, char)
    assert isinstance(face, ImageFont.FreeTypeFont) and (font_dir(font) / font).is_file()


def test_render_line_every_font_has_ink():
    for font, _ in FONTS:
        image = render_line(
            "Aho et al. [1974], p. 5-7: ``x'' (50%)", random.Random(0), font=font, size=30
        )
        assert (image < 128).sum() > 200, font


def test_synth_text_mixes_corpus_and_tokens():
    words = ("the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog")
    texts = [synth_text(words, random.Random(i)) for i in range(100)]
    assert all(texts) and len(set(texts)) > 90
    assert any(any(c.isdigit() for c in t) for t in texts)


@pytest.fixture(scope="module")
def synth_run(data_root, tmp_path_factory):
    from lstmvision.tasks import runner

    overrides = {
        "dataset": "synth-print",
        "data_root": str(data_root),
        "lines": 16,
        "epochs": 1,
        "lm": False,
        "augment": 0.0,
        **TINY,
    }
    return runner.train(
        "textline", overrides, out=tmp_path_factory.mktemp("synth") / "run", quiet=True
    )


def test_tiny_training_on_synth_lines_and_charset_covers_ascii(synth_run):
    m = json.loads((synth_run.run_dir / "metrics.json").read_text())
    assert {"val_cer", "test_cer"} <= set(m) and m["test_unknown_chars"] == 0
    spec = json.loads((synth_run.run_dir / "model.json").read_text())
    assert spec["kwargs"]["charset"] == CHARSET  # all of printable ASCII, sorted (space first)


def test_uw3_from_a_synth_run_knows_every_test_character(synth_run, data_root):
    from lstmvision.tasks.textline import TextLineTask

    task = TextLineTask()
    cfg = task.Config(
        dataset="uw3",
        data_root=str(data_root),
        from_run=str(synth_run.run_dir),
        channels="4,8,8,8",
        num_layers=1,
    )
    task.resolve(cfg)  # --from: the source run's LSTM size
    dm = task.datamodule(cfg)
    model = task.build_model(cfg)
    assert cfg.hidden_size == 8  # the source run's, not the config's 192
    assert set(CHARSET) <= set(model.charset)
    charset = Charset(model.charset)
    assert sum(charset.count_unknown(ln.text) for ln in dm.splits["test"]) == 0
