"""Pulse -> heart rate: power spectra, spectral-peak HR, SNR and sliding-window HR.

All functions take a pulse signal sampled uniformly at ``fps`` (resample irregular traces
first) and work in Hz internally; heart rates are in beats per minute (bpm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from facepulse.errors import ConfigError, InputError, SignalTooShortError
from facepulse.signal._scipy import scipy_signal
from facepulse.signal.filters import check_fps

__all__ = [
    "DEFAULT_BAND_BPM",
    "SNR_BAND_BPM",
    "WindowedHR",
    "estimate_hr_bpm",
    "power_spectrum",
    "snr_db",
    "window_starts",
    "windowed_hr",
]

#: HR search band in bpm (0.7-3.5 Hz).
DEFAULT_BAND_BPM: tuple[float, float] = (42.0, 210.0)

#: Band over which de Haan & Jeanne (2013) compute the SNR, in bpm.
SNR_BAND_BPM: tuple[float, float] = (30.0, 240.0)

#: Spectral sampling the automatic zero padding aims at, in bpm per bin; the peak
#: interpolation then refines well below it.
_AUTO_BIN_BPM = 0.25

#: Spectra computed at once by windowed_hr (bounds memory to about 16 MB of floats).
_MAX_SPECTRUM_VALUES = 2_000_000

_SPECTRUM_METHODS = ("periodogram", "welch")


def _check_band(band_bpm: tuple[float, float], fps: float, name: str = "band_bpm") -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in band_bpm)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a pair (low, high) in bpm, got {band_bpm!r}") from None
    nyquist_bpm = 30.0 * fps
    if not 0 < lo < hi <= nyquist_bpm:
        raise ConfigError(
            f"{name} must satisfy 0 < low < high <= {nyquist_bpm:g} bpm (Nyquist at {fps:g} fps), "
            f"got {band_bpm!r}"
        )
    return lo, hi


def _check_1d(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise InputError(f"{name} must have shape (N,), got {arr.shape}")
    return arr


def _require_finite(x: np.ndarray, name: str) -> None:
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise InputError(
            f"{name} has NaN/inf at sample {bad[0]} ({bad.size} in all); "
            "use windowed_hr(..., valid=...) for signals with gaps"
        )


def _auto_nfft(n: int, fps: float) -> int:
    return scipy.fft.next_fast_len(max(n, math.ceil(60.0 * fps / _AUTO_BIN_BPM)), real=True)


def _resolve_nfft(n: int, fps: float, nfft: int | None, name: str = "nfft") -> int:
    if nfft is None:
        return _auto_nfft(n, fps)
    if int(nfft) != nfft or nfft < n:
        raise ConfigError(f"{name} must be an integer >= the signal length {n}, got {nfft!r}")
    return int(nfft)


def _spectrum(
    x: np.ndarray,
    fps: float,
    nfft: int,
    method: str,
    window: str,
    segment_s: float,
    detrend: str | bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Power spectral density along the last axis of ``x`` (batched)."""
    sps = scipy_signal()  # imported on first use, without scipy.stats (start-up time)

    if method == "periodogram":
        return sps.periodogram(
            x, fs=fps, window=window, nfft=nfft, detrend=detrend, scaling="density", axis=-1
        )
    if method == "welch":
        if not segment_s > 0:
            raise ConfigError(f"segment_s must be positive, got {segment_s!r}")
        nperseg = min(x.shape[-1], max(8, round(segment_s * fps)))
        return sps.welch(
            x,
            fs=fps,
            window=window,
            nperseg=nperseg,
            nfft=max(nfft, nperseg),
            detrend=detrend,
            scaling="density",
            axis=-1,
        )
    raise ConfigError(f"unknown spectrum method {method!r}; available: {', '.join(_SPECTRUM_METHODS)}")


