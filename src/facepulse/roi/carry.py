"""Carrying a region drawn on one frame to later frames.

A region is drawn once on a reference frame; on every later frame an affine map from the
reference face to the current face is fitted, least squares, to the face's rigid anchor
points (:func:`facepulse.roi.skin.anchor_points`), so the region follows the skin as the
head moves. The fit's residual says when the face changed shape beyond what an affine
map describes (a head turn, an expression, another face): then the region is redrawn.
"""

from __future__ import annotations

import numpy as np

__all__ = ["AnchorFit", "still_carries"]

#: Scale of the face against the reference beyond which a region is redrawn at the new
#: size (resampling a much smaller or larger face blurs or skips pixels).
MAX_SCALE_RATIO = 1.6


class AnchorFit:
    """Least-squares affine map from reference anchors to the current frame's anchors.

    Parameters
    ----------
    reference_xy : (K, 2) anchor points in the reference frame, pixels.
    """

    def __init__(self, reference_xy: np.ndarray) -> None:
        ref = np.asarray(reference_xy, dtype=np.float64)
        self._homogeneous = np.hstack([ref, np.ones((ref.shape[0], 1))])  # (K, 3)
        # Box-only faces have 4 anchors (an exact fit); meshes 51 (a least-squares one).
        self._solver = np.linalg.pinv(self._homogeneous)  # (3, K)

    def fit(self, current_xy: np.ndarray) -> tuple[np.ndarray, float, float] | None:
        """``(transform, residual_px, scale)`` or None when the anchor sets differ in size.

        transform : (2, 3) reference frame pixels -> current frame pixels.
        residual_px : RMS misfit of the anchors, pixels.
        scale : the map's area scale, square-rooted (1 = same size).
        """
        current = np.asarray(current_xy, dtype=np.float64)
        if current.shape[0] != self._homogeneous.shape[0]:
            return None
        transform = (self._solver @ current).T
        residual = current - self._homogeneous @ transform.T
        residual_px = float(np.sqrt(np.mean(np.sum(residual**2, axis=1))))
        scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
        return transform, residual_px, scale


def still_carries(residual_px: float, scale: float, face_width_px: float, tol_px: float | None = None) -> bool:
    """Whether a fitted map still carries the region (else it must be redrawn): the
    anchors fit within ``tol_px`` (default ``max(1, 2% of the face width)``) and the face's
    scale stayed within :data:`MAX_SCALE_RATIO` of the reference."""
    tol = tol_px if tol_px is not None else max(1.0, 0.02 * face_width_px)
    return residual_px <= tol and 1 / MAX_SCALE_RATIO <= scale <= MAX_SCALE_RATIO
