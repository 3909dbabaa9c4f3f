"""Frames at their own times -> frames on a regular time grid (linear interpolation).

Shared by the training clips (:class:`facepulse.datasets.clips.ClipDataset`) and model
inference on a whole video (:func:`facepulse.pipeline.predict_from_face_frames`), so a
model sees at inference the same resampling it was trained on.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SNAP_S", "resample_frames", "source_positions"]

# Container timestamps are often rounded to 1 ms (Matroska): a grid time that close to a
# frame takes that frame as it is, rather than a 97/3 blend with its neighbour.
SNAP_S = 1e-3


def source_positions(t_s: np.ndarray, grid_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each grid time, the frames around it and the linear weight of the later one."""
    n = t_s.size
    i0 = np.clip(np.searchsorted(t_s, grid_s, side="right") - 1, 0, max(0, n - 2))
    i1 = np.minimum(i0 + 1, n - 1)
    span = np.where(i1 > i0, t_s[i1] - t_s[i0], 1.0)
    w = np.clip((grid_s - t_s[i0]) / span, 0.0, 1.0)
    w = np.where(np.abs(grid_s - t_s[i0]) <= SNAP_S, 0.0, np.where(np.abs(t_s[i1] - grid_s) <= SNAP_S, 1.0, w))
    return i0, i1, w


def resample_frames(timestamps_s: np.ndarray, frames: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Frames at their own (possibly irregular) times -> frames on a regular grid at ``fps``.

    Linear interpolation between the two nearest frames, as
    :class:`facepulse.datasets.clips.ClipDataset` resamples training clips. The grid is
    ``timestamps_s[0] + k / fps`` up to the last frame (that of
    :func:`facepulse.roi.trace.resample_uniform`). Returns ``(t_grid (M,), frames (M, ...)
    float32)``, unrounded like the training clips.
    """
    t = np.asarray(timestamps_s, dtype=np.float64)
    n = int(np.floor((t[-1] - t[0]) * fps + 1e-9)) + 1
    grid = t[0] + np.arange(n) / fps
    i0, i1, w = source_positions(t, grid)
    out = np.empty((n,) + frames.shape[1:], np.float32)
    for start in range(0, n, 256):  # in blocks: bounded temporary memory
        sl = slice(start, start + 256)
        wb = w[sl].astype(np.float32).reshape((-1,) + (1,) * (frames.ndim - 1))
        out[sl] = (1.0 - wb) * frames[i0[sl]] + wb * frames[i1[sl]]
    return grid, out
