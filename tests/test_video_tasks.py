"""next-frame and clip-classify end to end on tiny slices of real data (ViSP, video files, UCF101 clip)."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from lstmvision import cli
from lstmvision.errors import ConfigError
from lstmvision.tasks import get_task, runner
from lstmvision.tasks.config import resolve_config
from lstmvision.tasks.next_frame import native_bf16

cli._register_train_commands()

TINY_NEXT = {
    "dataset": "visp",
    "model": "convlstm",
    "hidden_sizes": "8",
    "kernel_size": 3,
    "patch": 4,
    "frame_size": "24x32",
    "batch_size": 8,
    "limit_train": 96,
    "epochs": 3,
    "lr": 0.01,
    "residual": False,
    "flow": False,
    "motion_augment": 0,
}


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
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
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
    for key in (
        "test_mse",
        "test_mae",
        "test_ssim",
        "test_psnr",
        "baseline_mse",
        "baseline_mae",
        "baseline_ssim",
    ):
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
    overrides = {
        "dataset": str(clip),
        "model": "cnn-lstm",
        "hidden_size": 16,
        "frame_size": "16x16",
        "input_frames": 4,
        "output_frames": 4,
        "batch_size": 8,
        "epochs": 1,
        "max_steps": 4,
    }
    m = runner.train("next-frame", overrides, out=tmp_path / "run", quiet=True).metrics
    assert m["global_step"] == 4 and m["test_mse"] > 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "convlstm", "--frame-size", "30x30"], "must be multiples of --patch 4"),
        (
            ["--model", "convlstm", "--no-flow", "--no-residual", "--frame-size", "30x30"],
            "must be multiples of --patch 4",
        ),
        (["--frame-size", "big"], "HEIGHTxWIDTH"),
        (["--model", "convlstm", "--kernel-size", "4"], "must be odd"),
        (["--model", "convlstm", "--readout-kernel", "2"], "--readout-kernel 2: must be odd"),
        (["--model", "convlstm", "--readout-hidden", "-3"], "--readout-hidden -3: must be 0"),
        (["--model", "convlstm", "--patch", "0"], "--patch 0: must be positive"),
        (["--model", "convlstm", "--hidden-sizes", "8,x"], "positive integers"),
        (["--dataset", "moving-mnist", "--motion-augment", "1"], "applies to real videos"),
        (["--dataset", "moving-mnist", "--model", "motion-lstm"], "no camera"),
        (["--measured-motion"], "input of --model convlstm, not motion-lstm"),
        (["--sampling-share", "1.5"], "--sampling-share 1.5: must be between 0 and 1"),
    ],
)
def test_next_frame_bad_settings_one_line(args, message, data_root, tmp_path):
    code, out = invoke(
        "train",
        "next-frame",
        "--dataset",
        "visp",
        "--data-root",
        data_root,
        *args,
        "--out",
        tmp_path / "r",
    )
    assert code == 1 and message in out and len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "r").exists()


def test_motion_lstm_trains_on_visp_and_predicts(data_root, tmp_path):
    run = tmp_path / "motion"
    code, out = invoke(
        "train",
        "next-frame",
        "--dataset",
        "visp",
        "--data-root",
        data_root,
        "--hidden-size",
        "8",
        "--frame-size",
        "24x32",
        "--epochs",
        "1",
        "--max-steps",
        "3",
        "--out",
        run,
    )
    assert code == 0, out
    m = json.loads((run / "metrics.json").read_text())
    assert m["global_step"] == 3 and m["test_mse"] > 0 and m["baseline_mse"] > 0
    config = (run / "config.yaml").read_text()
    assert "model: motion-lstm" in config and "lr: 0.003" in config  # the defaults, saved
    code, out = invoke(
        "predict", run, data_root / "video" / "carphone_pristine.mp4", "--out", tmp_path / "pred"
    )
    assert code == 0 and "10 frames predicted" in out, out


def test_next_frame_clip_shorter_than_window(data_root, tmp_path):
    clip = data_root / "video" / "tree.avi"  # 68 frames: the test block has 7
    code, out = invoke(
        "train", "next-frame", "--dataset", clip, "--frame-size", "16x16", "--out", tmp_path / "r"
    )
    assert code == 1 and "window needs 20" in out, out


@pytest.fixture(scope="module")
def ucf_folder(tmp_path_factory, data_root):
    """UCF101 layout from the real sample clip (ApplyEyeMakeup) and a real non-UCF clip (Other)."""
    root = tmp_path_factory.mktemp("ucf")
    sources = {
        "ApplyEyeMakeup": data_root / "video" / "ucf101_ApplyEyeMakeup_sample.avi",
        "Other": data_root / "video" / "bikes.mp4",
    }
    for cls, src in sources.items():
        (root / cls).mkdir()
        for g in (1, 8, 9):
            (root / cls / f"v_{cls}_g{g:02d}_c01{src.suffix}").symlink_to(src)
    return root


def test_clip_classify_ucf_layout_train_and_predict(ucf_folder, data_root, tmp_path):
    run = tmp_path / "clips"
    code, out = invoke(
        "train",
        "clip-classify",
        "--dataset",
        ucf_folder,
        "--num-frames",
        "4",
        "--frame-size",
        "24x24",
        "--hidden-size",
        "8",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--lr",
        "0.01",
        "--out",
        run,
    )
    assert code == 0, out
    m = json.loads((run / "metrics.json").read_text())
    assert "test_accuracy" in m and json.loads((run / "classes.json").read_text()) == [
        "ApplyEyeMakeup",
        "Other",
    ]
    sample = data_root / "video" / "ucf101_ApplyEyeMakeup_sample.avi"
    code, out = invoke("predict", run, sample, "--json")
    assert code == 0, out
    (p,) = json.loads(out)
    assert set(p["probabilities"]) == {"ApplyEyeMakeup", "Other"} and sum(
        p["probabilities"].values()
    ) == pytest.approx(1, abs=1e-3)
    code, out = invoke("predict", run, sample)
    assert code == 0 and out.startswith(f"{sample}: ") and "%" in out
    short = tmp_path / "short.avi"
    short.write_bytes(sample.read_bytes()[:20_000])
    code, out = invoke("predict", run, short)
    assert code == 1 and "the clip needs 4" in out


def test_clip_classify_motion_mnist_lrcn_and_frame_average(data_root, tmp_path):
    for model in ("lrcn", "frame-average"):
        overrides = {
            "model": model,
            "train_size": 64,
            "val_size": 32,
            "test_size": 32,
            "num_frames": 4,
            "frame_size": "16x16",
            "backbone": "lenet5-modern",
            "epochs": 1,
            "batch_size": 16,
            "data_root": str(data_root),
        }
        m = runner.train("clip-classify", overrides, out=tmp_path / model, quiet=True).metrics
        assert (
            0 <= m["test_accuracy"] <= 1 and (tmp_path / model / "confusion_matrix.png").is_file()
        )


def test_psnr_per_frame_matches_torchmetrics_and_is_finite_for_exact_frames():
    import torch
    from torchmetrics.functional.image import peak_signal_noise_ratio

    from lstmvision.tasks.next_frame import PSNR_CAP, FrameMetrics

    truth = torch.rand(2, 3, 1, 8, 8)
    pred = (truth + 0.05 * torch.randn_like(truth)).clamp(0, 1)
    m = FrameMetrics()
    m.update(pred, truth)
    expected = torch.stack(
        [
            peak_signal_noise_ratio(p, t, data_range=1.0)
            for p, t in zip(pred.flatten(0, 1), truth.flatten(0, 1))
        ]
    ).mean()
    assert float(m.psnr.compute()) == pytest.approx(float(expected), rel=1e-4)
    exact = FrameMetrics()
    exact.update(truth, truth)
    assert float(exact.psnr.compute()) == pytest.approx(PSNR_CAP)


def test_warp_moves_pixels_by_the_flow():
    from lstmvision.models.video import warp

    img = torch.rand(2, 1, 6, 7)
    assert torch.allclose(warp(img, torch.zeros(2, 2, 6, 7)), img, atol=1e-6)
    right = torch.zeros(2, 2, 6, 7)
    right[:, 0] = 1.0  # one pixel to the right
    assert torch.allclose(warp(img, right)[..., 1:], img[..., :-1], atol=1e-6)
    down = torch.zeros(2, 2, 6, 7)
    down[:, 1] = 2.0  # two pixels down; the top rows repeat the border
    moved = warp(img, down)
    assert torch.allclose(moved[..., 2:, :], img[..., :-2, :], atol=1e-6)
    assert torch.allclose(moved[..., 0, :], img[..., 0, :], atol=1e-6)


def test_untrained_flow_forecaster_is_copy_last_and_learns_a_translation():
    from lstmvision.models.video import ConvLSTMForecaster

    torch.manual_seed(0)
    model = ConvLSTMForecaster(hidden_sizes=[8], kernel_size=3, patch=2, output_frames=3, flow=True)
    frames = torch.rand(2, 4, 1, 8, 8)
    pred = model(frames)
    assert torch.allclose(pred, frames[:, -1:].expand_as(pred))
    # a texture sliding one pixel right per frame: a few steps of training beat copy-last
    base = F.avg_pool2d(torch.rand(1, 1, 18, 42), 3, stride=1)  # a smooth texture (1, 1, 16, 40)
    clip = torch.stack([base[..., 12 - t : 12 - t + 16] for t in range(8)], 1)  # (1, 8, 1, 16, 16)
    clip = clip.repeat(4, 1, 1, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        loss = F.mse_loss(model.rollout(clip, 4), clip[:, 1:])
        opt.zero_grad(), loss.backward(), opt.step()
    with torch.no_grad():
        err = F.mse_loss(model(clip[:, :4], 4), clip[:, 4:])
    copy = F.mse_loss(clip[:, 3:4].expand(-1, 4, -1, -1, -1), clip[:, 4:])
    assert err < 0.5 * copy, (err, copy)


def test_affine_params_measure_a_known_camera_motion():
    from lstmvision.models.video import affine_field, affine_params, warp

    def affine_motion(prev, frame):  # the measured motion as a field (B, 2, H, W)
        return affine_field(affine_params(prev, frame), *frame.shape[-2:])

    torch.manual_seed(0)
    texture = F.avg_pool2d(torch.rand(2, 1, 52, 68), 5, stride=1)  # smooth texture (2, 1, 48, 64)
    assert affine_motion(texture, texture).abs().max() < 1e-4  # a still pair: no motion
    flat = torch.full((1, 1, 48, 64), 0.5)
    assert affine_motion(flat, flat).abs().max() < 1e-4  # no texture: no motion, no NaN
    ys, xs = torch.meshgrid(torch.arange(48.0) - 23.5, torch.arange(64.0) - 31.5, indexing="ij")
    rot = 0.01  # radians: a small rotation about the centre plus a shift of (1.5, -0.7) px
    field = torch.stack([1.5 - rot * ys, -0.7 + rot * xs])[None].repeat(
        2, 1, 1, 1
    )  # (2, 2, 48, 64)
    moved = warp(texture, field)
    measured = affine_motion(texture, moved)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert (measured - field)[inner].abs().max() < 0.1, (measured - field)[inner].abs().max()


def test_measured_motion_forecaster_shapes_and_copy_last_start():
    from lstmvision.errors import ConfigError
    from lstmvision.models.video import ConvLSTMForecaster

    torch.manual_seed(0)
    model = ConvLSTMForecaster(
        hidden_sizes=[8],
        kernel_size=3,
        patch=4,
        output_frames=3,
        flow=True,
        residual=True,
        measured_motion=True,
    )
    frames = torch.rand(2, 5, 1, 16, 24)
    pred = model(frames)
    assert pred.shape == (2, 3, 1, 16, 24)
    assert torch.allclose(pred, frames[:, -1:].expand_as(pred), atol=1e-5)  # untrained: copy-last
    assert model.convlstm.cells[0].input_size == 2 * 16 + 2  # frame, difference, measured motion
    with pytest.raises(ConfigError, match="flow"):
        ConvLSTMForecaster(measured_motion=True, flow=False)


def test_readout_kernel_reads_each_patch_from_its_neighbourhood():
    from lstmvision.errors import ConfigError
    from lstmvision.models.video import ConvLSTMForecaster

    torch.manual_seed(0)
    wide = ConvLSTMForecaster(
        hidden_sizes=[8], kernel_size=1, patch=4, output_frames=2, readout_kernel=3
    )
    assert wide.out.kernel_size == (3, 3) and wide.out.weight.shape == (16, 8, 3, 3)
    frames = torch.rand(2, 3, 1, 16, 24)
    assert wide(frames).shape == (2, 2, 1, 16, 24)
    # with 1x1 ConvLSTM kernels, a change in one patch of the input moves the prediction of the
    # patch beside it only through the 3x3 read-out
    changed = frames.clone()
    changed[:, :, :, :4, :4] += 0.5
    narrow = ConvLSTMForecaster(
        hidden_sizes=[8], kernel_size=1, patch=4, output_frames=2, readout_kernel=1
    )
    for model, moves in ((wide, True), (narrow, False)):
        beside = (model(changed) - model(frames))[..., :4, 4:8]  # the next patch to the right
        assert (beside.abs().max() > 1e-4) == moves
    with pytest.raises(ConfigError, match="must be odd"):
        ConvLSTMForecaster(readout_kernel=2)


def test_readout_hidden_layer_makes_the_readout_nonlinear():
    from lstmvision.errors import ConfigError
    from lstmvision.models.video import ConvLSTMForecaster

    torch.manual_seed(0)
    h = torch.randn(3, 8, 4, 6)  # last layer's state
    zero = torch.zeros_like(h)
    linear = ConvLSTMForecaster(hidden_sizes=[8], patch=4, readout_kernel=3)
    deep = ConvLSTMForecaster(hidden_sizes=[8], patch=4, readout_kernel=3, readout_hidden=5)
    assert isinstance(deep.out, torch.nn.Sequential) and deep.out[0].weight.shape == (5, 8, 3, 3)
    assert deep.out[-1].weight.shape == (16, 5, 1, 1)
    for model, nonlinear in ((linear, False), (deep, True)):
        with torch.no_grad():
            gap = model.out(2 * h) - 2 * model.out(h) + model.out(zero)  # 0 for an affine map
        assert (gap.abs().max() > 1e-3) == nonlinear
    frames = torch.rand(2, 5, 1, 16, 24)
    assert deep(frames).shape == (2, 10, 1, 16, 24)
    copy = ConvLSTMForecaster(
        hidden_sizes=[8], patch=4, output_frames=3, residual=True, readout_hidden=5
    )
    pred = copy(frames)
    assert torch.allclose(pred, frames[:, -1:].expand_as(pred))  # the last layer starts at zero
    with pytest.raises(ConfigError, match="readout_hidden -1"):
        ConvLSTMForecaster(readout_hidden=-1)


@pytest.mark.parametrize("readout_hidden", [0, 5])
def test_forecaster_rollout_gradients_equal_the_plain_steps(readout_hidden):
    """``ConvLSTMForecaster.rollout`` computes the cells' and the read-out's weight gradients once
    per sequence; they must be those of the plain steps (the base class's rollout), in float64,
    with scheduled sampling feeding back some predictions."""
    from lstmvision.models.video import ConvLSTMForecaster, _Forecaster

    torch.manual_seed(0)
    model = ConvLSTMForecaster(
        hidden_sizes=[4, 5], kernel_size=3, patch=2, readout_kernel=3, readout_hidden=readout_hidden
    ).double()
    frames = torch.rand(2, 7, 1, 6, 8, dtype=torch.double)
    grads = []
    for rollout in (model.rollout, lambda *a: _Forecaster.rollout(model, *a)):
        torch.manual_seed(1)  # the same scheduled-sampling draws
        model.zero_grad()
        (rollout(frames, 4, 0.5) - frames[:, 1:]).square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        assert a.abs().sum() > 0 and torch.allclose(a, b, atol=1e-10, rtol=1e-9)
    assert model._readout is None


def test_motion_windows_follow_a_camera_path():
    from lstmvision.tasks.next_frame import MotionWindows

    torch.manual_seed(0)
    still_frames = (
        (torch.rand(1, 32, 48) * 255).to(torch.uint8).repeat(12, 1, 1)
    )  # a still scene, 2x size
    still = MotionWindows([still_frames], 6, (16, 24), strength=1.0, still=1.0)
    x = still[0]
    assert x.shape == (6, 1, 16, 24) and 0 <= x.min() and x.max() <= 1
    assert torch.allclose(x, x[:1].expand_as(x))  # the crop does not move
    moving = MotionWindows([still_frames], 6, (16, 24), strength=1.0, still=0.0)
    assert len(moving) == 7
    frames = torch.stack([moving[i] for i in range(7)])
    assert (frames[:, 1:] - frames[:, :1]).abs().mean() > 0.01  # the view changes along the window
    for _ in range(20):  # the crop's centre stays on the source frame
        centre, angle, scale = moving.path((32, 48))
        assert centre.shape == (6, 2) and angle.shape == scale.shape == (6,)
        assert (
            (centre[:, 0].min() >= 0) and (centre[:, 0].max() <= 48) and (centre[:, 1].max() <= 32)
        )


def test_next_frame_defaults_per_data_set_and_model(monkeypatch):
    from lstmvision.tasks import next_frame

    monkeypatch.setattr(
        next_frame, "step_seconds", lambda *a, **k: 0.55
    )  # 59 min / (1.11 * 0.55 s * 637.8) = 9.1
    task = get_task("next-frame")()
    bf16 = "bf16-mixed" if native_bf16("cpu") else "32-true"
    for overrides, expected in (
        ({"dataset": "moving-mnist"}, ("convlstm", 9, 3e-3, 3, 3937, bf16, 8, "128,128")),
        ({"dataset": "visp"}, ("motion-lstm", 16, 3e-3, 1, 0, "32-true", 4, "64,64")),
        (
            {"dataset": "visp", "model": "convlstm"},
            ("convlstm", 2, 1e-3, 1, 0, "32-true", 4, "64,64"),
        ),
    ):
        cfg = resolve_config(task.Config, None, overrides)
        task.model_spec(cfg)
        assert (
            cfg.model,
            cfg.epochs,
            cfg.lr,
            cfg.readout_kernel,
            cfg.scheduled_sampling,
            cfg.precision,
            cfg.patch,
            cfg.hidden_sizes,
        ) == expected
        assert cfg.refit_epochs == (
            cfg.dataset == "moving-mnist"
        )  # only the budget's epochs are refitted
    spec = task.model_spec(resolve_config(task.Config, None, {"dataset": "moving-mnist"}))[1]
    assert (spec["patch"], spec["hidden_sizes"]) == (8, [128, 128])
    given = {
        "epochs": 1,
        "train_size": 320,
        "batch_size": 32,
        "precision": "32-true",
        "readout_kernel": 5,
        "lr": 1e-4,
        "patch": 4,
        "hidden_sizes": "16",
    }
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", **given})
    task.model_spec(cfg)
    assert all(getattr(cfg, k) == v for k, v in given.items()) and cfg.refit_epochs is False
    assert cfg.scheduled_sampling == 7  # 70 % of 1 epoch of 320 / 32 steps
    cfg = resolve_config(
        task.Config, None, {"dataset": "moving-mnist", **given, "sampling_share": 0.5}
    )
    task.model_spec(cfg)
    assert cfg.scheduled_sampling == 5  # half of the 10 steps
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", "norm": True})
    model = task.build_model(cfg)
    assert cfg.norm and all(cell.norm for cell in model.convlstm.cells)
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", "readout_hidden": 7})
    assert task.build_model(cfg).out[0].out_channels == 7


def test_moving_mnist_epochs_are_those_that_fit_the_time_budget_here(monkeypatch, capsys):
    from lstmvision.tasks import next_frame

    task = get_task("next-frame")()
    timed = []
    step = {"seconds": 0.366}

    def fake(model, frames, input_frames, precision="32-true", **kw):
        timed.append(
            (
                tuple(frames.shape),
                input_frames,
                precision,
                sum(p.numel() for p in model.parameters()),
            )
        )
        return step["seconds"]

    monkeypatch.setattr(next_frame, "step_seconds", fake)
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist"})
    task.model_spec(cfg)
    # 59 min / (1.11 x 0.366 s x (625 training batches + 0.4 x 32 validation batches)) = 13.7
    assert cfg.epochs == 13 and cfg.scheduled_sampling == int(13 * 625 * 0.7)
    recipe = sum(p.numel() for p in task.build_model(cfg).parameters())
    assert timed == [
        ((16, 20, 1, 64, 64), 10, cfg.precision, recipe)
    ]  # the recipe's model and batch
    assert "13 epoch(s) fit in --budget-minutes 59" in capsys.readouterr().err
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", "budget_minutes": 29})
    task.model_spec(cfg)
    assert cfg.epochs == 6
    step["seconds"] = (
        100.0  # a slow machine still trains one epoch; a fast one at most MAX_BUDGET_EPOCHS
    )
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist"})
    task.model_spec(cfg)
    assert cfg.epochs == 1
    step["seconds"] = 1e-6
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist"})
    task.model_spec(cfg)
    assert cfg.epochs == next_frame.MAX_BUDGET_EPOCHS
    timed.clear()
    for given in (
        {"epochs": 3},
        {"dataset": "visp", "model": "convlstm"},
    ):  # epochs given, or not moving-mnist: no timing
        task.model_spec(resolve_config(task.Config, None, {"dataset": "moving-mnist", **given}))
    assert not timed
    with pytest.raises(ConfigError, match="--budget-minutes 0"):
        task.model_spec(
            resolve_config(task.Config, None, {"dataset": "moving-mnist", "budget_minutes": 0})
        )
    with pytest.raises(ConfigError, match="does not go with --max-steps"):
        task.model_spec(
            resolve_config(
                task.Config, None, {"dataset": "moving-mnist", "refit_epochs": True, "max_steps": 9}
            )
        )
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", "max_steps": 9})
    task.model_spec(cfg)
    assert cfg.refit_epochs is False  # --max-steps ends the schedule; no refit


def test_refit_epochs_follows_the_measured_epochs_in_the_first_half_then_only_cuts_late_runs():
    from lstmvision.tasks.next_frame import LATE_GRACE_S, MAX_BUDGET_EPOCHS, refit_epochs

    budget = 59 * 60
    assert refit_epochs(1, 206, 16, budget) == 17  # 3540 / 206 = 17.2: up
    assert refit_epochs(1, 190, 17, budget) == 18  # 18.6
    assert refit_epochs(2, 430, 17, budget) == 16  # 215 s per epoch: 16.5, down
    assert refit_epochs(1, 400, 17, budget) == 8
    assert refit_epochs(8, 8 * 200, 17, budget) == 17  # 2 x 8 <= 17: still the first half
    assert (
        refit_epochs(9, 9 * 180, 17, budget) == 17
    )  # past the half: 19 would fit, the count stays
    per = (
        budget + LATE_GRACE_S
    ) / 16.5  # ends more than the grace past the budget at 17: cut to 16
    assert refit_epochs(10, 10 * per, 17, budget) == 16
    assert refit_epochs(10, 10 * 199, 17, budget + 1) == 17  # within the grace: stays
    assert refit_epochs(10, 10 * 600, 17, budget) == 10  # far too slow: stop after this epoch
    assert refit_epochs(1, 1e-3, 2, budget) == MAX_BUDGET_EPOCHS


def test_stretched_one_cycle_continues_as_one_built_for_the_new_length():
    from lstmvision.tasks.base import stretch_one_cycle

    def schedule(total):
        opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=3e-3)
        return opt, torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=3e-3, total_steps=total, pct_start=0.3
        )

    for old, new, at in (
        (100, 150, 20),
        (150, 100, 40),
        (100, 140, 70),
    ):  # longer, shorter; in warm-up or annealing
        opt, sched = schedule(old)
        fresh_opt, fresh = schedule(new)
        for _ in range(at):
            opt.step(), sched.step(), fresh_opt.step(), fresh.step()
        stretch_one_cycle(sched, new)
        for _ in range(new - 1 - at):
            opt.step(), sched.step(), fresh_opt.step(), fresh.step()
            assert opt.param_groups[0]["lr"] == pytest.approx(
                fresh_opt.param_groups[0]["lr"], rel=1e-9
            )
            assert opt.param_groups[0]["betas"] == pytest.approx(
                fresh_opt.param_groups[0]["betas"], rel=1e-9
            )
        assert sched.total_steps == new
        _, reloaded = schedule(old)
        reloaded.load_state_dict(sched.state_dict())  # a checkpoint keeps the new length
        assert reloaded.total_steps == new and reloaded._schedule_phases == sched._schedule_phases
    with pytest.raises(TypeError, match="OneCycleLR"):
        stretch_one_cycle(torch.optim.lr_scheduler.StepLR(opt, 5), 10)


TINY_MNIST = {
    "dataset": "moving-mnist",
    "patch": 8,
    "hidden_sizes": "4",
    "train_size": 32,
    "batch_size": 8,
    "val_size": 8,
    "test_size": 8,
    "precision": "32-true",
    "epochs": 2,
    "refit_epochs": True,
}


class _Schedule(L.Callback):
    def on_train_end(self, trainer, pl_module):
        self.total = trainer.lr_scheduler_configs[0].scheduler.total_steps
        self.sampling = pl_module.cfg.scheduled_sampling


@pytest.mark.parametrize("refit,epochs", [(3, 3), (1, 1)])
def test_refitted_epochs_reach_the_trainer_schedule_sampling_and_config(
    refit, epochs, monkeypatch, data_root, tmp_path, capsys
):
    import yaml

    from lstmvision.tasks import next_frame

    seen = []

    def fake(done, seconds, epochs, budget_s):
        seen.append((done, seconds > 0, epochs, budget_s))
        return refit if done == 1 else epochs

    monkeypatch.setattr(next_frame, "refit_epochs", fake)
    probe = _Schedule()
    overrides = {**TINY_MNIST, "data_root": str(data_root), "budget_minutes": 7}
    m = runner.train("next-frame", overrides, out=tmp_path / "run", callbacks=[probe]).metrics
    assert seen[0] == (1, True, 2, 7 * 60)  # from the run's clock, after the first epoch
    assert m["epochs"] == epochs and m["global_step"] == 4 * epochs  # 32 / 8 = 4 steps an epoch
    assert probe.total == 4 * epochs and probe.sampling == int(4 * epochs * 0.7)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["epochs"], saved["scheduled_sampling"], saved["refit_epochs"]) == (
        epochs,
        int(4 * epochs * 0.7),
        True,
    )
    assert f"{epochs} epochs in all fit in --budget-minutes 7 (were 2)" in capsys.readouterr().err


class _Crash(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 6:  # two steps into the second epoch
            raise RuntimeError("power cut")


def test_a_refitted_run_resumes_to_its_refitted_end(monkeypatch, data_root, tmp_path):
    from lstmvision.tasks import next_frame

    monkeypatch.setattr(
        next_frame,
        "refit_epochs",
        lambda done, seconds, epochs, budget_s: 3 if done == 1 else epochs,
    )
    overrides = {**TINY_MNIST, "data_root": str(data_root)}
    with pytest.raises(RuntimeError, match="power cut"):
        runner.train(
            "next-frame", overrides, out=tmp_path / "run", quiet=True, callbacks=[_Crash()]
        )
    probe = _Schedule()
    m = runner.train(
        "next-frame", {}, out=tmp_path / "run", resume=True, quiet=True, callbacks=[probe]
    ).metrics
    assert (m["epochs"], m["global_step"], probe.total) == (
        3,
        12,
        12,
    )  # the refit survived the crash


def test_epoch_budget_applies_the_configs_count_when_training_starts():
    """A resumed run whose checkpoint predates its last refit: config.yaml's count wins."""
    from types import SimpleNamespace

    from lstmvision.tasks.next_frame import EpochBudget

    task = get_task("next-frame")()
    cfg = resolve_config(task.Config, None, {**TINY_MNIST, "epochs": 5})
    task.model_spec(cfg)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=1e-3, total_steps=8
    )  # the checkpoint's 2 epochs
    trainer = SimpleNamespace(
        fit_loop=SimpleNamespace(max_epochs=2),
        num_training_batches=4,
        lr_scheduler_configs=[SimpleNamespace(scheduler=sched)],
    )
    EpochBudget(cfg, clock=None).on_train_start(trainer, None)
    assert (trainer.fit_loop.max_epochs, sched.total_steps, cfg.epochs) == (5, 20, 5)


