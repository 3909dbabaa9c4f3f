"""PBV: blood-volume pulse signature."""

from __future__ import annotations

import numpy as np

from facepulse.errors import ConfigError
from facepulse.methods._core import METHODS, check_rgb, whole_or_windowed, window_samples
from facepulse.signal._scipy import scipy_signal
from facepulse.signal.filters import DEFAULT_BAND_HZ, bandpass_padlen, bandpass_sos

#: Relative pulse amplitudes in normalised R, G, B for a typical RGB camera
#: (de Haan & van Leest 2014; the value quoted by Wang et al. 2017).
DEFAULT_PBV = (0.33, 0.77, 0.53)

#: Ridge added to the colour covariance, relative to its mean eigenvalue: keeps the
#: solve stable when the traces are nearly collinear (e.g. noise-free).
_RIDGE = 1e-6


@METHODS.register("pbv")
def pbv(
    rgb: np.ndarray,
    fps: float,
    *,
    signature: tuple[float, float, float] = DEFAULT_PBV,
    window_s: float | None = None,
    low_hz: float = DEFAULT_BAND_HZ[0],
    high_hz: float = DEFAULT_BAND_HZ[1],
    order: int = 3,
) -> np.ndarray:
    """Pulse as the minimum-variance projection that keeps the blood-volume signature.

    de Haan & van Leest, Physiol. Meas. 35(9):1913-1926 (2014).

    The normalised, band-passed colour traces ``C`` (3 x L) are projected with
    ``w = k Q^-1 Pbv``, ``Q = C C^T``, ``k`` such that ``w . Pbv = 1``: any colour
    variation not along the pulse signature ``Pbv`` (motion, specular changes) is
    suppressed as far as three channels allow.

    Parameters
    ----------
    rgb : (N, 3) float
        Mean skin colour per frame (R, G, B), positive, finite, at least 1.6 s long.
    fps : float
        Frame rate in Hz.
    signature : (3,) float
        Pulse signature ``Pbv`` (relative pulse amplitude per normalised channel); only its
        direction matters.
    window_s : float, optional
        None (default): one projection for the whole trace; a length in seconds: one per
        Hann-tapered 50 %-overlapping window, overlap-added.
    low_hz, high_hz, order
        Band-pass (Butterworth, zero phase) applied to the normalised traces.

    Returns
    -------
    (N,) float
        Pulse (relative intensity along ``Pbv``), blood-volume polarity. Band-limited.
    """
    sps = scipy_signal()  # imported on first use, without scipy.stats (start-up time)

    sig = np.asarray(signature, dtype=np.float64)
    if sig.shape != (3,) or not np.isfinite(sig).all() or np.linalg.norm(sig) == 0:
        raise ConfigError(f"pbv: signature must be 3 finite numbers, not all zero, got {signature!r}")
    sig = sig / np.linalg.norm(sig)
    length = None if window_s is None else window_samples(window_s, fps, "pbv", even=True)
    x, fps = check_rgb(rgb, fps, method="pbv", min_samples=length, positive=True)
    sos = bandpass_sos(fps, low_hz, high_hz, order)

    def core(windows: np.ndarray) -> np.ndarray:
        cn = windows / windows.mean(axis=-1, keepdims=True) - 1.0  # (W, 3, L)
        padlen = min(bandpass_padlen(sos), cn.shape[-1] - 1)
        cf = sps.sosfiltfilt(sos, cn, axis=-1, padlen=padlen)
        q = cf @ cf.transpose(0, 2, 1)  # (W, 3, 3)
        ridge = _RIDGE * np.trace(q, axis1=1, axis2=2) / 3.0 + np.finfo(np.float64).tiny
        q = q + ridge[:, None, None] * np.eye(3)
        w = np.linalg.solve(q, np.broadcast_to(sig, (len(q), 3))[..., None])[..., 0]
        w = w / (w @ sig)[:, None]
        # The projection keeps the pulse's sign in intensity: blood absorbs light, so flip.
        return -np.einsum("wc,wcl->wl", w, cf)

    return whole_or_windowed(x, length, core)
