"""k-fold cross-validation of ``text-classify`` on MR, beside the published figures.

Not a task: a driver that trains one ``text-classify`` run per (embeddings, fold) through the
runner, in ``OUT/<embeddings>/fold-<k>/``, and writes ``results.csv`` (one row per run) and
``results.md`` (mean ± standard deviation of the test-fold accuracies per recipe: embeddings,
ensemble size and adversarial move, read from each run's ``config.yaml``; with Kim 2014 and
NBSVM). A run whose folder already holds ``metrics.json`` is read, not trained again, so an
interrupted study continues when run again with the same ``--out``. Every setting comes from the
task's defaults (chosen on validation data) or from ``overrides``; the test folds choose nothing.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path

from lstmvision.console import say
from lstmvision.errors import ConfigError
from lstmvision.studies.table import write_table
from lstmvision.tasks.run_folder import read_run_config, save_metrics

PUBLISHED = [
    ("CNN-non-static, word2vec (Kim 2014)", 0.815),
    ("NBSVM bigrams (Wang & Manning 2012)", 0.794),
]
EMBEDDINGS = ("glove", "scratch")


def crossval(
    out: str | Path = "runs/crossval-text-classify",
    folds: int = 10,
    embeddings=EMBEDDINGS,
    only_folds=None,
    overrides: dict | None = None,
    log=None,
) -> list[dict]:
    """Train (or read) every fold for every embedding; return the rows of ``results.csv``: every
    finished fold in ``out``, also those of earlier calls with other ``embeddings`` or folds."""
    from lstmvision.tasks import runner

    log = log or say
    bad = [e for e in embeddings if e not in EMBEDDINGS]
    if bad or folds < 2:
        raise ConfigError(
            f"crossval: embeddings must be among {', '.join(EMBEDDINGS)} and folds >= 2"
        )
    chosen = list(range(folds)) if only_folds is None else list(only_folds)
    if any(not 0 <= k < folds for k in chosen):
        raise ConfigError(f"crossval: folds must lie in 0 .. {folds - 1}")
    out = Path(out)
    rows = []
    for emb in embeddings:
        for k in chosen:
            run = out / emb / f"fold-{k}"
            cfg = {**(overrides or {}), "embeddings": emb, "folds": folds, "fold": k}
            if (run / "metrics.json").is_file():
                metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
            else:
                if run.exists():
                    shutil.rmtree(run)  # an unfinished fold starts again
                start = time.perf_counter()
                metrics = runner.train("text-classify", cfg, out=run, quiet=True).metrics
                metrics["wall_seconds"] = round(time.perf_counter() - start, 1)
                save_metrics(run, metrics)
                shutil.rmtree(run / "checkpoints", ignore_errors=True)  # model.safetensors stays
            row = _row(emb, k, metrics, run)
            log(
                f"{emb:8} fold {k}: test {row['test_accuracy']:.2%} "
                f"(val {row['val_accuracy']:.2%}, {row['train_seconds']:.0f} s)"
            )
            rows = finished_rows(out, folds)
            write_results(rows, out, folds)
    return rows


def _row(emb: str, fold: int, metrics: dict, run: Path) -> dict:
    saved = read_run_config(run)[1] if (run / "config.yaml").is_file() else {}
    return {
        "embeddings": emb,
        "fold": fold,
        "val_accuracy": round(metrics["val_accuracy"], 4),
        "test_accuracy": round(metrics["test_accuracy"], 4),
        "train_seconds": round(metrics["train_seconds"], 1),
        "epochs": metrics["epochs"],
        # runs saved before these settings existed: one BiLSTM, no adversarial training
        "ensemble": saved.get("ensemble", 1),
        "adversarial": saved.get("adversarial", 0.0),
    }


def finished_rows(out: Path, folds: int) -> list[dict]:
    """The rows of every finished fold run in ``out``, this call's or an earlier one's."""
    rows = []
    for emb in EMBEDDINGS:
        for k in range(folds):
            run = out / emb / f"fold-{k}"
            if (run / "metrics.json").is_file():
                rows.append(
                    _row(
                        emb, k, json.loads((run / "metrics.json").read_text(encoding="utf-8")), run
                    )
                )
    return rows


def write_results(rows: list[dict], out: Path, folds: int) -> None:
    write_table(rows, out, format_markdown(rows, folds))


def format_markdown(rows: list[dict], folds: int) -> str:
    lines = [
        f"| MR sentence polarity, {folds}-fold CV | accuracy (mean ± sd) | folds run "
        "| seconds per fold |",
        "|---|---|---|---|",
    ]
    recipes = dict.fromkeys(
        (r["embeddings"], r["ensemble"], r["adversarial"]) for r in rows
    )  # in order
    for emb, members, adversarial in sorted(recipes, key=lambda key: EMBEDDINGS.index(key[0])):
        group = [
            r
            for r in rows
            if (r["embeddings"], r["ensemble"], r["adversarial"]) == (emb, members, adversarial)
        ]
        accs = [r["test_accuracy"] for r in group]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        secs = statistics.mean(r["train_seconds"] for r in group)
        name = f"{members} BiLSTMs" if members > 1 else "BiLSTM"
        name += " + GloVe 6B 50d" if emb == "glove" else ", embedding from scratch"
        name += f", adversarial {adversarial:g}" if adversarial else ""
        lines.append(
            f"| {name} (ours) | {statistics.mean(accs):.2%} ± {sd:.2%} | {len(accs)}/{folds} "
            f"| {secs:.0f} |"
        )
    lines += [f"| {name} (published) | {acc:.1%} | 10/10 | |" for name, acc in PUBLISHED]
    return "\n".join(lines) + "\n"
