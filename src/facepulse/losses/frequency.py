"""Frequency-domain pulse losses (supervised and self-supervised).

Units: frequencies in Hz internally, bands and heart rates given in bpm (``bpm / 60``).
All functions are vectorised over the batch and accept a per-sample ``fps``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from facepulse.errors import ConfigError, InputError
from facepulse.losses.base import LOSSES, PulseLoss
from facepulse.losses.spectral import (
    as_batch_values,
    band_mask,
    check_band,
    default_n_fft,
    hr_bins_bpm,
    prepare,
    rfft_freqs_hz,
    rfft_psd,
    torch_psd,
    zero_pad,
)
from facepulse.losses.time import EPS, pearson_r

# Gideon & Stent 2021 use 40-250 bpm as the band where a pulse may live.
SSL_MIN_BPM = 40.0
SSL_MAX_BPM = 250.0


# --------------------------------------------------------------------------- functions
#: What the HR-bin losses do with a reference HR outside their band (see :func:`freq_cross_entropy`).
OUT_OF_BAND = ("ignore", "clamp", "error")


def hr_bin_index(
    hr_bpm: torch.Tensor, min_bpm: float, max_bpm: float, step_bpm: float, out_of_band: str = "error"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest HR bin, (B,) long, and whether the HR lies in the bins, (B,) bool.

    An HR more than half a bin outside ``[min_bpm, max_bpm]`` (or not finite) is
    ``out_of_band``: ``"error"`` raises InputError naming it, ``"clamp"`` and ``"ignore"``
    give the nearest edge bin (bin 0 for a non-finite HR) and ``False`` in the mask.
    """
    if out_of_band not in OUT_OF_BAND:
        raise ConfigError(f"out_of_band {out_of_band!r} unknown; available: {', '.join(OUT_OF_BAND)}")
    inside = (hr_bpm >= min_bpm - step_bpm / 2) & (hr_bpm <= max_bpm + step_bpm / 2)
    if out_of_band == "error" and not bool(inside.all()):
        value = float(hr_bpm[~inside][0])
        raise InputError(f"hr_bpm {value:g} is outside the loss band [{min_bpm:g}, {max_bpm:g}] bpm")
    n_bins = hr_bins_bpm(min_bpm, max_bpm, step_bpm).numel()
    hr = torch.nan_to_num(hr_bpm, nan=min_bpm, posinf=max_bpm, neginf=min_bpm)
    index = torch.round((hr - min_bpm) / step_bpm).long().clamp(0, n_bins - 1)
    return index, inside


def freq_cross_entropy(
    pred: torch.Tensor,
    fps: float | torch.Tensor,
    hr_bpm: torch.Tensor | float,
    min_bpm: float = 40.0,
    max_bpm: float = 180.0,
    step_bpm: float = 1.0,
    window: str | None = "hann",
    logit_scale: float = 1.0,
    out_of_band: str = "ignore",
) -> torch.Tensor:
    """Cross-entropy between the rPPG's HR-band spectrum and the true HR bin, (B,) nats.

    Yu et al., AutoHR, IEEE SPL 2020 (eq. 3, frequency loss). The power ``P`` at each
    bin ``min_bpm..max_bpm`` (step ``step_bpm``) is computed by :func:`torch_psd`,
    normalised to sum 1, scaled by ``logit_scale`` and used as logits of a softmax over
    the bins: ``CE = -log softmax(logit_scale * P / sum P)[k_true]``. ``logit_scale=1``
    reproduces the authors' implementation; its values then lie within
    ``[ln(F + 1) - 1, ln(F - 1 + e)]`` (F bins: a narrow range, but the gradient still
    moves power towards the true bin); larger scales sharpen it.

    A reference HR outside the bins (e.g. 190 bpm with ``max_bpm=180``; or NaN) is
    handled by ``out_of_band``: ``"ignore"`` (default) gives that sample a loss of 0 and
    no gradient (its true bin is not among the logits, so no bin is right; in a batch
    mean it counts as 0), ``"clamp"`` uses the nearest edge bin as the target, and
    ``"error"`` raises InputError.
    """
    b = pred.shape[0]
    bins_hz = hr_bins_bpm(min_bpm, max_bpm, step_bpm).to(pred) / 60.0
    hr = as_batch_values(hr_bpm, b, pred, "hr_bpm")
    target, inside = hr_bin_index(hr, min_bpm, max_bpm, step_bpm, out_of_band)
    psd = torch_psd(pred, fps, bins_hz, window=window)
    logits = logit_scale * psd / (psd.sum(dim=-1, keepdim=True) + EPS)
    ce = F.cross_entropy(logits, target, reduction="none")
    if out_of_band == "ignore":
        ce = torch.where(inside, ce, torch.zeros_like(ce))
    return ce


