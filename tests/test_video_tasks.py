"""next-frame and clip-classify end to end on tiny slices of real data (ViSP, video files, UCF101
clip)."""

from __future__ import annotations

import json
import re

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from lstmvision import cli
from lstmvision.errors import ConfigError
from lstmvision.tasks import get_task, runner
from lstmvision.tasks.budget import EpochBudget, native_bf16
from lstmvision.tasks.config import resolve_config

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
    task.resolve(cfg)
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
        (["--model", "convlstm", "--patch", "0"], "--patch 0: must be at least 1"),
        (["--model", "convlstm", "--hidden-sizes", "8,x"], "positive integers"),
        (["--dataset", "moving-mnist", "--motion-augment", "1"], "applies to real videos"),
        (["--dataset", "moving-mnist", "--model", "motion-lstm"], "no camera"),
        (["--measured-motion"], "input of --model convlstm, not motion-lstm"),
        (["--sampling-share", "1.5"], "--sampling-share 1.5: must be in [0, 1]"),
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

    from lstmvision.tasks.metrics import PSNR_CAP, FrameMetrics

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
    from lstmvision.nn.geometry import warp

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
    from lstmvision.nn.geometry import affine_field, affine_params, warp

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


def test_emulated_bfloat16_readout_without_gradients_takes_winograds_products(monkeypatch):
    """In bf16-mixed on a CPU without bfloat16 arithmetic (simulated), a 3x3 read-out of 32+
    channels each way (8x8 patches: 64 out) in a rollout without gradients (validation,
    ``predict``) runs as Winograd's products in float32: the forecast within bfloat16's rounding
    of the direct convolution's."""
    from lstmvision.models.video import ConvLSTMForecaster
    from lstmvision.nn import convlstm_fast, recurrent_fast

    monkeypatch.setattr(recurrent_fast, "cpu_computes_bf16", lambda: False)
    torch.manual_seed(0)
    model = ConvLSTMForecaster(hidden_sizes=[32], patch=8, output_frames=2, readout_kernel=3)
    with torch.no_grad():
        model.out.weight.normal_(0, 0.05)  # zero at the start: the read-out would add nothing
    frames = torch.rand(2, 3, 1, 16, 24)
    served = []  # the modules whose convolutions ran as Winograd's products
    real = convlstm_fast._inference_winograd

    def recorded(owner, *args, **kwargs):
        out = real(owner, *args, **kwargs)
        served.append(type(owner).__name__) if out is not None else None
        return out

    monkeypatch.setattr(convlstm_fast, "_inference_winograd", recorded)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast = model(frames).float()
        assert served.count("Conv2d") == 4  # the read-out at each of the rollout's 4 steps
        with monkeypatch.context() as direct:
            direct.setattr("lstmvision.models.video.inference_conv", lambda conv, x: conv(x))
            ref = model(frames).float()
    assert fast.abs().max() > 0 and (fast - ref).abs().max() <= 2e-2 * ref.abs().max()


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


@pytest.mark.parametrize("implementation", ["equations", "fast"])
@pytest.mark.parametrize("readout_hidden", [0, 5])
def test_forecaster_rollout_gradients_equal_the_plain_steps(readout_hidden, implementation):
    """On the fast path ``ConvLSTMForecaster.rollout`` computes the cells' and the read-out's
    weight gradients once per sequence; on either path they must be those of the plain steps of
    the equations (the base class's rollout of the model on the equations path), in float64, with
    scheduled sampling feeding back some predictions."""
    import copy

    from lstmvision.models.video import ConvLSTMForecaster, _Forecaster

    torch.manual_seed(0)
    model = ConvLSTMForecaster(
        hidden_sizes=[4, 5],
        kernel_size=3,
        patch=2,
        readout_kernel=3,
        readout_hidden=readout_hidden,
        implementation=implementation,
    ).double()
    reference = copy.deepcopy(model)
    reference.convlstm.implementation = "equations"
    frames = torch.rand(2, 7, 1, 6, 8, dtype=torch.double)
    grads = []
    for net, rollout in (
        (model, model.rollout),
        (reference, lambda *a: _Forecaster.rollout(reference, *a)),
    ):
        torch.manual_seed(1)  # the same scheduled-sampling draws
        (rollout(frames, 4, 0.5) - frames[:, 1:]).square().sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(*grads, strict=True):
        assert a.abs().sum() > 0 and torch.allclose(a, b, atol=1e-10, rtol=1e-9)
    assert model._readout is None


