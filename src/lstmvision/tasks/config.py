"""Task configurations: dataclass defaults < the data set's recipe file < ``--config file.yaml``
< ``--key value``.

A recipe is a YAML file of config keys, ``lstmvision/recipes/<task>/<dataset>.yaml`` (the same
format ``--config`` takes): the settings behind README's figure for that data set. The data set is
the one given (``--dataset``, or ``dataset:`` in the ``--config`` file), else the config's default.
An unknown key (in a recipe, a file or an override) is an error naming the key and the valid
ones; the resolved configuration is saved with the run as ``config.yaml``, the complete record.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional, Union

import yaml

from lstmvision.errors import ConfigError


@dataclass
class TrainConfig:
    """What every task's training shares. Task configs subclass it and override defaults."""

    recipes: ClassVar[str] = ""
    """the task's folder of per-data-set recipe files under lstmvision/recipes/ ("": none)"""
    retired_keys: ClassVar[frozenset[str]] = frozenset()
    """keys that older versions wrote to a run's config.yaml and that no longer exist: ignored
    when a saved run is read, refused anywhere else"""

    dataset: str = ""
    """data set name (task-specific choices)"""
    data_root: Optional[str] = None
    """data folder; default $LSTMVISION_DATA, else ../shared/data, else ~/.cache/lstmvision"""
    download: bool = False
    """download the data set if it is missing (needs internet)"""
    epochs: int = 1
    """training epochs"""
    max_steps: int = -1
    """stop after this many optimizer steps (-1: no limit)"""
    limit_train: Optional[int] = None
    """use only the first N training examples"""
    batch_size: int = 64
    """mini-batch size"""
    lr: float = 1e-3
    """peak learning rate"""
    seed: int = 0
    """random seed (weights, shuffling, augmentation)"""
    accelerator: str = "cpu"
    """cpu, gpu, mps or auto (Lightning)"""
    devices: str = "1"
    """number of devices/processes, or auto (Lightning)"""
    num_nodes: int = 1
    """machines taking part (Lightning; launch one process group per machine with torchrun or
    SLURM's srun, see docs/multi-node.md)"""
    strategy: str = "auto"
    """auto, ddp, ... (Lightning); ddp on CPU uses gloo"""
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true"
    """arithmetic (Lightning): 32-true, or bf16-mixed (convolutions and matrix products in bfloat16;
    faster on CPUs with AVX512-BF16 or AMX) or 16-mixed (GPU)"""
    num_workers: int = 0
    """data-loader worker processes"""
    checkpoint_every: int = 100
    """save checkpoints/last.ckpt every N optimizer steps (and at each epoch end)"""
    val_fraction: float = 0.1
    """fraction of the training split held out for validation (model selection)"""
    exact_resume: bool = False
    """draw every random number from (seed, epoch, batch), so that a killed run resumed with
    --resume ends bit-identical to an uninterrupted one (--num-workers 0); off: the draws the
    README figures were trained with"""


def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each dataclass field (as above), for --help texts."""
    import ast
    import inspect

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(inspect.getsource(klass)).body[0].body
        for node, nxt in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr):
                if isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                    docs[node.target.id] = nxt.value.value
    return docs


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(name: str, value: Any, tp: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(value, (list, dict, set, tuple)):  # never str() or repr() it: YAML aliases
        # can make a value exponentially large
        raise ConfigError(f"{where}: {name} must be a single value, not a {type(value).__name__}")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0], where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"{where}: {name}={value!r} is not one of {', '.join(map(str, args))}"
            )
        return value
    try:
        if tp is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return tp(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            f"{where}: {name}={value!r} is not a valid {getattr(tp, '__name__', tp)}"
        ) from None


RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def recipe_file(cls: type, dataset: str) -> Path | None:
    """The recipe file of ``dataset`` for the config class ``cls``, if there is one."""
    if not cls.recipes or not dataset or "/" in dataset or dataset.startswith("."):
        return None  # a path given as the data set (e.g. a folder of videos) has no recipe
    if len(dataset) > 100 or not dataset.isprintable():
        return None  # no recipe has such a name (and the file system may refuse to look)
    path = RECIPES / cls.recipes / f"{dataset}.yaml"
    return path if path.is_file() else None


def recipe_files(cls: type) -> dict[str, Path]:
    """Every recipe file of ``cls``'s task, by data set name."""
    folder = RECIPES / cls.recipes if cls.recipes else None
    if folder is None or not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def recipe_defaults(cls: type, dataset: str | None = None) -> dict[str, Any]:
    """The defaults of ``cls`` for ``dataset`` (default: its default data set): the dataclass
    defaults with the data set's recipe file over them (what ``--help`` shows)."""
    defaults = {f.name: f.default for f in fields(cls)}
    chosen = dataset or defaults.get("dataset", "")
    recipe = recipe_file(cls, chosen)
    if recipe is not None:
        for key, value in load_yaml_mapping(recipe).items():
            defaults[key.replace("-", "_")] = value
    return defaults


def _given_dataset(sources: list[tuple[str, dict]]) -> str | None:
    dataset = None
    for _, mapping in sources:
        for key, value in mapping.items():
            if key.replace("-", "_") == "dataset" and isinstance(value, (str, int, float)):
                dataset = str(value)
    return dataset


def resolve_config(
    cls: type,
    file: str | Path | None = None,
    overrides: dict | None = None,
    saved_run: bool = False,
):
    """Build ``cls`` from its defaults, then the chosen data set's recipe file, then a YAML file,
    then explicit overrides. ``saved_run``: ``file`` is a run's complete config.yaml (no recipe
    is read under it; keys in ``retired_keys`` are dropped)."""
    sources = []
    if file is not None:
        mapping = load_yaml_mapping(file)
        if saved_run:
            mapping = {k: v for k, v in mapping.items() if k not in cls.retired_keys}
        sources.append((str(file), mapping))
    sources.append(("command line", overrides or {}))
    if not saved_run:
        recipe = recipe_file(cls, _given_dataset(sources) or getattr(cls, "dataset", ""))
        if recipe is not None:
            sources.insert(0, (str(recipe), load_yaml_mapping(recipe)))
    return _build(cls, sources)


def saved_config(cls: type, mapping: dict, where: str, overrides: dict | None = None):
    """Build ``cls`` from a complete saved config ``mapping`` (a saved model's config.json; no
    recipe under it, ``retired_keys`` dropped), then explicit overrides; ``where`` names the
    file in errors."""
    mapping = {k: v for k, v in mapping.items() if k not in cls.retired_keys and k != "task"}
    return _build(cls, [(where, mapping), ("command line", overrides or {})])


def _build(cls: type, sources: list[tuple[str, dict]]):
    names = {f.name for f in fields(cls)}
    types_ = field_types(cls)
    values: dict[str, Any] = {}
    for where, mapping in sources:
        for key, value in mapping.items():
            key = key.replace("-", "_")
            if key not in names:
                raise ConfigError(
                    f"{where}: unknown config key {key!r}; valid keys: {', '.join(sorted(names))}"
                )
            values[key] = _coerce(key, value, types_[key], where)
    return cls(**values)


def load_yaml_mapping(file: str | Path) -> dict:
    path = Path(file)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a readable YAML config (nested too deeply)") from None
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path}: not a readable YAML config ({reason})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of key: value")
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise ConfigError(f"{path}: config keys must be names, not {str(odd[0])[:40]!r}")
    data.pop("task", None)  # a saved run config names its task; that is not a field
    return data


def config_to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
