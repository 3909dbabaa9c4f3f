"""Is this estimate to be trusted? Quality flags for HR and a gate for HRV.

A heart rate is always a number; whether it means anything depends on the evidence
behind it. These pure functions turn the per-window confidence and SNR, the regions'
agreement and the gaps without a face into plain warnings, and decide whether a beat
series is clean enough for HRV (HRV from a noisy pulse measures the noise: Task Force of
the ESC and NASPE, Circulation 93(5):1043, 1996, require artefact-free NN intervals).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LOW_CONFIDENCE", "HRV_MIN_CONFIDENCE", "hr_quality", "hrv_gate", "pulse_too_noisy"]

#: Window confidence below which the window's HR is flagged: less than a tenth of the
#: spectral evidence beyond what pure noise gives.
LOW_CONFIDENCE = 0.1

#: Median window confidence HRV needs (beats are read off the waveform, which needs a
#: much cleaner pulse than the HR, read off the spectrum).
HRV_MIN_CONFIDENCE = 0.3

#: Whole-video SNR (dB) below which a single method's pulse is too noisy for HRV.
HRV_MIN_SNR_DB = 0.0

#: Share of inter-beat intervals that must lie within ``IBI_TOLERANCE`` of the tracked
#: HR's period for the beat series to count as clean.
HRV_MIN_CONSISTENT = 0.8
IBI_TOLERANCE = 0.25


def hr_quality(
    confidence: np.ndarray | None,
    snr_db: np.ndarray,
    valid_fraction: np.ndarray,
    *,
    longest_gap_s: float = 0.0,
    agreement: np.ndarray | None = None,
    low_confidence: float = LOW_CONFIDENCE,
    max_gap_s: float = 1.0,
) -> dict:
    """Summary of how far the windowed HR can be trusted.

    Parameters
    ----------
    confidence : (W,) in [0, 1] or None (single methods report none).
    snr_db : (W,) window SNR, dB.
    valid_fraction : (W,) share of each window with a face.
    longest_gap_s : the longest stretch without a face, seconds.
    agreement : (W,) regions' agreement in [0, 1], or None.

    Returns
    -------
    dict with ``reliable`` (bool), ``warnings`` (list of one-line strings),
    ``median_confidence``, ``low_confidence_windows`` (share), ``median_snr_db``,
    ``median_agreement``, ``longest_gap_s``.
    """
    snr = np.asarray(snr_db, dtype=float)
    ok = np.isfinite(snr)
    warnings: list[str] = []
    out: dict = {"longest_gap_s": float(longest_gap_s)}
    out["median_snr_db"] = float(np.median(snr[ok])) if ok.any() else float("nan")
    if not ok.any():
        warnings.append("no window had enough face to measure")
    if confidence is not None:
        conf = np.asarray(confidence, dtype=float)
        c_ok = conf[np.isfinite(conf)]
        median_conf = float(np.median(c_ok)) if c_ok.size else float("nan")
        low = float(np.mean(c_ok < low_confidence)) if c_ok.size else 1.0
        out["median_confidence"] = median_conf
        out["low_confidence_windows"] = low
        if c_ok.size and median_conf < low_confidence:
            warnings.append(
                f"low confidence: median window confidence {median_conf:.2f} < {low_confidence:g} "
                "(the pulse is barely above the noise)"
            )
        elif low > 1 / 3:
            warnings.append(f"{low:.0%} of the windows have confidence < {low_confidence:g}")
    else:
        out["median_confidence"] = float("nan")
        out["low_confidence_windows"] = float("nan")
        if ok.any() and out["median_snr_db"] < -3.0:
            warnings.append(f"low SNR: median window SNR {out['median_snr_db']:.1f} dB")
    if agreement is not None:
        agr = np.asarray(agreement, dtype=float)
        a_ok = agr[np.isfinite(agr)]
        out["median_agreement"] = float(np.median(a_ok)) if a_ok.size else float("nan")
        if a_ok.size and out["median_agreement"] < 0.25:
            warnings.append(
                f"regions disagree: only {out['median_agreement']:.0%} of the evidence agrees with the HR"
            )
    else:
        out["median_agreement"] = float("nan")
    vf = np.asarray(valid_fraction, dtype=float)
    if longest_gap_s > max_gap_s:
        warnings.append(f"no face for {longest_gap_s:.1f} s at a stretch; those windows have no HR")
    elif vf.size and np.mean(vf < 1.0) > 0.5:
        warnings.append("the face was lost in more than half of the windows")
    out["warnings"] = warnings
    out["reliable"] = not warnings
    return out


def pulse_too_noisy(
    *,
    confidence: np.ndarray | None = None,
    snr_db: float | None = None,
    min_confidence: float = HRV_MIN_CONFIDENCE,
    min_snr_db: float = HRV_MIN_SNR_DB,
) -> str | None:
    """Why the pulse is too noisy to show single beats, or None (the first test of
    :func:`hrv_gate`, which needs no beats: callers skip beat detection when it fails)."""
    if confidence is not None:
        conf = np.asarray(confidence, dtype=float)
        conf = conf[np.isfinite(conf)]
        median = float(np.median(conf)) if conf.size else 0.0
        if median < min_confidence:
            return f"pulse too noisy for beat-to-beat analysis (median confidence {median:.2f} < {min_confidence:g})"
    if snr_db is not None and not (snr_db >= min_snr_db):
        return f"pulse too noisy for beat-to-beat analysis (SNR {snr_db:.1f} dB < {min_snr_db:g} dB)"
    return None


def hrv_gate(
    beat_times_s: np.ndarray,
    hr_t_s: np.ndarray,
    hr_bpm: np.ndarray,
    *,
    confidence: np.ndarray | None = None,
    snr_db: float | None = None,
    min_confidence: float = HRV_MIN_CONFIDENCE,
    min_snr_db: float = HRV_MIN_SNR_DB,
    min_consistent: float = HRV_MIN_CONSISTENT,
    tolerance: float = IBI_TOLERANCE,
) -> str | None:
    """Why HRV must not be reported from these beats, or None if it may.

    Parameters
    ----------
    beat_times_s : (B,) detected beats, seconds.
    hr_t_s, hr_bpm : (W,) the windowed HR (window centres, bpm) the beats must agree with.
    confidence : (W,) window confidence (fused estimator), or None.
    snr_db : whole-video SNR (single methods), or None.

    Returns
    -------
    None when the beats pass; otherwise a one-line reason.
    """
    beats = np.asarray(beat_times_s, dtype=float)
    noisy = pulse_too_noisy(confidence=confidence, snr_db=snr_db, min_confidence=min_confidence,
                            min_snr_db=min_snr_db)
    if noisy is not None:
        return noisy
    if beats.size < 3:
        return f"too few beats detected ({beats.size})"
    ibi_s = np.diff(beats)
    mid_s = beats[:-1] + ibi_s / 2
    t = np.asarray(hr_t_s, dtype=float)
    hr = np.asarray(hr_bpm, dtype=float)
    keep = np.isfinite(hr)
    if keep.sum() == 0:
        return "no windowed heart rate to check the beats against"
    period_s = 60.0 / np.interp(mid_s, t[keep], hr[keep])
    consistent = float(np.mean(np.abs(ibi_s - period_s) <= tolerance * period_s))
    if consistent < min_consistent:
        return (
            f"beat intervals disagree with the heart rate ({consistent:.0%} within "
            f"{tolerance:.0%} of the HR's period, need {min_consistent:.0%})"
        )
    return None
