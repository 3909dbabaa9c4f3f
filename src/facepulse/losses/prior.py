"""Non-contrastive spectral priors of a pulse: bandwidth, sparsity, variance (self-supervised).

Speth et al., "Non-Contrastive Unsupervised Learning of Physiological Signals from Video",
CVPR 2023 (SiNC). Three priors on the predicted pulse's power spectrum, none needing a label
or a negative example:

* **bandwidth**: the share of the power outside the HR band (a pulse lives in 40-180 bpm);
* **sparsity**: the share of the in-band power outside a narrow window around the in-band
  spectral peak (a pulse has one dominant frequency);
* **variance**: the average normalised in-band spectrum of a batch should be spread over
  the band, measured as the squared 1-D Wasserstein distance (squared CDF difference) to
  the uniform spectrum. Without it, one constant waveform satisfies the other two priors
  for every clip: this term is what forbids the clip-position collapse of issue 14, and it
  needs batches of clips with different pulse rates (frequency-resampling augmentation).

Written from the paper's description (Section 3); band and window are the paper's
defaults (40-180 bpm, +-6 bpm around the peak).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from facepulse.errors import ConfigError
from facepulse.losses.base import LOSSES, PulseLoss
from facepulse.losses.frequency import irrelevant_power_ratio
from facepulse.losses.spectral import (
    as_batch_values,
    band_mask,
    check_band,
    check_signals,
    hr_bins_bpm,
    rfft_psd,
    torch_psd,
)
from facepulse.losses.time import EPS

PRIOR_MIN_BPM = 40.0
PRIOR_MAX_BPM = 180.0


def bandwidth_loss(
    pred: torch.Tensor, fps: float | torch.Tensor, min_bpm: float = PRIOR_MIN_BPM, max_bpm: float = PRIOR_MAX_BPM
) -> torch.Tensor:
    """(B,) share of each pulse's power outside ``[min_bpm, max_bpm]``.

    Speth et al., CVPR 2023 (SiNC bandwidth loss); the same quantity as the irrelevant
    power ratio of Gideon & Stent, ICCV 2021 (:func:`irrelevant_power_ratio`).
    """
    return irrelevant_power_ratio(pred, fps, min_bpm, max_bpm)


def sparsity_loss(
    pred: torch.Tensor,
    fps: float | torch.Tensor,
    min_bpm: float = PRIOR_MIN_BPM,
    max_bpm: float = PRIOR_MAX_BPM,
    width_bpm: float = 6.0,
) -> torch.Tensor:
    """(B,) share of the in-band power farther than ``width_bpm`` from the in-band peak.

    Speth et al., CVPR 2023 (SiNC sparsity loss). Near 0 for a pure tone, near 1 for power
    spread evenly over the band. The peak's position carries no gradient (argmax). The
    half-width is at least the spectral resolution ``60 * fps / T`` bpm of a T-sample
    signal (a tone's main lobe): on short clips (64 frames at 30 fps: 28 bpm) a fixed
    +-6 bpm would count most of a pure tone's own power as spread (0.74 of it).
    """
    check_band(min_bpm, max_bpm, "sparsity_loss")
    if width_bpm <= 0:
        raise ConfigError(f"sparsity_loss: width_bpm must be > 0, got {width_bpm}")
    freqs, power = rfft_psd(pred, fps)
    fps_b = as_batch_values(fps, pred.shape[0], pred, "fps")
    half_width_hz = torch.clamp(fps_b / pred.shape[1], min=width_bpm / 60.0)[:, None]  # (B, 1)
    inside = band_mask(freqs, min_bpm / 60.0, max_bpm / 60.0)
    p_in = power * inside
    peak = torch.gather(freqs, 1, p_in.argmax(dim=-1, keepdim=True))  # (B, 1) Hz
    near = (freqs - peak).abs() <= half_width_hz
    return (p_in * ~near).sum(dim=-1) / (p_in.sum(dim=-1) + EPS)


def band_spectra(
    pred: torch.Tensor,
    fps: float | torch.Tensor,
    min_bpm: float = PRIOR_MIN_BPM,
    max_bpm: float = PRIOR_MAX_BPM,
    step_bpm: float = 1.0,
) -> torch.Tensor:
    """(B, F) in-band power spectra normalised to sum 1, on the bpm grid ``min..max`` step
    ``step_bpm`` (shared by every sample whatever its frame rate).

    Yu et al., AutoHR, IEEE SPL 2020 (DFT power at each HR bin, :func:`torch_psd`).
    """
    check_signals(pred, "band_spectra")
    bins_hz = (hr_bins_bpm(min_bpm, max_bpm, step_bpm) / 60.0).to(pred)
    power = torch_psd(pred, fps, bins_hz, window="hann")
    return power / (power.sum(dim=-1, keepdim=True) + EPS)


def variance_loss(spectra: torch.Tensor, bank: torch.Tensor | None = None) -> torch.Tensor:
    """Scalar squared 1-D Wasserstein distance between the batch's mean spectrum and the uniform one.

    Speth et al., CVPR 2023 (SiNC variance loss): ``mean_f (CDF_mean(f) - CDF_uniform(f))^2``
    over the F bins of ``spectra`` (B, F), each normalised to sum 1 (:func:`band_spectra`).
    0 when the batch's pulse rates cover the band evenly, largest when every clip puts
    its power into the same edge bin. ``bank`` (K, F): earlier (detached) spectra added to
    the average (a memory bank widens the batch).
    """
    if spectra.ndim != 2 or spectra.shape[1] < 2:
        raise ConfigError(f"variance_loss: expected spectra (B, F) with F >= 2, got {tuple(spectra.shape)}")
    rows = spectra if bank is None or bank.shape[0] == 0 else torch.cat([spectra, bank.to(spectra)], dim=0)
    mean = rows.mean(dim=0)
    n_bins = mean.shape[0]
    uniform = torch.arange(1, n_bins + 1, dtype=mean.dtype, device=mean.device) / n_bins
    return (torch.cumsum(mean, dim=0) - uniform).pow(2).mean()


@dataclass
class PriorTerms:
    """The three priors of a batch: ``bandwidth`` (B,), ``sparsity`` (B,), ``variance`` scalar."""

    bandwidth: torch.Tensor
    sparsity: torch.Tensor
    variance: torch.Tensor


@LOSSES.register("spectral_prior")
class SpectralPriorLoss(PulseLoss):
    """SiNC non-contrastive spectral priors (Speth et al., CVPR 2023): no labels needed.

    ``loss = w_b * bandwidth + w_s * sparsity + w_v * variance``. Bandwidth and sparsity
    are per sample; the variance is one value for the batch, added to every sample (the
    batch mean is the paper's loss; ``reduction="none"`` gives the per-sample values).

    Parameters
    ----------
    min_bpm, max_bpm : HR band of the priors (paper: 40-180 bpm).
    width_bpm : half-width of the window around the peak kept by the sparsity prior.
    step_bpm : bin width of the variance prior's spectra.
    bandwidth_weight, sparsity_weight, variance_weight : weights of the three priors.
    """

    needs: ClassVar[frozenset[str]] = frozenset({"fps"})
    name: ClassVar[str] = "spectral_prior"

    #: the variance prior compares the clips of a batch with each other: a clip's loss
    #: depends on the rest of its batch (by design, unlike the supervised losses)
    batch_coupled = True

    def __init__(
        self,
        min_bpm: float = PRIOR_MIN_BPM,
        max_bpm: float = PRIOR_MAX_BPM,
        width_bpm: float = 6.0,
        step_bpm: float = 1.0,
        bandwidth_weight: float = 1.0,
        sparsity_weight: float = 1.0,
        variance_weight: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        check_band(min_bpm, max_bpm, "loss 'spectral_prior'")
        if width_bpm <= 0 or step_bpm <= 0:
            raise ConfigError(f"loss 'spectral_prior': width_bpm and step_bpm must be > 0, got {width_bpm}, {step_bpm}")
        if min(bandwidth_weight, sparsity_weight, variance_weight) < 0:
            raise ConfigError("loss 'spectral_prior': weights must be >= 0")
        self.min_bpm, self.max_bpm = float(min_bpm), float(max_bpm)
        self.width_bpm, self.step_bpm = float(width_bpm), float(step_bpm)
        self.weights = (float(bandwidth_weight), float(sparsity_weight), float(variance_weight))

    def terms(
        self, pred: torch.Tensor, fps: float | torch.Tensor, bank: torch.Tensor | None = None
    ) -> PriorTerms:
        """The three priors of ``pred`` (B, T); ``bank`` (K, F): earlier :meth:`spectra` for the variance."""
        check_signals(pred, "loss 'spectral_prior' pred")
        fps_b = as_batch_values(fps, pred.shape[0], pred, "fps")
        return PriorTerms(
            bandwidth=bandwidth_loss(pred, fps_b, self.min_bpm, self.max_bpm),
            sparsity=sparsity_loss(pred, fps_b, self.min_bpm, self.max_bpm, self.width_bpm),
            variance=variance_loss(self.spectra(pred, fps_b), bank),
        )

    def spectra(self, pred: torch.Tensor, fps: float | torch.Tensor) -> torch.Tensor:
        """(B, F) normalised in-band spectra on the variance prior's bpm grid (:func:`band_spectra`)."""
        return band_spectra(pred, fps, self.min_bpm, self.max_bpm, self.step_bpm)

    def combine(self, terms: PriorTerms) -> torch.Tensor:
        """(B,) weighted sum of the priors (the variance added to every sample)."""
        wb, ws, wv = self.weights
        return wb * terms.bandwidth + ws * terms.sparsity + wv * terms.variance

    def per_sample(
        self,
        pred: torch.Tensor,
        target: torch.Tensor | None,
        fps: float | torch.Tensor | None,
        hr_bpm: torch.Tensor | float | None,
    ) -> torch.Tensor:
        assert fps is not None  # checked by PulseLoss.forward (needs)
        return self.combine(self.terms(pred, fps))
