"""Learned saliency resampling of every frame before the pulse backbone.

Recasens et al., "Learning to Zoom: a Saliency-Based Sampling Layer for Neural
Networks", ECCV 2018; used for rPPG by Gideon & Stent, ICCV 2021 (with a sparsity and a
temporal-smoothness loss on the saliency maps).

A small CNN turns each (downscaled) frame into a saliency distribution ``S`` over a
``g x g`` grid (softmax). The sampling grid pulls every output pixel towards salient
input positions: with a Gaussian kernel ``k``,

``u(x) = sum_x' S(x') k(x, x') x' / sum_x' S(x') k(x, x')``

(both sums are one convolution of the replicate-padded map), so salient regions are
magnified. A uniform ``S`` gives the identity grid. All frames of all clips go through
one batched ``grid_sample``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facepulse.errors import ConfigError, InputError
from facepulse.models import MODELS, build_model


def gaussian_kernel(size: int, fwhm: float) -> torch.Tensor:
    """(size, size) float32 Gaussian with full width at half maximum ``fwhm`` (grid cells), peak 1.

    Recasens et al., ECCV 2018 (distance kernel of the saliency sampler).
    """
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    d2 = r[:, None] ** 2 + r[None, :] ** 2
    return torch.exp(-4 * math.log(2) * d2 / fwhm**2)


def saliency_grid(saliency: torch.Tensor, padding: int, kernel: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Sampling grid from saliency maps (Recasens et al., ECCV 2018, eq. 3-4).

    Parameters
    ----------
    saliency : (N, g, g) non-negative maps (each sums to 1).
    padding : P, replicate padding of the maps (lets borders be sampled evenly).
    kernel : (2P + 1, 2P + 1) distance kernel.
    out_hw : output image size (H, W).

    Returns
    -------
    (N, H, W, 2) ``grid_sample`` grid (x, y) in [-1, 1] (``align_corners=True``).
    """
    n, gh, gw = saliency.shape
    padded = F.pad(saliency[:, None], (padding,) * 4, mode="replicate")  # (N, 1, g + 2P, g + 2P)
    # normalised coordinate in [0, 1] of every padded cell (cells in the padding lie outside)
    ys = (torch.arange(gh + 2 * padding, device=saliency.device, dtype=saliency.dtype) - padding) / max(gh - 1, 1)
    xs = (torch.arange(gw + 2 * padding, device=saliency.device, dtype=saliency.dtype) - padding) / max(gw - 1, 1)
    weights = torch.cat([padded, padded * xs[None, None, None, :], padded * ys[None, None, :, None]], dim=1)
    k = kernel.to(saliency)[None, None]
    sums = F.conv2d(weights.reshape(n * 3, 1, *weights.shape[2:]), k).reshape(n, 3, gh, gw)
    coords = sums[:, 1:] / sums[:, :1].clamp(min=1e-12)  # (N, 2, g, g) weighted mean coordinate
    grid = (coords * 2 - 1).clamp(-1, 1)
    grid = F.interpolate(grid, size=out_hw, mode="bilinear", align_corners=True)
    return grid.permute(0, 2, 3, 1)


def adaptive_pool_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) float32 averaging matrix of ``adaptive_avg_pool`` along one axis: row
    ``i`` averages inputs ``floor(i n_in / n_out) .. ceil((i + 1) n_in / n_out) - 1``."""
    m = torch.zeros(n_out, n_in)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def adaptive_avg_pool2d_matmul(x: torch.Tensor, size: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, size)`` of (N, C, H, W) as ``P_h x P_w^T`` (exportable to ONNX)."""
    ph = adaptive_pool_matrix(int(x.shape[-2]), size).to(x)
    pw = adaptive_pool_matrix(int(x.shape[-1]), size).to(x)
    return torch.matmul(torch.matmul(ph, x), pw.t())


