"""Face tracking: detect every few frames, follow the face's own texture in between.

Detection is the expensive step (a few ms a call against about 1-2 ms to decode a
640x480 frame), so it runs only every few frames. In between, the face is not held
still: about two dozen corners inside it are followed by pyramidal Lucas-Kanade optical
flow, and the face (box and landmarks) is carried along by the similarity transform
(shift, rotation, scale) they agree on. The skin ROI then follows the head on every
frame, to a fraction of a pixel, instead of lagging until the next detection: a stale
ROI that slides over the skin's texture puts the head motion into the colour trace, at
the pulse's own frequencies when the head nods or the person talks.

The detector corrects the flow's slow drift (a complementary filter: the flow gives the
motion, the detector the absolute position). A detection that finds the face where the
flow predicted it (within ``still_frac``) is taken in gradually over the next frames, so
the face glides by hundredths of a pixel instead of jumping by the detector's jitter;
one that disagrees more is blended with the prediction at once (``smooth``), and one
that disagrees by more than ``reset_frac`` replaces it. The interval between detections
doubles while they agree, and a change in a tiny thumbnail of the face box that the flow
did not explain (someone walks in front, a fast turn) triggers a detection at once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np

from facepulse.errors import ConfigError
from facepulse.face.detectors import Face, FaceDetector, make_detector

__all__ = ["FaceTracker", "single_threaded_opencv"]


@contextlib.contextmanager
def single_threaded_opencv() -> Iterator[None]:
    """OpenCV on one thread inside the block; the caller's setting comes back after it.

    The per-frame calls of the face stage are small (a face-sized warp, a flow step, a
    16x16 thumbnail): OpenCV's worker pool splits each over all cores, which the decoder
    and the detector threads already keep busy, and waiting on the pool costs more than
    the split saves (`predict` on a 68 s clip, 2 cores: 4.5 -> 3.8 s in one process;
    `live` at 30 fps: ~28 -> ~26 % of a core). Pixels do not depend on it.
    """
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)

_THUMB_SIDE = 16  # pixels; enough to see a 1-2 px shift of a face, cheap to compare
_FLOW_MAX_POINTS = 24  # corners followed per face: enough for a robust fit, cheap to track
_FLOW_MIN_POINTS = 8  # fewer surviving corners than this: pick new ones
_FLOW_WIN_PX = 11  # Lucas-Kanade window side, pixels
_FLOW_LEVELS = 2  # pyramid levels above full resolution: follows ~10 px per frame
_FLOW_MARGIN = 0.2  # the flow crop extends the face box by this fraction per side
_FLOW_RANSAC_PX = 1.0  # corners further than this from the fitted motion are outliers
# A detection that agrees with the flow corrects the face over this many frames (or
# until the next detection) instead of at once: even 0.03-px steps of the ROI show in
# the trace (on synthetic still faces, gliding raised the correlation of the green trace
# with the true skin mask's from 0.78 to 0.95).
_GLIDE_FRAMES = 48


def _gray_crop(frame_rgb: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    import cv2

    x0, y0, x1, y1 = rect
    return cv2.cvtColor(frame_rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)


def _flow_rect(
    face: Face, shape: tuple[int, ...], current: tuple[int, int, int, int] | None = None
) -> tuple[int, int, int, int] | None:
    """The face box widened by ``_FLOW_MARGIN`` per side, in frame pixels (None if off-frame).

    ``current`` (the crop in use) is kept while it still holds the face box with half the
    margin and is not much larger than needed: the crop moves in jumps, not every frame.
    """
    height, width = shape[:2]
    x0, y0, x1, y1 = (float(v) for v in face.box_xyxy)
    if current is not None:
        cx0, cy0, cx1, cy1 = current
        hx, hy = 0.5 * _FLOW_MARGIN * (x1 - x0), 0.5 * _FLOW_MARGIN * (y1 - y0)
        holds = (cx0 <= max(x0 - hx, 0) and cy0 <= max(y0 - hy, 0)
                 and cx1 >= min(x1 + hx, width) and cy1 >= min(y1 + hy, height))
        if holds and (cx1 - cx0) * (cy1 - cy0) <= 1.5 * (1 + 2 * _FLOW_MARGIN) ** 2 * (x1 - x0) * (y1 - y0):
            return current
    mx, my = _FLOW_MARGIN * (x1 - x0), _FLOW_MARGIN * (y1 - y0)
    rect = (
        min(max(math.floor(x0 - mx), 0), width),
        min(max(math.floor(y0 - my), 0), height),
        min(max(math.ceil(x1 + mx), 0), width),
        min(max(math.ceil(y1 + my), 0), height),
    )
    # Too small for the pyramid and window of the flow.
    if rect[2] - rect[0] < 2 * _FLOW_WIN_PX or rect[3] - rect[1] < 2 * _FLOW_WIN_PX:
        return None
    return rect


def _corner_region(face: Face, rect: tuple[int, int, int, int]) -> np.ndarray:
    """(h, w) uint8 mask of ``rect`` where corners may be picked: inside the face, off its edge.

    Corners on the face's outline would mix the moving face with the still background;
    the face's interior (eyes, brows, nostrils, skin texture) moves with the head.
    """
    import cv2

    x0, y0, x1, y1 = rect
    region = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    if face.landmarks_xy is not None and face.landmarks_xy.shape[0] >= 3:
        points = face.landmarks_xy
        centre = points.mean(axis=0)
        hull = cv2.convexHull(np.round(centre + 0.8 * (points - centre) - (x0, y0)).astype(np.int32))
        cv2.fillConvexPoly(region, hull, 255)
    else:
        bx0, by0, bx1, by1 = face.box_xyxy
        w, h = bx1 - bx0, by1 - by0
        # The middle of a detector box: brows to mouth, between the face's sides.
        cv2.rectangle(
            region,
            (int(bx0 + 0.2 * w - x0), int(by0 + 0.15 * h - y0)),
            (int(bx0 + 0.8 * w - x0), int(by0 + 0.85 * h - y0)),
            255,
            thickness=-1,
        )
    return region


def _pick_corners(gray: np.ndarray, region: np.ndarray) -> np.ndarray | None:
    """Up to ``_FLOW_MAX_POINTS`` corners (Shi & Tomasi, CVPR 1994), (K, 1, 2) float32 crop pixels."""
    import cv2

    min_distance = max(3.0, 0.06 * min(gray.shape))  # spread over the face, not clustered on one eye
    corners = cv2.goodFeaturesToTrack(
        gray, _FLOW_MAX_POINTS, qualityLevel=0.01, minDistance=min_distance, mask=region, blockSize=5
    )
    return corners if corners is not None and len(corners) >= _FLOW_MIN_POINTS else None


def _flow_similarity(
    prev_gray: np.ndarray, gray: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Motion of ``points`` from ``prev_gray`` to ``gray`` as one similarity transform.

    Pyramidal Lucas-Kanade flow (Bouguet 2001, after Lucas & Kanade, IJCAI 1981) moves
    each point; a RANSAC fit of a 4-parameter similarity (shift, rotation, uniform scale)
    keeps the points that move with the head and ignores blinking eyes or a talking mouth.

    Parameters
    ----------
    prev_gray, gray : (h, w) uint8, the same crop of two consecutive frames.
    points : (K, 1, 2) float32 crop pixels in ``prev_gray``.

    Returns
    -------
    matrix : (2, 3) float64 mapping ``prev_gray`` pixels to ``gray`` pixels, or None when
        too few points could be followed.
    inliers : (K', 1, 2) float32 the followed points that fit it, in ``gray`` pixels.
    """
    import cv2

    moved, status, _err = cv2.calcOpticalFlowPyrLK(
        prev_gray,
        gray,
        points,
        None,
        winSize=(_FLOW_WIN_PX, _FLOW_WIN_PX),
        maxLevel=_FLOW_LEVELS,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03),
    )
    if moved is None:
        return None, None
    ok = status.reshape(-1).astype(bool)
    if ok.sum() < _FLOW_MIN_POINTS:
        return None, None
    before, after = points[ok], moved[ok]
    matrix, inliers = cv2.estimateAffinePartial2D(
        before, after, method=cv2.RANSAC, ransacReprojThreshold=_FLOW_RANSAC_PX, refineIters=10
    )
    if matrix is None or inliers is None or int(inliers.sum()) < _FLOW_MIN_POINTS:
        return None, None
    return matrix.astype(np.float64), after[inliers.reshape(-1).astype(bool)]


