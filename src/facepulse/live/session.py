"""The live loop: frames -> face tracking -> :class:`LiveEstimator` -> an update a second.

:class:`LivePipeline` is the per-frame work shared by ``facepulse live`` (frames from a
:class:`~facepulse.live.sources.LiveSource`) and ``facepulse serve`` (frames from a
browser): track the face, push the frame into the estimator, and, each time the stream
clock passes the next update time, ask the estimator for an update. :func:`run_live`
drives it from a source until the file ends, ``duration_s`` of stream time has passed,
``stop`` is set, or the source fails.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facepulse.errors import ConfigError
from facepulse.face.detectors import Face
from facepulse.face.tracker import single_threaded_opencv
from facepulse.live.estimator import DEFAULT_BAND_BPM, LiveEstimator, LiveUpdate
from facepulse.live.sources import END, LiveFrame, LiveSource

__all__ = ["LivePipeline", "LiveStats", "run_live"]


@dataclass
class LiveStats:
    """Counters of a live run (bounded: latencies keep the last 4096 frames).

    frames : frames processed; frames_with_face : of which with a tracked face;
    dropped : frames dropped by the source (consumer too slow); updates : updates made;
    frame_latency_s : per processed frame, seconds from its capture to the end of its
    processing (tracking + ROI); update_latency_s : per update, seconds from the capture
    of the newest frame it includes to the update being ready.
    """

    frames: int = 0
    frames_with_face: int = 0
    dropped: int = 0
    updates: int = 0
    frame_latency_s: deque = field(default_factory=lambda: deque(maxlen=4096))
    update_latency_s: deque = field(default_factory=lambda: deque(maxlen=4096))

    def summary(self) -> dict[str, Any]:
        def ms(values: deque, q: float) -> float | None:
            return round(1000 * float(np.quantile(np.asarray(values), q)), 1) if values else None

        return {
            "frames": self.frames,
            "frames_with_face": self.frames_with_face,
            "dropped": self.dropped,
            "updates": self.updates,
            "frame_latency_ms_p50": ms(self.frame_latency_s, 0.5),
            "update_latency_ms_p50": ms(self.update_latency_s, 0.5),
            "update_latency_ms_p95": ms(self.update_latency_s, 0.95),
        }


class LivePipeline:
    """Face tracking + :class:`LiveEstimator`, one frame at a time, with an update schedule.

    Parameters
    ----------
    window_s : analysis window (seconds).
    update_every_s : seconds of stream time between updates.
    detector : face detector name (``"auto"``, ``"mediapipe"``, ``"haar"``) or instance.
    method, band_bpm : as in :class:`LiveEstimator`.
    face_index : None = the largest face, k = the k-th largest.
    estimator : a ready :class:`LiveEstimator` (overrides window_s/method/band_bpm).
    """

    def __init__(
        self,
        window_s: float = 10.0,
        *,
        update_every_s: float = 1.0,
        detector: Any = "auto",
        method: str = "auto",
        band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
        face_index: int | None = None,
        estimator: LiveEstimator | None = None,
    ) -> None:
        from facepulse.face.detectors import make_detector
        from facepulse.face.tracker import FaceTracker

        if not update_every_s > 0:
            raise ConfigError(f"--update-every must be positive seconds, got {update_every_s}")
        self.estimator = estimator or LiveEstimator(window_s, method=method, band_bpm=band_bpm)
        self.update_every_s = float(update_every_s)
        self._own_detector = None
        if isinstance(detector, str):
            options = {"max_faces": face_index + 1} if face_index else {}
            detector = self._own_detector = make_detector(detector, **options)
        select = "largest" if face_index is None else int(face_index)
        self.tracker = FaceTracker(detector, select=select)
        self._next_update_s: float | None = None
        self.last_face: Face | None = None

    def reset(self) -> None:
        """Forget the face and the buffered signal (a new subject or a restarted source)."""
        self.tracker.reset()
        self.estimator.reset()
        self._next_update_s = None
        self.last_face = None

    def process(self, t_s: float, frame_rgb: np.ndarray) -> tuple[Face | None, LiveUpdate | None]:
        """Track the face in one frame and buffer it; an update when one is due, else None."""
        face = self.tracker.update(frame_rgb)
        self.last_face = face
        self.estimator.push(t_s, frame_rgb, face)
        if self._next_update_s is None or t_s < self._next_update_s - 10 * self.update_every_s:
            self._next_update_s = t_s + self.update_every_s  # first frame, or a restarted clock
            return face, None
        if t_s + 1e-6 < self._next_update_s:
            return face, None
        while self._next_update_s <= t_s + 1e-6:
            self._next_update_s += self.update_every_s
        return face, self.estimator.update(t_s)

    def close(self) -> None:
        if self._own_detector is not None and hasattr(self._own_detector, "close"):
            self._own_detector.close()
            self._own_detector = None


def run_live(
    source: LiveSource,
    pipeline: LivePipeline,
    on_update: Callable[[LiveUpdate, LiveStats], None],
    *,
    on_frame: Callable[[LiveFrame, Face | None], None] | None = None,
    on_idle: Callable[[float, LiveStats], None] | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
) -> LiveStats:
    """Run ``pipeline`` on ``source`` until it ends, ``duration_s`` of stream time passed,
    or ``stop`` is set; ``on_update(update, stats)`` for each update, ``on_frame(frame,
    face)`` for each processed frame, ``on_idle(seconds_without_frames, stats)`` while
    waiting for frames. Source errors (stream ended, stalled, unplugged) propagate.
    """
    with single_threaded_opencv():
        stats = LiveStats()
        source.start()
        waiting_since = time.monotonic()
        while stop is None or not stop.is_set():
            item = source.read(timeout_s=0.25)
            stats.dropped = source.dropped
            if item is END:
                break
            if item is None:
                if on_idle is not None:
                    on_idle(time.monotonic() - waiting_since, stats)
                continue
            waiting_since = time.monotonic()
            face, update = pipeline.process(item.t_s, item.frame)
            done = time.monotonic()
            stats.frames += 1
            stats.frames_with_face += face is not None
            stats.frame_latency_s.append(done - item.captured_at)
            if on_frame is not None:
                on_frame(item, face)
            if update is not None:
                stats.updates += 1
                stats.update_latency_s.append(done - item.captured_at)
                on_update(update, stats)
            if duration_s is not None and item.t_s >= duration_s:
                break
        return stats
