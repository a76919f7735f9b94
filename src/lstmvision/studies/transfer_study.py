"""The transfer study: the seed's 2x2 grid (target data small or large x similar to the source or
not), measured for scratch / linear classifier on CNN codes / fine-tune the top / fine-tune all.

Not a task of its own: a driver that trains one ``cnn`` run per cell through the runner, each in
its own run folder under ``OUT/cells/``, and writes ``results.csv``, ``results.md`` and
``study.png`` beside them. A cell whose folder already has ``metrics.json`` is not trained again,
so an interrupted study continues where it stopped when run again with the same ``--out``.

Sources and targets:

* ``mnist``: our CNN (``lenet5-modern``) trained on MNIST with the ``cnn`` recipe (or the run
  given as ``source_run``). USPS digits are *similar* to it; Fashion-MNIST is *different*.
* ``imagenet``: EfficientNet-Lite0 with its real ImageNet weights, at 64 px (224 px costs ~12x
  the compute on 2 cores). Grey digits and clothes are both far from ImageNet photos.
* ``scratch`` trains ``lenet5-modern`` from random weights on the target with the same budget as
  the mnist-source cells: it is the baseline both sources should beat.

Budgets (fixed in the code so the table is reproducible; every cell's equivalent ``lstmvision
train cnn ...`` command is in ``results.csv``), sized for 2 CPU cores: lenet5-modern with 100 or
1,000 labels trains 10 epochs of 12,800 examples drawn from them (1,000 SGD steps of 128), with all
labels 10 epochs. EfficientNet-Lite0: codes 10 epochs; fine-tuning 3 epochs of 2,000 examples
(94 steps of 64) at every size, because one step through the whole network costs ~0.5 s here, so
its "all labels" fine-tuning sees at most 6,000 of them: a compute-bound, not data-bound, figure.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lstmvision.console import say
from lstmvision.errors import ConfigError
from lstmvision.files import write_text
from lstmvision.studies.table import write_table
from lstmvision.tasks.transfer import advise

TARGETS = {"usps": "high", "fashion-mnist": "low"}  # similarity to the MNIST source
SOURCES = ("mnist", "imagenet")
MODES = ("scratch", "codes", "finetune-top", "finetune-all")
SIZES = (100, 1000, None)  # None: every training label (after the validation hold-out)
TRAIN_SPLIT = {"usps": 7291, "fashion-mnist": 60000}  # images in the official training splits
SMALL_MODEL, IMAGENET_MODEL, IMAGENET_SIZE = "lenet5-modern", "efficientnet-lite0", 64
TOP_STAGES = 2  # "fine-tune top": the last two stages of model.stages() and the head train
ADVICE_TO_MODE = {"codes": "codes", "codes-early": "codes", "finetune-all": "finetune-all"}


@dataclass(frozen=True)
class Cell:
    source: str  # none | mnist | imagenet
    target: str
    size: int | None
    mode: str

    @property
    def name(self) -> str:
        return f"{self.source}-{self.target}-{self.size or 'all'}-{self.mode}"


def cells(sources=SOURCES, targets=tuple(TARGETS), sizes=SIZES, modes=MODES) -> list[Cell]:
    """The grid in run order (cheap cells first); scratch once per target and size."""
    out = []
    for target in targets:
        for size in sizes:
            if "scratch" in modes:
                out.append(Cell("none", target, size, "scratch"))
            for source in sources:
                out += [Cell(source, target, size, m) for m in modes if m != "scratch"]
    return out


def _freeze_depth(model_name: str) -> int:
    from lstmvision.models import get_model

    kwargs = {"weights": None} if model_name == IMAGENET_MODEL else {}
    return len(get_model(model_name, num_classes=10, **kwargs).stages()) - TOP_STAGES


def overrides(cell: Cell, source_run: Path, data_root: str | None, seed: int) -> dict:
    """The ``cnn`` task's config keys for one cell (everything else: the task's defaults)."""
    cfg: dict = {"dataset": cell.target, "seed": seed, "limit_train": cell.size}
    if data_root:
        cfg["data_root"] = data_root
    small = cell.size is not None
    if cell.source == "imagenet":
        cfg.update(from_run="imagenet", image_size=IMAGENET_SIZE, batch_size=64)
        if cell.mode == "codes":
            cfg.update(epochs=10, epoch_size=6400 if small else None)
        else:
            cfg.update(epochs=3, epoch_size=2000)
    else:
        if cell.target == "usps":
            cfg["image_size"] = 20  # USPS digits fill their 16 px frame; MNIST's sit in 20 of 28 px
        cfg.update(epochs=10, epoch_size=12800 if small else None)
        if cell.source == "mnist":
            cfg["from_run"] = str(source_run)
        else:
            cfg["model"] = SMALL_MODEL
    if cell.mode == "codes":
        cfg["transfer"] = "codes"
    elif cell.mode.startswith("finetune"):
        model = IMAGENET_MODEL if cell.source == "imagenet" else SMALL_MODEL
        cfg.update(
            transfer="finetune",
            freeze_depth=_freeze_depth(model) if cell.mode == "finetune-top" else 0,
        )
    return {k: v for k, v in cfg.items() if v is not None}


def command_line(cfg: dict) -> str:
    flags = []
    for key, value in cfg.items():
        if key == "data_root":
            continue
        flags += ["--from" if key == "from_run" else "--" + key.replace("_", "-"), str(value)]
    return "lstmvision train cnn " + " ".join(shlex.quote(f) for f in flags)


def _train_source(out: Path, data_root: str | None, seed: int, log) -> Path:
    from lstmvision.tasks import runner

    run = out / "source-mnist"
    if not (run / "metrics.json").is_file():
        if run.exists():
            shutil.rmtree(run)  # an unfinished source run: start it again
        log(f"training the MNIST source: lstmvision train cnn --model {SMALL_MODEL} --seed {seed}")
        cfg = {
            "model": SMALL_MODEL,
            "seed": seed,
            **({"data_root": data_root} if data_root else {}),
        }
        runner.train("cnn", cfg, out=run, quiet=True)
    return run


def run_cell(cell: Cell, out: Path, source_run: Path, data_root: str | None, seed: int) -> dict:
    from lstmvision.tasks import runner

    run = out / "cells" / cell.name
    cfg = overrides(cell, source_run, data_root, seed)
    if (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        wall = json.loads((run / "study.json").read_text(encoding="utf-8"))["wall_seconds"]
    else:
        if run.exists():
            shutil.rmtree(run)  # an unfinished cell starts again
        start = time.perf_counter()
        metrics = runner.train("cnn", cfg, out=run, quiet=True).metrics
        wall = round(time.perf_counter() - start, 1)
        write_text(run / "study.json", json.dumps({"wall_seconds": wall, **asdict(cell)}))
        shutil.rmtree(
            run / "checkpoints", ignore_errors=True
        )  # model.safetensors stays; saves disk
    similarity = (
        TARGETS[cell.target]
        if cell.source == "mnist"
        else ("low" if cell.source == "imagenet" else "")
    )
    return {
        "source": cell.source,
        "target": cell.target,
        "similarity": similarity,
        "labels": cell.size or "all",
        "train_examples": _train_examples(run, cell),
        "mode": cell.mode,
        "test_accuracy": round(metrics["test_accuracy"], 4),
        "val_accuracy": round(metrics["val_accuracy"], 4),
        "train_seconds": round(metrics["train_seconds"], 1),
        "wall_seconds": wall,
        "seed": seed,
        "command": command_line(cfg),
    }


def _train_examples(run: Path, cell: Cell) -> int:
    """Labelled images the cell trained on (the cnn task holds val_fraction of the split out)."""
    from lstmvision.data import train_val_indices

    cfg = (run / "config.yaml").read_text(encoding="utf-8")
    fraction = float(
        next(line.split(":", 1)[1] for line in cfg.splitlines() if line.startswith("val_fraction:"))
    )
    available = len(train_val_indices(TRAIN_SPLIT[cell.target], fraction)[0])
    return min(cell.size, available) if cell.size else available


def study(
    out: str | Path | None = None,
    source_run: str | Path | None = None,
    sources=SOURCES,
    targets=tuple(TARGETS),
    sizes=SIZES,
    modes=MODES,
    data_root: str | None = None,
    seed: int = 0,
    log=None,
) -> list[dict]:
    """Run (or continue) the study in ``out``; return the rows of ``results.csv``."""
    log = log or say
    for name, given, valid in (
        ("source", sources, SOURCES),
        ("target", targets, TARGETS),
        ("mode", modes, MODES),
    ):
        bad = [g for g in given if g not in valid]
        if bad:
            raise ConfigError(f"unknown {name} {', '.join(bad)}; choose from {', '.join(valid)}")
    if any(s is not None and s < 10 for s in sizes):
        raise ConfigError("--sizes: each size must be at least 10 labels (or 'all')")
    out = Path(out or Path("runs") / "transfer-study")
    out.mkdir(parents=True, exist_ok=True)
    if "mnist" in sources and source_run is None:
        source_run = _train_source(out, data_root, seed, log)
    grid = [
        c
        for c in cells(sources, targets, sizes, modes)
        if c.source != "mnist" or source_run is not None
    ]
    rows = []
    for i, cell in enumerate(grid, 1):
        row = run_cell(cell, out, Path(source_run) if source_run else Path(), data_root, seed)
        rows.append(row)
        log(
            f"[{i:2d}/{len(grid)}] {cell.source:>8} -> {cell.target:13} "
            f"{str(row['labels']):>5} labels {cell.mode:13} test {row['test_accuracy']:.2%}  "
            f"({row['wall_seconds']:.0f} s)"
        )
        write_results(rows, out)  # after every cell: a partial table is still a table
    plot_study(rows, out / "study.png")
    return rows


def advice_check(rows: list[dict]) -> list[dict]:
    """For each MNIST-source (target, size): the seed's advice, the best mode measured, and whether
    the advice was the best or within one point of it."""
    checks = []
    keyed = {(r["source"], r["target"], str(r["labels"]), r["mode"]): r for r in rows}
    for target, similarity in TARGETS.items():
        for labels in sorted(
            {str(r["labels"]) for r in rows if r["target"] == target}, key=_size_key
        ):
            measured = {
                m: keyed[(s, target, labels, m)]["test_accuracy"]
                for s, m in [("none", "scratch")] + [("mnist", m) for m in MODES[1:]]
                if (s, target, labels, m) in keyed
            }
            if len(measured) < 2:
                continue
            n = next(
                r["train_examples"]
                for r in rows
                if r["target"] == target and str(r["labels"]) == labels
            )
            a = advise(n, similarity)
            advised = ADVICE_TO_MODE[a.mode]
            best = max(measured, key=measured.get)
            gap = measured[best] - measured.get(advised, float("nan"))
            verdict = "held" if gap <= 0.01 else "did not hold"
            checks.append(
                {
                    "target": target,
                    "similarity": similarity,
                    "labels": labels,
                    "train_examples": n,
                    "scenario": a.scenario,
                    "advised": advised,
                    "advised_accuracy": measured.get(advised),
                    "best": best,
                    "best_accuracy": measured[best],
                    "verdict": verdict,
                }
            )
    return checks


def _size_key(labels: str) -> float:
    return float("inf") if labels == "all" else float(labels)


def write_results(rows: list[dict], out: Path) -> None:
    write_table(rows, out, format_markdown(rows))


def format_markdown(rows: list[dict]) -> str:
    """Test accuracy per (source, target, labels) and mode, then where the seed's advice held."""
    lines = [
        "| source | target (similarity) | labels | " + " | ".join(MODES) + " | seconds |",
        "|---|---|---|" + "---|" * len(MODES) + "---|",
    ]
    groups: dict[tuple, dict] = {}
    for r in rows:
        source = "none (scratch)" if r["source"] == "none" else r["source"]
        key = (source, r["target"], str(r["labels"]))
        groups.setdefault(key, {"similarity": r["similarity"], "seconds": 0.0})
        groups[key][r["mode"]] = r["test_accuracy"]
        groups[key]["seconds"] += r["wall_seconds"]
    for (source, target, labels), g in groups.items():
        sim = f" ({g['similarity']})" if g["similarity"] else ""
        accs = " | ".join(f"{g[m]:.2%}" if m in g else "" for m in MODES)
        lines.append(f"| {source} | {target}{sim} | {labels} | {accs} | {g['seconds']:.0f} |")
    checks = advice_check(rows)
    if checks:
        lines += [
            "",
            "| target | labels | seed's scenario | advised | best measured | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for c in checks:
            advised = (
                f"{c['advised']} {c['advised_accuracy']:.2%}"
                if c["advised_accuracy"] is not None
                else c["advised"]
            )
            lines.append(
                f"| {c['target']} | {c['labels']} | {c['scenario']} | {advised} | "
                f"{c['best']} {c['best_accuracy']:.2%} | {c['verdict']} |"
            )
    return "\n".join(lines) + "\n"


def plot_study(rows: list[dict], path: Path) -> Path | None:
    """Test accuracy against the number of labels: a panel per target, a line per source+mode."""
    if not rows:
        return None
    from lstmvision.viz.plots import plot_series_panels

    panels: dict[str, dict[str, list]] = {}
    for r in rows:
        label = "scratch" if r["mode"] == "scratch" else f"{r['source']}: {r['mode']}"
        panels.setdefault(r["target"], {}).setdefault(label, []).append(
            (r["train_examples"], r["test_accuracy"])
        )
    return plot_series_panels(
        panels,
        path,
        xlabel="labelled training images (log scale)",
        ylabel="test accuracy",
        title="transfer study",
        logx=True,
    )
