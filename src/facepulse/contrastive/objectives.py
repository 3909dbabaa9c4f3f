"""The self-supervised objectives of ``kind: contrastive``, registered by name (``contrastive.objective``).

* ``frequency_contrast``: Gideon & Stent, ICCV 2021 (:mod:`facepulse.contrastive.module`);
* ``spectral_prior``: Speth et al., CVPR 2023, SiNC (:mod:`facepulse.contrastive.prior`).

An objective is a function ``(module, batch, generator) -> ObjectiveOutput``: it draws its
random augmentations from ``generator`` only (resume is bit for bit), runs
``module.model`` and returns its loss terms. What is common to every objective (the
irrelevant power ratio, the common-power penalty, the EMA teacher's consistency term, the
saliency losses, the memory-bank update) is added by
:meth:`facepulse.contrastive.module.ContrastiveModule.step_losses`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from facepulse.contrastive.saliency import SaliencyModel
from facepulse.errors import InputError
from facepulse.losses.spectral import as_batch_values
from facepulse.registry import Registry

if TYPE_CHECKING:
    from facepulse.contrastive.module import ContrastiveModule

Batch = Mapping[str, Any]


@dataclass
class ObjectiveOutput:
    """What one objective computed on a batch.

    loss : scalar loss of the objective; terms : named scalars to log (e.g. ``positive``).
    anchor : (B, L) the student's pulse on ``anchor_input`` (for the IPR and the teacher).
    anchor_input : (B, C, L, H, W) the normalised clips ``anchor`` was computed from.
    pulses : every branch's (B, L_i) pulses (for the common-power penalty).
    saliency : saliency maps of all branches, or None.
    bank_spectra, bank_codes : (M, F) detached spectra and (M,) long video codes to push
        into the memory bank after the step (None: nothing to push).
    """

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    anchor: torch.Tensor
    anchor_input: torch.Tensor
    pulses: list[torch.Tensor] = field(default_factory=list)
    saliency: torch.Tensor | None = None
    bank_spectra: torch.Tensor | None = None
    bank_codes: torch.Tensor | None = None


Objective = Callable[["ContrastiveModule", Batch, "torch.Generator | None"], ObjectiveOutput]

OBJECTIVES: Registry[Objective] = Registry("contrastive objective")


def run_backbone(model: nn.Module, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(pulse, saliency maps or None)`` of normalised clips."""
    if isinstance(model, SaliencyModel):
        return model(clips, return_saliency=True)
    return model(clips), None


def batch_fps(batch: Batch, like: torch.Tensor) -> torch.Tensor:
    """(B,) frame rates of a batch (``batch["fps"]``: float or (B,))."""
    if "fps" not in batch:
        raise InputError("contrastive: batch has no 'fps' field")
    return as_batch_values(batch["fps"], like.shape[0], like, "fps")


def video_codes(ids: Sequence[str] | str | None, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(B,) long codes of a batch's video ids (CRC-32 of the id; -1 = unknown, never excluded).

    The memory bank stores them next to its spectra so that clips of the same video are
    not used as each other's negatives (they carry the same pulse: false negatives).
    """
    if ids is None:
        return torch.full((batch,), -1, dtype=torch.long, device=device)
    ids = [ids] * batch if isinstance(ids, str) else list(ids)
    if len(ids) != batch:
        raise InputError(f"contrastive: expected one video_id per clip ({batch}), got {len(ids)}")
    return torch.tensor([zlib.crc32(str(v).encode()) for v in ids], dtype=torch.long, device=device)
