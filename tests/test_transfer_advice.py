import pytest
from typer.testing import CliRunner

from lstmvision import cli
from lstmvision.errors import ConfigError
from lstmvision.tasks.transfer import SMALL_BELOW, advise


@pytest.mark.parametrize(
    "size,similarity,mode",
    [
        (100, "high", "codes"),
        (100, "low", "codes-early"),
        (60000, "high", "finetune-all"),
        (60000, "low", "finetune-all"),
    ],
)
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
    result = CliRunner().invoke(
        cli.app, ["transfer", "advise", "--target-size", "100", "--similarity", "low"]
    )
    assert result.exit_code == 0
    assert (
        "(iii)" in result.output
        and "recommended mode: codes-early" in result.output
        and "why:" in result.output
    )
    bad = CliRunner().invoke(
        cli.app, ["transfer", "advise", "--target-size", "100", "--similarity", "x"]
    )
    assert bad.exit_code == 1 and "high or low" in bad.output


def test_codes_file_round_trips(data_root, tmp_path):
    import torch
    from safetensors.torch import load_file

    from lstmvision.data import load_split
    from lstmvision.models import get_model
    from lstmvision.tasks import run_folder

    run = tmp_path / "run"
    run.mkdir()
    model = get_model("lenet5-modern", num_classes=10, in_channels=1)
    run_folder.save_model(run, "lenet5-modern", {"num_classes": 10, "in_channels": 1}, model)
    out = tmp_path / "codes.safetensors"
    result = CliRunner().invoke(
        cli.app,
        [
            "transfer",
            "codes",
            str(run),
            "--dataset",
            "usps",
            "--split",
            "test",
            "--limit",
            "50",
            "--data-root",
            str(data_root),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = load_file(out)
    images, labels = load_split("usps", data_root, "test")
    assert saved["codes"].shape == (50, 84) and torch.equal(saved["labels"], labels[:50])
    with torch.no_grad():
        expected = run_folder.load_model(run).forward_features(
            images[:50].unsqueeze(1).float() / 255
        )
    assert torch.allclose(saved["codes"], expected, atol=1e-6)
