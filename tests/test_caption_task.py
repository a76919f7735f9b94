"""Task ``caption`` on slices of the real Flickr8k photos: it learns, trains/evaluates/predicts
end to end through the CLI with a tiny decoder, and says no clearly."""

import csv
import json

import pytest
import torch
from typer.testing import CliRunner

from lstmvision import cli
from lstmvision.tasks import get_task
from lstmvision.tasks.config import resolve_config

cli._register_train_commands()

TINY = {
    "hidden_size": 32,
    "embed_size": 16,
    "feature_size": 32,
    "attention_size": 16,
    "image_size": 96,
}


def invoke(*args):
    result = CliRunner().invoke(cli.app, [str(a) for a in args])
    return result.exit_code, result.output


def flags(options: dict) -> list:
    return [x for k, v in options.items() for x in ("--" + k.replace("_", "-"), v)]


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("features")


def test_recipe_defaults():
    cfg = resolve_config(get_task("caption").Config)
    assert (cfg.dataset, cfg.model, cfg.cell, cfg.beam, cfg.finetune_encoder) == (
        "flickr8k-1k",
        "show-attend-tell",
        "lstm",
        3,
        None,
    )
    assert get_task("caption").monitor == "val_bleu4"


@pytest.mark.parametrize("model", ["show-and-tell", "show-attend-tell"])
def test_a_few_steps_on_a_real_slice_lower_the_loss(model, data_root, feature_cache):
    torch.manual_seed(0)
    task = get_task("caption")()
    cfg = resolve_config(
        task.Config,
        overrides={
            **TINY,
            "model": model,
            "limit_train": 6,
            "limit_eval": 1,
            "batch_size": 6,
            "data_root": str(data_root),
            "dropout": 0.0,
            "feature_cache": str(feature_cache),
        },
    )
    dm = task.datamodule(cfg)
    dm.setup("fit")
    net = task.build_model(cfg)
    task.bind(cfg, net, dm)
    module = task.module(cfg, net)
    batch = next(iter(dm.train_dataloader()))
    assert (
        batch["inputs"].shape == (6, 9, 1280) and len(batch["captions"]) == 30
    )  # 3x3 grid; 5 captions each
    trainable = [p for p in module.parameters() if p.requires_grad]
    assert not any(p.requires_grad for p in net.encoder.parameters())  # frozen by default
    opt = torch.optim.Adam(trainable, lr=3e-3)
    losses = []
    for _ in range(40):
        loss, ce = module._loss(batch["inputs"], batch["captions"], batch["rows"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(ce.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_root, feature_cache):
    run = tmp_path_factory.mktemp("caption") / "run"
    code, out = invoke(
        "train",
        "caption",
        *flags(
            {
                **TINY,
                "limit_train": 12,
                "limit_eval": 4,
                "epochs": 1,
                "batch_size": 4,
                "beam": 2,
                "feature_cache": feature_cache,
                "data_root": data_root,
                "out": run,
            }
        ),
    )
    assert code == 0, out
    return run


def test_train_writes_the_run_folder(run):
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "test_bleu1",
        "test_bleu2",
        "test_bleu3",
        "test_bleu4",
        "test_cider",
        "val_bleu4",
        "test_greedy_bleu4",
    ):
        assert key in metrics and metrics[key] >= 0
    assert 0 <= metrics["test_bleu4"] <= metrics["test_bleu1"] <= 1
    with open(run / "test_captions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(
        r["caption"] and len(r["references"].split(" | ")) == 5 for r in rows
    )
    words = json.loads((run / "vocab.json").read_text())
    assert words[:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    assert json.loads((run / "model.json").read_text())["kwargs"]["words"] == words
    assert len(list((run / "attention").glob("*.png"))) == 3


def test_evaluate_writes_captions_and_scores(run):
    code, out = invoke("evaluate", run, "--split", "val", "--json")
    assert code == 0, out
    metrics = json.loads(out[out.index("{") :])
    assert "val_bleu4" in metrics and "val_cider" in metrics
    assert (run / "val_captions.csv").is_file()
    saved = json.loads((run / "metrics.json").read_text())
    assert (
        saved["val_bleu4"] == pytest.approx(metrics["val_bleu4"]) and "test_bleu4" in saved
    )  # merged


def test_predict_a_real_photo_with_attention_pictures(run, data_root, tmp_path):
    photo = next((data_root / "flickr8k-1k" / "images").glob("*.jpg"))
    code, out = invoke("predict", run, photo, "--json", "--beam", 2, "--out", tmp_path / "maps")
    assert code == 0, out
    [prediction] = json.loads(out[out.index("[") :])
    assert prediction["image"] == str(photo) and prediction["caption"].strip()
    assert (tmp_path / "maps" / f"{photo.stem}_attention.png").is_file()
    code, out = invoke(
        "predict", run, photo
    )  # default: beam of the run, pictures in RUN/predictions
    assert (
        code == 0
        and out.startswith(f"{photo}: ")
        and (run / "predictions" / f"{photo.stem}_attention.png").is_file()
    )


def test_load_gives_typed_captions_with_attention_per_word(run, data_root, tmp_path):
    """The Python API: one caption per photo (path or PIL image), its words and where each word
    looked (weights over the encoder's grid summing to 1); a saved copy writes no picture."""
    import numpy as np
    from PIL import Image

    import lstmvision

    photo = next((data_root / "flickr8k-1k" / "images").glob("*.jpg"))
    model = lstmvision.load(run)
    by_path, by_image = model.predict([photo, Image.open(photo)], beam=2)
    assert by_path.text == by_image.text and by_path.words == by_path.text.split()
    grid = by_path.attention.shape[-1]
    assert by_path.attention.shape == (len(by_path.words), grid, grid)
    assert np.allclose(by_path.attention.sum(axis=(1, 2)), 1.0, atol=1e-4)
    saved = model.save_pretrained(tmp_path / "saved")
    assert (saved / "vocab.json").is_file()
    again = lstmvision.load(saved).predict(photo, beam=2)
    assert again.text == by_path.text and again.picture is None
    raw = json.loads((saved / "config.json").read_text())
    assert raw["package_weights"] == {"encoder.": {"encoder_weights": "imagenet"}}
    from safetensors.torch import load_file

    assert not any(k.startswith("encoder.") for k in load_file(saved / "model.safetensors"))
    assert sorted(p.name for p in saved.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "vocab.json",
    ]


def test_predict_bad_inputs_are_one_line_errors(run, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    code, out = invoke("predict", run, bad)
    assert code == 1 and "notes.jpg: not a readable image" in out and "Traceback" not in out
    code, out = invoke("predict", run, bad, "--beam", 0)
    assert code == 1 and "beam width must be at least 1" in out
    code, out = invoke("predict", run, bad, "--prompt", "x")
    assert code == 1 and "does not take --prompt" in out


def test_bad_settings_refused_before_any_folder(tmp_path, data_root):
    code, out = invoke(
        "train",
        "caption",
        "--finetune-encoder",
        9,
        "--data-root",
        data_root,
        "--out",
        tmp_path / "a",
    )
    assert code == 1 and "--finetune-encoder 9" in out and not (tmp_path / "a").exists()
    code, out = invoke(
        "train",
        "caption",
        "--dataset",
        "flickr8k",
        "--data-root",
        tmp_path,
        "--out",
        tmp_path / "b",
    )
    assert code == 1 and "full Flickr8k not found" in out and not (tmp_path / "b").exists()


def test_finetune_encoder_trains_only_the_later_stages(data_root, tmp_path):
    from lstmvision.tasks import runner
    from lstmvision.tasks.run_folder import load_model

    overrides = {
        **TINY,
        "image_size": 64,
        "finetune_encoder": 8,
        "limit_train": 2,
        "limit_eval": 1,
        "batch_size": 2,
        "max_steps": 2,
        "lr": 0.05,
        "data_root": str(data_root),
    }
    result = runner.train("caption", overrides, out=tmp_path / "ft", quiet=True)
    task = get_task("caption")()
    fresh = task.build_model(resolve_config(task.Config, overrides=overrides))
    tuned = load_model(result.run_dir)
    stages_fresh, stages_tuned = fresh.encoder.stages(), tuned.encoder.stages()
    assert torch.equal(stages_fresh[0][0].weight, stages_tuned[0][0].weight)  # the stem stayed
    assert not torch.equal(
        stages_fresh[8][0].weight, stages_tuned[8][0].weight
    )  # the head convolution moved


def test_scores_of_known_captions():
    from lstmvision.tasks.metrics import bleu_metrics, cider_d

    refs = [
        ["a dog runs on the grass", "a brown dog is running"],
        ["a man rides a bike", "a cyclist on a road"],
    ]
    exact = ["a dog runs on the grass", "a man rides a bike"]
    for metric in bleu_metrics():
        metric.update(exact, refs)
        assert float(metric.compute()) == pytest.approx(1.0)
    assert (
        cider_d(exact, refs)
        > cider_d(["a dog", "a man"], refs)
        > cider_d(["snow falls", "green tree"], refs)
        == 0
    )
