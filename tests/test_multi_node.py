"""Training past one machine: a 2-node job launched as two torchrun node ranks on 127.0.0.1
(gloo, one process each); both ranks end with the same weights and rank 0 writes the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

NODE = """
import sys
from lightning.pytorch.callbacks import Callback
from safetensors.torch import save_file
from lstmvision.tasks import runner

out, data_root, weights = sys.argv[1:4]

class SaveWeights(Callback):
    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().contiguous() for k, v in pl_module.model.state_dict().items()}
        save_file(state, f"{weights}/rank{trainer.global_rank}.safetensors")

overrides = {
    "num_nodes": 2, "strategy": "ddp", "accelerator": "cpu", "devices": "1",
    "limit_train": 640, "max_steps": 6, "batch_size": 32, "hidden_size": 8,
    "data_root": data_root,
}
runner.train("row-lstm", overrides, out=out, quiet=True, callbacks=[SaveWeights()])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_under_torchrun_end_with_the_same_weights(data_root, tmp_path):
    script = tmp_path / "node.py"
    script.write_text(NODE)
    run, weights = tmp_path / "run", tmp_path / "weights"
    weights.mkdir()
    torchrun = Path(sys.executable).with_name("torchrun")
    port = str(free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LSTMVISION_RUN_DIR", None)
    nodes = [
        subprocess.Popen(
            [
                str(torchrun),
                "--nnodes",
                "2",
                "--node-rank",
                str(rank),
                "--nproc-per-node",
                "1",
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                port,
                str(script),
                str(run),
                str(data_root),
                str(weights),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    logs = [node.communicate(timeout=400)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    a, b = (load_file(weights / f"rank{r}.safetensors") for r in (0, 1))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 6 and 0 <= metrics["test_accuracy"] <= 1
    saved = load_file(run / "model.safetensors")  # 6 steps, no validation: the final weights
    assert metrics["checkpoint"] == "final weights" and all((saved[k] == a[k]).all() for k in a)
