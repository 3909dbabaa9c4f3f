"""Clip normalisation before a deep model, as the papers do it.

All functions take a batch of clips ``(B, 3, T, H, W)`` (any real dtype; raw pixel
values 0..255) and return float ``(B, 3, T, H, W)`` (float64 input stays float64).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from facepulse.errors import InputError
from facepulse.registry import Registry

NORMALIZATIONS: Registry[Callable[[torch.Tensor], torch.Tensor]] = Registry("normalization")

EPS = 1e-7


def _as_float_clips(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim != 5:
        raise InputError(f"normalize {name!r}: expected clips (B, C, T, H, W), got shape {tuple(x.shape)}")
    return x if x.is_floating_point() else x.float()


@NORMALIZATIONS.register("raw")
def raw(x: torch.Tensor) -> torch.Tensor:
    """Pixel values scaled to [0, 1]: ``x / 255`` (PhysNet, Yu et al. BMVC 2019)."""
    return _as_float_clips(x, "raw") / 255.0


@NORMALIZATIONS.register("standardize")
def standardize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Per-sample, per-channel zero mean and unit std over the clip's (T, H, W).

    Standard input normalisation of 3D-CNN rPPG models (rPPG-Toolbox, Liu et al.
    NeurIPS 2023 "Standardized"). A constant channel becomes zeros.
    """
    x = _as_float_clips(x, "standardize")
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    std = x.std(dim=(2, 3, 4), keepdim=True, correction=0)
    return (x - mean) / (std + eps)


@NORMALIZATIONS.register("diff")
def diff(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Normalised frame differences, DeepPhys / TS-CAN motion representation.

    Chen & McDuff, ECCV 2018 (DeepPhys, eq. 6): ``d_t = (c_{t+1} - c_t) / (c_{t+1} +
    c_t)`` per pixel and channel, then divided by the standard deviation of all of the
    sample's ``d`` (scale-free, robust to illumination level). ``T - 1`` differences are
    followed by one zero frame so the output keeps T frames (aligned with a label
    treated by :func:`diff_signal`). Pixel values must be >= 0.
    """
    x = _as_float_clips(x, "diff")
    d = (x[:, :, 1:] - x[:, :, :-1]) / (x[:, :, 1:] + x[:, :, :-1] + eps)
    std = d.flatten(1).std(dim=1, correction=0).view(-1, 1, 1, 1, 1)
    d = d / (std + eps)
    return torch.cat([d, torch.zeros_like(x[:, :, :1])], dim=2)


def diff_signal(ppg: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Label counterpart of :func:`diff`: first difference of ``(B, T)`` signals over their std.

    Chen & McDuff, ECCV 2018 (DeepPhys trains on the derivative of the PPG). Output
    ``(B, T)``: ``T - 1`` normalised differences then a zero.
    """
    if ppg.ndim != 2:
        raise InputError(f"diff_signal: expected signals (B, T), got shape {tuple(ppg.shape)}")
    d = ppg[:, 1:] - ppg[:, :-1]
    d = d / (d.std(dim=1, keepdim=True, correction=0) + eps)
    return torch.cat([d, torch.zeros_like(ppg[:, :1])], dim=1)


def normalize_clip(x: torch.Tensor, method: str = "standardize") -> torch.Tensor:
    """Apply the registered normalisation ``method`` (``raw``, ``standardize``, ``diff``)."""
    return NORMALIZATIONS.get(method)(x)


class ClipNormalizer(nn.Module):
    """:func:`normalize_clip` as a module, to prepend to a model (e.g. for ONNX export)."""

    def __init__(self, method: str = "standardize") -> None:
        super().__init__()
        NORMALIZATIONS.get(method)  # ConfigError now rather than at the first batch
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_clip(x, self.method)