class SaliencyNet(nn.Module):
    """Frames (N, C, H, W) -> saliency distributions (N, g, g) (softmax over the grid).

    A small conv net on the frame downscaled to ``input_size``; the last 1x1 conv starts
    at zero so the initial saliency is uniform (identity sampling).
    """

    def __init__(self, in_channels: int = 3, channels: int = 16, input_size: int = 32, grid_size: int = 16) -> None:
        super().__init__()
        if input_size < 4 or grid_size < 2 or channels < 1:
            raise ConfigError(
                "saliency: need input_size >= 4, grid_size >= 2, channels >= 1; "
                f"got {input_size}, {grid_size}, {channels}"
            )
        self.input_size, self.grid_size = input_size, grid_size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.head = nn.Conv2d(channels, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            # the ONNX exporter has no adaptive pooling once the batch is dynamic: the same
            # averages as two constant matrices (the frame size is fixed in an exported model)
            x = adaptive_avg_pool2d_matmul(frames, self.input_size)
        else:
            x = F.adaptive_avg_pool2d(frames, self.input_size)
        logits = self.head(self.features(x))
        logits = F.interpolate(logits, size=(self.grid_size, self.grid_size), mode="bilinear", align_corners=True)
        return torch.softmax(logits.flatten(1), dim=1).view(-1, self.grid_size, self.grid_size)


def saliency_sparsity(saliency: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the saliency maps over ``log(g^2)``, in [0, 1] (1 = uniform).

    Gideon & Stent, ICCV 2021 (saliency sparsity loss). ``saliency`` : (B, T, g, g), maps sum to 1.
    """
    p = saliency.flatten(2)
    entropy = -(p * torch.log(p.clamp(min=1e-12))).sum(-1)
    return entropy.mean() / math.log(p.shape[-1])


def saliency_temporal(saliency: torch.Tensor) -> torch.Tensor:
    """Mean squared change of the saliency maps between consecutive frames, per grid cell.

    Gideon & Stent, ICCV 2021 (saliency temporal-consistency loss). ``saliency`` : (B, T, g, g).
    """
    if saliency.shape[1] < 2:
        return saliency.sum() * 0
    return ((saliency[:, 1:] - saliency[:, :-1]) ** 2).mean()


class SaliencySampler(nn.Module):
    """Saliency resampling of every frame of a clip (Recasens et al., ECCV 2018).

    ``sampler(clips) -> (sampled, saliency)`` with clips (B, C, T, H, W), sampled the same
    shape (or ``out_size`` x ``out_size``), saliency (B, T, g, g).

    Parameters
    ----------
    in_channels, channels : colour channels of the clip; width of the saliency net.
    input_size : frames are downscaled to this for the saliency net.
    grid_size : g, resolution of the saliency map and of the sampling grid.
    padding : replicate padding of the map (default g); fwhm : kernel width in cells (default 0.4 g).
    out_size : side of the sampled frames (default: the input's H, W).
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: int = 16,
        input_size: int = 32,
        grid_size: int = 16,
        padding: int | None = None,
        fwhm: float | None = None,
        out_size: int | None = None,
    ) -> None:
        super().__init__()
        self.net = SaliencyNet(in_channels, channels, input_size, grid_size)
        self.padding = grid_size if padding is None else int(padding)
        fwhm = 0.4 * grid_size if fwhm is None else float(fwhm)
        if self.padding < 0 or fwhm <= 0:
            raise ConfigError(f"saliency: need padding >= 0 and fwhm > 0, got {self.padding}, {fwhm}")
        self.register_buffer("kernel", gaussian_kernel(2 * self.padding + 1, fwhm), persistent=False)
        self.out_size = out_size

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if clips.ndim != 5 or not clips.is_floating_point():
            raise InputError(f"saliency sampler: expected float clips (B, C, T, H, W), got {tuple(clips.shape)}")
        b, c, t, h, w = clips.shape
        frames = clips.transpose(1, 2).reshape(b * t, c, h, w)
        sal = self.net(frames)  # (B T, g, g)
        out_hw = (self.out_size, self.out_size) if self.out_size else (h, w)
        grid = saliency_grid(sal, self.padding, self.kernel, out_hw)
        sampled = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=True)
        sampled = sampled.reshape(b, t, c, *out_hw).transpose(1, 2)
        return sampled, sal.reshape(b, t, *sal.shape[1:])


class SaliencyModel(nn.Module):
    """A pulse backbone behind a :class:`SaliencySampler`: clips (B, C, T, H, W) -> pulse (B, T).

    ``model(clips, return_saliency=True)`` also returns the saliency maps (B, T, g, g)
    for :func:`saliency_sparsity` and :func:`saliency_temporal`.
    """

    def __init__(self, backbone: nn.Module, sampler: SaliencySampler) -> None:
        super().__init__()
        self.sampler = sampler
        self.backbone = backbone

    def forward(self, clips: torch.Tensor, return_saliency: bool = False):
        sampled, saliency = self.sampler(clips)
        pulse = self.backbone(sampled)
        return (pulse, saliency) if return_saliency else pulse


@MODELS.register("saliency")
def saliency_model(
    backbone: str = "physnet",
    backbone_params: dict[str, Any] | None = None,
    in_channels: int = 3,
    channels: int = 16,
    input_size: int = 32,
    grid_size: int = 16,
    padding: int | None = None,
    fwhm: float | None = None,
) -> SaliencyModel:
    """Saliency sampler (Recasens et al. ECCV 2018) in front of any registered backbone (Gideon & Stent ICCV 2021)."""
    if backbone == "saliency":
        raise ConfigError("model 'saliency': backbone cannot be 'saliency' itself")
    net = build_model(backbone, **dict(backbone_params or {}))
    return SaliencyModel(net, SaliencySampler(in_channels, channels, input_size, grid_size, padding, fwhm))
