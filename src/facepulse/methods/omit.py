"""OMIT: orthogonal matrix image transformation."""

from __future__ import annotations

import numpy as np

from facepulse.methods._core import METHODS, check_rgb, whole_or_windowed, window_samples


def _omit_core(windows: np.ndarray) -> np.ndarray:
    q, _ = np.linalg.qr(windows)  # (W, 3, 3): orthonormal basis of the colour space
    u = q[..., 0]  # first basis vector: the skin colour direction
    projected = windows - u[:, :, None] * np.einsum("wc,wcl->wl", u, windows)[:, None, :]
    g = projected[:, 1]
    return -(g - g.mean(axis=-1, keepdims=True))


@METHODS.register("omit")
def omit(rgb: np.ndarray, fps: float, *, window_s: float | None = None) -> np.ndarray:
    """Pulse as the green component orthogonal to the first QR basis vector of the RGB matrix.

    Casado & Lopez, IEEE J. Biomed. Health Inform. (2023), "Face2PPG: an unsupervised
    pipeline for blood volume pulse extraction from faces".

    ``X`` (3 x L) is factorised ``X = QR``; with ``q`` the first column of ``Q``, the
    projection ``(I - q q^T) X`` removes the skin-colour direction and its green row is the
    pulse (QR replaces LGI's SVD).

    Parameters
    ----------
    rgb : (N, 3) float
        Mean skin colour per frame (R, G, B), finite, at least 1.6 s long.
    fps : float
        Frame rate in Hz.
    window_s : float, optional
        None (default): one transformation for the whole trace; a length in seconds: one
        per Hann-tapered 50 %-overlapping window, overlap-added.

    Returns
    -------
    (N,) float
        Zero-mean pulse (input intensity units), blood-volume polarity. Not band-limited.
    """
    length = None if window_s is None else window_samples(window_s, fps, "omit", even=True)
    x, fps = check_rgb(rgb, fps, method="omit", min_samples=length)
    return whole_or_windowed(x, length, _omit_core)
