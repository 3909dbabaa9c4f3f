"""Temporal difference convolution (TDC), the building block of AutoHR and PhysFormer."""

from __future__ import annotations

import torch
from torch import nn

from facepulse.errors import ConfigError


class TDConv3d(nn.Conv3d):
    r"""3D convolution with a temporal central-difference term.

    Yu et al., "AutoHR: A Strong End-to-end Baseline for Remote Heart Rate Measurement
    with Neural Searching", IEEE SPL 2020 (TDC, eq. 1).

    For an output position :math:`p_0` with receptive field :math:`\mathcal{R}` and
    :math:`\mathcal{R}'` the taps of :math:`\mathcal{R}` lying in the neighbouring frames
    (temporal offset != 0, i.e. frames t-1 and t+1 for a 3-tap kernel):

    .. math::

        y(p_0) = \sum_{p_n \in \mathcal{R}} w(p_n)\, x(p_0 + p_n)
                 \;-\; \theta\, x(p_0) \sum_{p_n \in \mathcal{R}'} w(p_n)

    i.e. ``conv3d(x, w) - theta * conv3d_1x1x1(x, w_diff)`` with
    ``w_diff[o, i] = sum_{t != centre, h, w} w[o, i, t, h, w]`` applied at the kernel's
    centre tap. ``theta`` in [0, 1] blends a plain convolution (0) and a pure temporal
    difference (1). Because the difference term reads the same centre tap as the main
    convolution, it is folded into the kernel (``w`` minus ``theta * w_diff`` at the
    centre): one ``conv3d`` call, valid for any stride, padding, dilation and groups.
    The bias (if any) is added once, not subtracted with the difference term.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
    padding_mode : as :class:`torch.nn.Conv3d`; every kernel size must be odd (the
        formula needs a centre tap).
    theta : float, weight of the temporal difference term.

    Shapes: input ``(B, C_in, T, H, W)``, output ``(B, C_out, T', H', W')`` as ``nn.Conv3d``.
    The parameters are exactly those of ``nn.Conv3d`` (``weight``, ``bias``), so state
    dicts are interchangeable and ``theta=0`` computes the very same ``conv3d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int] = 3,
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] | str = 1,
        dilation: int | tuple[int, int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        padding_mode: str = "zeros",
        theta: float = 0.7,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
        )
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ConfigError(f"TDConv3d kernel_size {self.kernel_size} must be odd in every dimension")
        self.theta = float(theta)
        kt, kh, kw = self.kernel_size
        centre = torch.zeros(kt, kh, kw)
        centre[kt // 2, kh // 2, kw // 2] = 1.0
        neighbours = torch.ones(kt)
        neighbours[kt // 2] = 0.0  # the centre frame is not part of R'
        # Buffers are not persistent: the state dict stays that of nn.Conv3d.
        self.register_buffer("_centre", centre, persistent=False)
        self.register_buffer("_neighbour_frames", neighbours, persistent=False)

    def difference_kernel(self) -> torch.Tensor:
        """``w_diff`` of the formula: shape ``(C_out, C_in / groups)``."""
        per_frame = self.weight.sum(dim=(3, 4))  # (C_out, C_in/g, kT)
        return (per_frame * self._neighbour_frames.to(per_frame.dtype)).sum(dim=2)

    def effective_weight(self) -> torch.Tensor:
        """The single kernel equal to TDC: ``w - theta * w_diff`` at the centre tap."""
        if self.theta == 0.0 or self.kernel_size[0] == 1:
            return self.weight  # no neighbouring frames: TDC is the plain convolution
        w_diff = self.difference_kernel()[:, :, None, None, None]
        return self.weight - self.theta * w_diff * self._centre.to(self.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", theta={self.theta}"

