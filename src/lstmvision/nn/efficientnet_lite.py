"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" edge variant), written out layer by layer.

The network equals timm's ``tf_efficientnet_lite0`` (tested in ``tests/test_efficientnet_lite.py``):
the same parameter and buffer names, order and shapes (so its state dicts load either way), the
same outputs, and, for a given torch seed, the same random initial weights. We write it out so that
loading it does not import timm (seconds of start-up).

Structure (input ``(B, 3, H, W)``; ``k`` kernel, ``s`` stride of a stage's first block, ``n``
blocks, ``e`` expansion)::

    conv_stem   3x3 s2 conv 3 -> 32, bn1 + ReLU6                          (B, 32, H/2, W/2)
    blocks.0    depthwise-separable  k3 s1 n1 e1  -> 16                   (B, 16, H/2, W/2)
    blocks.1    inverted residual    k3 s2 n2 e6  -> 24                   (B, 24, H/4, W/4)
    blocks.2    inverted residual    k5 s2 n2 e6  -> 40                   (B, 40, H/8, W/8)
    blocks.3    inverted residual    k3 s2 n3 e6  -> 80                   (B, 80, H/16, W/16)
    blocks.4    inverted residual    k5 s1 n3 e6  -> 112                  (B, 112, H/16, W/16)
    blocks.5    inverted residual    k5 s2 n4 e6  -> 192                  (B, 192, H/32, W/32)
    blocks.6    inverted residual    k3 s1 n1 e6  -> 320                  (B, 320, H/32, W/32)
    conv_head   1x1 conv 320 -> 1280, bn2 + ReLU6                         (B, 1280, H/32, W/32)
    classifier  global average pooling, linear 1280 -> 1000               (B, 1000)

