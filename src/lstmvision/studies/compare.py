"""RNN vs LSTM vs GRU on long sequences: one table of accuracy or MSE, parameters and seconds per
epoch for each (benchmark, cell), with Bai et al. (2018)'s published figures beside ours.

Not a task: a driver that trains one run per (benchmark, cell) through the runner, in
``OUT/<benchmark>/<cell>/``, and writes ``results.csv`` and ``results.md`` (with every finished run
in ``OUT``, also those of earlier calls); a run whose folder holds
``metrics.json`` is read, not trained again, and an interrupted run of the same settings continues
from its last checkpoint (saved every ``checkpoint_every`` steps and on Ctrl+C), so a comparison
that takes longer than one sitting can be run in several.

Benchmarks (all unidirectional, one layer, except row-mnist which is the ``row-lstm`` recipe with
the cell swapped):

* ``seq-mnist``: ``row-lstm --reading pixels --no-bidirectional --shift 0`` (:data:`PIXEL_RECIPE`),
  784 steps of one pixel, with per-cell settings (:data:`PIXEL_CELL`): hidden sizes give ~70K
  parameters per cell as in Bai et al. (RNN 260, LSTM 130, GRU 150); peak learning rate 5e-4 for
  the RNN, 1e-3 for the LSTM and the GRU; the LSTM starts from chrono initialisation (``--chrono``)
  and learns from batches of 32 (4 times the updates of batch 128 in about the same time per epoch).
* ``pmnist``: the same under a fixed pixel permutation (``--reading permuted-pixels``).
* ``row-mnist``: 28 steps of one row (the ``row-lstm`` recipe).
* ``adding-100``, ``adding-400``: the ``adding`` task at T = 100 and 400 (MSE; 0.167 is chance).

The full budget (``EPOCHS``) is a night on 2 CPU cores; ``epochs`` and ``limit_train`` shrink it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lstmvision.console import say
from lstmvision.errors import ConfigError
from lstmvision.studies.table import write_table
from lstmvision.tasks.run_folder import load_model, read_run_config

CELLS = ("rnn", "lstm", "gru")
# 784 steps: unidirectional, no shifts. Hidden sizes give ~70K parameters each (Bai et al. 2018).
# The LSTM: chrono initialisation and a peak learning rate of 5e-4 (with torch's init it sat at
# chance for 2 epochs; with forget bias 1 it diverged in the 8th of 10 epochs at 5e-4 and fell back
# to chance at 1e-3). The GRU learns steadily and takes 1e-3 (at 5e-4: 82.6 % after 10 epochs).
PIXEL_RECIPE = {"bidirectional": False, "shift": 0}
PIXEL_CELL = {
    "rnn": {"hidden_size": 260, "lr": 5e-4},
    "lstm": {"hidden_size": 130, "lr": 1e-3, "chrono": True, "batch_size": 32},
    "gru": {"hidden_size": 150, "lr": 1e-3},
}
BENCHMARKS = {
    "row-mnist": ("row-lstm", {"reading": "rows"}),
    "seq-mnist": ("row-lstm", {"reading": "pixels", **PIXEL_RECIPE}),
    "pmnist": ("row-lstm", {"reading": "permuted-pixels", **PIXEL_RECIPE}),
    "adding-100": ("adding", {"seq_len": 100}),
    "adding-400": ("adding", {"seq_len": 400}),
}
EPOCHS = {"row-mnist": 20, "seq-mnist": 20, "pmnist": 20, "adding-100": 10, "adding-400": 10}
# Bai, Kolter & Koltun 2018, "An empirical evaluation of generic convolutional and recurrent
# networks for sequence modeling", Table 1 (test accuracy, ~70K parameters)
PUBLISHED = {
    ("seq-mnist", "rnn"): 0.215,
    ("seq-mnist", "lstm"): 0.872,
    ("seq-mnist", "gru"): 0.962,
    ("pmnist", "rnn"): 0.253,
    ("pmnist", "lstm"): 0.857,
    ("pmnist", "gru"): 0.873,
}


def overrides(
    benchmark: str,
    cell: str,
    epochs: int | None,
    limit_train: int | None,
    data_root,
    seed: int,
    accelerator: str = "cpu",
) -> dict:
    task, cfg = BENCHMARKS[benchmark]
    cfg = {
        **cfg,
        "cell": cell,
        "seed": seed,
        "epochs": epochs or EPOCHS[benchmark],
        "accelerator": accelerator,
    }
    if benchmark in ("seq-mnist", "pmnist"):
        cfg.update(PIXEL_CELL[cell])
    if limit_train:
        cfg["limit_train"] = limit_train
    if data_root and task == "row-lstm":
        cfg["data_root"] = str(data_root)
    return cfg


def compare(
    out: str | Path = "runs/compare",
    benchmarks=tuple(BENCHMARKS),
    cells=CELLS,
    epochs: int | None = None,
    limit_train: int | None = None,
    data_root=None,
    seed: int = 0,
    log=None,
    accelerator: str = "cpu",
) -> list[dict]:
    """Train (or read) every (benchmark, cell); return the rows of ``results.csv``.

    ``accelerator`` (``cpu``, ``gpu``, ...) trains each run there; the table's seconds per epoch are
    then that device's, and its ``device`` column says so.
    """
    from lstmvision.tasks import runner

    log = log or say
    for name, given, valid in (("benchmark", benchmarks, BENCHMARKS), ("cell", cells, CELLS)):
        bad = [g for g in given if g not in valid]
        if bad:
            raise ConfigError(f"unknown {name} {', '.join(bad)}; choose from {', '.join(valid)}")
    out = Path(out)
    rows, table = [], None
    for bench in benchmarks:
        task = BENCHMARKS[bench][0]
        for cell in cells:
            run = out / bench / cell
            cfg = overrides(bench, cell, epochs, limit_train, data_root, seed, accelerator)
            if not (run / "metrics.json").is_file():
                resume = _resumable(run, task, cfg)
                if run.exists() and not resume:
                    shutil.rmtree(run)
                verb = "continuing" if resume else "training"
                log(f"{verb} {bench} {cell} ({cfg['epochs']} epochs)")
                runner.train(task, cfg, out=run, quiet=True, resume=resume)
                shutil.rmtree(run / "checkpoints", ignore_errors=True)  # model.safetensors stays
            rows.append(_row(bench, cell, task, run, cfg))
            r = rows[-1]
            log(
                f"{bench:10} {cell:4}: {r['metric']} {r['test']:.4f} (val {r['val']:.4f}), "
                f"{r['parameters']} parameters, {r['seconds_per_epoch']:.0f} s/epoch"
            )
            table = _with_finished_runs(rows, out)
            write_results(table, out)
    return table if table is not None else _with_finished_runs(rows, out)


def _with_finished_runs(rows: list[dict], out: Path) -> list[dict]:
    """``rows`` and every other finished run in ``out``, in table order. Read each time the table is
    written, so that a run another call finished meanwhile (two calls side by side on one folder)
    keeps its row."""
    return _in_order(rows + _finished_runs(out, skip={(r["benchmark"], r["cell"]) for r in rows}))


def _finished_runs(out: Path, skip: set) -> list[dict]:
    """The rows of the finished runs in ``out`` other than the (benchmark, cell) pairs in ``skip``
    (earlier calls', read with the settings each was trained with): the table keeps what an
    earlier call measured when a later one runs a single cell."""
    rows = []
    for bench in BENCHMARKS:
        for cell in CELLS:
            run = out / bench / cell
            if (bench, cell) not in skip and (run / "metrics.json").is_file():
                task, saved = read_run_config(run)
                rows.append(_row(bench, cell, task, run, saved))
    return rows


def _in_order(rows: list[dict]) -> list[dict]:
    """``rows`` in the order of :data:`BENCHMARKS`, then :data:`CELLS`."""
    return sorted(
        rows, key=lambda r: (list(BENCHMARKS).index(r["benchmark"]), CELLS.index(r["cell"]))
    )


def _resumable(run: Path, task: str, cfg: dict) -> bool:
    """An interrupted run of the same settings: it holds a checkpoint and the config it was started
    with (so a comparison longer than a session can be run a session at a time)."""
    has_checkpoint = any(
        (run / "checkpoints" / n).is_file() for n in ("last.ckpt", "interrupted.ckpt")
    )
    if not has_checkpoint or not (run / "config.yaml").is_file():
        return False
    saved_task, saved = read_run_config(run)
    return saved_task == task and all(saved.get(k) == v for k, v in cfg.items())


def _row(bench: str, cell: str, task: str, run: Path, cfg: dict) -> dict:
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    metric = "accuracy" if task == "row-lstm" else "mse"
    params = sum(p.numel() for p in load_model(run).parameters())
    return {
        "benchmark": bench,
        "cell": cell,
        "metric": metric,
        "test": round(metrics[f"test_{metric}"], 4),
        "val": round(metrics[f"val_{metric}"], 4),
        "parameters": params,
        "epochs": metrics["epochs"],
        "seconds_per_epoch": round(metrics["train_seconds"] / max(1, metrics["epochs"]), 1),
        "published": PUBLISHED.get((bench, cell), ""),
        "limit_train": cfg.get("limit_train") or "",
        "device": metrics.get("accelerator", cfg.get("accelerator", "cpu")),
    }


def write_results(rows: list[dict], out: Path) -> None:
    write_table(rows, out, format_markdown(rows))


def format_markdown(rows: list[dict]) -> str:
    lines = [
        "| benchmark | cell | test accuracy / MSE | val | Bai et al. 2018 | parameters | epochs "
        "| s/epoch | device |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        shown = f"{r['test']:.2%}" if r["metric"] == "accuracy" else f"MSE {r['test']:.4f}"
        val = f"{r['val']:.2%}" if r["metric"] == "accuracy" else f"{r['val']:.4f}"
        pub = f"{r['published']:.1%}" if r["published"] != "" else ""
        note = f" (first {r['limit_train']} examples)" if r["limit_train"] else ""
        lines.append(
            f"| {r['benchmark']}{note} | {r['cell']} | {shown} | {val} | {pub} "
            f"| {r['parameters']:,} | {r['epochs']} | {r['seconds_per_epoch']:.0f} "
            f"| {r.get('device', 'cpu')} |"
        )
    return "\n".join(lines) + "\n"
