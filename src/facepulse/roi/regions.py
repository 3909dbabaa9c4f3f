"""Several candidate skin regions per frame, each with its own RGB trace, in one pass.

No single region is right on every face and video: the forehead can be covered by hair,
the cheeks shadowed, and on compressed video the larger regions average out more of the
codec's block noise while the smaller ones keep more pulse contrast. Multi-region rPPG
(Kumar, Veeraraghavan & Sabharwal, "DistancePPG", Biomed. Opt. Express 6(5):1565, 2015;
Po et al., "Block-based adaptive ROI", Multimed. Tools Appl. 2018) measures each region
separately and lets the signal's quality decide; :mod:`facepulse.signal.fusion` does that
second part.

The regions are drawn once on a *reference* view of the face (a crop around it, scaled so
the face is at most :data:`CROP_WIDTH_PX` wide) and carried along with it: each frame is
warped into that view by the affine map fitted to the face's rigid landmarks (as
:mod:`facepulse.roi.trace` does for its single ROI), so a region covers the same patch of
skin whatever the head does. All regions are then averaged at once: a (R, P) matrix of
region masks times the (P, 3) pixels of the warped crop.

Regions are registered in ``REGIONS``: a function ``(view: RegionView) -> {name: mask}``
(masks ``(h, w)`` bool in the reference crop). Add one by decorating it with
``@REGIONS.register("name")``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse

from facepulse.face.detectors import Face
from facepulse.registry import Registry
from facepulse.roi.carry import AnchorFit, still_carries
from facepulse.roi.skin import _has_mesh, anchor_points, roi_polygons, skin_colour_filter

__all__ = [
    "CROP_WIDTH_PX",
    "DEFAULT_REGIONS",
    "REGIONS",
    "RegionSampler",
    "RegionView",
]

#: Width of the reference crop in pixels: faces wider than this are sampled at this
#: width (a mean over ~10^4 pixels loses nothing of the pulse, and the per-frame cost
#: stays independent of the video's resolution).
CROP_WIDTH_PX = 128

# MediaPipe face-mesh (468-point topology) outlines, image coordinates.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
EYE_RIGHT = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
EYE_LEFT = (362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)
BROW_RIGHT = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
BROW_LEFT = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
NOSTRILS = (98, 97, 2, 326, 327, 294, 278, 344, 440, 275, 4, 45, 220, 115, 48, 64)

#: Grid of patches over the face skin: columns x rows of the face's bounding box.
GRID_SHAPE = (4, 5)
#: A grid cell is a region when at least this fraction of it is skin.
GRID_MIN_FILL = 0.25

#: The regions measured by default (``REGIONS`` names; "grid" expands to its cells).
DEFAULT_REGIONS: tuple[str, ...] = ("skin", "forehead", "cheek_left", "cheek_right", "face", "box", "grid")


@dataclass(eq=False)
class RegionView:
    """The face in the reference crop, what a region function draws from.

    Attributes
    ----------
    crop_rgb : (h, w, 3) uint8, the reference frame resampled into the crop.
    face : the face, with its box and landmarks mapped into crop pixels.
    """

    crop_rgb: np.ndarray
    face: Face

    @property
    def shape(self) -> tuple[int, int]:
        return self.crop_rgb.shape[:2]

    def fill(self, polygons: list[np.ndarray]) -> np.ndarray:
        """(h, w) bool mask of the union of ``polygons`` (each (P, 2) crop pixels)."""
        import cv2

        mask = np.zeros(self.shape, dtype=np.uint8)
        shift = 4
        pts = [np.round(p * (1 << shift)).astype(np.int32).reshape(-1, 1, 2) for p in polygons]
        cv2.fillPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=shift)
        return mask.astype(bool)

    def skin(self, region: np.ndarray) -> np.ndarray:
        """``region`` with non-skin pixels (hair, brows, background, glare) dropped."""
        return skin_colour_filter(self.crop_rgb, region)

    @cached_property
    def face_skin(self) -> np.ndarray:
        """All facial skin (shared by the "face" and "grid" regions: drawn once)."""
        return _face_skin(self)


REGIONS: Registry[Callable[[RegionView], dict[str, np.ndarray]]] = Registry("region")


@REGIONS.register("skin")
def _skin(view: RegionView) -> dict[str, np.ndarray]:
    """Forehead and both cheeks, skin-colour filtered (the single-ROI default)."""
    return {"skin": view.skin(view.fill(roi_polygons(view.face, "skin")))}


@REGIONS.register("forehead")
def _forehead(view: RegionView) -> dict[str, np.ndarray]:
    """The forehead patch, skin-colour filtered."""
    return {"forehead": view.skin(view.fill(roi_polygons(view.face, "forehead")))}


@REGIONS.register("cheek_left")
def _cheek_left(view: RegionView) -> dict[str, np.ndarray]:
    """The cheek on the image's right (the subject's left), skin-colour filtered."""
    return {"cheek_left": view.skin(view.fill(roi_polygons(view.face, "cheeks")[1:]))}


@REGIONS.register("cheek_right")
def _cheek_right(view: RegionView) -> dict[str, np.ndarray]:
    """The cheek on the image's left (the subject's right), skin-colour filtered."""
    return {"cheek_right": view.skin(view.fill(roi_polygons(view.face, "cheeks")[:1]))}


def _face_skin(view: RegionView) -> np.ndarray:
    """All facial skin: the face outline minus eyes, brows, lips and nostrils, filtered."""
    import cv2

    face = view.face
    if _has_mesh(face):
        xy = face.landmarks_xy
        outline = view.fill([xy[list(FACE_OVAL)]])
        holes = np.zeros(view.shape, dtype=np.uint8)
        for ids in (EYE_RIGHT, EYE_LEFT, BROW_RIGHT, BROW_LEFT, LIPS, NOSTRILS):
            hull = cv2.convexHull(xy[list(ids)].astype(np.float32))[:, 0, :]
            holes |= view.fill([hull]).astype(np.uint8)
        # a margin of ~3% of the face width around eyes and mouth (lashes, lip edges)
        k = max(3, int(round(0.03 * face.width)) | 1)
        holes = cv2.dilate(holes, np.ones((k, k), np.uint8)).astype(bool)
        return view.skin(outline & ~holes)
    # box only: the ellipse inscribed in the box, colour-filtered
    x0, y0, x1, y1 = face.box_xyxy
    mask = np.zeros(view.shape, dtype=np.uint8)
    centre = (int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2)))
    axes = (max(1, int(round((x1 - x0) / 2))), max(1, int(round((y1 - y0) / 2))))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    return view.skin(mask.astype(bool))


@REGIONS.register("face")
def _face(view: RegionView) -> dict[str, np.ndarray]:
    """All facial skin (outline minus eyes, brows, lips, nostrils), filtered."""
    return {"face": view.face_skin}


@REGIONS.register("box")
def _box(view: RegionView) -> dict[str, np.ndarray]:
    """The central face box (60% of the width, 80% of the height), unfiltered, as peers use."""
    x0, y0, x1, y1 = view.face.box_xyxy
    w, h = x1 - x0, y1 - y0
    poly = np.array([[x0 + 0.2 * w, y0 + 0.1 * h], [x0 + 0.8 * w, y0 + 0.1 * h],
                     [x0 + 0.8 * w, y0 + 0.9 * h], [x0 + 0.2 * w, y0 + 0.9 * h]])
    return {"box": view.fill([poly])}


@REGIONS.register("grid")
def _grid(view: RegionView) -> dict[str, np.ndarray]:
    """Small patches: the facial skin cut by a 4 x 5 grid over the face box."""
    skin = view.face_skin
    x0, y0, x1, y1 = view.face.box_xyxy
    cols, rows = GRID_SHAPE
    xs = np.linspace(x0, x1, cols + 1)
    ys = np.linspace(y0, y1, rows + 1)
    h, w = view.shape
    yy, xx = np.mgrid[0:h, 0:w]
    out = {}
    for j in range(rows):
        for i in range(cols):
            cell = (xx >= xs[i]) & (xx < xs[i + 1]) & (yy >= ys[j]) & (yy < ys[j + 1])
            n_cell = int(cell.sum())
            patch = skin & cell
            if n_cell and patch.sum() >= GRID_MIN_FILL * n_cell:
                out[f"grid_r{j}c{i}"] = patch
    return out


def _face_in_crop(face: Face, matrix: np.ndarray) -> Face:
    """``face`` mapped by the 2x3 affine ``matrix`` (frame -> crop pixels)."""
    def apply(xy: np.ndarray) -> np.ndarray:
        return xy @ matrix[:, :2].T + matrix[:, 2]

    box = face.box_xyxy.reshape(2, 2)
    mapped = apply(box)
    landmarks = None if face.landmarks_xy is None else apply(face.landmarks_xy)
    return Face(np.concatenate([mapped.min(0), mapped.max(0)]), face.score, landmarks)


def _crop_extent(face: Face) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corner and size (x, y), frame pixels, of the area the regions can cover."""
    if _has_mesh(face):
        pts = face.landmarks_xy
        lo, hi = pts.min(axis=0), pts.max(axis=0)
    else:
        lo, hi = face.box_xyxy[:2], face.box_xyxy[2:]
    box_lo, box_hi = face.box_xyxy[:2], face.box_xyxy[2:]
    lo, hi = np.minimum(lo, box_lo), np.maximum(hi, box_hi)
    return np.floor(lo), np.ceil(hi - np.floor(lo)) + 1


