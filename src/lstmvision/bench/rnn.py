"""Speed of our recurrent layers against torch's: forward + backward time and achieved GFLOP/s.

For each shape and cell (LSTM, GRU) it times ``torch.nn.<cell>``, our ``<cell>`` with
``implementation="auto"``, ``"equations"`` and ``"fast"`` (same weights, input without gradient
as for a first layer, one forward + backward of ``output.sum()``), and a ConvLSTM layer at the
Moving MNIST recipe's size with ``"equations"`` and ``"fast"`` (torch has no ConvLSTM; its rows
are compared with the equations path). It reports the median milliseconds, the ratio to torch's
time, and the achieved GFLOP/s of the matrix products (convolutions) against this machine's
measured matmul GFLOP/s, at 1 and at 2 threads. The variants take turns in ``ROUNDS`` rounds, so
that drifting machine speed hits them alike, and so does the matmul that gives the peak: it is
timed in the same rounds as each group of rows (a shared machine's matmul speed was seen to drift
by a quarter between runs, which moved every "% peak" with it); within a round each runs its
calls back to back after ``warmup`` untimed ones, as in training (alternating single calls would
measure each right after another implementation has reshaped the memory allocator's state, which
costs the equations path ~15-20%).

FLOP count (matrix products only): forward ``2·G·H·(I+H)·B·T`` with ``G = 4`` gate blocks for an
LSTM and 3 for a GRU (times ``k²·height·width`` for the ConvLSTM); backward about twice the
forward; so ``3x`` forward in all.

Run ``python -m lstmvision.bench.rnn [--repeats N] [--threads 1,2] [--json]`` (or ``lstmvision bench
rnn``); each group's times are printed to stderr as it ends (a minute or more in all), the report
to stdout at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lstmvision.console import say
from lstmvision.nn import GRU, LSTM, ConvLSTM

SHAPES = {
    "row-mnist": {"batch": 256, "steps": 28, "input_size": 28, "hidden_size": 128},
    "long-sequence": {"batch": 32, "steps": 784, "input_size": 1, "hidden_size": 128},
}
# the first ConvLSTM layer of recipes/next-frame/moving-mnist.yaml: 64x64 frames in 8x8 patches
CONV_SHAPES = {
    "moving-mnist": {
        "batch": 16,
        "steps": 10,
        "input_size": 64,
        "hidden_size": 128,
        "size": 8,
        "kernel": 3,
    },
}
CELLS = {"LSTM": (torch.nn.LSTM, LSTM, 4), "GRU": (torch.nn.GRU, GRU, 3)}
VARIANTS = ("torch", "auto", "equations", "fast")
CONV_VARIANTS = ("equations", "fast")
ROUNDS = 3


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


PEAK_SIZE = 1024  # the matmul that measures the peak: PEAK_SIZE x PEAK_SIZE, float32


def _matmul() -> Callable[[], object]:
    a, b = torch.randn(PEAK_SIZE, PEAK_SIZE), torch.randn(PEAK_SIZE, PEAK_SIZE)
    return lambda: a @ b


def _gflops(milliseconds: float) -> float:
    """GFLOP/s of one ``PEAK_SIZE`` matmul that took ``milliseconds``."""
    return 2 * PEAK_SIZE**3 / milliseconds / 1e6


def layer_flops(
    gates: int,
    batch: int,
    steps: int,
    input_size: int,
    hidden_size: int,
    size: int = 1,
    kernel: int = 1,
) -> int:
    """Matmul FLOPs of one forward + backward of a one-layer, one-direction recurrent layer (a
    ConvLSTM's: ``size x size`` maps, ``kernel x kernel`` convolutions)."""
    forward = 2 * gates * hidden_size * (input_size + hidden_size) * batch * steps
    return 3 * forward * size**2 * kernel**2  # backward ~ 2x forward


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other work on the machine skews timings), if known."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def huge_pages() -> str:
    """Whether torch's large allocations get 2 MB pages here (they change these timings: a
    long sequence's buffers are tens of MB, and each 4 KB page costs a fault at first touch).

    The kernel's mode (``always``: yes; ``never``: no; ``madvise``: only where asked) and torch's
    ``THP_MEM_ALLOC_ENABLE``, which asks for buffers of 2 MB and more (read by torch once, at its
    first allocation)."""
    try:
        mode = THP_SETTING.read_text().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "unknown (no transparent huge pages setting)"
    asked = os.environ.get("THP_MEM_ALLOC_ENABLE", "") not in ("", "0")
    used = mode == "always" or (mode == "madvise" and asked)
    return (
        f"{'yes' if used else 'no'} (kernel: {mode}; THP_MEM_ALLOC_ENABLE "
        f"{'set' if asked else 'unset'})"
    )


