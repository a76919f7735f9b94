import pytest
from typer.testing import CliRunner

from lstmvision import cli
from lstmvision.errors import ConfigError
from lstmvision.tasks.transfer import SMALL_BELOW, advise


@pytest.mark.parametrize("size,similarity,mode", [
    (100, "high", "codes"), (100, "low", "codes-early"),
    (60000, "high", "finetune-all"), (60000, "low", "finetune-all")])  # fmt: skip
def test_four_scenarios(size, similarity, mode):
    assert advise(size, similarity).mode == mode


def test_threshold_and_bad_values():
    assert advise(SMALL_BELOW - 1, "high").scenario.startswith("(i)")
    assert advise(SMALL_BELOW, "high").scenario.startswith("(ii)")
    with pytest.raises(ConfigError, match="high or low"):
        advise(10, "medium")
    with pytest.raises(ConfigError, match="positive"):
        advise(0, "high")


def test_cli_prints_mode_and_reason():
    result = CliRunner().invoke(cli.app, ["transfer", "advise", "--target-size", "100", "--similarity", "low"])
    assert result.exit_code == 0
    assert "(iii)" in result.output and "recommended mode: codes-early" in result.output and "why:" in result.output
    bad = CliRunner().invoke(cli.app, ["transfer", "advise", "--target-size", "100", "--similarity", "x"])
    assert bad.exit_code == 1 and "high or low" in bad.output
