"""RGB traces: the mean skin colour of the tracked face, frame by frame.

:func:`extract_trace` makes one pass over a :class:`~facepulse.io.video.FrameSource`
(bounded memory), tracks the face (the :class:`~facepulse.face.tracker.FaceTracker`
follows it between detections by optical flow), and averages the skin-ROI pixels of
each frame. The ROI is drawn once on the face and carried along with it: each frame is
resampled into the pose the ROI was drawn in (an affine map fitted to the face's
landmarks) and averaged under the same mask, so the mean covers the same patch of skin
whatever the head does. The per-frame cost is the warp of the ROI's bounding box and a
masked mean.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as concurrent_wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facepulse.errors import ConfigError, InputError, NoFaceError
from facepulse.face.detectors import Face, FaceDetector, make_detector
from facepulse.face.tracker import FaceTracker, single_threaded_opencv
from facepulse.io.video import FrameSource, open_video
from facepulse.roi.carry import AnchorFit, still_carries
from facepulse.roi.regions import RegionSampler
from facepulse.roi.skin import ROIS, anchor_points, roi_polygons, skin_mask_crop

__all__ = ["FrameCallback", "Trace", "extract_trace", "resample_uniform"]

#: Called once per frame by :func:`extract_trace`, after the face is tracked:
#: ``on_frame(index, timestamp_s, frame_rgb, face_or_None)``. Face-clip extraction for
#: deep models hooks in here without a second decoding pass.
FrameCallback = Callable[[int, float, np.ndarray, Face | None], None]


@dataclass
class Trace:
    """Mean skin colour per frame.

    Attributes
    ----------
    timestamps_s : (N,) float64, seconds from the first frame (read from the video).
    rgb : (N, 3) float64, mean R, G, B of the skin ROI on the 0-255 scale; NaN where
        ``valid`` is False. With ``level_match`` (the default) each ROI rebuild rescales
        the following values to continue the previous ones, so the levels can drift a
        few percent from the ROI's literal mean while staying free of steps.
    valid : (N,) bool, True where ``rgb`` holds a measured or gap-interpolated value.
    boxes : (N, 4) float64 face box ``[x0, y0, x1, y1]`` in pixels; NaN without a face.
    n_skin_px : (N,) int, skin pixels averaged (0 where none).
    fps : nominal frame rate of the source, frames per second.
    preview_frame : (H, W, 3) uint8 RGB, one representative frame (for report pictures).
    preview_mask : (H, W) bool, the skin ROI of ``preview_frame``.
    frames_without_face : frames where the tracker returned no face.
    interpolated : (N,) bool, True where ``rgb`` was linearly interpolated over a short gap.
    path : the source's path, or None for an array.
    n_detections : face-detector calls made (diagnostics: cost of the pass).
    n_roi_rebuilds : times the ROI was drawn: once at the start, then again each time the
        face changed shape (or scale) beyond what the affine map that carries the ROI follows.
    region_rgb : (N, R, 3) float64 mean RGB of each candidate region
        (:mod:`facepulse.roi.regions`), gaps handled as for ``rgb``; None unless
        :func:`extract_trace` was asked for ``regions``.
    region_names : the R region names.
    """

    timestamps_s: np.ndarray
    rgb: np.ndarray
    valid: np.ndarray
    boxes: np.ndarray
    n_skin_px: np.ndarray
    fps: float
    preview_frame: np.ndarray | None = None
    preview_mask: np.ndarray | None = None
    frames_without_face: int = 0
    interpolated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    path: str | None = None
    n_detections: int = 0
    n_roi_rebuilds: int = 0
    region_rgb: np.ndarray | None = None
    region_names: tuple[str, ...] = ()

    @property
    def n_frames(self) -> int:
        return int(self.timestamps_s.shape[0])

    @property
    def duration_s(self) -> float:
        """Time spanned by the frames, seconds (last timestamp + one nominal period)."""
        return float(self.timestamps_s[-1] + 1.0 / self.fps) if self.n_frames else 0.0


class _FaceFixedRoi:
    """The skin ROI drawn once on the face and carried along with it, frame by frame.

    The ROI mask is built (polygons + colour filter) on one *reference* frame. On every
    frame after it, an affine map from the reference face to the current face is fitted
    to the ROI's anchor points, and the current frame is resampled into the reference
    face's pose (bilinear), where the same mask is averaged. The mean is then over the
    same patch of skin in every frame, whatever the head does, and it moves smoothly by
    fractions of a pixel instead of in whole-pixel steps of a redrawn mask; the colour
    filter, run once, cannot flip pixels in and out from frame to frame.

    The reference is rebuilt only when the face changed shape beyond what an affine map
    describes (the anchors fit worse than ``tol_px``: a head turn, a new face), when its
    scale changed by more than 1.6x, and on every frame while the ROI is cut by the
    frame's edge or holds no skin pixel (so it grows back as the face comes in). With
    ``level_match``, a rebuild measures this frame under both the old and the new ROI and
    carries the per-channel ratio forward as a gain, so swapping pixel sets puts no step
    into the trace (a step of 1-3 levels is ten times the pulse). Both ROIs are on the
    face in that frame, so the ratio is the difference between the pixel sets and nothing
    else (the old design matched levels against a mask left behind by a moving head, and
    the ratios, compounded over hundreds of rebuilds, carried the motion into the trace).
    """

    # Old/new ratios beyond this are a real colour change (e.g. after a jump), not a
    # pixel-set swap, and are left in the trace.
    MAX_LEVEL_RATIO = 1.15

    def __init__(
        self, roi: str, colour_filter: bool, tol_px: float | None, level_match: bool = True
    ) -> None:
        self.roi = roi
        self.colour_filter = colour_filter
        self.tol_px = tol_px
        self.level_match = level_match
        self.gain = np.ones(3)
        self.mask: np.ndarray | None = None  # (h, w) bool in the reference frame's crop
        self.mask_u8: np.ndarray | None = None
        self._mask_count = 0
        self.origin = np.zeros(2)  # the crop's top-left corner, reference frame pixels
        self._anchor_fit: AnchorFit | None = None  # reference anchors -> this frame's
        self.matrix: np.ndarray | None = None  # (2, 3) crop pixels -> current frame pixels
        self.count = 0  # pixels averaged in the current frame
        self.complete = False  # the ROI was drawn whole (not cut by the frame's edge)
        self.rebuilds = 0

    def update(self, frame_rgb: np.ndarray, face: Face) -> None:
        """Place the ROI on ``face`` in this frame (rebuilding it if the face changed shape)."""
        anchors = anchor_points(face)
        fit = self._fit(anchors)
        before = None
        if fit is not None:
            matrix, residual_px, scale = fit
            self.matrix = matrix
            if self.complete and still_carries(residual_px, scale, face.width, self.tol_px):
                return
            before = self._raw_mean(frame_rgb) if self.level_match else None
        self._build(frame_rgb, face, anchors)
        after = self._raw_mean(frame_rgb) if before is not None else None
        if before is not None and after is not None and np.all(after > 0):
            ratio = before / after
            if np.all(np.abs(np.log(ratio)) <= np.log(self.MAX_LEVEL_RATIO)):
                self.gain = self.gain * ratio

    def _fit(self, anchors: np.ndarray) -> tuple[np.ndarray, float, float] | None:
        """Affine map reference crop -> this frame, its RMS anchor residual (px), its scale."""
        fit = None if self._anchor_fit is None else self._anchor_fit.fit(anchors)
        if fit is None:
            return None
        transform, residual_px, scale = fit  # (2, 3): reference frame -> this frame
        # Crop pixels (u, v) are reference pixels (u, v) + origin.
        matrix = transform.copy()
        matrix[:, 2] += transform[:, :2] @ self.origin
        return matrix, residual_px, scale

    def _build(self, frame_rgb: np.ndarray, face: Face, anchors: np.ndarray) -> None:
        self.mask, (x0, y0, _x1, _y1) = skin_mask_crop(
            frame_rgb, face, roi=self.roi, colour_filter=self.colour_filter
        )
        self.mask_u8 = self.mask.astype(np.uint8)
        self._mask_count = int(self.mask.sum())
        points = np.vstack(roi_polygons(face, self.roi))
        height, width = frame_rgb.shape[:2]
        inside = points.min() >= 0 and points[:, 0].max() < width and points[:, 1].max() < height
        self.complete = bool(inside and self.mask.any())
        self.origin = np.array([x0, y0], dtype=np.float64)
        self._anchor_fit = AnchorFit(anchors)
        self.matrix = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]])
        self.rebuilds += 1

    def _raw_mean(self, frame_rgb: np.ndarray) -> np.ndarray | None:
        """Mean RGB of the ROI in this frame (the frame resampled into the reference pose)."""
        import cv2

        self.count = 0
        if self.mask is None or self.matrix is None or self._mask_count == 0:
            return None
        h, w = self.mask.shape
        height, width = frame_rgb.shape[:2]
        corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], dtype=np.float64)
        mapped = corners @ self.matrix.T  # the crop's corners in this frame
        inside = np.all((mapped >= 0) & (mapped <= (width - 1, height - 1)))
        warped = cv2.warpAffine(
            frame_rgb,
            self.matrix,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        mask = self.mask_u8
        if not inside:
            # Part of the ROI lies outside the frame: average the part inside only.
            u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
            x = self.matrix[0, 0] * u + self.matrix[0, 1] * v + self.matrix[0, 2]
            y = self.matrix[1, 0] * u + self.matrix[1, 1] * v + self.matrix[1, 2]
            in_frame = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
            mask = (self.mask & in_frame).astype(np.uint8)
        count = self._mask_count if inside else int(cv2.countNonZero(mask))
        if count == 0:
            return None
        self.count = count
        return np.array(cv2.mean(warped, mask=mask)[:3])

    def mean_rgb(self, frame_rgb: np.ndarray) -> tuple[float, float, float] | None:
        raw = self._raw_mean(frame_rgb)
        if raw is None:
            return None
        r, g, b = raw * self.gain
        return float(r), float(g), float(b)

    def full_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The ROI in the current frame's pixels, (H, W) bool (for previews)."""
        import cv2

        if self.mask is None or self.matrix is None:
            return np.zeros(shape, dtype=bool)
        height, width = shape
        # warpAffine inverts the (crop -> frame) matrix itself: frame pixel p takes the
        # mask value at matrix^-1 p.
        warped = cv2.warpAffine(self.mask_u8, self.matrix, (width, height), flags=cv2.INTER_NEAREST)
        return warped.astype(bool)


