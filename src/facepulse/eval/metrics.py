"""Heart-rate error metrics with their standard errors.

Every function takes predicted and reference heart rates, ``(N,)`` arrays in bpm, one pair
per video (or per window), and returns ``Estimate(value, se)``. Standard errors follow the
rPPG benchmark convention of reporting ``value ± SE`` (Liu et al., "rPPG-Toolbox",
NeurIPS 2023) and are computed as documented on each function, with sample standard
deviations (``ddof=1``). An SE that is undefined for the given ``n`` is NaN.

Inputs must be finite: a video without a prediction is a failure the caller has to
count, not something a metric may silently drop.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Estimate(NamedTuple):
    """A statistic and its standard error (same unit as the statistic)."""

    value: float
    se: float


def _pair(pred_bpm: np.ndarray, ref_bpm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred_bpm, dtype=np.float64)
    ref = np.asarray(ref_bpm, dtype=np.float64)
    if pred.ndim != 1 or ref.ndim != 1:
        raise ValueError(f"expected 1-D arrays, got shapes {pred.shape} and {ref.shape}")
    if pred.shape != ref.shape:
        raise ValueError(f"pred has {pred.size} values but ref has {ref.size}")
    if pred.size == 0:
        raise ValueError("no values to score")
    for name, arr in (("pred", pred), ("ref", ref)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"{name} has a non-finite value at index {int(bad[0])}")
    return pred, ref


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if x.size > 1 else float("nan")


def _se_of_mean(x: np.ndarray) -> float:
    return _sd(x) / np.sqrt(x.size) if x.size > 1 else float("nan")


def mae(pred_bpm: np.ndarray, ref_bpm: np.ndarray) -> Estimate:
    """Mean absolute error (bpm); SE = sd(|e|) / sqrt(n).

    Standard rPPG metric (e.g. Liu et al., rPPG-Toolbox, NeurIPS 2023).

    Parameters
    ----------
    pred_bpm, ref_bpm : (N,) float, heart rates in bpm.
    """
    pred, ref = _pair(pred_bpm, ref_bpm)
    abs_err = np.abs(pred - ref)
    return Estimate(float(abs_err.mean()), _se_of_mean(abs_err))


def rmse(pred_bpm: np.ndarray, ref_bpm: np.ndarray) -> Estimate:
    """Root mean squared error (bpm); SE by the delta method.

    With ``m = mean(e^2)``, ``SE(m) = sd(e^2) / sqrt(n)`` and RMSE = sqrt(m), so
    ``SE(RMSE) = SE(m) / (2 * RMSE)`` (first-order delta method; Casella & Berger,
    Statistical Inference, 2002, §5.5.4). NaN when RMSE is 0 or n < 2.
    """
    pred, ref = _pair(pred_bpm, ref_bpm)
    sq = (pred - ref) ** 2
    value = float(np.sqrt(sq.mean()))
    se = _se_of_mean(sq) / (2.0 * value) if value > 0 else float("nan")
    return Estimate(value, float(se))


def mape(pred_bpm: np.ndarray, ref_bpm: np.ndarray) -> Estimate:
    """Mean absolute percentage error (%); SE = sd(100 |e| / ref) / sqrt(n).

    Standard rPPG metric (e.g. Liu et al., rPPG-Toolbox, NeurIPS 2023). Reference values
    must be non-zero.
    """
    pred, ref = _pair(pred_bpm, ref_bpm)
    if np.any(ref == 0):
        raise ValueError(f"ref is 0 at index {int(np.flatnonzero(ref == 0)[0])}; MAPE undefined")
    pct = 100.0 * np.abs(pred - ref) / np.abs(ref)
    return Estimate(float(pct.mean()), _se_of_mean(pct))


def pearson_r(pred_bpm: np.ndarray, ref_bpm: np.ndarray) -> Estimate:
    """Pearson correlation; SE = sqrt((1 - r^2) / (n - 2)).

    Pearson, Phil. Trans. R. Soc. A 1895 (SE: the usual large-sample approximation).
    r is NaN when either input is constant; the SE is NaN when n < 3.
    """
    pred, ref = _pair(pred_bpm, ref_bpm)
    n = pred.size
    if n < 2 or np.ptp(pred) == 0 or np.ptp(ref) == 0:
        return Estimate(float("nan"), float("nan"))
    from scipy.stats import pearsonr

    r = float(pearsonr(pred, ref).statistic)
    se = float(np.sqrt(max(0.0, 1.0 - r * r) / (n - 2))) if n > 2 else float("nan")
    return Estimate(r, se)


def bias(pred_bpm: np.ndarray, ref_bpm: np.ndarray) -> Estimate:
    """Mean error pred - ref (bpm), the Bland-Altman bias; SE = sd(e) / sqrt(n).

    Bland & Altman, The Lancet 1986.
    """
    pred, ref = _pair(pred_bpm, ref_bpm)
    err = pred - ref
    return Estimate(float(err.mean()), _se_of_mean(err))


def sd_error(pred_bpm: np.ndarray, ref_bpm: np.ndarray) -> Estimate:
    """Standard deviation of the error pred - ref (bpm); SE = sd / sqrt(2 (n - 1)).

    Bland & Altman, The Lancet 1986 (SE of an SD: normal-theory approximation).
    """
    pred, ref = _pair(pred_bpm, ref_bpm)
    err = pred - ref
    sd = _sd(err)
    se = sd / np.sqrt(2.0 * (err.size - 1)) if err.size > 1 else float("nan")
    return Estimate(sd, float(se))


def mean_snr_db(snr_db: np.ndarray) -> Estimate:
    """Mean of per-video pulse SNRs (dB); SE = sd / sqrt(n).

    SNR as defined by de Haan & Jeanne, IEEE TBME 2013 (computed per video elsewhere,
    e.g. ``facepulse.signal.hr.snr_db``).

    Parameters
    ----------
    snr_db : (N,) float, one SNR per video, in dB.
    """
    snr = np.asarray(snr_db, dtype=np.float64)
    if snr.ndim != 1 or snr.size == 0:
        raise ValueError(f"expected a non-empty 1-D array, got shape {snr.shape}")
    bad = np.flatnonzero(~np.isfinite(snr))
    if bad.size:
        raise ValueError(f"snr_db has a non-finite value at index {int(bad[0])}")
    return Estimate(float(snr.mean()), _se_of_mean(snr))


METRICS = {
    "mae": mae,
    "rmse": rmse,
    "mape": mape,
    "pearson_r": pearson_r,
    "bias": bias,
    "sd_error": sd_error,
}


def summarize(
    pred_bpm: np.ndarray, ref_bpm: np.ndarray, snr_db: np.ndarray | None = None
) -> dict[str, float | int]:
    """All metrics as a flat dict: ``{"n", "mae", "mae_se", "rmse", "rmse_se", ...}``.

    Keys: ``n``, then ``<metric>`` and ``<metric>_se`` for mae (bpm), rmse (bpm), mape (%),
    pearson_r, bias (bpm), sd_error (bpm), and snr_db when ``snr_db`` is given.
    """
    pred, ref = _pair(pred_bpm, ref_bpm)
    out: dict[str, float | int] = {"n": int(pred.size)}
    for name, fn in METRICS.items():
        est = fn(pred, ref)
        out[name], out[f"{name}_se"] = est.value, est.se
    if snr_db is not None:
        snr = np.asarray(snr_db, dtype=np.float64)
        if snr.shape != pred.shape:
            raise ValueError(f"snr_db has {snr.size} values but pred has {pred.size}")
        est = mean_snr_db(snr)
        out["snr_db"], out["snr_db_se"] = est.value, est.se
    return out
