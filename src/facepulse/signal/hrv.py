"""Pulse -> beats -> heart-rate variability (HRV), with neurokit2 doing the detection
and the HRV indices."""

from __future__ import annotations

import math
import warnings

import numpy as np

from facepulse.errors import ConfigError, InputError, SignalTooShortError
from facepulse.signal._neurokit import neurokit2
from facepulse.signal.filters import bandpass, check_fps, finite_segments

__all__ = [
    "FIDUCIALS",
    "IBI_RANGE_S",
    "detect_beats",
    "hrv_metrics",
    "ibi_ms",
    "clean_ibi_mask",
]

#: Physiological inter-beat interval range in seconds (about 40-214 bpm).
IBI_RANGE_S: tuple[float, float] = (0.28, 1.5)

#: Beats closer than this are one beat reported twice (half the shortest IBI in IBI_RANGE_S).
_MIN_BEAT_SEPARATION_S = 0.14
_CHARLTON_WINDOW_S = 8.0  # neurokit2 MSPTDfast analysis window (s)

#: Fewest clean inter-beat intervals hrv_metrics accepts.
MIN_IBIS = 5


FIDUCIALS = ("peak", "onset")


def detect_beats(
    bvp: np.ndarray,
    fps: float,
    *,
    fiducial: str = "onset",
    band_hz: tuple[float, float | None] = (0.5, None),
    upsample_hz: float = 250.0,
    t0_s: float = 0.0,
) -> np.ndarray:
    """Beat times of a pulse signal: pulse onsets (feet) or systolic peaks.

    Charlton et al., Physiol. Meas. 46:035002 (2025) (MSPTDfast), via
    :func:`neurokit2.ppg_findpeaks` with ``method="charlton"``.

    The pulse is band-passed (zero phase), upsampled to at least ``upsample_hz`` by
    polyphase (band-limited) interpolation so beat times are not quantised to the frame
    period, searched for beats, and each beat refined to sub-sample precision with a
    parabola. NaN samples are gaps: each finite run is analysed on its own (runs shorter
    than 2 s are skipped) and no beat is placed in a gap.

    Parameters
    ----------
    bvp : (N,) float
        Pulse signal sampled uniformly at ``fps``, blood-volume polarity (systole = maximum,
        the convention of :mod:`facepulse.methods`).
    fps : float
        Sampling rate in Hz.
    fiducial : {"onset", "peak"}
        Which point marks a beat: the foot of the systolic upstroke (``"onset"``, robust to
        a tall diastolic wave) or the systolic maximum (``"peak"``).
    band_hz : (float, float or None)
        Band-pass applied first, in Hz; ``None`` as the upper edge means
        ``min(8, 0.4 * fps)`` (8 Hz keeps the pulse shape).
    upsample_hz : float
        Minimum rate the beat search runs at, in Hz.
    t0_s : float
        Time of the first sample in seconds.

    Returns
    -------
    (B,) float
        Beat times in seconds, increasing.
    """
    nk = neurokit2()
    import scipy.signal

    fps = check_fps(fps)
    x = np.asarray(bvp, dtype=np.float64)
    if x.ndim != 1:
        raise InputError(f"bvp must have shape (N,), got {x.shape}")
    if fiducial not in FIDUCIALS:
        raise ConfigError(f"unknown fiducial {fiducial!r}; available: {', '.join(FIDUCIALS)}")
    low_hz, high_hz = band_hz
    if high_hz is None:
        high_hz = min(8.0, 0.4 * fps)
    if not upsample_hz > 0:
        raise ConfigError(f"upsample_hz must be positive, got {upsample_hz!r}")
    filtered = bandpass(x, fps, low_hz, high_hz, order=2)
    up = max(1, math.ceil(upsample_hz / fps))
    fs_up = fps * up
    key = "PPG_Peaks" if fiducial == "peak" else "PPG_Onsets"
    sign = 1.0 if fiducial == "peak" else -1.0
    beats: list[np.ndarray] = []
    for seg in finite_segments(np.isfinite(filtered)):
        if seg.stop - seg.start < 2.0 * fps:
            continue
        y = filtered[seg]
        y_up = scipy.signal.resample_poly(y, up, 1) if up > 1 else y
        # neurokit2's MSPTDfast fails on a signal no longer than its 8 s analysis window:
        # pad such a segment by reflection and keep the beats inside the real samples.
        pad = max(0, int(_CHARLTON_WINDOW_S * fs_up) + 2 - len(y_up))
        pad_l, pad_r = pad // 2, pad - pad // 2
        y_nk = np.pad(y_up, (pad_l, pad_r), mode="reflect") if pad else y_up
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # neurokit2 warns about its own internals
            info = nk.ppg_findpeaks(y_nk, sampling_rate=int(round(fs_up)), method="charlton")
        idx = np.asarray(info[key], dtype=np.int64) - pad_l
        idx = idx[(idx >= 0) & (idx < len(y_up))]
        # Snap to the extremum within +-30 ms: near its window edges MSPTDfast can report
        # an index a few samples off.
        reach = max(1, round(0.03 * fs_up))
        around = np.clip(idx[:, None] + np.arange(-reach, reach + 1)[None, :], 0, len(y_up) - 1)
        idx = np.unique(around[np.arange(len(idx)), np.argmax(sign * y_up[around], axis=1)])
        idx = idx[(idx > 0) & (idx < len(y_up) - 1)]
        # Sub-sample refinement: parabola through the extremum and its neighbours.
        a, b, c = sign * y_up[idx - 1], sign * y_up[idx], sign * y_up[idx + 1]
        denom = a - 2.0 * b + c
        safe = np.where(denom < 0, denom, -1.0)
        delta = np.where(denom < 0, 0.5 * (a - c) / safe, 0.0)
        times = np.unique(t0_s + (seg.start + (idx + np.clip(delta, -0.5, 0.5)) / up) / fps)
        # the upsampled tail reaches (up - 1) / up of a frame past the last real sample:
        # a beat found there lies outside the signal
        times = times[times <= t0_s + (seg.stop - 1) / fps]
        # MSPTDfast analyses overlapping windows and can report one beat twice, a few
        # samples apart: keep the first of beats closer than any physiological interval.
        beats.append(times[np.diff(times, prepend=-np.inf) >= _MIN_BEAT_SEPARATION_S])
    if not beats:
        return np.zeros(0)
    return np.concatenate(beats)


