"""The loss registry and the common calling convention of every pulse loss."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from facepulse.errors import ConfigError
from facepulse.losses.spectral import check_signals
from facepulse.registry import Registry

LOSSES: Registry[type["PulseLoss"]] = Registry("loss")

REDUCTIONS = ("mean", "none")


class PulseLoss(nn.Module):
    """Base class: ``loss(pred, target=None, *, fps=None, hr_bpm=None) -> Tensor``.

    Every loss takes the same arguments so a training loop can call any of them:

    * ``pred`` : (B, T) predicted pulse (float).
    * ``target`` : (B, T) reference PPG, or the second signal of a pair (MCC, PSD-MSE).
    * ``fps`` : frame rate in Hz, float or (B,) tensor (per-sample rates allowed).
    * ``hr_bpm`` : (B,) reference heart rate in beats per minute.

    ``needs`` lists the arguments a loss requires (ConfigError naming the missing one).
    ``reduction="mean"`` returns the batch mean (a scalar), ``"none"`` the (B,) values.
    Subclasses implement :meth:`per_sample`, vectorised over the batch.
    """

    needs: ClassVar[frozenset[str]] = frozenset()
    name: ClassVar[str] = "loss"

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ConfigError(f"loss {self.name!r}: reduction {reduction!r} unknown; available: mean, none")
        self.reduction = reduction

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor | None = None,
        *,
        fps: float | torch.Tensor | None = None,
        hr_bpm: torch.Tensor | float | None = None,
    ) -> torch.Tensor:
        given = {"target": target, "fps": fps, "hr_bpm": hr_bpm}
        for arg in sorted(self.needs):
            if given[arg] is None:
                raise ConfigError(f"loss {self.name!r} needs {arg}")
        check_signals(pred, f"loss {self.name!r} pred")
        if target is not None and "target" in self.needs and target.shape != pred.shape:
            raise ConfigError(
                f"loss {self.name!r}: target shape {tuple(target.shape)} != pred shape {tuple(pred.shape)}"
            )
        values = self.per_sample(pred, target, fps, hr_bpm)
        return values.mean() if self.reduction == "mean" else values

    def per_sample(
        self,
        pred: torch.Tensor,
        target: torch.Tensor | None,
        fps: float | torch.Tensor | None,
        hr_bpm: torch.Tensor | float | None,
    ) -> torch.Tensor:
        """The (B,) loss values."""
        raise NotImplementedError
