"""Shared base for datasets whose video lives inside a MATLAB file (MMPD, SCAMPS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facepulse.datasets._common import finite_1d, mat_shapes, mat_video_frames, mat_video_uint8
from facepulse.datasets.base import DatasetReader, Record
from facepulse.errors import InputError


class MatVideoReader(DatasetReader):
    """A reader whose ``Record.video_path`` is a ``.mat`` holding frames in ``VIDEO_VAR``.

    Listing records reads only variable headers; frames are loaded when a video is opened.
    """

    VIDEO_VAR = "video"
    FPS = 30.0

    def n_frames(self, path: Path) -> int:
        """Frame count of the file's video variable, from its header (no frame data read)."""
        shapes = mat_shapes(path)
        if self.VIDEO_VAR not in shapes:
            raise InputError(f"{path}: variable {self.VIDEO_VAR!r} not found")
        return mat_video_frames(path, shapes[self.VIDEO_VAR], self.VIDEO_VAR)

    def load_frames(self, record: Record) -> np.ndarray:
        """The record's frames as ``(T, H, W, 3)`` uint8 RGB (floats in [0, 1] are scaled)."""
        return mat_video_uint8(record.video_path, self.VIDEO_VAR)

    def open_video(self, record: Record):
        """A :class:`facepulse.io.video.FrameSource` over the frames stored in the .mat."""
        from facepulse.io.video import open_video

        return open_video(self.load_frames(record), fps=record.fps or self.FPS)

    def pulse_times_s(self, path: Path, n_pulse: int) -> np.ndarray:
        """Times (s) of a per-recording pulse vector that spans the whole video.

        These files store the pulse resampled to the video's length, with no time axis: it
        is spread evenly over the video's frames (identical to frame times when the lengths
        match, which is the documented case).
        """
        n = self.n_frames(path)
        return np.arange(n_pulse, dtype=np.float64) * (n / n_pulse) / self.FPS

    @staticmethod
    def pulse_vector(values: object, path: Path, name: str) -> np.ndarray:
        """A stored pulse variable ((1, N), (N, 1) or (N,)) as a 1-D float array."""
        arr = np.asarray(values)
        if arr.ndim > 2 or (arr.ndim == 2 and min(arr.shape) != 1):
            raise InputError(f"{path}: variable {name!r} has shape {arr.shape}; expected a vector")
        return finite_1d(arr, path, name)
