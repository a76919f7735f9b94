"""`lstmvision bench caption`: the latency report of captioning one real photo."""

import json

from typer.testing import CliRunner

from lstmvision import cli
from lstmvision.bench import caption


def test_caption_latency_report(data_root):
    photo = next((data_root / "flickr8k-1k" / "images").glob("*.jpg"))
    report = caption.run(photo, model_name="show-and-tell", beams=(1, 2), repeats=1)
    assert [r["beam"] for r in report["rows"]] == [1, 2]
    for row in report["rows"]:
        assert row["total_ms"] > 0 and row["encode_ms"] > 0 and 1 <= row["words"] <= 19
    assert "beam" in caption.format_report(report)


def test_caption_bench_command(data_root):
    result = CliRunner().invoke(
        cli.app,
        [
            "bench",
            "caption",
            "--beam",
            "2",
            "--repeats",
            "1",
            "--json",
            "--data-root",
            str(data_root),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["rows"][0]["beam"] == 2 and report["model"].startswith(
        "untrained show-attend-tell"
    )
