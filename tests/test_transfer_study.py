"""The transfer study driver: its cells' configurations, the advice check, and a tiny real grid."""

import csv
import json

import pytest
from typer.testing import CliRunner

from lstmvision import cli
from lstmvision.studies import transfer_study as ts
from lstmvision.tasks import runner


def invoke(*args):
    result = CliRunner().invoke(cli.app, [str(a) for a in args])
    return result.exit_code, result.output


def test_cells_cover_the_grid_with_one_scratch_per_target_and_size():
    grid = ts.cells()
    assert len(grid) == 2 * 3 * (1 + 2 * 3)
    assert sum(c.mode == "scratch" for c in grid) == 6 and all(
        c.source == "none" for c in grid if c.mode == "scratch"
    )
    assert len({c.name for c in grid}) == len(grid)


def test_cell_configurations(tmp_path):
    src = tmp_path / "src"
    top = ts.overrides(ts.Cell("mnist", "usps", 100, "finetune-top"), src, None, 3)
    assert top == {
        "dataset": "usps",
        "seed": 3,
        "limit_train": 100,
        "image_size": 20,
        "epochs": 10,
        "epoch_size": 12800,
        "from_run": str(src),
        "transfer": "finetune",
        "freeze_depth": 4,
    }
    codes = ts.overrides(ts.Cell("imagenet", "fashion-mnist", None, "codes"), src, "/data", 0)
    assert (
        codes["from_run"] == "imagenet" and codes["image_size"] == 64 and "limit_train" not in codes
    )
    assert (
        codes["transfer"] == "codes" and "epoch_size" not in codes and codes["data_root"] == "/data"
    )
    everything = ts.overrides(ts.Cell("imagenet", "usps", 1000, "finetune-all"), src, None, 0)
    assert everything["freeze_depth"] == 0 and everything["epoch_size"] == 2000
    scratch = ts.overrides(ts.Cell("none", "fashion-mnist", None, "scratch"), src, None, 0)
    assert (
        scratch["model"] == "lenet5-modern"
        and "from_run" not in scratch
        and scratch["epochs"] == 10
    )
    line = ts.command_line(top)
    assert line.startswith("lstmvision train cnn --dataset usps") and f"--from {src}" in line


def _row(target, labels, mode, acc, source="mnist"):
    return {
        "source": "none" if mode == "scratch" else source,
        "target": target,
        "similarity": ts.TARGETS[target],
        "labels": labels,
        "train_examples": 100 if labels == 100 else 6562,
        "mode": mode,
        "test_accuracy": acc,
        "val_accuracy": acc,
        "train_seconds": 1.0,
        "wall_seconds": 2.0,
        "seed": 0,
        "command": "x",
    }


def test_advice_check_says_where_the_rule_held():
    rows = [
        _row("usps", 100, "scratch", 0.70),
        _row("usps", 100, "codes", 0.95),
        _row("usps", 100, "finetune-all", 0.94),
        _row("usps", "all", "scratch", 0.96),
        _row("usps", "all", "codes", 0.90),
        _row("usps", "all", "finetune-all", 0.93),
    ]
    checks = {c["labels"]: c for c in ts.advice_check(rows)}
    assert checks["100"]["advised"] == "codes" and checks["100"]["verdict"] == "held"
    assert checks["all"]["advised"] == "finetune-all" and checks["all"]["best"] == "scratch"
    assert checks["all"]["verdict"] == "did not hold"  # 3 points below the best
    text = ts.format_markdown(rows)
    assert "| mnist | usps (high) | 100 |" in text and "did not hold" in text


@pytest.fixture(scope="module")
def source_run(tmp_path_factory, data_root):
    run = tmp_path_factory.mktemp("src") / "mnist"
    runner.train(
        "cnn",
        {
            "model": "lenet5-modern",
            "limit_train": 2000,
            "max_steps": 60,
            "batch_size": 32,
            "data_root": str(data_root),
        },
        out=run,
        quiet=True,
    )
    return run


def test_tiny_study_writes_its_tables_and_continues(source_run, data_root, tmp_path, monkeypatch):
    real = ts.overrides
    monkeypatch.setattr(
        ts, "overrides", lambda *a: {**real(*a), "epochs": 1, "epoch_size": None, "max_steps": 3}
    )
    out = tmp_path / "study"
    rows = ts.study(
        out,
        source_run,
        sources=("mnist",),
        targets=("usps",),
        sizes=(50,),
        modes=("scratch", "codes", "finetune-top"),
        data_root=str(data_root),
        log=lambda _: None,
    )
    assert [r["mode"] for r in rows] == ["scratch", "codes", "finetune-top"]
    assert all(0 <= r["test_accuracy"] <= 1 and r["train_examples"] == 50 for r in rows)
    with open(out / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 3
    assert (out / "study.png").stat().st_size > 0 and "| mnist | usps (high) | 50 |" in (
        out / "results.md"
    ).read_text()
    assert not (
        out / "cells" / "mnist-usps-50-codes" / "checkpoints"
    ).exists()  # kept small: weights only
    stamp = (out / "cells" / "mnist-usps-50-codes" / "metrics.json").stat().st_mtime_ns
    again = ts.study(
        out,
        source_run,
        sources=("mnist",),
        targets=("usps",),
        sizes=(50,),
        modes=("scratch", "codes", "finetune-top"),
        data_root=str(data_root),
        log=lambda _: None,
    )
    assert again == rows  # finished cells are read back, not trained again
    assert (out / "cells" / "mnist-usps-50-codes" / "metrics.json").stat().st_mtime_ns == stamp
    assert (
        json.loads((out / "cells" / "mnist-usps-50-codes" / "study.json").read_text())["mode"]
        == "codes"
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--sizes", "ten"], "--sizes 'ten'"),
        (["--modes", "codes,magic"], "unknown mode magic"),
        (["--targets", "cifar"], "unknown target cifar"),
        (["--sizes", "5"], "at least 10 labels"),
    ],
)
def test_study_bad_options(tmp_path, args, message):
    code, out = invoke(
        "transfer", "study", "--out", tmp_path / "s", "--source-run", tmp_path, *args
    )
    assert code == 1 and message in out and "Traceback" not in out