class RegionSampler:
    """Mean RGB of several skin regions of a tracked face, frame by frame.

    ``update(frame, face)`` places the regions on this frame's face and returns their
    means, ``(R, 3)`` float (0-255), NaN rows for regions with no pixel in view. Regions
    are redrawn when the face changes shape beyond what the affine map carries (a head
    turn, a new face) or its scale changes more than ``carry.MAX_SCALE_RATIO``; with
    ``level_match`` each redraw rescales the new means so they continue the old ones, so
    the swap of pixel sets leaves no step in any trace.

    Parameters
    ----------
    regions : ``REGIONS`` names (default :data:`DEFAULT_REGIONS`).
    tol_px : anchor misfit (RMS, frame pixels) that triggers a redraw; default
        ``max(1, 2% of the face width)``.
    level_match : carry levels across redraws (see above).
    crop_width_px : width of the reference crop (see :data:`CROP_WIDTH_PX`).

    Attributes
    ----------
    names : the region names, fixed by the first face (a grid cell that is not skin on
        that face is left out). Later redraws keep the same names; a region that is then
        empty gives NaN.
    count : (R,) pixels averaged per region in the last frame.
    rebuilds : how often the regions were drawn.
    """

    MAX_LEVEL_RATIO = 1.15  # as in facepulse.roi.trace: larger ratios are real colour changes

    def __init__(
        self,
        regions: tuple[str, ...] | list[str] = DEFAULT_REGIONS,
        *,
        tol_px: float | None = None,
        level_match: bool = True,
        crop_width_px: int = CROP_WIDTH_PX,
    ) -> None:
        for name in regions:
            REGIONS.get(name)  # unknown names fail here, naming the available ones
        self.regions = tuple(regions)
        self.tol_px = tol_px
        self.level_match = level_match
        self.crop_width_px = int(crop_width_px)
        self.names: tuple[str, ...] | None = None
        self.rebuilds = 0
        self.count = np.zeros(0)
        self._masks = None  # (R, P) sparse 0/1 matrix: region sums are one sparse product
        self._mask_counts = np.zeros(0)
        self._size = (0, 0)  # crop (w, h)
        self._to_crop: np.ndarray | None = None  # (2, 3) reference frame -> crop pixels
        self._anchor_fit: AnchorFit | None = None
        self._matrix: np.ndarray | None = None  # (2, 3) crop -> current frame pixels
        self._gain = np.ones((0, 3))
        self._complete = False

    @property
    def n_regions(self) -> int:
        return 0 if self.names is None else len(self.names)

    def reset(self) -> None:
        """Forget the face (the next update draws the regions afresh, same names)."""
        self._masks = None
        self._anchor_fit = None
        self._matrix = None
        self._complete = False

    def update(self, frame_rgb: np.ndarray, face: Face) -> np.ndarray:
        """Region means in this frame, ``(R, 3)`` float64; NaN rows where a region is empty."""
        anchors = anchor_points(face)
        fit = self._fit(anchors)
        before = None
        if fit is not None:
            matrix, residual_px, scale = fit
            self._matrix = matrix
            if self._complete and still_carries(residual_px, scale, face.width, self.tol_px):
                return self._means(frame_rgb) * self._gain
            before = self._means(frame_rgb) if self.level_match else None
        self._build(frame_rgb, face, anchors)
        after = self._means(frame_rgb)
        if before is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = before / after
            ok = np.all(np.isfinite(ratio) & (np.abs(np.log(np.where(ratio > 0, ratio, 1e-9)))
                                              <= np.log(self.MAX_LEVEL_RATIO)), axis=1)
            self._gain[ok] = self._gain[ok] * ratio[ok]
        return after * self._gain

    def _fit(self, anchors: np.ndarray) -> tuple[np.ndarray, float, float] | None:
        """Affine map crop -> this frame, its RMS anchor residual (px) and its scale."""
        fit = None if self._anchor_fit is None else self._anchor_fit.fit(anchors)
        if fit is None:
            return None
        transform, residual_px, scale = fit  # (2, 3): reference frame -> this frame
        # crop -> reference frame (the inverse of _to_crop), then reference -> this frame
        a_inv = np.linalg.inv(self._to_crop[:, :2])
        crop_to_ref = np.hstack([a_inv, -(a_inv @ self._to_crop[:, 2:])])
        linear = transform[:, :2] @ crop_to_ref[:, :2]
        shift = transform[:, :2] @ crop_to_ref[:, 2] + transform[:, 2]
        return np.hstack([linear, shift[:, None]]), residual_px, scale

    def _build(self, frame_rgb: np.ndarray, face: Face, anchors: np.ndarray) -> None:
        import cv2

        lo, size = _crop_extent(face)
        scale = min(1.0, self.crop_width_px / max(size[0], 1.0))
        w, h = max(1, int(np.ceil(size[0] * scale))), max(1, int(np.ceil(size[1] * scale)))
        to_crop = np.array([[scale, 0.0, -scale * lo[0]], [0.0, scale, -scale * lo[1]]])
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        # The reference view: crop, then resize (INTER_AREA averages, as the mean does).
        x0, y0 = int(lo[0]), int(lo[1])
        height, width = frame_rgb.shape[:2]
        sub = np.zeros((int(size[1]), int(size[0]), 3), dtype=np.uint8)
        fx0, fy0 = max(x0, 0), max(y0, 0)
        fx1, fy1 = min(x0 + int(size[0]), width), min(y0 + int(size[1]), height)
        if fx1 > fx0 and fy1 > fy0:
            sub[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] = frame_rgb[fy0:fy1, fx0:fx1]
        crop = cv2.resize(sub, (w, h), interpolation=interp)
        view = RegionView(crop, _face_in_crop(face, to_crop))
        drawn: dict[str, np.ndarray] = {}
        for name in self.regions:
            drawn.update(REGIONS.get(name)(view))
        if self.names is None:
            self.names = tuple(drawn)
            self._gain = np.ones((len(self.names), 3))
        empty = np.zeros((h, w), dtype=bool)
        masks = np.stack([drawn.get(n, empty) for n in self.names]).reshape(len(self.names), -1)
        # float32 sums of 8-bit values are exact below 2**24 (65k pixels of 255)
        self._masks = scipy.sparse.csr_matrix(masks, dtype=np.float32)
        self._mask_counts = masks.sum(axis=1).astype(np.float64)
        self._size = (w, h)
        self._to_crop = to_crop
        self._anchor_fit = AnchorFit(anchors)
        # crop -> this (reference) frame
        self._matrix = np.array([[1 / scale, 0.0, lo[0]], [0.0, 1 / scale, lo[1]]])
        inside = x0 >= 0 and y0 >= 0 and x0 + size[0] <= width and y0 + size[1] <= height
        self._complete = bool(inside and self._mask_counts.any())
        self.rebuilds += 1

    def _means(self, frame_rgb: np.ndarray) -> np.ndarray:
        """(R, 3) means of the regions in this frame (frame warped into the crop)."""
        import cv2

        n = self.n_regions
        if self._masks is None or self._matrix is None:
            self.count = np.zeros(n)
            return np.full((n, 3), np.nan)
        w, h = self._size
        height, width = frame_rgb.shape[:2]
        warped = cv2.warpAffine(
            frame_rgb, self._matrix, (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
        )
        pixels = warped.reshape(-1, 3).astype(np.float32)  # (P, 3)
        corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float) @ self._matrix.T
        if np.all((corners >= 0) & (corners <= (width - 1, height - 1))):
            sums = self._masks @ pixels
            counts = self._mask_counts
        else:  # part of the crop lies outside the frame: average the part inside only
            u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
            x = self._matrix[0, 0] * u + self._matrix[0, 1] * v + self._matrix[0, 2]
            y = self._matrix[1, 0] * u + self._matrix[1, 1] * v + self._matrix[1, 2]
            inside = ((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)).reshape(-1)
            inside_px = inside.astype(np.float32)
            sums = self._masks @ (pixels * inside_px[:, None])
            counts = (self._masks @ inside_px).astype(np.float64)
        self.count = counts
        with np.errstate(divide="ignore", invalid="ignore"):
            means = sums.astype(np.float64) / counts[:, None]
        means[counts == 0] = np.nan
        return means

    def masks_in_frame(self, shape: tuple[int, int], names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Each region (or those in ``names``) in the current frame's pixels,
        ``{name: (H, W) bool}`` (previews)."""
        import cv2

        if self._masks is None or self._matrix is None:
            return {}
        w, h = self._size
        height, width = shape
        out = {}
        for k, name in enumerate(self.names):
            if names is not None and name not in names:
                continue
            m = self._masks[k].toarray().reshape(h, w).astype(np.uint8)
            out[name] = cv2.warpAffine(m, self._matrix, (width, height), flags=cv2.INTER_NEAREST).astype(bool)
        return out
