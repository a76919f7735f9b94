"""Shared pieces for image-classification tasks: tensor data module, Lightning module, hooks
(the pictures: :mod:`lstmvision.viz.classification`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, Optional

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from lstmvision.data import dataset_info, load_split, resolve_data_root
from lstmvision.data.transforms import random_shift, resize_images
from lstmvision.tasks.base import SplitSteps, Task
from lstmvision.tasks.config import TrainConfig, config_to_dict
from lstmvision.tasks.schedule import one_cycle


class TensorImageData(L.LightningDataModule):
    """Whole-tensor image data (uint8 ``(N, H, W)`` or ``(N, C, H, W)``), served as floats in
    [0, 1].

    ``load(split)`` returns ``(images, labels)`` for ``"train"`` or ``"test"``; validation is a
    fixed ``val_fraction`` of the training split (never the test split). ``epoch_size`` draws
    that many training examples per epoch (a fresh permutation each time, repeated for a small
    set).

    ``encode(fn)`` replaces every split's images by ``fn(images)`` once (e.g. the "CNN codes" of a
    frozen feature extractor), so an epoch costs only what trains; ``image_loader`` still serves
    the images themselves (for pictures).
    """

    def __init__(
        self,
        load,
        batch_size: int,
        val_fraction: float,
        limit_train: int | None = None,
        num_workers: int = 0,
        image_size: int | None = None,
        epoch_size: int | None = None,
    ):
        super().__init__()
        self.load, self.batch_size, self.num_workers = load, batch_size, num_workers
        self.val_fraction, self.limit_train, self.image_size = val_fraction, limit_train, image_size
        self.epoch_size = epoch_size
        self.sets: dict[str, TensorDataset] = {}
        self.images: dict[str, TensorDataset] = {}  # the image sets, when ``sets`` hold encodings
        self.encoder = None

    def _dataset(self, images: torch.Tensor, labels: torch.Tensor) -> TensorDataset:
        if images.dim() == 3:
            images = images.unsqueeze(1)  # (N, 1, H, W)
        return TensorDataset(resize_images(images.float().div_(255), self.image_size), labels)

    def setup(self, stage: str | None = None) -> None:
        from lstmvision.data import train_val_indices

        if stage in (None, "fit", "validate") and "train" not in self.sets:
            images, labels = self.load("train")
            train_idx, val_idx = train_val_indices(len(images), self.val_fraction)
            if self.limit_train:
                train_idx = train_idx[: self.limit_train]
            self.sets["train"] = self._dataset(images[train_idx], labels[train_idx])
            self.sets["val"] = self._dataset(images[val_idx], labels[val_idx])
        if stage in (None, "test") and "test" not in self.sets:
            self.sets["test"] = self._dataset(*self.load("test"))
        if self.encoder is not None:
            self.encode(self.encoder)

    @torch.no_grad()
    def encode(self, fn, batch_size: int = 256) -> None:
        """Replace each set-up split's images by ``fn(images)`` (batched, no gradients), once."""
        self.encoder = fn
        for split, data in self.sets.items():
            if split in self.images:
                continue
            images, labels = data.tensors
            codes = torch.cat(
                [fn(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
            )
            self.images[split], self.sets[split] = data, TensorDataset(codes, labels)

    def image_loader(self, split: str) -> DataLoader:
        """The split's images (not their encodings), in order."""
        return DataLoader(self.images.get(split, self.sets[split]), batch_size=self.batch_size)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.sets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        if self.epoch_size:
            sampler = torch.utils.data.RandomSampler(
                self.sets["train"], num_samples=self.epoch_size
            )
            return DataLoader(
                self.sets["train"],
                batch_size=self.batch_size,
                sampler=sampler,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
            )
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class ClassifierModule(SplitSteps, L.LightningModule):
    """Cross-entropy training of any ``(B, ...) -> (B, num_classes)`` model.

    AdamW, or SGD with ``momentum`` (``optimizer="sgd"``), with ``weight_decay``, under a one-cycle
    learning-rate schedule over the whole run; logs ``{train,val,test}_loss`` and
    ``{train,val,test}_accuracy``. ``augment`` transforms training batches only.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        lr: float,
        weight_decay: float = 0.0,
        augment=None,
        optimizer: str = "adamw",
        momentum: float = 0.9,
        loss: str = "ce",
        body_lr_scale: float = 1.0,
        frozen: list[nn.Module] = (),
        codes: bool = False,
    ):
        super().__init__()
        if optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be adamw or sgd, not {optimizer!r}")
        self.model, self.lr, self.weight_decay, self.augment = model, lr, weight_decay, augment
        self.optimizer_name, self.momentum, self.body_lr_scale = optimizer, momentum, body_lr_scale
        self.frozen = list(
            frozen
        )  # kept in eval mode: frozen batch-norm statistics stay as they are
        self.codes = (
            codes  # batches hold the model's features (TensorImageData.encode): train the head only
        )
        if codes and augment is not None:
            raise ValueError("augmentation does not apply to precomputed codes")
        # "ce": softmax classifier; "hinge": multi-class linear SVM loss (Crammer-Singer margins)
        self.criterion = {"ce": nn.CrossEntropyLoss(), "hinge": nn.MultiMarginLoss()}[loss]
        self.acc = nn.ModuleDict(
            {
                f"{s}_acc": MulticlassAccuracy(num_classes, average="micro")
                for s in ("train", "val", "test")
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(x) if self.codes else self.model(x)

    def _step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        if split == "train" and self.augment is not None:
            x = self.augment(x)
        logits = self(x)  # (B, num_classes)
        loss = self.criterion(logits, y)
        self.acc[f"{split}_acc"](logits, y)
        on_step = split == "train"
        self.log(
            f"{split}_loss",
            loss,
            on_step=on_step,
            on_epoch=True,
            prog_bar=True,
            sync_dist=not on_step,
        )
        self.log(
            f"{split}_accuracy",
            self.acc[f"{split}_acc"],
            on_step=False,
            on_epoch=True,
            prog_bar=split != "train",
        )
        return loss

    def on_train_epoch_start(self):
        for module in self.frozen:
            module.eval()

    def _param_groups(self) -> list[dict]:
        """The head at ``lr``; the rest of the trainable body at ``lr * body_lr_scale``."""
        head = getattr(self.model, "get_classifier", lambda: None)()
        head_ids = {id(p) for p in head.parameters()} if head is not None else set()
        trainable = [p for p in self.parameters() if p.requires_grad]
        body = [p for p in trainable if id(p) not in head_ids]
        groups = [
            {"params": [p for p in trainable if id(p) in head_ids], "lr": self.lr},
            {"params": body, "lr": self.lr * self.body_lr_scale},
        ]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self):
        groups = self._param_groups()
        if self.optimizer_name == "sgd":
            opt = torch.optim.SGD(
                groups, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
        else:
            opt = torch.optim.AdamW(groups, lr=self.lr, weight_decay=self.weight_decay)
        return one_cycle(self, opt)


@dataclass
class ImageClassificationConfig(TrainConfig):
    """Keys every image-classification task shares (MNIST, Fashion-MNIST, USPS)."""

    dataset: Literal["mnist", "fashion-mnist", "usps"] = "mnist"
    """data set: mnist, fashion-mnist or usps"""
    optimizer: Literal["adamw", "sgd"] = "adamw"
    """optimizer (one-cycle learning-rate schedule either way)"""
    momentum: float = 0.9
    """SGD momentum"""
    weight_decay: float = 0.0
    """weight decay"""
    grad_clip: float = 0.0
    """clip the gradient norm (0: off)"""
    shift: int = 0
    """training augmentation: random translation of up to this many pixels (0: off)"""
    loss: Literal["ce", "hinge"] = "ce"
    """ce (softmax classifier) or hinge (multi-class linear SVM loss)"""
    image_size: Optional[int] = None
    """resize the images to this many pixels square (default: the data set's own size)"""
    epoch_size: Optional[int] = None
    """training examples drawn per epoch (default: the training set once; more repeats a set)"""


class ImageClassificationTask(Task):
    """Data, training, pictures and prediction shared by the image classifiers; a subclass gives
    ``model_spec`` (its models take images in [0, 1] and normalise them themselves)."""

    Config = ImageClassificationConfig
    monitor, monitor_mode = "val_accuracy", "max"

    def datamodule(self, cfg) -> TensorImageData:
        load = partial(
            load_split, cfg.dataset, resolve_data_root(cfg.data_root), download=cfg.download
        )
        return TensorImageData(
            load,
            cfg.batch_size,
            cfg.val_fraction,
            cfg.limit_train,
            cfg.num_workers,
            cfg.image_size,
            cfg.epoch_size,
        )

    def module(self, cfg, model) -> ClassifierModule:
        augment = partial(random_shift, pad=cfg.shift) if cfg.shift else None
        return ClassifierModule(
            model,
            len(dataset_info(cfg.dataset).classes),
            cfg.lr,
            cfg.weight_decay,
            augment,
            optimizer=cfg.optimizer,
            momentum=cfg.momentum,
            loss=cfg.loss,
            body_lr_scale=self.body_lr_scale(cfg),
            frozen=self.frozen(cfg, model),
            codes=self.trains_on_codes(cfg),
        )

    def trains_on_codes(self, cfg) -> bool:
        """True: the data module holds the frozen model's features (see ``bind``); only the head
        trains."""
        return False

    def bind(self, cfg, model, datamodule) -> None:
        if self.trains_on_codes(cfg):
            datamodule.encode(model.eval().forward_features)

    def frozen(self, cfg, model) -> list[nn.Module]:
        """Modules that do not train (kept in eval mode); none unless a task transfers."""
        return []

    def body_lr_scale(self, cfg) -> float:
        """Learning-rate factor for everything but the classifier head."""
        return 1.0

    def pictures(self, cfg, model, datamodule, run_dir: Path):
        from lstmvision.viz.classification import classification_pictures

        info = dataset_info(cfg.dataset)
        return classification_pictures(
            model,
            datamodule.image_loader("test"),
            info.classes,
            run_dir,
            title=f"{self.name} {cfg.dataset}",
        )

    @torch.no_grad()
    def predict(self, cfg, model, inputs, **options):
        from lstmvision.inference.classify import ImagePredictor

        predictor = ImagePredictor.from_task(self.name, config_to_dict(cfg), model, self.run_dir)
        return [r.to_dict() for r in predictor.predict(list(inputs))]

    def format_prediction(self, prediction: dict) -> str:
        return f"{prediction['image']}: {prediction['label']} ({prediction['confidence']:.1%})"

    def smoke_inputs(self, cfg, folder: Path) -> list[Path]:
        from lstmvision.data.samples import export_samples

        return export_samples(cfg.dataset, folder, count=2, data_root=cfg.data_root)