def ibi_ms(beat_times_s: np.ndarray) -> np.ndarray:
    """Inter-beat intervals.

    Task Force of the ESC and NASPE, Circulation 93(5):1043-1065 (1996) (NN intervals).

    Parameters
    ----------
    beat_times_s : (B,) float
        Beat times in seconds, increasing.

    Returns
    -------
    (B - 1,) float
        Intervals in milliseconds.
    """
    t = np.asarray(beat_times_s, dtype=np.float64)
    if t.ndim != 1:
        raise InputError(f"beat_times_s must have shape (B,), got {t.shape}")
    if (np.diff(t) <= 0).any():
        raise InputError(f"beat_times_s must increase strictly; it does not at beat {np.flatnonzero(np.diff(t) <= 0)[0] + 1}")
    return np.diff(t) * 1000.0


def clean_ibi_mask(
    ibi: np.ndarray,
    *,
    range_s: tuple[float, float] = IBI_RANGE_S,
    max_rel_deviation: float = 0.25,
    median_len: int = 9,
) -> np.ndarray:
    """Which inter-beat intervals look like normal (NN) intervals.

    Malik et al., Circulation 93(5):1043-1065 (1996) / Karlsson et al., Biomed. Eng. Online
    11:2 (2012) (percentage-of-local-median artefact filter).

    An interval is kept when it lies within ``range_s`` and within ``max_rel_deviation``
    of the median of the ``median_len`` in-range intervals around it, which rejects the
    long intervals of missed beats and the short ones of spurious beats.

    Parameters
    ----------
    ibi : (K,) float
        Inter-beat intervals in milliseconds.
    range_s : (float, float)
        Physiological range in seconds.
    max_rel_deviation : float
        Largest accepted relative deviation from the local median.
    median_len : int
        Length of the local median, in intervals (odd).

    Returns
    -------
    (K,) bool
        True for intervals to keep.
    """
    import scipy.ndimage

    x = np.asarray(ibi, dtype=np.float64)
    in_range = (x >= range_s[0] * 1000.0) & (x <= range_s[1] * 1000.0)
    if not in_range.any():
        return in_range
    # Local median of the in-range intervals only, mapped back onto every interval.
    kept = x[in_range]
    local = scipy.ndimage.median_filter(kept, size=min(median_len, len(kept)), mode="nearest")
    ref = np.interp(np.arange(len(x)), np.flatnonzero(in_range), local)
    return in_range & (np.abs(x - ref) <= max_rel_deviation * ref)


