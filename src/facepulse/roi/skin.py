"""Skin regions of interest: forehead and cheeks, filtered by the face's own skin colour.

The forehead and cheeks carry the strongest, least motion-affected pulse signal
(Kwon et al., EMBC 2015, "ROI analysis for remote photoplethysmography"); eyes, brows,
nostrils, lips, beard, hair and background carry none and are kept out, first by the
geometry of the regions, then by a colour test against the face's own median skin tone.

Regions are registered in ``ROIS``: a function ``(face) -> list of (P, 2) polygons`` in
pixels. Add one by decorating it with ``@ROIS.register("name")``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from facepulse.face.detectors import Face
from facepulse.registry import Registry

__all__ = [
    "ROIS",
    "anchor_points",
    "roi_polygons",
    "skin_colour_filter",
    "skin_mask",
    "skin_mask_crop",
]

ROIS: Registry[Callable[[Face], list[np.ndarray]]] = Registry("skin ROI")

# MediaPipe face-mesh landmark indices (468-point topology), checked by drawing them on
# real frames. "Right" is the subject's right, i.e. the left side of the image.
MESH_POINTS = 468
# Upper forehead edge, image left to right.
FOREHEAD_TOP = (103, 67, 109, 10, 338, 297, 332)
# Lower forehead edge, image right to left: midpoints of (forehead point, brow-top point)
# pairs, which stops the region halfway between the upper forehead row and the brows.
FOREHEAD_BOTTOM_PAIRS = ((333, 334), (299, 296), (337, 336), (151, 9), (108, 107), (69, 66), (104, 105))
# Cheeks below the lower eyelid, beside the nose, above the mouth corners and the jaw edge.
CHEEK_RIGHT = (117, 118, 119, 120, 100, 142, 203, 206, 207, 187, 147, 123)
CHEEK_LEFT = (346, 347, 348, 349, 329, 371, 423, 426, 427, 411, 376, 352)

# Points that move rigidly with the forehead and cheeks: the ROI's own outline points and
# the nose bridge (not the jaw, lips or eyelids, which move when the person talks or
# blinks). Trace extraction fits the face's motion to these.
ANCHORS = tuple(
    sorted(
        set(FOREHEAD_TOP)
        | {k for pair in FOREHEAD_BOTTOM_PAIRS for k in pair}
        | set(CHEEK_RIGHT)
        | set(CHEEK_LEFT)
        | {168, 6, 197, 195, 5, 4}
    )
)

# Without landmarks (box-only detectors such as Haar): sub-boxes as fractions
# (x0, y0, x1, y1) of the face box, placed for OpenCV's frontal-face cascade boxes,
# which span from mid-forehead to the chin.
BOX_FOREHEAD = (0.30, 0.08, 0.70, 0.20)
BOX_CHEEK_RIGHT = (0.21, 0.54, 0.38, 0.71)
BOX_CHEEK_LEFT = (0.62, 0.54, 0.79, 0.71)


def _has_mesh(face: Face) -> bool:
    return face.landmarks_xy is not None and face.landmarks_xy.shape[0] >= MESH_POINTS


def _box_polygon(face: Face, frac: tuple[float, float, float, float]) -> np.ndarray:
    x0, y0, x1, y1 = face.box_xyxy
    w, h = x1 - x0, y1 - y0
    fx0, fy0, fx1, fy1 = frac
    return np.array(
        [
            [x0 + fx0 * w, y0 + fy0 * h],
            [x0 + fx1 * w, y0 + fy0 * h],
            [x0 + fx1 * w, y0 + fy1 * h],
            [x0 + fx0 * w, y0 + fy1 * h],
        ]
    )


def _forehead(face: Face) -> list[np.ndarray]:
    if not _has_mesh(face):
        return [_box_polygon(face, BOX_FOREHEAD)]
    xy = face.landmarks_xy
    top = xy[list(FOREHEAD_TOP)]
    pairs = np.array(FOREHEAD_BOTTOM_PAIRS)
    bottom = 0.5 * (xy[pairs[:, 0]] + xy[pairs[:, 1]])
    return [np.vstack([top, bottom])]


def _cheeks(face: Face) -> list[np.ndarray]:
    if not _has_mesh(face):
        return [_box_polygon(face, BOX_CHEEK_RIGHT), _box_polygon(face, BOX_CHEEK_LEFT)]
    xy = face.landmarks_xy
    return [xy[list(CHEEK_RIGHT)], xy[list(CHEEK_LEFT)]]


@ROIS.register("skin")
def forehead_and_cheeks(face: Face) -> list[np.ndarray]:
    """Forehead and both cheeks (the default)."""
    return _forehead(face) + _cheeks(face)


@ROIS.register("forehead")
def forehead(face: Face) -> list[np.ndarray]:
    """Forehead only (for faces whose cheeks are bearded or shadowed)."""
    return _forehead(face)


@ROIS.register("cheeks")
def cheeks(face: Face) -> list[np.ndarray]:
    """Both cheeks only (for faces whose forehead is covered by hair or a cap)."""
    return _cheeks(face)


def anchor_points(face: Face) -> np.ndarray:
    """Points of ``face`` that move rigidly with its skin ROI, ``(K, 2)`` float pixels.

    With the 468 MediaPipe landmarks: the forehead and cheek outline points and the nose
    bridge (``ANCHORS``, K = 51), whose motion from frame to frame is the skin's. With a
    box only: its four corners. Fitting an affine map between a face's anchors in two
    frames tells where each ROI pixel of one frame went in the other.
    """
    if _has_mesh(face):
        return face.landmarks_xy[list(ANCHORS)]
    x0, y0, x1, y1 = face.box_xyxy
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def roi_polygons(face: Face, roi: str = "skin") -> list[np.ndarray]:
    """The ROI's polygons, each ``(P, 2)`` float ``(x, y)`` in pixels.

    With the 468 MediaPipe landmarks the regions follow the face's anatomy; with a box
    only, they are fixed sub-boxes of the face box.
    """
    return ROIS.get(roi)(face)


def skin_colour_filter(
    crop_rgb: np.ndarray,
    region: np.ndarray,
    *,
    chroma_k: float = 3.0,
    chroma_tol_range: tuple[float, float] = (4.0, 14.0),
    luma_k: float = 3.0,
    luma_tol_range: tuple[float, float] = (25.0, 70.0),
    saturation_level: int = 250,
) -> np.ndarray:
    """Keep the pixels of ``region`` whose colour is close to the region's median skin.

    Skin occupies a compact cluster in the (Cr, Cb) chroma plane (Chai & Ngan, IEEE TCSVT
    1999); instead of fixed bounds, which break under coloured light, the cluster is
    centred on the region's own median and sized by its median absolute deviation, so
    hair, brows, beard, glasses and background leaking into the region are dropped.

    Parameters
    ----------
    crop_rgb : (h, w, 3) uint8 RGB image (a crop around the face).
    region : (h, w) bool, the candidate pixels (mostly skin).
    chroma_k, luma_k : tolerance in robust standard deviations (1.4826 * MAD).
    chroma_tol_range, luma_tol_range : (min, max) tolerance on Cr/Cb and on Y, in 8-bit
        units; the floor keeps a uniform face from being cut to nothing, the ceiling
        keeps a region half full of hair from accepting everything.
    saturation_level : pixels with any channel at or above this are dropped (clipped
        pixels carry no colour variation).

    Returns
    -------
    (h, w) bool mask, a subset of ``region``.
    """
    import cv2

    region = np.asarray(region, dtype=bool)
    if not region.any():
        return region.copy()
    ycc = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2YCrCb)
    values = ycc[region].astype(np.float32)  # (n, 3): Y, Cr, Cb
    median = np.median(values, axis=0)
    sigma = 1.4826 * np.median(np.abs(values - median), axis=0)
    tol = np.array(
        [
            np.clip(luma_k * sigma[0], *luma_tol_range),
            np.clip(chroma_k * sigma[1], *chroma_tol_range),
            np.clip(chroma_k * sigma[2], *chroma_tol_range),
        ],
        dtype=np.float32,
    )
    lo = np.clip(np.floor(median - tol), 0, 255).astype(np.uint8)
    hi = np.clip(np.ceil(median + tol), 0, 255).astype(np.uint8)
    keep = cv2.inRange(ycc, lo, hi).astype(bool)
    unclipped = crop_rgb.max(axis=2) < saturation_level
    return region & keep & unclipped


def skin_mask_crop(
    frame_rgb: np.ndarray,
    face: Face,
    *,
    roi: str = "skin",
    colour_filter: bool = True,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The skin mask inside the ROI's bounding box only (cheap: no full-frame work).

    Returns
    -------
    mask : (y1 - y0, x1 - x0) bool.
    bounds : (x0, y0, x1, y1) ints, the crop in frame pixels (``frame[y0:y1, x0:x1]``);
        empty (x1 <= x0 or y1 <= y0) when the ROI lies outside the frame.
    """
    import cv2

    height, width = frame_rgb.shape[:2]
    polygons = roi_polygons(face, roi)
    points = np.vstack(polygons)
    x0 = int(np.clip(np.floor(points[:, 0].min()), 0, width))
    y0 = int(np.clip(np.floor(points[:, 1].min()), 0, height))
    x1 = int(np.clip(np.ceil(points[:, 0].max()) + 1, 0, width))
    y1 = int(np.clip(np.ceil(points[:, 1].max()) + 1, 0, height))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=bool), (x0, y0, x1, y1)
    region = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    shift = 4  # sub-pixel vertices: the mask moves smoothly with the landmarks
    scaled = [
        np.round((poly - (x0, y0)) * (1 << shift)).astype(np.int32).reshape(-1, 1, 2) for poly in polygons
    ]
    cv2.fillPoly(region, scaled, 1, lineType=cv2.LINE_8, shift=shift)
    mask = region.astype(bool)
    if colour_filter:
        mask = skin_colour_filter(frame_rgb[y0:y1, x0:x1], mask)
    return mask, (x0, y0, x1, y1)


def skin_mask(
    frame_rgb: np.ndarray,
    face: Face,
    *,
    roi: str = "skin",
    colour_filter: bool = True,
) -> np.ndarray:
    """Boolean mask of the face's skin ROI (forehead and cheeks by default).

    Parameters
    ----------
    frame_rgb : (H, W, 3) uint8 RGB frame.
    face : the face in this frame; with MediaPipe's 468 landmarks the ROI follows the
        face's anatomy (eyes, brows, nostrils and mouth excluded), with a box only it is
        made of geometric forehead/cheek sub-boxes.
    roi : a ``ROIS`` name: ``"skin"`` (forehead + cheeks), ``"forehead"``, ``"cheeks"``.
    colour_filter : also drop pixels whose colour is far from the face's median skin
        (hair, beard, glasses, background).

    Returns
    -------
    (H, W) bool mask, True on ROI skin pixels.
    """
    height, width = frame_rgb.shape[:2]
    crop_mask, (x0, y0, x1, y1) = skin_mask_crop(frame_rgb, face, roi=roi, colour_filter=colour_filter)
    mask = np.zeros((height, width), dtype=bool)
    if crop_mask.size:
        mask[y0:y1, x0:x1] = crop_mask
    return mask
