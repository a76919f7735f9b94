"""The ``next-frame`` task's settings that depend on others: the defaults by ``--model``
(:data:`BY_MODEL`), the refused combinations (:func:`refusal`) and the values that run folders of
older versions left None (:func:`fill_old_run`). :meth:`NextFrameTask.resolve
<lstmvision.tasks.next_frame.NextFrameTask.resolve>` applies them."""

from __future__ import annotations

from lstmvision.data.video import parse_size
from lstmvision.errors import ConfigError

BY_MODEL = {
    "convlstm": {"epochs": 2, "lr": 1e-3},
    "cnn-lstm": {"epochs": 2, "lr": 1e-3, "hidden_size": 256},
    "motion-lstm": {"epochs": 16, "lr": 3e-3, "hidden_size": 64},
}
"""The settings that depend on ``--model``, for those given as 0 (written to config.yaml)."""


def fill_old_run(cfg):
    """Fill the None that a run folder of a version before the recipe files saved for settings it
    filled at run time by data set (``cfg`` as given otherwise)."""
    real = cfg.dataset != "moving-mnist"
    filled_then = {
        "frame_size": "48x64" if real else "64x64",
        "residual": real,
        "flow": real,
        "motion_augment": 1.0 if real else 0.0,
        "hidden_size": 0,  # by model
    }
    for key, value in filled_then.items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value)
    return cfg


def refusal(cfg) -> str | None:
    """The line of the first refused setting in the table below, else None."""
    mnist, convlstm = cfg.dataset == "moving-mnist", cfg.model == "convlstm"
    (h, w), patch = parse_size(cfg.frame_size), max(1, cfg.patch)
    table = [
        (cfg.input_frames < 1 or cfg.output_frames < 1,
         "--input-frames and --output-frames must be at least 1"),
        (bool(getattr(cfg, "test_file", None)) and not mnist,
         "--test-file is a Moving MNIST .npy; it goes with --dataset moving-mnist"),
        (mnist and cfg.motion_augment,
         "--motion-augment: moving-mnist has no camera; it applies to real videos"),
        (mnist and cfg.model == "motion-lstm",
         "--model motion-lstm forecasts camera motion; moving-mnist has no camera (use a video)"),
        (mnist and (h, w) != (64, 64),
         f"--frame-size {cfg.frame_size}: moving-mnist frames are 64x64"),
        (not 0 <= cfg.sampling_share <= 1,
         f"--sampling-share {cfg.sampling_share:g}: must be between 0 and 1"),
        (cfg.scheduled_sampling < 0 and not mnist,
         "--scheduled-sampling -1 (a share of the steps) needs moving-mnist, whose steps per "
         "epoch are known before the data is read; give a number of steps"),
        (min(cfg.epochs, cfg.lr, cfg.hidden_size) < 0,
         "--epochs, --lr and --hidden-size must be positive (0: by model)"),
        (cfg.budget_minutes < 0,
         f"--budget-minutes {cfg.budget_minutes:g}: must be positive (0: off)"),
        (cfg.budget_minutes > 0 and cfg.refit_epochs and cfg.max_steps >= 0,
         "--budget-minutes refits the epochs to the time (--refit-epochs); it does not go with "
         "--max-steps"),
        (cfg.measured_motion and not convlstm,
         f"--measured-motion is an input of --model convlstm, not {cfg.model}"),
        (convlstm and cfg.patch < 1, f"--patch {cfg.patch}: must be positive"),
        (convlstm and (h % patch or w % patch),
         f"--frame-size {h}x{w}: both sides must be multiples of --patch {cfg.patch}"),
        (convlstm and (cfg.kernel_size < 1 or cfg.kernel_size % 2 == 0),
         f"--kernel-size {cfg.kernel_size}: must be odd and positive"),
        (convlstm and (cfg.readout_kernel < 1 or cfg.readout_kernel % 2 == 0),
         f"--readout-kernel {cfg.readout_kernel}: must be odd and positive"),
        (convlstm and cfg.readout_hidden < 0,
         f"--readout-hidden {cfg.readout_hidden}: must be 0 (a linear read-out) or more"),
        (convlstm and cfg.measured_motion and not cfg.flow,
         "--measured-motion needs --flow: it is the input the motion field is forecast from"),
    ]  # fmt: skip
    return next((line for refused, line in table if refused), None)


def int_list(text: str, name: str) -> list[int]:
    """The positive integers of the comma-separated ``text`` (the config key ``name``)."""
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        flag = "--" + name.replace("_", "-")
        raise ConfigError(f"{flag} {text!r}: give positive integers separated by commas")
    return values