def test_timing_the_budget_leaves_the_runs_random_numbers_alone():
    task = get_task("next-frame")()
    small = {
        "dataset": "moving-mnist",
        "patch": 8,
        "hidden_sizes": "4",
        "train_size": 32,
        "batch_size": 2,
        "precision": "32-true",
        "budget_minutes": 0.01,
    }
    torch.manual_seed(0)
    cfg = resolve_config(task.Config, None, small)
    task.model_spec(cfg)  # times real steps of the small model
    assert cfg.epochs >= 1
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))


def test_moving_mnist_stays_float32_where_bfloat16_is_not_native(monkeypatch):
    from lstmvision.tasks import next_frame

    monkeypatch.setattr(next_frame, "step_seconds", lambda *a, **k: 0.5)
    task = get_task("next-frame")()
    assert not native_bf16("gpu")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist"})
    task.model_spec(cfg)
    assert cfg.precision == "32-true" and not native_bf16("cpu")

    def missing():
        raise AttributeError("no such op")

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", missing)
    assert not native_bf16("cpu")


def test_heat_blur_has_the_asked_variance_and_zero_is_the_identity():
    from lstmvision.models.video import heat_blur

    delta = torch.zeros(2, 1, 41, 41)
    delta[:, 0, 20, 20] = 1
    out = heat_blur(delta, torch.tensor([0.0, 2.0]))
    assert torch.allclose(out[0], delta[0], atol=1e-6)  # variance 0: unchanged
    taps = torch.arange(41.0) - 20
    assert abs(out[1].sum().item() - 1) < 1e-5  # brightness kept
    assert abs((out[1, 0].sum(0) * taps.square()).sum().item() - 2.0) < 1e-3  # variance along x
    assert abs((out[1, 0].sum(1) * taps.square()).sum().item() - 2.0) < 1e-3  # along y
    variance = torch.tensor([0.0], requires_grad=True)
    heat_blur(torch.rand(1, 1, 12, 12), variance).square().sum().backward()
    assert variance.grad.abs() > 0  # learnable from zero


