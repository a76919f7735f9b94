r"""``pixelrnn-row``, ``pixelrnn-diagonal``, ``pixelcnn``: generative models of binary images
(van den Oord et al. 2016, arXiv 1601.06759), one network each: the pixels' Bernoulli logits.

A ``(B, 1, H, W)`` image of 0s and 1s goes through (§3.4, Table 1):

1. a 7x7 :class:`~lstmvision.nn.pixel.MaskedConv2d` with mask A, ``1 -> 2h`` features;
2. ``num_layers`` residual layers of ``2h`` features: Row LSTMs (``pixelrnn-row``), Diagonal
   BiLSTMs (``pixelrnn-diagonal``), or PixelCNN's blocks of 3x3 mask-B convolutions
   (``pixelcnn``), see :mod:`lstmvision.nn.pixel`;
3. ReLU, a 1x1 convolution ``2h -> 2h``, ReLU, a 1x1 convolution ``2h -> 1`` (for one channel,
   the paper's mask B on 1x1 convolutions masks nothing);

and comes out as ``(B, 1, H, W)`` logits ``l``: ``p(x_{ij} = 1 | x_{<ij}) = σ(l_{ij})``, where
``x_{<ij}`` are the pixels before ``(i, j)`` in raster order, so ``-log p(x)`` is the sum of the
pixels' binary cross-entropies (:func:`~lstmvision.nn.pixel.bernoulli_nll`).

:meth:`PixelModel.sample` draws new images pixel by pixel in raster order, or completes given
ones below their first ``keep_rows`` rows, stepping each layer one position at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lstmvision.models import register_model
from lstmvision.nn.pixel import (
    DiagonalBiLSTM,
    MaskedConv2d,
    MaskedConvBlock,
    ResidualLayer,
    RowLSTM,
    pointwise,
)

LAYERS = ("row", "diagonal", "conv")
FIRST_KERNEL = 7


def _layer(kind: str, channels: int, hidden_size: int, implementation: str) -> nn.Module:
    if kind == "row":
        return ResidualLayer(RowLSTM(channels, hidden_size, 3, implementation), channels)
    if kind == "diagonal":
        return ResidualLayer(DiagonalBiLSTM(channels, hidden_size, implementation), channels)
    if kind == "conv":
        return MaskedConvBlock(channels, hidden_size)
    raise ValueError(f"layer must be one of {', '.join(LAYERS)}, not {kind!r}")


class PixelModel(nn.Module):
    """``(B, 1, H, W)`` binary images -> ``(B, 1, H, W)`` Bernoulli logits, each from the pixels
    before it only; ``layer`` is ``"row"``, ``"diagonal"`` or ``"conv"``; ``hidden_size`` is the
    paper's ``h`` (``2h`` features between layers); ``image_size``: what :meth:`sample` draws;
    ``implementation``: the LSTM layers' (see :class:`lstmvision.nn.pixel.RowLSTM`)."""

    def __init__(
        self,
        layer: str,
        hidden_size: int = 16,
        num_layers: int = 7,
        image_size: int = 28,
        implementation: str = "auto",
    ):
        super().__init__()
        if num_layers < 1 or hidden_size < 1 or image_size < 1:
            raise ValueError("hidden_size, num_layers and image_size must be at least 1")
        channels = 2 * hidden_size
        self.layer_kind, self.num_layers, self.image_size = layer, num_layers, image_size
        self.input_conv = MaskedConv2d(1, channels, FIRST_KERNEL, "A")
        self.layers = nn.ModuleList(
            _layer(layer, channels, hidden_size, implementation) for _ in range(num_layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1)
        )

    def forward(self, images: Tensor) -> Tensor:
        x = self.input_conv(images)  # (B, 2h, H, W)
        for layer in self.layers:
            x = layer(x)  # (B, 2h, H, W)
        return self.head(x)  # (B, 1, H, W)

    def _head_at(self, x: Tensor) -> Tensor:
        """The output layers at one position: ``(B, 2h)`` -> ``(B,)`` logits."""
        _, first, _, last = self.head
        return pointwise(last, torch.relu(pointwise(first, torch.relu(x))))[:, 0]

    @torch.no_grad()
    def raster(
        self, images: Tensor, draw: Callable[[int, int, Tensor], Tensor | None] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run the network one position at a time in raster order over ``images`` ``(B, 1, H,
        W)``: the logit at ``(i, j)`` from the pixels before it, then ``draw(i, j, logits)``
        (``(B,)`` logits -> ``(B,)`` pixel values, or ``None``: keep the given ones) sets pixel
        ``(i, j)`` before the next position. Returns ``(logits (B, 1, H, W), images)``; without
        ``draw`` the logits equal ``forward(images)`` (up to rounding)."""
        b, _, height, width = images.shape
        pad = FIRST_KERNEL // 2
        padded = nn.functional.pad(images, (pad, pad, pad, pad))  # (B, 1, H+6, W+6): a copy
        caches = [layer.raster_cache(b, height, width, like=images) for layer in self.layers]
        logits = images.new_empty(b, height, width)
        for i in range(height):
            for j in range(width):
                x = self.input_conv.at(padded, i, j)  # (B, 2h): pixels before (i, j) only
                for layer, cache in zip(self.layers, caches, strict=True):
                    x = layer.raster_step(cache, x, i, j)  # (B, 2h)
                logits[:, i, j] = self._head_at(x)
                if draw is not None:
                    value = draw(i, j, logits[:, i, j])
                    if value is not None:
                        padded[:, 0, i + pad, j + pad] = value
        return logits[:, None], padded[:, :, pad:-pad, pad:-pad]

    @torch.no_grad()
    def sample(
        self,
        n: int = 16,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        known: Tensor | None = None,
        keep_rows: int = 0,
    ) -> Tensor:
        """``n`` images ``(n, 1, H, W)`` of 0s and 1s drawn pixel by pixel in raster order,
        ``p(x_ij = 1) = σ(logit_ij)`` given the pixels drawn before.

        ``seed`` (or a ``generator``) makes the draw repeatable; neither: torch's global one.
        ``known`` ``(n or 1, 1, H, W)``: binary images whose first ``keep_rows`` rows are kept
        and the rest drawn (completions; ``H x W`` is then ``known``'s, else ``image_size``).
        """
        param = next(self.parameters())
        if seed is not None:
            generator = torch.Generator(param.device).manual_seed(seed)
        if known is None:
            size = self.image_size
            images = param.new_zeros(n, 1, size, size)
        else:
            if known.dim() != 4 or known.shape[:2] not in ((n, 1), (1, 1)):
                raise ValueError(f"known must be (n or 1, 1, H, W), not {tuple(known.shape)}")
            images = known.to(param).expand(n, -1, -1, -1).clone()
        if not 0 <= keep_rows <= images.shape[2]:
            raise ValueError(f"keep_rows must lie in [0, {images.shape[2]}], not {keep_rows}")
        was_training = self.training
        self.eval()

        def draw(i: int, j: int, logits: Tensor) -> Tensor | None:
            if i < keep_rows:
                return None
            u = torch.rand(n, generator=generator, device=param.device, dtype=param.dtype)
            return (u < torch.sigmoid(logits)).to(param.dtype)  # (n,): Bernoulli(σ(logit))

        try:
            return self.raster(images, draw)[1]
        finally:
            self.train(was_training)


@register_model("pixelrnn-row")
class PixelRowLSTM(PixelModel):
    """PixelRNN with Row LSTM layers (§3.1): each pixel sees a triangle of rows above it."""

    def __init__(
        self,
        hidden_size: int = 16,
        num_layers: int = 7,
        image_size: int = 28,
        implementation: str = "auto",
    ):
        super().__init__("row", hidden_size, num_layers, image_size, implementation)


@register_model("pixelrnn-diagonal")
class PixelDiagonalBiLSTM(PixelModel):
    """PixelRNN with Diagonal BiLSTM layers (§3.2): each pixel sees nearly every pixel before it
    (docs/pixel-gen.md says which it cannot reach)."""

    def __init__(
        self,
        hidden_size: int = 16,
        num_layers: int = 7,
        image_size: int = 28,
        implementation: str = "auto",
    ):
        super().__init__("diagonal", hidden_size, num_layers, image_size, implementation)


@register_model("pixelcnn")
class PixelCNN(PixelModel):
    """PixelCNN (§3.4): residual blocks of 3x3 masked convolutions, the paper's baseline; a
    bounded receptive field with a blind spot to the upper right."""

    def __init__(self, hidden_size: int = 16, num_layers: int = 15, image_size: int = 28):
        super().__init__("conv", hidden_size, num_layers, image_size)
