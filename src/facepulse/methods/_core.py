"""Shared machinery of the classic rPPG methods: the registry, input checks, sliding
windows with overlap-add, and :func:`apply_method` for traces with gaps."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from facepulse.errors import ConfigError, InputError, SignalTooShortError
from facepulse.registry import Registry
from facepulse.signal.filters import check_fps, finite_segments


class MethodFn(Protocol):
    """``f(rgb (N, 3) float, fps, **params) -> bvp (N,) float``."""

    def __call__(self, rgb: np.ndarray, fps: float, **params: object) -> np.ndarray: ...


METHODS: Registry[MethodFn] = Registry("method")

#: Shortest trace any method accepts, in seconds: one cycle at the slowest rate the
#: pipeline looks for (42 bpm = 1.43 s) plus a margin; the POS/CHROM window is the same.
MIN_DURATION_S = 1.6

_CHANNELS = "RGB"

#: Windows processed per batch in overlap-add (bounds memory for hour-long traces).
_WINDOW_BATCH = 4096


def check_rgb(
    rgb: np.ndarray,
    fps: float,
    *,
    method: str,
    min_samples: int | None = None,
    positive: bool = False,
) -> tuple[np.ndarray, float]:
    """Validate a method's input; returns ``(rgb as float64 (N, 3), fps)``.

    Raises InputError for a wrong shape, non-finite or (``positive=True``) non-positive
    values, ConfigError for a bad ``fps`` and SignalTooShortError when ``N`` is below
    ``min_samples`` (default: :data:`MIN_DURATION_S` at ``fps``).
    """
    fps = check_fps(fps)
    arr = np.asarray(rgb, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"{method}: rgb must have shape (N, 3), got {arr.shape}")
    finite = np.isfinite(arr)
    if not finite.all():
        frame = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise InputError(
            f"{method}: rgb has NaN/inf at frame {frame}; use apply_method() for traces with gaps"
        )
    need = min_samples if min_samples is not None else samples_for(MIN_DURATION_S, fps)
    if arr.shape[0] < need:
        raise SignalTooShortError(
            f"{method} needs at least {need} frames ({need / fps:.2f} s at {fps:g} fps), "
            f"got {arr.shape[0]}"
        )
    if positive and (arr <= 0).any():
        frame, ch = np.argwhere(arr <= 0)[0]
        raise InputError(
            f"{method}: rgb must be positive mean intensities; channel {_CHANNELS[ch]} is "
            f"{arr[frame, ch]:g} at frame {frame}"
        )
    return arr, fps


def samples_for(duration_s: float, fps: float) -> int:
    """Number of samples covering ``duration_s`` at ``fps`` (rounded up, at least 2)."""
    return max(2, math.ceil(duration_s * fps - 1e-9))


def window_starts(n: int, length: int, step: int) -> np.ndarray:
    """Start indices of windows of ``length`` every ``step`` samples, the last one
    moved back so the windows cover all ``n`` samples."""
    starts = np.arange(0, n - length + 1, step)
    if starts[-1] + length < n:
        starts = np.append(starts, n - length)
    return starts


def overlap_add(
    x: np.ndarray,
    length: int,
    step: int,
    fn: Callable[[np.ndarray], np.ndarray],
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """Apply ``fn`` to sliding windows of ``x`` and overlap-add the results.

    Parameters
    ----------
    x : (N, C) float
        Input, windows taken along axis 0.
    length, step : int
        Window length and hop in samples.
    fn : callable
        Maps a batch of windows ``(W, C, length)`` to pulses ``(W, length)``; it is called
        on batches of windows, never per window.
    weight : (length,) float, optional
        Taper applied to each window's pulse before adding; the sum is then divided by the
        summed taper (weighted overlap-add). Without it the pulses are summed, as in POS.

    Returns
    -------
    (N,) float
    """
    n = x.shape[0]
    starts = window_starts(n, length, step)
    views = sliding_window_view(x, length, axis=0)  # (N - length + 1, C, length), no copy
    out = np.zeros(n)
    norm = np.zeros(n)
    offsets = np.arange(length)
    for a in range(0, len(starts), _WINDOW_BATCH):
        s = starts[a : a + _WINDOW_BATCH]
        pulses = fn(views[s])
        idx = (s[:, None] + offsets[None, :]).ravel()
        if weight is not None:
            pulses = pulses * weight[None, :]
            norm += np.bincount(idx, weights=np.broadcast_to(weight, pulses.shape).ravel(), minlength=n)
        out += np.bincount(idx, weights=pulses.ravel(), minlength=n)
    if weight is None:
        return out
    return np.divide(out, norm, out=np.zeros(n), where=norm > 1e-12)


def temporal_normalise(windows: np.ndarray) -> np.ndarray:
    """Divide each window ``(W, C, L)`` by its per-channel mean over time."""
    return windows / windows.mean(axis=-1, keepdims=True)


def std_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``std(a) / std(b)`` along the last axis, 0 where ``b`` is flat (no pulse to tune)."""
    sa = a.std(axis=-1)
    sb = b.std(axis=-1)
    return np.divide(sa, sb, out=np.zeros_like(sa), where=sb > 0)