def _transform_face(face: Face, matrix: np.ndarray, shape: tuple[int, ...]) -> Face:
    """``face`` moved by the (2, 3) similarity ``matrix`` (frame pixels to frame pixels)."""
    linear, shift = matrix[:, :2], matrix[:, 2]
    if face.landmarks_xy is not None:
        landmarks = face.landmarks_xy @ linear.T + shift
        height, width = shape[:2]
        # The box as the detectors make it: the landmarks' extent, clipped to the frame.
        lo = np.minimum(np.maximum(landmarks.min(axis=0), 0.0), (width, height))
        hi = np.minimum(np.maximum(landmarks.max(axis=0), 0.0), (width, height))
        return Face(np.concatenate([lo, hi]), face.score, landmarks)
    scale = float(np.sqrt(abs(np.linalg.det(linear))))
    centre = 0.5 * (face.box_xyxy[:2] + face.box_xyxy[2:])
    half = 0.5 * scale * (face.box_xyxy[2:] - face.box_xyxy[:2])
    centre = linear @ centre + shift
    return Face(np.concatenate([centre - half, centre + half]), face.score, None)


class _Glide:
    """A detector's correction of the predicted face, applied in equal steps over ``n`` frames."""

    def __init__(self, predicted: Face, detected: Face, n: int) -> None:
        self.left = n
        self.box_step = (detected.box_xyxy - predicted.box_xyxy) / n
        self.landmark_step = None
        if (
            detected.landmarks_xy is not None
            and predicted.landmarks_xy is not None
            and detected.landmarks_xy.shape == predicted.landmarks_xy.shape
        ):
            self.landmark_step = (detected.landmarks_xy - predicted.landmarks_xy) / n

    def step(self, face: Face) -> Face:
        self.left -= 1
        landmarks = face.landmarks_xy
        step = self.landmark_step
        if step is not None and landmarks is not None and landmarks.shape == step.shape:
            landmarks = landmarks + step
        return Face(face.box_xyxy + self.box_step, face.score, landmarks)


