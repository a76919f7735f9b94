from dataclasses import dataclass

import pytest

from lstmvision.errors import ConfigError
from lstmvision.models import get_model, list_models, register_model
from lstmvision.tasks import get_task, list_tasks, register_task
from lstmvision.tasks.config import TrainConfig, field_docs, resolve_config


def test_registries_list_and_get():
    assert "row-lstm" in list_models()
    assert "row-lstm" in list_tasks()
    assert get_task("row-lstm").name == "row-lstm"
    assert get_model("row-lstm", hidden_size=8).head.out_features == 10


def test_duplicates_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("row-lstm")(lambda: None)
    with pytest.raises(ValueError, match="already registered"):
        register_task("row-lstm")(object)


def test_unknown_names_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model 'nope'.*row-lstm"):
        get_model("nope")
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        get_task("nope")


@dataclass
class Cfg(TrainConfig):
    hidden: int = 4
    """hidden units"""
    mode: str = "a"


def test_precedence_default_file_cli(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("hidden: 8\nlr: 0.5\nbatch-size: 7\n")
    cfg = resolve_config(Cfg, f, {"lr": "0.25"})
    assert (cfg.hidden, cfg.lr, cfg.batch_size, cfg.mode) == (8, 0.25, 7, "a")


def test_unknown_key_and_bad_value_rejected(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("hiden: 8\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown config key 'hiden'"):
        resolve_config(Cfg, f)
    with pytest.raises(ConfigError, match="hidden='x' is not a valid int"):
        resolve_config(Cfg, None, {"hidden": "x"})
    f.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        resolve_config(Cfg, f)
    with pytest.raises(ConfigError, match="not found"):
        resolve_config(Cfg, tmp_path / "missing.yaml")


def test_literal_choices_checked():
    cfg_cls = get_task("row-lstm").Config
    with pytest.raises(ConfigError, match="cell='cnn' is not one of rnn, lstm, gru"):
        resolve_config(cfg_cls, None, {"cell": "cnn"})


def test_field_docs_feed_help():
    docs = field_docs(Cfg)
    assert docs["hidden"] == "hidden units" and "learning rate" in docs["lr"]
