"""Train, evaluate and predict for any registered task (what the CLI and the tests call).

Data flows one way: config -> task -> Lightning ``Trainer.fit`` -> run folder -> ``evaluate`` /
``predict`` read that folder and call the same task code.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    Callback,
    ModelCheckpoint,
    OnExceptionCheckpoint,
    TQDMProgressBar,
)
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from lstmvision.errors import ConfigError, DataError, LstmvisionError
from lstmvision.inference.base import source_model
from lstmvision.pretrained import locate
from lstmvision.tasks import checks, exact_resume, model_folder, run_folder, run_lock
from lstmvision.tasks.base import TASKS
from lstmvision.tasks.config import resolve_config, saved_config
from lstmvision.viz import plot_training_curves

RUN_DIR_ENV = "LSTMVISION_RUN_DIR"  # lets DDP worker processes find the parent's run folder

for _pattern in (
    ".*does not have many workers.*",
    ".*LeafSpec.*",
    ".*isinstance.*treespec.*",
    ".*ckpt_path.*",
    ".*Checkpoint directory.*exists and is not empty.*",
    ".*You're resuming from a checkpoint that ended before the epoch ended.*",
    ".*The number of training batches.*is smaller than the logging interval.*",
    ".*could not find the monitored key in the returned metrics.*",
    ".*module\\(s\\) in eval mode at the start of training.*",
):
    warnings.filterwarnings("ignore", _pattern)


class TrainClock(Callback):
    """Training wall time, carried through checkpoints so that a resumed run adds up."""

    def __init__(self):
        self.before, self.start = 0.0, None

    @property
    def seconds(self) -> float:
        return self.before + (time.perf_counter() - self.start if self.start is not None else 0.0)

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        self.before, self.start = self.seconds, None

    def state_dict(self):
        return {"seconds": self.seconds}

    def load_state_dict(self, state_dict):
        self.before = float(state_dict.get("seconds", 0.0))


class CtrlC(Callback):
    """Ctrl+C stops training at the next batch even when Python swallows the KeyboardInterrupt.

    Python raises KeyboardInterrupt wherever the main thread is; inside a finaliser (``__del__``,
    e.g. of a tensor-board writer or a temporary file) it is printed as "Exception ignored" and
    training went on to the end. This handler raises as usual *and* remembers the request, and the
    callback raises again at the next batch boundary, a safe point Lightning handles (it saves
    ``interrupted.ckpt``). Installed only in the main thread, restored afterwards.
    """

    def __init__(self):
        self.requested, self.previous = False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum, frame):
        self.requested = True
        raise KeyboardInterrupt

    def _check(self, *args):
        if self.requested:
            raise KeyboardInterrupt

    on_train_batch_end = on_validation_batch_end = _check


class PlainProgress(Callback):
    """One line per validation when stderr is not a terminal (logs, CI, pipes)."""

    def __init__(self, clock: TrainClock):
        self.clock = clock

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != "fit":
            return
        shown = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("val_") or k == "train_loss"
        }
        text = " ".join(f"{k} {v:.4f}" for k, v in sorted(shown.items()))
        print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} step {trainer.global_step} "
            f"{text} ({self.clock.seconds:.0f} s)",
            file=sys.stderr,
            flush=True,
        )


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar without the logger-version column."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class Diverged(LstmvisionError):
    """The training loss became non-finite or grew far past where it started."""


class DivergenceGuard(Callback):
    """Stops training when the loss is NaN or infinite, or above ``factor`` times the first
    step's loss, in one line naming the step and the learning rate. It runs before the
    checkpoint callbacks (Lightning orders those last), so no diverged weights are saved."""

    def __init__(self, factor: float = 1e3):
        self.factor, self.first = factor, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        value = float(loss.detach())
        if math.isfinite(value) and self.first is None:
            self.first = max(abs(value), 1e-8)
        if math.isfinite(value) and abs(value) <= self.factor * self.first:
            return
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        what = (
            "is not finite"
            if not math.isfinite(value)
            else (f"is over {self.factor:g} times the first step's {self.first:.4g}")
        )
        raise Diverged(
            f"training diverged at step {trainer.global_step}: loss {value:.4g} {what} "
            f"(learning rate {lr:.3g}); try a lower --lr"
        )

    def state_dict(self):
        return {"first": self.first}

    def load_state_dict(self, state_dict):
        self.first = state_dict.get("first")


class Interrupted(LstmvisionError):
    """Training stopped on Ctrl+C (or an error Lightning handled); resume continues it."""


class CrashCheckpoint(OnExceptionCheckpoint):
    """``interrupted.ckpt`` on Ctrl+C or an error, only when it is worth resuming from: training
    made progress since this (re)start (a failed resume never leaves a step-0 file that a later
    ``--resume`` would prefer) and did not diverge."""

    def __init__(self, dirpath: Path):
        super().__init__(dirpath=dirpath, filename="interrupted")
        self.start_step = None

    def on_train_start(self, trainer, pl_module):
        self.start_step = trainer.global_step

    def on_exception(self, trainer, pl_module, exception):
        if isinstance(exception, Diverged) or self.start_step is None:
            return
        if trainer.global_step > self.start_step:
            super().on_exception(trainer, pl_module, exception)


class FolderCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint that, resumed in a copied or moved run folder, reads the paths
    of the best and last checkpoints as this folder's (Lightning would keep the original's)."""

    def load_state_dict(self, state_dict):
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            moved = (
                lambda p: (  # noqa: E731
                    self.dirpath + p[len(old) :] if isinstance(p, str) and p.startswith(old) else p
                )
            )
            state_dict = {k: moved(v) for k, v in state_dict.items()}
            state_dict["best_k_models"] = {
                moved(k): v for k, v in (state_dict.get("best_k_models") or {}).items()
            }
        super().load_state_dict(state_dict)


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict


def _devices(value: str):
    return int(value) if str(value).isdigit() else value


def _quiet_lightning() -> None:
    for name in (
        "lightning",
        "lightning.pytorch",
        "lightning.fabric",
        "lightning_fabric",
        "pytorch_lightning",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def _set_threads(cfg) -> None:
    """Split the CPU between DDP processes; torch's threads per process would oversubscribe."""
    n = _devices(cfg.devices)
    if cfg.accelerator == "cpu" and isinstance(n, int) and n > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // n))


def _prepare(task, cfg):
    """Seed, load and check the data, build the model: all before the run folder is touched."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = task.datamodule(cfg)
    dm.setup("fit")
    dm.setup("test")
    model = task.build_model(cfg)
    task.bind(cfg, model, dm)
    return dm, model


def _trainer(
    task, cfg, run_dir: Path, clock: TrainClock, quiet: bool, extra: list[Callback]
) -> tuple[L.Trainer, ModelCheckpoint]:
    ckpt_dir = run_dir / "checkpoints"
    best = FolderCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=task.monitor,
        mode=task.monitor_mode,
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    every = FolderCheckpoint(
        dirpath=ckpt_dir,
        filename="last",
        every_n_train_steps=cfg.checkpoint_every,
        save_top_k=0,
        save_last=True,
        enable_version_counter=False,
    )
    tty = sys.stderr.isatty() and not quiet
    version = (
        f"version_{len(list((run_dir / 'logs').glob('version_*')))}"  # one per (re)start of the run
    )
    callbacks = [clock, DivergenceGuard(), best, every, CrashCheckpoint(ckpt_dir), *extra]
    if not quiet:
        callbacks.append(ProgressBar() if tty else PlainProgress(clock))
    trainer = L.Trainer(
        default_root_dir=run_dir,
        max_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        accelerator=cfg.accelerator,
        devices=_devices(cfg.devices),
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=cfg.precision,
        callbacks=callbacks,
        enable_progress_bar=tty,
        enable_model_summary=False,
        logger=[
            CSVLogger(run_dir, name="logs", version=version),
            TensorBoardLogger(run_dir, name="logs", version=version),
        ],
        log_every_n_steps=10,
        gradient_clip_val=getattr(cfg, "grad_clip", None) or None,
        num_sanity_val_steps=0,
        deterministic=False,
    )
    return trainer, best


def train(
    task_name: str,
    overrides: dict | None = None,
    config_file: str | Path | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    quiet: bool = False,
    callbacks: list[Callback] | None = None,
) -> TrainResult:
    """Train a task; return the run folder and its metrics (``run_folder`` has its layout).

    ``overrides`` are config keys (they win over ``config_file``, which wins over the task's
    defaults); ``resume`` continues ``out`` (default: the latest run of the task) from its last
    checkpoint; ``callbacks`` are extra Lightning callbacks; ``quiet`` turns progress output off.
    """
    _quiet_lightning()
    task = TASKS.get(task_name)()
    child = _worker_process()
    with contextlib.ExitStack() as stack:
        if child:  # the first process holds the lock and writes the folder
            run_dir = Path(os.environ.get(RUN_DIR_ENV) or out or ".")
        elif resume:
            run_dir = Path(out) if out else run_folder.latest_run(task.name)
            run_folder.read_run_config(run_dir)  # clear errors for a missing or foreign folder
            stack.enter_context(run_lock.hold(run_dir, "resume"))
        else:
            run_dir = Path(out or run_folder.default_run_dir(task.name))
            run_folder.check_new_run_dir(run_dir)
            checks.check_out_dir(run_dir)
        if resume:
            saved_task, _ = run_folder.read_run_config(run_dir)
            if saved_task != task.name:
                raise LstmvisionError(f"{run_dir}: is a {saved_task!r} run, not {task.name!r}")
            cfg = run_folder.load_run_config(run_dir, task, overrides)
            _check_same_schedule(run_dir, run_folder.load_run_config(run_dir, task), cfg)
        else:
            cfg = resolve_config(task.Config, config_file, overrides)
        checks.check_config(task.name, cfg)
        _check_processes(cfg, out if not resume else run_dir)
        ckpt_path = (
            run_folder.resume_checkpoint(run_dir, warn=None if child else _warn) if resume else None
        )
        task.resolve(cfg)
        _set_threads(cfg)
        dm, model = _prepare(task, cfg)
        module = task.module(cfg, model)
        new = not resume and not child and not run_dir.exists()
        if not resume and not child:
            checks.make_run_dir(run_dir)
            stack.enter_context(run_lock.hold(run_dir, "train"))
            run_folder.check_new_run_dir(run_dir)  # another run may have filled it meanwhile
            run_folder.save_config(run_dir, task.name, cfg)
        os.environ[RUN_DIR_ENV] = str(run_dir)
        try:
            return _fit(task, cfg, dm, module, run_dir, ckpt_path, quiet, callbacks or [])
        except BaseException as e:
            if not (new and _nothing_saved(run_dir)):
                raise
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing to resume: let the command rerun
            if isinstance(e, Interrupted):
                raise Interrupted(
                    f"{run_dir}: training interrupted before its first checkpoint; nothing was "
                    "saved, the run folder was removed"
                ) from None
            if isinstance(e, LstmvisionError):
                raise type(e)(f"{e} (nothing was saved; the run folder was removed)") from None
            raise
        finally:
            os.environ.pop(RUN_DIR_ENV, None)


def _worker_process() -> bool:
    """A DDP process that is not the run's first: one Lightning started beside this one (it
    finds the run folder in RUN_DIR_ENV), or rank > 0 of a job torchrun or SLURM launched
    (every rank was given the same --out)."""
    spawned = bool(os.environ.get(RUN_DIR_ENV)) and "LOCAL_RANK" in os.environ
    return spawned or int(os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or 0) > 0


def _check_processes(cfg, out) -> None:
    several = cfg.num_nodes > 1 or _devices(cfg.devices) not in (1, "1")
    if several and cfg.exact_resume:
        raise ConfigError("--exact-resume runs in one process: --devices 1 --num-nodes 1")
    if cfg.num_nodes > 1 and out is None:
        raise ConfigError("--num-nodes: give every node the same --out (on a shared file system)")


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _nothing_saved(run_dir: Path) -> bool:
    return not any((run_dir / "checkpoints").glob("*.ckpt"))


def _check_same_schedule(run_dir: Path, saved, cfg) -> None:
    """A resumed run may stop earlier, not go past the learning-rate schedule it started with."""
    steps = lambda c: float("inf") if c.max_steps < 0 else c.max_steps  # noqa: E731
    if cfg.epochs > saved.epochs or steps(cfg) > steps(saved):
        raise LstmvisionError(
            f"{run_dir}: --resume cannot extend the run past its schedule (epochs {saved.epochs}, "
            f"max_steps {saved.max_steps}); start a new run instead"
        )


def _fit(
    task, cfg, dm, module, run_dir: Path, ckpt_path, quiet: bool, callbacks: list[Callback]
) -> TrainResult:
    clock, ctrl_c = TrainClock(), CtrlC()
    exact = [exact_resume.make_exact(dm, cfg.seed)] if cfg.exact_resume else []
    trainer, best = _trainer(
        task, cfg, run_dir, clock, quiet, [*exact, *task.callbacks(cfg, clock), *callbacks, ctrl_c]
    )
    try:
        with ctrl_c:
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    except SystemExit:  # Lightning turns Ctrl+C into exit(1) after OnExceptionCheckpoint saved
        pass
    except Diverged as e:
        kept = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
        raise Diverged(f"{run_dir}: {e}; kept {', '.join(kept) or 'no checkpoint'}") from None
    if trainer.interrupted:
        raise Interrupted(
            f"{run_dir}: training interrupted; continue with `lstmvision train "
            f"{task.name} --out {run_dir} --resume`"
        )
    seconds = clock.seconds  # before validate/test: loading a checkpoint restores the clock too
    chosen = best.best_model_path or None  # None: no validation ran (e.g. max_steps inside epoch 1)
    metrics = dict(trainer.validate(module, datamodule=dm, ckpt_path=chosen, verbose=False)[0])
    metrics.update(trainer.test(module, datamodule=dm, ckpt_path=chosen, verbose=False)[0])
    metrics.update(
        train_seconds=round(seconds, 2),
        epochs=trainer.current_epoch,
        global_step=trainer.global_step,
        checkpoint=Path(chosen).name if chosen else "final weights",
    )
    if trainer.is_global_zero:
        task.write_outputs(cfg, module, run_dir, "test")
        _finish(task, cfg, module.model, dm, run_dir, metrics)
    _close_process_group()
    return TrainResult(run_dir, metrics)


def _close_process_group() -> None:
    """DDP: every rank waits until rank 0 has written the run, then the process group is closed.
    A worker that exits with the group still open can die in its teardown ("terminate called
    without an active exception"), and Lightning then kills the main process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _finish(task, cfg, model, dm, run_dir: Path, metrics: dict) -> None:
    name, kwargs = task.model_spec(cfg)
    run_folder.save_model(run_dir, name, kwargs, model)
    task.save_extras(cfg, model, dm, run_dir)
    csvs = sorted(
        (run_dir / "logs").glob("version_*/metrics.csv"),
        key=lambda p: int(p.parent.name.split("_")[1]),
    )
    plot_training_curves(csvs, run_dir / "training_curves.png", title=f"{task.name} {cfg.dataset}")
    task.pictures(cfg, model.eval(), dm, run_dir)
    run_folder.save_metrics(run_dir, metrics)


def load(source: str | Path):
    """(task, config, model) of a finished run folder, a saved model folder or a shipped model's
    name (:func:`lstmvision.pretrained.locate`); ``task.run_dir`` is the folder."""
    folder, kind = locate(source)
    if kind == "model":
        src, model = source_model(folder)
        if src.task not in TASKS.names():
            raise DataError(f"{folder / model_folder.CONFIG}: unknown task {src.task!r}")
        task = TASKS.get(src.task)()
        cfg = saved_config(task.Config, src.config, str(folder / model_folder.CONFIG))
    else:
        task_name, _ = run_folder.read_run_config(folder)
        task = TASKS.get(task_name)()
        cfg = run_folder.load_run_config(folder, task)
        fallback = (
            None if (folder / "model.json").is_file() else task.model_spec(cfg)
        )  # a spec may read data
        model = run_folder.load_model(folder, fallback_spec=fallback)
    task.run_dir = folder
    return task, cfg, model


def evaluate(
    run_dir: str | Path,
    split: str = "test",
    data_root: str | None = None,
    data: str | Path | None = None,
    out: str | Path | None = None,
) -> dict:
    """Metrics of a model (a run folder, a saved model folder or a shipped model's name) on
    ``split`` (``test`` or ``val``), or on the folder ``data`` (the task's
    ``evaluation_datamodule``); the task's report goes to stderr (its files to ``out``).
    Of a run folder, tasks with ``evaluate_records_metrics`` also refresh those keys in its
    metrics.json and ``write_outputs`` writes into it; a saved model's folder is never written
    (its outputs go to ``out``, if given)."""
    if split not in ("test", "val"):
        raise LstmvisionError(f"unknown split {split!r}; choose test or val")
    _quiet_lightning()
    task, cfg, model = load(run_dir)
    is_run = (Path(task.run_dir) / "config.yaml").is_file()
    with run_lock.hold(task.run_dir, "evaluate") if is_run else contextlib.nullcontext():
        return _evaluate(task, cfg, model, is_run, split, data_root, data, out)


def _evaluate(task, cfg, model, is_run: bool, split, data_root, data, out) -> dict:
    if data_root:
        cfg.data_root = data_root
    split = "test" if data is not None else split
    dm = task.evaluation_datamodule(cfg, Path(data)) if data is not None else task.datamodule(cfg)
    dm.setup("test" if split == "test" else "validate")
    task.bind(cfg, model, dm)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
    )
    run = trainer.test if split == "test" else trainer.validate
    module = task.module(cfg, model)
    metrics = dict(run(module, datamodule=dm, verbose=False)[0])
    outputs = Path(task.run_dir) if is_run else (Path(out) if out is not None else None)
    if outputs is not None:
        outputs.mkdir(parents=True, exist_ok=True)
        task.write_outputs(cfg, module, outputs, split if data is None else "data")
    if is_run and task.evaluate_records_metrics and data is None and not data_root:
        run_folder.update_metrics(Path(task.run_dir), metrics)
    for line in task.evaluation_report(cfg, module, Path(out) if out is not None else None):
        print(line, file=sys.stderr)
    return metrics


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def refuse_predict_options(task, run_dir, unknown: list[str]) -> None:
    """One clear error for ``predict`` options the run's task does not take (none: nothing);
    ``unknown`` are option names, or flags as the user typed them (the CLI)."""
    if unknown:
        flags = ", ".join(k if k.startswith("-") else _flag(k) for k in unknown)
        accepted = ", ".join(_flag(k) for k in task.predict_options) or "none"
        raise ConfigError(
            f"{run_dir}: a {task.name!r} run does not take {flags} (its options: {accepted})"
        )


def predict(
    run_dir: str | Path, inputs: list[str | Path], **options
) -> tuple[list[dict], list[str]]:
    """Predictions for the readable inputs, and one error line for each unreadable one.

    ``options`` (None values dropped) must be among the task's ``predict_options``."""
    task, cfg, model = load(run_dir)
    options = {k: v for k, v in options.items() if v is not None}
    refuse_predict_options(task, run_dir, sorted(set(options) - set(task.predict_options)))
    if not inputs:
        if task.predict_needs_inputs:
            raise LstmvisionError(f"{run_dir}: name at least one input file to predict on")
        return task.predict(cfg, model, [], **options), []
    predictions, errors = [], []
    for path in inputs:
        try:
            predictions.extend(task.predict(cfg, model, [Path(path)], **options))
        except LstmvisionError as e:
            errors.append(str(e))
    return predictions, errors
