"""Pulse conditioning: smoothness-priors detrending and zero-phase band-pass filtering.

Both filters work along axis 0 of a ``(N,)`` or ``(N, C)`` array sampled at ``fps`` and are
NaN-aware: rows holding a NaN are treated as gaps, each contiguous run of finite rows is
filtered on its own, and the gaps stay NaN in the output. A run too short for the filter
comes out NaN as well (it cannot be filtered); if no run is long enough the call raises
:class:`~facepulse.errors.SignalTooShortError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from facepulse.errors import ConfigError, InputError, SignalTooShortError
from facepulse.signal._scipy import scipy_signal

if TYPE_CHECKING:  # SciPy is imported where used: its signal module costs ~0.7 s of start-up
    import scipy.sparse

__all__ = [
    "DEFAULT_BAND_HZ",
    "bandpass",
    "bandpass_padlen",
    "bandpass_sos",
    "check_fps",
    "detrend",
    "finite_segments",
    "smoothness_lambda",
]

#: Default pulse band in Hz (42-210 bpm).
DEFAULT_BAND_HZ: tuple[float, float] = (0.7, 3.5)

#: Default half-amplitude cut-off of :func:`detrend` in Hz (below the 0.7 Hz pulse band).
DEFAULT_DETREND_CUTOFF_HZ = 0.4


def check_fps(fps: float) -> float:
    """Return ``fps`` as a float, raising ConfigError unless it is finite and positive."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ConfigError(f"fps must be a positive number, got {fps!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    return value


def _as_signal(x: np.ndarray, name: str = "x") -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[0] == 0:
        raise InputError(f"{name} must have shape (N,) or (N, C) with N > 0, got {arr.shape}")
    return arr


def finite_segments(valid: np.ndarray) -> list[slice]:
    """Contiguous runs of True in a boolean mask.

    Parameters
    ----------
    valid : (N,) bool
        True where a sample is usable.

    Returns
    -------
    list of slice
        One ``slice(start, stop)`` per run, in order.
    """
    v = np.asarray(valid, dtype=bool).ravel()
    edges = np.diff(np.concatenate(([0], v.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return [slice(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def _per_segment(
    x: np.ndarray,
    fn: Callable[[np.ndarray], np.ndarray],
    min_len: int,
    what: str,
    fps: float,
) -> np.ndarray:
    """Apply ``fn`` to each finite run of rows of ``x`` that has at least ``min_len`` rows."""
    finite = np.isfinite(x) if x.ndim == 1 else np.isfinite(x).all(axis=1)
    if finite.all():
        if len(x) < min_len:
            raise SignalTooShortError(
                f"{what} needs at least {min_len} samples ({min_len / fps:.2f} s at {fps:g} fps), "
                f"signal has {len(x)}"
            )
        return fn(x)
    out = np.full_like(x, np.nan)
    segments = [s for s in finite_segments(finite) if s.stop - s.start >= min_len]
    if not segments:
        longest = max((s.stop - s.start for s in finite_segments(finite)), default=0)
        raise SignalTooShortError(
            f"{what} needs a run of at least {min_len} finite samples "
            f"({min_len / fps:.2f} s at {fps:g} fps); the longest run has {longest}"
        )
    for seg in segments:
        out[seg] = fn(x[seg])
    return out


def smoothness_lambda(cutoff_hz: float, fps: float) -> float:
    """Smoothing parameter of :func:`detrend` whose high-pass has its half-amplitude
    point at ``cutoff_hz``.

    The detrender's high-pass response is ``L(w) / (1 + L(w))`` with
    ``L(w) = (lambda * (2 - 2 cos w))**2`` (w in rad/sample), which is 1/2 where
    ``lambda * (2 - 2 cos w) = 1``. For example 0.48 Hz at 30 fps gives lambda = 100.

    Parameters
    ----------
    cutoff_hz : float
        Half-amplitude frequency in Hz, ``0 < cutoff_hz < fps / 2``.
    fps : float
        Sampling rate in Hz.
    """
    fps = check_fps(fps)
    if not 0 < cutoff_hz < fps / 2:
        raise ConfigError(f"cutoff_hz must lie in (0, fps/2 = {fps / 2:g}), got {cutoff_hz!r}")
    w = 2.0 * np.pi * cutoff_hz / fps
    return float(1.0 / (2.0 - 2.0 * np.cos(w)))


def _detrend_matrix(n: int, lambda_: float) -> scipy.sparse.csc_matrix:
    """``I + lambda^2 D2' D2`` (D2: second differences), built band by band."""
    import scipy.sparse

    # D2' D2 is pentadiagonal with rows [1 -4 6 -4 1] away from the ends.
    main = np.full(n, 6.0)
    main[[0, -1]] = 1.0
    main[[1, -2]] = 5.0
    off1 = np.full(n - 1, -4.0)
    off1[[0, -1]] = -2.0
    off2 = np.ones(n - 2)
    lam2 = lambda_**2
    return scipy.sparse.diags(
        [lam2 * off2, lam2 * off1, 1.0 + lam2 * main, lam2 * off1, lam2 * off2],
        [-2, -1, 0, 1, 2],
        format="csc",
    )


def detrend(
    x: np.ndarray,
    fps: float,
    lambda_: float | None = None,
    *,
    cutoff_hz: float | None = None,
) -> np.ndarray:
    """Remove slow trends with smoothness-priors detrending.

    Tarvainen, Ranta-aho & Karjalainen, IEEE Trans. Biomed. Eng. 49(2):172-175 (2002).

    Computes ``x - (I + lambda^2 D2' D2)^-1 x`` with a sparse solve (O(N)).

    Parameters
    ----------
    x : (N,) or (N, C) float
        Signal(s) sampled at ``fps``, along axis 0. NaN rows are gaps (see module doc).
    fps : float
        Sampling rate in Hz.
    lambda_ : float, optional
        Smoothing parameter (in samples). Give either this or ``cutoff_hz``; with neither,
        lambda is chosen for a half-amplitude cut-off of 0.4 Hz at this ``fps``
        (:func:`smoothness_lambda`), so the result does not depend on the frame rate.
    cutoff_hz : float, optional
        Half-amplitude cut-off frequency in Hz, converted to lambda.

    Returns
    -------
    (N,) or (N, C) float
        The detrended signal, same shape as ``x``.
    """
    import scipy.sparse.linalg

    fps = check_fps(fps)
    x = _as_signal(x)
    if lambda_ is not None and cutoff_hz is not None:
        raise ConfigError("detrend: give lambda_ or cutoff_hz, not both")
    if lambda_ is None:
        lambda_ = smoothness_lambda(
            DEFAULT_DETREND_CUTOFF_HZ if cutoff_hz is None else cutoff_hz, fps
        )
    if not np.isfinite(lambda_) or lambda_ <= 0:
        raise ConfigError(f"detrend: lambda_ must be positive, got {lambda_!r}")

    def run(seg: np.ndarray) -> np.ndarray:
        # Natural ordering keeps the banded LU free of fill-in: O(N) time and memory.
        trend = scipy.sparse.linalg.spsolve(_detrend_matrix(len(seg), lambda_), seg, permc_spec="NATURAL")
        return seg - np.reshape(trend, seg.shape)

    return _per_segment(x, run, 3, "detrend", fps)


def bandpass_sos(fps: float, low_hz: float, high_hz: float, order: int = 4) -> np.ndarray:
    """Second-order sections of the Butterworth band-pass used by :func:`bandpass`."""
    sps = scipy_signal()  # imported on first use, without scipy.stats (start-up time)

    fps = check_fps(fps)
    if not 0 < low_hz < high_hz < fps / 2:
        raise ConfigError(
            f"bandpass: need 0 < low_hz < high_hz < fps/2 = {fps / 2:g} Hz, "
            f"got low_hz={low_hz!r}, high_hz={high_hz!r}"
        )
    if int(order) != order or order < 1:
        raise ConfigError(f"bandpass: order must be a positive integer, got {order!r}")
    return sps.butter(int(order), [low_hz, high_hz], btype="bandpass", fs=fps, output="sos")


def bandpass_padlen(sos: np.ndarray) -> int:
    """Edge padding that :func:`scipy.signal.sosfiltfilt` uses by default for ``sos``."""
    n_zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * (2 * len(sos) + 1 - n_zeros)


def bandpass(
    x: np.ndarray,
    fps: float,
    low_hz: float = DEFAULT_BAND_HZ[0],
    high_hz: float = DEFAULT_BAND_HZ[1],
    order: int = 4,
    *,
    axis: int = 0,
) -> np.ndarray:
    """Zero-phase Butterworth band-pass filter.

    Butterworth, Wireless Engineer 7:536-541 (1930); applied forward-backward
    (second-order sections, :func:`scipy.signal.sosfiltfilt`) so pulse timing is not shifted.

    Parameters
    ----------
    x : (N,) or (N, C) float, or any array when ``axis`` is given
        Signal(s) sampled at ``fps``. With ``axis=0`` NaN rows are gaps (see module doc);
        with another axis the array must be finite.
    fps : float
        Sampling rate in Hz.
    low_hz, high_hz : float
        Pass band in Hz (default 0.7-3.5 Hz = 42-210 bpm); ``high_hz < fps / 2``.
    order : int
        Butterworth order of the low-pass prototype (the band-pass has ``2 * order`` poles;
        forward-backward filtering squares the magnitude response).
    axis : int
        Time axis.

    Returns
    -------
    ndarray
        Filtered signal, same shape as ``x``.
    """
    sps = scipy_signal()  # imported on first use, without scipy.stats (start-up time)

    fps = check_fps(fps)
    sos = bandpass_sos(fps, low_hz, high_hz, order)
    padlen = bandpass_padlen(sos)
    arr = np.asarray(x, dtype=np.float64)
    if axis != 0:
        if not np.isfinite(arr).all():
            raise InputError("bandpass: x contains NaN/inf; NaN gaps are handled only along axis 0")
        if arr.shape[axis] <= padlen:
            raise SignalTooShortError(
                f"bandpass needs more than {padlen} samples along axis {axis}, got {arr.shape[axis]}"
            )
        return sps.sosfiltfilt(sos, arr, axis=axis)
    arr = _as_signal(arr)
    return _per_segment(
        arr, lambda seg: sps.sosfiltfilt(sos, seg, axis=0), padlen + 1, "bandpass", fps
    )
