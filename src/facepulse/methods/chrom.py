"""CHROM: chrominance-based pulse."""

from __future__ import annotations

import numpy as np

from facepulse.methods._core import (
    METHODS,
    check_rgb,
    hann_window,
    overlap_add,
    std_ratio,
    window_samples,
)
from facepulse.signal._scipy import scipy_signal
from facepulse.signal.filters import DEFAULT_BAND_HZ, bandpass_padlen, bandpass_sos


@METHODS.register("chrom")
def chrom(
    rgb: np.ndarray,
    fps: float,
    *,
    window_s: float = 1.6,
    low_hz: float = DEFAULT_BAND_HZ[0],
    high_hz: float = DEFAULT_BAND_HZ[1],
    order: int = 3,
) -> np.ndarray:
    """Pulse from two chrominance signals combined with alpha tuning.

    de Haan & Jeanne, IEEE Trans. Biomed. Eng. 60(10):2878-2886 (2013).

    RGB is divided by its temporal mean over ``window_s`` (a centred moving mean),
    ``X = 3R - 2G`` and ``Y = 1.5R + G - 1.5B`` are band-passed, and in Hann-tapered
    windows of ``window_s`` (50 % overlap) ``S = Xf - (std(Xf) / std(Yf)) Yf`` is formed
    and overlap-added (normalised by the summed taper, which only matters at the ends).
    The band-pass runs over the whole trace rather than inside each 1.6 s window: a
    filter that short cannot pass rates below about 60 bpm. All windows run as one batch.

    Parameters
    ----------
    rgb : (N, 3) float
        Mean skin colour per frame (R, G, B), positive, finite, at least one window long
        and long enough for the band-pass.
    fps : float
        Frame rate in Hz.
    window_s : float
        Window length in seconds (rounded up to an even number of frames).
    low_hz, high_hz : float
        Band-pass applied to X and Y, in Hz.
    order : int
        Butterworth order of that band-pass (zero phase).

    Returns
    -------
    (N,) float
        Pulse (dimensionless), blood-volume polarity. Band-limited to ``low_hz``-``high_hz``.
    """
    import scipy.ndimage  # SciPy's signal module is imported when first used (start-up time)
    sps = scipy_signal()  # imported on first use, without scipy.stats (start-up time)

    length = window_samples(window_s, fps, "chrom", even=True)
    fps = float(fps)
    sos = bandpass_sos(fps, low_hz, high_hz, order)
    x, fps = check_rgb(
        rgb, fps, method="chrom", min_samples=max(length, bandpass_padlen(sos) + 1), positive=True
    )
    cn = x / scipy.ndimage.uniform_filter1d(x, length, axis=0, mode="nearest")
    xs = 3.0 * cn[:, 0] - 2.0 * cn[:, 1]
    ys = 1.5 * cn[:, 0] + cn[:, 1] - 1.5 * cn[:, 2]
    xy = sps.sosfiltfilt(sos, np.stack([xs, ys], axis=1), axis=0)

    def core(windows: np.ndarray) -> np.ndarray:
        xf, yf = windows[:, 0], windows[:, 1]  # (W, L) each
        return xf - std_ratio(xf, yf)[:, None] * yf

    return overlap_add(xy, length, length // 2, core, hann_window(length))
