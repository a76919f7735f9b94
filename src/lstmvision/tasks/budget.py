"""next-frame's opt-in time budget (``--budget-minutes M``): train as many epochs as fit in ``M``
minutes of training on this machine, instead of ``--epochs``.

Machine-dependent by design, so never on a default path: the same command gives other epochs on
another machine. When a run starts, :func:`budget_epochs` times a few training steps of a copy of
the model and fits the epochs to the budget; with ``--refit-epochs`` (on by default under a budget)
:func:`refit_epochs` fits them again after each epoch of the first half of the run from the
epochs' own times. A new count sets the trainer's epochs, the length of the one-cycle schedule
(:class:`lstmvision.tasks.schedule.OneCycle`'s ``total_steps``) and of scheduled sampling (when it
is ``--sampling-share`` of the steps), and is written to the run's ``config.yaml``, so that
``--resume`` continues to the same end.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from lstmvision.console import say
from lstmvision.data.video import parse_size
from lstmvision.tasks.schedule import OneCycle

EVAL_STEP_COST = 0.4
"""A validation batch (rollout without backward, metrics) against a training step."""
STEP_OVERHEAD = 1.11
"""A training step in a run (data, scheduled sampling, logging, checkpoints, validation's share)
against the step :func:`step_seconds` times, as measured over whole runs of the Moving MNIST
recipe (the timed step itself varies by about 5 % from one process to the next)."""
MAX_BUDGET_EPOCHS = 200
LATE_GRACE_S = 60.0
"""Past the first half of a refitted run (:func:`refit_epochs`), how far past the budget the run
may be expected to end before its epochs are cut."""


def native_bf16(accelerator: str) -> bool:
    """Whether training on ``accelerator`` runs on a CPU whose oneDNN computes bfloat16 natively
    (AVX512-BF16 or AMX): there bf16-mixed is faster per step than float32; elsewhere it is
    emulated and slower."""
    from lstmvision.nn.recurrent_fast import cpu_computes_bf16

    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    return on_cpu and cpu_computes_bf16()


def step_seconds(
    model: torch.nn.Module,
    frames: torch.Tensor,
    input_frames: int,
    precision: str = "32-true",
    repeats: int = 3,
    warmup: int = 2,
) -> float:
    """Median seconds of one training step of a forecaster on ``frames`` ``(B, T, C, H, W)`` (its
    rollout, mean squared error, backward and an Adam step; autocast as Lightning's ``precision``),
    after ``warmup`` steps. The model is trained by it: time a copy you mean to keep."""
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    device = next(model.parameters()).device
    frames = frames.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = F.mse_loss(model.rollout(frames, input_frames), frames[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_batches(cfg) -> int:
    """Training steps per epoch of ``cfg.train_size`` Moving MNIST sequences."""
    return math.ceil(cfg.train_size / cfg.batch_size)


def sampling_steps(cfg, epochs: int) -> int:
    """Moving MNIST's ``--scheduled-sampling -1``: the first ``sampling_share`` of the steps of
    ``epochs`` epochs."""
    return int(epochs * train_batches(cfg) * cfg.sampling_share)


def budget_epochs(cfg, model: torch.nn.Module, train_steps: int, val_batches: int, log=None) -> int:
    """The epochs of ``train_steps`` training steps and a validation of ``val_batches`` batches
    that fit in ``cfg.budget_minutes`` of training here, from a few timed steps of a copy of
    ``model`` on random frames of ``cfg``'s batch; at least 1, at most ``MAX_BUDGET_EPOCHS``::

        epochs = budget_s // (STEP_OVERHEAD x step_s x (train_steps + EVAL_STEP_COST x val_batches))
    """
    length = cfg.input_frames + cfg.output_frames
    with torch.random.fork_rng(devices=[]):  # the run's own random numbers stay as they were
        torch.manual_seed(cfg.seed)
        frames = torch.rand(cfg.batch_size, length, 1, *parse_size(cfg.frame_size))
        step = step_seconds(copy.deepcopy(model), frames, cfg.input_frames, cfg.precision)
    batches = train_steps + EVAL_STEP_COST * val_batches
    fit = int(cfg.budget_minutes * 60 // (STEP_OVERHEAD * step * batches))
    epochs = max(1, min(MAX_BUDGET_EPOCHS, fit))
    (log or say)(
        f"next-frame: a training step takes {step:.3f} s here ({cfg.precision}, "
        f"{torch.get_num_threads()} threads): {epochs} epoch(s) fit in --budget-minutes "
        f"{cfg.budget_minutes:g}"
    )
    return epochs


def refit_epochs(done: int, seconds: float, epochs: int, budget_s: float) -> int:
    """The epochs a run should train in all, after its first ``done`` of ``epochs`` took
    ``seconds`` (validation and checkpoints included), to end within ``budget_s``: in the first
    half of the run as many as fit at the mean time per epoch so far (up or down); past it the
    count stays unless the run would end more than ``LATE_GRACE_S`` past the budget, so that the
    learning rate's annealing is not moved late. Never fewer than ``done`` (``done``: stop now),
    never more than ``MAX_BUDGET_EPOCHS``."""
    per_epoch = seconds / max(1, done)
    if 2 * done <= epochs:
        fit = int(budget_s // per_epoch)
    else:
        fit = min(epochs, int((budget_s + LATE_GRACE_S) // per_epoch))
    return max(done, min(MAX_BUDGET_EPOCHS, fit))


class EpochBudget(L.Callback):
    """``--budget-minutes``: when a new run starts (not a resumed one), the epochs from
    :func:`budget_epochs`; with ``cfg.refit_epochs``, after each validation :func:`refit_epochs`
    from the run's training ``clock`` (a ``TrainClock``). See the module doc for what a new count
    changes."""

    def __init__(self, cfg, clock, task: str = "next-frame", say=say):
        self.cfg, self.clock, self.task, self.say = cfg, clock, task, say

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.ckpt_path is not None:  # resumed: config.yaml holds the count chosen then
            return
        val_batches = len(trainer.datamodule.val_dataloader())
        steps = trainer.num_training_batches  # counted when one_cycle sized the schedule
        epochs = budget_epochs(self.cfg, pl_module.model, steps, val_batches, self.say)
        epochs = trainer.strategy.broadcast(epochs)
        self._apply(trainer, epochs)
        self._save(trainer)

    def on_train_start(self, trainer, pl_module) -> None:
        if self.cfg.refit_epochs:  # resumed: config.yaml's count wins over an older checkpoint's
            self._apply(trainer, self.cfg.epochs)

    def on_validation_end(self, trainer, pl_module) -> None:  # before ModelCheckpoint saves
        if not self.cfg.refit_epochs or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        done, seconds = trainer.current_epoch + 1, self.clock.seconds
        epochs = refit_epochs(done, seconds, self.cfg.epochs, self.cfg.budget_minutes * 60)
        epochs = trainer.strategy.broadcast(epochs)
        if epochs == self.cfg.epochs:
            return
        self.say(
            f"next-frame: {done} epoch(s) took {seconds:.0f} s: {epochs} epochs in all fit in "
            f"--budget-minutes {self.cfg.budget_minutes:g} (were {self.cfg.epochs})"
        )
        self._apply(trainer, epochs)
        self._save(trainer)

    def _apply(self, trainer, epochs: int) -> None:
        cfg = self.cfg
        if cfg.scheduled_sampling == sampling_steps(cfg, cfg.epochs):  # the share, not a count
            cfg.scheduled_sampling = sampling_steps(cfg, epochs)
        cfg.epochs = trainer.fit_loop.max_epochs = epochs
        for config in trainer.lr_scheduler_configs:
            if not isinstance(config.scheduler, OneCycle):
                raise TypeError(f"EpochBudget: a OneCycle schedule, not {config.scheduler}")
            config.scheduler.total_steps = max(1, int(trainer.estimated_stepping_batches))

    def _save(self, trainer) -> None:
        if trainer.is_global_zero:
            from lstmvision.tasks import run_folder

            run_folder.save_config(Path(trainer.default_root_dir), self.task, self.cfg)
