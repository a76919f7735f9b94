"""Captioning latency: milliseconds to caption one photo (read + resize, encoder, decoding).

The model is a finished ``caption`` run (``run_dir``) or, without one, an untrained captioner with
the recipe's sizes and a 1,000-word vocabulary; an untrained decoder rarely says ``<end>``, so
its captions run to the maximum length: a worst case for the decoding time.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from lstmvision.data.captions import load_photo


def _model(run_dir: str | Path | None, name: str):
    if run_dir is not None:
        from lstmvision.tasks import runner

        task, cfg, model = runner.load(run_dir)
        if task.name != "caption":
            from lstmvision.errors import LstmvisionError

            raise LstmvisionError(f"{run_dir}: a {task.name!r} run, not a caption run")
        return model.eval(), cfg.max_len, f"{run_dir} ({model.__class__.__name__})"
    from lstmvision.models import get_model
    from lstmvision.tasks.caption import CaptionConfig

    cfg = CaptionConfig()
    words = ["<pad>", "<start>", "<end>", "<unk>", *(f"w{i}" for i in range(996))]
    kwargs = dict(
        words=words,
        cell=cfg.cell,
        embed_size=cfg.embed_size,
        hidden_size=cfg.hidden_size,
        dropout=cfg.dropout,
        encoder_weights=None,
        image_size=cfg.image_size,
    )
    if name == "show-attend-tell":
        kwargs.update(feature_size=cfg.feature_size, attention_size=cfg.attention_size)
    return get_model(name, **kwargs).eval(), cfg.max_len, f"untrained {name}, recipe sizes"


@torch.no_grad()
def run(
    photo: str | Path,
    run_dir: str | Path | None = None,
    model_name: str = "show-attend-tell",
    beams=(1, 3),
    repeats: int = 10,
) -> dict:
    """Median milliseconds per photo for each beam width (one photo at a time, batch 1)."""
    model, max_len, described = _model(run_dir, model_name)
    rows = []
    for beam in beams:
        load, encode, decode, words = [], [], [], 0
        for i in range(repeats + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            pixels = load_photo(photo, model.image_size)[None].float() / 255  # (1, 3, S, S)
            t1 = time.perf_counter()
            features = model.encode(pixels)  # (1, L, 1280)
            t2 = time.perf_counter()
            out = model.caption(features, beam=beam, max_len=max_len)
            t3 = time.perf_counter()
            if i:
                load.append(t1 - t0), encode.append(t2 - t1), decode.append(t3 - t2)
                words = len(out.tokens[0])
        ms = lambda xs: round(1000 * statistics.median(xs), 1)  # noqa: E731
        rows.append(
            {
                "beam": beam,
                "load_ms": ms(load),
                "encode_ms": ms(encode),
                "decode_ms": ms(decode),
                "total_ms": round(ms(load) + ms(encode) + ms(decode), 1),
                "words": words,
            }
        )
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "model": described,
        "photo": str(photo),
        "rows": rows,
    }


def format_report(report: dict) -> str:
    lines = [
        f"{report['model']}; photo {report['photo']}",
        f"torch {report['torch']}, {report['threads']} thread(s), median of {report['repeats']}",
        f"{'beam':>4} {'load ms':>8} {'encode ms':>10} {'decode ms':>10} "
        f"{'total ms':>9} {'words':>6}",
    ]
    lines += [
        f"{r['beam']:>4} {r['load_ms']:>8.1f} {r['encode_ms']:>10.1f} {r['decode_ms']:>10.1f} "
        f"{r['total_ms']:>9.1f} {r['words']:>6}"
        for r in report["rows"]
    ]
    return "\n".join(lines)
