"""Text-line recognition: CTC decoding, charset, line data, config, CRNN shapes, training, CLI
end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from lstmvision.data.lines import (
    Charset,
    Line,
    line_splits,
    line_tensor,
    load_line,
    page_of,
    read_gt_folder,
    read_labels_tsv,
    read_line_folder,
    read_page_xml,
    write_page_xml,
)
from lstmvision.errors import DataError
from lstmvision.models import get_model
from lstmvision.nn.ctc import brute_force_labellings, greedy_decode, prefix_beam_search

TINY = {"channels": "4,8,8,8", "hidden_size": 8, "num_layers": 1, "batch_size": 8}

# ----------------------------------------------------------------------------------- decoding


def test_greedy_decode_hand_made_matrix():
    # frames' best symbols: a a _ a b b _ _  (0 = blank) -> "a a b": the blank separates the repeat
    best = [1, 1, 0, 1, 2, 2, 0, 0]
    probs = torch.full((8, 3), 0.1)
    probs[torch.arange(8), best] = 0.8
    ((labels, frames),) = greedy_decode(probs.log())
    assert labels == [1, 1, 2] and frames == [0, 3, 4]
    # batched with lengths: the second sequence stops after 2 frames
    batch = torch.stack([probs.log(), probs.log()], 1)  # (T, B, C)
    assert [r[0] for r in greedy_decode(batch, torch.tensor([8, 2]))] == [[1, 1, 2], [1]]


@pytest.mark.parametrize("seed", range(4))
def test_prefix_beam_search_equals_brute_force(seed):
    torch.manual_seed(seed)
    log_probs = (
        torch.randn(5, 3, dtype=torch.float64).mul(2).log_softmax(-1)
    )  # T=5, blank + 2 characters: 243 paths
    exact = brute_force_labellings(log_probs)
    assert math.isclose(sum(math.exp(v) for v in exact.values()), 1.0, rel_tol=1e-9)
    wide = prefix_beam_search(log_probs, beam=1000, prune=None)
    assert {tuple(seq): s for seq, s in wide} == pytest.approx(exact, rel=1e-9, abs=1e-12)
    best = max(exact, key=exact.get)
    assert tuple(prefix_beam_search(log_probs, beam=4, prune=None)[0][0]) == best
    # the beam's best is never worse than the best path's labelling
    greedy = tuple(greedy_decode(log_probs)[0][0])
    assert exact[best] >= exact[greedy]


def test_beam_search_refuses_bad_arguments():
    with pytest.raises(ValueError, match="beam"):
        prefix_beam_search(torch.zeros(3, 2), beam=0)
    with pytest.raises(ValueError, match=r"\(T, C\)"):
        prefix_beam_search(torch.zeros(3, 1, 2))


# ------------------------------------------------------------------------------------ charset


def test_charset_round_trip_and_unknown_counted():
    cs = Charset.from_texts(["bac", "été"])
    assert cs.chars == "abcté" and cs.num_classes == 6  # sorted by code point
    assert cs.decode(cs.encode("cabé")) == "cabé"
    assert cs.encode("aZb") == [1, 2] and cs.unknown["Z"] == 1 and cs.count_unknown("ZZa") == 2
    assert cs.decode([0, 1, 99]) == "a"  # blank and out-of-range indices decode to nothing


# ---------------------------------------------------------------------------------- line data


def test_bronod_split_by_page_never_by_line(data_root):
    splits = line_splits("bronod", data_root)
    pages = {k: {page_of(ln) for ln in v} for k, v in splits.items()}
    assert (
        not (pages["train"] & pages["val"])
        and not (pages["train"] & pages["test"])
        and not (pages["val"] & pages["test"])
    )
    assert pages["val"] == set(range(10, 91, 10)) and pages["test"] == set(range(5, 90, 10))
    assert sum(map(len, splits.values())) == 3401 and len(pages["train"]) == 72


def test_uw3_splits_and_images(data_root):
    splits = line_splits("uw3", data_root)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [45, 5, 20]
    image = load_line(splits["test"][0], 32)  # RGBA, black text on white
    assert image.shape[0] == 32 and image.shape[1] > 200
    assert image.median() < 0.2 and image.max() > 0.8  # inverted: paper dark, ink bright


def test_line_tensor_any_mode_and_extreme_widths():
    rng = np.random.default_rng(0)
    grey = (rng.random((40, 300)) * 60 + 190).astype(np.uint8)  # light paper
    grey[15:25, 50:250] = 0  # dark ink
    for im in (
        Image.fromarray(grey),
        Image.fromarray(grey).convert("RGB"),
        Image.fromarray(grey.astype(np.uint16) * 257),
    ):
        x = line_tensor(im, 32)
        assert x.shape == (32, 240) and x[16, 100] > 0.9 and x[2, 100] < 0.5
    assert line_tensor(Image.new("L", (1, 50), 255), 32).shape == (32, 1)
    assert line_tensor(Image.new("L", (5000, 48), 255), 32).shape == (32, 3333)


def test_generic_folders_and_bad_input(tmp_path):
    lines = tmp_path / "set" / "lines"
    lines.mkdir(parents=True)
    Image.new("L", (60, 20), 255).save(lines / "a.png")
    (tmp_path / "set" / "labels.tsv").write_text("a.png\tHé llo \n", encoding="utf-8")
    (got,) = read_line_folder(tmp_path / "set")
    assert got.text == "Hé llo" and got.image == lines / "a.png"
    (tmp_path / "set" / "labels.tsv").write_text("a.png\tok\nmissing.png\tx\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"missing\.png: no such image \(named on line 2"):
        read_labels_tsv(tmp_path / "set" / "labels.tsv")
    (tmp_path / "set" / "labels.tsv").write_text("a.png only\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"labels\.tsv:1: expected file<TAB>text"):
        read_labels_tsv(tmp_path / "set" / "labels.tsv")
    gt = tmp_path / "gt"
    gt.mkdir()
    Image.new("RGB", (30, 10), "white").save(gt / "x1.bin.png")
    (gt / "x1.gt.txt").write_text("", encoding="utf-8")  # empty transcription: a valid CTC target
    (gt / "x2.gt.txt").write_text("orphan", encoding="utf-8")
    with pytest.raises(DataError, match=r"x2\.gt\.txt: no image beside it"):
        read_gt_folder(gt)
    (gt / "x2.gt.txt").unlink()
    assert [(ln.image.name, ln.text) for ln in read_gt_folder(gt)] == [("x1.bin.png", "")]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        load_line(Line(broken, ""), 32)


PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">
  <Page imageFilename="page.png" imageWidth="200" imageHeight="100">
    <TextRegion id="r1"><Coords points="0,0 200,0 200,100 0,100"/>
      <TextLine id="l1"><Coords points="10,10 190,10 190,40 10,40"/>
        <TextEquiv><Unicode>old</Unicode></TextEquiv></TextLine>
      <TextLine id="l2"><Coords points="10,50 150,50 150,90 10,90"/></TextLine>
    </TextRegion>
  </Page>
</PcGts>"""


