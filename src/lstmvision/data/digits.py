"""Small grey image-classification data sets: MNIST, Fashion-MNIST, USPS.

MNIST and Fashion-MNIST are torchvision's data sets, pointed at IDX files (plain or ``.gz``) in
``<root>/mnist`` / ``<root>/fashion-mnist`` (the shared layout) or torchvision's own
``<root>/MNIST/raw`` / ``<root>/FashionMNIST/raw``; ``download=True`` keeps torchvision's real
download for online users. USPS is read from ``<root>/usps/usps.h5`` (the common HDF5 copy:
``train/data`` (N, 256) floats in [0, 1], ``train/target``), else from torchvision's ``USPS``
(bz2 files, downloadable).

Everything is returned as whole tensors (uint8 images ``(N, H, W)``, int64 labels ``(N,)``): the
sets are small, and batching tensors is much faster than decoding PIL images one by one.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lstmvision.data.idx import read_idx
from lstmvision.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a user need to know about a data set."""

    name: str
    classes: tuple[str, ...]
    size: int  # images are size x size
    mean: float  # of the training pixels, on the [0, 1] scale
    std: float
    frame: float | None  # fraction of the frame the object's bounding box fills (None: whole frame)
    light_on_dark: bool = True  # strokes/objects are bright on a dark background


DIGITS = tuple(str(d) for d in range(10))
FASHION = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", DIGITS, 28, 0.1307, 0.3081, frame=20 / 28),
    "fashion-mnist": DatasetInfo("fashion-mnist", FASHION, 28, 0.2860, 0.3530, frame=None),
    "usps": DatasetInfo("usps", DIGITS, 16, 0.2545, 0.3846, frame=None),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


class _SharedIDX:
    """Mixin for torchvision's MNIST family: find the IDX files in the shared layout too."""

    shared_folder: str

    @property
    def raw_folder(self) -> str:
        shared = os.path.join(self.root, self.shared_folder)
        return shared if os.path.isdir(shared) else super().raw_folder

    def _find(self, stem: str) -> Path | None:
        for name in (stem, stem + ".gz"):
            path = Path(self.raw_folder) / name
            if path.is_file():
                return path
        return None

    def _stems(self) -> list[str]:
        prefix = "train" if self.train else "t10k"
        return [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]

    def _check_exists(self) -> bool:
        return all(self._find(stem) for stem in self._stems())

    def _load_data(self):
        images_stem, labels_stem = self._stems()
        images = read_idx(self._find(images_stem), expect_ndim=3)
        labels = read_idx(self._find(labels_stem), expect_ndim=1).long()
        if len(images) != len(labels):
            raise DataError(
                f"{self._find(labels_stem)}: {len(labels)} labels for {len(images)} images"
            )
        return images, labels


@functools.cache
def idx_dataset_class(name: str) -> type:
    """torchvision's ``MNIST`` or ``FashionMNIST`` that also finds the shared layout; torchvision
    is imported here, on first use (it costs a second of start-up that predicting never needs)."""
    import torchvision

    base, folder = {
        "mnist": (torchvision.datasets.MNIST, "mnist"),
        "fashion-mnist": (torchvision.datasets.FashionMNIST, "fashion-mnist"),
    }[name]
    return type(base.__name__, (_SharedIDX, base), {"shared_folder": folder})


def _idx_split(cls, info: DatasetInfo, root: Path, train: bool, download: bool):
    probe = cls.__new__(cls)  # only to ask where the files would be, before torchvision raises
    probe.root, probe.train = str(root), train
    if not download and not probe._check_exists():
        raise DataError(
            f"{probe.raw_folder}: {info.name} IDX files not found (expected "
            f"{' and '.join(s + '[.gz]' for s in probe._stems())}); pass --data-root to a folder "
            f"holding {cls.shared_folder}/, or --download to fetch it"
        )
    try:
        ds = cls(str(root), train=train, download=download)
    except DataError:
        raise
    except Exception as e:  # torchvision's download/integrity errors
        raise DataError(f"{probe.raw_folder}: could not load {info.name} ({e})") from None
    return ds.data, ds.targets.long()


def _usps_split(root: Path, train: bool, download: bool):
    split = "train" if train else "test"
    path = root / "usps" / "usps.h5"
    if path.exists():
        import h5py

        try:
            with h5py.File(path, "r") as f:
                data, target = f[split]["data"][:], f[split]["target"][:]
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"{path}: not a readable USPS HDF5 file ({e})") from None
        if data.ndim != 2 or data.shape[1] != 256 or len(data) != len(target):
            raise DataError(f"{path}: {split}/data has shape {data.shape}, expected (N, 256)")
        if target.ndim != 1:
            raise DataError(f"{path}: {split}/target has shape {target.shape}, expected (N,)")
        if data.dtype.kind not in "biuf" or target.dtype.kind not in "biuf":
            raise DataError(
                f"{path}: {split}/data is {data.dtype} and {split}/target {target.dtype}; "
                "expected numbers"
            )
        if len(target) and not 0 <= target.min() <= target.max() <= 9:  # NaN fails too
            raise DataError(f"{path}: {split}/target has labels outside 0..9")
        pixels = data if data.dtype.kind == "f" else data.astype("f4")  # uint8 * 255 would wrap
        images = (torch.from_numpy(pixels.reshape(-1, 16, 16)) * 255).round().clamp(0, 255)
        return images.to(torch.uint8), torch.from_numpy(target).long()
    if not download and not (root / "usps" / ("usps.bz2" if train else "usps.t.bz2")).exists():
        raise DataError(f"{path}: USPS not found; pass --data-root or --download to fetch it")
    import torchvision

    try:
        ds = torchvision.datasets.USPS(str(root / "usps"), train=train, download=download)
    except Exception as e:
        raise DataError(f"{root / 'usps'}: could not load USPS ({e})") from None
    return torch.as_tensor(ds.data), torch.as_tensor(ds.targets).long()


def load_split(name: str, root: str | Path, split: str, download: bool = False):
    """Return ``(images uint8 (N, H, W), labels int64 (N,))`` for ``split`` in train/test."""
    info = dataset_info(name)
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; choose train or test")
    root, train = Path(root), split == "train"
    if not root.is_dir() and not download:
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"{root}: data root {what}; pass --data-root or set LSTMVISION_DATA")
    if name == "usps":
        images, labels = _usps_split(root, train, download)
    else:
        cls = idx_dataset_class(name)
        images, labels = _idx_split(cls, info, root, train, download)
    if images.shape[1:] != (info.size, info.size):
        raise DataError(
            f"{root}: {name} images are {tuple(images.shape[1:])}, expected {info.size}x{info.size}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(info.classes)):
        raise DataError(f"{root}: {name} labels outside 0..{len(info.classes) - 1}")
    return images, labels


def train_val_indices(
    n: int, val_fraction: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into train and validation indices with a fixed permutation.

    The validation part comes from the training split only; the official test split is never used
    for model selection.
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    return perm[n_val:], perm[:n_val]
