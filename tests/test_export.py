"""ONNX export (``lstmvision export``): every family's graphs pass ``onnx.checker`` and give
torch's outputs in ONNX Runtime within 1e-4 at batch sizes 1 and 7 and two sequence lengths; the
captioner's two graphs caption photos without torch as torch does; a model that cannot be
exported leaves nothing at ``--out``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx  # the `export` extra; `dev` has it, so CI runs these tests
import pytest
import torch
from typer.testing import CliRunner

import lstmvision
from lstmvision.errors import ConfigError, LstmvisionError
from lstmvision.export import export
from lstmvision.export.onnx_export import parity
from lstmvision.export.runtime import metadata, session, transcribe
from lstmvision.inference.base import Predictor, Source, predictor_class, read_source
from lstmvision.models import get_model

TOL = 1e-4


def cli(*args):
    from lstmvision.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def in_memory(task: str, config: dict, name: str, **kwargs) -> Predictor:
    """A predictor of an untrained model built by name (tiny sizes), as ``load`` gives one."""
    torch.manual_seed(0)
    model = get_model(name, **kwargs)
    return predictor_class(task)(Source(None, "memory", task, config, name, kwargs), model)


def check_exported(source, out: Path, lengths: int = 2) -> list:
    """Export, run onnx.checker on each graph, and assert parity at batches 1 and 7 and at
    ``lengths`` sequence lengths per graph; returns the written graphs."""
    written = export(source, out)
    for g in written:
        onnx.checker.check_model(onnx.load(str(g.path)), full_check=True)
    rows = parity(source, written)
    assert {r["batch"] for r in rows} == {1, 7}
    for g in written:
        assert len({r["length"] for r in rows if r["graph"] == g.path.name}) == lengths
    worst = max(r["max_abs_error"] for r in rows)
    assert worst <= TOL, rows
    return written


def ops(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize(
    "name, lengths, recurrent",
    [
        ("row-lstm-mnist", 1, "LSTM"),  # 28 rows; other lengths: the tiny Row LSTMs below
        ("textline-handwriting", 2, "LSTM"),  # two line widths
        ("char-lm-shakespeare", 2, "LSTM"),  # one step and a 50-character prompt
        ("clip-motion", 2, "LSTM"),  # 10 and 5 frames
    ],
)
def test_shipped_models_export_and_onnx_runtime_matches_torch(name, lengths, recurrent, tmp_path):
    (g,) = check_exported(name, tmp_path / "model.onnx", lengths)
    assert g.path == tmp_path / "model.onnx" and recurrent in ops(g.path)
    meta = metadata(session(g.path))
    assert meta["task"] == read_source(name).task and meta["source"] == name


@pytest.mark.parametrize(
    "size, kwargs, op",
    [
        (12, dict(cell="lstm", num_layers=2, implementation="equations"), "LSTM"),
        (16, dict(cell="lstm", num_layers=2, implementation="equations"), "LSTM"),
        (12, dict(cell="gru", reading="rows+columns"), "GRU"),
        (16, dict(cell="rnn", reading="columns", bidirectional=False), "RNN"),
    ],
)
def test_row_lstm_layers_export_as_onnx_recurrent_operators(size, kwargs, op, tmp_path):
    """Our layers (both directions, stacked, the equations path too) become ONNX's RNN/LSTM/GRU;
    two image sizes are two sequence lengths of the Row LSTM."""
    predictor = in_memory(
        "row-lstm",
        {"dataset": "mnist", "image_size": size},
        "row-lstm",
        image_size=size,
        hidden_size=8,
        **kwargs,
    )
    (g,) = check_exported(predictor, tmp_path / "row.onnx", lengths=1)
    assert op in ops(g.path)
    assert predictor.model.reader.readers[0].implementation == kwargs.get("implementation", "auto")


def test_cnn_classifier_exports(tmp_path):
    predictor = in_memory(
        "cnn", {"dataset": "mnist"}, "lenet5-modern", num_classes=10, in_channels=1
    )
    check_exported(predictor, tmp_path / "cnn.onnx", lengths=1)


@pytest.mark.parametrize(
    "name, kwargs, frames",
    [
        ("convlstm-forecaster", dict(hidden_sizes=(8, 8), patch=4, kernel_size=3), (10, 10)),
        ("convlstm-forecaster", dict(hidden_sizes=(8,), patch=4, kernel_size=3), (4, 6)),
        (
            "convlstm-forecaster",
            dict(hidden_sizes=(8,), patch=4, flow=True, residual=True),
            (10, 10),
        ),
        ("cnn-lstm-forecaster", dict(frame_size=(24, 32), hidden_size=16, width=4), (10, 10)),
    ],
)
def test_forecasters_export_their_rollout(name, kwargs, frames, tmp_path):
    """10 frames -> 10 frames (and 4 -> 6: the rollout is unrolled, so each length is its own
    graph); the ConvLSTM's fast path is replaced by its equations for the export."""
    t_in, t_out = frames
    config = {"dataset": "visp", "input_frames": t_in, "output_frames": t_out}
    config.update(frame_size="24x32", frame_step=1, residual=True, flow=True, motion_augment=1.0)
    config["hidden_size"] = 0
    predictor = in_memory("next-frame", config, name, output_frames=t_out, **kwargs)
    if name == "cnn-lstm-forecaster":  # untrained, it draws below 0: all clamped away
        torch.nn.init.constant_(predictor.model.decoder[-1].bias, 0.5)
    (g,) = check_exported(predictor, tmp_path / "forecast.onnx", lengths=1)
    sess = session(g.path)
    (future,) = sess.run(None, {"frames": np.random.rand(3, t_in, 1, 24, 32).astype(np.float32)})
    assert future.shape == (3, t_out, 1, 24, 32) and future.std() > 0


