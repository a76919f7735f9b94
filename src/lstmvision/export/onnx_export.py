"""``export(source, out)``: a trained model as ONNX graph(s), each checked by ONNX Runtime.

The exporter is torch's TorchScript-based one (``torch.onnx.export(..., dynamo=False)``): it maps
our RNN/LSTM/GRU layers (run on torch's fused kernel, :func:`graphs.exportable`) to ONNX's
``RNN``/``LSTM``/``GRU`` operators, both directions and every layer, and a padded batch with
lengths (the CRNN's ``widths``) to their ``sequence_lens`` input. The newer ``torch.export``-based
exporter (``dynamo=True``, which also needs onnxscript) stops at the data-dependent lengths of
packed sequences, unrolls the equations path into ~2000 nodes, and takes 10-75 s where this one
takes under a second (docs/export.md).

Every file is written under a temporary name beside ``out``, checked (``onnx.checker``, then
ONNX Runtime's outputs against torch's on an example batch) and renamed only then; a model that
cannot be exported, or a graph whose outputs differ, leaves nothing at ``out``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstmvision.errors import ConfigError, LstmvisionError
from lstmvision.export import graphs as G
from lstmvision.export.runtime import META_KEY, require, session
from lstmvision.files import atomic_path, check_output_file

FORMATS = ("onnx",)
DEFAULT_OPSET = 17  # GridSample (the flow forecaster) needs 16; ONNX Runtime 1.18 runs up to 21
TOLERANCE = 1e-4  # |ORT - torch| <= TOLERANCE * (1 + |torch|) on the example batch


@dataclass
class Exported:
    """One written graph: its file, its part (``""``, ``"encoder"`` or ``"decoder"``), the
    names of its inputs and outputs, and ONNX Runtime's largest difference from torch on the
    example batch it was checked on."""

    path: Path
    part: str
    inputs: list[str]
    outputs: list[str]
    check_error: float


def graph_paths(out: str | Path, parts: list[str]) -> list[Path]:
    """Where the graphs go: ``out`` itself for one graph; for the captioner ``NAME.encoder.onnx``
    and ``NAME.decoder.onnx`` beside it (``out`` = ``NAME.onnx``)."""
    out = Path(out)
    if parts == [""]:
        return [out]
    stem = out.name[: -len(".onnx")] if out.name.endswith(".onnx") else out.name
    return [out.with_name(f"{stem}.{part}.onnx") for part in parts]


@contextlib.contextmanager
def _quiet():
    """The exporter's Python warnings off, and what its C++ code prints to file descriptors 1
    and 2 dropped (warnings on packed sequences' shape inference; on an error, the whole traced
    graph): the error itself comes back as an exception."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                os.dup2(null.fileno(), 2)
                yield
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)


def _reason(e: Exception) -> str:
    """One line from an exporter's error (its later lines point at torch's issue tracker)."""
    text = str(e).strip()
    unsupported = re.search(
        r"operator '([^']+)' to ONNX opset version (\d+) is not supported", text
    )
    if unsupported:
        op, version = unsupported.groups()
        return f"torch's ONNX exporter has no translation of {op} (at opset {version})"
    return text.splitlines()[0] if text else type(e).__name__


def max_difference(outputs: list[np.ndarray], reference: tuple[torch.Tensor, ...]) -> float:
    """Largest ``|ort - torch|`` over all outputs (inf where a shape differs or a value is not
    finite)."""
    worst = 0.0
    for got, want in zip(outputs, reference):
        want = want.detach().numpy()
        if got.shape != want.shape or not np.isfinite(got).all():
            return float("inf")
        worst = max(worst, float(np.abs(got.astype(np.float64) - want).max(initial=0.0)))
    return worst


def run_both(graph: G.Graph, sess, batch: int, length: int | None):
    """Torch's and ONNX Runtime's outputs of ``graph`` on its example inputs."""
    inputs = graph.example(batch, length)
    with torch.no_grad():
        reference = graph.module(*inputs)
    reference = reference if isinstance(reference, tuple) else (reference,)
    feed = {name: t.numpy() for name, t in zip(graph.inputs, inputs)}
    return sess.run(graph.outputs, feed), reference