def test_forecaster_states_are_named_tuples():
    from lstmvision.models.video import (
        ConvLSTMForecaster,
        ConvLSTMForecastState,
        MotionForecastState,
        MotionLSTMForecaster,
    )

    torch.manual_seed(0)
    first, second = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    flow = ConvLSTMForecaster(hidden_sizes=[4], kernel_size=3, patch=2, flow=True)
    _, state = flow.step(first, None)
    _, state = flow.step(second, state)
    assert isinstance(state, ConvLSTMForecastState) and state.prev_frame is second
    assert state.flow_sum.shape == (2, 2, 8, 8) and [s[0].shape for s in state.lstm] == [
        (2, 4, 4, 4)
    ]
    plain = ConvLSTMForecaster(hidden_sizes=[4], kernel_size=3, patch=2)
    assert plain.step(first, None)[1].flow_sum is None  # no flow: no fields
    motion = MotionLSTMForecaster(hidden_size=3)
    _, state = motion.step(first, None)
    _, state = motion.step(second, state)
    assert isinstance(state, MotionForecastState) and state.prev_frame is second
    assert state.motion.shape == state.forecast.shape == (2, 6)
    assert state.variance_sum.shape == (2,) and state.lstm[0].shape == (2, 3)


def test_next_frame_defaults_per_data_set_and_model():
    """Concrete defaults: the real-video ones in the config, Moving MNIST's in its recipe file,
    those that depend on --model from BY_MODEL; nothing timed, nothing read from the machine."""
    task = get_task("next-frame")()
    for overrides, expected in (
        ({"dataset": "moving-mnist"}, ("convlstm", 17, 3e-3, 3, 7437, "bf16-mixed", 8, "128,128")),
        ({"dataset": "visp"}, ("motion-lstm", 16, 3e-3, 1, 0, "32-true", 4, "64,64")),
        (
            {"dataset": "visp", "model": "convlstm"},
            ("convlstm", 2, 1e-3, 1, 0, "32-true", 4, "64,64"),
        ),
        (
            {"dataset": "clips/", "model": "cnn-lstm"},
            ("cnn-lstm", 2, 1e-3, 1, 0, "32-true", 4, "64,64"),
        ),
    ):
        cfg = resolve_config(task.Config, None, overrides)
        task.resolve(cfg)
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
        assert cfg.refit_epochs is False and cfg.budget_minutes == 0  # no budget by default
        assert task.callbacks(cfg, clock=None) == []
    cfg = resolve_config(task.Config, None, {"dataset": "visp"})
    task.resolve(cfg)
    assert (cfg.hidden_size, cfg.residual, cfg.flow, cfg.motion_augment) == (64, True, True, 1.0)
    assert task.model_spec(cfg) == (
        "motion-lstm-forecaster",
        {"channels": 1, "hidden_size": 64, "output_frames": 10},
    )
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist"})
    task.resolve(cfg)
    assert (cfg.residual, cfg.flow, cfg.motion_augment, cfg.frame_size) == (
        False,
        False,
        0,
        "64x64",
    )
    spec = task.model_spec(cfg)[1]
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
        "hidden_size": 9,
    }
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", **given})
    task.resolve(cfg)
    assert all(getattr(cfg, k) == v for k, v in given.items())
    assert cfg.scheduled_sampling == 7  # 70 % of 1 epoch of 320 / 32 steps
    cfg = resolve_config(
        task.Config, None, {"dataset": "moving-mnist", **given, "sampling_share": 0.5}
    )
    task.resolve(cfg)
    assert cfg.scheduled_sampling == 5  # half of the 10 steps
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", "scheduled_sampling": 40})
    task.resolve(cfg)
    assert cfg.scheduled_sampling == 40  # a count given stays
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", "norm": True})
    model = task.build_model(cfg)
    assert cfg.norm and all(cell.norm for cell in model.convlstm.cells)
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", "readout_hidden": 7})
    assert task.build_model(cfg).out[0].out_channels == 7


