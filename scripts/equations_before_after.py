"""Our layers of an earlier commit against this checkout's, in one process, interleaved with
torch's kernel: forward + backward of ``LSTM``/``GRU(implementation=...)`` (the equations path
by default, or the fast path, whose kernels the earlier copy builds under its own name) at the
``lstmvision bench rnn`` shapes. One process and interleaved rounds, because this machine's speed
drifts between runs by more than the change being measured.

Run ``python scripts/equations_before_after.py REV [--implementation fast] [--threads N]
[--rounds N]`` in a git checkout (``REV``: the commit before the change); prints the median
milliseconds and each time over torch's.
"""

from __future__ import annotations

import argparse
import importlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lstmvision.bench.rnn import SHAPES

ROOT = Path(__file__).resolve().parents[1]


def import_old(rev: str, into: Path, module: str = "nn.recurrent"):
    """``lstmvision.<module>`` of ``rev``, importable beside ours as ``lstmvision_old``."""
    package = into / "lstmvision_old"
    if package.exists():  # extracted by an earlier call
        return importlib.import_module(f"lstmvision_old.{module}")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src/lstmvision"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    package = into / "lstmvision_old"
    (into / "src" / "lstmvision").rename(package)
    for path in package.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\blstmvision\.", "lstmvision_old.", text)
        path.write_text(text.replace("from lstmvision import", "from lstmvision_old import"))
    sys.path.insert(0, str(into))
    return importlib.import_module(f"lstmvision_old.{module}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the commit to compare against (before the change)")
    parser.add_argument("--implementation", default="equations", choices=("equations", "fast"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of 3 timed calls each")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from lstmvision.nn import recurrent as new

    with tempfile.TemporaryDirectory() as tmp:
        old = import_old(args.rev, Path(tmp))
        print(
            f"torch {torch.__version__}, {args.threads} thread(s), {args.implementation}, "
            f"before = {args.rev}"
        )
        for cell in ("LSTM", "GRU"):
            for name, shape in SHAPES.items():
                batch, steps, inputs = shape["batch"], shape["steps"], shape["input_size"]
                hidden = shape["hidden_size"]
                modules = {"torch": getattr(torch.nn, cell)(inputs, hidden)}
                for tag, module in (("before", old), ("after", new)):
                    ours = getattr(module, cell)(inputs, hidden, implementation=args.implementation)
                    ours.load_state_dict(modules["torch"].state_dict())
                    modules[tag] = ours
                x = torch.randn(steps, batch, inputs)
                times = {tag: [] for tag in modules}
                for _ in range(args.rounds):
                    for tag, module in modules.items():
                        for call in range(4):  # the first of each turn untimed
                            start = time.perf_counter()
                            module(x)[0].sum().backward()
                            if call:
                                times[tag].append(time.perf_counter() - start)
                ms = {tag: 1e3 * statistics.median(t) for tag, t in times.items()}
                print(
                    f"{cell:4} {name:13} torch {ms['torch']:7.1f} ms   "
                    f"before {ms['before']:7.1f} ({ms['before'] / ms['torch']:.2f}x)   "
                    f"after {ms['after']:7.1f} ({ms['after'] / ms['torch']:.2f}x)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
