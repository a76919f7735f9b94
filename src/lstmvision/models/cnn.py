"""Convolutional image classifiers: LeNet-5 as the seed text describes it and a modern LeNet-5,
torchvision's AlexNet, VGG and ResNet, and small variants that train on 28-32 px images on a CPU.

Every model takes ``(B, C, H, W)`` images in [0, 1] and normalises them itself
(``(x - mean) / std``, stored as buffers, one value or one per channel), and offers::

    forward_features(x) -> (B, num_features)  pooled, flattened features
    forward_head(f)     -> (B, num_classes)   logits
    forward(x)          =  forward_head(forward_features(x))
    get_classifier()    -> the head module (what forward_head applies)
    reset_classifier(n)    a fresh n-way last layer (pretrained hidden dense layers are kept)
    stages()            -> [stem, stage 1, ...]: with the head, they hold every parameter

For every model but LeNet-5 the stages also chain: ``feature_map(x)`` runs them in turn on the
prepared input and gives the last convolutional map ``(B, C, h, w)``. :func:`layer_summary` and
:func:`format_summary` list a model's layers with output shapes and parameter counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from lstmvision.errors import ConfigError
from lstmvision.models import register_model
from lstmvision.nn.pooling import TrainableSubsampling

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Classifier(nn.Module):
    """Shared by every model here: the normalisation buffers and ``forward = head(features)``."""

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float], channels: int):
        super().__init__()
        self.register_buffer("mean", _per_channel(mean, channels, "mean"))
        self.register_buffer("std", _per_channel(std, channels, "std"))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _per_channel(value: float | Sequence[float], channels: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32).reshape(-1, 1, 1)  # (1 or C, 1, 1)
    if len(t) not in (1, channels):
        raise ConfigError(
            f"{name} has {len(t)} values; give one, or one per input channel ({channels})"
        )
    return t


# ---------------------------------------------------------------------------------------- LeNet-5


@register_model("lenet5")
class LeNet5(_Classifier):
    """LeNet-5 (LeCun et al. 1998) as the seed text describes it; ``(B, C, <=32, <=32)`` images.

    ======  ===========================================  ============  ======================
    layer   operation (32x32 input)                      output        parameters (grey input)
    ======  ===========================================  ============  ======================
    C1      conv 5x5, 6 maps, tanh                        6x28x28       6*(1*25+1)    =   156
    S2      sigmoid(a_c * sum_{2x2 window} x + b_c)       6x14x14       6*2           =    12
    C3      conv 5x5, 16 maps, tanh                       16x10x10      16*(6*25+1)   =  2416
    S4      sigmoid(a_c * sum_{2x2 window} x + b_c)       16x5x5        16*2          =    32
    C5      conv 5x5, 120 maps, tanh                      120x1x1       120*(16*25+1) = 48120
    F6      dense 84, tanh                                84            84*(120+1)    = 10164
    output  dense num_classes (logits)                    10            10*(84+1)     =   850
    ======  ===========================================  ============  ======================

    Choices and corrections:

    * Squashing function: plain ``tanh`` after C1, C3, C5 and F6 (LeCun used the scaled
      ``1.7159 tanh(2x/3)``); S2 and S4 end in a sigmoid, as the seed describes.
    * C3 is fully connected to S2 (every C3 map sees all 6 S2 maps: 2416 parameters), not
      LeCun's partial connection table (1516 parameters).
    * The output is a dense layer giving logits for cross-entropy, not LeCun's RBF units.
    * The seed text miscounts three layers: C3 as 416 (= 16*(25+1), ignoring the 6 input maps),
      C5 as 3000 (= 120*25, ignoring the 16 input maps and the biases) and the output as 924
      (= 84*11, the bias added to the wrong side; 10*(84+1) = 850). The table above is the true
      count, checked by the tests through :func:`layer_summary`.
    * Images smaller than 32x32 (MNIST's 28x28) are zero-padded, centred, to 32x32 before
      normalisation, so the padding is background; LeCun et al. likewise padded MNIST to 32x32.

    ``modern=True`` (registered as ``lenet5-modern``) keeps the geometry but uses ReLU and 2x2 max
    pooling (S2, S4 then have no parameters) and ``dropout`` before the output layer.
    Features are F6's 84 activations; ``stages()`` is ``[C1, S2, C3, S4, C5, F6]`` (the head is the
    output layer), a list for freezing, not a chain (the activations live in ``forward``).
    """

    size = 32

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        mean: float | Sequence[float] = 0.0,
        std: float | Sequence[float] = 1.0,
        modern: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__(mean, std, in_channels)
        self.act = torch.relu if modern else torch.tanh
        self.c1 = nn.Conv2d(in_channels, 6, 5)
        self.s2 = (
            nn.MaxPool2d(2) if modern else nn.Sequential(TrainableSubsampling(6), nn.Sigmoid())
        )
        self.c3 = nn.Conv2d(6, 16, 5)
        self.s4 = (
            nn.MaxPool2d(2) if modern else nn.Sequential(TrainableSubsampling(16), nn.Sigmoid())
        )
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.dropout = dropout
        self.output = nn.Linear(84, num_classes)
        self.num_features = 84

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(_pad_to(x, self.size))  # (B, C, 32, 32)
        x = self.s2(self.act(self.c1(x)))  # (B, 6, 14, 14)
        x = self.s4(self.act(self.c3(x)))  # (B, 16, 5, 5)
        x = self.act(self.c5(x)).flatten(1)  # (B, 120, 1, 1) -> (B, 120)
        return self.act(self.f6(x))  # (B, 84)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(F.dropout(features, self.dropout, self.training))  # (B, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.output

    def reset_classifier(self, num_classes: int) -> None:
        self.output = nn.Linear(self.num_features, num_classes)

    def stages(self) -> list[nn.Module]:
        return [self.c1, self.s2, self.c3, self.s4, self.c5, self.f6]


@register_model("lenet5-modern")
def lenet5_modern(
    num_classes: int = 10,
    in_channels: int = 1,
    mean: float | Sequence[float] = 0.0,
    std: float | Sequence[float] = 1.0,
    dropout: float = 0.0,
) -> LeNet5:
    """LeNet-5's geometry with ReLU and 2x2 max pooling; see :class:`LeNet5` (``modern=True``)."""
    return LeNet5(num_classes, in_channels, mean, std, modern=True, dropout=dropout)


