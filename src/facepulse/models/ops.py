"""Candidate operations of the AutoHR cell search space.

Yu et al., "AutoHR: A Strong End-to-end Baseline for Remote Heart Rate Measurement with
Neural Searching", IEEE SPL 2020 (search space, Fig. 2).

``OPS`` maps an op name to a factory ``(channels: int, stride: int, *, affine=True) ->
nn.Module``. Every op maps ``(B, C, T, H, W)`` to ``(B, C, T, H', W')``: channels and
frames are kept; ``stride`` is a *spatial* stride (``H' = ceil(H / stride)``), since
AutoHR reduces resolution with pooling between cells, never inside time. At
``stride=1`` every op preserves the shape. ``affine=False`` gives BatchNorm without
learnable scale/shift (DARTS-style supernets use it while searching).

Convolution ops are ``conv -> BatchNorm3d -> ReLU`` (the order of the AutoHR/PhysNet
conv blocks, unlike DARTS' ReLU-conv-BN), all without conv bias (BN supplies it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from facepulse.errors import ConfigError
from facepulse.models.tdc import TDConv3d
from facepulse.registry import Registry

OpFactory = Callable[..., nn.Module]

OPS: Registry[OpFactory] = Registry("op")


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape (keeps the graph; no signal flows)."""

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :, :: self.stride, :: self.stride]
        return x * 0.0


