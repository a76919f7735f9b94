"""Task ``clip-classify``: one label per video clip (many-to-one): LRCN against frame averaging.

Data sets (``--dataset``):

* ``motion-mnist``: one MNIST digit moving left or right in a 64x64 frame (see
  :func:`lstmvision.data.moving_mnist.motion_mnist`): the label is in the motion only, so an
  order-blind model (``--model frame-average``) stays at chance. ``train_size`` / ``val_size`` /
  ``test_size`` fixed clips: training and validation from MNIST's training digits (validation
  from a held-out ``val_fraction`` of them), test from MNIST's test digits, seeds 0 / 1 / 2015
  (plus ``--seed`` for training).
* a PATH: a UCF101-layout folder (one sub-folder of clips per class; ``--split-lists`` names the
  folder of ``classInd.txt`` / ``trainlist01.txt`` / ``testlist01.txt``, else groups 1-7 are the
  test clips). Validation is a fixed ``val_fraction`` of the training clips. Clips are decoded when
  read (``num_workers`` processes), ``num_frames`` frames each, resized to ``frame_size``.

Model: ``lrcn`` (a registered CNN on each frame -> our LSTM/GRU -> linear head) or
``frame-average`` (the same CNN, features averaged over frames -> linear head). ``--pretrained``
loads ImageNet weights into the backbone (efficientnet-lite0 offline; torchvision's online), and
``--freeze-backbone`` trains only the recurrence and the head.

``predict RUN_DIR clip.mp4`` prints the class and the probabilities of every class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lstmvision.data import load_split, resolve_data_root, train_val_indices
from lstmvision.data.moving_mnist import MOTION_CLASSES, motion_mnist
from lstmvision.data.video import parse_size, ucf101_index
from lstmvision.errors import ConfigError
from lstmvision.files import write_text
from lstmvision.tasks.base import SplitLoaders, Task, register_task
from lstmvision.tasks.classification import ClassifierModule
from lstmvision.tasks.config import TrainConfig, config_to_dict

SEEDS = {"train": 0, "val": 1, "test": 2015}
PRETRAINED = {"efficientnet-lite0": "imagenet"}  # others: torchvision's "DEFAULT" (needs internet)


@dataclass
class ClipConfig(TrainConfig):
    dataset: str = "motion-mnist"
    """motion-mnist, or a UCF101-layout folder (class sub-folders of clips)"""
    split_lists: Optional[str] = None
    """folder of classInd.txt, trainlist01.txt, testlist01.txt (UCF101 layout)"""
    model: Literal["lrcn", "frame-average"] = "lrcn"
    """lrcn (CNN -> LSTM/GRU -> head) or frame-average (CNN -> mean over frames -> head)"""
    backbone: str = "lenet5-modern"
    """registered CNN applied to every frame (see `lstmvision models`)"""
    pretrained: bool = False
    """ImageNet weights for the backbone (efficientnet-lite0 offline)"""
    freeze_backbone: bool = False
    """keep the backbone's weights fixed"""
    cell: Literal["lstm", "gru"] = "lstm"
    """recurrent cell of lrcn"""
    hidden_size: int = 128
    """lrcn: recurrent units"""
    dropout: float = 0.0
    """dropout before the head"""
    num_frames: int = 10
    """frames per clip"""
    sampling: Literal["uniform", "every"] = "uniform"
    """videos: frames spread over the clip, or every --frame-step-th from the start"""
    frame_step: int = 1
    """videos with --sampling every: the step"""
    frame_size: str = "32x32"
    """HEIGHTxWIDTH of the frames given to the CNN"""
    grey: bool = True
    """grey frames (else RGB)"""
    train_size: int = 4000
    """motion-mnist: training clips"""
    val_size: int = 500
    """motion-mnist: validation clips"""
    test_size: int = 1000
    """motion-mnist: test clips"""
    epochs: int = 2
    batch_size: int = 32
    lr: float = 2e-3
    grad_clip: float = 1.0
    """clip the gradient norm (0: off)"""


class VideoClips(Dataset):
    """``(clip (T, C, H, W) float in [0, 1], label)``, decoded from ``(path, label)`` when read."""

    def __init__(self, items: list[tuple[Path, int]], cfg: ClipConfig):
        self.items, self.cfg = items, cfg

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        return load_clip(path, self.cfg), label


def load_clip(path, cfg: ClipConfig) -> torch.Tensor:
    """A video file as the task's clip ``(T, C, H, W)`` floats in [0, 1]."""
    from lstmvision.inference.clip import clip_tensor

    return clip_tensor(Path(path), config_to_dict(cfg))


def motion_clips(digits: torch.Tensor, count: int, seed: int, cfg: ClipConfig) -> TensorDataset:
    clips, labels = motion_mnist(digits.numpy(), count, seed, cfg.num_frames)  # (N, T, 64, 64)
    x = torch.from_numpy(clips).float().div_(255).flatten(0, 1).unsqueeze(1)  # (N*T, 1, 64, 64)
    size = parse_size(cfg.frame_size)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(
            x, size=size, mode="bilinear", antialias=True, align_corners=False
        ).clamp_(0, 1)
    if not cfg.grey:
        x = x.expand(-1, 3, -1, -1)
    return TensorDataset(
        x.reshape(count, cfg.num_frames, *x.shape[1:]).contiguous(), torch.from_numpy(labels)
    )


def dataset_classes(cfg: ClipConfig) -> list[str]:
    if cfg.dataset == "motion-mnist":
        return list(MOTION_CLASSES)
    return ucf101_index(cfg.dataset, cfg.split_lists, "train")[1]


