"""Feature-extraction throughput: images per second through ``forward_features`` of each CNN.

Each model runs in eval mode without gradients on a batch of random images at a realistic size:
the small models and LeNet at 28x28 grey (MNIST), the ImageNet architectures at 224x224 RGB.
"""

from __future__ import annotations

import statistics
import time

import torch

from lstmvision.models import get_model

SMALL = ("lenet5", "lenet5-modern", "resnet8-small", "resnet20-small", "vgg-small", "alexnet-small")
IMAGENET = ("alexnet", "vgg11", "resnet18", "resnet50", "efficientnet-lite0")


def _case(name: str) -> tuple[dict, tuple[int, int, int]]:
    if name in SMALL:
        return dict(num_classes=10, in_channels=1), (1, 28, 28)
    weights = {"efficientnet-lite0": {"weights": None}}.get(name, {})
    return dict(num_classes=1000, in_channels=3, **weights), (3, 224, 224)


@torch.no_grad()
def images_per_second(name: str, batch: int, repeats: int) -> float:
    kwargs, shape = _case(name)
    model = get_model(name, **kwargs).eval()
    x = torch.rand(batch, *shape)
    model.forward_features(x)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.forward_features(x)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def run(models=SMALL + IMAGENET, repeats: int = 5) -> dict:
    rows = []
    for name in models:
        kwargs, shape = _case(name)
        batch = 256 if name in SMALL else 16
        rows.append(
            {
                "model": name,
                "input": "x".join(map(str, shape)),
                "batch": batch,
                "images_per_s": round(images_per_second(name, batch, repeats), 1),
            }
        )
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "rows": rows,
    }


def format_report(report: dict) -> str:
    lines = [
        f"torch {report['torch']}, {report['threads']} thread(s), median of {report['repeats']}",
        f"{'model':20} {'input':>10} {'batch':>6} {'images/s':>10}",
    ]
    lines += [
        f"{r['model']:20} {r['input']:>10} {r['batch']:>6} {r['images_per_s']:>10.1f}"
        for r in report["rows"]
    ]
    return "\n".join(lines)
