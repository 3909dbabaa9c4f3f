"""LGI: local group invariance."""

from __future__ import annotations

import numpy as np

from facepulse.methods._core import METHODS, check_rgb, whole_or_windowed, window_samples


def _lgi_core(windows: np.ndarray) -> np.ndarray:
    # The first left singular vector of X (3 x L) is the top eigenvector of X X^T.
    _, vecs = np.linalg.eigh(windows @ windows.transpose(0, 2, 1))
    u = vecs[..., -1]  # (W, 3)
    projected = windows - u[:, :, None] * np.einsum("wc,wcl->wl", u, windows)[:, None, :]
    g = projected[:, 1]
    return -(g - g.mean(axis=-1, keepdims=True))


@METHODS.register("lgi")
def lgi(rgb: np.ndarray, fps: float, *, window_s: float | None = None) -> np.ndarray:
    """Pulse as the green component after projecting out the dominant colour direction.

    Pilz, Zaunseder, Krajewski & Blazek, Proc. IEEE CVPR Workshops, 1254-1262 (2018).

    ``X`` (3 x L) is projected with ``I - u u^T`` where ``u`` is its first left singular
    vector (the skin/illumination direction, invariant to intensity changes); the pulse is
    the green row of the projection.

    Parameters
    ----------
    rgb : (N, 3) float
        Mean skin colour per frame (R, G, B), finite, at least 1.6 s long.
    fps : float
        Frame rate in Hz.
    window_s : float, optional
        None (default, as in the reference implementations): one projection for the
        whole trace. A length in seconds: a projection per Hann-tapered 50 %-overlapping
        window, overlap-added, which follows changing illumination.

    Returns
    -------
    (N,) float
        Zero-mean pulse (input intensity units), blood-volume polarity. Not band-limited.
    """
    length = None if window_s is None else window_samples(window_s, fps, "lgi", even=True)
    x, fps = check_rgb(rgb, fps, method="lgi", min_samples=length)
    return whole_or_windowed(x, length, _lgi_core)
