"""Task ``adding``: predict reads a sequence file and reports the true sum beside its answer."""

from __future__ import annotations

import pytest
import torch

from lstmvision.data.text import adding_problem
from lstmvision.errors import DataError
from lstmvision.models import get_model
from lstmvision.tasks import get_task
from lstmvision.tasks.adding import read_sequence, write_sequence
from lstmvision.tasks.config import resolve_config


def test_sequence_file_round_trip_and_prediction(tmp_path):
    data = adding_problem(1, 12, seed=3)
    path = write_sequence(tmp_path / "seq.csv", data.x[0])
    assert torch.allclose(read_sequence(path), data.x[0], atol=1e-6)
    task = get_task("adding")()
    cfg = resolve_config(task.Config, None, {"seq_len": 12})
    model = get_model("adding-rnn", cell="gru", hidden_size=4)
    (p,) = task.predict(cfg, model, [path])
    assert p["image"] == str(path) and p["steps"] == 12
    assert p["marked_sum"] == pytest.approx(float(data.y[0]), abs=1e-4)
    with torch.no_grad():
        expected = float(model.eval()(data.x)[0])
    assert p["sum"] == pytest.approx(expected, abs=1e-4)
    assert task.format_prediction(p).startswith(f"{path}: ")


@pytest.mark.parametrize(
    "text,message",
    [("0.5,1\n0.25\n", "not a sequence"), ("0.5,1\n", "at least 2 lines"), ("a,b\n", "not a")],
)
def test_bad_sequence_files_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_sequence(path)
