"""Data sets, image loading and data-root resolution (floor 1: knows no model or task)."""

from lstmvision.data.digits import (
    DATASETS,
    DatasetInfo,
    dataset_info,
    load_split,
    train_val_indices,
)
from lstmvision.data.images import load_grey_image, open_image
from lstmvision.data.root import resolve_data_root

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "dataset_info",
    "load_split",
    "train_val_indices",
    "load_grey_image",
    "open_image",
    "resolve_data_root",
]