def hrv_metrics(
    beat_times_s: np.ndarray,
    *,
    range_s: tuple[float, float] = IBI_RANGE_S,
    max_rel_deviation: float = 0.25,
    min_lf_hf_duration_s: float = 120.0,
) -> dict[str, float]:
    """Heart-rate variability from beat times.

    Task Force of the ESC and NASPE, Circulation 93(5):1043-1065 (1996); computed with
    :func:`neurokit2.hrv_time` and :func:`neurokit2.hrv_frequency` (Makowski et al.,
    Behav. Res. Methods 53:1689-1696, 2021).

    Intervals failing :func:`clean_ibi_mask` are dropped; successive differences (RMSSD,
    pNN50) are taken only between intervals that were adjacent in the recording.

    Parameters
    ----------
    beat_times_s : (B,) float
        Beat times in seconds, increasing.
    range_s, max_rel_deviation
        Outlier rejection, see :func:`clean_ibi_mask`.
    min_lf_hf_duration_s : float
        LF/HF needs several cycles of the 0.04 Hz LF band edge; shorter recordings get
        NaN for ``lf_hf`` (default 120 s, the Task Force's minimum for LF).

    Returns
    -------
    dict
        ``n_beats``, ``n_ibi`` (clean intervals used), ``n_ibi_rejected``,
        ``mean_ibi_ms``, ``mean_hr_bpm``, ``sdnn_ms``, ``rmssd_ms``, ``pnn50_pct`` (NN50
        over the number of NN intervals, the Task Force / neurokit2 definition) and
        ``lf_hf`` (NaN when the recording is shorter than ``min_lf_hf_duration_s``).
    """
    nk = neurokit2()

    t = np.asarray(beat_times_s, dtype=np.float64)
    ibi = ibi_ms(t)
    keep = clean_ibi_mask(ibi, range_s=range_s, max_rel_deviation=max_rel_deviation)
    if keep.sum() < MIN_IBIS:
        raise SignalTooShortError(
            f"only {int(keep.sum())} usable inter-beat intervals (of {len(ibi)}); HRV needs at least {MIN_IBIS}"
        )
    rri = ibi[keep]
    # Each interval is stamped with the time of the beat that ends it, so neurokit2 can
    # tell which intervals were adjacent (and skip differences across rejected ones).
    rri_time = t[1:][keep]
    intervals = {"RRI": rri, "RRI_Time": rri_time}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        time_domain = nk.hrv_time(intervals)
    duration_s = float(t[-1] - t[0])
    lf_hf = math.nan
    if duration_s >= min_lf_hf_duration_s:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            freq_domain = nk.hrv_frequency(intervals, psd_method="welch")
        lf_hf = float(freq_domain["HRV_LFHF"].iloc[0])
    mean_ibi = float(np.mean(rri))
    return {
        "n_beats": int(len(t)),
        "n_ibi": int(len(rri)),
        "n_ibi_rejected": int(len(ibi) - len(rri)),
        "mean_ibi_ms": mean_ibi,
        "mean_hr_bpm": 60000.0 / mean_ibi,
        "sdnn_ms": float(time_domain["HRV_SDNN"].iloc[0]),
        "rmssd_ms": float(time_domain["HRV_RMSSD"].iloc[0]),
        "pnn50_pct": float(time_domain["HRV_pNN50"].iloc[0]),
        "lf_hf": lf_hf,
    }
