"""Face detectors behind one small protocol, chosen by name from ``DETECTORS``.

Add a detector by decorating a class with ``@DETECTORS.register("name")``; its
constructor takes keyword options and its ``detect(frame_rgb)`` returns a list of
:class:`Face` in pixel coordinates of the frame it was given.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from facepulse.errors import ConfigError
from facepulse.registry import Registry

__all__ = [
    "DETECTORS",
    "Face",
    "FaceDetector",
    "HaarDetector",
    "MediaPipeFaceMesh",
    "make_detector",
]


@dataclass
class Face:
    """One detected face.

    Attributes
    ----------
    box_xyxy : (4,) float, ``[x0, y0, x1, y1]`` in pixels.
    score : detector confidence (see each detector for its scale).
    landmarks_xy : (K, 2) float pixels, or None for box-only detectors. MediaPipe gives
        the K = 468 face-mesh points.
    """

    box_xyxy: np.ndarray
    score: float
    landmarks_xy: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.box_xyxy = np.asarray(self.box_xyxy, dtype=np.float64).reshape(4)
        if self.landmarks_xy is not None:
            self.landmarks_xy = np.asarray(self.landmarks_xy, dtype=np.float64).reshape(-1, 2)

    @property
    def width(self) -> float:
        return float(self.box_xyxy[2] - self.box_xyxy[0])

    @property
    def height(self) -> float:
        return float(self.box_xyxy[3] - self.box_xyxy[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with a ``name`` and ``detect(frame_rgb (H, W, 3) uint8) -> list[Face]``."""

    name: str

    def detect(self, frame_rgb: np.ndarray) -> list[Face]: ...


