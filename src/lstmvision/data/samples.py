"""Export a few images of a data set as PNG files (for trying ``lstmvision predict``)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from lstmvision.data.digits import dataset_info, load_split
from lstmvision.data.root import resolve_data_root
from lstmvision.errors import ConfigError


def export_samples(
    name: str, out: Path, count: int = 8, split: str = "test", data_root=None
) -> list[Path]:
    if count < 1:
        raise ConfigError(f"--count {count}: must be at least 1")
    info = dataset_info(name)
    images, labels = load_split(name, resolve_data_root(data_root), split)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(min(count, len(images))):
        label = info.classes[int(labels[i])].replace("/", "-").replace(" ", "-")
        path = out / f"{name}-{split}-{i:05d}-{label}.png"
        Image.fromarray(images[i].numpy(), mode="L").save(path)
        paths.append(path)
    return paths