def test_page_xml_read_write_and_malformed(tmp_path):
    Image.new("L", (200, 100), 255).save(tmp_path / "page.png")
    (tmp_path / "page.xml").write_text(PAGE, encoding="utf-8")
    lines = read_page_xml(tmp_path / "page.xml")
    assert [(ln.id, ln.text, ln.box) for ln in lines] == [
        ("l1", "old", (10, 10, 191, 41)),
        ("l2", "", (10, 50, 151, 91)),
    ]
    assert load_line(lines[1], 32).shape == (32, 110)
    out = write_page_xml(tmp_path / "page.xml", {"l1": "new", "l2": "two"}, tmp_path / "out.xml")
    assert [ln.text for ln in read_page_xml(out, tmp_path / "page.png")] == ["new", "two"]
    (tmp_path / "bad.xml").write_text(PAGE[:300], encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.xml: not well-formed XML"):
        read_page_xml(tmp_path / "bad.xml")
    (tmp_path / "coords.xml").write_text(
        PAGE.replace("10,50 150,50", "10,50 x,y"), encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"coords\.xml: TextLine l2 has malformed Coords"):
        read_page_xml(tmp_path / "coords.xml")


def test_width_batches_cover_every_line_once_and_reshuffle():
    from lstmvision.data.line_batches import WidthBatches, width_sorted_batches

    widths = [7, 3, 9, 1, 5, 8, 2, 6, 4, 10, 11]
    sampler = WidthBatches(widths, batch_size=4, seed=0)
    first, second = list(sampler), list(sampler)
    assert len(first) == len(sampler) == 3 and first != second  # a new order every epoch
    for epoch in (first, second):
        assert sorted(i for batch in epoch for i in batch) == list(range(len(widths)))
    ordered = width_sorted_batches(widths, 4)
    assert [[widths[i] for i in b] for b in ordered] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11]]


