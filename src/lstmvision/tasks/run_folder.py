"""The run folder contract: what ``train`` writes and what ``evaluate``/``predict`` read.

::

    runs/<task>/<name>/
      config.yaml          resolved config (task + every field)
      checkpoints/         last.ckpt (every N steps and each epoch end), best.ckpt (monitor),
                           interrupted.ckpt (only after Ctrl+C or an error)
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
import os
import tempfile
from datetime import datetime
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from lstmvision.errors import ConfigError, DataError, LstmvisionError
from lstmvision.models import get_model
from lstmvision.tasks.config import config_to_dict, load_yaml_mapping, resolve_config


def write_atomic(path: Path, text: str) -> None:
    """Write a text file so that a crash never leaves it half-written."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def default_run_dir(task: str, root: Path = Path("runs")) -> Path:
    return root / task / datetime.now().strftime("%Y%m%d-%H%M%S")


def save_config(run_dir: Path, task: str, cfg) -> None:
    write_atomic(
        run_dir / "config.yaml",
        yaml.safe_dump({"task": task, **config_to_dict(cfg)}, sort_keys=False),
    )


def save_metrics(run_dir: Path, metrics: dict) -> None:
    write_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def update_metrics(run_dir: Path, metrics: dict) -> None:
    """Merge ``metrics`` into the run's metrics.json (other keys kept)."""
    path = Path(run_dir) / "metrics.json"
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    save_metrics(Path(run_dir), {**saved, **metrics})


def save_model(run_dir: Path, name: str, kwargs: dict, model: nn.Module) -> None:
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".model.")
    os.close(fd)
    save_file(state, tmp, metadata={"model": name})
    os.replace(tmp, run_dir / "model.safetensors")
    write_atomic(
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


def _checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"{path}: unreadable checkpoint ({str(e).splitlines()[0]})") from None
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
    return build_with_weights(name, kwargs, state, weights)


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
) -> nn.Module:
    """The registered model ``name(**kwargs)`` with ``state`` loaded (half-precision tensors are
    widened to the model's own dtypes), in eval mode. Keys under the prefixes ``built_in`` come
    from the model as built (e.g. a frozen encoder whose weights a package carries). Weights that
    do not fit (a missing or unknown key, another shape) are one DataError naming ``where``."""
    try:
        model = get_model(name, **kwargs)
    except (TypeError, ValueError, LstmvisionError) as e:
        raise DataError(
            f"{where}: cannot build model {name!r} from its description ({e})"
        ) from None
    own = model.state_dict()
    if built_in:
        if any(k.startswith(built_in) for k in state):
            raise DataError(f"{where}: holds weights under {', '.join(built_in)} (built in)")
        state = {**{k: v for k, v in own.items() if k.startswith(built_in)}, **state}
    missing, unknown = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    problems = [
        f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
        for what, keys in (("missing", missing), ("unknown", unknown), ("other shape:", shapes))
        if keys
    ]
    if problems:
        raise DataError(f"{where}: weights do not fit model {name!r} ({'; '.join(problems)})")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model.eval()


def check_new_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise LstmvisionError(
            f"{run_dir}: already exists and is not empty; pass --resume to continue that run, "
            "or choose another --out (nothing was changed)"
        )


def last_checkpoint(run_dir: Path) -> Path:
    """The newest of checkpoints/last.ckpt (periodic) and interrupted.ckpt (saved on Ctrl+C or
    an error)."""
    found = [
        p
        for p in (Path(run_dir) / "checkpoints" / n for n in ("last.ckpt", "interrupted.ckpt"))
        if p.is_file()
    ]
    if not found:
        raise LstmvisionError(f"{run_dir}: nothing to resume (no checkpoints/last.ckpt)")
    return max(found, key=lambda p: p.stat().st_mtime)


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
