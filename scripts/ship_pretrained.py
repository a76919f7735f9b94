"""Ship a trained run as one of the package's pretrained models (maintainers' tool).

    python scripts/ship_pretrained.py NAME RUN_DIR --machine "2-core AMD EPYC, 2 threads" [--half]
    python scripts/ship_pretrained.py NAME - --card-only   # write the card again

NAME must be in src/lstmvision/pretrained/catalog.json (task, recipe command, data licence,
limitations, the validation figure that decides). The run must be of the catalog's task and
trained by its recipe command. The script writes src/lstmvision/pretrained/NAME/ (config.json,
model.safetensors, README.md, the task's extra files), loads it back and measures the card's
figures on the test and validation splits with those shipped weights (`lstmvision evaluate`),
and refuses to replace a shipped model whose validation figure is as good or better (--force
overrides), so the repository does not grow with every experiment.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import lstmvision
from lstmvision.inference.base import read_source
from lstmvision.inference.card import model_card
from lstmvision.pretrained import PRETRAINED, catalog
from lstmvision.tasks import model_folder
from lstmvision.tasks.runner import evaluate


def _commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--machine", help="the machine that trained the run (required to ship)")
    parser.add_argument("--half", action="store_true", help="float16 weights")
    parser.add_argument("--force", action="store_true", help="replace even if not better")
    parser.add_argument(
        "--card-only", action="store_true", help="rewrite the shipped model's README.md only"
    )
    args = parser.parse_args(argv)
    notes = catalog().get(args.name)
    if notes is None:
        parser.error(f"{args.name}: not in {PRETRAINED / 'catalog.json'}")
    if args.card_only:
        target = PRETRAINED / args.name
        model = model_folder.load_model(model_folder.read(target))
        card = model_card(args.name, read_source(target), model, notes)
        (target / model_folder.CARD).write_text(card)
        print(f"wrote {target / model_folder.CARD}")
        return 0
    if not args.machine:
        parser.error("--machine: name the machine that trained the run")
    run = read_source(args.run_dir)
    if run.kind != "run" or run.task != notes["task"]:
        parser.error(f"{args.run_dir}: not a {notes['task']!r} run folder")
    dtype = "float16" if args.half else "float32"
    with tempfile.TemporaryDirectory(prefix=f"{args.name}.") as tmp:
        staged = Path(tmp) / args.name
        lstmvision.load(args.run_dir).save_pretrained(staged, weights_dtype=dtype, card="")
        metrics = {}
        for split in ("val", "test"):  # the shipped weights, loaded back
            metrics.update(evaluate(staged, split))
        metrics = {k: float(v) for k, v in metrics.items()}
        key, better = notes["select"]
        target = PRETRAINED / args.name
        if (target / model_folder.CONFIG).is_file() and not args.force:
            old = model_folder.read(target).metrics.get(key)
            new = metrics[key]
            if old is not None and not (new > old if better == "max" else new < old):
                print(f"{args.name}: kept the shipped model ({key} {old:.4f} vs {new:.4f})")
                return 1
        saved = model_folder.read(staged)
        provenance = {
            "command": notes["command"],
            "date": date.fromtimestamp((args.run_dir / "metrics.json").stat().st_mtime).isoformat(),
            "machine": args.machine,
            "train_seconds": run.metrics.get("train_seconds"),
            "weights_dtype": dtype,
            "lstmvision_commit": _commit(),
            "measured": (
                f"the shipped {dtype} weights loaded back (`lstmvision evaluate {args.name}` "
                f"and `--split val`), {date.today().isoformat()}"
            ),
        }
        raw = json.loads((staged / model_folder.CONFIG).read_text(encoding="utf-8"))
        raw.update(metrics=metrics, provenance=provenance)
        (staged / model_folder.CONFIG).write_text(json.dumps(raw, indent=2) + "\n")
        src = read_source(staged)
        model = model_folder.load_model(saved)
        (staged / model_folder.CARD).write_text(model_card(args.name, src, model, notes))
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(staged, target)
    size = sum(p.stat().st_size for p in target.iterdir()) / 1e6
    print(f"wrote {target} ({size:.1f} MB)")
    for k in sorted(metrics):
        print(f"{k:>16}  {metrics[k]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