# ----------------------------------------------------------------------------------- config

# what `train textline --dataset D` ran before the recipe files (DATASET_DEFAULTS filled the keys
# left unset): the recipe files must give the same
OLD_DEFAULTS = {
    "bronod": {"epochs": 60, "batch_size": 16, "hidden_size": 192},
    "uw3": {"epochs": 300, "batch_size": 4, "hidden_size": 128},
    "synth-print": {"epochs": 3, "batch_size": 16, "hidden_size": 128, "lines": 20000},
    "a-folder/of-lines": {"epochs": 60, "batch_size": 16, "hidden_size": 192},
}


@pytest.mark.parametrize("dataset", list(OLD_DEFAULTS))
def test_recipes_give_each_data_set_its_defaults(dataset):
    from lstmvision.tasks.config import recipe_file, resolve_config
    from lstmvision.tasks.textline import TextLineConfig, TextLineTask

    cfg = resolve_config(TextLineConfig, None, {"dataset": dataset})
    TextLineTask().resolve(cfg)
    assert {k: getattr(cfg, k) for k in OLD_DEFAULTS[dataset]} == OLD_DEFAULTS[dataset]
    assert (recipe_file(TextLineConfig, dataset) is None) == ("/" in dataset)
    flags = resolve_config(TextLineConfig, None, {"dataset": dataset, "epochs": 2})
    assert flags.epochs == 2 and flags.hidden_size == OLD_DEFAULTS[dataset]["hidden_size"]


def test_resolve_takes_the_from_runs_lstm_size_and_refuses_bad_values(tiny_run):
    from lstmvision.errors import ConfigError
    from lstmvision.tasks.config import resolve_config
    from lstmvision.tasks.textline import TextLineConfig, TextLineTask

    task = TextLineTask()
    overrides = {"dataset": "uw3", "from_run": str(tiny_run.run_dir), "hidden_size": 64}
    cfg = resolve_config(TextLineConfig, None, overrides)
    task.resolve(cfg)
    assert cfg.hidden_size == TINY["hidden_size"]  # the source run's: its weights must fit
    for bad, match in (
        ({"height": 40}, "multiple of 16"),
        ({"channels": "4,8"}, "4 positive integers"),
        ({"dataset": "synth-print", "lines": 0}, "at least 1"),
        ({"lm_order": 0}, "at least 1"),
    ):
        with pytest.raises(ConfigError, match=match):
            task.resolve(resolve_config(TextLineConfig, None, bad))


def test_an_old_run_config_still_loads(tmp_path):
    import yaml

    from lstmvision.tasks import run_folder
    from lstmvision.tasks.textline import TextLineTask

    # config.yaml as training wrote it before the recipe files (lines: null outside synth-print)
    keys = dict(dataset="bronod", data_root=None, download=False, epochs=60, max_steps=-1)
    keys.update(limit_train=None, batch_size=16, lr=0.002, seed=0, accelerator="cpu")
    keys.update(devices="1", strategy="auto", precision="32-true", num_workers=0)
    keys.update(checkpoint_every=100, val_fraction=0.1, lines=None, height=32)
    keys.update(channels="16,32,64,96", reduction=4, hidden_size=192, num_layers=2, dropout=0.2)
    keys.update(augment=1.0, weight_decay=1e-4, grad_clip=5.0, charset="ab c", from_run=None)
    keys.update(lm=True, lm_order=5)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"task": "textline", **keys}))
    cfg = run_folder.load_run_config(tmp_path, TextLineTask)
    assert vars(cfg) == {**keys, "num_nodes": 1, "exact_resume": False}  # newer keys: defaults