(``H/2`` etc. round up.) What makes it "Lite" and "tf_": no squeeze-and-excitation, ReLU6 instead
of swish, stem (32) and head (1280) widths fixed; batch norm with ``eps = 1e-3`` (TensorFlow's;
momentum stays torch's 0.1), convolutions without bias, and TensorFlow's ``'SAME'`` padding, which
for a stride-2 convolution depends on the input size and may put one more row or column on the
bottom/right than on the top/left (:class:`Conv2dSame`); stride-1 convolutions pad ``k // 2`` on
every side, which is the same thing. A block adds its input back (residual) when it keeps the
stride at 1 and the width unchanged. No dropout and no stochastic depth (timm's defaults for this
model), so training and evaluation differ only in batch norm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# One row per stage: (block kind, kernel, stride of the first block, blocks, expansion, width).
LITE0_STAGES = (
    ("ds", 3, 1, 1, 1, 16),
    ("ir", 3, 2, 2, 6, 24),
    ("ir", 5, 2, 2, 6, 40),
    ("ir", 3, 2, 3, 6, 80),
    ("ir", 5, 1, 3, 6, 112),
    ("ir", 5, 2, 4, 6, 192),
    ("ir", 3, 1, 1, 6, 320),
)
STEM_WIDTH, HEAD_WIDTH = 32, 1280
BN_EPS = 1e-3


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``'SAME'`` padding along one axis of length ``size``: the output has
    ``ceil(size / stride)`` positions; the padding needed for that,
    ``total = max((ceil(size / stride) - 1) * stride + kernel - size, 0)``, is split
    ``(total // 2, total - total // 2)`` (before, after)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` (no built-in padding) behind TensorFlow's ``'SAME'`` zero padding, computed
    from each input's height and width (:func:`same_padding`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = same_padding(x.shape[-2], kh, sh)
        left, right = same_padding(x.shape[-1], kw, sw)
        x = F.pad(x, (left, right, top, bottom))  # (B, C, H + top + bottom, W + left + right)
        return super().forward(x)


def conv_same(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1
) -> nn.Conv2d:
    """A bias-free convolution with ``'SAME'`` padding: static ``kernel // 2`` at stride 1 (odd
    kernels), :class:`Conv2dSame` otherwise."""
    if stride == 1 and kernel % 2 == 1:
        return nn.Conv2d(
            in_channels, out_channels, kernel, padding=kernel // 2, groups=groups, bias=False
        )
    return Conv2dSame(in_channels, out_channels, kernel, stride=stride, groups=groups, bias=False)


class BatchNormReLU6(nn.BatchNorm2d):
    """Batch norm (``eps = 1e-3``) then, if ``activation``, ``ReLU6(x) = min(max(x, 0), 6)``.
    A subclass rather than a pair of modules, so its state dict keys are batch norm's own."""

    def __init__(self, channels: int, activation: bool = True):
        super().__init__(channels, eps=BN_EPS)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return F.relu6(x) if self.activation else x


class DepthwiseSeparable(nn.Module):
    """``y = BN(pw(ReLU6(BN(dw(x)))))`` (+ ``x`` when stride 1 and width kept): a ``k x k``
    depthwise convolution, then a linear 1x1 projection to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int):
        super().__init__()
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_dw = conv_same(in_channels, in_channels, kernel, stride, groups=in_channels)
        self.bn1 = BatchNormReLU6(in_channels)
        self.conv_pw = conv_same(in_channels, out_channels, 1)
        self.bn2 = BatchNormReLU6(out_channels, activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return y + x if self.has_skip else y


class InvertedResidual(nn.Module):
    """MobileNet-V2's block (MBConv without squeeze-excite):
    ``y = BN(pwl(ReLU6(BN(dw(ReLU6(BN(pw(x))))))))`` (+ ``x`` when stride 1 and width kept): a 1x1
    expansion to ``expansion * in_channels``, a ``k x k`` depthwise convolution (carrying the
    stride), a linear 1x1 projection to ``out_channels``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: int
    ):
        super().__init__()
        mid = in_channels * expansion
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_pw = conv_same(in_channels, mid, 1)
        self.bn1 = BatchNormReLU6(mid)
        self.conv_dw = conv_same(mid, mid, kernel, stride, groups=mid)
        self.bn2 = BatchNormReLU6(mid)
        self.conv_pwl = conv_same(mid, out_channels, 1)
        self.bn3 = BatchNormReLU6(out_channels, activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn1(self.conv_pw(x))  # (B, e * C_in, H, W)
        y = self.bn2(self.conv_dw(y))  # (B, e * C_in, H / s, W / s)
        y = self.bn3(self.conv_pwl(y))  # (B, C_out, H / s, W / s)
        return y + x if self.has_skip else y


def _draw_like_timms_probe() -> None:
    """Draw the random numbers timm draws at this point: its block builder builds and throws away
    a squeeze-excite layer (two 8 -> 8 1x1 convolutions with bias) to probe its arguments. Drawing
    them too keeps, for a given seed, the weights of this network and of every layer built after
    it (a captioner's decoder, a new classifier) equal to what they were with timm's network."""
    for _ in range(2):
        nn.Conv2d(8, 8, 1)


class EfficientNetLite0Net(nn.Module):
    """EfficientNet-Lite0 (structure in the module docstring): ``conv_stem``, ``bn1``, ``blocks``
    (an ``nn.Sequential`` of 7 ``nn.Sequential`` stages), ``conv_head``, ``bn2``, ``classifier``.

    Random initialisation as TensorFlow's (and timm's, draw for draw): convolution weights
    ``N(0, 2 / fan_out)`` with ``fan_out = k * k * out_channels / groups``; batch norm weight 1,
    bias 0; classifier weight ``U(-1/sqrt(num_classes), 1/sqrt(num_classes))``, bias 0."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        self.conv_stem = conv_same(in_channels, STEM_WIDTH, 3, stride=2)
        self.bn1 = BatchNormReLU6(STEM_WIDTH)
        _draw_like_timms_probe()
        stages, width = [], STEM_WIDTH
        for kind, kernel, stride, repeats, expansion, out in LITE0_STAGES:
            blocks = []
            for i in range(repeats):
                s = stride if i == 0 else 1
                if kind == "ds":
                    blocks.append(DepthwiseSeparable(width, out, kernel, s))
                else:
                    blocks.append(InvertedResidual(width, out, kernel, s, expansion))
                width = out
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = conv_same(width, HEAD_WIDTH, 1)
        self.bn2 = BatchNormReLU6(HEAD_WIDTH)
        self.classifier = nn.Linear(HEAD_WIDTH, num_classes)
        self.num_features = HEAD_WIDTH
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        for module in self.modules():  # registration order, as timm's, for the same random draws
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                fan_out = kh * kw * module.out_channels // module.groups
                module.weight.normal_(0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.out_features)
                module.weight.uniform_(-bound, bound)
                module.bias.zero_()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` (normalised) -> feature map ``(B, 1280, H/32, W/32)``."""
        x = self.bn1(self.conv_stem(x))  # (B, 32, H/2, W/2)
        x = self.blocks(x)  # (B, 320, H/32, W/32)
        return self.bn2(self.conv_head(x))  # (B, 1280, H/32, W/32)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Feature map ``(B, 1280, h, w)`` -> logits ``(B, num_classes)``."""
        return self.classifier(features.mean((2, 3)))  # (B, 1280) pooled -> (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