def _forward_backward(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        module.zero_grad(set_to_none=True)
        output, _ = module(x)
        output.sum().backward()

    return step


def _time_steps(steps: dict[str, Callable[[], None]], repeats: int, warmup: int) -> dict:
    """Median milliseconds of each forward+backward call, the variants taking turns in rounds;
    also of the peak's matmul (key ``"matmul"``), timed in the same rounds."""
    steps = {**steps, "matmul": _matmul()}
    times = {name: [] for name in steps}
    rounds = min(ROUNDS, repeats)
    for round_ in range(rounds):
        calls = repeats // rounds + (round_ < repeats % rounds)
        for name, step in steps.items():
            for _ in range(warmup):
                step()
            times[name] += [_seconds(step) for _ in range(calls)]
    return {name: 1e3 * statistics.median(seconds) for name, seconds in times.items()}


def _time_cell(cell: str, shape: dict, repeats: int, warmup: int) -> dict[str, float]:
    """Median forward+backward milliseconds of each variant for one cell and shape."""
    torch_cls, our_cls, _ = CELLS[cell]
    reference = torch_cls(shape["input_size"], shape["hidden_size"])
    modules = {"torch": reference}
    for implementation in VARIANTS[1:]:
        modules[implementation] = our_cls(
            shape["input_size"], shape["hidden_size"], implementation=implementation
        )
        modules[implementation].load_state_dict(reference.state_dict())
    x = torch.randn(shape["steps"], shape["batch"], shape["input_size"])  # (T, B, I)
    steps = {name: _forward_backward(module, x) for name, module in modules.items()}
    return _time_steps(steps, repeats, warmup)


def _time_convlstm(shape: dict, repeats: int, warmup: int) -> dict[str, float]:
    """Median forward+backward milliseconds of a ConvLSTM layer on each path."""
    modules = {}
    for implementation in CONV_VARIANTS:
        modules[implementation] = ConvLSTM(
            shape["input_size"],
            shape["hidden_size"],
            shape["kernel"],
            implementation=implementation,
        )
        modules[implementation].load_state_dict(modules[CONV_VARIANTS[0]].state_dict())
    size = shape["size"]
    x = torch.randn(shape["batch"], shape["steps"], shape["input_size"], size, size)
    steps = {name: _forward_backward(module, x) for name, module in modules.items()}
    return _time_steps(steps, repeats, warmup)


def _rows(shape_name, shape, cell, milliseconds, flops, baseline) -> list[dict]:
    """Report rows of one group of variants; ``milliseconds`` includes the peak's ``"matmul"``."""
    milliseconds = dict(milliseconds)
    peak = _gflops(milliseconds.pop("matmul"))
    rows = []
    for variant, ms in milliseconds.items():
        gflops = flops / ms / 1e6
        rows.append(
            {
                "shape": shape_name,
                **shape,
                "cell": cell,
                "variant": variant,
                "ms": ms,
                "time_vs_torch": ms / milliseconds[baseline],
                "baseline": baseline,
                "gflops": gflops,
                "fraction_of_matmul_peak": gflops / peak,
                "matmul_gflops": peak,
            }
        )
    return rows


def run(
    shapes: dict[str, dict] | None = None,
    repeats: int = 10,
    warmup: int = 2,
    threads: tuple[int, ...] | int | None = (1, 2),
    cells: tuple[str, ...] = tuple(CELLS),
    conv_shapes: dict[str, dict] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Measure; returns a JSON-able report (see :func:`format_report`).

    Args:
        shapes: name -> ``{"batch", "steps", "input_size", "hidden_size"}``; default
            :data:`SHAPES` (row-MNIST and a 784-step sequence).
        repeats: timed forward+backward calls per variant (the median is reported).
        warmup: untimed calls per variant at the start of each round.
        threads: torch thread counts to measure at, in turn (restored after); ``None`` keeps the
            current one.
        cells: among ``"LSTM"``, ``"GRU"``.
        conv_shapes: ConvLSTM shapes (:data:`CONV_SHAPES` by default; ``{}`` for none).
        log: called with one line per measured group as it ends, ``k/n`` and its times (default:
            printed to stderr, as the whole run takes a minute or more).
    """
    log = log or say
    previous_threads = torch.get_num_threads()
    counts = (
        [previous_threads]
        if threads is None
        else [threads]
        if isinstance(threads, int)
        else list(threads)
    )
    load_before = _load_average()
    results, peaks = [], {}
    shapes = shapes or SHAPES
    conv_shapes = CONV_SHAPES if conv_shapes is None else conv_shapes
    total, done = len(counts) * (len(shapes) * len(cells) + len(conv_shapes)), 0

    def measured(count, rows) -> None:
        nonlocal done
        done += 1
        results.extend({"threads": count, **row} for row in rows)
        times = ", ".join(f"{row['variant']} {row['ms']:.1f}" for row in rows)
        log(
            f"bench rnn {done}/{total}: {count} thread(s), {rows[0]['shape']} {rows[0]['cell']}: "
            f"{times} ms"
        )

    try:
        for count in counts:
            torch.set_num_threads(count)
            for shape_name, shape in shapes.items():
                for cell in cells:
                    milliseconds = _time_cell(cell, shape, repeats, warmup)
                    flops = layer_flops(CELLS[cell][2], **shape)
                    measured(count, _rows(shape_name, shape, cell, milliseconds, flops, "torch"))
            for shape_name, shape in conv_shapes.items():
                milliseconds = _time_convlstm(shape, repeats, warmup)
                flops = layer_flops(4, **shape)
                rows = _rows(shape_name, shape, "ConvLSTM", milliseconds, flops, "equations")
                measured(count, rows)
            peaks[count] = statistics.median(
                row["matmul_gflops"] for row in results if row["threads"] == count
            )
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "torch_version": torch.__version__,
        "threads": counts,
        "matmul_gflops": {str(count): peak for count, peak in peaks.items()},
        "repeats": repeats,
        "results": results,
        "load_average_before": load_before,
        "load_average_after": _load_average(),
        "huge_pages": huge_pages(),
    }


def _loads(loads: list[float] | None) -> str:
    return "unknown" if loads is None else " ".join(f"{load:.2f}" for load in loads)


def format_report(report: dict) -> str:
    """The report as text tables, one per thread count, one row per shape, cell and variant
    (``x base``: the time over torch's, or over the equations path's for the ConvLSTM)."""
    lines = [
        f"torch {report['torch_version']}, median of {report['repeats']}; "
        f"load average (1, 5, 15 min) "
        f"before {_loads(report['load_average_before'])}, "
        f"after {_loads(report['load_average_after'])}",
        f"2 MB pages for torch's large buffers: {report['huge_pages']}",
    ]
    for count in report["threads"]:
        lines += [
            "",
            f"{count} thread(s): matmul peak {report['matmul_gflops'][str(count)]:.1f} GFLOP/s "
            "(1024x1024 float32, timed in each group's rounds; median)",
            f"{'shape':<14} {'B':>4} {'T':>4} {'I':>3} {'H':>4} {'cell':<8} {'variant':<10} "
            f"{'ms':>9} {'x base':>7} {'GFLOP/s':>8} {'% peak':>7}",
        ]
        for row in report["results"]:
            if row["threads"] != count:
                continue
            lines.append(
                f"{row['shape']:<14} {row['batch']:>4} {row['steps']:>4} {row['input_size']:>3} "
                f"{row['hidden_size']:>4} {row['cell']:<8} {row['variant']:<10} "
                f"{row['ms']:>9.2f} {row['time_vs_torch']:>7.2f} {row['gflops']:>8.1f} "
                f"{row['fraction_of_matmul_peak']:>7.1%}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per variant and round")
    parser.add_argument(
        "--threads", default="1,2", help="comma list of torch thread counts to measure at"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report, not the table")
    args = parser.parse_args(argv)
    threads = tuple(int(count) for count in args.threads.split(","))
    report = run(repeats=args.repeats, warmup=args.warmup, threads=threads)
    print(json.dumps(report, indent=2) if args.json else format_report(report))


if __name__ == "__main__":
    main()