class ClipData(SplitLoaders, L.LightningDataModule):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.cfg, self.sets, self.classes = cfg, {}, []

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        cfg = self.cfg
        if cfg.dataset == "motion-mnist":
            root = resolve_data_root(cfg.data_root)
            train, _ = load_split("mnist", root, "train", download=cfg.download)
            test, _ = load_split("mnist", root, "test", download=cfg.download)
            train_idx, val_idx = train_val_indices(len(train), cfg.val_fraction)
            count = cfg.limit_train or cfg.train_size
            self.sets = {
                "train": motion_clips(train[train_idx], count, SEEDS["train"] + cfg.seed, cfg),
                "val": motion_clips(train[val_idx], cfg.val_size, SEEDS["val"], cfg),
                "test": motion_clips(test, cfg.test_size, SEEDS["test"], cfg),
            }
            self.classes = list(MOTION_CLASSES)
            return
        items, self.classes = ucf101_index(cfg.dataset, cfg.split_lists, "train")
        test, _ = ucf101_index(cfg.dataset, cfg.split_lists, "test")
        train_idx, val_idx = train_val_indices(len(items), cfg.val_fraction)
        train_items = [items[i] for i in train_idx][: cfg.limit_train or None]
        val_items = [items[i] for i in val_idx] or train_items[
            :1
        ]  # a tiny set: validate on a training clip
        self.sets = {
            "train": VideoClips(train_items, cfg),
            "val": VideoClips(val_items, cfg),
            "test": VideoClips(test, cfg),
        }
        if not test:
            raise ConfigError(f"{cfg.dataset}: no test clip (groups 1-7, or testlist01.txt)")


@register_task("clip-classify")
class ClipClassifyTask(Task):
    name = "clip-classify"
    summary = "video clip classifier: CNN per frame -> LSTM (LRCN) or frame averaging; many-to-one"
    Config = ClipConfig
    smoke_overrides = {
        "train_size": 16,
        "val_size": 8,
        "test_size": 8,
        "num_frames": 4,
        "frame_size": "16x16",
        "hidden_size": 8,
        "batch_size": 8,
        "max_steps": 2,
    }
    monitor, monitor_mode = "val_accuracy", "max"

    def model_spec(self, cfg: ClipConfig):
        if cfg.num_frames < 1:
            raise ConfigError(f"--num-frames {cfg.num_frames}: a clip needs at least 1 frame")
        parse_size(cfg.frame_size)
        if (
            cfg.pretrained
            and cfg.backbone not in PRETRAINED
            and not cfg.backbone.startswith(("resnet", "vgg", "alexnet"))
        ):
            raise ConfigError(f"--pretrained: no ImageNet weights for {cfg.backbone}")
        classes = dataset_classes(cfg)
        kwargs = dict(
            num_classes=len(classes),
            backbone=cfg.backbone,
            in_channels=1 if cfg.grey else 3,
            dropout=cfg.dropout,
        )
        if cfg.backbone == "efficientnet-lite0":
            kwargs["backbone_kwargs"] = {
                "weights": None
            }  # the weights, if any, are loaded by build_model
        if cfg.model == "lrcn":
            kwargs.update(hidden_size=cfg.hidden_size, cell=cfg.cell)
        return cfg.model, kwargs

    def build_model(self, cfg: ClipConfig):
        from lstmvision.models import get_model

        name, kwargs = self.model_spec(cfg)
        if cfg.pretrained:
            kwargs["backbone_kwargs"] = {"weights": PRETRAINED.get(cfg.backbone, "DEFAULT")}
        model = get_model(name, **kwargs)
        if cfg.freeze_backbone:
            model.cnn.requires_grad_(False)
        return model

    def datamodule(self, cfg) -> ClipData:
        return ClipData(cfg)

    def module(self, cfg, model) -> ClassifierModule:
        frozen = [model.cnn] if cfg.freeze_backbone else []
        return ClassifierModule(model, len(dataset_classes(cfg)), cfg.lr, frozen=frozen)

    def save_extras(self, cfg, model, datamodule, run_dir: Path) -> list[Path]:
        """classes.json: the class names in the order of the model's outputs (read by predict)."""
        path = run_dir / "classes.json"
        write_text(path, json.dumps(datamodule.classes))
        return [path]

    def pictures(self, cfg, model, datamodule, run_dir: Path) -> list[Path]:
        if not isinstance(datamodule.sets["test"], TensorDataset):
            return []
        loader = DataLoader(datamodule.sets["test"], batch_size=cfg.batch_size)
        return _pictures(model, loader, datamodule.classes, run_dir, f"{self.name} {cfg.model}")

    def predict(self, cfg, model, inputs, **options):
        from lstmvision.inference.clip import ClipPredictor

        predictor = ClipPredictor.from_task(self.name, config_to_dict(cfg), model, self.run_dir)
        return [r.to_dict() for r in predictor.predict(list(inputs))]

    def smoke_inputs(self, cfg, folder: Path) -> list[Path]:
        return [resolve_data_root(cfg.data_root) / "video" / "ucf101_ApplyEyeMakeup_sample.avi"]

    def format_prediction(self, p: dict) -> str:
        ranked = sorted(p["probabilities"].items(), key=lambda kv: -kv[1])[:5]
        others = ", ".join(f"{c} {q:.1%}" for c, q in ranked)
        return f"{p['image']}: {p['label']} ({p['confidence']:.1%}; {others})"


def _pictures(model, loader, classes, run_dir: Path, title: str) -> list[Path]:
    """Confusion matrix and a grid of test clips (each shown by its last frame) with predictions."""
    from lstmvision.viz.classification import classification_pictures

    last_frames = lambda clips: clips[:, -1]  # (N, T, C, H, W) -> (N, C, H, W)
    return classification_pictures(model, loader, classes, run_dir, title, shown=last_frames)