def test_robust_affine_params_refuse_a_fit_worse_than_no_motion(monkeypatch):
    from lstmvision.models import video
    from lstmvision.models.video import affine_field, robust_affine_params, warp

    torch.manual_seed(0)
    texture = F.avg_pool2d(torch.rand(2, 1, 52, 68), 5, stride=1)  # (2, 1, 48, 64)
    shift = torch.tensor([[0, 0, 1.2, 0, 0, -0.8]]).repeat(2, 1)
    moved = warp(texture, affine_field(shift, 48, 64))
    assert (
        robust_affine_params(texture, moved) - shift
    ).abs().max() < 0.1  # a real shift is measured
    # a failed fit (5 px where the camera held still, on the second pair) is refused; a good one kept
    failed = torch.tensor([[0, 0, 1.2, 0, 0, -0.8], [0, 0, 5.0, 0, 0, 0]])
    monkeypatch.setattr(video, "affine_params", lambda prev, frame: failed)
    kept = robust_affine_params(texture, torch.cat([moved[:1], texture[1:]]))
    assert torch.equal(kept[0], failed[0]) and torch.equal(kept[1], torch.zeros(6))


def test_motion_lstm_starts_as_copy_last_and_learns_a_steady_pan():
    from lstmvision.models.video import MotionLSTMForecaster

    torch.manual_seed(0)
    base = F.avg_pool2d(torch.rand(1, 1, 28, 80), 5, stride=1)  # a smooth texture (1, 1, 24, 76)
    clips = torch.stack(
        [
            torch.stack([base[..., 20 - s * t : 20 - s * t + 32] for t in range(10)], 1)
            for s in (1, 2)
        ]
    )[:, 0]  # (2, 10, 1, 24, 32): panning 1 and 2 px per frame
    model = MotionLSTMForecaster(hidden_size=16, output_frames=5)
    with torch.no_grad():
        start = model(clips[:, :5])
    assert start.shape == (2, 5, 1, 24, 32)
    copy = clips[:, 4:5].expand_as(start)
    assert (start - copy).abs().max() < 0.05  # untrained: copy-last but for a faint blur
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        loss = F.mse_loss(model.rollout(clips, 5), clips[:, 1:])
        opt.zero_grad(), loss.backward(), opt.step()
    with torch.no_grad():
        err = F.mse_loss(model(clips[:, :5]), clips[:, 5:])
    assert err < 0.5 * F.mse_loss(copy, clips[:, 5:]), (err, F.mse_loss(copy, clips[:, 5:]))


def test_bench_times_a_moving_mnist_training_step_in_both_precisions():
    from lstmvision.bench.video import train_step_seconds

    for bf16 in (False, True):
        seconds = train_step_seconds(bf16, repeats=1, batch=1)
        assert 0 < seconds < 60


def test_bench_video_times_the_model_its_options_name(monkeypatch):
    from lstmvision.bench import video

    built = []
    real = video.train_step_seconds
    monkeypatch.setattr(video, "frames_per_second", lambda *a: (1.0, 1))
    monkeypatch.setattr(
        video, "train_step_seconds", lambda bf16, repeats, model=None: built.append(model) or 0.5
    )
    report = video.run(repeats=1, model={"patch": 4, "hidden_sizes": "8"})
    assert built and all(m == {"patch": 4, "hidden_sizes": "8"} for m in built)
    assert "recipe with patch 4, hidden_sizes 8" in video.format_report(report)
    assert 0 < real(False, repeats=1, batch=1, model={"patch": 4, "hidden_sizes": "8"}) < 60
