"""The ``spectral_prior`` objective: non-contrastive SiNC training (Speth et al., CVPR 2023).

Each clip is augmented (:func:`prior_augment`): resampled in time by a random factor
``c`` (its pulse moves to ``f * c``, so a batch covers the HR band whatever the videos'
own rates, which the variance prior needs), a random window of ``contrastive.view_len``
frames, reversed in time and flipped left-right at random. The backbone's pulse on it is
scored by the three spectral priors of :class:`facepulse.losses.SpectralPriorLoss`
(bandwidth, sparsity, variance). No negatives and no labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from facepulse.contrastive.objectives import (
    OBJECTIVES,
    Batch,
    ObjectiveOutput,
    batch_fps,
    run_backbone,
    video_codes,
)
from facepulse.errors import ConfigError, InputError
from facepulse.models.normalize import normalize_clip

if TYPE_CHECKING:
    from facepulse.contrastive.module import ContrastiveModule


def prior_augment(
    clips: torch.Tensor,
    length: int,
    factor_range: tuple[float, float] = (0.6, 1.4),
    flip_time_p: float = 0.5,
    flip_h_p: float = 0.5,
    generator: torch.Generator | None = None,
    mode: str = "nearest",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frequency resampling, random window and flips of each clip (one draw per sample).

    Speth et al., CVPR 2023 (SiNC augmentations: frequency resampling, time reversal,
    horizontal flip). Output frame ``t`` of sample ``b`` is input frame
    ``o[b] + t * c[b]`` (a linear blend of the two nearest frames), so the pulse moves from
    ``f`` to ``f * c[b]`` at the same frame rate; ``o[b]`` is uniform over the starts at
    which all ``length`` frames are real.

    ``mode="nearest"`` (default) takes whole frames, ``"linear"`` blends the two nearest.
    A blend low-passes the sensor noise by an amount that cycles with the fractional
    position ``t * c mod 1``, i.e. at ``|c - round(c)| * fps``: a periodic cue in the
    noise power at an in-band rate for ``c`` near 1, which a network learns instead of the
    pulse (measured: docs/drafts/issue14.md). Nearest frames with ``c >= 1`` only skip
    frames, which leaves white noise white; ``c < 1`` repeats frames (a cue of its own).

    Parameters
    ----------
    clips : (B, C, T, H, W) float clips; length : output frames L, ``(L - 1) * max c <= T - 1``.
    factor_range : ``(low, high)`` range of ``c`` (0 < low <= high).
    flip_time_p, flip_h_p : probabilities of reversing time and of flipping left-right.

    Returns
    -------
    (B, C, L, H, W) clips and their (B,) float64 factors ``c``.
    """
    if clips.ndim != 5 or not clips.is_floating_point():
        raise InputError(f"prior_augment: expected float clips (B, C, T, H, W), got {clips.dtype} {tuple(clips.shape)}")
    low, high = (float(v) for v in factor_range)
    if not 0 < low <= high:
        raise ConfigError(f"contrastive.prior_resample: need 0 < low <= high, got {low}, {high}")
    b, t = clips.shape[0], clips.shape[2]
    if (length - 1) * high > t - 1 + 1e-6:
        raise ConfigError(f"contrastive.view_len {length} resampled by up to {high:g} needs more than {t} frames")
    dev = generator.device if generator is not None else clips.device
    if mode not in ("nearest", "linear"):
        raise ConfigError(f"resampling mode {mode!r} unknown; available: nearest, linear")
    u = torch.rand(b, 4, generator=generator, device=dev, dtype=torch.float64).to(clips.device)
    factor = low + (high - low) * u[:, 0]
    room = torch.floor((t - 1) - (length - 1) * factor + 1e-6).clamp(min=0)
    offset = torch.floor(u[:, 1] * (room + 1))
    pos = (offset[:, None] + torch.arange(length, dtype=torch.float64, device=clips.device) * factor[:, None])
    pos = pos.clamp(max=t - 1)
    left = torch.floor(pos).long()
    right = (left + 1).clamp(max=t - 1)
    shape = (b, 1, length, 1, 1)
    frac = pos - left.double()
    if mode == "nearest":
        out = torch.take_along_dim(clips, torch.where(frac >= 0.5, right, left).view(shape), dim=2)
    else:
        w = frac.to(clips.dtype).view(shape)
        out = torch.take_along_dim(clips, left.view(shape), dim=2) * (1 - w)
        out = out + torch.take_along_dim(clips, right.view(shape), dim=2) * w
    flip_t = (u[:, 2] < flip_time_p).view(b, 1, 1, 1, 1)
    out = torch.where(flip_t, out.flip(2), out)
    flip_h = (u[:, 3] < flip_h_p).view(b, 1, 1, 1, 1)
    return torch.where(flip_h, out.flip(4), out), factor


@OBJECTIVES.register("spectral_prior")
def spectral_prior_objective(
    module: ContrastiveModule, batch: Batch, generator: torch.Generator | None
) -> ObjectiveOutput:
    """SiNC (Speth et al., CVPR 2023): bandwidth + sparsity + variance priors on augmented clips."""
    c = module.config.contrastive
    clips = batch["clip"].float()
    fps = batch_fps(batch, clips)
    views, _ = prior_augment(
        clips, c.view_len, c.prior_resample, c.prior_flip_time, c.prior_flip_h, generator, c.interpolation
    )
    x = normalize_clip(views, module.config.model.normalize)
    pulse, saliency = run_backbone(module.model, x)
    pulse = pulse.float()
    bank = module.bank.spectra() if module.bank is not None and len(module.bank) else None
    terms = module.prior.terms(pulse, fps, bank)
    loss = module.prior.combine(terms).mean()
    codes = video_codes(batch.get("video_id"), clips.shape[0], clips.device)
    return ObjectiveOutput(
        loss=loss,
        terms={"bandwidth": terms.bandwidth.mean(), "peak_sparsity": terms.sparsity.mean(), "variance": terms.variance},
        anchor=pulse,
        anchor_input=x,
        pulses=[pulse],
        saliency=saliency,
        bank_spectra=module.prior.spectra(pulse.detach(), fps),
        bank_codes=codes,
    )