class FaceTracker:
    """Follow one face through a video.

    Parameters
    ----------
    detector : a :class:`FaceDetector`, or a ``DETECTORS`` name (``"auto"``, ``"mediapipe"``,
        ``"haar"``).
    detect_every : run the detector on every ``detect_every``-th frame (and on every frame
        while no face is held); frames in between follow the held face (see ``follow``).
        This is the interval while the face moves; see ``max_detect_every``.
    select : ``"largest"`` (the face with the largest box), or an int ``k`` for the k-th
        largest (0 = largest). With fewer than ``k + 1`` faces, no face is returned.
    smooth : weight of the predicted face (the held face carried to this frame by the
        flow) against a detection that disagrees with it by more than ``still_frac``, in
        [0, 1); detections that agree are taken in gradually over 48 frames instead. 0
        takes every detection as it is. The flow supplies the motion, so smoothing damps
        the detector's jitter without lagging behind a moving head.
    max_detect_every : when larger than ``detect_every``, the interval doubles after each
        detection that finds the face where it was predicted (within ``still_frac`` of
        its width), up to this many frames, and drops back to ``detect_every`` as soon
        as a detection disagrees (or ``motion_threshold`` sees an unexplained change).
        None keeps the interval fixed at ``detect_every``.
    motion_threshold : on frames between detections, a mean absolute change larger than
        this (8-bit levels) in a 16x16 green-channel thumbnail of the held face box since
        the last detection triggers a detection on that frame; about 2 levels is a
        1-pixel shift of a face that the box did not follow. None disables the check.
    still_frac : see ``max_detect_every``.
    reset_frac : a detection whose box centre is more than this fraction of the box width
        from the predicted one (or whose size differs by more than it) replaces the held
        face without smoothing, so a real jump is followed at once rather than dragged.
    follow : carry the held face along between detections with the similarity transform
        (shift, rotation, scale) of Lucas-Kanade optical flow on corners inside the face
        (about 0.3 ms a frame); False holds it still until the next detection.

    Examples
    --------
    >>> tracker = FaceTracker("mediapipe", detect_every=3)  # doctest: +SKIP
    >>> face = tracker.update(frame_rgb)  # Face, or None when no face  # doctest: +SKIP
    """

    def __init__(
        self,
        detector: FaceDetector | str = "auto",
        detect_every: int = 3,
        select: str | int = "largest",
        smooth: float = 0.5,
        *,
        max_detect_every: int | None = 12,
        motion_threshold: float | None = 3.0,
        still_frac: float = 0.02,
        reset_frac: float = 0.25,
        follow: bool = True,
    ) -> None:
        if isinstance(select, bool) or (
            select != "largest" and not (isinstance(select, int) and select >= 0)
        ):
            raise ConfigError(f"face tracker: select must be 'largest' or an index >= 0, got {select!r}")
        if isinstance(detector, str):
            # Selecting the k-th face needs a detector that reports at least k + 1.
            options = {"max_faces": select + 1} if isinstance(select, int) else {}
            detector = make_detector(detector, **options)
        if not isinstance(detector, FaceDetector):
            raise ConfigError(f"face tracker: {detector!r} has no name/detect(frame_rgb)")
        max_faces = getattr(detector, "max_faces", None)
        if isinstance(select, int) and max_faces is not None and select >= max_faces:
            raise ConfigError(
                f"face tracker: select={select} needs a detector that reports {select + 1} faces, "
                f"but {detector.name} reports at most {max_faces} (pass max_faces={select + 1})"
            )
        if int(detect_every) < 1:
            raise ConfigError(f"face tracker: detect_every must be >= 1, got {detect_every}")
        if max_detect_every is not None and int(max_detect_every) < int(detect_every):
            raise ConfigError(
                f"face tracker: max_detect_every ({max_detect_every}) is below detect_every ({detect_every})"
            )
        if not 0.0 <= float(smooth) < 1.0:
            raise ConfigError(f"face tracker: smooth must be in [0, 1), got {smooth}")
        self.detector = detector
        self.detect_every = int(detect_every)
        self.max_detect_every = int(max_detect_every) if max_detect_every is not None else self.detect_every
        self.select_index = 0 if select == "largest" else int(select)
        self.smooth = float(smooth)
        self.motion_threshold = motion_threshold
        self.still_frac = float(still_frac)
        self.reset_frac = float(reset_frac)
        self.follow = bool(follow)
        self.n_detections = 0
        self.reset()

    def reset(self) -> None:
        """Forget the held face (e.g. before a new video)."""
        self._face: Face | None = None
        self._since_detection = 0
        self._interval = self.detect_every
        self._thumb: np.ndarray | None = None
        self._due_for: tuple[np.ndarray, bool] | None = None
        self._correction: _Glide | None = None
        self._drop_flow()

    def _drop_flow(self) -> None:
        self._rect: tuple[int, int, int, int] | None = None  # crop of the flow, frame pixels
        self._gray: np.ndarray | None = None  # that crop of the last frame, grey
        self._points: np.ndarray | None = None  # corners followed, (K, 1, 2) crop pixels

    @property
    def interval(self) -> int:
        """The current detection interval in frames."""
        return self._interval

    def due(self, frame_rgb: np.ndarray) -> bool:
        """Whether :meth:`update` on this frame would run the detector."""
        if self._due_for is not None and self._due_for[0] is frame_rgb:
            return self._due_for[1]
        if self._face is None or self._since_detection >= self._interval:
            due = True
        elif self.motion_threshold is not None and self._thumb is not None:
            thumb = self._thumbnail(frame_rgb)
            due = thumb is None or float(np.abs(thumb - self._thumb).mean()) > self.motion_threshold
            if due:
                self._interval = self.detect_every
        else:
            due = False
        self._due_for = (frame_rgb, due)
        return due

    def update(self, frame_rgb: np.ndarray, faces: list[Face] | None = None) -> Face | None:
        """The tracked face in ``frame_rgb`` ((H, W, 3) uint8 RGB), or None when there is none.

        Call it on every frame, in order (the flow follows the face from one frame to
        the next). ``faces``: the detector's output for this very frame when the caller
        already ran it (e.g. in a worker thread while decoding the next frames, after
        :meth:`due` said so); used instead of calling the detector.
        """
        if faces is None:
            if not self.due(frame_rgb):
                self._due_for = None
                self._since_detection += 1
                self._face = self._follow(frame_rgb)
                return self._face
            faces = self.detector.detect(frame_rgb)
        self._due_for = None
        self.n_detections += 1
        self._since_detection = 1
        predicted = self._follow(frame_rgb)
        chosen = self._select(faces)
        if chosen is None:
            self._face = self._thumb = None
            self._drop_flow()
            self._interval = self.detect_every
            return None
        still = predicted is not None and np.abs(chosen.box_xyxy - predicted.box_xyxy).max() <= (
            self.still_frac * max(chosen.width, 1.0)
        )
        self._interval = min(2 * self._interval, self.max_detect_every) if still else self.detect_every
        self._correction = None
        if still and self.follow and self.smooth > 0.0:
            # The detector agrees with the flow to within its own jitter: take its small
            # correction gradually, so that the face glides instead of stepping.
            self._face = predicted
            self._correction = _Glide(predicted, chosen, _GLIDE_FRAMES)
        else:
            self._face = self._blend(predicted, chosen)
        if self.follow:
            self._restart_flow(frame_rgb)
        if self.motion_threshold is not None:
            self._thumb = self._thumbnail(frame_rgb)
        return self._face

    def _follow(self, frame_rgb: np.ndarray) -> Face | None:
        """The held face carried from the previous frame to this one by the optical flow."""
        face = self._face
        if face is None or not self.follow or self._rect is None:
            return face
        gray = _gray_crop(frame_rgb, self._rect)
        matrix = None
        if self._points is not None and gray.shape == self._gray.shape:
            matrix, self._points = _flow_similarity(self._gray, gray, self._points)
        if matrix is not None:
            # From crop pixels to frame pixels (the same crop on both frames): p -> A p + t
            # in the crop is p -> A p + t + o - A o in the frame, o the crop's origin.
            origin = np.array(self._rect[:2], dtype=np.float64)
            matrix[:, 2] += origin - matrix[:, :2] @ origin
            face = _transform_face(face, matrix, frame_rgb.shape)
        if self._correction is not None:
            face = self._correction.step(face)
            if self._correction.left == 0:
                self._correction = None
        rect = _flow_rect(face, frame_rgb.shape, self._rect)
        if rect is None:
            self._drop_flow()
            return face
        if rect != self._rect:
            # The face moved within the frame: the next flow step works on a new crop.
            shift = np.array([self._rect[0] - rect[0], self._rect[1] - rect[1]], dtype=np.float32)
            if self._points is not None:
                self._points = self._points + shift
            self._rect, gray = rect, _gray_crop(frame_rgb, rect)
        self._gray = gray
        if self._points is None or len(self._points) < _FLOW_MIN_POINTS:
            self._points = _pick_corners(gray, _corner_region(face, rect))
        return face

    def _restart_flow(self, frame_rgb: np.ndarray) -> None:
        """Pick fresh corners on the face just detected (they drift off as the head turns)."""
        rect = _flow_rect(self._face, frame_rgb.shape)
        if rect is None:
            self._drop_flow()
            return
        self._rect = rect
        self._gray = _gray_crop(frame_rgb, rect)
        self._points = _pick_corners(self._gray, _corner_region(self._face, rect))

    def _thumbnail(self, frame_rgb: np.ndarray) -> np.ndarray | None:
        """16x16 thumbnail of the held face box (green channel), None if the box left the frame."""
        import cv2

        height, width = frame_rgb.shape[:2]
        x0, y0, x1, y1 = np.round(self._face.box_xyxy).astype(int)
        x0, x1 = max(x0, 0), min(x1, width)
        y0, y1 = max(y0, 0), min(y1, height)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        # Every k-th pixel of the green channel (the luminance-heavy one) first, so the
        # per-frame cost stays ~tens of microseconds whatever the face size.
        step = max(1, min(x1 - x0, y1 - y0) // (4 * _THUMB_SIDE))
        patch = np.ascontiguousarray(frame_rgb[y0:y1:step, x0:x1:step, 1])
        return cv2.resize(patch, (_THUMB_SIDE, _THUMB_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)

    def _select(self, faces: list[Face]) -> Face | None:
        if len(faces) <= self.select_index:
            return None
        order = np.argsort([-f.area for f in faces], kind="stable")
        return faces[int(order[self.select_index])]

    def _blend(self, previous: Face | None, new: Face) -> Face:
        if previous is None or self.smooth == 0.0:
            return new
        size = max(previous.width, 1.0)
        centre_shift = np.abs(
            (new.box_xyxy[:2] + new.box_xyxy[2:]) - (previous.box_xyxy[:2] + previous.box_xyxy[2:])
        ).max() / 2
        size_change = abs(new.width - previous.width) + abs(new.height - previous.height)
        if centre_shift > self.reset_frac * size or size_change > self.reset_frac * size:
            return new
        a = self.smooth
        box = a * previous.box_xyxy + (1 - a) * new.box_xyxy
        landmarks = new.landmarks_xy
        if (
            landmarks is not None
            and previous.landmarks_xy is not None
            and previous.landmarks_xy.shape == landmarks.shape
        ):
            landmarks = a * previous.landmarks_xy + (1 - a) * landmarks
        return Face(box, new.score, landmarks)


def count_faces(
    src, detector: str = "auto", *, fps: float | None = None, n_samples: int = 12, max_faces: int = 8
) -> int:
    """The most faces found in any of ``n_samples`` frames spread over the video ``src``.

    Used to explain a "no face" result when a face index beyond the faces present was
    asked for. Each sampled frame is detected on its own (no tracking); counts above
    ``max_faces`` are reported as ``max_faces``.
    """
    from facepulse.io.video import open_video

    source = open_video(src, fps=fps)
    options = {"max_faces": max_faces}
    if detector in ("auto", "mediapipe"):
        options["static"] = True  # unrelated frames: no tracking between them
    try:
        det = make_detector(detector, **options)
    except ConfigError:
        det = make_detector(detector)
    n_total = source.info.n_frames or 0
    every = max(1, n_total // n_samples) if n_total else 15
    most = 0
    try:
        for index, (_, frame) in enumerate(source):
            if index % every:
                continue
            most = max(most, len(det.detect(frame)))
            if index // every + 1 >= n_samples or most >= max_faces:
                break
    finally:
        close = getattr(det, "close", None)
        if callable(close):
            close()
    return most
