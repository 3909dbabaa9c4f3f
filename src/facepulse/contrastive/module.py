"""Frequency-contrast training around any registered backbone (Lightning).

Gideon & Stent, "The Way to my Heart is through Contrastive Learning: Remote
Photoplethysmography from Unlabelled Video", ICCV 2021:

1. anchor: the backbone's pulse ``y_a`` on the clip;
2. negative: the clip resampled in time by a random ``r`` in ``[resample_min,
   resample_max]`` (one factor per sample; its pulse moves to ``f * r``), its pulse ``y_n``;
3. positive: ``y_n`` resampled back by ``1 / r``, which should match ``y_a``;
4. multi-view triplet loss (:mod:`facepulse.contrastive.triplet`) on N random views of
   each branch, optionally with memory-bank negatives and the saliency sampler's losses.

Issue 14 (docs/training.md): ``contrastive.branches: equal`` runs both branches on L
frames (the paper's shorter negative rewards an output locked to the clip's edges), and
``contrastive.common_weight`` penalises the output power common to every clip of a batch
(:func:`common_power`). Both are off by default (the paper's set-up).

``contrastive.objective: spectral_prior`` trains with the non-contrastive SiNC priors
instead (Speth et al., CVPR 2023; :mod:`facepulse.contrastive.prior`). Objectives are
registered in :data:`facepulse.contrastive.objectives.OBJECTIVES`. ``contrastive.ema_teacher``
adds a mean teacher (Tarvainen & Valpola, NeurIPS 2017): an exponential moving average of
the model's weights whose in-band spectra of the same input are a target for the model's.
The memory bank stores each entry's video, and entries of a clip's own video are not
used as its negatives (``contrastive.bank_exclude_same_video``).

Labels are never used for training. Model selection is unsupervised: the validation
irrelevant power ratio ``val_ipr`` (share of the pulse's power outside the HR band,
lower is better; the paper's choice), or with ``contrastive.select: snr`` the pulse SNR
at the in-band spectral peak ``val_snr_db`` (higher is better; also label-free, and still
informative when ``contrastive.ipr_weight`` trains the IPR down). ``val_mae_bpm`` is
logged as information when the validation clips carry labels.
The backbone is ``self.model`` so that checkpoints load like a supervised model's.

Resuming is bit for bit (docs/training.md): the resampling factors and the views are
drawn from a generator seeded by ``(seed, process rank, global step)`` at every step
(:func:`step_generator`), never from torch's global random state, so a resumed run
redraws exactly what the uninterrupted one drew; the memory bank (queue, pointer,
fill) is saved in every checkpoint (``checkpoint["facepulse_contrastive"]``) and
restored from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import copy

import lightning as L
import numpy as np
import torch
from torch import nn

from facepulse.config import ExperimentConfig
from facepulse.contrastive.memory_bank import MemoryBank
from facepulse.contrastive.objectives import (
    OBJECTIVES,
    ObjectiveOutput,
    batch_fps,
    run_backbone,
    video_codes,
)
from facepulse.contrastive.prior import spectral_prior_objective  # noqa: F401  (registers "spectral_prior")
from facepulse.contrastive.resample import (
    max_view_len,
    resample_clips,
    resample_signals,
    sample_factors,
    sample_views,
    valid_length,
)
from facepulse.contrastive.saliency import SaliencyModel, saliency_sparsity, saliency_temporal
from facepulse.contrastive.triplet import MultiViewTripletLoss
from facepulse.errors import ConfigError, InputError
from facepulse.losses import SpectralPriorLoss, band_spectra, build_loss, irrelevant_power_ratio, snr_db
from facepulse.losses.spectral import as_batch_values
from facepulse.models import build_model
from facepulse.models.normalize import normalize_clip
from facepulse.train.module import VAL_BAND_BPM, build_optimizer, clip_hr_bpm, init_from, pulse_from_output

Batch = Mapping[str, Any]


@dataclass
class Branches:
    """The three branches of the frequency contrast for a batch of B clips of T frames.

    anchor : (B, T) pulse of the clips (with ``branches: equal``, T is L: a window of each clip).
    negative : (B, L) pulse of the sped-up clips, all from real frames (L <= T).
    positive : (B, T) the negative slowed back down; only ``positive[b, :positive_len[b]]``
        comes from the negative (the rest repeats its last value).
    factor : (B,) resampling factors r; positive_len : (B,) long.
    saliency : (B, T + L, g, g) saliency maps of the anchor's T frames then the
        negative's L frames, or None without a saliency sampler.
    """

    anchor: torch.Tensor
    negative: torch.Tensor
    positive: torch.Tensor
    factor: torch.Tensor
    positive_len: torch.Tensor
    saliency: torch.Tensor | None = None


_run = run_backbone


def window_offsets(
    length: int, window: int, factor: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B,) long random starts ``o`` with ``o + (window - 1) * factor <= length - 1``.

    The start of the anchor window and of the sped-up negative in ``branches="equal"``
    (uniform over every start at which the negative's ``window`` frames are all real).
    """
    room = (length - 1) - (window - 1) * factor.double()  # last admissible start, >= 0
    if bool((room < -1e-4).any()):
        raise ConfigError(f"contrastive: {window} frames sped up by {float(factor.max()):g} need more than {length}")
    dev = generator.device if generator is not None else factor.device
    u = torch.rand(factor.shape[0], generator=generator, device=dev, dtype=torch.float64).to(factor.device)
    return torch.floor(u * (torch.floor(room.clamp(min=0) + 1e-4) + 1)).long()