def band_psd(
    x: torch.Tensor,
    fps: float | torch.Tensor,
    min_bpm: float = SSL_MIN_BPM,
    max_bpm: float = SSL_MAX_BPM,
    n_fft: int | None = None,
    window: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-padded FFT power normalised to sum 1 within the HR band.

    Gideon & Stent, ICCV 2021 (normalised PSD of the rPPG, compared by MSE).

    Returns ``freqs_hz`` (B, F), ``psd`` (B, F) (zero outside the band, sums to 1 inside
    unless the signal is constant) and the band ``mask`` (B, F) bool.
    """
    freqs, power = rfft_psd(x, fps, n_fft, window)
    mask = band_mask(freqs, min_bpm / 60.0, max_bpm / 60.0)
    power = power * mask
    return freqs, power / (power.sum(dim=-1, keepdim=True) + EPS), mask


def psd_mse(
    x: torch.Tensor,
    y: torch.Tensor,
    fps: float | torch.Tensor,
    min_bpm: float = SSL_MIN_BPM,
    max_bpm: float = SSL_MAX_BPM,
    n_fft: int | None = None,
    window: str | None = None,
) -> torch.Tensor:
    """Mean squared difference of the band-normalised PSDs over the band bins, (B,).

    Gideon & Stent, ICCV 2021 (PSD-MSE, the distance of the frequency contrast).
    Unit: (fraction of band power)^2.
    """
    _, px, mask = band_psd(x, fps, min_bpm, max_bpm, n_fft, window)
    _, py, _ = band_psd(y, fps, min_bpm, max_bpm, n_fft, window)
    n_bins = mask.sum(dim=-1).clamp(min=1)
    return ((px - py) ** 2).sum(dim=-1) / n_bins


def irrelevant_power_ratio(
    x: torch.Tensor,
    fps: float | torch.Tensor,
    min_bpm: float = SSL_MIN_BPM,
    max_bpm: float = SSL_MAX_BPM,
    n_fft: int | None = None,
    window: str | None = None,
) -> torch.Tensor:
    """Fraction of the power outside the HR band, (B,) in [0, 1].

    Gideon & Stent, ICCV 2021 (IPR). ``IPR = P_out / (P_out + P_in)`` over the mean-
    removed, zero-padded periodogram (0 for a pure in-band pulse). Normalising by the
    total rather than by ``P_in`` alone keeps it bounded when the band holds no power;
    the authors' implementation does the same.
    """
    freqs, power = rfft_psd(x, fps, n_fft, window)
    inside = band_mask(freqs, min_bpm / 60.0, max_bpm / 60.0)
    p_in = (power * inside).sum(dim=-1)
    p_out = (power * ~inside).sum(dim=-1)
    return p_out / (p_in + p_out + EPS)


def snr_db(
    x: torch.Tensor,
    fps: float | torch.Tensor,
    hr_bpm: torch.Tensor | float | None = None,
    window_bpm: float = 6.0,
    min_bpm: float = SSL_MIN_BPM,
    max_bpm: float = SSL_MAX_BPM,
    n_fft: int | None = None,
    window: str | None = None,
) -> torch.Tensor:
    """Pulse signal-to-noise ratio in dB, (B,).

    de Haan & Jeanne, IEEE TBME 2013 (SNR of rPPG). Within the band, power within
    ``window_bpm`` of the pulse frequency ``f0`` or of its first harmonic ``2 f0`` is
    signal, the rest of the band is noise: ``SNR = 10 log10(P_signal / P_noise)``.
    ``f0 = hr_bpm / 60`` when given, else the in-band spectral peak (no gradient
    through the choice).
    """
    b = x.shape[0]
    freqs, power = rfft_psd(x, fps, n_fft, window)
    band = band_mask(freqs, min_bpm / 60.0, max_bpm / 60.0)
    if hr_bpm is None:
        peak = torch.argmax(power.detach() * band, dim=-1)
        f0 = torch.gather(freqs, 1, peak[:, None])
    else:
        f0 = as_batch_values(hr_bpm, b, x, "hr_bpm")[:, None] / 60.0
    half = window_bpm / 60.0
    near = ((freqs - f0).abs() <= half) | ((freqs - 2 * f0).abs() <= half)
    p_signal = (power * (band & near)).sum(dim=-1)
    p_noise = (power * (band & ~near)).sum(dim=-1)
    return 10.0 * torch.log10((p_signal + EPS) / (p_noise + EPS))


def max_cross_correlation(
    x: torch.Tensor,
    y: torch.Tensor,
    fps: float | torch.Tensor,
    min_bpm: float = SSL_MIN_BPM,
    max_bpm: float = SSL_MAX_BPM,
    n_fft: int | None = None,
) -> torch.Tensor:
    """Maximum normalised cross-correlation of two pulses within the HR band, (B,).

    Gideon & Stent, ICCV 2021 (MCC). With ``X, Y`` the FFTs of the mean-removed signals
    zero-padded to ``n_fft >= 2T`` (linear, not circular, correlation):

    ``MCC = max_tau IFFT(M X conj(Y))(tau) / (sqrt(E_x E_y) * rho)``

    where ``M`` zeroes the cross-spectrum outside the band, ``E`` is a signal's energy
    ``sum x_c^2`` and ``rho = sum_band |X conj(Y)| / sum_all |X conj(Y)|`` is the in-band
    share of the cross-spectrum, which rescales the band-passed correlation so that
    out-of-band noise is ignored rather than penalised. 1 for identical in-band signals
    (at any lag), about 0 for unrelated ones; 0 when either signal is constant.
    """
    b, t = x.shape
    n_fft = default_n_fft(t) if n_fft is None else int(n_fft)
    fps_b = as_batch_values(fps, b, x, "fps")
    xc, yc = prepare(x), prepare(y)
    cross = torch.fft.rfft(zero_pad(xc, n_fft), dim=-1) * torch.conj(torch.fft.rfft(zero_pad(yc, n_fft), dim=-1))
    inside = band_mask(rfft_freqs_hz(n_fft, fps_b), min_bpm / 60.0, max_bpm / 60.0)
    magnitude = cross.abs()
    rho = (magnitude * inside).sum(dim=-1) / ((magnitude.sum(dim=-1)) + EPS)
    cc = torch.fft.irfft(cross * inside, n=n_fft, dim=-1)  # (B, n_fft) over lags
    energy = torch.sqrt((xc * xc).sum(dim=-1) * (yc * yc).sum(dim=-1) + EPS)
    return cc.max(dim=-1).values / (energy * rho + EPS)


# ----------------------------------------------------------------------------- modules
@LOSSES.register("freq_ce")
class FreqCELoss(PulseLoss):
    """AutoHR frequency cross-entropy: softmax over HR-bin powers vs the true HR bin.

    Yu et al., IEEE SPL 2020; see :func:`freq_cross_entropy` (nats). Needs ``fps`` and
    ``hr_bpm``. ``out_of_band`` says what a reference HR outside ``[min_bpm, max_bpm]``
    does: ``"ignore"`` (default: that sample's loss is 0, so training goes on), ``"clamp"``
    (target = nearest edge bin) or ``"error"`` (InputError).
    """

    name: ClassVar[str] = "freq_ce"
    needs: ClassVar[frozenset[str]] = frozenset({"fps", "hr_bpm"})

    def __init__(
        self,
        min_bpm: float = 40.0,
        max_bpm: float = 180.0,
        step_bpm: float = 1.0,
        window: str | None = "hann",
        logit_scale: float = 1.0,
        reduction: str = "mean",
        out_of_band: str = "ignore",
    ) -> None:
        super().__init__(reduction)
        hr_bins_bpm(min_bpm, max_bpm, step_bpm)  # validates the bins
        if out_of_band not in OUT_OF_BAND:
            raise ConfigError(f"loss {self.name!r}: out_of_band {out_of_band!r} unknown; available: "
                              f"{', '.join(OUT_OF_BAND)}")
        self.min_bpm, self.max_bpm, self.step_bpm = min_bpm, max_bpm, step_bpm
        self.window, self.logit_scale, self.out_of_band = window, logit_scale, out_of_band

    def per_sample(self, pred, target, fps, hr_bpm):
        return freq_cross_entropy(
            pred, fps, hr_bpm, self.min_bpm, self.max_bpm, self.step_bpm, self.window, self.logit_scale,
            self.out_of_band,
        )


@LOSSES.register("hybrid")
class HybridLoss(PulseLoss):
    """AutoHR hybrid loss ``lambda_time * neg_pearson + freq_ce`` (Yu et al., IEEE SPL 2020).

    Needs ``target``, ``fps`` and ``hr_bpm``. Extra keyword options go to :class:`FreqCELoss`;
    among them ``out_of_band``: a clip whose reference HR lies outside the frequency term's
    band (default 40-180 bpm, e.g. a 190 bpm clip) keeps its negative-Pearson term and gets
    no frequency term (``"ignore"``, default), the edge bin as its target (``"clamp"``), or
    stops training with InputError (``"error"``, the old behaviour).
    """

    name: ClassVar[str] = "hybrid"
    needs: ClassVar[frozenset[str]] = frozenset({"target", "fps", "hr_bpm"})

    def __init__(self, lambda_time: float = 1.0, reduction: str = "mean", **freq_options: Any) -> None:
        super().__init__(reduction)
        self.lambda_time = lambda_time
        self.freq = FreqCELoss(reduction="none", **freq_options)

    def per_sample(self, pred, target, fps, hr_bpm):
        time_term = 1.0 - pearson_r(pred, target)
        return self.lambda_time * time_term + self.freq.per_sample(pred, target, fps, hr_bpm)


class _BandLoss(PulseLoss):
    """Shared options of the FFT-based losses: band (bpm), FFT length, taper window."""

    def __init__(
        self,
        min_bpm: float = SSL_MIN_BPM,
        max_bpm: float = SSL_MAX_BPM,
        n_fft: int | None = None,
        window: str | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        check_band(min_bpm, max_bpm, f"loss {self.name!r}")
        self.min_bpm, self.max_bpm, self.n_fft, self.window = min_bpm, max_bpm, n_fft, window


@LOSSES.register("snr_loss")
class SNRLoss(_BandLoss):
    """Negative pulse SNR in dB (see :func:`snr_db`); ``hr_bpm`` optional (else spectral peak).

    de Haan & Jeanne, IEEE TBME 2013 (SNR); used as a loss by Gideon & Stent, ICCV 2021.
    """

    name: ClassVar[str] = "snr_loss"
    needs: ClassVar[frozenset[str]] = frozenset({"fps"})

    def __init__(self, window_bpm: float = 6.0, **options: Any) -> None:
        super().__init__(**options)
        self.window_bpm = window_bpm

    def per_sample(self, pred, target, fps, hr_bpm):
        return -snr_db(pred, fps, hr_bpm, self.window_bpm, self.min_bpm, self.max_bpm, self.n_fft, self.window)


@LOSSES.register("irrelevant_power_ratio")
class IrrelevantPowerRatioLoss(_BandLoss):
    """Irrelevant power ratio: share of power outside 40-250 bpm (Gideon & Stent, ICCV 2021)."""

    name: ClassVar[str] = "irrelevant_power_ratio"
    needs: ClassVar[frozenset[str]] = frozenset({"fps"})

    def per_sample(self, pred, target, fps, hr_bpm):
        return irrelevant_power_ratio(pred, fps, self.min_bpm, self.max_bpm, self.n_fft, self.window)


@LOSSES.register("max_cross_correlation")
class MaxCrossCorrelationLoss(_BandLoss):
    """``1 - MCC(pred, target)`` (see :func:`max_cross_correlation`), Gideon & Stent, ICCV 2021.

    0 for identical in-band pulses at any lag; no taper window (``window`` must be None).
    """

    name: ClassVar[str] = "max_cross_correlation"
    needs: ClassVar[frozenset[str]] = frozenset({"target", "fps"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.window is not None:
            raise ConfigError(f"loss {self.name!r} takes no window (cross-correlation of the raw signals)")

    def per_sample(self, pred, target, fps, hr_bpm):
        return 1.0 - max_cross_correlation(pred, target, fps, self.min_bpm, self.max_bpm, self.n_fft)


@LOSSES.register("psd_mse")
class PSDMSELoss(_BandLoss):
    """MSE between band-normalised power spectra (see :func:`psd_mse`), Gideon & Stent, ICCV 2021."""

    name: ClassVar[str] = "psd_mse"
    needs: ClassVar[frozenset[str]] = frozenset({"target", "fps"})

    def per_sample(self, pred, target, fps, hr_bpm):
        return psd_mse(pred, target, fps, self.min_bpm, self.max_bpm, self.n_fft, self.window)
