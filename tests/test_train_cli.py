"""End to end on a slice of the real MNIST: train, evaluate, predict, bad inputs, resume, DDP."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from typer.testing import CliRunner

from lstmvision import cli
from lstmvision.data.samples import export_samples
from lstmvision.tasks import runner

SMALL = [
    "--limit-train",
    "3000",
    "--max-steps",
    "100",
    "--batch-size",
    "32",
    "--hidden-size",
    "48",
    "--checkpoint-every",
    "50",
]
EXE = Path(sys.executable).with_name("lstmvision")

cli._register_train_commands()


def invoke(*args):
    result = CliRunner().invoke(cli.app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_root):
    """One small run through the CLI, shared by the tests that read a finished run folder."""
    run = tmp_path_factory.mktemp("runs") / "mnist-small"
    code, out = invoke("train", "row-lstm", *SMALL, "--data-root", data_root, "--out", run)
    assert code == 0, out
    return run


def test_run_folder_contract(trained):
    for name in (
        "config.yaml",
        "metrics.json",
        "model.safetensors",
        "model.json",
        "training_curves.png",
        "confusion_matrix.png",
        "predictions.png",
        "checkpoints/last.ckpt",
        "logs/version_0/metrics.csv",
    ):
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert {"test_accuracy", "val_accuracy", "train_seconds"} <= set(metrics)
    assert all(isinstance(v, (int, float, str)) for v in metrics.values())  # flat


def test_train_seconds_covers_the_whole_fit(trained):
    ckpt = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    clock = next(v for k, v in ckpt["callbacks"].items() if "TrainClock" in k)
    metrics = json.loads((trained / "metrics.json").read_text())
    assert ckpt["global_step"] == metrics["global_step"] == 100
    assert metrics["train_seconds"] >= clock["seconds"] - 0.01 > 0


def test_slice_learns_far_above_chance(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["global_step"] == 100
    assert metrics["val_accuracy"] > 0.5 and metrics["test_accuracy"] > 0.5  # chance is 0.1
    with open(trained / "logs" / "version_0" / "metrics.csv") as f:
        losses = [
            float(r["train_loss_step"]) for r in csv.DictReader(f) if r.get("train_loss_step")
        ]
    assert len(losses) >= 8 and sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3


def test_bf16_mixed_precision_trains(data_root, tmp_path):
    args = [*SMALL, "--precision", "bf16-mixed", "--data-root", data_root]
    code, out = invoke("train", "row-lstm", *args, "--out", tmp_path / "bf16")
    assert code == 0, out
    metrics = json.loads((tmp_path / "bf16" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5  # as the float32 run does (chance: 0.1)


def test_evaluate_reproduces_metrics_json(trained):
    code, out = invoke("evaluate", trained, "--json")
    assert code == 0, out
    evaluated = json.loads(out[out.index("{") :])
    saved = json.loads((trained / "metrics.json").read_text())
    assert set(evaluated) == {"test_accuracy", "test_loss"}
    for key, value in evaluated.items():
        assert value == pytest.approx(saved[key], abs=1e-5)
    code, out = invoke("evaluate", trained, "--split", "val", "--json")
    assert code == 0 and json.loads(out[out.index("{") :])["val_accuracy"] == pytest.approx(
        saved["val_accuracy"], abs=1e-5
    )


def test_predict_real_digits(trained, data_root, tmp_path):
    paths = export_samples("mnist", tmp_path / "s", count=6, data_root=data_root)
    code, out = invoke("predict", trained, *paths, "--json")
    assert code == 0, out
    preds = json.loads(out[out.index("[") :])
    assert [p["image"] for p in preds] == [str(p) for p in paths]
    truth = [p.stem.rsplit("-", 1)[1] for p in paths]
    assert sum(p["label"] == t for p, t in zip(preds, truth)) >= 3
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-3 for p in preds)
    code, out = invoke("predict", trained, paths[0])
    assert code == 0 and out.startswith(f"{paths[0]}: ")


def test_predict_unreadable_image(trained, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, out = invoke("predict", trained, bad)
    assert code == 1 and f"{bad}: not a readable image" in out and "Traceback" not in out


def test_predict_refuses_options_of_other_tasks_and_needs_inputs(trained, data_root, tmp_path):
    paths = export_samples("mnist", tmp_path / "s", count=1, data_root=data_root)
    for option in (["--beam", "3"], ["--beam=3"]):
        code, out = invoke("predict", trained, *paths, *option)
        assert code == 1 and "Traceback" not in out
        assert "a 'row-lstm' run does not take --beam (its options: none)" in out
    code, out = invoke("predict", trained)
    assert code == 1 and "at least one input" in out


def test_task_options_are_read_by_their_declared_types(tmp_path):
    import re

    from lstmvision.errors import ConfigError
    from lstmvision.tasks.base import PredictOption, Task

    class Fake(Task):  # not registered
        name = "fake"
        predict_options = {
            "beam": PredictOption(int, "beam width"),
            "lm_weight": PredictOption(float, "weight"),
            "out": PredictOption(Path, "folder"),
        }

    words = ["a.png", "--beam", "3", "b.png", "--lm-weight=-0.5", "--out", "-", "c.png"]
    inputs, options = cli._task_options(Fake, tmp_path, words)
    assert inputs == [Path("a.png"), Path("b.png"), Path("c.png")]
    assert options == {"beam": 3, "lm_weight": -0.5, "out": Path("-")}
    for words, message in (
        (["--beam", "x"], "--beam: 'x' is not a valid integer"),
        (["--lm-weight=high"], "--lm-weight: 'high' is not a valid float"),
        (["a.png", "--beam"], "--beam: needs a value (INT)"),
        (["--prompt", "hi"], "does not take --prompt (its options: --beam, --lm-weight, --out)"),
        (["-b", "3"], "a 'fake' run does not take -b"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            cli._task_options(Fake, tmp_path, words)


def test_predict_help_lists_every_registered_task_option():
    from lstmvision.tasks import get_task, list_tasks

    code, out = invoke("predict", "--help")
    assert code == 0, out
    for name in list_tasks():
        assert name in out
        for option in get_task(name).predict_options:
            assert "--" + option.replace("_", "-") in out, (name, option)
    code, alias = invoke("transcribe", "--help")
    assert code == 0 and "Task options" in alias


def test_command_lists_give_each_command_one_unbroken_summary():
    groups = [cli.app] + [g.typer_instance for g in cli.app.registered_groups]
    checked = 0
    for group in groups:
        for info in group.registered_commands:
            first = (info.help or info.callback.__doc__ or "").split("\n\n")[0]
            # the docstring's first paragraph, its line breaks (ragged rows in --help) joined
            assert info.short_help == " ".join(first.split()), info.name
            checked += 1
    assert checked >= 25


def test_existing_run_folder_not_overwritten(trained):
    before = {p: p.stat().st_mtime_ns for p in trained.rglob("*") if p.is_file()}
    code, out = invoke("train", "row-lstm", *SMALL, "--out", trained)
    assert code == 1 and "already exists and is not empty" in out
    assert before == {p: p.stat().st_mtime_ns for p in trained.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "row-lstm", "--data-root", "/nonexistent/data"], "data root does not exist"),
        (["train", "nope"], "No such command 'nope'"),
        (["train", "row-lstm", "--dataset", "cifar"], "'cifar' is not one of"),
        (["train", "row-lstm", "--cell", "cnn"], "'cnn' is not one of"),
        (["train", "row-lstm", "--precision", "8-bit"], "'8-bit' is not one of"),
        (["evaluate", "/nonexistent/run"], "no such run folder"),
        # counts that were tracebacks (an empty median, a zero-width layer, a beam of 0)
        (["bench", "caption", "--repeats", "0"], "Invalid value for '--repeats'"),
        (["bench", "load", "row-lstm-mnist", "--repeats", "0"], "Invalid value for '--repeats'"),
        (["bench", "caption", "--beam", "0"], "Invalid value for '--beam'"),
        (["explain", "gradients", "--hidden-size", "0"], "Invalid value for '--hidden-size'"),
        (["bench", "textline", "--threads", "0"], "Invalid value for '--threads'"),
    ],
)
def test_bad_arguments_one_clear_error(args, message, tmp_path):
    code, out = invoke(*args, *(["--out", tmp_path / "run"] if args[0] == "train" else []))
    assert code != 0 and message in out and "Traceback" not in out
    assert not (tmp_path / "run").exists()


def test_truncated_idx_fails_before_run_folder(data_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data_root / "mnist", root / "mnist")
    target = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:2000])
    code, out = invoke("train", "row-lstm", "--data-root", root, "--out", tmp_path / "run")
    assert code == 1 and "t10k-labels-idx1-ubyte.gz" in out and "truncated" in out
    assert not (tmp_path / "run").exists()


def test_run_without_checkpoint(trained, tmp_path):
    run = tmp_path / "unfinished"
    run.mkdir()
    shutil.copy(trained / "config.yaml", run / "config.yaml")
    for command in (["evaluate", run], ["predict", run, trained / "predictions.png"]):
        code, out = invoke(*command)
        assert code == 1 and "no model.safetensors and no checkpoint" in out


def test_resume_cannot_extend_the_schedule(trained):
    code, out = invoke("train", "row-lstm", "--out", trained, "--resume", "--epochs", "50")
    assert code == 1 and "cannot extend the run past its schedule" in out


def test_row_lstm_image_size_reaches_the_model(data_root, tmp_path):
    run = tmp_path / "run"
    code, out = invoke(
        "train",
        "row-lstm",
        "--image-size",
        "14",
        "--limit-train",
        "256",
        "--max-steps",
        "4",
        "--hidden-size",
        "8",
        "--data-root",
        data_root,
        "--out",
        run,
    )
    assert code == 0, out
    assert json.loads((run / "model.json").read_text())["kwargs"]["image_size"] == 14
    code, out = invoke("predict", run, trained_sample(data_root, tmp_path))
    assert code == 0, out


def trained_sample(data_root, tmp_path):
    return export_samples("mnist", tmp_path / "one", count=1, data_root=data_root)[0]


def test_bad_config_file(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 2\nhiden_size: 3\n")
    code, out = invoke(
        "train", "row-lstm", "--config", tmp_path / "c.yaml", "--out", tmp_path / "run"
    )
    assert (
        code == 1 and "unknown config key 'hiden_size'" in out and not (tmp_path / "run").exists()
    )


class CountSteps(Callback):
    def __init__(self):
        self.batches = 0

    def on_train_batch_end(self, *args):
        self.batches += 1


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_killed_run_resumes_from_last_checkpoint(data_root, tmp_path):
    run = tmp_path / "run"
    args = [
        EXE,
        "train",
        "row-lstm",
        "--data-root",
        data_root,
        "--out",
        run,
        "--limit-train",
        "4000",
        "--batch-size",
        "16",
        "--hidden-size",
        "16",
        "--checkpoint-every",
        "10",
        "--max-steps",
        "100000",
    ]
    proc = subprocess.Popen(
        [str(a) for a in args], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (
            last.is_file()
            and torch.load(last, weights_only=True, map_location="cpu")["global_step"] >= 20
        ):
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.is_file(), f"no checkpoint before the kill (exit code {proc.returncode})"
    saved_step = torch.load(last, weights_only=True, map_location="cpu")["global_step"]
    assert (
        saved_step >= 20 and not (run / "metrics.json").exists()
    )  # killed mid-epoch 1 (225 steps)
    counter = CountSteps()
    result = runner.train(
        "row-lstm",
        {"max_steps": saved_step + 15},
        out=run,
        resume=True,
        quiet=True,
        callbacks=[counter],
    )
    assert result.metrics["global_step"] == saved_step + 15
    assert counter.batches == 15  # continued, not restarted
    assert (run / "metrics.json").is_file() and (run / "model.safetensors").is_file()


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(data_root, tmp_path):
    run = tmp_path / "ddp"
    args = [
        EXE,
        "train",
        "row-lstm",
        "--data-root",
        data_root,
        "--out",
        run,
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--accelerator",
        "cpu",
        "--limit-train",
        "640",
        "--max-steps",
        "8",
        "--batch-size",
        "32",
        "--hidden-size",
        "16",
    ]
    done = subprocess.run(
        [str(a) for a in args], env=_env(), capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 8 and 0 <= metrics["test_accuracy"] <= 1


@pytest.mark.slow
def test_ctrl_c_saves_and_says_how_to_resume(data_root, tmp_path):
    run = tmp_path / "run"
    args = [
        EXE,
        "train",
        "row-lstm",
        "--data-root",
        data_root,
        "--out",
        run,
        "--limit-train",
        "4000",
        "--batch-size",
        "16",
        "--hidden-size",
        "16",
        "--checkpoint-every",
        "10",
    ]
    proc = subprocess.Popen(
        [str(a) for a in args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while (
        time.time() < deadline
        and proc.poll() is None
        and not (run / "checkpoints" / "last.ckpt").is_file()
    ):
        time.sleep(0.5)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err
    resume = f"`lstmvision train row-lstm --out {run} --resume`"
    assert f"{run}: training interrupted; continue with {resume}" in err
    assert (run / "checkpoints" / "interrupted.ckpt").is_file()


def test_ctrl_c_swallowed_by_a_finaliser_still_stops_at_the_next_batch():
    from lstmvision.tasks.runner import CtrlC

    before = signal.getsignal(signal.SIGINT)
    with CtrlC() as ctrl_c:
        try:  # where Python would swallow it (inside a __del__), training used to go on to the end
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        assert ctrl_c.requested
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.on_train_batch_end(None, None, None, None, 0)
    assert signal.getsignal(signal.SIGINT) is before
