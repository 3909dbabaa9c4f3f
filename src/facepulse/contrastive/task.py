"""Registers the ``contrastive`` training kind (``kind: contrastive``) for the training runner."""

from __future__ import annotations

from typing import TYPE_CHECKING

from facepulse.train.tasks import TASKS

if TYPE_CHECKING:
    from facepulse.config import ExperimentConfig
    from facepulse.contrastive.module import ContrastiveModule


@TASKS.register("contrastive")
def build_contrastive(config: ExperimentConfig) -> ContrastiveModule:
    """Self-supervised frequency contrast (Gideon & Stent, ICCV 2021); labels are never read."""
    from facepulse.contrastive.module import ContrastiveModule

    return ContrastiveModule(config)