def frequency_contrast(
    model: nn.Module,
    clips: torch.Tensor,
    factor: torch.Tensor,
    interpolation: str = "nearest",
    normalize: str = "standardize",
    offset: torch.Tensor | None = None,
) -> Branches:
    """Run the backbone on the clips and on their sped-up copies.

    Gideon & Stent, ICCV 2021 (frequency contrast, Fig. 2). The sped-up clips are cut to
    the frames that exist for every sample, ``L = valid_length(T, max r)``, rather than
    padded: a padded tail is a cue that tells the network which branch it sees, and it
    learns that instead of the pulse.

    Parameters
    ----------
    model : backbone, clips (B, C, T, H, W) -> pulse (B, T); a :class:`SaliencyModel`
        also returns its saliency maps.
    clips : (B, C, T, H, W) raw clips (pixel values).
    factor : (B,) resampling factors r > 1.
    interpolation : ``"nearest"`` or ``"linear"`` (see :func:`resample_clips`).
    normalize : clip normalisation applied to each branch after resampling (frame
        differences must be taken between the frames the network actually sees).
    offset : None (the paper: the anchor is the whole clip of T frames, the negative its
        first ``L`` sped-up frames) or (B,) long starts from :func:`window_offsets`
        (``contrastive.branches: equal``): the anchor is the window of ``L`` frames from
        ``offset[b]`` and the negative is sped up from the same frame, so both branches
        are ``L`` frames long. Equal lengths take away the clip-position collapse
        (docs/training.md): with a shorter negative, any output with a fixed number of
        cycles per clip, locked to the clip's edges, moves to ``f * T / L`` in the
        negative exactly as a pulse moves to ``f * r``, and scores like one.
    """
    b, t = clips.shape[0], clips.shape[2]
    n_neg = int(valid_length(t, factor.max()[None])[0])
    if offset is not None:
        if offset.shape != (b,):
            raise InputError(f"frequency_contrast: expected one offset per clip ({b}), got {tuple(offset.shape)}")
        idx = (offset.to(clips.device).long()[:, None] + torch.arange(t, device=clips.device)).clamp(max=t - 1)
        clips = torch.take_along_dim(clips, idx.view(b, 1, t, 1, 1), dim=2)  # each clip from its offset
        negative_clips = resample_clips(clips.float(), factor, length=n_neg, mode=interpolation)
        clips, t = clips[:, :, :n_neg], n_neg  # the anchor: the L frames the negative starts with
    else:
        negative_clips = resample_clips(clips.float(), factor, length=n_neg, mode=interpolation)
    anchor, sal_a = _run(model, normalize_clip(clips, normalize))
    negative, sal_n = _run(model, normalize_clip(negative_clips, normalize))
    for name, out, n in (("anchor", anchor, t), ("negative", negative, n_neg)):
        if out.shape != (b, n):
            raise InputError(
                f"contrastive backbone must return pulses (B, T) = {(b, n)}, got {tuple(out.shape)} ({name} branch)"
            )
    # positive[t] = negative[t / r], real while t / r <= n_neg - 1
    positive_len = (torch.floor((n_neg - 1) * factor + 1e-4).long() + 1).clamp(max=t)
    positive = resample_signals(negative, 1.0 / factor, length=t, pad="edge")
    saliency = None if sal_a is None else torch.cat([sal_a, sal_n], dim=1)
    return Branches(anchor, negative, positive, factor, positive_len, saliency)


