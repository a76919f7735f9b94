"""next-frame and clip-classify end to end on tiny slices of real data (ViSP, video files, UCF101 clip)."""

from __future__ import annotations

import json

import lightning as L
import pytest
from typer.testing import CliRunner

from lstmvision import cli
from lstmvision.tasks import get_task, runner
from lstmvision.tasks.config import resolve_config

cli._register_train_commands()

TINY_NEXT = {"dataset": "visp", "hidden_sizes": "8", "kernel_size": 3, "patch": 4, "frame_size": "24x32",
             "batch_size": 8, "limit_train": 96, "epochs": 3, "lr": 0.01, "residual": False}  # fmt: skip


def invoke(*args):
    result = CliRunner().invoke(cli.app, [str(a) for a in args])
    return result.exit_code, result.output


def _untrained_val_mse(overrides: dict) -> float:
    task = get_task("next-frame")()
    cfg = resolve_config(task.Config, None, overrides)
    L.seed_everything(cfg.seed, verbose=False)
    dm = task.datamodule(cfg)
    dm.setup("fit")
    model = task.build_model(cfg)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    return trainer.validate(task.module(cfg, model), datamodule=dm, verbose=False)[0]["val_mse"]


@pytest.fixture(scope="module")
def visp_run(tmp_path_factory, data_root):
    overrides = {**TINY_NEXT, "data_root": str(data_root)}
    run = tmp_path_factory.mktemp("runs") / "visp"
    result = runner.train("next-frame", overrides, out=run, quiet=True)
    return run, result.metrics, _untrained_val_mse(overrides)


def test_short_training_on_real_frames_beats_its_untrained_start(visp_run):
    run, m, untrained = visp_run
    assert m["val_mse"] < 0.7 * untrained, (m["val_mse"], untrained)
    for key in ("test_mse", "test_mae", "test_ssim", "test_psnr", "baseline_mse", "baseline_mae", "baseline_ssim"):
        assert key in m
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test_mse"] == pytest.approx(m["test_mse"])
    assert (run / "next_frames.png").is_file() and (run / "next_frames.gif").is_file()


def test_next_frame_predict_writes_gif_and_png(visp_run, data_root, tmp_path):
    run, _, _ = visp_run
    clip = data_root / "video" / "carphone_pristine.mp4"
    code, out = invoke("predict", run, clip, "--out", tmp_path / "pred")
    assert code == 0, out
    assert "10 frames predicted" in out and "copy-last-frame" in out
    gif = tmp_path / "pred" / "carphone_pristine_next_frames.gif"
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 20  # 10 given + 10 predicted
    code, out = invoke("predict", run, data_root / "video" / "visp_sequences_h96.npz")
    assert code == 1 and "not a readable video" in out


def test_next_frame_on_a_video_file_and_cnn_lstm(data_root, tmp_path):
    clip = data_root / "video" / "carphone_pristine.mp4"  # 120 frames: 96 / 12 / 12 in time
    overrides = {"dataset": str(clip), "model": "cnn-lstm", "hidden_size": 16, "frame_size": "16x16",
                 "input_frames": 4, "output_frames": 4, "batch_size": 8, "epochs": 1, "max_steps": 4}  # fmt: skip
    m = runner.train("next-frame", overrides, out=tmp_path / "run", quiet=True).metrics
    assert m["global_step"] == 4 and m["test_mse"] > 0


@pytest.mark.parametrize("args,message", [
    (["--frame-size", "30x30"], "must be multiples of --patch 4"),
    (["--frame-size", "big"], "HEIGHTxWIDTH"),
    (["--kernel-size", "4"], "must be odd"),
    (["--hidden-sizes", "8,x"], "positive integers"),
])  # fmt: skip
def test_next_frame_bad_settings_one_line(args, message, data_root, tmp_path):
    code, out = invoke("train", "next-frame", "--dataset", "visp", "--data-root", data_root, *args, "--out", tmp_path / "r")
    assert code == 1 and message in out and len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "r").exists()


