"""Every registered task, through the runner: a few steps on a slice of the shared data, the run
folder's contract, then ``evaluate`` and ``predict`` on that folder.

Each task names its own tiny settings (``Task.smoke_overrides``) and a few inputs for predict
(``Task.smoke_inputs``), so a new task is covered here without an edit of this file.
"""

from __future__ import annotations

import json

import pytest
import yaml

from lstmvision.tasks import get_task, list_tasks, runner


def _check_tiny_settings(name: str) -> dict:
    overrides = get_task(name).smoke_overrides
    unknown = set(overrides) - set(get_task(name).Config.__dataclass_fields__)
    assert not unknown, f"{name}: smoke_overrides names unknown config keys {unknown}"
    assert 0 < overrides.get("max_steps", 0) <= 10, f"{name}: smoke_overrides needs max_steps 1-10"
    return overrides


def test_every_task_declares_tiny_settings():
    for name in list_tasks():
        _check_tiny_settings(name)


@pytest.mark.parametrize("name", list_tasks())
def test_task_trains_evaluates_and_predicts(name, data_root, tmp_path):
    run = tmp_path / "run"
    overrides = {**_check_tiny_settings(name), "data_root": str(data_root)}
    result = runner.train(name, overrides, out=run, quiet=True)

    # the run folder's contract (tasks/run_folder.py)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["task"] == name and saved["data_root"] == str(data_root)
    metrics = json.loads((run / "metrics.json").read_text())
    tested = {k: v for k, v in metrics.items() if k.startswith("test_")}
    assert tested and set(metrics) == set(result.metrics)
    assert 0 < metrics["global_step"] <= overrides["max_steps"]
    assert (run / "model.safetensors").stat().st_size > 0
    assert json.loads((run / "model.json").read_text())["name"]
    assert list(run.glob("*.png")), "no picture in the run folder"

    # evaluate reads the folder alone and gives the test scores training wrote
    evaluated = runner.evaluate(run)
    assert set(evaluated) & set(tested) and set(evaluated) <= set(metrics), evaluated
    for key in set(evaluated) & set(tested):
        assert evaluated[key] == pytest.approx(tested[key], rel=1e-4, abs=1e-5), key

    # predict on inputs the task names (none for a task that predicts from its options alone)
    task, cfg, _ = runner.load(run)
    folder = tmp_path / "inputs"
    folder.mkdir()
    inputs = task.smoke_inputs(cfg, folder)
    predictions, errors = runner.predict(run, inputs)
    assert not errors and predictions, errors
    json.dumps(predictions)  # what `predict --json` prints
    assert all(isinstance(task.format_prediction(p), str) for p in predictions)
    if inputs:
        assert {p["image"] for p in predictions} == {str(p) for p in inputs}