def apply_method(name: str, rgb: np.ndarray, fps: float, **params: object) -> np.ndarray:
    """Run the registered method ``name`` on each contiguous valid segment of a trace.

    Rows of ``rgb`` holding a NaN are gaps (no face, invalid frames). Each run of finite
    rows is processed on its own; gaps, and runs too short for the method (it raises
    SignalTooShortError on them), come out NaN.

    Parameters
    ----------
    name : str
        Registered method name (see ``METHODS.names()``); unknown names raise ConfigError
        listing the available ones.
    rgb : (N, 3) float
        Mean skin colour per frame, NaN rows for gaps.
    fps : float
        Frame rate in Hz.
    **params
        Passed to the method.

    Returns
    -------
    (N,) float
        Pulse signal, NaN in gaps and in segments too short for the method.

    Raises
    ------
    SignalTooShortError
        When no segment is long enough (the message is the method's own, for the
        longest segment).
    """
    fn = METHODS.get(name)
    fps = check_fps(fps)
    arr = np.asarray(rgb, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"{name}: rgb must have shape (N, 3), got {arr.shape}")
    out = np.full(arr.shape[0], np.nan)
    segments = finite_segments(np.isfinite(arr).all(axis=1))
    if not segments:
        raise InputError(f"{name}: rgb has no finite frame")
    longest_error: SignalTooShortError | None = None
    done = 0
    for seg in sorted(segments, key=lambda s: s.start - s.stop):  # longest first
        try:
            out[seg] = fn(arr[seg], fps, **params)
            done += 1
        except SignalTooShortError as err:
            longest_error = longest_error or err
    if done == 0:
        assert longest_error is not None
        raise longest_error
    return out


def hann_window(length: int) -> np.ndarray:
    """Periodic Hann taper: copies at 50 % overlap sum to exactly 1."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def window_samples(window_s: float, fps: float, method: str, *, even: bool = False) -> int:
    """Samples in a window of ``window_s`` seconds at ``fps`` (made even for 50 % overlap
    when ``even``); ConfigError unless ``window_s`` is positive."""
    try:
        seconds = float(window_s)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (np.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"{method}: window_s must be a positive number of seconds, got {window_s!r}")
    length = samples_for(seconds, check_fps(fps))
    return length + length % 2 if even else length


def whole_or_windowed(
    x: np.ndarray,
    length: int | None,
    core: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Run a batched method ``core`` ((W, 3, L) -> (W, L)) on the whole trace
    (``length=None``) or on Hann-weighted 50 %-overlapping windows of ``length``."""
    if length is None:
        return core(x.T[None])[0]
    return overlap_add(x, length, length // 2, core, hann_window(length))