def power_spectrum(
    x: np.ndarray,
    fps: float,
    *,
    nfft: int | None = None,
    method: str = "periodogram",
    window: str = "hann",
    segment_s: float = 8.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Power spectral density of a pulse signal (mean removed first).

    Welch, IEEE Trans. Audio Electroacoust. 15(2):70-73 (1967) for ``method="welch"``;
    otherwise a single tapered, zero-padded periodogram.

    Parameters
    ----------
    x : (N,) float, or (..., N) for a batch of signals along the last axis
        Signal sampled at ``fps``; must be finite.
    fps : float
        Sampling rate in Hz.
    nfft : int, optional
        FFT length (zero padding), ``>= N``. Default: long enough for bins of at most
        0.25 bpm (``60 * fps / nfft``).
    method : {"periodogram", "welch"}
        Single periodogram, or Welch averaging of 50 %-overlapping segments.
    window : str
        Taper, any :func:`scipy.signal.get_window` name (default Hann).
    segment_s : float
        Welch segment length in seconds (capped at the signal length).

    Returns
    -------
    freq_hz : (F,) float
        Frequencies in Hz, ``F = nfft // 2 + 1``.
    power : (F,) or (..., F) float
        Power spectral density in (signal unit)^2 / Hz.
    """
    fps = check_fps(fps)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] < 2:
        raise InputError(f"power_spectrum: x must have at least 2 samples along its last axis, got {arr.shape}")
    _require_finite(arr, "x")
    return _spectrum(arr, fps, _resolve_nfft(arr.shape[-1], fps, nfft), method, window, segment_s, "constant")


def _peak_hz(freq_hz: np.ndarray, power: np.ndarray, band_hz: tuple[float, float]) -> np.ndarray:
    """Interpolated frequency of the highest spectral peak in ``band_hz``, per row.

    The three bins around the maximum are fitted with a parabola in log power (Gaussian
    interpolation), which is nearly unbiased for a tapered, zero-padded spectrum.
    Rows whose band holds no power give NaN.
    """
    in_band = np.flatnonzero((freq_hz >= band_hz[0]) & (freq_hz <= band_hz[1]))
    if in_band.size == 0:
        raise ConfigError(f"no spectral bin falls in {band_hz[0]:g}-{band_hz[1]:g} Hz; increase nfft")
    p2 = np.atleast_2d(power)
    k = in_band[0] + np.argmax(p2[:, in_band], axis=1)
    rows = np.arange(p2.shape[0])
    peak = p2[rows, k]
    # Neighbours may lie just outside the band: they still shape the peak.
    km = np.clip(k - 1, 0, p2.shape[1] - 1)
    kp = np.clip(k + 1, 0, p2.shape[1] - 1)
    tiny = np.finfo(np.float64).tiny
    with np.errstate(divide="ignore", invalid="ignore"):
        ya = np.log(np.maximum(p2[rows, km], tiny))
        yb = np.log(np.maximum(peak, tiny))
        yc = np.log(np.maximum(p2[rows, kp], tiny))
        denom = ya - 2.0 * yb + yc
        delta = np.where(denom < 0, 0.5 * (ya - yc) / denom, 0.0)
    delta = np.clip(np.nan_to_num(delta), -0.5, 0.5)
    df = freq_hz[1] - freq_hz[0]
    f = np.clip(freq_hz[k] + delta * df, band_hz[0], band_hz[1])
    f = np.where(peak > 0, f, np.nan)
    return f if np.ndim(power) > 1 else f[0]


def _snr_from_spectrum(
    freq_hz: np.ndarray,
    power: np.ndarray,
    hr_bpm: np.ndarray,
    band_bpm: tuple[float, float],
    tol_bpm: float,
) -> np.ndarray:
    p2 = np.atleast_2d(power)
    hr = np.atleast_1d(np.asarray(hr_bpm, dtype=np.float64))[:, None]
    f_bpm = 60.0 * freq_hz[None, :]
    band = (f_bpm >= band_bpm[0]) & (f_bpm <= band_bpm[1])
    signal = (np.abs(f_bpm - hr) <= tol_bpm) | (np.abs(f_bpm - 2.0 * hr) <= tol_bpm)
    s = np.sum(p2 * (band & signal), axis=1)
    n = np.sum(p2 * (band & ~signal), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(s / n)
    out = np.where(np.isfinite(hr[:, 0]), out, np.nan)
    return out if np.ndim(power) > 1 else out[0]


def _min_samples(band_bpm: tuple[float, float], fps: float) -> int:
    # Two periods of the slowest rate in the band: fewer cannot show a spectral peak there.
    return math.ceil(2.0 * 60.0 / band_bpm[0] * fps)


def estimate_hr_bpm(
    bvp: np.ndarray,
    fps: float,
    *,
    band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
    method: str = "periodogram",
    zero_pad_to: int | None = None,
) -> float:
    """Heart rate as the highest spectral peak of the pulse within ``band_bpm``.

    Verkruysse, Svaasand & Nelson, Opt. Express 16(26):21434 (2008) (spectral-peak HR);
    peak refined by Gaussian interpolation on a Hann-tapered, zero-padded spectrum.

    Parameters
    ----------
    bvp : (N,) float
        Pulse signal sampled at ``fps``; finite, at least two periods of the band's lowest rate.
    fps : float
        Sampling rate in Hz.
    band_bpm : (float, float)
        Search band in bpm.
    method : {"periodogram", "welch"}
        Spectral estimator (see :func:`power_spectrum`).
    zero_pad_to : int, optional
        FFT length; default gives bins of at most 0.25 bpm before interpolation.

    Returns
    -------
    float
        Heart rate in bpm, within ``band_bpm``.
    """
    fps = check_fps(fps)
    x = _check_1d(bvp, "bvp")
    band = _check_band(band_bpm, fps)
    need = _min_samples(band, fps)
    if len(x) < need:
        raise SignalTooShortError(
            f"bvp has {len(x)} samples ({len(x) / fps:.2f} s) but HR in {band[0]:g}-{band[1]:g} bpm "
            f"needs at least {need} ({need / fps:.2f} s at {fps:g} fps)"
        )
    _require_finite(x, "bvp")
    if np.ptp(x) == 0:
        raise InputError("bvp is constant: no pulse to measure")
    freq, power = _spectrum(
        x, fps, _resolve_nfft(len(x), fps, zero_pad_to, "zero_pad_to"), method, "hann", 8.0, "constant"
    )
    return float(60.0 * _peak_hz(freq, power, (band[0] / 60.0, band[1] / 60.0)))


def snr_db(
    bvp: np.ndarray,
    fps: float,
    hr_bpm: float,
    *,
    band_bpm: tuple[float, float] = SNR_BAND_BPM,
    tol_bpm: float = 6.0,
    method: str = "periodogram",
    zero_pad_to: int | None = None,
) -> float:
    """Pulse signal-to-noise ratio around a given heart rate, in dB.

    de Haan & Jeanne, IEEE Trans. Biomed. Eng. 60(10):2878-2886 (2013), eq. 11.

    Ratio of the spectral power within ``tol_bpm`` (0.1 Hz) of ``hr_bpm`` and of its first
    harmonic ``2 * hr_bpm`` to the power in the rest of ``band_bpm``.

    Parameters
    ----------
    bvp : (N,) float
        Pulse signal sampled at ``fps``, finite.
    fps : float
        Sampling rate in Hz.
    hr_bpm : float
        Heart rate (e.g. a reference, or the estimate) in bpm.
    band_bpm : (float, float)
        Band that counts, in bpm (default 30-240 bpm as in the paper).
    tol_bpm : float
        Half-width of the signal windows in bpm.
    method, zero_pad_to
        Spectral estimator and FFT length, as in :func:`estimate_hr_bpm`.

    Returns
    -------
    float
        SNR in dB (``-inf`` if no power falls near the HR, ``inf`` if nothing else does).
    """
    fps = check_fps(fps)
    x = _check_1d(bvp, "bvp")
    band = _check_band(band_bpm, fps)
    _require_finite(x, "bvp")
    if not np.isfinite(hr_bpm) or hr_bpm <= 0:
        raise ConfigError(f"hr_bpm must be a positive number, got {hr_bpm!r}")
    if not tol_bpm > 0:
        raise ConfigError(f"tol_bpm must be positive, got {tol_bpm!r}")
    if len(x) < 2:
        raise SignalTooShortError(f"bvp has {len(x)} samples; the SNR needs at least 2")
    freq, power = _spectrum(
        x, fps, _resolve_nfft(len(x), fps, zero_pad_to, "zero_pad_to"), method, "hann", 8.0, "constant"
    )
    return float(_snr_from_spectrum(freq, power, np.array([hr_bpm]), band, tol_bpm))


@dataclass(frozen=True)
class WindowedHR:
    """Heart rate in sliding windows; every array has shape (W,), one entry per window.

    Attributes
    ----------
    t_center_s, t_start_s, t_end_s : window centre / start / end in seconds, on the time
        axis of the trace (``timestamps_s`` if given, else ``sample_index / fps``).
    hr_bpm : heart rate in bpm; NaN where the window has too few valid samples.
    snr_db : de Haan SNR of the window at its own HR, in dB; NaN where ``hr_bpm`` is.
    valid_fraction : fraction of the window's samples that were valid (finite and
        marked valid), in [0, 1].
    confidence : in [0, 1] per window where the estimator reports one (the fused
        estimator, :func:`facepulse.signal.fusion.fuse_pulses`), else None.
    """

    t_center_s: np.ndarray
    t_start_s: np.ndarray
    t_end_s: np.ndarray
    hr_bpm: np.ndarray
    snr_db: np.ndarray
    valid_fraction: np.ndarray
    confidence: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.hr_bpm)


def _time_axis(timestamps_s: np.ndarray | None, n: int, fps: float) -> np.ndarray:
    if timestamps_s is None:
        return np.arange(n) / fps
    t = np.asarray(timestamps_s, dtype=np.float64)
    if t.shape != (n,):
        raise InputError(f"timestamps_s must have shape ({n},) like bvp, got {t.shape}")
    if not np.isfinite(t).all():
        raise InputError(f"timestamps_s has NaN/inf at sample {np.flatnonzero(~np.isfinite(t))[0]}")
    dt = np.diff(t)
    if n > 1 and (dt <= 0).any():
        raise InputError(f"timestamps_s must increase strictly; it does not at sample {np.flatnonzero(dt <= 0)[0] + 1}")
    if n > 1 and abs(np.median(dt) * fps - 1.0) > 0.05:
        raise InputError(
            f"timestamps_s median step {np.median(dt):.4g} s does not match fps {fps:g} "
            "(resample the trace onto a uniform grid first)"
        )
    return t


def window_starts(t: np.ndarray, n_win: int, fps: float, step_s: float) -> np.ndarray:
    """First sample of each sliding window: window k starts at the first sample at or
    after ``t[0] + k * step_s`` (half a sample of slack), and ends inside the signal.

    Parameters
    ----------
    t : (N,) sample times, seconds, increasing; N >= n_win.
    n_win : samples per window.

    Returns
    -------
    (W,) int64 sample indices.
    """
    n = t.shape[0]
    last_start_t = t[n - n_win]
    starts_t = t[0] + step_s * np.arange(int(np.floor((last_start_t - t[0]) / step_s + 1e-9)) + 1)
    first = np.searchsorted(t, starts_t - 0.5 / fps)
    return np.unique(first[first <= n - n_win]).astype(np.int64)


def windowed_hr(
    bvp: np.ndarray,
    fps: float,
    *,
    window_s: float = 10.0,
    step_s: float = 1.0,
    band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
    snr_band_bpm: tuple[float, float] = SNR_BAND_BPM,
    valid: np.ndarray | None = None,
    timestamps_s: np.ndarray | None = None,
    min_valid_fraction: float = 0.8,
    method: str = "periodogram",
    zero_pad_to: int | None = None,
) -> WindowedHR:
    """Heart rate and SNR in sliding windows, all windows computed in one batch.

    de Haan & Jeanne, IEEE Trans. Biomed. Eng. 60(10):2878-2886 (2013) (windowed spectral
    HR and SNR); each window's HR as in :func:`estimate_hr_bpm`, its SNR as in :func:`snr_db`.

    Invalid samples (NaN in ``bvp`` or False in ``valid``) are zeroed after removing the
    mean of the valid ones; a window with less than ``min_valid_fraction`` valid samples
    gets NaN HR and SNR.

    Parameters
    ----------
    bvp : (N,) float
        Pulse signal sampled uniformly at ``fps``; NaN marks gaps.
    fps : float
        Sampling rate in Hz.
    window_s, step_s : float
        Window length and hop in seconds.
    band_bpm : (float, float)
        HR search band in bpm.
    snr_band_bpm : (float, float)
        SNR band in bpm (see :func:`snr_db`).
    valid : (N,) bool, optional
        False where the sample is unusable (e.g. no face).
    timestamps_s : (N,) float, optional
        Time of each sample in seconds (strictly increasing, steps of about ``1 / fps``),
        so windows are placed on the trace's real time; default ``arange(N) / fps``.
    min_valid_fraction : float
        Minimum fraction of valid samples for a window to get an HR, in (0, 1].
    method, zero_pad_to
        Spectral estimator and FFT length, as in :func:`estimate_hr_bpm`.

    Returns
    -------
    WindowedHR
        One entry per window; windows start every ``step_s`` from the first sample and the
        last one ends at or before the end of the trace.
    """
    fps = check_fps(fps)
    x = _check_1d(bvp, "bvp")
    n = len(x)
    band = _check_band(band_bpm, fps)
    snr_band = _check_band(snr_band_bpm, fps, "snr_band_bpm")
    if not window_s > 0 or not step_s > 0:
        raise ConfigError(f"window_s and step_s must be positive, got {window_s!r} and {step_s!r}")
    if not 0 < min_valid_fraction <= 1:
        raise ConfigError(f"min_valid_fraction must lie in (0, 1], got {min_valid_fraction!r}")
    n_win = round(window_s * fps)
    if n_win < _min_samples(band, fps):
        raise ConfigError(
            f"window_s={window_s:g} is too short for HR down to {band[0]:g} bpm "
            f"(needs {_min_samples(band, fps) / fps:.2f} s)"
        )
    if n < n_win:
        raise SignalTooShortError(
            f"signal has {n} samples ({n / fps:.2f} s) but one window needs {n_win} "
            f"({window_s:g} s at {fps:g} fps)"
        )
    ok = np.isfinite(x)
    if valid is not None:
        v = np.asarray(valid)
        if v.shape != (n,):
            raise InputError(f"valid must have shape ({n},) like bvp, got {v.shape}")
        ok &= v.astype(bool)
    t = _time_axis(timestamps_s, n, fps)

    first = window_starts(t, n_win, fps, step_s)
    idx = first[:, None] + np.arange(n_win)[None, :]

    ok_w = ok[idx]
    valid_fraction = ok_w.mean(axis=1)
    x_w = np.where(ok_w, x[idx], 0.0)
    count = ok_w.sum(axis=1)
    mean = np.divide(x_w.sum(axis=1), count, out=np.zeros(len(first)), where=count > 0)
    x_w = np.where(ok_w, x_w - mean[:, None], 0.0)
    usable = valid_fraction >= min_valid_fraction

    nfft = _resolve_nfft(n_win, fps, zero_pad_to, "zero_pad_to")
    hr = np.full(len(first), np.nan)
    snr = np.full(len(first), np.nan)
    rows = np.flatnonzero(usable)
    chunk = max(1, _MAX_SPECTRUM_VALUES // (nfft // 2 + 1))
    for a in range(0, len(rows), chunk):
        sel = rows[a : a + chunk]
        freq, power = _spectrum(x_w[sel], fps, nfft, method, "hann", 8.0, False)
        hr_sel = 60.0 * _peak_hz(freq, power, (band[0] / 60.0, band[1] / 60.0))
        hr[sel] = hr_sel
        snr[sel] = _snr_from_spectrum(freq, power, hr_sel, snr_band, 6.0)

    t_start = t[first]
    t_end = t[first + n_win - 1] + 1.0 / fps
    return WindowedHR(
        t_center_s=0.5 * (t_start + t_end),
        t_start_s=t_start,
        t_end_s=t_end,
        hr_bpm=hr,
        snr_db=snr,
        valid_fraction=valid_fraction,
    )
