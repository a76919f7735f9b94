"""The Moving MNIST recipe's training step (``lstmvision bench video``'s: batch 16, its ConvLSTM
forecaster's rollout, the mean squared error, backward and an Adam step, bf16-mixed) of an
earlier commit against this checkout's, in one process, interleaved: this machine's speed drifts
between runs by more than the change being measured. Also the earlier commit with the gates as
whole-map operations (``"before 33"``: its state before the compiled gate kernels of issue 33,
what ``LSTMVISION_NO_EXTENSION=1`` gives).

Run ``python scripts/convlstm_before_after.py REV [--threads N] [--rounds N] [--float32]`` in a
git checkout (``REV``: the commit before the change); prints each variant's median seconds per
step and its speed over the earlier commit's with whole-map gates.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from equations_before_after import import_old

from lstmvision.data.video import parse_size
from lstmvision.tasks import get_task
from lstmvision.tasks.config import resolve_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the commit to compare against (before the change)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of 2 timed steps each")
    parser.add_argument("--float32", action="store_true", help="float32 instead of bf16-mixed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from lstmvision.models import get_model

    task = get_task("next-frame")()
    cfg = resolve_config(task.Config, None, {"dataset": "moving-mnist"})
    task.resolve(cfg)
    name, kwargs = task.model_spec(cfg)
    torch.manual_seed(0)
    length = cfg.input_frames + cfg.output_frames
    frames = torch.rand(16, length, 1, *parse_size(cfg.frame_size))
    with tempfile.TemporaryDirectory() as tmp:
        old = import_old(args.rev, Path(tmp), "models")
        old_fast = import_old(args.rev, Path(tmp), "nn.convlstm_fast")
        models = {"after": get_model(name, **kwargs)}
        for tag in ("before 33", "before"):
            models[tag] = old.get_model(name, **kwargs)
            models[tag].load_state_dict(models["after"].state_dict())
        optimizers = {tag: torch.optim.Adam(m.parameters(), lr=1e-4) for tag, m in models.items()}
        whole_map_gates = old_fast._compiled_gates

        def step(tag: str) -> float:
            # "before 33": the earlier commit without its compiled gates
            old_fast._compiled_gates = (
                (lambda gates, training: None) if tag == "before 33" else whole_map_gates
            )
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.float32):
                predicted = models[tag].rollout(frames, cfg.input_frames)
                loss = F.mse_loss(predicted, frames[:, 1:])
            optimizers[tag].zero_grad()
            loss.backward()
            optimizers[tag].step()
            return time.perf_counter() - start

        precision = "float32" if args.float32 else "bf16-mixed"
        print(
            f"torch {torch.__version__}, {args.threads} thread(s), {precision}, before = {args.rev}"
        )
        times = {tag: [] for tag in models}
        for _ in range(args.rounds):
            for tag in models:
                step(tag)  # the first of each turn untimed
                times[tag] += [step(tag), step(tag)]
        base = statistics.median(times["before 33"])
        for tag, seconds in times.items():
            s = statistics.median(seconds)
            print(f"{tag:10} {s:.3f} s per step ({base / s:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
