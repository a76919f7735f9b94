"""Gradient norms on a case with a known answer, the adding task, the compare driver, the gates
picture."""

from __future__ import annotations

import shutil

import pytest
import torch
from typer.testing import CliRunner

from lstmvision import cli
from lstmvision.models import get_model
from lstmvision.tasks import runner
from lstmvision.viz.explain import input_gradient_norms, lstm_gates


def test_gradient_norms_of_a_linear_recurrence_fall_geometrically():
    # h_t = relu(w x_t + u h_{t-1}), one unit, loss = h_T: dL/dx_t = w u^(T-t) while everything
    # stays positive
    model = get_model("adding-rnn", cell="rnn", hidden_size=1, input_size=1, nonlinearity="relu")
    w, u, T = 2.0, 0.5, 6
    with torch.no_grad():
        model.rnn.weight_ih_l0.fill_(w), model.rnn.weight_hh_l0.fill_(u)
        model.rnn.bias_ih_l0.zero_(), model.rnn.bias_hh_l0.zero_()
        model.head.weight.fill_(1.0), model.head.bias.zero_()
    x = torch.rand(3, T, 1) + 0.1
    norms = input_gradient_norms(
        model, x, None, lambda pred, _: pred.sum()
    )  # sum over the batch: each row's own
    expected = torch.tensor([w * u ** (T - 1 - t) for t in range(T)])
    assert torch.allclose(norms, expected, atol=1e-6)


def test_lstm_gates_equal_the_layer():
    torch.manual_seed(0)
    layer = get_model("row-lstm", image_size=6, hidden_size=5, bidirectional=False).reader.readers[
        0
    ]
    seq = torch.randn(6, 6)
    gates = lstm_gates(layer, seq)
    assert set(gates) == {"input", "forget", "output", "cell"} and gates["cell"].shape == (6, 5)
    out, _ = layer(seq[None])  # (1, T, H): h_t = o_t * tanh(C_t)
    assert torch.allclose(out[0], gates["output"] * torch.tanh(gates["cell"]), atol=1e-5)
    assert ((gates["forget"] > 0) & (gates["forget"] < 1)).all()


def test_adding_task_and_compare_driver(tmp_path, monkeypatch):
    from lstmvision.studies.compare import compare

    rows = compare(
        tmp_path / "cmp",
        benchmarks=["adding-100"],
        cells=["rnn", "gru"],
        epochs=1,
        limit_train=200,
        log=lambda line: None,
    )
    assert [r["cell"] for r in rows] == ["rnn", "gru"] and all(r["metric"] == "mse" for r in rows)
    assert (
        rows[1]["parameters"] == 3 * (128 * 2 + 128 * 128 + 2 * 128) + 129
    )  # GRU 128 + linear head
    table = (tmp_path / "cmp" / "results.md").read_text()
    assert "adding-100" in table and "s/epoch" in table
    # a later call for one cell keeps the other's finished run in the table, in benchmark/cell order
    rows = compare(
        tmp_path / "cmp",
        benchmarks=["adding-100"],
        cells=["gru"],
        epochs=1,
        limit_train=200,
        log=lambda line: None,
    )
    assert [r["cell"] for r in rows] == ["rnn", "gru"] and rows[0]["limit_train"] == 200
    assert (
        "| adding-100 (first 200 examples) | rnn |" in (tmp_path / "cmp" / "results.md").read_text()
    )
    # a run that another call finishes meanwhile (two calls side by side on one folder) keeps its
    # row
    beside, train = tmp_path / "beside", runner.train

    def train_while_the_other_call_finishes(task, cfg, out, **kwargs):
        shutil.copytree(tmp_path / "cmp" / "adding-100" / "rnn", beside / "adding-100" / "rnn")
        return train(task, cfg, out=out, **kwargs)

    monkeypatch.setattr(runner, "train", train_while_the_other_call_finishes)
    rows = compare(
        beside,
        benchmarks=["adding-100"],
        cells=["gru"],
        epochs=1,
        limit_train=200,
        log=lambda line: None,
    )
    assert [r["cell"] for r in rows] == ["rnn", "gru"]
    assert "| adding-100 (first 200 examples) | rnn |" in (beside / "results.md").read_text()


def test_compare_continues_an_interrupted_run_from_its_checkpoint(tmp_path):
    import lightning as L

    from lstmvision.errors import LstmvisionError
    from lstmvision.studies.compare import compare, overrides

    class StopAfterFirstEpoch(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            raise KeyboardInterrupt

    run = tmp_path / "cmp" / "adding-100" / "rnn"
    cfg = overrides("adding-100", "rnn", 2, 200, None, 0)
    with pytest.raises(LstmvisionError, match="interrupted"):
        runner.train("adding", cfg, out=run, quiet=True, callbacks=[StopAfterFirstEpoch()])
    assert not (run / "metrics.json").exists()
    lines = []
    rows = compare(
        tmp_path / "cmp",
        benchmarks=["adding-100"],
        cells=["rnn"],
        epochs=2,
        limit_train=200,
        log=lines.append,
    )
    assert lines[0] == "continuing adding-100 rnn (2 epochs)" and rows[0]["epochs"] == 2
    # an interrupted run of other settings is trained again from the start
    shutil.rmtree(run)
    with pytest.raises(LstmvisionError, match="interrupted"):
        runner.train("adding", cfg, out=run, quiet=True, callbacks=[StopAfterFirstEpoch()])
    lines.clear()
    rows = compare(
        tmp_path / "cmp",
        benchmarks=["adding-100"],
        cells=["rnn"],
        epochs=1,
        limit_train=200,
        log=lines.append,
    )
    assert lines[0] == "training adding-100 rnn (1 epochs)" and rows[0]["epochs"] == 1


def test_explain_commands(tmp_path, data_root):
    code = CliRunner().invoke(
        cli.app,
        [
            "explain",
            "gradients",
            "--seq-len",
            "20",
            "--steps",
            "3",
            "--hidden-size",
            "8",
            "--out",
            str(tmp_path / "g.png"),
        ],
    )
    assert code.exit_code == 0, code.output
    assert (tmp_path / "g.png").stat().st_size > 0 and "lstm" in code.output
    cfg = {
        "limit_train": 500,
        "max_steps": 5,
        "hidden_size": 8,
        "data_root": str(data_root),
        "batch_size": 50,
    }
    runner.train("row-lstm", cfg, out=tmp_path / "row", quiet=True)
    from lstmvision.data.samples import export_samples

    digit = export_samples("mnist", tmp_path / "digits", 1, "test", data_root)[0]
    result = CliRunner().invoke(
        cli.app,
        [
            "explain",
            "gates",
            str(tmp_path / "row"),
            str(digit),
            "--out",
            str(tmp_path / "gates.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "gates.png").stat().st_size > 0
    result = CliRunner().invoke(cli.app, ["explain", "gates", str(tmp_path / "nope"), str(digit)])
    assert result.exit_code == 1 and "no such run folder" in result.output


def test_adding_lstm_starts_with_forget_bias_one():
    model = get_model("adding-rnn", cell="lstm", hidden_size=4)
    total = model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0  # gate order i, f, g, o
    assert torch.equal(total[4:8], torch.ones(4)) and not torch.equal(total[:4], torch.ones(4))
    plain = get_model("adding-rnn", cell="lstm", hidden_size=4, forget_bias=0.0)
    assert not torch.equal((plain.rnn.bias_ih_l0 + plain.rnn.bias_hh_l0)[4:8], torch.ones(4))
