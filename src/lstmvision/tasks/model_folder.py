"""The saved-model folder contract: a trained model as one shareable folder, the layout of
huggingface_hub's ``ModelHubMixin`` (what ``save_pretrained`` writes and ``lstmvision.load``
reads; the shipped models under ``lstmvision/pretrained/`` are such folders)::

    NAME/
      config.json        {"format", "task", "config": the run's resolved config,
                          "model": {"name", "kwargs"}, "weights_dtype", "metrics",
                          "provenance": {"command", "date", "machine", ...}}
      model.safetensors  the weights (float32, or float16 where the card's figures hold), less
                         those a package carries ("package_weights": the caption encoder)
      README.md          the model card (Hugging Face layout: YAML front matter, then text)
      vocab.json ...     the task's extra files, as in the run folder (``EXTRA_FILES``)

Nothing here runs code from the folder: JSON and safetensors only. ``run_folder`` is the
training run's contract; a run folder becomes a model folder with :func:`save`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from lstmvision.errors import DataError
from lstmvision.files import atomic_path, write_text
from lstmvision.tasks.run_folder import build_with_weights, read_weights

FORMAT = "lstmvision-model/1"
CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
# files besides the weights that a task's predict/evaluate read from the folder it was loaded
# from (Task.run_dir): the caption vocabulary, the text-line n-gram, the clip classes
EXTRA_FILES = ("vocab.json", "lm.json", "classes.json")
DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass
class ModelFolder:
    """What a model folder's config.json says (the weights are read by :func:`load_model`)."""

    path: Path
    task: str
    config: dict
    model_name: str
    model_kwargs: dict
    weights_dtype: str = "float32"
    metrics: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    # {key prefix: model kwargs}: weights not in the file, built by the model from a package
    # with those kwargs (the caption decoder's frozen ImageNet encoder)
    package_weights: dict = field(default_factory=dict)


def read(folder: Path) -> ModelFolder:
    """The folder's config.json, checked; any problem is one DataError naming the file."""
    folder = Path(folder)
    path = folder / CONFIG
    if not path.is_file():
        raise DataError(f"{folder}: not a saved model folder (no {CONFIG})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DataError(f"{path}: not an lstmvision model config (format is not {FORMAT!r})")
    try:
        task, config, model = raw["task"], raw["config"], raw["model"]
        name, kwargs = model["name"], model["kwargs"]
    except (KeyError, TypeError) as e:
        raise DataError(
            f"{path}: missing key {e} (needs task, config, model.name/kwargs)"
        ) from None
    dtype = raw.get("weights_dtype", "float32")
    if not isinstance(config, dict) or not isinstance(kwargs, dict) or dtype not in DTYPES:
        raise DataError(
            f"{path}: config and model.kwargs must be mappings, weights_dtype one of "
            f"{', '.join(DTYPES)}"
        )
    package = raw.get("package_weights") or {}
    if not isinstance(package, dict) or not all(isinstance(v, dict) for v in package.values()):
        raise DataError(f"{path}: package_weights must map key prefixes to model kwargs")
    return ModelFolder(
        folder,
        str(task),
        config,
        str(name),
        kwargs,
        dtype,
        dict(raw.get("metrics") or {}),
        dict(raw.get("provenance") or {}),
        package,
    )


def load_model(saved: ModelFolder) -> nn.Module:
    """The folder's model with its weights, in float32 and eval mode."""
    weights = saved.path / WEIGHTS
    if not weights.is_file():
        raise DataError(f"{weights}: no such file (a saved model needs its weights)")
    state = read_weights(weights)
    kwargs = dict(saved.model_kwargs)
    for updates in saved.package_weights.values():
        kwargs.update(updates)
    return build_with_weights(
        saved.model_name,
        kwargs,
        state,
        weights,
        built_in=tuple(saved.package_weights),
        described_in=saved.path / CONFIG,
        check_kwargs=dict(saved.model_kwargs),  # the shapes, without reading package weights
    )


def save(
    folder: Path,
    task: str,
    config: dict,
    model_name: str,
    model_kwargs: dict,
    model: nn.Module,
    *,
    source: Path | None = None,
    weights_dtype: str = "float32",
    metrics: dict | None = None,
    provenance: dict | None = None,
    card: str = "",
    package_weights: dict | None = None,
) -> Path:
    """Write ``folder`` (created; its files replaced atomically, others left alone): config.json,
    the weights in ``weights_dtype``, README.md ``card`` and the extra files found in
    ``source`` (the folder the model was loaded from)."""
    if weights_dtype not in DTYPES:
        raise DataError(f"weights_dtype={weights_dtype!r}: one of {', '.join(DTYPES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = DTYPES[weights_dtype]
    state = {
        k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous()
        for k, v in model.state_dict().items()
        if not k.startswith(tuple(package_weights or {}))
    }
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(state, tmp, metadata={"model": model_name, "format": FORMAT})
    for name in EXTRA_FILES:
        if source is not None and (Path(source) / name).is_file():
            if Path(source).resolve() != folder.resolve():
                with atomic_path(folder / name) as tmp:
                    shutil.copyfile(Path(source) / name, tmp)
    config = {k: v for k, v in config.items() if k != "data_root"}  # the trainer's machine's path
    raw = {
        "format": FORMAT,
        "task": task,
        "config": config,
        "model": {"name": model_name, "kwargs": model_kwargs},
        "weights_dtype": weights_dtype,
        "package_weights": package_weights or {},
        "metrics": metrics or {},
        "provenance": provenance or {},
    }
    write_text(folder / CONFIG, json.dumps(raw, indent=2, sort_keys=False) + "\n")
    write_text(folder / CARD, card)
    return folder
