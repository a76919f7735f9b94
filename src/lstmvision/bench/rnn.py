"""Speed of our recurrent layers against torch's: forward + backward time and achieved GFLOP/s.

For each shape and cell (LSTM, GRU) it times ``torch.nn.<cell>``, our ``<cell>`` with
``implementation="auto"`` and with ``"equations"`` (same weights, input without gradient as for a
first layer, one forward + backward of ``output.sum()``), and reports the median milliseconds,
the ratio to torch's time, and the achieved GFLOP/s of the matrix products against this
machine's measured matmul GFLOP/s. The variants take turns in ``ROUNDS`` rounds, so that drifting
machine load hits them alike; within a round each runs its calls back to back after ``warmup``
untimed ones, as in training (alternating single calls would measure each right after another
implementation has reshaped the memory allocator's state, which costs the equations path ~15-20%).

FLOP count (matrix products only): forward ``2·G·H·(I+H)·B·T`` with ``G = 4`` gate blocks for an
LSTM and 3 for a GRU; backward about twice the forward; so ``3x`` forward in all.

Run ``python -m lstmvision.bench.rnn [--repeats N] [--threads N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import torch

from lstmvision.nn import GRU, LSTM

SHAPES = {
    "row-mnist": {"batch": 256, "steps": 28, "input_size": 28, "hidden_size": 128},
    "long-sequence": {"batch": 32, "steps": 784, "input_size": 1, "hidden_size": 128},
}
CELLS = {"LSTM": (torch.nn.LSTM, LSTM, 4), "GRU": (torch.nn.GRU, GRU, 3)}
VARIANTS = ("torch", "auto", "equations")
ROUNDS = 3


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_gflops(size: int = 1024, repeats: int = 5) -> float:
    """This machine's float32 matmul speed: median GFLOP/s of ``size x size`` products."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    return 2 * size**3 / statistics.median(_seconds(lambda: a @ b) for _ in range(repeats)) / 1e9


def layer_flops(gates: int, batch: int, steps: int, input_size: int, hidden_size: int) -> int:
    """Matmul FLOPs of one forward + backward of a one-layer, one-direction recurrent layer."""
    forward = 2 * gates * hidden_size * (input_size + hidden_size) * batch * steps
    return 3 * forward  # backward ~ 2x forward


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other work on the machine skews timings), if known."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _forward_backward(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        module.zero_grad(set_to_none=True)
        output, _ = module(x)
        output.sum().backward()

    return step


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
    times = {name: [] for name in steps}
    rounds = min(ROUNDS, repeats)
    for round_ in range(rounds):
        calls = repeats // rounds + (round_ < repeats % rounds)
        for name, step in steps.items():
            for _ in range(warmup):
                step()
            times[name] += [_seconds(step) for _ in range(calls)]
    return {name: 1e3 * statistics.median(seconds) for name, seconds in times.items()}


def run(
    shapes: dict[str, dict] | None = None,
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = None,
    cells: tuple[str, ...] = tuple(CELLS),
) -> dict:
    """Measure; returns a JSON-able report (see :func:`format_report`).

    Args:
        shapes: name -> ``{"batch", "steps", "input_size", "hidden_size"}``; default
            :data:`SHAPES` (row-MNIST and a 784-step sequence).
        repeats: timed forward+backward calls per variant (the median is reported).
        warmup: untimed calls per variant at the start of each round.
        threads: torch threads during the run (restored after); ``None`` keeps the current.
        cells: among ``"LSTM"``, ``"GRU"``.
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        load_before = _load_average()
        peak = matmul_gflops()
        results = []
        for shape_name, shape in (shapes or SHAPES).items():
            for cell in cells:
                milliseconds = _time_cell(cell, shape, repeats, warmup)
                flops = layer_flops(CELLS[cell][2], **shape)
                for variant in VARIANTS:
                    ms = milliseconds[variant]
                    gflops = flops / ms / 1e6
                    results.append(
                        {
                            "shape": shape_name,
                            **shape,
                            "cell": cell,
                            "variant": variant,
                            "ms": ms,
                            "time_vs_torch": ms / milliseconds["torch"],
                            "gflops": gflops,
                            "fraction_of_matmul_peak": gflops / peak,
                        }
                    )
        return {
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "matmul_gflops": peak,
            "repeats": repeats,
            "results": results,
            "load_average_before": load_before,
            "load_average_after": _load_average(),
        }
    finally:
        torch.set_num_threads(previous_threads)


def _loads(loads: list[float] | None) -> str:
    return "unknown" if loads is None else " ".join(f"{load:.2f}" for load in loads)


def format_report(report: dict) -> str:
    """The report as a text table, one row per shape, cell and variant."""
    lines = [
        f"torch {report['torch_version']}, {report['threads']} thread(s), "
        f"median of {report['repeats']}; "
        f"matmul peak {report['matmul_gflops']:.1f} GFLOP/s (1024x1024 float32); "
        f"load average (1, 5, 15 min) "
        f"before {_loads(report['load_average_before'])}, "
        f"after {_loads(report['load_average_after'])}",
        f"{'shape':<14} {'B':>4} {'T':>4} {'I':>3} {'H':>4} {'cell':<5} {'variant':<10} "
        f"{'ms':>9} {'x torch':>8} {'GFLOP/s':>8} {'% peak':>7}",
    ]
    for row in report["results"]:
        lines.append(
            f"{row['shape']:<14} {row['batch']:>4} {row['steps']:>4} {row['input_size']:>3} "
            f"{row['hidden_size']:>4} {row['cell']:<5} {row['variant']:<10} {row['ms']:>9.2f} "
            f"{row['time_vs_torch']:>8.2f} {row['gflops']:>8.1f} "
            f"{row['fraction_of_matmul_peak']:>7.1%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per variant and round")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report, not the table")
    args = parser.parse_args(argv)
    report = run(repeats=args.repeats, warmup=args.warmup, threads=args.threads)
    print(json.dumps(report, indent=2) if args.json else format_report(report))


if __name__ == "__main__":
    main()
