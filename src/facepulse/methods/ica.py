"""ICA: blind source separation of the RGB traces."""

from __future__ import annotations

import numpy as np

from facepulse.errors import InputError
from facepulse.methods._core import METHODS, check_rgb
from facepulse.signal.filters import detrend
from facepulse.signal.hr import DEFAULT_BAND_BPM, power_spectrum


@METHODS.register("ica")
def ica(
    rgb: np.ndarray,
    fps: float,
    *,
    band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
    random_state: int = 0,
    max_iter: int = 1000,
) -> np.ndarray:
    """Pulse as the independent component with the strongest spectral peak in the HR band.

    Poh, McDuff & Picard, Opt. Express 18(10):10762 (2010) and IEEE Trans. Biomed. Eng.
    58(1):7-11 (2011).

    The three traces are detrended (smoothness priors), standardised, unmixed with FastICA
    (scikit-learn, 3 components) and the component whose power spectrum has the highest
    peak within ``band_bpm`` is returned (Poh 2011's selection rule). ICA leaves the sign
    open; it is fixed so the pulse correlates positively with the blood-volume-polarity
    green trace.

    Parameters
    ----------
    rgb : (N, 3) float
        Mean skin colour per frame (R, G, B), finite, at least 1.6 s long.
    fps : float
        Frame rate in Hz.
    band_bpm : (float, float)
        Band in which components are compared, in bpm.
    random_state : int
        Seed of FastICA's initial unmixing matrix (deterministic output).
    max_iter : int
        FastICA iteration limit.

    Returns
    -------
    (N,) float
        Unit-variance pulse, blood-volume polarity. Not band-limited.
    """
    from sklearn.decomposition import FastICA

    x, fps = check_rgb(rgb, fps, method="ica")
    z = detrend(x, fps)
    std = z.std(axis=0)
    if (std == 0).any():
        raise InputError(f"ica: channel {'RGB'[int(np.argmin(std))]} is constant after detrending")
    z = (z - z.mean(axis=0)) / std
    sources = FastICA(
        n_components=3, whiten="unit-variance", random_state=random_state, max_iter=max_iter
    ).fit_transform(z)
    freq_hz, power = power_spectrum(sources.T, fps)  # (3, F)
    band = (freq_hz >= band_bpm[0] / 60.0) & (freq_hz <= band_bpm[1] / 60.0)
    best = int(np.argmax(power[:, band].max(axis=1)))
    s = sources[:, best]
    # More blood, less green light: the pulse should follow -G.
    if np.dot(s, -z[:, 1]) < 0:
        s = -s
    return s