class _Progress:
    """A rich progress bar on stderr, advanced in chunks to keep per-frame cost nil."""

    def __init__(self, enabled: bool, total: int | None, label: str) -> None:
        self._bar = None
        self._pending = 0
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(label, total=total)

    def advance(self) -> None:
        if self._bar is None:
            return
        self._pending += 1
        if self._pending >= 16:
            self._bar.advance(self._task, self._pending)
            self._pending = 0

    def close(self) -> None:
        if self._bar is None:
            return
        self._bar.advance(self._task, self._pending)
        self._bar.stop()


# Frames decoded ahead while a detection runs: ~3 decodes cover one MediaPipe call.
_LOOKAHEAD = 4
# Frames tracked ahead of the sampling: enough sampling work (~0.5 ms a frame) to cover
# one MediaPipe call (~4 ms) while a detection runs; fewer for large frames, so that the
# frames held stay under _MAX_PENDING_BYTES (12 at 640x480, 2 at 3840x2160).
_MAX_PENDING = 12
_MAX_PENDING_BYTES = 64 * 2**20


def _tracked_frames(
    source: FrameSource, tracker: FaceTracker, parallel: bool, idle: Callable[[], bool] | None = None
) -> Iterator[tuple[int, float, np.ndarray, Face | None]]:
    """``(index, timestamp_s, frame, face)`` for every frame, in order.

    With ``parallel``, each due detection runs in a worker thread while the next few
    frames (at most ``_LOOKAHEAD - 1``) are decoded and held; the tracker then takes
    the frames in their original order, so the faces are exactly those of the
    sequential loop. Detectors release the GIL while they run (MediaPipe does), so
    decoding and detection overlap on two cores. ``idle()`` is called while a
    detection is still running, until it returns False (nothing left to do): the
    caller's deferred work on frames already tracked fills the wait.
    """
    if not parallel:
        for index, (t_s, frame) in enumerate(source):
            yield index, t_s, frame, tracker.update(frame)
        return
    held: deque[tuple[int, float, np.ndarray]] = deque()
    future: Future | None = None

    def flush() -> Iterator[tuple[int, float, np.ndarray, Face | None]]:
        nonlocal future
        index, t_s, frame = held.popleft()
        while idle is not None and not future.done() and idle():
            pass
        faces = future.result()
        future = None
        yield index, t_s, frame, tracker.update(frame, faces)
        while held:  # frames between detections (or, if the face was lost, re-detections)
            index, t_s, frame = held.popleft()
            yield index, t_s, frame, tracker.update(frame)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="facepulse-detect") as pool:
        try:
            for index, (t_s, frame) in enumerate(source):
                if future is not None:
                    held.append((index, t_s, frame))
                    if len(held) < min(tracker.interval, _LOOKAHEAD):
                        continue
                    yield from flush()
                    continue
                if tracker.due(frame):
                    future = pool.submit(tracker.detector.detect, frame)
                    held.append((index, t_s, frame))
                else:
                    yield index, t_s, frame, tracker.update(frame)
            if future is not None:
                yield from flush()
        finally:
            if future is not None:
                future.cancel()
                concurrent_wait([future])


