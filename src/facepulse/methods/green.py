"""GREEN: the green channel alone."""

from __future__ import annotations

import numpy as np

from facepulse.methods._core import METHODS, check_rgb


@METHODS.register("green")
def green(rgb: np.ndarray, fps: float) -> np.ndarray:
    """Pulse from the green channel's relative intensity change.

    Verkruysse, Svaasand & Nelson, Opt. Express 16(26):21434-21445 (2008).

    Parameters
    ----------
    rgb : (N, 3) float
        Mean skin colour per frame (R, G, B), positive, finite, at least 1.6 s long.
    fps : float
        Frame rate in Hz.

    Returns
    -------
    (N,) float
        ``1 - G / mean(G)`` (dimensionless): more blood absorbs more green light, so the
        sign flip gives blood-volume polarity, like every method here. Not band-limited.
    """
    x, fps = check_rgb(rgb, fps, method="green", positive=True)
    g = x[:, 1]
    return 1.0 - g / g.mean()
