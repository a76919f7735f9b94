"""Faults (issue 32): one writer per run folder, every bad value refused before anything is
written, atomic files with normal modes, a resume that never loses a finished run, a copied run
that reads its own checkpoints, divergence stopped, hostile model descriptions and checkpoints."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from typer.testing import CliRunner

from lstmvision import cli, files
from lstmvision.tasks import checks, run_folder, run_lock, runner
from lstmvision.tasks.base import TASKS
from lstmvision.tasks.config import field_types, recipe_files, resolve_config

cli._register_train_commands()
EXE = Path(sys.executable).with_name("lstmvision")
TINY = ["--limit-train", "512", "--max-steps", "20", "--hidden-size", "8", "--batch-size", "32"]


def invoke(*args):
    result = CliRunner().invoke(cli.app, [str(a) for a in args])
    return result.exit_code, result.output


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_root):
    run = tmp_path_factory.mktemp("faults") / "run"
    code, out = invoke(
        "train", "row-lstm", *TINY, "--checkpoint-every", "10", "--data-root", data_root,
        "--out", run,
    )  # fmt: skip
    assert code == 0, out
    return run


def one_clear_line(code: int, out: str) -> None:
    assert code != 0 and "Traceback" not in out, out
    assert len([line for line in out.splitlines() if line.startswith("error:")]) == 1, out


# ---- every value checked before anything is written ----


def test_every_numeric_setting_of_every_task_has_a_rule():
    for name in TASKS.names():
        config = TASKS.get(name).Config
        types = field_types(config)
        for f in fields(config):
            if "int" in str(types[f.name]) or "float" in str(types[f.name]):
                assert checks.rule(name, f.name) is not None, (name, f.name)


def test_every_default_recipe_and_smoke_setting_passes_the_checks():
    for name in TASKS.names():
        task = TASKS.get(name)()
        for dataset in [None, *recipe_files(task.Config)]:
            chosen = {"dataset": dataset} if dataset else {}
            for extra in ({}, task.smoke_overrides):
                checks.check_config(name, resolve_config(task.Config, None, {**chosen, **extra}))


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--epochs", "-1"], "--epochs -1: must be at least 1"),
        (["--lr", "nan"], "--lr nan: must be a finite number"),
        (["--lr", "inf"], "--lr inf: must be a finite number"),
        (["--lr", "0"], "--lr 0.0: must be above 0"),
        (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
        (["--max-steps", "0"], "--max-steps 0: must be -1 (no limit) or at least 1"),
        (["--val-fraction", "1.5"], "--val-fraction 1.5: must be in [0, 1)"),
        (["--seed", "-5"], "--seed -5: must be in 0 .. 4294967295"),
        (["--dropout", "1"], "--dropout 1.0: must be in [0, 1)"),
    ],
)
def test_bad_values_are_one_line_and_make_no_folder(flags, message, tmp_path):
    code, out = invoke("train", "row-lstm", *flags, "--out", tmp_path / "run")
    one_clear_line(code, out)
    assert message in out and not (tmp_path / "run").exists()


def test_config_file_of_exploding_yaml_aliases_is_one_line(tmp_path):
    """Each level repeats the one before ten times: printed, the value would be 10^9 items."""
    levels = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    (tmp_path / "bomb.yaml").write_text(f"epochs: [{', '.join(levels)}]\n")
    code, out = invoke("train", "row-lstm", "--config", tmp_path / "bomb.yaml", "--out", "run")
    one_clear_line(code, out)
    assert "epochs must be a single value, not a list" in out and len(out) < 500


def test_out_under_a_file_or_unwritable_folder(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    code, out = invoke("train", "row-lstm", "--out", tmp_path / "afile" / "run")
    one_clear_line(code, out)
    assert "cannot make a run folder under the file" in out
    locked = tmp_path / "readonly"
    locked.mkdir()
    locked.chmod(0o555)
    real_access = os.access  # root may write anywhere: pretend to be a plain user there
    monkeypatch.setattr(checks.os, "access", lambda p, m: Path(p) != locked and real_access(p, m))
    code, out = invoke("train", "row-lstm", "--out", locked / "run")
    one_clear_line(code, out)
    assert "cannot write in" in out and not (locked / "run").exists()


def test_outputs_other_commands_cannot_write_are_one_line_naming_them(tmp_path):
    (tmp_path / "afile").write_text("x")
    under_file = tmp_path / "afile"
    for args, named in [
        (["samples", "mnist", "--count", "1", "--out", under_file / "digits"], "digits"),
        (["save-pretrained", "row-lstm-mnist", under_file / "model"], "model"),
        (["explain", "gradients", "--steps", "1", "--out", under_file / "g.png"], "g.png"),
        (["transfer", "codes", "imagenet", "--out", under_file / "c.safetensors"], "c.safetensors"),
    ]:
        code, out = invoke(*args)
        one_clear_line(code, out)
        assert str(under_file / named) in out, out
    code, out = invoke("samples", "mnist", "--count", "1", "--out", under_file)
    one_clear_line(code, out)
    assert f"{under_file}: a file, where a folder is needed" in out
    for count in ("0", "-2"):  # wrote nothing and said nothing, exit 0
        code, out = invoke("samples", "mnist", "--count", count, "--out", tmp_path / "digits")
        one_clear_line(code, out)
        assert f"--count {count}: must be at least 1" in out
    assert (tmp_path / "afile").read_text() == "x" and os.listdir(tmp_path) == ["afile"]


def test_a_reader_that_stops_early_is_no_error():
    """`lstmvision models | head -1`: the pipe closes before the output ends; like other command
    line tools, stop without a traceback or an error line."""
    proc = subprocess.Popen([EXE, "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 1 and err == "", err


def test_an_atomic_write_that_cannot_start_names_the_file_asked_for(tmp_path):
    target = tmp_path / "missing" / "model.onnx"
    with pytest.raises(FileNotFoundError, match="cannot write it") as caught:
        files.write_text(target, "x")
    assert caught.value.filename == str(target)


# ---- one writer per run folder ----


def test_a_held_folder_refuses_resume_evaluate_and_lm_naming_the_holder(finished):
    before = checksums(finished)
    with run_lock.hold(finished):
        for args in (
            ["train", "row-lstm", "--out", finished, "--resume"],
            ["evaluate", finished],
        ):
            code, out = invoke(*args)
            one_clear_line(code, out)
            assert f"in use by process {os.getpid()}" in out
    assert checksums(finished) == before
    code, out = invoke("evaluate", finished)  # released: evaluate writes again
    assert code == 0, out


def test_a_killed_holder_leaves_no_lock(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from lstmvision.tasks import run_lock\n"
            "with run_lock.hold(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(run_lock.RunFolderBusy, match=f"in use by process {holder.pid}"):
        with run_lock.hold(tmp_path):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_lock.hold(tmp_path):  # the operating system dropped the dead process's lock
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


@pytest.mark.slow
def test_two_trainings_on_one_out_one_refuses(data_root, tmp_path):
    run = tmp_path / "run"
    args = [EXE, "train", "row-lstm", *TINY, "--data-root", data_root, "--out", run]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([str(a) for a in args], env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)
    second = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True)
    first_err = first.communicate()[1]
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 1], (first_err, second.stderr)
    loser = second.stderr if second.returncode else first_err
    assert "in use by process" in loser or "already exists" in loser
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 20


# ---- files written whole, with normal modes ----


def test_run_folder_files_have_normal_modes_and_no_temporary_files(finished):
    mode = files.default_mode()
    for path in finished.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o777 == mode, path
            assert not path.name.startswith(".") or path.name == ".lock", path


def test_atomic_writes_leave_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "metrics.json"
    files.write_text(target, "old\n")
    with pytest.raises(RuntimeError), files.atomic_open(target) as f:
        f.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["metrics.json"]


# ---- resume never loses a finished run ----


def test_failed_resume_changes_nothing(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:5000])
    before = checksums(run)
    for _ in range(2):  # the second attempt must not find a step-0 file to prefer
        code, out = invoke("train", "row-lstm", "--out", run, "--resume")
        one_clear_line(code, out)
        assert "last.ckpt: unreadable checkpoint" in out
    assert checksums(run) == before and not (run / "checkpoints" / "interrupted.ckpt").exists()


def test_resume_skips_an_unreadable_checkpoint_for_the_one_that_loads(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "checkpoints" / "interrupted.ckpt").write_bytes(b"PK\x03\x04 not a checkpoint")
    lines = []
    chosen = run_folder.resume_checkpoint(run, warn=lines.append)
    assert chosen.name == "last.ckpt"
    assert len(lines) == 1 and "skipped" in lines[0] and "interrupted.ckpt" in lines[0]


def test_resume_prefers_the_checkpoint_furthest_in_steps(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["global_step"] = 0
    torch.save(ckpt, run / "checkpoints" / "interrupted.ckpt")  # newer file, fewer steps
    assert run_folder.resume_checkpoint(run).name == "last.ckpt"


def test_a_copied_run_resumes_from_its_own_checkpoints(finished, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    original = tmp_path / "original"
    shutil.copytree(finished, original)
    result = runner.train("row-lstm", out=copy, resume=True, quiet=True)
    expected = json.loads((finished / "metrics.json").read_text())
    assert result.metrics["checkpoint"] == "best.ckpt"
    assert result.metrics["test_accuracy"] == expected["test_accuracy"]
    # the original's best.ckpt changed under the copy: the copy must not read it
    shutil.rmtree(original)
    shutil.copytree(finished, tmp_path / "copy2")
    best = finished / "checkpoints" / "best.ckpt"
    saved = best.read_bytes()
    try:
        best.write_bytes(b"gone")
        again = runner.train("row-lstm", out=tmp_path / "copy2", resume=True, quiet=True)
    finally:
        best.write_bytes(saved)
    assert again.metrics["test_accuracy"] == expected["test_accuracy"]


# ---- divergence ----


def test_divergence_stops_at_once_and_leaves_no_folder_without_checkpoint(data_root, tmp_path):
    code, out = invoke(
        "train", "row-lstm", *TINY, "--lr", "1e9", "--data-root", data_root,
        "--out", tmp_path / "run",
    )  # fmt: skip
    one_clear_line(code, out)
    assert "training diverged at step" in out and "learning rate" in out
    assert not (tmp_path / "run").exists()


class BlowUpAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            for group in trainer.optimizers[0].param_groups:
                group["lr"] = 1e12


def test_divergence_keeps_the_last_good_checkpoints(data_root, tmp_path):
    run = tmp_path / "run"
    overrides = {
        "limit_train": 512, "max_steps": 40, "hidden_size": 8, "batch_size": 32,
        "checkpoint_every": 5, "data_root": str(data_root),
    }  # fmt: skip
    with pytest.raises(runner.Diverged, match="diverged at step") as e:
        runner.train("row-lstm", overrides, out=run, quiet=True, callbacks=[BlowUpAt(12)])
    assert "last.ckpt" in str(e.value)
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] <= 13
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert not (run / "checkpoints" / "interrupted.ckpt").exists()
    assert not (run / "metrics.json").exists()


# ---- hostile model descriptions and checkpoints ----


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: d["kwargs"].update(extra=1), "model.json: cannot build model 'row-lstm'"),
        (lambda d: d["kwargs"].update(hidden_size="abc"), "model.json: cannot build model"),
        (lambda d: d["kwargs"].update(num_layers=None), "model.json: cannot build model"),
        (lambda d: d.update(kwargs=[]), "model.json: a model description needs a name"),
        (lambda d: d["kwargs"].update(hidden_size=100_000), "other shape"),  # not built: 320 GB
        (
            lambda d: d["kwargs"].update(hidden_size=16),
            "model.safetensors: weights do not fit model 'row-lstm' (other shape: "
            "reader.readers.0.weight_ih_l0 [32, 28] where the model has [64, 28]",
        ),
    ],
)
def test_edited_model_json_is_one_line(finished, tmp_path, edit, message):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    spec = json.loads((run / "model.json").read_text())
    edit(spec)
    (run / "model.json").write_text(json.dumps(spec))
    code, out = invoke("evaluate", run)
    one_clear_line(code, out)
    assert message in out


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_code_in_a_checkpoint_is_refused_without_unsafe_advice(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    torch.save({"state_dict": RunsCode()}, run / "checkpoints" / "last.ckpt")
    code, out = invoke("train", "row-lstm", "--out", run, "--resume")
    one_clear_line(code, out)
    assert "refused, not a plain weights checkpoint" in out
    assert "weights_only" not in out and not Path("PWNED").exists()


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_pickled_numpy_files_are_refused_without_unsafe_advice(tmp_path, suffix):
    import numpy as np

    from lstmvision.data.moving_mnist_file import MovingMNISTFile
    from lstmvision.data.video import load_npz_sequences
    from lstmvision.errors import DataError

    path = tmp_path / f"hostile{suffix}"
    objects = np.array([RunsCode()], dtype=object)
    if suffix == ".npy":
        np.save(path, objects, allow_pickle=True)
        read = MovingMNISTFile
    else:
        np.savez(path, a=objects)
        read = load_npz_sequences
    with pytest.raises(DataError, match="would unpickle Python objects") as e:
        read(path)
    assert "allow_pickle" not in str(e.value) and not Path("PWNED").exists()
