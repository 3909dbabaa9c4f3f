"""PhysNet: 3D-CNN encoder-decoder from a face clip to the pulse signal.

Yu et al., "Remote Photoplethysmograph Signal Measurement from Facial Videos Using
Spatio-Temporal Networks", BMVC 2019 (PhysNet, 3DCNN-ED variant).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facepulse.errors import ConfigError, InputError

UPSAMPLE_MODES = ("transpose", "interp")


def conv_block(
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int, int],
    conv: type[nn.Conv3d] = nn.Conv3d,
    **conv_kwargs: float,
) -> nn.Sequential:
    """``conv -> BatchNorm3d -> ReLU`` with same-size padding (PhysNet's ST-block)."""
    padding = tuple(k // 2 for k in kernel_size)
    return nn.Sequential(
        conv(in_channels, out_channels, kernel_size, padding=padding, bias=False, **conv_kwargs),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=False),
    )


def check_clip(x: torch.Tensor, in_channels: int, model: str) -> None:
    """InputError unless ``x`` is a float batch of clips ``(B, in_channels, T, H, W)``."""
    if x.ndim != 5 or x.shape[1] != in_channels:
        raise InputError(f"{model}: expected clips (B, {in_channels}, T, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(f"{model}: expected a float clip, got dtype {x.dtype} (normalise it first)")


class TemporalUpsample(nn.Module):
    """Doubles the temporal length, then crops to the encoder's length at that stage.

    ``mode="transpose"``: ``ConvTranspose3d`` kernel (4, 1, 1), stride (2, 1, 1) ->
    BatchNorm -> ELU (PhysNet). ``mode="interp"``: linear interpolation in time (spatial
    size unchanged) -> ``Conv3d`` kernel (3, 1, 1) -> BatchNorm -> ELU, which avoids the
    checkerboard aliasing of strided transposed convolutions.

    Shapes: ``(B, C, T_in, H, W)`` and target ``length`` (<= 2 T_in) -> ``(B, C, length, H, W)``.
    """

    def __init__(self, channels: int, mode: str = "transpose") -> None:
        super().__init__()
        if mode not in UPSAMPLE_MODES:
            raise ConfigError(f"upsample mode {mode!r} unknown; available: {', '.join(UPSAMPLE_MODES)}")
        self.mode = mode
        if mode == "transpose":
            self.conv: nn.Module = nn.ConvTranspose3d(
                channels, channels, (4, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0), bias=False
            )
        else:
            self.conv = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.bn = nn.BatchNorm3d(channels)
        self.act = nn.ELU()

    def forward(self, x: torch.Tensor, length: int) -> torch.Tensor:
        if self.mode == "transpose":
            # output is exactly 2 * T_in >= length (ceil-mode pooling); drop the extra frame
            x = self.conv(x)[:, :, :length]
        else:
            x = F.interpolate(x, size=(length, x.shape[3], x.shape[4]), mode="trilinear", align_corners=False)
            x = self.conv(x)
        return self.act(self.bn(x))


class PulseHead(nn.Module):
    """Spatial average to 1x1, then a 1x1x1 conv to one channel: ``(B, C, T, H, W) -> (B, T)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=(3, 4), keepdim=True)  # adaptive average pool to (T, 1, 1)
        return self.proj(x).flatten(1)


class PhysNet(nn.Module):
    """PhysNet 3DCNN-ED: clip ``(B, 3, T, H, W)`` float -> pulse ``(B, T)``.

    Yu et al., BMVC 2019. Encoder: conv 1x5x5 (c) -> spatial max-pool -> 2 ST-blocks
    3x3x3 (2c, 4c) -> spatio-temporal max-pool -> 2 ST-blocks -> spatio-temporal max-pool
    -> 2 ST-blocks -> spatial max-pool -> 2 ST-blocks (all 4c); decoder: two x2 temporal
    upsamplings back to T, spatial average to 1x1, 1x1x1 conv to one channel.
    ``base_channels=16`` is the paper's width (16, 32, 64).

    Pooling uses ``ceil_mode`` so any T, H, W >= 1 works: time goes T -> ceil(T/2) ->
    ceil(T/4) and each upsampling is cropped to the encoder's length at that stage, so
    the output has exactly T samples (no adaptive-pool resampling). Input clips are
    expected normalised (:mod:`facepulse.models.normalize`).

    Parameters
    ----------
    base_channels : width of the first layer; later layers use 2x and 4x.
    upsample : ``"transpose"`` (paper) or ``"interp"`` (interpolation + conv).
    in_channels : colour channels of the clip.
    """

    def __init__(self, base_channels: int = 16, upsample: str = "transpose", in_channels: int = 3) -> None:
        super().__init__()
        if base_channels < 1:
            raise ConfigError(f"physnet base_channels must be >= 1, got {base_channels}")
        c1, c2, c4 = base_channels, 2 * base_channels, 4 * base_channels
        self.in_channels = in_channels
        self.stem = conv_block(in_channels, c1, (1, 5, 5))
        self.pool_s1 = nn.MaxPool3d((1, 2, 2), ceil_mode=True)
        self.enc1 = nn.Sequential(conv_block(c1, c2, (3, 3, 3)), conv_block(c2, c4, (3, 3, 3)))
        self.pool_st1 = nn.MaxPool3d((2, 2, 2), ceil_mode=True)
        self.enc2 = nn.Sequential(conv_block(c4, c4, (3, 3, 3)), conv_block(c4, c4, (3, 3, 3)))
        self.pool_st2 = nn.MaxPool3d((2, 2, 2), ceil_mode=True)
        self.enc3 = nn.Sequential(conv_block(c4, c4, (3, 3, 3)), conv_block(c4, c4, (3, 3, 3)))
        self.pool_s2 = nn.MaxPool3d((1, 2, 2), ceil_mode=True)
        self.enc4 = nn.Sequential(conv_block(c4, c4, (3, 3, 3)), conv_block(c4, c4, (3, 3, 3)))
        self.up1 = TemporalUpsample(c4, upsample)
        self.up2 = TemporalUpsample(c4, upsample)
        self.head = PulseHead(c4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_clip(x, self.in_channels, "physnet")
        t0 = x.shape[2]
        x = self.enc1(self.pool_s1(self.stem(x)))
        t1 = (t0 + 1) // 2
        x = self.enc2(self.pool_st1(x))
        x = self.enc3(self.pool_st2(x))
        x = self.enc4(self.pool_s2(x))
        x = self.up2(self.up1(x, t1), t0)
        return self.head(x)
