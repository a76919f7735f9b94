"""The run folder contract: what ``train`` writes and what ``evaluate``/``predict`` read.

::

    runs/<task>/<name>/
      config.yaml          resolved config (task + every field)
      .lock                the lock a writing process holds (``run_lock``; harmless when left)
      checkpoints/         last.ckpt (every N steps and each epoch end), best.ckpt (monitor),
                           interrupted.ckpt (only after Ctrl+C or an error, with progress)
      logs/                Lightning CSV (metrics.csv) and TensorBoard logs
      metrics.json         flat: test_* and val_* of the best checkpoint, train_seconds, ...
      model.safetensors    weights of the best checkpoint (load without running code)
      model.json           {"name": registered model, "kwargs": {...}} to rebuild the model
      *.png                training curves and task pictures
      ...                  the task's extra files (``Task.save_extras``, e.g. vocab.json) and
                           outputs (``Task.write_outputs``, e.g. test_captions.csv)

``runner`` trains, evaluates and predicts; this module only writes and reads the folder.
"""

from __future__ import annotations

import json
import pickle
import warnings
from datetime import datetime
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from lstmvision.errors import ConfigError, DataError, LstmvisionError
from lstmvision.files import atomic_path, write_text
from lstmvision.models import get_model
from lstmvision.tasks.config import config_to_dict, load_yaml_mapping, resolve_config


def default_run_dir(task: str, root: Path = Path("runs")) -> Path:
    return root / task / datetime.now().strftime("%Y%m%d-%H%M%S")


def save_config(run_dir: Path, task: str, cfg) -> None:
    write_text(
        run_dir / "config.yaml",
        yaml.safe_dump({"task": task, **config_to_dict(cfg)}, sort_keys=False),
    )


def save_metrics(run_dir: Path, metrics: dict) -> None:
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def update_metrics(run_dir: Path, metrics: dict) -> None:
    """Merge ``metrics`` into the run's metrics.json (other keys kept)."""
    path = Path(run_dir) / "metrics.json"
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    save_metrics(Path(run_dir), {**saved, **metrics})


def save_model(run_dir: Path, name: str, kwargs: dict, model: nn.Module) -> None:
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(run_dir / "model.safetensors") as tmp:
        save_file(state, tmp, metadata={"model": name})
    write_text(
        run_dir / "model.json", json.dumps({"name": name, "kwargs": kwargs}, indent=2) + "\n"
    )