def _pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad ``(B, C, H, W)`` images, centred, to ``(B, C, size, size)``; larger ones are an
    error."""
    h, w = x.shape[-2:]
    if h > size or w > size:
        raise ValueError(f"LeNet-5 takes images up to {size}x{size}, got {h}x{w}")
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top))


# ------------------------------------------------------------------------ chained-stage backbones


class _Backbone(_Classifier):
    """A model whose ``stages()`` chain: ``feature_map(x)`` runs them in turn on ``prepare(x)``."""

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` images in [0, 1] -> ``(B, C, h, w)``, the last stage's output."""
        x = self.prepare(x)
        for stage in self.stages():
            x = stage(x)
        return x


class _TorchvisionCNN(_Backbone):
    """``torchvision.models.<arch>`` (kept whole as ``self.net``) behind this module's interface.

    * ``weights``: passed to torchvision (its enum, or a name such as ``"DEFAULT"``; downloads for
      online users). ``None`` (the default) builds random weights and needs no network.
    * ``in_channels``: 1 or 3. Grey images are repeated to 3 channels in ``prepare`` (always, with
      or without weights), so the 3-channel first convolution, pretrained or not, is kept.
    * ``input_size``: images whose shorter side is below it are upsampled (bilinear, aspect kept)
      so that it equals ``input_size``; larger images pass unchanged. Default: the architecture's
      minimum from torchvision's weights metadata: AlexNet 63 px, VGG 32 px, ResNet 1 px (ResNet
      takes any size, though 28-32 px leave a 1x1 map). Pass 224 to fine-tune pretrained weights
      at their training resolution.
    * ``mean``/``std``: ImageNet's by default, applied after the grey-to-RGB repeat.
    * ``num_classes`` other than the weights' 1000 replaces the last layer (``reset_classifier``).
    """

    def __init__(
        self,
        arch: str,
        weights=None,
        num_classes: int = 1000,
        in_channels: int = 3,
        mean: float | Sequence[float] = IMAGENET_MEAN,
        std: float | Sequence[float] = IMAGENET_STD,
        input_size: int | None = None,
    ):
        import torchvision  # imported when first used (a second of start-up)

        super().__init__(mean, std, channels=3)
        if in_channels not in (1, 3):
            raise ConfigError(
                f"{arch} takes 1 (grey, repeated to RGB) or 3 input channels, not {in_channels}"
            )
        self.in_channels = in_channels
        self.input_size = (
            input_size or torchvision.models.get_model_weights(arch).DEFAULT.meta["min_size"][0]
        )
        head = {} if weights is not None else {"num_classes": num_classes}
        self.net = torchvision.models.get_model(arch, weights=weights, **head)
        if self._last_layer.out_features != num_classes:
            self.reset_classifier(num_classes)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = _upsample_to(x, self.input_size)  # (B, C_in, H', W'), min(H', W') >= input_size
        x = x.expand(-1, 3, -1, -1) if self.in_channels == 1 else x  # (B, 3, H', W')
        return self.normalize(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.avgpool(self.feature_map(x)).flatten(
            1
        )  # (B, C, h', w') -> (B, num_features)


def _upsample_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear upsampling so that the shorter side of ``(B, C, H, W)`` is ``size`` (aspect
    kept)."""
    short = min(x.shape[-2:])
    if short >= size:
        return x
    return F.interpolate(
        x, size=[round(side * size / short) for side in x.shape[-2:]], mode="bilinear"
    )


class TorchvisionVGG(_TorchvisionCNN):
    """AlexNet or VGG: ``net.features`` (convolutions, max pools) -> ``net.avgpool`` -> flatten ->
    ``net.classifier`` (dense, dense, dense), the head. Features: ``512*7*7`` (VGG) or ``256*6*6``.

    ``stages()``: ``net.features`` cut after each max pool, so VGG's 5 blocks or AlexNet's 3
    (conv1; conv2; conv3-5); the first is the stem. ``reset_classifier`` replaces only the last
    dense layer. See :class:`_TorchvisionCNN` for the arguments.
    """

    @property
    def _last_layer(self) -> nn.Linear:
        return self.net.classifier[-1]

    @property
    def num_features(self) -> int:
        return next(m for m in self.net.classifier if isinstance(m, nn.Linear)).in_features

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.net.classifier(features)  # (B, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.net.classifier

    def reset_classifier(self, num_classes: int) -> None:
        self.net.classifier[-1] = nn.Linear(self._last_layer.in_features, num_classes)

    def stages(self) -> list[nn.Module]:
        features = self.net.features
        cuts = [i + 1 for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
        return [features[start:end] for start, end in zip([0, *cuts], cuts)]


class TorchvisionResNet(_TorchvisionCNN):
    """ResNet: stem (``conv1, bn1, relu, maxpool``) -> ``layer1..layer4`` -> ``avgpool`` -> ``fc``
    (the head). Features: 512 (ResNet-18/34) or 2048 (ResNet-50). ``stages()`` is
    ``[stem, layer1, layer2, layer3, layer4]``. See :class:`_TorchvisionCNN` for the arguments.
    """

    @property
    def _last_layer(self) -> nn.Linear:
        return self.net.fc

    @property
    def num_features(self) -> int:
        return self.net.fc.in_features

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.net.fc(features)  # (B, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.net.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.net.fc = nn.Linear(self.num_features, num_classes)

    def stages(self) -> list[nn.Module]:
        n = self.net
        return [
            nn.Sequential(n.conv1, n.bn1, n.relu, n.maxpool),
            n.layer1,
            n.layer2,
            n.layer3,
            n.layer4,
        ]


for _arch in ("alexnet", "vgg11", "vgg13", "vgg16", "vgg19"):
    register_model(_arch)(partial(TorchvisionVGG, _arch))
for _arch in ("resnet18", "resnet34", "resnet50"):
    register_model(_arch)(partial(TorchvisionResNet, _arch))


# ------------------------------------------------------------------------ small CNNs for 28-32 px


class SmallCNN(_Backbone):
    """``stages`` (stem first) -> global average pool -> dropout -> dense ``num_classes``.

    Convolutions start from Kaiming-normal weights (fan-out, ReLU gain), as torchvision's ResNet.
    Features: the last stage's channels, averaged over space.
    """

    def __init__(
        self,
        stages: list[nn.Module],
        num_features: int,
        num_classes: int = 10,
        in_channels: int = 1,
        mean: float | Sequence[float] = 0.0,
        std: float | Sequence[float] = 1.0,
        dropout: float = 0.0,
    ):
        super().__init__(mean, std, in_channels)
        self.body = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(num_features, num_classes)
        self.num_features = num_features
        for m in self.body.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean((2, 3))  # (B, C, h, w) -> (B, C)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))  # (B, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)

    def stages(self) -> list[nn.Module]:
        return list(self.body)


def _cifar_resnet(
    in_channels: int, blocks: int, widths: tuple[int, ...] = (16, 32, 64)
) -> list[nn.Module]:
    """He et al. (2016, sec. 4.2) CIFAR ResNet of depth ``6 * blocks + 2``: a 3x3 stem, then one
    stage of ``blocks`` torchvision ``BasicBlock``s per width, halving the size from the second.
    Where the shape changes the shortcut is a 1x1 convolution + BN (the paper's option B; its
    CIFAR nets used zero-padded identities, option A, with slightly fewer parameters).
    """
    stem = nn.Sequential(
        nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(inplace=True),
    )
    stages, width = [stem], widths[0]
    for i, out in enumerate(widths):
        stages.append(_resnet_stage(width, out, blocks, stride=1 if i == 0 else 2))
        width = out
    return stages


def _resnet_stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    from torchvision.models.resnet import BasicBlock, conv1x1  # imported when first used

    shortcut = None
    if stride != 1 or inplanes != planes:
        shortcut = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    rest = (BasicBlock(planes, planes) for _ in range(blocks - 1))
    return nn.Sequential(BasicBlock(inplanes, planes, stride, shortcut), *rest)


def _vgg_block(in_channels: int, out_channels: int, convs: int = 2) -> nn.Sequential:
    """``convs`` x (3x3 conv, BN, ReLU), then 2x2 max pooling (halves the size)."""

    layers = []
    for i in range(convs):
        layers += [
            nn.Conv2d(
                in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias=False
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


def _alexnet_small(
    in_channels: int, widths: tuple[int, ...] = (32, 96, 192, 128, 128)
) -> list[nn.Module]:
    """AlexNet's five convolutions (5x5, 5x5, 3x3, 3x3, 3x3 here; 11x11/4 would erase a 32 px image)
    with ReLU and its overlapping 3x3/2 max pooling, narrowed; no LRN. 32 -> 16 -> 8 -> 4 px."""
    c1, c2, c3, c4, c5 = widths

    def pool() -> nn.MaxPool2d:
        return nn.MaxPool2d(3, stride=2, padding=1)

    return [
        nn.Sequential(nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(inplace=True), pool()),
        nn.Sequential(nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True), pool()),
        nn.Sequential(
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3, padding=1),
            nn.ReLU(inplace=True),
            pool(),
        ),
    ]


@register_model("resnet8-small")
def resnet8_small(in_channels: int = 1, **kwargs) -> SmallCNN:
    """CIFAR-style ResNet-8: 3x3 stem, 3 stages of 1 basic block (16, 32, 64 channels), ~78k
    parameters. ``stages()``: ``[stem, stage1, stage2, stage3]``. Other arguments:
    :class:`SmallCNN`."""
    return SmallCNN(_cifar_resnet(in_channels, blocks=1), 64, in_channels=in_channels, **kwargs)


@register_model("resnet20-small")
def resnet20_small(in_channels: int = 1, **kwargs) -> SmallCNN:
    """CIFAR-style ResNet-20 (He et al. 2016): 3x3 stem, 3 stages of 3 basic blocks (16, 32, 64
    channels), ~0.27M parameters. ``stages()``: ``[stem, stage1, stage2, stage3]``."""
    return SmallCNN(_cifar_resnet(in_channels, blocks=3), 64, in_channels=in_channels, **kwargs)


@register_model("vgg-small")
def vgg_small(in_channels: int = 1, **kwargs) -> SmallCNN:
    """VGG-style: 3 blocks of two 3x3 conv-BN-ReLU and a 2x2 max pool (32, 64, 128 channels),
    ~0.29M parameters; 32 -> 4 px (28 -> 3). ``stages()``: the 3 blocks, the first is the stem."""
    widths = (in_channels, 32, 64, 128)
    return SmallCNN(
        [_vgg_block(a, b) for a, b in zip(widths, widths[1:])],
        128,
        in_channels=in_channels,
        **kwargs,
    )


@register_model("alexnet-small")
def alexnet_small(in_channels: int = 1, dropout: float = 0.5, **kwargs) -> SmallCNN:
    """AlexNet narrowed for 28-32 px (see ``_alexnet_small``), ~0.6M parameters, dropout 0.5
    before the classifier as in AlexNet. ``stages()``: ``[conv1 (stem), conv2, conv3-5]``."""
    return SmallCNN(
        _alexnet_small(in_channels), 128, in_channels=in_channels, dropout=dropout, **kwargs
    )


# ------------------------------------------------------------------------------------- summaries


def layer_summary(
    model: nn.Module, input_shape: Sequence[int]
) -> list[tuple[str, tuple[int, ...], int]]:
    """``(name, output shape, parameter count)`` for each direct child of ``model``, in the order
    the forward pass calls them, from one pass over zeros of ``input_shape`` (eval mode, no
    gradient; the model's mode is restored). Parameter counts include the child's submodules.
    """
    rows = []

    def record(name: str, module: nn.Module, _, output: torch.Tensor) -> None:
        rows.append((name, tuple(output.shape), sum(p.numel() for p in module.parameters())))

    hooks = [
        child.register_forward_hook(partial(record, name)) for name, child in model.named_children()
    ]
    training, param = model.training, next(model.parameters())
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(tuple(input_shape), dtype=param.dtype, device=param.device))
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    return rows


def format_summary(rows: list[tuple[str, tuple[int, ...], int]]) -> str:
    """A text table of :func:`layer_summary`'s rows with a total line, e.g.
    ``print(format_summary(layer_summary(model, (1, 1, 32, 32))))``."""
    cells = [("layer", "output shape", "parameters")]
    cells += [(name, str(shape), f"{count:,}") for name, shape, count in rows]
    cells.append(("total", "", f"{sum(count for _, _, count in rows):,}"))
    w0, w1, w2 = (max(len(row[i]) for row in cells) for i in range(3))
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}" for a, b, c in cells)
