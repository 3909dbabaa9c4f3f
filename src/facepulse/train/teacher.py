"""Teacher labels: training on video without a reference pulse.

With ``data.label_source: teacher`` the training clips are labelled by the fused classic
estimator (:func:`facepulse.pipeline.predict_from_regions`) run on each cached video's
region traces, instead of by the dataset's reference PPG, which is then never read: a
small, fast student model learns from the teacher on unlabelled video.

Per video (computed once per process and cache file, then reused by every dataset and
clip of it):

- ``ppg`` (N,): the teacher's fused pulse on the video's frames (``PredictionResult.bvp``),
  NaN where it has none (long no-face gaps). ``ClipDataset`` never cuts a clip across a
  frame without a label, so those frames are dropped with every clip that would hold them.
- ``confidence`` (N,): the fused estimator's window confidence, linearly interpolated
  between window centres (held at the ends) onto the frame times; NaN confidences
  count as 0. With ``min_confidence > 0`` frames below it lose their label too (so clips
  over them are dropped).

The clip's HR label is the spectral peak of the clip's teacher pulse, exactly as the
reference PPG's would be (``ClipDataset`` with ``hr_from="ppg"``). A video too short for
one of the teacher's analysis windows (10 s) or without a face long enough gets no
labels (no clips), not an error; a cache without region traces is an InputError.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facepulse.datasets.cache import CachedVideo
from facepulse.errors import InputError, SignalTooShortError

__all__ = ["TeacherLabels", "TeacherLabeller", "teacher_labels"]

_MAX_CACHED = 256  # videos kept in memory (a few arrays of N floats each)
_CACHE: OrderedDict[tuple[str, int, int], TeacherLabels] = OrderedDict()


@dataclass(frozen=True)
class TeacherLabels:
    """The teacher's labels of one cached video (see the module docstring)."""

    ppg: np.ndarray  # (N,) fused pulse, NaN without a label
    confidence: np.ndarray  # (N,) in [0, 1]
    hr_bpm: float  # the teacher's whole-video HR (NaN when it has none)


def _key(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return str(path.resolve()), int(st.st_mtime_ns), int(st.st_size)


def teacher_labels(video: CachedVideo) -> TeacherLabels:
    """The fused classic estimator's labels of ``video``, computed once per cache file
    (kept in memory, keyed by the file's path, size and modification time)."""
    key = _key(video.path)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    labels = _compute(video)
    _CACHE[key] = labels
    if len(_CACHE) > _MAX_CACHED:
        _CACHE.popitem(last=False)
    return labels


def _compute(video: CachedVideo) -> TeacherLabels:
    from facepulse.pipeline import predict_from_regions

    n = video.n_frames
    regions = video.region_rgb
    if regions is None:
        raise InputError(f"{video.path}: no region traces for teacher labels (cache of an older facepulse; preprocess again)")
    try:
        result = predict_from_regions(
            video.timestamps_s, regions, video.fps, region_names=video.region_names, source=str(video.path)
        )
    except SignalTooShortError:
        return TeacherLabels(np.full(n, np.nan), np.zeros(n), float("nan"))
    ppg = np.asarray(result.bvp, dtype=np.float64).copy()
    ppg[~np.asarray(result.valid, dtype=bool)] = np.nan
    windows = result.windows
    raw = windows.confidence if windows.confidence is not None else np.zeros(len(windows))
    conf_w = np.nan_to_num(np.asarray(raw, dtype=float))
    centres = np.asarray(windows.t_center_s, dtype=float)
    if centres.size:
        confidence = np.interp(np.asarray(video.timestamps_s, dtype=float), centres, conf_w)
    else:
        confidence = np.zeros(n)
    return TeacherLabels(ppg, confidence, float(result.hr_bpm))


@dataclass(frozen=True)
class TeacherLabeller:
    """A ``ClipDataset`` ``label_fn``: the teacher's pulse of a cached video, NaN on
    frames whose teacher confidence is below ``min_confidence`` (0 keeps every frame)."""

    min_confidence: float = 0.0

    def __call__(self, video: CachedVideo) -> np.ndarray:
        labels = teacher_labels(video)
        ppg = labels.ppg.copy()
        if self.min_confidence > 0:
            ppg[labels.confidence < self.min_confidence] = np.nan
        return ppg
