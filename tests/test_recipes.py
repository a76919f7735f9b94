"""Recipe tier (`pytest -m recipe`, not in CI): the full trainings behind README's results table.

Each trains ``lstmvision train row-lstm --dataset D`` with the task defaults (the recipe) and checks
the figure the issue asks for. Minutes each on 2 CPU cores; they print their measured figures.
"""

import pytest

from lstmvision.tasks import runner

TARGETS = {"mnist": (0.990, 600), "fashion-mnist": (0.89, None), "usps": (0.96, None)}


@pytest.mark.recipe
@pytest.mark.parametrize("dataset", list(TARGETS))
def test_row_lstm_recipe(dataset, data_root, tmp_path, capsys):
    result = runner.train("row-lstm", {"dataset": dataset, "data_root": str(data_root)}, out=tmp_path / dataset)
    m = result.metrics
    with capsys.disabled():
        print(f"\nrow-lstm {dataset}: test_accuracy {m['test_accuracy']:.4f} val_accuracy "
              f"{m['val_accuracy']:.4f} train_seconds {m['train_seconds']:.0f}")  # fmt: skip
    accuracy, seconds = TARGETS[dataset]
    assert m["test_accuracy"] >= accuracy
    if seconds:
        assert m["train_seconds"] <= seconds


CNN_TARGETS = [("lenet5", "mnist", 0.988), ("lenet5-modern", "mnist", 0.992),
               ("resnet8-small", "mnist", 0.995), ("resnet8-small", "fashion-mnist", 0.92)]  # fmt: skip


@pytest.mark.recipe
@pytest.mark.parametrize("model,dataset,accuracy", CNN_TARGETS)
def test_cnn_recipe(model, dataset, accuracy, data_root, tmp_path, capsys):
    overrides = {"model": model, "dataset": dataset, "data_root": str(data_root)}
    m = runner.train("cnn", overrides, out=tmp_path / f"{model}-{dataset}").metrics
    with capsys.disabled():
        print(f"\ncnn {model} {dataset}: test_accuracy {m['test_accuracy']:.4f} train_seconds {m['train_seconds']:.0f}")
    assert m["test_accuracy"] >= accuracy and m["train_seconds"] <= 15 * 60