class SpatialReduce(nn.Module):
    """``skip`` at stride > 1: 1x1x1 conv with spatial stride, then BatchNorm."""

    def __init__(self, channels: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, 1, stride=(1, stride, stride), bias=False)
        self.bn = nn.BatchNorm3d(channels, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def conv_bn_relu(
    channels: int,
    kernel_size: tuple[int, int, int],
    stride: int,
    *,
    dilation: int = 1,
    theta: float | None = None,
    affine: bool = True,
) -> nn.Sequential:
    """``conv -> BatchNorm3d -> ReLU``, same-size padding, spatial ``stride``.

    ``theta=None`` uses ``nn.Conv3d``, a float uses :class:`TDConv3d` with that theta.
    """
    padding = tuple(dilation * (k // 2) for k in kernel_size)
    stride3 = (1, stride, stride)
    if theta is None:
        conv: nn.Module = nn.Conv3d(
            channels, channels, kernel_size, stride=stride3, padding=padding, dilation=dilation, bias=False
        )
    else:
        conv = TDConv3d(
            channels, channels, kernel_size, stride=stride3, padding=padding, dilation=dilation, theta=theta
        )
    return nn.Sequential(conv, nn.BatchNorm3d(channels, affine=affine), nn.ReLU(inplace=False))


@OPS.register("none", help="zeros (drops the edge)")
def _none(channels: int, stride: int, *, affine: bool = True) -> nn.Module:
    return Zero(stride)


@OPS.register("skip", help="identity (1x1x1 conv + BN when strided)")
def _skip(channels: int, stride: int, *, affine: bool = True) -> nn.Module:
    return nn.Identity() if stride == 1 else SpatialReduce(channels, stride, affine)


@OPS.register("conv_3x3x3", help="3x3x3 conv-BN-ReLU")
def _conv_3x3x3(channels: int, stride: int, *, affine: bool = True) -> nn.Module:
    return conv_bn_relu(channels, (3, 3, 3), stride, affine=affine)


@OPS.register("conv_1x3x3", help="1x3x3 (spatial) conv-BN-ReLU")
def _conv_1x3x3(channels: int, stride: int, *, affine: bool = True) -> nn.Module:
    return conv_bn_relu(channels, (1, 3, 3), stride, affine=affine)


@OPS.register("conv_3x1x1", help="3x1x1 (temporal) conv-BN-ReLU")
def _conv_3x1x1(channels: int, stride: int, *, affine: bool = True) -> nn.Module:
    return conv_bn_relu(channels, (3, 1, 1), stride, affine=affine)


@OPS.register("dil_conv_3x3x3", help="3x3x3 conv-BN-ReLU, dilation 2")
def _dil_conv_3x3x3(channels: int, stride: int, *, affine: bool = True) -> nn.Module:
    return conv_bn_relu(channels, (3, 3, 3), stride, dilation=2, affine=affine)


def _register_tdc(name: str, theta: float, dilation: int) -> None:
    def factory(channels: int, stride: int, *, affine: bool = True) -> nn.Module:
        return conv_bn_relu(channels, (3, 3, 3), stride, dilation=dilation, theta=theta, affine=affine)

    dil = f", dilation {dilation}" if dilation > 1 else ""
    OPS.register(name, help=f"3x3x3 TDC-BN-ReLU, theta {theta}{dil}")(factory)


for _theta in (0.2, 0.4, 0.6, 0.8):
    _register_tdc(f"tdc_3x3x3_t{_theta}", _theta, 1)
_register_tdc("dil_tdc_3x3x3_t0.6", 0.6, 2)


class AvgPool3x3x3(nn.Module):
    """3x3x3 mean over the voxels inside the clip (padding excluded from the count).

    Written as padded sum / padded count because ``avg_pool3d`` rejects inputs smaller
    than its kernel even with padding (late blocks can be 1-2 pixels wide).
    """

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = (1, stride, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (1, 1, 1, 1, 1, 1)
        total = F.avg_pool3d(F.pad(x, pad), 3, self.stride)
        count = F.avg_pool3d(F.pad(torch.ones_like(x[:, :1]), pad), 3, self.stride)
        return total / count


@OPS.register("avg_pool_3x3x3", help="3x3x3 average pooling (padding excluded from the mean)")
def _avg_pool(channels: int, stride: int, *, affine: bool = True) -> nn.Module:
    return AvgPool3x3x3(stride)


@OPS.register("max_pool_3x3x3", help="3x3x3 max pooling")
def _max_pool(channels: int, stride: int, *, affine: bool = True) -> nn.Module:
    return nn.MaxPool3d(3, stride=(1, stride, stride), padding=1)


#: The AutoHR candidate set, in a fixed order (the column order of a supernet's
#: architecture weights).
SEARCH_SPACE: tuple[str, ...] = (
    "none",
    "skip",
    "conv_3x3x3",
    "conv_1x3x3",
    "conv_3x1x1",
    "tdc_3x3x3_t0.2",
    "tdc_3x3x3_t0.4",
    "tdc_3x3x3_t0.6",
    "tdc_3x3x3_t0.8",
    "dil_conv_3x3x3",
    "dil_tdc_3x3x3_t0.6",
    "avg_pool_3x3x3",
    "max_pool_3x3x3",
)

_TDC_NAME = re.compile(r"^(dil_)?tdc_(\d+x\d+x\d+)_t[0-9.]+$")


def build_op(name: str, channels: int, stride: int = 1, *, affine: bool = True) -> nn.Module:
    """Instantiate op ``name`` (ConfigError naming it when unknown)."""
    if channels < 1 or stride < 1:
        raise ConfigError(f"op {name!r}: channels ({channels}) and stride ({stride}) must be >= 1")
    return OPS.get(name)(channels, stride, affine=affine)


def is_tdc(name: str) -> bool:
    """Whether op ``name`` is a temporal difference convolution."""
    return _TDC_NAME.match(name) is not None


def conv_equivalent(name: str) -> str:
    """The plain-convolution op of the same shape as ``name`` (TDC with theta = 0).

    ``tdc_3x3x3_t0.6 -> conv_3x3x3``, ``dil_tdc_3x3x3_t0.6 -> dil_conv_3x3x3``; any
    other op is returned unchanged. Used for the "conv instead of TDC" ablation.
    """
    match = _TDC_NAME.match(name)
    if match is None:
        return name
    conv = f"{match.group(1) or ''}conv_{match.group(2)}"
    OPS.get(conv)  # the equivalent must exist
    return conv
