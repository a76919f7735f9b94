"""Latency of transcribing one text line (``lstmvision bench textline``).

Times what ``lstmvision transcribe RUN_DIR line.jpg`` does per line once the model is loaded:
read and height-normalise the image, run the CRNN, decode (greedy, or beam search with
``beam > 1``). Lines are real bronod lines of median and longest width (or the given images);
the model is a run's (``--run``) or, without one, an untrained model of the recipe's size (the
time does not depend on the weights). Median of ``repeats`` calls after one warm-up call.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch

from lstmvision.data import resolve_data_root
from lstmvision.data.lines import Line, load_line, read_labels_tsv
from lstmvision.nn.ctc import decode_lines


def _model(run: Path | None):
    if run is not None:
        from lstmvision.tasks import run_folder

        return run_folder.load_model(Path(run))
    from lstmvision.models import get_model
    from lstmvision.tasks.config import resolve_config
    from lstmvision.tasks.textline import TextLineConfig, TextLineTask

    cfg = resolve_config(TextLineConfig)  # bronod's recipe
    cfg.charset = "".join(chr(c) for c in range(32, 122))  # 90 characters, as bronod's charset
    name, kwargs = TextLineTask().model_spec(cfg)
    return get_model(name, **kwargs)


def _bronod_lines(data_root) -> dict[str, Path]:
    lines = read_labels_tsv(resolve_data_root(data_root) / "lines-bronod" / "labels.tsv")
    widths = sorted((load_line(ln, 48).size(1), ln.image) for ln in lines[::10])
    return {"median line": widths[len(widths) // 2][1], "longest line": widths[-1][1]}


def run(
    run_dir: Path | None = None,
    images: list[Path] | None = None,
    repeats: int = 20,
    beam: int = 1,
    threads: int | None = None,
    data_root=None,
) -> dict:
    from lstmvision.tasks.textline_lm import run_lm

    if threads:
        torch.set_num_threads(threads)
    model = _model(run_dir).eval()
    lm = run_lm(run_dir, beam)  # the run's lm.json, fused into a beam search, as transcribe does
    named = {p.name: Path(p) for p in images} if images else _bronod_lines(data_root)
    rows = []
    for label, path in named.items():

        def once(path=path) -> tuple[str, int]:
            image = load_line(Line(path, ""), model.height)
            ((text, lp),) = decode_lines(model, [image], beam, lm=lm)
            return text, image.size(1)

        once()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            _, width = once()
            times.append(time.perf_counter() - start)
        rows.append(
            {
                "line": label,
                "file": str(path),
                "width": width,
                "ms": round(1000 * statistics.median(times), 2),
            }
        )
    return {
        "model": str(run_dir) if run_dir else "untrained recipe-size crnn",
        "threads": torch.get_num_threads(),
        "beam": beam,
        "lm": lm is not None,
        "repeats": repeats,
        "load_average": list(os.getloadavg()),
        "lines": rows,
    }


def format_report(report: dict) -> str:
    lm = " + the run's n-gram LM" if report.get("lm") else ""
    head = (
        f"text-line transcription latency ({report['model']}, {report['threads']} threads, beam "
        f"{report['beam']}{lm}, median of {report['repeats']}; load average "
        f"{report['load_average'][0]:.2f})"
    )
    lines = [head] + [
        f"  {r['line']:>14}  width {r['width']:5d} px  {r['ms']:8.2f} ms" for r in report["lines"]
    ]
    return "\n".join(lines)