def read_run_config(run_dir: Path) -> tuple[str, dict]:
    """(task name, config mapping) of a run folder, with clear errors for anything else."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LstmvisionError(f"{run_dir}: no such run folder")
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise LstmvisionError(f"{run_dir}: not a run folder (no config.yaml)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.stat().st_size else None
    if not isinstance(raw, dict) or "task" not in raw:
        raise ConfigError(f"{path}: not a run config (no 'task' key)")
    return raw["task"], load_yaml_mapping(path)


def load_run_config(run_dir: Path, task_cls, overrides: dict | None = None):
    read_run_config(run_dir)  # clear errors for a missing folder or a file that is no run config
    return resolve_config(task_cls.Config, run_dir / "config.yaml", overrides, saved_run=True)


def read_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint, loaded weights-only (no code in it runs); one line naming ``path``
    for a truncated, foreign or code-carrying file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(
            f"{path}: refused, not a plain weights checkpoint (it holds Python objects that "
            "could run code when loaded)"
        ) from None
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(
            f"{path}: unreadable checkpoint, truncated or not PyTorch ({reason})"
        ) from None


def _checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    ckpt = read_checkpoint(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise DataError(f"{path}: not a Lightning checkpoint (no state_dict)")
    prefix = "model."
    return {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}


def load_model(run_dir: Path, fallback_spec: tuple[str, dict] | None = None) -> nn.Module:
    """Rebuild the run's model from model.json + model.safetensors (or its best/last checkpoint)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LstmvisionError(f"{run_dir}: no such run folder")
    weights, spec_file = run_dir / "model.safetensors", run_dir / "model.json"
    ckpts = [run_dir / "checkpoints" / n for n in ("best.ckpt", "last.ckpt")]
    if spec_file.is_file():
        try:
            spec = json.loads(spec_file.read_text(encoding="utf-8"))
            name, kwargs = spec["name"], spec["kwargs"]
        except RecursionError:
            raise DataError(f"{spec_file}: not a model description (nested too deeply)") from None
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{spec_file}: not a model description ({e})") from None
    elif fallback_spec is not None:
        name, kwargs = fallback_spec
    else:
        raise LstmvisionError(f"{run_dir}: no model.json (training did not finish)")
    if weights.is_file():
        state = read_weights(weights)
    else:
        found = [c for c in ckpts if c.is_file()]
        if not found:
            raise LstmvisionError(
                f"{run_dir}: no model.safetensors and no checkpoint in checkpoints/ "
                "(training did not finish or save; resume it with "
                "`lstmvision train TASK --out DIR --resume`)"
            )
        state = _checkpoint_state(found[0])
    return build_with_weights(
        name, kwargs, state, weights, described_in=spec_file if spec_file.is_file() else None
    )


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (no code runs); any failure is one line naming it."""
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable safetensors file ({e})") from None


def build_with_weights(
    name: str,
    kwargs: dict,
    state: dict[str, torch.Tensor],
    where: Path,
    built_in: tuple[str, ...] = (),
    described_in: Path | None = None,
    check_kwargs: dict | None = None,
) -> nn.Module:
    """The registered model ``name(**kwargs)`` with ``state`` loaded (half-precision tensors are
    widened to the model's own dtypes), in eval mode. Keys under the prefixes ``built_in`` come
    from the model as built (e.g. a frozen encoder whose weights a package carries). Weights that
    do not fit (a missing or unknown key, another shape) are one DataError naming ``where``; a
    description that builds no model names ``described_in`` (default ``where``). The shapes are
    first compared on the meta device, the model built from ``check_kwargs`` (default
    ``kwargs``; e.g. without the package weights the real build reads)."""
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        raise DataError(f"{described_in or where}: a model description needs a name and kwargs")
    _check_shapes_first(
        name, kwargs if check_kwargs is None else check_kwargs, state, where, built_in
    )
    try:
        model = get_model(name, **kwargs)
    except Exception as e:  # any failure of a hand-edited description is the file's fault
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(
            f"{described_in or where}: cannot build model {name!r} from it ({reason})"
        ) from None
    own = model.state_dict()
    if built_in:
        if any(k.startswith(built_in) for k in state):
            raise DataError(f"{where}: holds weights under {', '.join(built_in)} (built in)")
        state = {**{k: v for k, v in own.items() if k.startswith(built_in)}, **state}
    missing, unknown = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [
        f"{k} {list(state[k].shape)} where the model has {list(own[k].shape)}"
        for k in own
        if k in state and tuple(own[k].shape) != tuple(state[k].shape)
    ]
    problems = [
        f"{what} {', '.join(keys[:2])}{f' and {len(keys) - 2} more' if len(keys) > 2 else ''}"
        for what, keys in (("missing", missing), ("unknown", unknown), ("other shape:", shapes))
        if keys
    ]
    if problems:
        raise DataError(f"{where}: weights do not fit model {name!r} ({'; '.join(problems)})")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model.eval()


LARGE = 4096
"""A model description's sizes up to this build a model of a few GB at most; larger ones are
checked against the weights on the meta device before anything is allocated."""


def _check_shapes_first(name, kwargs, state, where, built_in) -> None:
    """Compare the weights' shapes with the model built on the meta device (no memory), so a
    description asking for a huge model (``hidden_size: 100000``) is refused before it is built.
    A model that cannot be built there (e.g. it reads weights at init) is checked after. Only a
    description with a size above ``LARGE`` is checked so: the meta device's first use costs a
    second of start-up."""
    sizes = [v for v in kwargs.values() for v in (v if isinstance(v, (list, tuple)) else [v])]
    if not any(isinstance(v, int) and not isinstance(v, bool) and v > LARGE for v in sizes):
        return
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. package weights copied into meta tensors
            own = get_model(name, **kwargs).state_dict()
    except Exception:
        return
    wrong = [
        k
        for k, v in own.items()
        if k in state and not k.startswith(built_in or ("\0",)) and v.shape != state[k].shape
    ]
    if wrong:
        k = wrong[0]
        raise DataError(
            f"{where}: weights do not fit model {name!r} (other shape: {k} "
            f"{list(state[k].shape)} where the model has {list(own[k].shape)}"
            f"{f' and {len(wrong) - 1} more' if len(wrong) > 1 else ''})"
        )


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse a ``run_dir`` that holds anything but an unheld lock file (``run_lock``)."""
    if run_dir.exists() and (
        not run_dir.is_dir() or any(p.name != ".lock" for p in run_dir.iterdir())
    ):
        raise LstmvisionError(
            f"{run_dir}: already exists and is not empty; pass --resume to continue that run, "
            "or choose another --out (nothing was changed)"
        )


RESUMABLE = ("last.ckpt", "interrupted.ckpt")


def resume_checkpoint(run_dir: Path, warn=None) -> Path | None:
    """The checkpoint ``--resume`` continues from: of checkpoints/last.ckpt (periodic) and
    interrupted.ckpt (Ctrl+C or an error), the one that loads and is furthest in training
    steps (the newer file on a tie). An unreadable one is skipped with one line to ``warn``;
    if none loads, one error names them. None: the run stopped before its first checkpoint
    (it starts again from the first step)."""
    say = warn or (lambda _: None)
    found = [p for p in (Path(run_dir) / "checkpoints" / n for n in RESUMABLE) if p.is_file()]
    if not found:
        if (Path(run_dir) / "metrics.json").is_file():
            raise LstmvisionError(f"{run_dir}: nothing to resume (no checkpoints/last.ckpt)")
        say(f"{run_dir}: stopped before its first checkpoint; training again from the first step")
        return None
    readable, problems = [], []
    for path in found:
        try:
            step = int(read_checkpoint(path)["global_step"])
        except (DataError, KeyError, TypeError, ValueError) as e:
            problems.append(str(e) if isinstance(e, DataError) else f"{path}: no global_step")
            continue
        readable.append((step, path.stat().st_mtime, path))
    if not readable:
        raise DataError(f"{run_dir}: no checkpoint to resume from loads ({'; '.join(problems)})")
    for line in problems:
        say(f"skipped {line}")
    return max(readable)[2]


def latest_run(task: str, root: Path = Path("runs")) -> Path:
    runs = sorted(
        (p for p in (root / task).glob("*") if (p / "checkpoints" / "last.ckpt").is_file()),
        key=lambda p: (p / "checkpoints" / "last.ckpt").stat().st_mtime,
    )
    if not runs:
        raise LstmvisionError(
            f"{root / task}: no run with a checkpoint to resume; pass --out RUN_DIR"
        )
    return runs[-1]
