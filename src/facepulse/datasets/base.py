"""The dataset-reader interface every dataset layout implements.

A reader turns a dataset folder in its documented layout into :class:`Record` objects
(one per video) and loads each record's reference physiology. Add a dataset by writing
one :class:`DatasetReader` subclass and decorating it with ``@DATASETS.register(name)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facepulse.errors import InputError
from facepulse.registry import Registry

DATASETS: Registry[type[DatasetReader]] = Registry("dataset")


@dataclass(frozen=True)
class Record:
    """One video of a dataset.

    Attributes
    ----------
    dataset : registry name of the reader that made it.
    video_id : unique within the dataset, stable (used for cache file names).
    subject_id : person recorded; splits never put one subject in two splits.
    video_path : a video file, or a folder of numbered frames.
    fps : nominal frame rate for frame folders (files carry their own), or None.
    tags : session / task / condition labels, e.g. ``{"task": "T1"}``.
    """

    dataset: str
    video_id: str
    subject_id: str
    video_path: Path
    fps: float | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Reference:
    """Reference physiology of one record, each signal on its own time axis.

    ``ppg`` is sampled at ``ppg_t_s`` (seconds from the first video frame); ``hr_bpm`` at
    ``hr_t_s``. Either may be None when the dataset lacks it. ``frame_t_s`` holds the
    dataset's own per-frame timestamps when it has them (PURE, VIPL-HR), else None.
    ``ppg_source`` / ``hr_source`` say where the signals come from (e.g. ``"finger
    oximeter"``, ``"ecg r-peaks"``), because datasets differ and evaluations must say so.
    ``extra`` holds other named signals as ``(values, t_s)`` pairs (``"ecg"``, ``"resp"``...).

    ``per_frame`` is True when the dataset documents ``ppg`` (and ``hr_bpm``) as one sample
    per video frame (UBFC-rPPG DATASET_2): sample i then belongs to decoded frame i,
    whatever the logged timestamps say, and :meth:`ppg_on_frames` aligns by index.
    """

    ppg: np.ndarray | None = None
    ppg_t_s: np.ndarray | None = None
    hr_bpm: np.ndarray | None = None
    hr_t_s: np.ndarray | None = None
    frame_t_s: np.ndarray | None = None
    ppg_source: str = ""
    hr_source: str = ""
    extra: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    per_frame: bool = False
    source: str = ""  # the file the reference was read from (named in error messages)

    def ppg_on(self, timestamps_s: np.ndarray) -> np.ndarray | None:
        """The reference PPG linearly resampled onto ``timestamps_s`` (seconds)."""
        if self.ppg is None or self.ppg_t_s is None:
            return None
        return np.interp(timestamps_s, self.ppg_t_s, self.ppg)

    def hr_on(self, timestamps_s: np.ndarray) -> np.ndarray | None:
        """The reference HR (bpm) resampled onto ``timestamps_s``."""
        if self.hr_bpm is None or self.hr_t_s is None:
            return None
        return np.interp(timestamps_s, self.hr_t_s, self.hr_bpm)

    def ppg_on_frames(self, frame_timestamps_s: np.ndarray) -> np.ndarray | None:
        """The reference PPG on a video's frames: (N,) float64, NaN where it has no value.

        With ``per_frame`` sample i goes to frame i (frames past the last sample get NaN;
        InputError naming ``source`` when fewer than 90% of the frames get a sample);
        otherwise the PPG is interpolated at ``frame_timestamps_s`` (seconds from the first
        frame), NaN outside the span it covers.
        """
        return _on_frames(self.ppg, self.ppg_t_s, frame_timestamps_s, self.per_frame, self.source, "PPG")

    def hr_on_frames(self, frame_timestamps_s: np.ndarray) -> np.ndarray | None:
        """The reference HR (bpm) on a video's frames, aligned like :meth:`ppg_on_frames`."""
        return _on_frames(self.hr_bpm, self.hr_t_s, frame_timestamps_s, self.per_frame, self.source, "HR")


# A per-frame reference (sample i = frame i) that covers less of the video than this is
# the wrong file or a cut one, not a few frames of slack at the end: say so instead of
# measuring the little it covers. (Timed references keep NaN outside their span.)
MIN_COVERAGE_PER_FRAME = 0.9


def _on_frames(
    values: np.ndarray | None,
    t_s: np.ndarray | None,
    frame_t_s: np.ndarray,
    per_frame: bool,
    source: str = "",
    what: str = "PPG",
) -> np.ndarray | None:
    if values is None or (t_s is None and not per_frame):
        return None
    frame_t_s = np.asarray(frame_t_s, dtype=np.float64)
    out = np.full(frame_t_s.shape, np.nan)
    where = source or "reference"
    if per_frame:  # sample i belongs to frame i: no time axis needed
        m = min(out.size, values.size)
        out[:m] = values[:m]
        if out.size and m < MIN_COVERAGE_PER_FRAME * out.size:
            raise InputError(
                f"{where}: {what} has {values.size} samples (one per frame), but the video has "
                f"{out.size} frames: the reference is shorter than the video"
            )
        return out
    # Half a reference sample of slack at either end; beyond that there is no value.
    slack = 0.5 * float(np.median(np.diff(t_s))) if t_s.size > 1 else 0.0
    inside = (frame_t_s >= t_s[0] - slack) & (frame_t_s <= t_s[-1] + slack)
    out[inside] = np.interp(frame_t_s[inside], t_s, values)
    return out


class DatasetReader(ABC):
    """Reads one dataset layout rooted at ``root``."""

    name: str = ""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: dataset folder not found")

    @abstractmethod
    def records(self) -> list[Record]:
        """All videos of the dataset, sorted by ``video_id``."""

    @abstractmethod
    def load_reference(self, record: Record) -> Reference:
        """The record's reference signals; raises InputError naming a bad file."""

    def open_video(self, record: Record):
        """A streaming :class:`facepulse.io.video.FrameSource` for the record."""
        from facepulse.io.video import open_video

        return open_video(record.video_path, fps=record.fps)