def test_next_frame_clip_shorter_than_window(data_root, tmp_path):
    clip = data_root / "video" / "tree.avi"  # 68 frames: the test block has 7
    code, out = invoke("train", "next-frame", "--dataset", clip, "--frame-size", "16x16", "--out", tmp_path / "r")
    assert code == 1 and "window needs 20" in out, out


@pytest.fixture(scope="module")
def ucf_folder(tmp_path_factory, data_root):
    """UCF101 layout from the real sample clip (ApplyEyeMakeup) and a real non-UCF clip (Other)."""
    root = tmp_path_factory.mktemp("ucf")
    sources = {"ApplyEyeMakeup": data_root / "video" / "ucf101_ApplyEyeMakeup_sample.avi",
               "Other": data_root / "video" / "bikes.mp4"}  # fmt: skip
    for cls, src in sources.items():
        (root / cls).mkdir()
        for g in (1, 8, 9):
            (root / cls / f"v_{cls}_g{g:02d}_c01{src.suffix}").symlink_to(src)
    return root


def test_clip_classify_ucf_layout_train_and_predict(ucf_folder, data_root, tmp_path):
    run = tmp_path / "clips"
    code, out = invoke("train", "clip-classify", "--dataset", ucf_folder, "--num-frames", "4", "--frame-size", "24x24",
                       "--hidden-size", "8", "--epochs", "2", "--batch-size", "2", "--lr", "0.01", "--out", run)  # fmt: skip
    assert code == 0, out
    m = json.loads((run / "metrics.json").read_text())
    assert "test_accuracy" in m and json.loads((run / "classes.json").read_text()) == ["ApplyEyeMakeup", "Other"]
    sample = data_root / "video" / "ucf101_ApplyEyeMakeup_sample.avi"
    code, out = invoke("predict", run, sample, "--json")
    assert code == 0, out
    (p,) = json.loads(out)
    assert set(p["probabilities"]) == {"ApplyEyeMakeup", "Other"} and sum(p["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    code, out = invoke("predict", run, sample)
    assert code == 0 and out.startswith(f"{sample}: ") and "%" in out
    short = tmp_path / "short.avi"
    short.write_bytes(sample.read_bytes()[:20_000])
    code, out = invoke("predict", run, short)
    assert code == 1 and "the clip needs 4" in out


def test_clip_classify_motion_mnist_lrcn_and_frame_average(data_root, tmp_path):
    for model in ("lrcn", "frame-average"):
        overrides = {"model": model, "train_size": 64, "val_size": 32, "test_size": 32, "num_frames": 4,
                     "frame_size": "16x16", "backbone": "lenet5-modern", "epochs": 1, "batch_size": 16,
                     "data_root": str(data_root)}  # fmt: skip
        m = runner.train("clip-classify", overrides, out=tmp_path / model, quiet=True).metrics
        assert 0 <= m["test_accuracy"] <= 1 and (tmp_path / model / "confusion_matrix.png").is_file()


def test_psnr_per_frame_matches_torchmetrics_and_is_finite_for_exact_frames():
    import torch
    from torchmetrics.functional.image import peak_signal_noise_ratio

    from lstmvision.tasks.next_frame import PSNR_CAP, FrameMetrics

    truth = torch.rand(2, 3, 1, 8, 8)
    pred = (truth + 0.05 * torch.randn_like(truth)).clamp(0, 1)
    m = FrameMetrics()
    m.update(pred, truth)
    expected = torch.stack([peak_signal_noise_ratio(p, t, data_range=1.0) for p, t in
                            zip(pred.flatten(0, 1), truth.flatten(0, 1))]).mean()  # fmt: skip
    assert float(m.psnr.compute()) == pytest.approx(float(expected), rel=1e-4)
    exact = FrameMetrics()
    exact.update(truth, truth)
    assert float(exact.psnr.compute()) == pytest.approx(PSNR_CAP)
