"""Pulse losses: plain ``nn.Module`` s, batch-vectorised, registered by name in ``LOSSES``.

Every loss is called the same way (see :class:`PulseLoss`)::

    loss_fn = build_loss("hybrid", lambda_time=0.5)
    loss = loss_fn(pred, ppg, fps=fps, hr_bpm=hr_bpm)   # pred, ppg (B, T); fps, hr_bpm (B,)

Reusable differentiable spectra live in :mod:`facepulse.losses.spectral`.
"""

from __future__ import annotations

import inspect
from typing import Any

from facepulse.errors import ConfigError
from facepulse.losses.base import LOSSES, PulseLoss
from facepulse.losses.frequency import (
    FreqCELoss,
    HybridLoss,
    IrrelevantPowerRatioLoss,
    MaxCrossCorrelationLoss,
    PSDMSELoss,
    SNRLoss,
    band_psd,
    freq_cross_entropy,
    irrelevant_power_ratio,
    max_cross_correlation,
    psd_mse,
    snr_db,
)
from facepulse.losses.prior import (
    PriorTerms,
    SpectralPriorLoss,
    band_spectra,
    bandwidth_loss,
    sparsity_loss,
    variance_loss,
)
from facepulse.losses.spectral import band_mask, hr_bins_bpm, rfft_psd, torch_psd, zero_pad
from facepulse.losses.time import NegPearsonLoss, pearson_r

__all__ = [
    "LOSSES",
    "FreqCELoss",
    "HybridLoss",
    "IrrelevantPowerRatioLoss",
    "MaxCrossCorrelationLoss",
    "NegPearsonLoss",
    "PSDMSELoss",
    "PriorTerms",
    "PulseLoss",
    "SNRLoss",
    "SpectralPriorLoss",
    "band_mask",
    "band_psd",
    "band_spectra",
    "bandwidth_loss",
    "build_loss",
    "freq_cross_entropy",
    "hr_bins_bpm",
    "irrelevant_power_ratio",
    "max_cross_correlation",
    "pearson_r",
    "psd_mse",
    "rfft_psd",
    "snr_db",
    "sparsity_loss",
    "torch_psd",
    "variance_loss",
    "zero_pad",
]


def build_loss(name: str, **kwargs: Any) -> PulseLoss:
    """Instantiate the registered loss ``name`` (ConfigError for a bad name or option)."""
    cls = LOSSES.get(name)
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params or k == "self"]
    if unknown and not takes_any:
        raise ConfigError(f"loss {name!r}: unknown option(s) {unknown}")
    try:
        return cls(**kwargs)
    except TypeError as err:  # an option forwarded through **options that nothing takes
        raise ConfigError(f"loss {name!r}: {err}") from None
