"""Task ``cnn`` on a slice of the real MNIST: it learns by the seed's SGD rule, says no clearly."""

import json

import pytest
import torch
from typer.testing import CliRunner

from lstmvision import cli
from lstmvision.data.samples import export_samples
from lstmvision.tasks import get_task
from lstmvision.tasks.config import resolve_config

cli._register_train_commands()


def invoke(*args):
    result = CliRunner().invoke(cli.app, [str(a) for a in args])
    return result.exit_code, result.output


def test_defaults_are_the_seed_rule():
    cfg = resolve_config(get_task("cnn").Config)
    assert (cfg.optimizer, cfg.momentum, cfg.weight_decay, cfg.batch_size) == (
        "sgd",
        0.9,
        5e-4,
        128,
    )


def test_modern_lenet_learns_on_a_slice_and_predicts(data_root, tmp_path):
    run = tmp_path / "run"
    code, out = invoke(
        "train",
        "cnn",
        "--model",
        "lenet5-modern",
        "--limit-train",
        "3000",
        "--max-steps",
        "100",
        "--batch-size",
        "32",
        "--data-root",
        data_root,
        "--out",
        run,
    )
    assert code == 0, out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.6  # chance is 0.1
    assert json.loads((run / "model.json").read_text())["name"] == "lenet5-modern"
    paths = export_samples("mnist", tmp_path / "s", count=4, data_root=data_root)
    code, out = invoke("predict", run, *paths, "--json")
    assert code == 0 and len(json.loads(out[out.index("[") :])) == 4


def test_unknown_model_refused_before_any_folder(tmp_path):
    code, out = invoke("train", "cnn", "--model", "vgg99", "--out", tmp_path / "run")
    assert code == 2 and "'vgg99' is not one of" in out and not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def source_run(tmp_path_factory, data_root):
    """A small MNIST source model (modern LeNet) for the transfer tests."""
    run = tmp_path_factory.mktemp("src") / "mnist"
    code, out = invoke(
        "train",
        "cnn",
        "--model",
        "lenet5-modern",
        "--limit-train",
        "4000",
        "--max-steps",
        "150",
        "--batch-size",
        "32",
        "--data-root",
        data_root,
        "--out",
        run,
    )
    assert code == 0, out
    return run


def _state(run):
    from lstmvision.tasks.run_folder import load_model

    return {k: v.clone() for k, v in load_model(run).state_dict().items()}


@pytest.mark.parametrize(
    "transfer,depth,frozen_prefixes",
    [("codes", 0, ("c1", "c3", "c5", "f6")), ("finetune", 2, ("c1",))],
)
def test_transfer_freezes_what_it_says(
    source_run, data_root, tmp_path, transfer, depth, frozen_prefixes
):
    run = tmp_path / "usps"
    args = [
        "train",
        "cnn",
        "--dataset",
        "usps",
        "--transfer",
        transfer,
        "--from",
        source_run,
        "--limit-train",
        "300",
        "--max-steps",
        "20",
        "--batch-size",
        "32",
        "--image-size",
        "20",
        "--data-root",
        data_root,
        "--out",
        run,
    ]
    if depth:
        args += ["--freeze-depth", depth]
    code, out = invoke(*args)
    assert code == 0, out
    before, after = _state(source_run), _state(run)
    for key in before:
        if key.startswith("output") or key in ("mean", "std"):  # new head; normalisation constants
            continue
        same = torch.equal(before[key], after[key])
        assert same == key.startswith(frozen_prefixes), key
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.3  # 10 classes: chance 0.1; MNIST features transfer to USPS


@pytest.mark.parametrize(
    "args,message",
    [
        (["--transfer", "codes"], "needs --from"),
        (["--freeze-depth", "9", "--transfer", "finetune", "--from", "SRC"], "must be 0..6"),
        (["--freeze-depth", "1"], "applies to --transfer finetune only"),
        (["--image-size", "40"], "LeNet-5 takes images of at most 32x32"),
        (
            ["--from", "SRC", "--transfer", "finetune", "--model", "vgg-small"],
            "the source is a lenet5-modern",
        ),
        (
            ["--from", "/nonexistent", "--transfer", "codes"],
            "no such run folder, saved model folder or shipped model",
        ),
    ],
)
def test_transfer_bad_arguments(source_run, tmp_path, args, message):
    args = [source_run if a == "SRC" else a for a in args]
    code, out = invoke("train", "cnn", "--dataset", "usps", *args, "--out", tmp_path / "run")
    assert code == 1 and message in out and not (tmp_path / "run").exists()


def test_codes_are_computed_once_and_evaluate_agrees(source_run, data_root, tmp_path):
    run = tmp_path / "codes"
    code, out = invoke(
        "train",
        "cnn",
        "--dataset",
        "usps",
        "--transfer",
        "codes",
        "--from",
        source_run,
        "--limit-train",
        "200",
        "--epochs",
        "3",
        "--epoch-size",
        "640",
        "--batch-size",
        "64",
        "--image-size",
        "20",
        "--data-root",
        data_root,
        "--out",
        run,
    )
    assert code == 0, out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 3 * 10  # 640 examples drawn per epoch from 200, batches of 64
    code, out = invoke("evaluate", run, "--json")
    assert code == 0, out
    assert json.loads(out[out.index("{") :])["test_accuracy"] == pytest.approx(
        metrics["test_accuracy"], abs=1e-6
    )
    assert (run / "predictions.png").is_file()  # pictures show the images, not the codes


def test_codes_refuse_augmentation(source_run, tmp_path):
    code, out = invoke(
        "train",
        "cnn",
        "--dataset",
        "usps",
        "--transfer",
        "codes",
        "--from",
        source_run,
        "--shift",
        "2",
        "--out",
        tmp_path / "run",
    )
    assert code == 1 and "--shift does not apply" in out and not (tmp_path / "run").exists()


def test_encode_replaces_features_but_keeps_images():
    from lstmvision.tasks.classification import TensorImageData

    images, labels = torch.randint(0, 256, (50, 8, 8), dtype=torch.uint8), torch.arange(50) % 10
    dm = TensorImageData(
        lambda split: (images, labels), batch_size=16, val_fraction=0.2, epoch_size=100
    )
    dm.setup("fit")
    dm.encode(lambda x: x.flatten(1).sum(1, keepdim=True))  # (B, 1)
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1)
    assert (
        sum(len(b[0]) for b in dm.train_dataloader()) == 100
    )  # epoch_size, drawn from 40 examples
    assert next(iter(dm.image_loader("val")))[0].shape == (10, 1, 8, 8)
    dm.setup("test")  # a split set up later is encoded too
    assert next(iter(dm.test_dataloader()))[0].shape == (16, 1)