def test_moving_mnist_default_needs_no_machine_check(monkeypatch):
    """bf16-mixed is written in the recipe: the default is the same where bfloat16 is emulated;
    ``native_bf16`` only says whether it is native (for the bench's note)."""
    from lstmvision.tasks import budget

    monkeypatch.setattr(budget, "step_seconds", lambda *a, **k: pytest.fail("timed"))
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    task = get_task("next-frame")()
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist"})
    task.resolve(cfg)
    assert (cfg.precision, cfg.epochs) == ("bf16-mixed", 17) and not native_bf16("cpu")
    assert not native_bf16("gpu")

    def missing():
        raise AttributeError("no such op")

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", missing)
    assert not native_bf16("cpu")


def test_train_help_shows_the_moving_mnist_recipe():
    code, out = invoke("train", "next-frame", "--help")
    assert code == 0 and "moving-mnist.yaml" in out and "visp.yaml" in out
    assert "(None)" not in out.split("--epochs")[1].split("--max-steps")[0]
    for shown in ("(17)", "(0.003)", "(bf16-mixed)", "(128,128)"):
        assert shown in out, shown


def test_an_older_run_folder_with_none_settings_still_evaluates(visp_run, tmp_path):
    """Runs before the recipe files saved None for settings filled by data set at run time."""
    import shutil

    import yaml

    run, m, _ = visp_run
    old = tmp_path / "old"
    shutil.copytree(run, old)
    saved = yaml.safe_load((old / "config.yaml").read_text())
    saved.update(hidden_size=None, residual=None, flow=None)  # the model is in model.json
    saved.update(budget_minutes=59.0, refit_epochs=False)  # the old defaults
    (old / "config.yaml").write_text(yaml.safe_dump(saved))
    assert runner.evaluate(old)["test_mse"] == pytest.approx(m["test_mse"], rel=1e-5)
    task = get_task("next-frame")()
    saved.update(motion_augment=None)
    (old / "config.yaml").write_text(yaml.safe_dump(saved))
    cfg = resolve_config(task.Config, old / "config.yaml", saved_run=True)
    task.resolve(cfg)  # as --resume does: filled as that version did, no budget
    assert (cfg.residual, cfg.flow, cfg.motion_augment) == (True, True, 1.0)
    assert cfg.refit_epochs is False and task.callbacks(cfg, clock=None)[0].cfg is cfg
    saved.update(dataset="moving-mnist", frame_size=None, model="convlstm", patch=8)
    (old / "config.yaml").write_text(yaml.safe_dump(saved))
    cfg = resolve_config(task.Config, old / "config.yaml", saved_run=True)
    task.resolve(cfg)
    assert (cfg.residual, cfg.flow, cfg.motion_augment, cfg.frame_size) == (
        False,
        False,
        0.0,
        "64x64",
    )