def _write(graph: G.Graph, path: Path, opset: int, meta: dict) -> float:
    """Export ``graph`` to ``path``, add the metadata, check it; returns ORT's difference."""
    import onnx

    batch, length = 2, graph.lengths[0] if graph.lengths else None
    names = set(graph.inputs) | set(graph.outputs)
    dynamic = {k: v for k, v in graph.dynamic.items() if k in names}
    with _quiet():
        torch.onnx.export(
            graph.module,
            graph.example(batch, length),
            str(path),
            dynamo=False,
            input_names=graph.inputs,
            output_names=graph.outputs,
            dynamic_axes=dynamic,
            opset_version=opset,
        )
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps({**meta, "part": graph.part, "info": graph.info})
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    outputs, reference = run_both(graph, session(path), batch, length)
    worst, scale = (
        max_difference(outputs, reference),
        max(float(r.abs().max()) if r.numel() else 0.0 for r in reference),
    )
    if not worst <= TOLERANCE * (1 + scale):
        raise LstmvisionError(
            f"ONNX Runtime's outputs differ from torch's by {worst:.3g} on an example batch"
        )
    return worst


def export(source, out: str | Path, format: str = "onnx", opset: int | None = None):
    """Write the ONNX graph(s) of ``source`` (a shipped model's name, a saved model folder, a run
    folder, or a predictor from :func:`lstmvision.load`) to ``out``; returns the
    :class:`Exported` graphs. One graph per model, two for a captioner (``NAME.encoder.onnx``,
    ``NAME.decoder.onnx`` beside ``out``, see :func:`graph_paths`). A model that cannot be
    exported raises :class:`~lstmvision.errors.LstmvisionError` naming it and why; nothing is
    left at ``out`` then."""
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r}: lstmvision exports {', '.join(FORMATS)}")
    require()
    opset = DEFAULT_OPSET if opset is None else int(opset)
    import lstmvision
    from lstmvision.inference.base import Predictor

    predictor = source if isinstance(source, Predictor) else lstmvision.load(source)
    what = predictor.source.model_name or type(predictor.model).__name__
    named = f"{what} ({source})" if not isinstance(source, Predictor) else what
    parts = G.graphs(predictor)
    paths = graph_paths(out, [g.part for g in parts])
    for path in paths:
        check_output_file(path, example="model.onnx")
    meta = {
        "task": predictor.task,
        "source": str(source) if not isinstance(source, Predictor) else what,
        "opset": opset,
        "lstmvision": lstmvision.__version__,
    }
    written = []
    with contextlib.ExitStack() as files:  # every file renamed into place at the end, or none
        for graph, path in zip(parts, paths):
            tmp = files.enter_context(atomic_path(path))
            try:
                error = _write(graph, tmp, opset, meta)
            except LstmvisionError as e:
                raise LstmvisionError(f"cannot export {named} to ONNX: {e}") from None
            except Exception as e:  # the exporter's errors: unsupported operator, bad opset, ...
                hint = (
                    f" (the default --opset {DEFAULT_OPSET} may do)"
                    if opset < DEFAULT_OPSET
                    else ""
                )
                raise LstmvisionError(
                    f"cannot export {named} to ONNX: {_reason(e)}{hint}"
                ) from None
            written.append(Exported(path, graph.part, graph.inputs, graph.outputs, error))
    return written


def parity(source, exported: list[Exported], batches=(1, 7)) -> list[dict]:
    """ONNX Runtime against torch on the example inputs of each exported graph of ``source`` (a
    predictor, or what :func:`export` takes) at each batch size and at the graph's two sequence
    lengths (its one fixed length where it has none): rows of ``graph``, ``batch``, ``length``,
    ``max_abs_error`` (over all outputs)."""
    import lstmvision
    from lstmvision.inference.base import Predictor

    predictor = source if isinstance(source, Predictor) else lstmvision.load(source)
    rows = []
    for graph, written in zip(G.graphs(predictor), exported):
        sess = session(written.path)
        for length in graph.lengths or (None,):
            for batch in batches:
                outputs, reference = run_both(graph, sess, batch, length)
                rows.append(
                    {
                        "graph": written.path.name,
                        "batch": batch,
                        "length": length,
                        "max_abs_error": max_difference(outputs, reference),
                    }
                )
    return rows
