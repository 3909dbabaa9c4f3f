"""POS: plane orthogonal to the skin tone."""

from __future__ import annotations

import numpy as np

from facepulse.methods._core import (
    METHODS,
    check_rgb,
    overlap_add,
    std_ratio,
    temporal_normalise,
    window_samples,
)


@METHODS.register("pos")
def pos(rgb: np.ndarray, fps: float, *, window_s: float = 1.6) -> np.ndarray:
    """Pulse by projecting normalised RGB on the plane orthogonal to the skin tone.

    Wang, den Brinker, Stuijk & de Haan, IEEE Trans. Biomed. Eng. 64(7):1479-1491 (2017).

    Algorithm 1 of the paper: in every window of ``l = window_s * fps`` frames (stride 1)
    the colour is divided by its temporal mean, projected with
    ``P = [[0, 1, -1], [-2, 1, 1]]``, the two projections are combined with the ratio of
    their standard deviations (alpha tuning), and the zero-mean result is overlap-added.
    All windows are computed as one batch.

    Parameters
    ----------
    rgb : (N, 3) float
        Mean skin colour per frame (R, G, B), positive, finite, at least one window long.
    fps : float
        Frame rate in Hz.
    window_s : float
        Window length ``l`` in seconds (1.6 s = 32 frames at 20 fps in the paper).

    Returns
    -------
    (N,) float
        Pulse (dimensionless), blood-volume polarity (the paper's ``H`` negated, so
        systole is a maximum as in a contact PPG). Not band-limited.
    """
    length = window_samples(window_s, fps, "pos")
    x, fps = check_rgb(rgb, fps, method="pos", min_samples=length, positive=True)

    def core(windows: np.ndarray) -> np.ndarray:
        cn = temporal_normalise(windows)  # (W, 3, L)
        s1 = cn[:, 1] - cn[:, 2]
        s2 = -2.0 * cn[:, 0] + cn[:, 1] + cn[:, 2]
        h = s1 + std_ratio(s1, s2)[:, None] * s2
        return -(h - h.mean(axis=-1, keepdims=True))

    return overlap_add(x, length, 1, core)
