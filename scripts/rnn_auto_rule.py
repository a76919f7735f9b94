"""The measurements behind ``implementation="auto"``'s rule (lstmvision.nn.recurrent): torch's
kernel against the fast path, training (forward + backward) and inference (forward under
``torch.no_grad``), for the RNN, LSTM and GRU at the benchmark's shapes, a single sequence and
small batches.

Run ``python scripts/rnn_auto_rule.py [--threads N] [--repeats N] [--cells LSTM,GRU]
[--sequences 1,2,3]``; prints milliseconds (median) and torch's time over the fast path's (> 1:
the fast path is faster). ``--sequences`` times batches of that many sequences of the
small-batch shape (200 steps of 64 inputs) instead of the shapes below.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lstmvision.nn import GRU, LSTM, RNN

SHAPES = {  # (batch, steps, inputs)
    "row-mnist": (256, 28, 28),
    "long-sequence": (32, 784, 1),
    "one-sequence": (1, 200, 64),
    "4-sequences": (4, 200, 64),  # small batches, where torch's LSTM used to be the faster
    "16-sequences": (16, 200, 64),
}
CELLS = {"RNN": (RNN, torch.nn.RNN), "LSTM": (LSTM, torch.nn.LSTM), "GRU": (GRU, torch.nn.GRU)}


def _ms(module: torch.nn.Module, x: torch.Tensor, training: bool, repeats: int) -> float:
    """Median milliseconds of one forward (+ backward when ``training``) call."""

    def call() -> None:
        with torch.set_grad_enabled(training):
            module.zero_grad()
            output = module(x)[0]
            if training:
                output.sum().backward()

    for _ in range(2):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cells", default=",".join(CELLS), help="comma list of cells")
    parser.add_argument("--sequences", default="", help="comma list of batch sizes (200 x 64)")
    args = parser.parse_args()
    cells = {name: CELLS[name] for name in args.cells.split(",")}
    shapes = SHAPES
    if args.sequences:
        shapes = {f"{b}-sequences": (int(b), 200, 64) for b in args.sequences.split(",")}
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats}")
    print(f"{'shape':<14} {'cell':<5} {'mode':<9} {'torch ms':>9} {'fast ms':>8} {'ratio':>6}")
    for shape, (batch, steps, size) in shapes.items():
        x = torch.randn(steps, batch, size)
        for cell, (ours, theirs) in cells.items():
            reference = theirs(size, 128)
            fast = ours(size, 128, implementation="fast")
            fast.load_state_dict(reference.state_dict())

            for mode in ("training", "inference"):
                slow = _ms(reference, x, mode == "training", args.repeats)
                quick = _ms(fast, x, mode == "training", args.repeats)
                print(
                    f"{shape:<14} {cell:<5} {mode:<9} {slow:>9.1f} {quick:>8.1f} "
                    f"{slow / quick:>6.2f}"
                )


if __name__ == "__main__":
    main()
