"""The figures of docs/export.md: ONNX Runtime against torch for every exported family at batch
sizes 1 and 7 and two sequence lengths, and the beam-3 captions of the 125 test photos of
flickr8k-1k by ONNX Runtime (``lstmvision.export.caption_onnx``, no torch) against torch's.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/export_report.py [--data-root ../shared/data]

No next-frame model is shipped: its rows are untrained models of the recipe's kinds at small
sizes (the graph is the same code whatever the weights), as is the Row LSTM's second length.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import lstmvision
from lstmvision.data import resolve_data_root
from lstmvision.data.captions import load_photos
from lstmvision.export import export
from lstmvision.export.caption_onnx import OnnxCaptioner
from lstmvision.export.onnx_export import parity
from lstmvision.inference.base import Source, predictor_class
from lstmvision.models import get_model


def untrained(task: str, config: dict, name: str, label: str, **kwargs):
    model = get_model(name, **kwargs)
    if name == "cnn-lstm-forecaster":  # untrained, it draws frames below 0, all clamped away
        torch.nn.init.constant_(model.decoder[-1].bias, 0.5)
    predictor = predictor_class(task)(Source(None, "memory", task, config, name, kwargs), model)
    return label, predictor


def sources() -> list[tuple[str, object]]:
    frames = dict(dataset="visp", frame_size="24x32", frame_step=1, residual=True, flow=True)
    frames.update(motion_augment=1.0, hidden_size=0)
    small = dict(hidden_sizes=(16, 16), patch=4, kernel_size=3)
    return [
        *((name, name) for name in lstmvision.pretrained.names()),
        untrained(
            "row-lstm",
            {"dataset": "mnist", "image_size": 16},
            "row-lstm",
            "row-lstm, 16 rows (untrained)",
            image_size=16,
            hidden_size=32,
        ),
        untrained(
            "next-frame",
            {**frames, "input_frames": 10, "output_frames": 10},
            "convlstm-forecaster",
            "convlstm-forecaster 10->10 (untrained)",
            **small,
        ),
        untrained(
            "next-frame",
            {**frames, "input_frames": 5, "output_frames": 5},
            "convlstm-forecaster",
            "convlstm-forecaster 5->5 (untrained)",
            output_frames=5,
            **small,
        ),
        untrained(
            "next-frame",
            {**frames, "input_frames": 10, "output_frames": 10},
            "cnn-lstm-forecaster",
            "cnn-lstm-forecaster 10->10 (untrained)",
            frame_size=(24, 32),
            hidden_size=64,
        ),
    ]


def parity_table(folder: Path) -> list[str]:
    lines = [
        "| model | graph | length | batch 1 | batch 7 |",
        "|---|---|---|---|---|",
    ]
    for label, source in sources():
        rows = parity(source, export(source, folder / "model.onnx"))
        for graph in dict.fromkeys(r["graph"] for r in rows):
            for length in dict.fromkeys(r["length"] for r in rows if r["graph"] == graph):
                errors = {
                    r["batch"]: r["max_abs_error"]
                    for r in rows
                    if r["graph"] == graph and r["length"] == length
                }
                shown = "fixed" if length is None else str(length)
                lines.append(f"| {label} | {graph} | {shown} | {errors[1]:.1e} | {errors[7]:.1e} |")
    return lines


def caption_agreement(folder: Path, data_root) -> str:
    photos = [p.path for p in load_photos("flickr8k-1k", resolve_data_root(data_root))["test"]]
    export("caption-flickr8k", folder / "caption.onnx")
    start = time.perf_counter()
    captioner = OnnxCaptioner(folder / "caption.onnx", threads=torch.get_num_threads())
    by_onnx = [captioner.caption(p, beam=3) for p in photos]
    onnx_s = time.perf_counter() - start
    start = time.perf_counter()
    by_torch = [r.text for r in lstmvision.load("caption-flickr8k").predict(photos, beam=3)]
    torch_s = time.perf_counter() - start
    same = sum(a == b for a, b in zip(by_onnx, by_torch))
    return (
        f"identical beam-3 captions, ONNX Runtime vs torch: {same} of {len(photos)} test photos "
        f"(ONNX Runtime {onnx_s:.1f} s, torch {torch_s:.1f} s, {torch.get_num_threads()} "
        "thread(s))"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="the shared data folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(parity_table(Path(tmp))))
        print()
        print(caption_agreement(Path(tmp), args.data_root))


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the untrained models' weights
    main()
