"""Per-item latency of a model in torch and in ONNX Runtime (``lstmvision bench export``).

The model is exported to a temporary folder (:func:`lstmvision.export.export`); each of its
graphs then runs on one item, in torch (the same module the graph was traced from, in inference
mode) and in an ONNX Runtime CPU session, both with ``threads`` threads; the figure is the median
of ``repeats`` runs after ``warmup`` runs. One item: an image (classifiers), the bronod line of
median width (text lines; an array of that size without the shared data), a photo for the
encoder and one decoding step of the beam's rows for the captioner, then a whole beam-3 caption
of a Flickr8k photo (encoder + search: torch's :meth:`Captioner.caption` against
:mod:`lstmvision.export.caption_onnx`), one character step for the char-LM, one clip, one 10 -> 10
forecast. The ratio is torch's time over ONNX Runtime's (above 1: ONNX Runtime is faster).
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lstmvision.data import resolve_data_root


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median_ms(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _item(predictor, graph, data_root) -> tuple:
    """One item's inputs for ``graph`` (batch 1; the beam's rows for a decoder step)."""
    import torch

    from lstmvision.bench.load import example_input

    if predictor.task == "textline":
        from lstmvision.data.lines import Line, load_line

        item = example_input("textline", data_root, predictor.config.get("dataset"))
        line = (
            load_line(Line(item, ""), predictor.model.height)
            if isinstance(item, Path)
            else torch.zeros(predictor.model.height, 600)
        )  # (H, W)
        return line[None, None], torch.tensor([line.shape[1]])
    if predictor.task == "char-lm":
        return graph.example(1, 1)  # one character step of sampling
    if graph.part == "decoder":
        return graph.example(int(graph.info["beam"]), 1)  # the beam's rows
    return graph.example(1, None)


def _shape(inputs: tuple) -> str:
    return "x".join(str(n) for n in inputs[0].shape)


def _caption_row(predictor, onnx_path: Path, threads: int, repeats: int, warmup: int, root):
    """A whole caption (encoder and beam search) of one Flickr8k photo in each runtime."""
    import torch

    from lstmvision.bench.load import example_input
    from lstmvision.data.captions import load_photo
    from lstmvision.export.caption_onnx import OnnxCaptioner

    model, cfg = predictor.model, predictor.config
    beam, max_len = int(cfg.get("beam", 3)), int(cfg["max_len"])
    penalty = float(cfg["length_penalty"])
    pixels = load_photo(example_input("caption", root), model.image_size)[None]  # (1, 3, S, S)

    @torch.inference_mode()
    def in_torch():
        model.caption(model.encode(pixels.float() / 255), beam, max_len, penalty)

    captioner = OnnxCaptioner(onnx_path, threads)
    array = pixels.numpy()
    return {
        "graph": f"caption, beam {beam}",
        "input": "photo " + "x".join(str(n) for n in pixels.shape),
        "torch_ms": _median_ms(in_torch, repeats, warmup),
        "onnx_ms": _median_ms(lambda: captioner.caption_pixels(array, beam), repeats, warmup),
    }


def run(
    names: list[str],
    threads: int = 2,
    repeats: int = 50,
    warmup: int = 5,
    data_root=None,
) -> dict:
    """Median milliseconds per item of each model's graphs in torch and in ONNX Runtime."""
    import onnxruntime
    import torch

    import lstmvision
    from lstmvision.export import export
    from lstmvision.export.graphs import graphs
    from lstmvision.export.runtime import session

    root = resolve_data_root(data_root)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        for name in names:
            predictor = lstmvision.load(name)
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "model.onnx"
                written = export(predictor, out)
                for graph, exported in zip(graphs(predictor), written):
                    inputs = _item(predictor, graph, root)
                    sess = session(exported.path, threads)
                    feed = {n: t.numpy() for n, t in zip(graph.inputs, inputs)}

                    @torch.inference_mode()
                    def in_torch(module=graph.module, inputs=inputs):
                        module(*inputs)

                    rows.append(
                        {
                            "model": name,
                            "graph": graph.part or "model",
                            "input": f"{graph.inputs[0]} {_shape(inputs)}",
                            "torch_ms": _median_ms(in_torch, repeats, warmup),
                            "onnx_ms": _median_ms(
                                lambda s=sess, f=feed: s.run(None, f), repeats, warmup
                            ),
                        }
                    )
                if predictor.task == "caption":
                    row = _caption_row(predictor, out, threads, repeats, warmup, root)
                    rows.append({"model": name, **row})
    finally:
        torch.set_num_threads(before)
    for row in rows:
        row["ratio"] = row["torch_ms"] / row["onnx_ms"]
    return {
        "cpu": cpu_name(),
        "threads": threads,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "repeats": repeats,
        "warmup": warmup,
        "rows": rows,
    }


def format_report(report: dict) -> str:
    lines = [
        f"per item, torch {report['torch']} vs ONNX Runtime {report['onnxruntime']} on CPU "
        f"({report['cpu']}), {report['threads']} thread(s) each; median of "
        f"{report['repeats']} runs after {report['warmup']} warm-ups",
    ]
    rows = report["rows"]
    # columns as wide as their longest entry, and a space apart
    m = max([len("model")] + [len(r["model"]) for r in rows]) + 2
    i = max([len("input")] + [len(r["input"]) for r in rows]) + 2
    lines.append(
        f"{'model':{m}}{'graph':16}{'input':{i}}{'torch ms':>10}{'ORT ms':>10}{'torch/ORT':>11}"
    )
    for r in rows:
        lines.append(
            f"{r['model']:{m}}{r['graph']:16}{r['input']:{i}}"
            f"{r['torch_ms']:>10.2f}{r['onnx_ms']:>10.2f}{r['ratio']:>11.2f}"
        )
    return "\n".join(lines)
