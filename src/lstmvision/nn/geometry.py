r"""Frame geometry in pure torch: sampling, warping by a motion field, global affine motion
(fitted by Lucas-Kanade alignment) and blurs. Frames are ``(B, C, H, W)`` floats.

Motion fields are ``(B, 2, H, W)``, the x and y displacement in pixels, in :func:`warp`'s
convention: output pixel ``p`` is the input at ``p - field(p)``. A global affine motion is six
numbers ``a`` per frame, whose field is

.. math::

    u_x(x, y) = a_0 x + a_1 y + a_2, \qquad u_y(x, y) = a_3 x + a_4 y + a_5

with ``x``, ``y`` measured from the frame's centre in units of half its longer side (so
``a_2``, ``a_5`` are shifts in pixels and the other four pixels per half-side; see
:func:`affine_field`). Next-frame forecasters warp frames by fields they predict or measure;
data code samples camera paths with :func:`sample_pixels`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def sample_pixels(frames: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """``frames`` ``(N, C, H, W)`` read at pixel coordinates ``x``, ``y`` ``(N, h, w)`` (pixel
    centres at integers): bilinear, border pixels repeated outside the frame -> ``(N, C, h, w)``."""
    height, width = frames.shape[-2:]
    # (N, h, w, 2) in grid_sample's [-1, 1] (align_corners=False: -1 is the first pixel's edge)
    grid = torch.stack([(x + 0.5) * (2 / width) - 1, (y + 0.5) * (2 / height) - 1], -1)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp(frames: Tensor, flow: Tensor) -> Tensor:
    """``frames`` ``(B, C, H, W)`` moved by ``flow`` ``(B, 2, H, W)`` (x, y in pixels): output pixel
    ``p`` is the input at ``p - flow(p)``, bilinear, border pixels repeated outside the frame."""
    h, w = frames.shape[-2:]
    ys = torch.arange(h, device=frames.device, dtype=frames.dtype)
    xs = torch.arange(w, device=frames.device, dtype=frames.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    return sample_pixels(frames, gx - flow[:, 0], gy - flow[:, 1])


def box_blur(frames: Tensor, k: int) -> Tensor:
    """Box blur of side ``k`` (odd), borders repeated: ``(B, C, H, W)`` -> same shape."""
    return F.avg_pool2d(F.pad(frames, (k // 2,) * 4, mode="replicate"), k, 1)


def heat_blur(frames: Tensor, variance: Tensor, pad: int = 8) -> Tensor:
    """``frames`` ``(B, C, H, W)`` blurred by the discrete Gaussian (heat) kernel of ``variance``
    ``(B,)`` pixels² along each axis, computed in the Fourier domain (gain ``exp(-variance * (2 -
    2 cos 2πf) / 2)`` per axis), after ``pad`` border pixels repeated. Unlike a sampled Gaussian its
    weights move linearly with a small variance, so the variance learns from zero: variance 0 is
    the identity."""
    x = F.pad(frames, (pad,) * 4, mode="replicate")
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device, dtype=x.dtype)
    fx = torch.fft.rfftfreq(w, device=x.device, dtype=x.dtype)
    rate_y = 2 - 2 * torch.cos(2 * math.pi * fy)  # (h,)
    rate_x = 2 - 2 * torch.cos(2 * math.pi * fx)  # (w//2+1,)
    rate = rate_y[:, None] + rate_x[None, :]  # (h, w//2+1)
    gain = torch.exp(-variance[:, None, None, None] / 2 * rate)  # (B, 1, h, w//2+1)
    x = torch.fft.irfft2(torch.fft.rfft2(x) * gain, s=(h, w))
    return x[..., pad : pad + frames.shape[-2], pad : pad + frames.shape[-1]]


def affine_basis(h: int, w: int, like: Tensor) -> Tensor:
    """``(2, 6, H, W)``: the field of affine parameters ``a`` is ``basis @ a`` (x, y in pixels).
    Coordinates run from the centre in [-1, 1] of the longer side, so the 6 parameters are
    comparable: ``a[2]``, ``a[5]`` are the x, y shifts in pixels, the others pixels per half-side.
    ``like`` gives the device and type."""
    scale = max(h, w) / 2
    ys = (torch.arange(h, device=like.device, dtype=like.dtype) - (h - 1) / 2) / scale
    xs = (torch.arange(w, device=like.device, dtype=like.dtype) - (w - 1) / 2) / scale
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W)
    one, zero = torch.ones_like(gx), torch.zeros_like(gx)
    return torch.stack(
        [torch.stack([gx, gy, one, zero, zero, zero]), torch.stack([zero, zero, zero, gx, gy, one])]
    )


def affine_field(params: Tensor, h: int, w: int) -> Tensor:
    """Affine parameters ``(B, 6)`` (the module's convention) -> field ``(B, 2, H, W)``, pixels."""
    return torch.einsum("bk,ckhw->bchw", params, affine_basis(h, w, params))


@torch.no_grad()
def affine_params(
    prev: Tensor,
    frame: Tensor,
    blurs: Sequence[int] = (7, 5, 3),
    iterations: int = 4,
    margin: int = 4,
) -> Tensor:
    """The global affine motion from ``prev`` to ``frame`` (grey ``(B, 1, H, W)``) as 6 parameters
    ``(B, 6)``: :func:`affine_field` turns them into a field in :func:`warp`'s convention,
    ``frame ≈ warp(prev, affine_field(a, H, W))``.

    Lucas & Kanade's image alignment (forward additive, Gauss-Newton) of the 6 affine parameters,
    coarse to fine: ``iterations`` steps on box-blurred frames for each blur side in ``blurs``
    (wide blurs first, so motions of a few pixels are caught); ``margin`` pixels at the borders are
    left out of the fit. A still pair gives zero; a frame with no texture (zero gradients) too.
    Camera motion in a hand-held video is close to affine between consecutive frames.
    """
    b, _, h, w = frame.shape
    basis = affine_basis(h, w, frame)  # (2, 6, H, W)
    inside = torch.zeros(h, w, device=frame.device, dtype=frame.dtype)
    inside[margin : h - margin, margin : w - margin] = 1
    a = frame.new_zeros(b, 6)
    ridge = 1e-4 * torch.eye(6, device=frame.device, dtype=frame.dtype)
    for k in blurs:
        src, dst = box_blur(prev, k), box_blur(frame, k)
        for _ in range(iterations):
            moved = warp(src, torch.einsum("bk,ckhw->bchw", a, basis))  # (B, 1, H, W)
            padded = F.pad(moved, (1, 1, 1, 1), mode="replicate")
            d_dx = padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]
            d_dy = padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]
            grad = torch.cat([d_dx, d_dy], 1) / 2  # (B, 2, H, W): central differences
            # warp samples src at p - field(p): d moved / d a = -grad . basis
            jac = -(grad[:, :, None] * basis).sum(1) * inside  # (B, 6, H, W)
            resid = (dst - moved)[:, 0] * inside  # (B, H, W)
            hess = torch.einsum("bihw,bjhw->bij", jac, jac) + ridge  # (B, 6, 6)
            a = a + torch.linalg.solve(hess, torch.einsum("bihw,bhw->bi", jac, resid))
    return a


@torch.no_grad()
def robust_affine_params(prev: Tensor, frame: Tensor) -> Tensor:
    """:func:`affine_params` of grey ``(B, 1, H, W)`` pairs, set to zero where warping ``prev`` by
    them matches ``frame`` worse than ``prev`` itself does (a failed fit: a jump too large to
    align, a change of scene or light)."""
    a = affine_params(prev, frame)
    moved = warp(prev, affine_field(a, *frame.shape[-2:]))
    worse = (moved - frame).square().mean((1, 2, 3)) > (prev - frame).square().mean((1, 2, 3))
    return torch.where(worse[:, None], torch.zeros_like(a), a)