def extract_trace(
    source: FrameSource | str | Path | np.ndarray,
    tracker: FaceTracker | None = None,
    *,
    detector: str | FaceDetector = "auto",
    detect_every: int = 3,
    select: str | int = "largest",
    smooth: float = 0.5,
    max_detect_every: int | None = 12,
    motion_threshold: float | None = 3.0,
    max_gap_s: float = 1.0,
    progress: bool = False,
    roi: str = "skin",
    colour_filter: bool = True,
    mask_tol_px: float | None = None,
    level_match: bool = True,
    on_frame: FrameCallback | None = None,
    parallel: bool = True,
    regions: tuple[str, ...] | list[str] | None = None,
    rgb_region: str | None = None,
) -> Trace:
    """Mean skin colour of the tracked face in every frame, in one streaming pass.

    Parameters
    ----------
    source : a :class:`FrameSource` (or anything :func:`open_video` accepts).
    tracker : a :class:`FaceTracker`; when None one is built from ``detector``,
        ``detect_every``, ``select``, ``smooth``, ``max_detect_every`` and
        ``motion_threshold`` (see :class:`FaceTracker`): by default detection runs every
        3 frames while the face moves, stretching to every 12 while it stays still.
    max_gap_s : gaps without a face (or without skin pixels) lasting at most this many
        seconds are linearly interpolated and marked valid (at the start or end of the
        video they hold the nearest value); longer gaps stay NaN and invalid. The ROI
        never falls back to the whole frame.
    progress : show a progress bar on stderr.
    roi : a ``ROIS`` name (``"skin"``, ``"forehead"``, ``"cheeks"``).
    colour_filter : drop ROI pixels far from the face's median skin colour.
    mask_tol_px : redraw the ROI when the face's ROI landmarks deviate from the affine map
        that carries the ROI by more than this (RMS, pixels): the face changed shape (a
        head turn, an expression, another face). Default ``max(1, 2% of the face width)``.
    level_match : when the ROI is redrawn, scale the new ROI's mean so that it matches the
        old ROI's mean on that same frame (per channel, ratios within 15%): the pixel-set
        swap then leaves no step in the trace. Steps of 1-3 levels, ten times the pulse
        amplitude, otherwise appear at every redraw.
    on_frame : per-frame callback ``(index, timestamp_s, frame_rgb, face)``; the frame
        buffer may be reused after it returns, so copy what you keep.
    parallel : run face detection in a worker thread, overlapping it with decoding
        (same results as the sequential loop; at most 4 decoded frames are held).
    regions : also measure these candidate regions (``facepulse.roi.regions.REGIONS``
        names, e.g. ``DEFAULT_REGIONS``) in the same pass: ``Trace.region_rgb``. ``rgb``
        is unchanged (the ROI keeps its own full-resolution sampling).
    rgb_region : one of ``regions`` (e.g. ``"skin"``): ``rgb``, ``n_skin_px``, the preview
        mask and the ROI rebuild count come from that region of the reduced crop instead
        of a separate full-resolution ``roi``: one warp a frame instead of two, for callers
        that only read the regions (the fused estimator).

    Returns
    -------
    Trace with N = number of frames.

    Raises
    ------
    NoFaceError : no face (or no skin pixel) in any frame.
    InputError : the source cannot be read.
    """
    if not isinstance(source, FrameSource):
        source = open_video(source)
    if roi not in ROIS:
        ROIS.get(roi)  # raises ConfigError naming the available ROIs
    if not np.isfinite(max_gap_s) or max_gap_s < 0:
        raise ConfigError(f"max_gap_s must be >= 0 seconds, got {max_gap_s}")
    own_detector = None
    if tracker is None:
        if isinstance(detector, str):
            options = {"max_faces": select + 1} if isinstance(select, int) else {}
            own_detector = make_detector(detector, **options)
            detector = own_detector
        tracker = FaceTracker(
            detector,
            detect_every=detect_every,
            select=select,
            smooth=smooth,
            max_detect_every=max_detect_every,
            motion_threshold=motion_threshold,
        )
    else:
        tracker.reset()
    detections_before = tracker.n_detections

    info = source.info
    cache = _FaceFixedRoi(roi, colour_filter, mask_tol_px, level_match)
    sampler = None
    if regions is not None:
        sampler = RegionSampler(tuple(regions), tol_px=mask_tol_px, level_match=level_match)
    if rgb_region is not None and rgb_region not in (regions or ()):
        raise ConfigError(f"rgb_region {rgb_region!r} must be one of regions {tuple(regions or ())}")
    # The single-ROI trace keeps its own full-resolution carried ROI, so that ``rgb`` is
    # the same with or without regions (the sampler works on a reduced crop), unless
    # ``rgb_region`` asks for one of the sampler's regions instead.
    region_rows: list[np.ndarray | None] = []
    times: list[float] = []
    rgb_rows: list[tuple[float, float, float]] = []
    box_rows: list[np.ndarray] = []
    counts: list[int] = []
    nan3 = (np.nan, np.nan, np.nan)
    nan_box = np.full(4, np.nan)
    frames_without_face = 0
    preview_frame = preview_mask = None
    preview_at = info.n_frames // 2 if info.n_frames else 1  # next frame index worth keeping
    bar = _Progress(progress, info.n_frames, f"trace {Path(source.name).name}")

    def sample(index: int, t_s: float, frame: np.ndarray, face: Face | None) -> None:
        nonlocal frames_without_face, preview_frame, preview_mask, preview_at
        mean, count = None, 0
        if face is None:
            frames_without_face += 1
            box_rows.append(nan_box)
            if sampler is not None:
                region_rows.append(None)
        else:
            if sampler is not None:
                region_rows.append(sampler.update(frame, face))
            if rgb_region is None:
                cache.update(frame, face)
                mean = cache.mean_rgb(frame)
                count = cache.count
            else:
                k = sampler.names.index(rgb_region)
                row, count = region_rows[-1][k], int(sampler.count[k])
                mean = tuple(float(v) for v in row) if np.isfinite(row).all() else None
            box_rows.append(face.box_xyxy)
        times.append(t_s)
        rgb_rows.append(nan3 if mean is None else mean)
        counts.append(count if mean is not None else 0)  # a region without pixels counts none
        if mean is not None and (index >= preview_at or preview_frame is None):
            preview_frame = frame.copy()
            if rgb_region is None:
                preview_mask = cache.full_mask(frame.shape[:2])
            else:
                preview_mask = sampler.masks_in_frame(frame.shape[:2], (rgb_region,))[rgb_region]
            if index >= preview_at:
                # Known length: keep the middle frame. Unknown: keep frames at doubling
                # indices, so the last one kept lies in the second half of the video.
                preview_at = np.iinfo(np.int64).max if info.n_frames else 2 * max(index, 1)
        if on_frame is not None:
            on_frame(index, t_s, frame, face)
        bar.advance()

    # Frames tracked but not yet sampled. Sampling (the ROI and regions) needs only the
    # frame and its face, so it can lag the tracker by a few frames and fill the time the
    # tracker waits for a detection; frames are still sampled in order, one by one, so
    # the results are those of sampling each frame at once.
    pending: deque[tuple[int, float, np.ndarray, Face | None]] = deque()

    def sample_next() -> bool:
        if not pending:
            return False
        sample(*pending.popleft())
        return True

    max_pending = None
    try:
        with single_threaded_opencv():
            for tracked in _tracked_frames(source, tracker, parallel, idle=sample_next):
                if max_pending is None:  # the first frame's size bounds the backlog
                    max_pending = max(1, min(_MAX_PENDING, _MAX_PENDING_BYTES // max(tracked[2].nbytes, 1)))
                pending.append(tracked)
                while len(pending) > max_pending:
                    sample_next()
            while sample_next():
                pass
    finally:
        bar.close()
        if own_detector is not None and hasattr(own_detector, "close"):
            own_detector.close()

    n = len(times)
    if n == 0:  # sources raise on empty input; guard against a custom one that does not
        raise InputError(f"{source.name}: the video contains no frames")
    timestamps_s = np.asarray(times, dtype=np.float64)
    rgb = np.asarray(rgb_rows, dtype=np.float64).reshape(n, 3)
    measured = np.isfinite(rgb[:, 0])
    if not measured.any():
        if frames_without_face == n:
            raise NoFaceError(f"{source.name}: no face found in any of the {n} frames")
        raise NoFaceError(
            f"{source.name}: a face was found in {n - frames_without_face} of the {n} frames, "
            "but its skin ROI held no skin-coloured pixels in any of them"
        )
    rgb, valid, interpolated = _fill_gaps(timestamps_s, rgb, measured, max_gap_s, info.fps)
    region_rgb = None
    if sampler is not None:
        region_rgb = _region_array(region_rows, sampler.n_regions)
        for r in range(sampler.n_regions):
            seen = np.isfinite(region_rgb[:, r, 0])
            if seen.any():
                region_rgb[:, r], _, _ = _fill_gaps(timestamps_s, region_rgb[:, r], seen, max_gap_s, info.fps)
            # a region is only as valid as the frame: long no-face gaps stay NaN
            region_rgb[~valid, r] = np.nan
    return Trace(
        timestamps_s=timestamps_s,
        rgb=rgb,
        valid=valid,
        boxes=np.asarray(box_rows, dtype=np.float64).reshape(n, 4),
        n_skin_px=np.asarray(counts, dtype=np.int64),
        fps=float(info.fps),
        preview_frame=preview_frame,
        preview_mask=preview_mask,
        frames_without_face=frames_without_face,
        interpolated=interpolated,
        path=info.path,
        n_detections=tracker.n_detections - detections_before,
        n_roi_rebuilds=cache.rebuilds if rgb_region is None else sampler.rebuilds,
        region_rgb=region_rgb,
        region_names=(sampler.names or ()) if sampler is not None else (),
    )


def _region_array(rows: list[np.ndarray | None], n_regions: int) -> np.ndarray:
    """(N, R, 3) from per-frame (R, 3) rows, NaN where a frame had no face."""
    out = np.full((len(rows), n_regions, 3), np.nan)
    for i, row in enumerate(rows):
        if row is not None:
            out[i] = row
    return out


def _fill_gaps(
    timestamps_s: np.ndarray, rgb: np.ndarray, measured: np.ndarray, max_gap_s: float, fps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interpolate runs of unmeasured frames lasting <= max_gap_s; leave longer ones NaN.

    A run's length is the time from its first missing frame to the next measured one
    (one nominal frame period past the last frame for a run that ends the video).
    """
    n = timestamps_s.shape[0]
    rgb = rgb.copy()
    valid = measured.copy()
    interpolated = np.zeros(n, dtype=bool)
    missing = ~measured
    if not missing.any():
        return rgb, valid, interpolated
    edges = np.diff(np.r_[0, missing.astype(np.int8), 0])
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)  # exclusive
    t_known = timestamps_s[measured]
    for start, stop in zip(starts, stops, strict=True):
        end_t = timestamps_s[stop] if stop < n else timestamps_s[-1] + 1.0 / fps
        if end_t - timestamps_s[start] > max_gap_s + 1e-9:
            continue
        span = slice(start, stop)
        for c in range(3):
            # np.interp holds the end values, which is what a run at either end gets.
            rgb[span, c] = np.interp(timestamps_s[span], t_known, rgb[measured, c])
        valid[span] = True
        interpolated[span] = True
    return rgb, valid, interpolated


def resample_uniform(
    timestamps_s: np.ndarray, values: np.ndarray, fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Linearly resample irregularly timed samples onto a regular grid, NaN-aware.

    Variable-frame-rate video gives samples at uneven times; spectral methods assume
    even ones. Linear interpolation between neighbouring samples (as in
    ``scipy.interpolate.interp1d(kind="linear")``); a grid point whose neighbouring
    samples include a NaN is NaN, so invalid stretches stay invalid rather than being
    bridged.

    Parameters
    ----------
    timestamps_s : (N,) float, strictly increasing sample times in seconds.
    values : (N,) or (N, C) float samples.
    fps : output rate in samples per second.

    Returns
    -------
    t_uniform : (M,) float64 seconds, ``timestamps_s[0] + k / fps`` up to the last sample.
    values_uniform : (M,) or (M, C) float64.
    """
    t = np.asarray(timestamps_s, dtype=np.float64).reshape(-1)
    v = np.asarray(values, dtype=np.float64)
    if v.shape[0] != t.shape[0]:
        raise InputError(f"resample_uniform: {t.shape[0]} timestamps for {v.shape[0]} samples")
    if not np.isfinite(fps) or fps <= 0:
        raise ConfigError(f"resample_uniform: fps must be positive, got {fps}")
    if t.shape[0] == 0:
        return t.copy(), v.copy()
    if not np.all(np.isfinite(t)):
        raise InputError(f"resample_uniform: timestamp {int(np.argmin(np.isfinite(t)))} is not finite")
    steps = np.diff(t)
    if np.any(steps <= 0):
        raise InputError(
            f"resample_uniform: timestamps must increase strictly (sample {int(np.argmax(steps <= 0)) + 1})"
        )
    n_out = int(np.floor((t[-1] - t[0]) * fps + 1e-9)) + 1
    t_uniform = t[0] + np.arange(n_out, dtype=np.float64) / fps
    if t.shape[0] == 1:
        return t_uniform, v.copy()
    right = np.clip(np.searchsorted(t, t_uniform, side="right"), 1, t.shape[0] - 1)
    left = right - 1
    weight = (t_uniform - t[left]) / (t[right] - t[left])
    weight = np.clip(weight, 0.0, 1.0)
    if v.ndim > 1:
        weight = weight.reshape((-1,) + (1,) * (v.ndim - 1))
    v_left, v_right = v[left], v[right]
    out = (1.0 - weight) * v_left + weight * v_right
    # A grid point that falls exactly on a sample takes it, even beside a NaN neighbour.
    out = np.where(weight == 0.0, v_left, np.where(weight == 1.0, v_right, out))
    return t_uniform, out