# ------------------------------------------------------------------------------------ model


def test_crnn_shapes_lengths_and_narrow_images():
    torch.manual_seed(0)
    model = get_model("crnn", charset="abc", height=32, channels=(4, 4, 8, 8), hidden_size=6).eval()
    assert model(torch.rand(1, 1, 32, 1)).shape == (1, 1, 4)  # 1 px wide: padded, one time step
    images, widths = torch.rand(3, 1, 32, 41), torch.tensor([41, 17, 3])
    images[1, ..., 17:] = 0
    images[2, ..., 3:] = 0
    features = model.forward_features(images, widths)  # (T, B, 2H)
    lengths = model.output_lengths(widths)
    assert features.shape == (11, 3, 12) and lengths.tolist() == [11, 5, 1]
    assert (
        features[5:, 1].abs().sum() == 0 and features[1:, 2].abs().sum() == 0
    )  # zero past each length
    logits = model(images, widths)
    loss = torch.nn.functional.ctc_loss(
        logits.log_softmax(-1), torch.tensor([1, 2, 3, 1, 2]), lengths, torch.tensor([3, 2, 0])
    )  # empty transcription included
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="height 32"):
        model(torch.rand(1, 1, 48, 20))
    half = get_model(
        "crnn", charset="abc", height=16, channels=(4, 4, 8, 8), hidden_size=6, reduction=2
    ).eval()
    assert half(torch.rand(2, 1, 16, 41)).shape == (21, 2, 4) and half.output_lengths(
        torch.tensor([1, 41])
    ).tolist() == [1, 21]


def test_reset_classifier_keeps_shared_characters():
    model = get_model("crnn", charset="abc", channels=(4, 4, 8, 8), hidden_size=6)
    old = model.head.weight.detach().clone()
    model.reset_classifier("xcb")
    assert model.charset == "xcb" and model.head.out_features == 4
    assert torch.equal(model.head.weight[2], old[3]) and torch.equal(model.head.weight[3], old[2])


# --------------------------------------------------------------------------------- training


