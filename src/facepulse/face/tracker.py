"""Face tracking: detect every few frames, hold and smooth the face in between.

Detection jitter moves the skin ROI by a pixel or two from frame to frame, and that
movement leaks into the colour trace as noise at the pulse's own frequencies; holding
the face between detections and exponentially smoothing successive detections keeps the
ROI still while the head is still, and lets it follow when the head really moves.
"""

from __future__ import annotations

import numpy as np

from facepulse.errors import ConfigError
from facepulse.face.detectors import Face, FaceDetector, make_detector

__all__ = ["FaceTracker"]


class FaceTracker:
    """Follow one face through a video.

    Parameters
    ----------
    detector : a :class:`FaceDetector`, or a ``DETECTORS`` name (``"auto"``, ``"mediapipe"``,
        ``"haar"``).
    detect_every : run the detector on every ``detect_every``-th frame (and on every frame
        while no face is held); frames in between reuse the held face.
    select : ``"largest"`` (the face with the largest box), or an int ``k`` for the k-th
        largest (0 = largest). With fewer than ``k + 1`` faces, no face is returned.
    smooth : weight of the previous face in the exponential smoothing of each new
        detection, in [0, 1); 0 disables smoothing.
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
        reset_frac: float = 0.25,
    ) -> None:
        if isinstance(detector, str):
            # Selecting the k-th face needs a detector that reports at least k + 1.
            options = {"max_faces": select + 1} if isinstance(select, int) else {}
            detector = make_detector(detector, **options)
        if not isinstance(detector, FaceDetector):
            raise ConfigError(f"face tracker: {detector!r} has no name/detect(frame_rgb)")
        if int(detect_every) < 1:
            raise ConfigError(f"face tracker: detect_every must be >= 1, got {detect_every}")
        if select != "largest" and not (isinstance(select, int) and select >= 0):
            raise ConfigError(f"face tracker: select must be 'largest' or an index >= 0, got {select!r}")
        if not 0.0 <= float(smooth) < 1.0:
            raise ConfigError(f"face tracker: smooth must be in [0, 1), got {smooth}")
        self.detector = detector
        self.detect_every = int(detect_every)
        self.select_index = 0 if select == "largest" else int(select)
        self.smooth = float(smooth)
        self.reset_frac = float(reset_frac)
        self.n_detections = 0
        self.reset()

    def reset(self) -> None:
        """Forget the held face (e.g. before a new video)."""
        self._face: Face | None = None
        self._since_detection = 0

    @property
    def needs_detection(self) -> bool:
        """Whether the next :meth:`update` runs the detector (no face held, or one is due)."""
        return self._face is None or self._since_detection >= self.detect_every

    def update(self, frame_rgb: np.ndarray, faces: list[Face] | None = None) -> Face | None:
        """The tracked face in ``frame_rgb`` ((H, W, 3) uint8 RGB), or None when there is none.

        ``faces``: the detector's output for this very frame when the caller already ran
        it (e.g. in a worker thread while decoding the next frames); used instead of
        calling the detector, and only when :attr:`needs_detection` is True.
        """
        if not self.needs_detection:
            self._since_detection += 1
            return self._face
        if faces is None:
            faces = self.detector.detect(frame_rgb)
        self.n_detections += 1
        self._since_detection = 1
        chosen = self._select(faces)
        self._face = None if chosen is None else self._blend(self._face, chosen)
        return self._face

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