def test_budget_epochs_fit_the_minutes_from_timed_steps(monkeypatch, capsys):
    from lstmvision.tasks import budget

    task = get_task("next-frame")()
    timed = []
    step = {"seconds": 0.366}

    def fake(model, frames, input_frames, precision="32-true", **kw):
        timed.append((tuple(frames.shape), input_frames, precision, model))
        return step["seconds"]

    monkeypatch.setattr(budget, "step_seconds", fake)
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", "budget_minutes": 59})
    task.resolve(cfg)
    assert not timed and cfg.refit_epochs  # timed when the run starts, not when resolved
    model = task.build_model(cfg)
    # 59 min / (1.11 x 0.366 s x (625 training batches + 0.4 x 32 validation batches)) = 13.7
    assert budget.budget_epochs(cfg, model, 625, 32) == 13
    ((shape, input_frames, precision, copy),) = timed
    assert (shape, input_frames, precision) == ((16, 20, 1, 64, 64), 10, "bf16-mixed")
    assert copy is not model and sum(p.numel() for p in copy.parameters()) == sum(
        p.numel() for p in model.parameters()
    )  # a copy of the run's model: the timing's steps never touch it
    assert "13 epoch(s) fit in --budget-minutes 59" in capsys.readouterr().err
    cfg.budget_minutes = 29
    assert budget.budget_epochs(cfg, model, 625, 32) == 6
    step["seconds"] = 100.0  # a slow machine still trains one epoch; a fast one at most the cap
    assert budget.budget_epochs(cfg, model, 625, 32) == 1
    step["seconds"] = 1e-6
    assert budget.budget_epochs(cfg, model, 625, 32) == budget.MAX_BUDGET_EPOCHS


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"budget_minutes": -1}, "--budget-minutes -1: must be positive"),
        ({"budget_minutes": 5, "max_steps": 9}, "does not go with --max-steps"),
        ({"dataset": "visp", "scheduled_sampling": -1}, "needs moving-mnist"),
        ({"epochs": -2}, "must be positive (0: by model)"),
    ],
)
def test_next_frame_resolve_refuses(overrides, message):
    task = get_task("next-frame")()
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", **overrides})
    with pytest.raises(ConfigError, match=re.escape(message)):
        task.resolve(cfg)


def test_budget_without_refit_and_max_steps_without_budget():
    task = get_task("next-frame")()
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", "max_steps": 9})
    task.resolve(cfg)
    assert cfg.refit_epochs is False and cfg.max_steps == 9  # no budget: nothing to refit
    overrides = {"budget_minutes": 5, "max_steps": 9, "refit_epochs": False}
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist", **overrides})
    task.resolve(cfg)  # fitted once when it starts, never refitted: --max-steps may end it
    assert cfg.refit_epochs is False and isinstance(task.callbacks(cfg, None)[0], EpochBudget)


def test_refit_epochs_follows_the_measured_epochs_in_the_first_half_then_only_cuts_late_runs():
    from lstmvision.tasks.budget import LATE_GRACE_S, MAX_BUDGET_EPOCHS, refit_epochs

    budget = 59 * 60
    assert refit_epochs(1, 206, 16, budget) == 17  # 3540 / 206 = 17.2: up
    assert refit_epochs(1, 190, 17, budget) == 18  # 18.6
    assert refit_epochs(2, 430, 17, budget) == 16  # 215 s per epoch: 16.5, down
    assert refit_epochs(1, 400, 17, budget) == 8
    assert refit_epochs(8, 8 * 200, 17, budget) == 17  # 2 x 8 <= 17: still the first half
    # past the half: 19 would fit, the count stays
    assert refit_epochs(9, 9 * 180, 17, budget) == 17
    # ends more than the grace past the budget at 17: cut to 16
    per = (budget + LATE_GRACE_S) / 16.5
    assert refit_epochs(10, 10 * per, 17, budget) == 16
    assert refit_epochs(10, 10 * 199, 17, budget + 1) == 17  # within the grace: stays
    assert refit_epochs(10, 10 * 600, 17, budget) == 10  # far too slow: stop after this epoch
    assert refit_epochs(1, 1e-3, 2, budget) == MAX_BUDGET_EPOCHS


