"""Face tracking: detect every few frames, hold and smooth the face in between.

Detection jitter moves the skin ROI by a pixel or two from frame to frame, and that
movement leaks into the colour trace as noise at the pulse's own frequencies; holding
the face between detections and exponentially smoothing successive detections keeps the
ROI still while the head is still, and lets it follow when the head really moves.

Detection is also the expensive step (a few ms a call against about 1-2 ms to decode a
640x480 frame), so the tracker can stretch the interval while the face stays still and
checks a tiny thumbnail of the face region on the frames in between: a change there
(the head moved, or someone walked in front) triggers a detection at once.
"""

from __future__ import annotations

import numpy as np

from facepulse.errors import ConfigError
from facepulse.face.detectors import Face, FaceDetector, make_detector

__all__ = ["FaceTracker"]

_THUMB_SIDE = 16  # pixels; enough to see a 1-2 px shift of a face, cheap to compare


class FaceTracker:
    """Follow one face through a video.

    Parameters
    ----------
    detector : a :class:`FaceDetector`, or a ``DETECTORS`` name (``"auto"``, ``"mediapipe"``,
        ``"haar"``).
    detect_every : run the detector on every ``detect_every``-th frame (and on every frame
        while no face is held); frames in between reuse the held face. This is the
        interval while the face moves; see ``max_detect_every`` for still faces.
    select : ``"largest"`` (the face with the largest box), or an int ``k`` for the k-th
        largest (0 = largest). With fewer than ``k + 1`` faces, no face is returned.
    smooth : weight of the previous face in the exponential smoothing of each new
        detection, in [0, 1); 0 disables smoothing.
    max_detect_every : when larger than ``detect_every``, the interval doubles after each
        detection that finds the face where the previous one did (within ``still_frac``
        of its width), up to this many frames, and drops back to ``detect_every`` as soon
        as the face moves (or ``motion_threshold`` sees it move). None keeps the interval
        fixed at ``detect_every``.
    motion_threshold : on frames between detections, a mean absolute change larger than
        this (8-bit levels) in a 16x16 green-channel thumbnail of the held face box
        triggers a detection on that frame; about 2 levels is a 1-pixel shift of a face.
        None disables the check.
    still_frac : see ``max_detect_every``.
    reset_frac : a detection whose box centre moved by more than this fraction of the
        box width (or whose size changed by more than it) replaces the held face without
        smoothing, so a real jump is followed at once rather than dragged.

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
        self.n_detections = 0
        self.reset()

    def reset(self) -> None:
        """Forget the held face (e.g. before a new video)."""
        self._face: Face | None = None
        self._raw: Face | None = None  # last detection before smoothing
        self._since_detection = 0
        self._interval = self.detect_every
        self._thumb: np.ndarray | None = None
        self._due_for: tuple[np.ndarray, bool] | None = None

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

        ``faces``: the detector's output for this very frame when the caller already ran
        it (e.g. in a worker thread while decoding the next frames, after :meth:`due`
        said so); used instead of calling the detector.
        """
        if faces is None:
            if not self.due(frame_rgb):
                self._due_for = None
                self._since_detection += 1
                return self._face
            faces = self.detector.detect(frame_rgb)
        self._due_for = None
        self.n_detections += 1
        self._since_detection = 1
        chosen = self._select(faces)
        if chosen is None:
            self._face = self._raw = self._thumb = None
            self._interval = self.detect_every
            return None
        still = self._raw is not None and np.abs(chosen.box_xyxy - self._raw.box_xyxy).max() <= (
            self.still_frac * max(chosen.width, 1.0)
        )
        self._interval = min(2 * self._interval, self.max_detect_every) if still else self.detect_every
        self._raw = chosen
        self._face = self._blend(self._face, chosen)
        if self.motion_threshold is not None:
            self._thumb = self._thumbnail(frame_rgb)
        return self._face

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
