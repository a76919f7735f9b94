"""The RNN benchmark's report structure (tiny shapes; no timing assertions)."""

import json
import statistics

import pytest
import torch

from lstmvision.bench.rnn import CONV_VARIANTS, VARIANTS, format_report, layer_flops, run

TINY = {"tiny": {"batch": 2, "steps": 3, "input_size": 2, "hidden_size": 4}}


TINY_CONV = {
    "tiny-conv": {"batch": 2, "steps": 2, "input_size": 2, "hidden_size": 3, "size": 4, "kernel": 3}
}


def test_report_structure_and_positive_numbers():
    lines = []
    report = run(
        shapes=TINY, repeats=2, warmup=1, threads=(1, 2), conv_shapes=TINY_CONV, log=lines.append
    )
    json.dumps(report)
    # progress: one line per group as it ends, with its times
    assert [line.split(":")[0] for line in lines] == [f"bench rnn {k}/6" for k in range(1, 7)]
    assert "2 thread(s), tiny-conv ConvLSTM: equations " in lines[-1]
    assert report["torch_version"] == torch.__version__
    assert report["threads"] == [1, 2] and all(v > 0 for v in report["matmul_gflops"].values())
    rows = report["results"]
    expected = [(c, v) for c in ("LSTM", "GRU") for v in VARIANTS] + [
        ("ConvLSTM", v) for v in CONV_VARIANTS
    ]
    for count in (1, 2):
        assert [(r["cell"], r["variant"]) for r in rows if r["threads"] == count] == expected
    for row in rows:
        assert row["shape"] in ("tiny", "tiny-conv") and row["batch"] == 2
        for key in ("ms", "time_vs_torch", "gflops", "fraction_of_matmul_peak"):
            assert row[key] > 0
    assert all(r["time_vs_torch"] == 1 for r in rows if r["variant"] == r["baseline"])
    # each row's share is of the matmul timed in its own group's rounds, one value per group;
    # the peak printed per thread count is the median of the groups'
    for row in rows:
        assert row["fraction_of_matmul_peak"] == pytest.approx(row["gflops"] / row["matmul_gflops"])
    for count in (1, 2):
        groups = {
            (r["shape"], r["cell"]): r["matmul_gflops"] for r in rows if r["threads"] == count
        }
        assert len({r["matmul_gflops"] for r in rows if r["threads"] == count}) == len(groups)
        assert report["matmul_gflops"][str(count)] == statistics.median(groups.values())
    assert {r["baseline"] for r in rows if r["cell"] == "ConvLSTM"} == {"equations"}
    table = format_report(report)
    assert "fast" in table and "ConvLSTM" in table and "2 thread(s)" in table
    assert len(table.splitlines()) == 2 + 2 * 3 + len(rows)
    assert "2 MB pages for torch's large buffers: " + report["huge_pages"] in table


@pytest.mark.parametrize(
    ("mode", "env", "expected"),
    [
        ("always [madvise] never", None, "no (kernel: madvise; THP_MEM_ALLOC_ENABLE unset)"),
        ("always [madvise] never", "1", "yes (kernel: madvise; THP_MEM_ALLOC_ENABLE set)"),
        ("[always] madvise never", None, "yes (kernel: always; THP_MEM_ALLOC_ENABLE unset)"),
        ("always madvise [never]", "1", "no (kernel: never; THP_MEM_ALLOC_ENABLE set)"),
    ],
)
def test_huge_pages_reads_the_kernel_mode_and_torchs_switch(
    tmp_path, monkeypatch, mode, env, expected
):
    from lstmvision.bench import rnn

    setting = tmp_path / "enabled"
    setting.write_text(mode + "\n")
    monkeypatch.setattr(rnn, "THP_SETTING", setting)
    if env is None:
        monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    else:
        monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", env)
    assert rnn.huge_pages() == expected
    monkeypatch.setattr(rnn, "THP_SETTING", tmp_path / "absent")
    assert rnn.huge_pages().startswith("unknown")


def test_threads_are_restored():
    before = torch.get_num_threads()
    run(shapes=TINY, repeats=1, warmup=0, threads=1, cells=("GRU",), conv_shapes={})
    assert torch.get_num_threads() == before


def test_flop_count():
    # forward 2*G*H*(I+H)*B*T, backward twice that
    assert layer_flops(4, batch=1, steps=1, input_size=1, hidden_size=1) == 3 * 2 * 4 * 2


def test_features_bench_reports_positive_throughput():
    from lstmvision.bench import features

    report = features.run(models=("lenet5", "resnet8-small"), repeats=1)
    assert [r["model"] for r in report["rows"]] == ["lenet5", "resnet8-small"]
    assert all(r["images_per_s"] > 0 for r in report["rows"])
    assert "images/s" in features.format_report(report)


def test_convlstm_flop_count():
    # times k² positions of the kernel and size² of the map
    assert layer_flops(4, batch=1, steps=1, input_size=1, hidden_size=1, size=2, kernel=3) == (
        3 * 2 * 4 * 2 * 4 * 9
    )