def _optimizer(kind: str, lrs=(3e-3, 1e-4)):
    """Two parameter groups with their own peaks, so that every group's schedule is checked."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lrs[0])
    return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)


def _state(opt) -> list[float]:
    """Each group's lr and momentum (Adam's beta1), in one list."""
    pairs = [(g["lr"], g["betas"][0] if "betas" in g else g["momentum"]) for g in opt.param_groups]
    return [value for pair in pairs for value in pair]


def _stretch_one_cycle(sched, total: int) -> None:
    """The former ``tasks.base.stretch_one_cycle`` (it wrote OneCycleLR's private phases): the
    reference the budget's lengthened schedule must still follow."""
    warmup = sched._schedule_phases[0]["end_step"] + 1
    share = warmup / sched.total_steps
    sched.total_steps = int(total)
    sched._schedule_phases[0]["end_step"] = float(share * sched.total_steps) - 1
    sched._schedule_phases[1]["end_step"] = sched.total_steps - 1


@pytest.mark.parametrize("kind", ["adam", "sgd"])
@pytest.mark.parametrize("total,pct_start", [(100, 0.3), (37, 0.1), (200, 0.15), (3, 0.3)])
def test_one_cycle_equals_torchs_one_cycle_lr_step_by_step(kind, total, pct_start):
    from lstmvision.tasks.schedule import OneCycle

    ours, theirs = _optimizer(kind), _optimizer(kind)
    sched = OneCycle(ours, total_steps=total, pct_start=pct_start)
    peaks = [g["lr"] for g in theirs.param_groups]
    reference = torch.optim.lr_scheduler.OneCycleLR(
        theirs, max_lr=peaks, total_steps=total, pct_start=pct_start
    )
    seen = []
    for _ in range(total):
        assert _state(ours) == _state(theirs)  # exactly: the same arithmetic
        seen.append(_state(ours)[:2])
        for opt, s in ((ours, sched), (theirs, reference)):
            opt.step()
            s.step()
    lrs, momenta = zip(*seen)
    if total > 10:  # the shape: from peak / 25 up to the peak, momentum down and up again
        assert max(lrs) == pytest.approx(3e-3, rel=1e-3) and lrs[0] == pytest.approx(3e-3 / 25)
        assert min(momenta) == pytest.approx(0.85, abs=1e-3) and momenta[0] == 0.95
        assert lrs[-1] < 3e-3 / 25 and momenta[-1] == pytest.approx(0.95, abs=1e-3)
    with pytest.raises(ValueError, match="stepped"):
        ours.step()
        sched.step()  # past the end, as torch's


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_one_cycle_lengthened_mid_run_continues_as_one_built_for_the_new_length(kind, tmp_path):
    from lstmvision.tasks.schedule import OneCycle

    for old, new, at in ((100, 150, 20), (150, 100, 40), (100, 140, 70), (40, 90, 0)):
        ours, fresh_opt, stretched_opt = _optimizer(kind), _optimizer(kind), _optimizer(kind)
        sched = OneCycle(ours, total_steps=old)
        fresh = OneCycle(fresh_opt, total_steps=new)
        peaks = [g["lr"] for g in stretched_opt.param_groups]
        stretched = torch.optim.lr_scheduler.OneCycleLR(
            stretched_opt, max_lr=peaks, total_steps=old, pct_start=0.3
        )
        pairs = ((ours, sched), (fresh_opt, fresh), (stretched_opt, stretched))
        for _ in range(at):
            for opt, s in pairs:
                opt.step(), s.step()
        sched.total_steps = new  # what a time budget changes
        _stretch_one_cycle(stretched, new)
        for step in range(at + 1, new):  # the new length holds from the next step on
            for opt, s in pairs:
                opt.step(), s.step()
            assert _state(ours) == _state(fresh_opt)
            assert _state(ours) == pytest.approx(_state(stretched_opt), rel=1e-12)
            if step == (at + new) // 2:  # a checkpoint: the state round-trips, length included
                torch.save({"opt": ours.state_dict(), "sched": sched.state_dict()}, tmp_path / "c")
                saved = torch.load(tmp_path / "c", weights_only=True)
                ours = _optimizer(kind)
                sched = OneCycle(ours, total_steps=old)
                ours.load_state_dict(saved["opt"])
                sched.load_state_dict(saved["sched"])
                assert sched.total_steps == new and _state(ours) == _state(fresh_opt)
                pairs = ((ours, sched), (fresh_opt, fresh), (stretched_opt, stretched))


def test_one_cycle_resumes_a_checkpointed_one_cycle_lr():
    """A checkpoint written before OneCycle holds torch's OneCycleLR state: it resumes."""
    from lstmvision.tasks.schedule import OneCycle

    theirs = _optimizer("adam")
    peaks = [g["lr"] for g in theirs.param_groups]
    reference = torch.optim.lr_scheduler.OneCycleLR(theirs, max_lr=peaks, total_steps=120)
    for _ in range(50):
        theirs.step(), reference.step()
    ours = _optimizer("adam")
    sched = OneCycle(ours, total_steps=7)
    ours.load_state_dict(theirs.state_dict())
    sched.load_state_dict(reference.state_dict())
    assert (sched.total_steps, sched.last_epoch) == (120, 50)
    for _ in range(69):
        assert _state(ours) == pytest.approx(_state(theirs), rel=1e-12)
        for opt, s in ((ours, sched), (theirs, reference)):
            opt.step(), s.step()


TINY_MNIST = {
    "dataset": "moving-mnist",
    "patch": 8,
    "hidden_sizes": "4",
    "train_size": 32,
    "batch_size": 8,
    "val_size": 8,
    "test_size": 8,
    "precision": "32-true",
    "epochs": 5,
    "budget_minutes": 7,
}


class _Schedule(L.Callback):
    def on_train_end(self, trainer, pl_module):
        self.total = trainer.lr_scheduler_configs[0].scheduler.total_steps
        self.sampling = pl_module.cfg.scheduled_sampling


def _budget_of(epochs: int, calls: list):
    """A stand-in for ``budget_epochs`` that chooses ``epochs`` and records what it timed."""

    def fake(cfg, model, train_steps, val_batches, log=None):
        calls.append((cfg.budget_minutes, type(model).__name__, train_steps, val_batches))
        return epochs

    return fake


@pytest.mark.parametrize("refit,epochs", [(3, 3), (1, 1)])
def test_budgeted_epochs_reach_the_trainer_schedule_sampling_and_config(
    refit, epochs, monkeypatch, data_root, tmp_path, capsys
):
    import yaml

    from lstmvision.tasks import budget

    seen, timed = [], []

    def fake(done, seconds, epochs, budget_s):
        seen.append((done, seconds > 0, epochs, budget_s))
        return refit if done == 1 else epochs

    monkeypatch.setattr(budget, "budget_epochs", _budget_of(2, timed))  # --epochs 5: replaced
    monkeypatch.setattr(budget, "refit_epochs", fake)
    probe = _Schedule()
    overrides = {**TINY_MNIST, "data_root": str(data_root)}
    m = runner.train("next-frame", overrides, out=tmp_path / "run", callbacks=[probe]).metrics
    # the run's model and batches (32 / 8 training, 8 / 8 validation), timed when it started
    assert timed == [(7, "ConvLSTMForecaster", 4, 1)]
    assert seen[0] == (1, True, 2, 7 * 60)  # from the run's clock, after the first epoch
    assert m["epochs"] == epochs and m["global_step"] == 4 * epochs  # 32 / 8 = 4 steps an epoch
    assert probe.total == 4 * epochs and probe.sampling == int(4 * epochs * 0.7)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["epochs"], saved["scheduled_sampling"], saved["refit_epochs"]) == (
        epochs,
        int(4 * epochs * 0.7),
        True,
    )
    err = capsys.readouterr().err
    assert f"{epochs} epochs in all fit in --budget-minutes 7 (were 2)" in err