def test_short_training_on_real_lines_lowers_the_loss(data_root):
    from lstmvision.tasks.textline import TextLineConfig, TextLineData, TextLineModule

    torch.manual_seed(0)
    splits = line_splits("uw3", data_root)
    charset = Charset.from_texts([ln.text for ln in splits["train"]])
    cfg = TextLineConfig(charset=charset.chars, height=32, batch_size=4, augment=0.0, seed=0)
    dm = TextLineData({"train": splits["train"][:4]}, cfg)
    model = get_model(
        "crnn",
        charset=charset.chars,
        height=32,
        channels=(8, 16, 16, 16),
        hidden_size=32,
        dropout=0.0,
    )
    module = TextLineModule(model, lr=3e-3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = next(iter(dm.train_dataloader()))
    losses = []
    for _ in range(25):
        loss, _, _ = module._loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.fixture(scope="module")
def tiny_run(data_root, tmp_path_factory):
    from lstmvision.tasks import runner

    out = tmp_path_factory.mktemp("textline") / "run"
    overrides = {
        "dataset": "uw3",
        "data_root": str(data_root),
        "epochs": 1,
        "limit_train": 8,
        "lm": False,
        **TINY,
    }
    return runner.train("textline", overrides, out=out, quiet=True)


def test_run_folder_metrics_and_pictures(tiny_run):
    m = json.loads((tiny_run.run_dir / "metrics.json").read_text())
    assert {"val_cer", "test_cer", "test_wer", "test_unknown_chars"} <= set(m)
    assert (
        0 <= m["test_cer"] and m["test_unknown_chars"] == 5
    )  # uw3 test has 5 characters the 45 lines lack
    assert (
        "test_cer_lm" not in m and not (tiny_run.run_dir / "lm.json").exists()
    )  # --no-lm: no language model
    spec = json.loads((tiny_run.run_dir / "model.json").read_text())
    assert spec["name"] == "crnn" and len(spec["kwargs"]["charset"]) == 66
    rows = (tiny_run.run_dir / "test_lines.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "line,cer,unknown_chars,target,prediction" and len(rows) == 21
    assert (tiny_run.run_dir / "alignment_0.png").stat().st_size > 1000


def test_cli_predict_transcribe_json_and_alignment(tiny_run, data_root, tmp_path):
    from lstmvision.cli import app

    line = sorted((data_root / "lines-uw3" / "test").glob("*.png"))[0]
    cli = CliRunner()
    result = cli.invoke(
        app,
        [
            "predict",
            str(tiny_run.run_dir),
            str(line),
            "--json",
            "--beam",
            "3",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    (pred,) = json.loads(result.stdout)
    assert pred["image"] == str(line) and isinstance(pred["text"], str)
    assert Path(pred["alignment"]).is_file()
    result = cli.invoke(
        app, ["transcribe", str(tiny_run.run_dir), str(line), str(tmp_path / "missing.png")]
    )
    assert result.exit_code == 1 and result.stdout.startswith(f"{line}\t")
    assert "missing.png: no such file" in result.stderr


def test_cli_page_xml_is_filled(tiny_run, tmp_path):
    from lstmvision.cli import app

    page = Image.new("L", (200, 100), 255)
    page.paste(0, (20, 20, 180, 30))
    page.save(tmp_path / "page.png")
    (tmp_path / "page.xml").write_text(PAGE, encoding="utf-8")
    result = CliRunner().invoke(
        app,
        [
            "transcribe",
            str(tiny_run.run_dir),
            "--page",
            str(tmp_path / "page.png"),
            "--page-xml",
            str(tmp_path / "page.xml"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 0, result.output
    filled = read_page_xml(tmp_path / "o" / "page.xml", tmp_path / "page.png")
    assert [ln.id for ln in filled] == ["l1", "l2"] and filled[0].text != "old"
    bad = CliRunner().invoke(
        app, ["transcribe", str(tiny_run.run_dir), "--page", str(tmp_path / "page.png")]
    )
    assert bad.exit_code == 1 and "--page needs --page-xml" in bad.stderr


def test_cli_evaluate_on_a_folder_writes_per_line_csv(tiny_run, data_root, tmp_path):
    from lstmvision.cli import app

    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(tiny_run.run_dir),
            "--data",
            str(data_root / "lines-uw3"),
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert {"test_cer", "test_wer"} <= set(metrics) and metrics["test_unknown_chars"] == 5
    assert "worst line" in result.stderr and (tmp_path / "lines.csv").is_file()


def test_bench_textline_times_one_line(tiny_run, data_root):
    from lstmvision.bench import textline

    line = sorted((data_root / "lines-uw3" / "test").glob("*.png"))[0]
    report = textline.run(tiny_run.run_dir, [line], repeats=2)
    (row,) = report["lines"]
    assert row["ms"] > 0 and row["width"] > 100 and "ms" in textline.format_report(report)


def test_from_run_keeps_charset_and_weights(tiny_run, data_root, tmp_path):
    from lstmvision.tasks import runner
    from lstmvision.tasks.textline import TextLineTask

    task = TextLineTask()
    cfg = task.Config(
        dataset="uw3", data_root=str(data_root), from_run=str(tiny_run.run_dir), **TINY
    )
    task.resolve(cfg)
    task.datamodule(cfg)
    model = task.build_model(cfg)
    _, _, source = runner.load(tiny_run.run_dir)
    assert set(source.charset) <= set(model.charset)
    assert torch.equal(model.rnn.weight_hh_l0, source.rnn.weight_hh_l0)


# --------------------------------------------------------------------------- language model


@pytest.fixture(scope="module")
def tiny_lm_run(data_root, tmp_path_factory):
    """A tiny run with the n-gram LM, on a folder of real UW3 lines: 8 train, 2 val, 2 test, the
    shortest ones (the beam search of an untrained model tries every character at every frame)."""
    import shutil

    from lstmvision.tasks import runner

    folder = tmp_path_factory.mktemp("lm-lines")
    images = sorted(
        (data_root / "lines-uw3" / "train").glob("*.bin.png"),
        key=lambda p: (Image.open(p).size[0], p.name),
    )
    for split, chosen in (("val", images[:2]), ("test", images[2:4]), ("train", images[4:12])):
        (folder / split).mkdir()
        for image in chosen:
            shutil.copy(image, folder / split)
            shutil.copy(image.with_name(image.name.replace(".bin.png", ".gt.txt")), folder / split)
    overrides = {"dataset": str(folder), "epochs": 1, "augment": 0.0, **TINY}
    return runner.train(
        "textline", overrides, out=tmp_path_factory.mktemp("textline-lm") / "run", quiet=True
    )


def test_training_tunes_an_lm_on_validation_and_writes_lm_json(tiny_lm_run):
    from lstmvision.nn.ngram import LineLM
    from lstmvision.tasks.textline_lm import LM_GRID

    run = tiny_lm_run.run_dir
    m = json.loads((run / "metrics.json").read_text())
    assert {
        "val_cer",
        "test_cer",
        "val_cer_lm",
        "test_cer_lm",
        "test_wer_lm",
        "lm_weight",
        "length_bonus",
    } <= set(m)
    saved = json.loads((run / "lm.json").read_text(encoding="utf-8"))
    assert (saved["lm_weight"], saved["length_bonus"]) == (m["lm_weight"], m["length_bonus"])
    assert saved["beam"] == 10 and len(saved["grid"]) == len(LM_GRID) and saved["train_lines"] == 8
    assert m["val_cer_lm"] == pytest.approx(
        min(r["val_cer"] for r in saved["grid"])
    )  # chosen on validation
    lm = LineLM.load(run / "lm.json")
    charset = json.loads((run / "model.json").read_text())["kwargs"]["charset"]
    assert lm.ngram.chars == charset and lm.ngram.order == 5
    # counted on the 8 training lines only: one event per character and one end per line
    train = [
        Path(p).read_text(encoding="utf-8").strip()
        for p in sorted((Path(yaml_dataset(run)) / "train").glob("*.gt.txt"))
    ]
    assert sum(sum(f.values()) for f in lm.ngram.counts.values()) == sum(len(t) + 1 for t in train)


def yaml_dataset(run: Path) -> str:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["dataset"]


def test_predict_beam_uses_the_runs_lm(tiny_lm_run, tiny_run, tmp_path):
    import shutil

    from lstmvision.cli import app
    from lstmvision.nn.ctc import beam_decode, decode_batch
    from lstmvision.nn.ngram import LineLM

    run = tmp_path / "run"
    shutil.copytree(tiny_lm_run.run_dir, run)
    saved = json.loads((run / "lm.json").read_text(encoding="utf-8"))
    saved.update(lm_weight=5.0, length_bonus=0.0)  # a heavy weight: the LM must show in the text
    (run / "lm.json").write_text(json.dumps(saved), encoding="utf-8")
    line = sorted((Path(yaml_dataset(run)) / "test").glob("*.png"))[0]
    cli = CliRunner()

    def predicted(*options):
        result = cli.invoke(app, ["predict", str(run), str(line), "--json", *options])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)[0]["text"]

    model = get_model("crnn", **json.loads((run / "model.json").read_text())["kwargs"])
    from safetensors.torch import load_file

    model.load_state_dict(load_file(run / "model.safetensors"))
    with torch.no_grad():
        _, (lp,) = decode_batch(model.eval(), load_line(Line(line, ""), 32)[None, None])
    with_lm, plain = (
        beam_decode(lp, model.charset, 3, LineLM.load(run / "lm.json")),
        beam_decode(lp, model.charset, 3),
    )
    assert with_lm != plain
    assert predicted("--beam", "3") == with_lm  # lm.json with its weights
    assert predicted("--beam", "3", "--lm-weight", "0") == plain  # 0 turns it off
    bad = cli.invoke(app, ["predict", str(run), str(line), "--lm-weight", "0.5"])
    assert bad.exit_code == 1 and "--lm-weight needs --beam 2 or more" in bad.stderr
    bad = cli.invoke(
        app, ["predict", str(tiny_run.run_dir), str(line), "--beam", "3", "--lm-weight", "1"]
    )
    assert bad.exit_code == 1 and "no lm.json" in bad.stderr and "textline-lm" in bad.stderr


def test_textline_lm_command_adds_the_lm_to_a_finished_run(tiny_lm_run, tmp_path):
    import shutil

    from lstmvision.cli import app

    run = tmp_path / "run"
    shutil.copytree(tiny_lm_run.run_dir, run)
    trained = json.loads((run / "metrics.json").read_text())
    lm_keys = {
        "val_cer_lm",
        "val_wer_lm",
        "test_cer_lm",
        "test_wer_lm",
        "lm_weight",
        "length_bonus",
    }
    (run / "lm.json").unlink()
    (run / "metrics.json").write_text(
        json.dumps({k: v for k, v in trained.items() if k not in lm_keys})
    )
    result = CliRunner().invoke(app, ["textline-lm", str(run)])
    assert result.exit_code == 0, result.output
    assert (
        "greedy" in result.stdout and "test CER" in result.stdout and "lm_weight" in result.stderr
    )
    again = json.loads((run / "metrics.json").read_text())
    assert again == pytest.approx(
        trained
    )  # the same figures as training's LM step, other keys kept
    assert json.loads((run / "lm.json").read_text())["lm_weight"] == trained["lm_weight"]
    bad = CliRunner().invoke(app, ["textline-lm", str(tmp_path / "nothing")])
    assert bad.exit_code == 1 and "no such run folder" in bad.stderr


def test_a_saved_model_with_its_lm_evaluates_cer_lm_and_fine_tunes_with_from(
    tiny_lm_run, data_root, tmp_path
):
    """save-pretrained keeps lm.json; evaluate of the saved folder gives the greedy and the
    beam+LM figures training recorded; ``--from`` takes the saved folder like a run."""
    import lstmvision
    from lstmvision.tasks import runner
    from lstmvision.tasks.textline import TextLineTask

    run = tiny_lm_run.run_dir
    folder = lstmvision.load(run).save_pretrained(tmp_path / "saved")
    assert (folder / "lm.json").read_bytes() == (run / "lm.json").read_bytes()
    trained = json.loads((run / "metrics.json").read_text())
    for split in ("test", "val"):
        got = runner.evaluate(folder, split, data_root=None)
        for key in (f"{split}_cer", f"{split}_cer_lm", f"{split}_wer_lm"):
            assert got[key] == pytest.approx(trained[key], abs=1e-6), key
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "lm.json",
        "model.safetensors",
    ]  # evaluate wrote nothing into the saved folder
    line = sorted((Path(yaml_dataset(run)) / "test").glob("*.png"))[0]
    by_run = lstmvision.load(run).predict(line, beam=3)
    by_folder = lstmvision.load(folder).predict(Image.open(line), beam=3)
    assert by_folder.text == by_run.text and by_folder.source.startswith("<image #0")

    task = TextLineTask()
    cfg = task.Config(dataset="uw3", data_root=str(data_root), from_run=str(folder), **TINY)
    task.resolve(cfg)
    task.datamodule(cfg)
    model = task.build_model(cfg)
    source = lstmvision.load(folder).model
    assert set(source.charset) <= set(model.charset)
    assert torch.equal(model.rnn.weight_hh_l0, source.rnn.weight_hh_l0)
