"""--exact-resume: a run killed with SIGKILL at any point and resumed ends bit-identical to the
run that was never interrupted (same metrics, same weights), for the classification tasks (with
augmentation and dropout), textline's width sampler and next-frame's fresh sequences."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lstmvision.tasks import runner

KILLER = """
import json, os, signal, sys
from lightning.pytorch.callbacks import Callback
from lstmvision.tasks import runner

task, hook, step, out, overrides = sys.argv[1:6]
step = int(step)

class Kill(Callback):
    pass

def die(self, trainer, *args):
    fitting = trainer.state.fn == "fit"
    if hook == "on_test_batch_start" or (fitting and trainer.global_step >= step):
        os.kill(os.getpid(), signal.SIGKILL)

setattr(Kill, hook, die)
runner.train(task, json.loads(overrides), out=out, quiet=True, callbacks=[Kill()])
"""

ROW = {
    "limit_train": 320, "epochs": 2, "batch_size": 32, "hidden_size": 8, "head_dropout": 0.3,
    "shift": 2, "checkpoint_every": 4, "exact_resume": True,
}  # fmt: skip


def killed_then_resumed(task, overrides, hook, step, run: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, task, hook, str(step), str(run), json.dumps(overrides)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]  # killed where we said, not before
    return runner.train(task, out=run, resume=True, quiet=True).metrics


def same_run(a: Path, b: Path, ma: dict, mb: dict) -> None:
    drop = lambda m: {k: v for k, v in m.items() if k != "train_seconds"}  # noqa: E731
    assert drop(ma) == drop(mb)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root):
    run = tmp_path_factory.mktemp("exact") / "reference"
    overrides = {**ROW, "data_root": str(data_root)}
    return run, runner.train("row-lstm", overrides, out=run, quiet=True).metrics


def test_without_exact_resume_the_draws_are_the_ones_of_before(data_root, tmp_path, reference):
    """The option changes the random draws (so it is off by default: the README figures)."""
    overrides = {**ROW, "exact_resume": False, "data_root": str(data_root)}
    plain = runner.train("row-lstm", overrides, out=tmp_path / "plain", quiet=True).metrics
    assert plain["val_loss"] != reference[1]["val_loss"]


@pytest.mark.parametrize(
    "hook,step",
    [
        ("on_train_batch_end", 6),  # mid-epoch, two steps after the checkpoint of step 4
        ("on_validation_batch_start", 9),  # during the validation that ends epoch 1
        pytest.param("on_train_batch_start", 0, marks=pytest.mark.slow),  # first batch
        pytest.param("on_train_batch_start", 8, marks=pytest.mark.slow),  # after a checkpoint
        pytest.param("on_test_batch_start", 0, marks=pytest.mark.slow),  # during the test pass
    ],
)
def test_killed_anywhere_resumes_to_the_same_run(data_root, tmp_path, reference, hook, step):
    run = tmp_path / "run"
    overrides = {**ROW, "data_root": str(data_root)}
    metrics = killed_then_resumed("row-lstm", overrides, hook, step, run)
    same_run(reference[0], run, reference[1], metrics)


def small_line_folder(data_root: Path, folder: Path) -> Path:
    rows = (data_root / "lines-bronod" / "labels.tsv").read_text(encoding="utf-8").splitlines()
    images = data_root / "lines-bronod" / "lines"
    for split, part in (("train", rows[:48]), ("val", rows[48:56]), ("test", rows[56:64])):
        (folder / split).mkdir(parents=True)
        text = "".join(
            f"{images / row.split(chr(9))[0]}\t{row.split(chr(9), 1)[1]}\n" for row in part
        )
        (folder / split / "labels.tsv").write_text(text, encoding="utf-8")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(
    "task,overrides,step",
    [
        (
            "textline",
            {"dataset": "SMALL", "epochs": 2, "batch_size": 8, "checkpoint_every": 3,
             "lm": False},
            4,
        ),
        ("next-frame", {"dataset": "moving-mnist", "train_size": 64, "val_size": 16,
                        "test_size": 16, "epochs": 2, "batch_size": 8, "checkpoint_every": 3,
                        "hidden_sizes": "8", "patch": 8}, 5),
    ],
)  # fmt: skip
def test_width_sampler_and_fresh_sequences_resume_exactly(
    data_root, tmp_path, task, overrides, step
):
    overrides = {**overrides, "exact_resume": True, "data_root": str(data_root)}
    if overrides["dataset"] == "SMALL":  # 48/8/8 bronod lines: the evaluations stay short
        overrides["dataset"] = str(small_line_folder(data_root, tmp_path / "lines"))
    reference = runner.train(task, overrides, out=tmp_path / "reference", quiet=True)
    metrics = killed_then_resumed(task, overrides, "on_train_batch_end", step, tmp_path / "run")
    same_run(tmp_path / "reference", tmp_path / "run", reference.metrics, metrics)
