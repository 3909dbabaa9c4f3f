"""Heart rate tracked across windows: a Viterbi path over the spectrogram.

Heart rate changes slowly; a window whose spectral peak jumps 40 bpm from its
neighbours is almost always noise winning that window. Rather than pick each window's
peak on its own, the most likely HR *sequence* is found by dynamic programming (Viterbi,
IEEE Trans. Inf. Theory 13(2):260, 1967) over per-window spectral evidence and a
Gaussian prior on the change between windows, as in spectral-peak tracking for
wearable PPG (Zhang, Pi & Liu, "TROIKA", IEEE Trans. Biomed. Eng. 62(2):522, 2015).
"""

from __future__ import annotations

import numpy as np

from facepulse.errors import ConfigError, InputError

__all__ = ["forward_step", "log_transition", "track_confidence", "viterbi_track"]


def log_transition(
    grid_bpm: np.ndarray, step_s: float, sigma_bpm_per_s: float = 3.0, max_change_bpm_per_s: float = 10.0
) -> np.ndarray:
    """(G, G) log prior of moving from HR ``grid[j]`` to ``grid[i]`` in ``step_s`` seconds:
    Gaussian in the change, ``-inf`` beyond ``max_change_bpm_per_s``."""
    grid = np.asarray(grid_bpm, dtype=np.float64)
    sigma = sigma_bpm_per_s * step_s
    limit = max(max_change_bpm_per_s * step_s, float(np.min(np.diff(grid))) if grid.size > 1 else 0.0)
    delta = grid[:, None] - grid[None, :]  # (to, from)
    transition = -0.5 * (delta / sigma) ** 2
    transition[np.abs(delta) > limit] = -np.inf
    return transition


def forward_step(score: np.ndarray, log_likelihood: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """One step of the Viterbi recursion: best score of each HR after one more window
    (for trackers that run online and never look back, e.g. ``facepulse live``)."""
    return np.max(score[None, :] + transition, axis=1) + log_likelihood


def viterbi_track(
    log_likelihood: np.ndarray,
    grid_bpm: np.ndarray,
    step_s: float,
    *,
    sigma_bpm_per_s: float = 3.0,
    max_change_bpm_per_s: float = 10.0,
) -> np.ndarray:
    """Most likely HR path through per-window evidence.

    Parameters
    ----------
    log_likelihood : (W, G) float, log evidence of each HR candidate in each window
        (e.g. the log of a normalised power spectrum); a row of zeros is "no evidence"
        (a window without a face) and the path is carried through it by the prior.
    grid_bpm : (G,) float, the HR candidates in bpm, increasing.
    step_s : hop between windows in seconds.
    sigma_bpm_per_s : standard deviation of the HR change, bpm per second of hop.
    max_change_bpm_per_s : HR changes faster than this are impossible.

    Returns
    -------
    (W,) float, the tracked HR in bpm (values of ``grid_bpm``).
    """
    ll = np.asarray(log_likelihood, dtype=np.float64)
    grid = np.asarray(grid_bpm, dtype=np.float64)
    if ll.ndim != 2 or ll.shape[1] != grid.shape[0]:
        raise InputError(f"log_likelihood must be (W, {grid.shape[0]}), got {ll.shape}")
    if not (step_s > 0 and sigma_bpm_per_s > 0 and max_change_bpm_per_s > 0):
        raise ConfigError("step_s, sigma_bpm_per_s and max_change_bpm_per_s must be positive")
    if not np.all(np.isfinite(ll)):
        raise InputError("log_likelihood has NaN/inf values")
    n_win = ll.shape[0]
    if n_win == 0:
        return np.zeros(0)
    transition = log_transition(grid, step_s, sigma_bpm_per_s, max_change_bpm_per_s)
    score = ll[0].copy()
    back = np.zeros((n_win, grid.size), dtype=np.int64)
    for t in range(1, n_win):
        cand = score[None, :] + transition
        back[t] = np.argmax(cand, axis=1)
        score = cand[np.arange(grid.size), back[t]] + ll[t]
    path = np.zeros(n_win, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(n_win - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return grid[path]


def track_confidence(
    spectrum: np.ndarray, grid_bpm: np.ndarray, hr_bpm: np.ndarray, *, tol_bpm: float = 6.0
) -> np.ndarray:
    """How much of each window's spectral evidence supports the tracked HR, in [0, 1].

    The share ``m`` of the (normalised, non-negative) spectrum within ``tol_bpm`` of the
    HR, rescaled so that a flat spectrum (pure noise) scores 0 and a single line at the
    HR scores 1: ``(m - m0) / (1 - m0)`` with ``m0`` the share of a flat spectrum.

    Parameters
    ----------
    spectrum : (W, G) non-negative evidence per window.
    grid_bpm : (G,) bpm.
    hr_bpm : (W,) tracked HR in bpm (NaN gives NaN).

    Returns
    -------
    (W,) float in [0, 1], NaN where ``hr_bpm`` is NaN or the window holds no power.
    """
    spec = np.asarray(spectrum, dtype=np.float64)
    grid = np.asarray(grid_bpm, dtype=np.float64)
    hr = np.asarray(hr_bpm, dtype=np.float64)
    near = np.abs(grid[None, :] - hr[:, None]) <= tol_bpm
    total = spec.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (spec * near).sum(axis=1) / total
    flat = near.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = (share - flat) / (1.0 - flat)
    conf = np.clip(conf, 0.0, 1.0)
    conf[~np.isfinite(hr) | ~(total > 0)] = np.nan
    return conf
