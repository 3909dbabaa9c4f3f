"""TSNet: a small temporal-shift CNN for CPU rPPG (EfficientPhys / TS-CAN style).

Per-frame 2D convolutions whose channels are partly shifted one frame forward and one
frame back before each convolution (temporal shift module, Lin et al., ICCV 2019), as in
TS-CAN (Liu et al., NeurIPS 2020) and EfficientPhys (Liu et al., WACV 2023); soft spatial
attention masks (DeepPhys, Chen & McDuff, ECCV 2018) pool each frame to one feature vector,
and a dilated temporal convolution stack turns the feature sequence into the pulse.

It is built for small crops (32-48 px) and few channels: about 10 MFLOPs per 36 px frame,
so a laptop CPU runs it far faster than real time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facepulse.errors import InputError


def temporal_shift(x: torch.Tensor, frames: int, fold_div: int = 4) -> torch.Tensor:
    """Shift ``1/fold_div`` of the channels one frame back and as many one frame forward.

    Lin et al., TSM, ICCV 2019. ``x``: (B * T, C, H, W) frames of B clips of ``frames``
    frames each; shifted-in positions at the clip ends are zero. Returns the same shape.
    """
    bt, c, h, w = x.shape
    v = x.reshape(-1, frames, c, h, w)
    fold = c // fold_div
    pad = torch.zeros_like(v[:, :1, :fold])
    ahead = torch.cat([v[:, 1:, :fold], pad], dim=1)  # channel group 1 sees the next frame
    behind = torch.cat([pad, v[:, :-1, fold : 2 * fold]], dim=1)  # group 2 the previous one
    # built by concatenation (no in-place slice writes): exports to ONNX as plain ops
    return torch.cat([ahead, behind, v[:, :, 2 * fold :]], dim=2).reshape(bt, c, h, w)


class ShiftConv(nn.Module):
    """Temporal shift, then 3x3 convolution and tanh (TS-CAN's activation)."""

    def __init__(self, c_in: int, c_out: int, shift: bool = True) -> None:
        super().__init__()
        self.shift = shift
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        if self.shift:
            x = temporal_shift(x, frames)
        return torch.tanh(self.conv(x))


class SoftMask(nn.Module):
    """Sigmoid attention mask normalised to mean 0.5 per frame (DeepPhys / TS-CAN)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = torch.sigmoid(self.conv(x))
        h, w = m.shape[-2:]
        return h * w * m / (2 * m.sum(dim=(2, 3), keepdim=True) + 1e-6)


class TemporalBlock(nn.Module):
    """Residual dilated 1D convolution over time (same length in and out)."""

    def __init__(self, channels: int, dilation: int, kernel: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation)
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.norm(self.conv(x)))


class TSNet(nn.Module):
    """Small temporal-shift CNN: clips (B, C, T, H, W) -> pulse (B, T).

    Parameters
    ----------
    channels : width of the first stage (the second has twice as many).
    temporal_blocks : dilated temporal blocks after pooling (dilations 1, 2, 4, ...).
    in_channels : input channels (3 for RGB).
    """

    def __init__(self, channels: int = 16, temporal_blocks: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        c1, c2 = channels, 2 * channels
        self.input_norm = nn.BatchNorm2d(in_channels)  # EfficientPhys: BN instead of fixed scaling
        self.stem = ShiftConv(in_channels, c1, shift=False)
        self.stage1 = nn.ModuleList([ShiftConv(c1, c1), ShiftConv(c1, c2)])
        self.mask1 = SoftMask(c2)
        self.stage2 = nn.ModuleList([ShiftConv(c2, c2), ShiftConv(c2, c2)])
        self.mask2 = SoftMask(c2)
        self.temporal = nn.Sequential(*[TemporalBlock(c2, 2**i) for i in range(temporal_blocks)])
        self.head = nn.Conv1d(c2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise InputError(f"TSNet: expected clips (B, C, T, H, W), got {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        y = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        y = self.stem(self.input_norm(y), t)
        y = F.avg_pool2d(y, 2)  # the pulse is spatially smooth: halve the resolution early
        for layer in self.stage1:
            y = layer(y, t)
        y = F.avg_pool2d(y * self.mask1(y), 2)
        for layer in self.stage2:
            y = layer(y, t)
        m = self.mask2(y)
        feat = (y * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3)).clamp_min(1e-6)  # (B*T, C2)
        feat = feat.view(b, t, -1).transpose(1, 2)  # (B, C2, T)
        return self.head(self.temporal(feat)).squeeze(1)
