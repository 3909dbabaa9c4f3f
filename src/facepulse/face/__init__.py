"""facepulse.face: face detectors (registry ``DETECTORS``) and a smoothing face tracker."""

from facepulse.face.detectors import DETECTORS, Face, FaceDetector, make_detector
from facepulse.face.tracker import FaceTracker

__all__ = ["DETECTORS", "Face", "FaceDetector", "FaceTracker", "make_detector"]