@pytest.fixture(scope="module")
def caption_graphs(tmp_path_factory):
    out = tmp_path_factory.mktemp("caption") / "caption.onnx"
    return out, export("caption-flickr8k", out)


def test_captioner_exports_an_encoder_and_a_decoder_step(caption_graphs):
    out, written = caption_graphs
    assert [g.path.name for g in written] == ["caption.encoder.onnx", "caption.decoder.onnx"]
    assert not out.exists()
    for g in written:
        onnx.checker.check_model(onnx.load(str(g.path)), full_check=True)
    assert "LSTM" not in ops(written[1].path)  # the decoder is one LSTMCell step: its equations
    rows = parity("caption-flickr8k", written)
    assert max(r["max_abs_error"] for r in rows) <= TOL, rows
    assert {r["length"] for r in rows if r["graph"] == "caption.decoder.onnx"} == {1, 8}


def test_onnx_captions_equal_torch_beam_search_without_torch(caption_graphs, data_root):
    from lstmvision.data.captions import load_photos

    out, _ = caption_graphs
    photos = [str(p.path) for p in load_photos("flickr8k-1k", data_root)["test"][:4]]
    code = (
        "import sys\n"
        "from lstmvision.export.caption_onnx import main\n"
        "rc = main(sys.argv[1:])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(out), *photos, "--json", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    onnx_captions = [json.loads(line)["caption"] for line in done.stdout.splitlines()]
    torch_captions = [r.text for r in lstmvision.load("caption-flickr8k").predict(photos, beam=3)]
    assert onnx_captions == torch_captions


def test_textline_decode_function_reads_the_graph_outputs(tmp_path, data_root):
    """A right-padded batch of real lines through ONNX Runtime, decoded by the small function,
    gives the predictor's greedy texts."""
    from lstmvision.data.lines import Line, load_line, read_labels_tsv

    predictor = lstmvision.load("textline-handwriting")
    (g,) = export(predictor, tmp_path / "lines.onnx")
    lines = read_labels_tsv(data_root / "lines-bronod" / "labels.tsv")[:5]
    images = [load_line(Line(ln.image, ""), predictor.model.height).numpy() for ln in lines]
    assert len({im.shape[1] for im in images}) > 1  # different widths, one padded batch
    texts = transcribe(session(g.path), images)
    assert texts == [r.text for r in predictor.predict([ln.image for ln in lines])]
    assert any(texts)


def test_a_model_that_cannot_be_exported_leaves_nothing_at_out(tmp_path):
    """The camera-motion forecaster's FFT blur and motion fit have no ONNX translation: one
    line, exit 1, no file (not even a temporary one); a file already there is left as it was."""
    from lstmvision.tasks import model_folder

    kwargs = {"hidden_size": 8}
    config = {"dataset": "visp", "input_frames": 2, "output_frames": 1, "frame_size": "16x16"}
    folder = model_folder.save(
        tmp_path / "motion",
        "next-frame",
        config,
        "motion-lstm-forecaster",
        kwargs,
        get_model("motion-lstm-forecaster", **kwargs),
    )
    out = tmp_path / "exports" / "motion.onnx"
    out.parent.mkdir()
    result = cli("export", folder, "--out", out)
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert "cannot export motion-lstm-forecaster" in line and "aten::fft" in line
    assert list(out.parent.iterdir()) == []
    out.write_text("an older export")
    assert cli("export", folder, "--out", out).exit_code == 1
    assert out.read_text() == "an older export" and len(list(out.parent.iterdir())) == 1


def test_bad_out_format_opset_and_task_are_refused(tmp_path):
    assert (
        "does not exist" in cli("export", "row-lstm-mnist", "--out", tmp_path / "no/m.onnx").output
    )
    result = cli("export", "row-lstm-mnist", "--out", tmp_path)
    assert result.exit_code == 1 and "a folder" in result.output
    result = cli("export", "row-lstm-mnist", "--out", tmp_path / "m.onnx", "--format", "tflite")
    assert result.exit_code == 1 and "--format 'tflite'" in result.output
    result = cli("export", "row-lstm-mnist", "--out", tmp_path / "m.onnx", "--opset", "99")
    assert result.exit_code == 1 and "cannot export" in result.output
    text = Predictor(Source(None, "memory", "text-classify", {}), torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="no ONNX export for a 'text-classify' model"):
        export(text, tmp_path / "t.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_missing_onnx_runtime_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(LstmvisionError, match=r"pip install lstmvision\[export\]"):
        export("row-lstm-mnist", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_importing_lstmvision_imports_no_onnx():
    code = (
        "import sys, lstmvision, lstmvision.export, lstmvision.cli\n"
        "print(sorted(m for m in ('onnx', 'onnxruntime') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_bench_export_prints_torch_and_onnx_runtime_latency():
    result = cli("bench", "export", "row-lstm-mnist", "--threads", "1", "--repeats", "3")
    assert result.exit_code == 0, result.output
    header, columns, row = result.output.strip().splitlines()
    assert "1 thread(s) each" in header and columns.split()[-1] == "torch/ORT"
    torch_ms, onnx_ms, ratio = (float(v) for v in row.split()[-3:])
    assert row.startswith("row-lstm-mnist") and torch_ms > 0 and onnx_ms > 0 and ratio > 0


def test_bench_export_columns_fit_long_names_and_print_lines_their_own_kind(data_root):
    result = cli("bench", "export", "next-frame-moving-mnist", "textline-print", "--repeats", "1")
    assert result.exit_code == 0, result.output
    rows = result.output.strip().splitlines()[2:]
    assert [row.split()[:2] for row in rows] == [
        ["next-frame-moving-mnist", "model"],
        ["textline-print", "model"],
    ]
    assert "x1074" in rows[1]  # the UW3 line of median width at the model's height, not bronod's