def common_power(pulses: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Share of the power of a batch's pulses that is common to all of them (scalar in [0, 1]).

    Each (B, T) pulse is standardised over time, then the power of their batch mean is
    taken: ``mean_t (mean_b z[b, t])^2``. An output locked to the position inside the
    clip (the same waveform whatever the video: issue 14) gives 1; pulses of different
    videos, with their own rates and phases, give about ``1 / B``. Whatever is common to
    every clip of the batch carries nothing about the video, so it is a penalty
    (``contrastive.common_weight``).
    """
    z = pulses - pulses.mean(dim=1, keepdim=True)
    z = z / (z.pow(2).mean(dim=1, keepdim=True) + eps).sqrt()
    return z.mean(dim=0).pow(2).mean()


def build_contrastive_model(config: ExperimentConfig) -> nn.Module:
    """The backbone of ``config.model``; behind a saliency sampler if ``contrastive.saliency``."""
    model = build_model(config.model.name, **config.model.params)
    c = config.contrastive
    if c.saliency and not isinstance(model, SaliencyModel):
        from facepulse.contrastive.saliency import SaliencySampler

        try:
            sampler = SaliencySampler(**c.saliency_params)
        except TypeError as err:
            raise ConfigError(f"contrastive.saliency_params: {err}") from None
        model = SaliencyModel(model, sampler)
    return model


def check_config(config: ExperimentConfig) -> None:
    """ConfigError naming the field when the contrastive settings cannot work together."""
    c, d = config.contrastive, config.data
    if not 1.0 < c.resample_min <= c.resample_max:
        raise ConfigError(
            "contrastive.resample_min/max: need 1 < resample_min <= resample_max, "
            f"got {c.resample_min}, {c.resample_max}"
        )
    longest = max_view_len(d.clip_len, c.resample_max)
    if c.objective == "frequency_contrast" and c.view_len > longest:
        raise ConfigError(
            f"contrastive.view_len {c.view_len} > {longest}: a clip of data.clip_len {d.clip_len} frames sped up "
            f"{c.resample_max:g}x has only {longest} real frames"
        )
    if c.memory_bank and c.distance == "mcc" and c.objective == "frequency_contrast":
        raise ConfigError("contrastive.memory_bank needs distance psd_mse or l1 (it stores spectra), not mcc")
    if c.objective == "spectral_prior":
        low, high = c.prior_resample
        if not 0 < low <= high:
            raise ConfigError(f"contrastive.prior_resample: need 0 < low <= high, got {low}, {high}")
        if (c.view_len - 1) * high > d.clip_len - 1 + 1e-6:
            raise ConfigError(
                f"contrastive.view_len {c.view_len}: resampled by up to prior_resample {high:g} it needs "
                f"more than data.clip_len {d.clip_len} frames"
            )


#: Checkpoint entry of the contrastive state that is not in the weights (the memory bank).
CHECKPOINT_STATE = "facepulse_contrastive"


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The CPU generator of one training step: seeded by ``(seed, rank, step)`` only.

    Everything random in a step (resampling factors, view positions) is drawn from it,
    so a run resumed at step ``k`` draws what the uninterrupted run drew at step ``k``,
    and each DDP process draws its own.
    """
    state = np.random.SeedSequence([int(seed), int(rank), int(step)]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def bank_keep(codes: torch.Tensor, bank_codes: torch.Tensor) -> torch.Tensor:
    """(B, K) bool: queued entry k may be a negative of clip b (not from the same video).

    Entries or clips of unknown video (code -1) are always kept.
    """
    same = codes[:, None] == bank_codes.to(codes)[None, :]
    return ~same | (codes[:, None] < 0) | (bank_codes.to(codes)[None, :] < 0)


@OBJECTIVES.register("frequency_contrast")
def frequency_contrast_objective(
    module: ContrastiveModule, batch: Batch, generator: torch.Generator | None
) -> ObjectiveOutput:
    """Gideon & Stent, ICCV 2021: multi-view triplet loss of the anchor, its positive and
    its frequency-shifted negative (plus memory-bank negatives of other videos)."""
    c = module.config.contrastive
    clips = batch["clip"]
    fps = batch_fps(batch, clips.float())
    factor = sample_factors(clips.shape[0], c.resample_min, c.resample_max, generator, device=clips.device)
    offset = None
    if c.branches == "equal":
        n_neg = int(valid_length(clips.shape[2], factor.max()[None])[0])
        offset = window_offsets(clips.shape[2], n_neg, factor, generator)
    br = frequency_contrast(module.model, clips, factor, c.interpolation, module.config.model.normalize, offset)
    # float32 for the spectra: FFTs have no bf16 kernels (bf16-mixed precision)
    anchor = sample_views(br.anchor.float(), c.n_views, c.view_len, generator=generator)
    positive = sample_views(br.positive.float(), c.n_views, c.view_len, br.positive_len, generator)
    negative = sample_views(br.negative.float(), c.n_views, c.view_len, generator=generator)
    codes = video_codes(batch.get("video_id"), clips.shape[0], clips.device)
    bank, keep = None, None
    if module.bank is not None and len(module.bank):
        bank = module.bank.spectra()
        if c.bank_exclude_same_video:
            keep = bank_keep(codes, module.bank.video_codes())
    terms = module.loss_fn.terms(anchor, positive, negative, fps, bank, keep)
    anchor_input = _anchor_input(clips, offset, br.anchor.shape[1], module.config.model.normalize)
    return ObjectiveOutput(
        loss=terms.loss.mean(),
        terms={"positive": terms.positive.mean(), "negative": terms.negative.mean(), "bank": terms.bank.mean()},
        anchor=br.anchor,
        anchor_input=anchor_input,
        pulses=[br.anchor, br.negative],
        saliency=br.saliency,
        bank_spectra=module.loss_fn.spectra(anchor, fps) if module.bank is not None else None,
        bank_codes=codes.repeat_interleave(c.n_views),
    )


def _anchor_input(clips: torch.Tensor, offset: torch.Tensor | None, length: int, normalize: str) -> torch.Tensor:
    """The normalised clips of the anchor branch (for the EMA teacher)."""
    if offset is not None:
        b, t = clips.shape[0], clips.shape[2]
        idx = (offset.to(clips.device).long()[:, None] + torch.arange(length, device=clips.device)).clamp(max=t - 1)
        clips = torch.take_along_dim(clips, idx.view(b, 1, length, 1, 1), dim=2)
    return normalize_clip(clips, normalize)


def teacher_distance(student: torch.Tensor, teacher: torch.Tensor, fps: torch.Tensor, band_bpm) -> torch.Tensor:
    """(B,) total-variation distance between the normalised in-band spectra of two pulses.

    Tarvainen & Valpola, NeurIPS 2017 (mean teacher: consistency with an EMA of the
    model), on phase-free spectra as the frequency losses compare pulses. 0 for the same
    rate, 1 for disjoint spectra.
    """
    lo, hi = band_bpm
    s = band_spectra(student.float(), fps, lo, hi)
    t = band_spectra(teacher.detach().float(), fps, lo, hi)
    return 0.5 * (s - t).abs().sum(dim=-1)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """``w_t <- decay * w_t + (1 - decay) * w_s`` for every parameter; buffers are copied."""
    for p_t, p_s in zip(teacher.parameters(), student.parameters(), strict=True):
        p_t.mul_(decay).add_(p_s.detach(), alpha=1.0 - decay)
    for b_t, b_s in zip(teacher.buffers(), student.buffers(), strict=True):
        b_t.copy_(b_s)


class ContrastiveModule(L.LightningModule):
    """Self-supervised frequency-contrast training of ``config.model`` (see module docstring).

    Batches are dicts with ``"clip"`` (B, 3, T, H, W) pixel values and ``"fps"``;
    ``"hr_bpm"`` is read only by validation, for information.
    """

    monitor = "val_ipr"
    monitor_mode = "min"

    def __init__(self, config: ExperimentConfig) -> None:
        super().__init__()
        check_config(config)
        self.config = config
        if config.contrastive.select == "snr":
            self.monitor, self.monitor_mode = "val_snr_db", "max"
        torch.manual_seed(config.seed)  # same config -> same initial weights
        self.model = build_contrastive_model(config)
        if config.model.init_from:  # e.g. a model trained without labels on synthetic video
            init_from(self.model, config.model.init_from, config.model.name)
        c = config.contrastive
        self.objective = OBJECTIVES.get(c.objective)
        self.loss_fn = MultiViewTripletLoss(
            c.distance, c.band_bpm[0], c.band_bpm[1], bank_weight=c.bank_weight, window=c.window
        )
        prior = build_loss("spectral_prior", **c.prior_params)
        assert isinstance(prior, SpectralPriorLoss)
        self.prior = prior
        self.bank = MemoryBank(c.memory_bank) if c.memory_bank else None
        self.teacher: nn.Module | None = None
        if c.ema_teacher is not None:
            self.teacher = copy.deepcopy(self.model).requires_grad_(False)

    def configure_optimizers(self):
        return build_optimizer(self.model.parameters(), self.config)

    # ------------------------------------------------------------------------ steps
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Pulse (B, T) of raw clips (normalised as ``model.normalize`` says)."""
        return self.model(normalize_clip(clips, self.config.model.normalize))

    def step_losses(
        self, batch: Batch, update_bank: bool = False, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """All training terms of one batch (scalars): ``loss`` (the total), the objective's
        terms (``frequency_contrast``: ``positive``, ``negative``, ``bank``;
        ``spectral_prior``: ``bandwidth``, ``peak_sparsity``, ``variance``), and as
        configured ``ipr``, ``common``, ``teacher``, ``sparsity``, ``temporal``.

        ``update_bank`` pushes the batch's spectra (and video codes) into the memory bank
        afterwards (never before: a clip must not be its own negative). Random draws come
        from ``generator`` (training passes :func:`step_generator`; None: torch's global
        random state).
        """
        c = self.config.contrastive
        res = self.objective(self, batch, generator)
        fps = batch_fps(batch, res.anchor.float())
        out = dict(res.terms)
        loss = res.loss
        if c.ipr_weight > 0:
            out["ipr"] = irrelevant_power_ratio(res.anchor.float(), fps, *c.band_bpm).mean()
            loss = loss + c.ipr_weight * out["ipr"]
        if c.common_weight > 0:
            # every branch: a fixed waveform per branch is the collapse (docs/training.md)
            out["common"] = torch.stack([common_power(p.float()) for p in res.pulses]).mean()
            loss = loss + c.common_weight * out["common"]
        if self.teacher is not None:
            self.teacher.train(self.model.training)
            with torch.no_grad():
                target, _ = run_backbone(self.teacher, res.anchor_input)
            out["teacher"] = teacher_distance(res.anchor, target, fps, self.prior_band()).mean()
            loss = loss + c.teacher_weight * out["teacher"]
        if res.saliency is not None:
            out["sparsity"], out["temporal"] = saliency_sparsity(res.saliency), saliency_temporal(res.saliency)
            loss = loss + c.saliency_sparsity * out["sparsity"] + c.saliency_temporal * out["temporal"]
        if update_bank and self.bank is not None and res.bank_spectra is not None:
            self.bank.push(res.bank_spectra, fps, res.bank_codes)
        out["loss"] = loss
        return out

    def prior_band(self) -> tuple[float, float]:
        """HR band (bpm) of the teacher's spectra: the spectral prior's band."""
        return self.prior.min_bpm, self.prior.max_bpm

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.teacher is not None and self.config.contrastive.ema_teacher is not None:
            ema_update(self.teacher, self.model, self.config.contrastive.ema_teacher)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        gen = step_generator(self.config.seed, self.global_rank, self.global_step)
        out = self.step_losses(batch, update_bank=True, generator=gen)
        b = batch["clip"].shape[0]
        self.log("train_loss", out["loss"], prog_bar=True, on_step=True, on_epoch=True, batch_size=b)
        for name, value in out.items():
            if name != "loss" and (name != "bank" or self.bank is not None):
                self.log(f"train_{name}", value, on_epoch=True, batch_size=b)
        return out["loss"]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        lo, hi = self.config.contrastive.band_bpm
        pred = self(batch["clip"]).float()
        fps = batch_fps(batch, pred)
        pulse = pulse_from_output(pred, self.config.model.normalize)
        b = pred.shape[0]
        ipr = irrelevant_power_ratio(pulse, fps, lo, hi).mean()
        snr = snr_db(pulse, fps, None, min_bpm=lo, max_bpm=hi).mean()  # around the in-band peak: no labels
        self.log("val_ipr", ipr, prog_bar=True, batch_size=b, sync_dist=True)
        self.log("val_snr_db", snr, batch_size=b, sync_dist=True)
        hr = batch.get("hr_bpm")
        if hr is not None:  # information only, never used for selection
            hr = as_batch_values(hr, b, pred, "hr_bpm")
            if bool(torch.isfinite(hr).all()):
                mae = (clip_hr_bpm(pulse, fps, *VAL_BAND_BPM) - hr).abs().mean()
                self.log("val_mae_bpm", mae, prog_bar=True, batch_size=b, sync_dist=True)

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # tensors and plain types only: checkpoints load with weights_only=True
        checkpoint[CHECKPOINT_STATE] = {"bank": self.bank.state() if self.bank is not None else None}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(CHECKPOINT_STATE, {}).get("bank")
        if self.bank is not None:
            if saved is None:
                self.bank.reset()  # a checkpoint from before the bank was saved: it refills
            else:
                self.bank.load_state(saved)
