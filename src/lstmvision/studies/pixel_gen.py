"""The PixelRNN comparison (issue 31): the Diagonal BiLSTM, the Row LSTM and the PixelCNN baseline
on binarized MNIST, one table: model, layers, parameters, test NLL, training time, samples per
second.

Not a task: a driver that trains one ``pixel-gen`` run per model through the runner, in
``OUT/<model>/`` (the commands of :data:`COMMANDS`, as in docs/pixel-gen.md: each about the same
training time on 2 CPU cores), and writes ``results.csv`` and ``results.md``. A model whose folder
holds ``metrics.json`` is read, not trained again, so the study continues where it stopped; a
folder trained by hand with ``lstmvision train pixel-gen ... --out OUT/<model>`` is read the
same way. ``lstmvision compare --tasks pixel-gen --out runs`` runs it (into ``runs/pixel-gen``), as
does::

    python -m lstmvision.studies.pixel_gen --out runs/pixel-gen

Samples per second: 16 digits drawn from each trained model (seed 0) and timed here, on this
machine at its torch thread count (:func:`sampling_rate`); the rest comes from the run folder.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Optional

import torch

from lstmvision.console import say
from lstmvision.errors import ConfigError
from lstmvision.studies.table import write_table
from lstmvision.tasks.run_folder import load_model, read_run_config

COMMANDS: dict[str, dict] = {
    "pixelrnn-diagonal": {},  # the recipe: 3 layers of h = 16, 7 epochs
    "pixelrnn-row": {"model": "pixelrnn-row", "num_layers": 7, "epochs": 7},
    "pixelcnn": {"model": "pixelcnn", "num_layers": 15, "epochs": 15},
}
"""Each model's settings over the recipe (recipes/pixel-gen/binarized-mnist.yaml)."""
SAMPLES = 16


def command(model: str) -> str:
    """The ``lstmvision train`` command behind ``model``'s row."""
    flags = [f"--{k.replace('_', '-')} {v}" for k, v in COMMANDS[model].items()]
    return shlex.join(["lstmvision", "train", "pixel-gen"]) + "".join(" " + f for f in flags)


@torch.no_grad()
def sampling_rate(model: torch.nn.Module, count: int = SAMPLES) -> float:
    """Digits per second drawn by ``model.sample(count, seed=0)`` here."""
    start = time.perf_counter()
    model.eval().sample(count, seed=0)
    return count / (time.perf_counter() - start)


def row(model: str, run: Path) -> dict:
    """The table's row of a finished ``pixel-gen`` run folder."""
    task, cfg = read_run_config(run)
    if task != "pixel-gen":
        raise ConfigError(f"{run}: a {task!r} run, not pixel-gen")
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    net = load_model(run)
    return {
        "model": cfg.get("model", model),
        "layers": cfg["num_layers"],
        "hidden_size": cfg["hidden_size"],
        "parameters": sum(p.numel() for p in net.parameters()),
        "test_nll": round(metrics["test_nll"], 2),
        "test_bits_per_dim": round(metrics["test_bits_per_dim"], 4),
        "val_nll": round(metrics["val_nll"], 2),
        "epochs": metrics["epochs"],
        "train_minutes": round(metrics["train_seconds"] / 60, 1),
        "samples_per_second": round(sampling_rate(net), 2),
        "threads": torch.get_num_threads(),
        "command": command(model) if model in COMMANDS else "",
    }


def study(
    out: str | Path = "runs/pixel-gen",
    models=tuple(COMMANDS),
    data_root: str | None = None,
    overrides: dict | None = None,
    log=None,
) -> list[dict]:
    """Train (or read) each of ``models`` into ``OUT/<model>``; write and return the table.
    ``overrides``: settings over every model's command (e.g. a quick look: ``max_steps``)."""
    from lstmvision.tasks import runner

    log = log or say
    unknown = [m for m in models if m not in COMMANDS]
    if unknown:
        raise ConfigError(f"unknown model {', '.join(unknown)}; choose from {', '.join(COMMANDS)}")
    out, rows = Path(out), []
    for model in models:
        run = out / model
        if not (run / "metrics.json").is_file():
            cfg = {**COMMANDS[model], **(overrides or {})}
            if data_root:
                cfg["data_root"] = str(data_root)
            log(f"training {model}: {command(model)}")
            runner.train("pixel-gen", cfg, out=run, quiet=True, resume=run.exists())
        rows.append(row(model, run))
        log(f"{model}: test NLL {rows[-1]['test_nll']} nats, {rows[-1]['train_minutes']} min")
        write_table(rows, out, format_markdown(rows))
    return rows


def format_markdown(rows: list[dict]) -> str:
    lines = [
        "| model | layers | h | parameters | test NLL (nats) | bits/dim | val NLL | epochs "
        "| training (min) | samples/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['layers']} | {r['hidden_size']} | {r['parameters']:,} "
            f"| {r['test_nll']:.2f} | {r['test_bits_per_dim']:.4f} | {r['val_nll']:.2f} "
            f"| {r['epochs']} | {r['train_minutes']:.1f} | {r['samples_per_second']:.1f} |"
        )
    threads = {r["threads"] for r in rows}
    lines.append(f"\nsamples/s: {SAMPLES} digits drawn at {'/'.join(map(str, threads))} thread(s)")
    return "\n".join(lines) + "\n"


def main(
    out: Path = Path("runs/pixel-gen"),
    models: str = ",".join(COMMANDS),
    data_root: Optional[Path] = None,
) -> None:
    """Train (or read) the three pixel-gen models and write OUT/results.csv and results.md."""
    rows = study(out, [m.strip() for m in models.split(",") if m.strip()], data_root)
    print(format_markdown(rows))


if __name__ == "__main__":
    import typer

    typer.run(main)