DETECTORS: Registry[type] = Registry("face detector")


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Send C-level stderr (fd 2) to /dev/null for a moment.

    MediaPipe's TF-Lite and absl loggers write start-up notices straight to fd 2 from
    their own threads, before GLOG_minloglevel is honoured, so only the fd can hush them.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreter): leave it be
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@DETECTORS.register("mediapipe")
class MediaPipeFaceMesh:
    """MediaPipe Face Mesh, 468 landmarks per face (Kartynnik et al., arXiv:1907.06724, 2019).

    Runs in video (tracking) mode by default: the face detector runs only when the
    landmark model loses the face, which makes a call about 3 ms on a 640x480 frame.
    The model ships inside the mediapipe wheel (nothing is downloaded).

    Parameters
    ----------
    max_faces : faces to track; more than 1 makes every call run the face detector
        while fewer faces are visible, so keep 1 unless you select among several.
    static : treat each frame as an unrelated image (no tracking).
    min_detection_confidence, min_tracking_confidence : MediaPipe thresholds in [0, 1].
    max_side : frames whose longer side exceeds this many pixels are downscaled before
        the model (landmarks are mapped back to full resolution); None keeps full size.
    quiet : hush MediaPipe's start-up log lines on stderr.

    The face mesh exposes no per-face confidence: ``Face.score`` is 1.0 for every face
    that passed ``min_detection_confidence`` / ``min_tracking_confidence``.
    """

    name = "mediapipe"

    def __init__(
        self,
        max_faces: int = 1,
        *,
        static: bool = False,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        max_side: int | None = 1280,
        quiet: bool = True,
    ) -> None:
        if max_faces < 1:
            raise ConfigError(f"mediapipe detector: max_faces must be >= 1, got {max_faces}")
        # Must be set before mediapipe's native libraries load.
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        mp = import_mediapipe()

        self.max_faces = int(max_faces)
        self.max_side = max_side
        self._quiet = quiet
        self._warmed_up = False
        with _quiet_native_stderr() if quiet else contextlib.nullcontext():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static,
                max_num_faces=int(max_faces),
                refine_landmarks=False,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )
            # The graph's threads log while starting up, after the constructor returns:
            # one blank frame makes that happen here, inside the hushed window.
            self._mesh.process(np.zeros((64, 64, 3), dtype=np.uint8))

    def detect(self, frame_rgb: np.ndarray) -> list[Face]:
        """Faces in ``frame_rgb`` ((H, W, 3) uint8 RGB), landmarks in pixels."""
        import cv2

        height, width = frame_rgb.shape[:2]
        image = frame_rgb
        if self.max_side is not None and max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            image = cv2.resize(
                frame_rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
        image = np.ascontiguousarray(image)
        if self._quiet and not self._warmed_up:
            # The first landmark output logs a notice from the graph's threads.
            with _quiet_native_stderr():
                result = self._mesh.process(image)
            self._warmed_up = bool(result.multi_face_landmarks)
        else:
            result = self._mesh.process(image)
        faces: list[Face] = []
        for face_landmarks in result.multi_face_landmarks or ():
            xy = np.array([(p.x, p.y) for p in face_landmarks.landmark], dtype=np.float64)
            # Normalised coordinates are relative to the (possibly downscaled) image,
            # so multiplying by the full size maps them back directly.
            xy *= (width, height)
            lo = np.clip(xy.min(axis=0), 0, (width, height))
            hi = np.clip(xy.max(axis=0), 0, (width, height))
            faces.append(Face(np.r_[lo, hi], 1.0, xy))
        return faces

    def close(self) -> None:
        self._mesh.close()


@DETECTORS.register("haar")
class HaarDetector:
    """OpenCV Haar-cascade face detector (Viola & Jones, CVPR 2001); boxes only.

    Runs on a grey, histogram-equalised copy downscaled to ``detect_width`` pixels wide
    (about 4x fewer pixels than 640x480), then maps boxes back to full resolution.

    Parameters
    ----------
    cascade : file name in ``cv2.data.haarcascades`` (or a path).
    detect_width : width of the downscaled image the cascade runs on, pixels.
    scale_factor, min_neighbors : ``cv2.CascadeClassifier.detectMultiScale`` options.
    min_face_frac : smallest face to find, as a fraction of the frame's shorter side.
    max_faces : keep only this many faces (the largest), or None for all.

    ``Face.score`` is the cascade's final-stage level weight (larger = more confident).
    """

    name = "haar"

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        *,
        detect_width: int = 320,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face_frac: float = 0.1,
        max_faces: int | None = None,
    ) -> None:
        import cv2

        path = cascade if os.path.isfile(cascade) else os.path.join(cv2.data.haarcascades, cascade)
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise ConfigError(f"haar detector: cannot load cascade {path}")
        self.detect_width = int(detect_width)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_face_frac = float(min_face_frac)
        if max_faces is not None and max_faces < 1:
            raise ConfigError(f"haar detector: max_faces must be >= 1, got {max_faces}")
        self.max_faces = max_faces

    def detect(self, frame_rgb: np.ndarray) -> list[Face]:
        """Faces in ``frame_rgb`` ((H, W, 3) uint8 RGB); boxes in pixels, no landmarks."""
        import cv2

        height, width = frame_rgb.shape[:2]
        scale = min(1.0, self.detect_width / width)
        small = frame_rgb
        if scale < 1.0:
            small = cv2.resize(
                frame_rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        min_side = max(12, round(self.min_face_frac * min(gray.shape)))
        boxes, _levels, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
            outputRejectLevels=True,
        )
        faces = []
        for (x, y, w, h), weight in zip(np.asarray(boxes).reshape(-1, 4), np.ravel(weights), strict=True):
            box = np.array([x, y, x + w, y + h], dtype=np.float64) / scale
            faces.append(Face(box, float(weight), None))
        if self.max_faces is not None:
            faces = sorted(faces, key=lambda f: -f.area)[: self.max_faces]
        return faces


def import_mediapipe():
    """``import mediapipe``, without the ~0.4 s of ``matplotlib.pyplot`` it pulls in.

    mediapipe's package init imports its drawing helpers, and they import
    ``matplotlib.pyplot`` for one plotting function that facepulse never calls. While
    mediapipe imports, ``matplotlib`` and ``matplotlib.pyplot`` are lazy stand-ins; they
    leave ``sys.modules`` right after, so any later ``import matplotlib`` (the user's, or
    that plotting function's first attribute access) loads the real package. Nothing is
    stubbed when matplotlib is already imported, or when mediapipe is.
    """
    from facepulse._standins import import_with_stand_ins

    return import_with_stand_ins("mediapipe", {"matplotlib": ("pyplot",)})


def make_detector(name: str = "auto", **options) -> FaceDetector:
    """Build the registered detector ``name`` with keyword ``options``.

    ``"auto"`` picks ``mediapipe`` when it can be imported, else ``haar`` with a warning
    (Haar gives boxes only, so the skin ROI falls back to geometric sub-boxes).
    """
    if name == "auto":
        try:
            import_mediapipe()
        except ImportError as err:
            warnings.warn(
                f"mediapipe is not importable ({err}); using the Haar-cascade face detector "
                "(boxes only, slower, coarser skin ROI)",
                RuntimeWarning,
                stacklevel=2,
            )
            name = "haar"
        else:
            name = "mediapipe"
    cls = DETECTORS.get(name)
    try:
        return cls(**options)
    except TypeError as err:
        raise ConfigError(f"face detector {name!r}: bad option ({err})") from None