class _Crash(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 6:  # two steps into the second epoch
            raise RuntimeError("power cut")


def test_a_refitted_run_resumes_to_its_refitted_end(monkeypatch, data_root, tmp_path):
    from lstmvision.tasks import budget

    timed = []
    monkeypatch.setattr(budget, "budget_epochs", _budget_of(2, timed))
    monkeypatch.setattr(
        budget, "refit_epochs", lambda done, seconds, epochs, budget_s: 3 if done == 1 else epochs
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
    assert (m["epochs"], m["global_step"], probe.total) == (3, 12, 12)  # the refit survived
    assert len(timed) == 1  # a resumed run is not timed again


def test_a_budget_without_refit_fits_the_epochs_once(monkeypatch, data_root, tmp_path):
    from lstmvision.tasks import budget

    timed = []
    monkeypatch.setattr(budget, "budget_epochs", _budget_of(3, timed))
    monkeypatch.setattr(budget, "refit_epochs", lambda *a: pytest.fail("refitted"))
    probe = _Schedule()
    overrides = {**TINY_MNIST, "data_root": str(data_root), "refit_epochs": False}
    m = runner.train("next-frame", overrides, out=tmp_path / "run", callbacks=[probe]).metrics
    assert len(timed) == 1 and (m["epochs"], m["global_step"], probe.total) == (3, 12, 12)


def test_epoch_budget_applies_the_configs_count_when_training_starts():
    """A resumed run whose checkpoint predates its last refit: config.yaml's count wins."""
    from types import SimpleNamespace

    from lstmvision.tasks.schedule import OneCycle

    task = get_task("next-frame")()
    cfg = resolve_config(task.Config, None, TINY_MNIST)
    task.resolve(cfg)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = OneCycle(opt, total_steps=8)  # the checkpoint's 2 epochs

    class Trainer:
        fit_loop = SimpleNamespace(max_epochs=2)
        num_training_batches = 4
        lr_scheduler_configs = [SimpleNamespace(scheduler=sched)]

        @property
        def estimated_stepping_batches(self):
            return self.fit_loop.max_epochs * self.num_training_batches

    trainer = Trainer()
    EpochBudget(cfg, clock=None).on_train_start(trainer, None)
    assert (trainer.fit_loop.max_epochs, sched.total_steps, cfg.epochs) == (5, 20, 5)
    trainer.lr_scheduler_configs = [
        SimpleNamespace(scheduler=torch.optim.lr_scheduler.StepLR(opt, 5))
    ]
    with pytest.raises(TypeError, match="OneCycle"):
        EpochBudget(cfg, clock=None).on_train_start(trainer, None)


def test_timing_the_budget_leaves_the_runs_random_numbers_and_model_alone():
    from lstmvision.tasks.budget import budget_epochs

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
    cfg = resolve_config(task.Config, None, small)
    task.resolve(cfg)
    model = task.build_model(cfg)
    weights = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(0)
    assert budget_epochs(cfg, model, 16, 1, log=lambda _: None) >= 1  # times a copy's steps
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))


def test_heat_blur_has_the_asked_variance_and_zero_is_the_identity():
    from lstmvision.nn.geometry import heat_blur

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
    from lstmvision.nn import geometry
    from lstmvision.nn.geometry import affine_field, robust_affine_params, warp

    torch.manual_seed(0)
    texture = F.avg_pool2d(torch.rand(2, 1, 52, 68), 5, stride=1)  # (2, 1, 48, 64)
    shift = torch.tensor([[0, 0, 1.2, 0, 0, -0.8]]).repeat(2, 1)
    moved = warp(texture, affine_field(shift, 48, 64))
    assert (
        robust_affine_params(texture, moved) - shift
    ).abs().max() < 0.1  # a real shift is measured
    # a failed fit (5 px where the camera held still, on the second pair) is refused; a good one
    # kept
    failed = torch.tensor([[0, 0, 1.2, 0, 0, -0.8], [0, 0, 5.0, 0, 0, 0]])
    monkeypatch.setattr(geometry, "affine_params", lambda prev, frame: failed)
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
