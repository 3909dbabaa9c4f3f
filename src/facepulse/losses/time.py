"""Time-domain pulse losses."""

from __future__ import annotations

from typing import ClassVar

import torch

from facepulse.losses.base import LOSSES, PulseLoss

EPS = 1e-8


def pearson_r(x: torch.Tensor, y: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Pearson correlation of each pair of signals: (B, T), (B, T) -> (B,), unitless.

    ``r = sum(xc yc) / (sqrt(sum xc^2 + eps) sqrt(sum yc^2 + eps))`` with ``xc = x - mean(x)``;
    ``eps`` keeps a constant signal finite (r = 0, finite gradient).
    """
    xc = x - x.mean(dim=-1, keepdim=True)
    yc = y - y.mean(dim=-1, keepdim=True)
    num = (xc * yc).sum(dim=-1)
    return num / (torch.sqrt((xc * xc).sum(dim=-1) + eps) * torch.sqrt((yc * yc).sum(dim=-1) + eps))


@LOSSES.register("neg_pearson")
class NegPearsonLoss(PulseLoss):
    """Negative Pearson loss ``1 - r(pred, target)`` per sample, in [0, 2].

    Yu et al., BMVC 2019 (PhysNet, eq. 1). Invariant to the scale and offset of either
    signal: 0 for identical shapes, 1 for uncorrelated, 2 for inverted.
    """

    name: ClassVar[str] = "neg_pearson"
    needs: ClassVar[frozenset[str]] = frozenset({"target"})

    def __init__(self, reduction: str = "mean", eps: float = EPS) -> None:
        super().__init__(reduction)
        self.eps = eps

    def per_sample(self, pred, target, fps, hr_bpm):
        return 1.0 - pearson_r(pred, target, self.eps)
