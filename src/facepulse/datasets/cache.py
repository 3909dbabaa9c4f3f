"""Preprocessing cache: the face/ROI stage run once per video, stored as compressed HDF5.

``facepulse preprocess`` (or :func:`preprocess_dataset`) decodes each video of a dataset
once, tracks the face, and writes one HDF5 file per video with everything the classic
methods and the deep models need::

    <cache_dir>/<dataset>/<config_hash>/<video_id>.h5
        timestamps_s (N,) f8   frame times (s) read from the video
        rgb          (N, 3) f8 mean skin colour (the trace of facepulse.roi.trace)
        valid        (N,) bool trace value measured or gap-interpolated
        interpolated (N,) bool
        boxes        (N, 4) f8 tracked face box [x0, y0, x1, y1] (px), NaN without face
        clips        (N, S, S, 3) u8 RGB face crops (when config.clips), chunks of ~1 s
        clip_boxes   (N, 4) f8 the smoothed square each crop was cut from (px)
        clip_valid   (N,) bool a face box was known for the crop
        ppg          (N,) f8 reference PPG on the frames (NaN where it has no value)
        hr_bpm       (N,) f8 reference HR on the frames (when the dataset has one)
        attrs: format, format_version, dataset, video_id, subject_id, tags (JSON), fps,
               n_frames, config (JSON), config_hash, reference_alignment, ...

``config_hash`` is a short hash of every setting that changes the content (crop size,
detector, ROI...), so two configurations never share a folder. Files are written under a
temporary name and renamed when complete: a killed run leaves no half file behind, and a
rerun skips finished videos and deletes the temporaries of dead runs. Videos run as one
job each on an executor (this process, local worker processes, or a Ray cluster:
:mod:`facepulse.executors`), each streaming frames (bounded memory).

The stage is split by responsibility; this module gathers their public names:

- :mod:`facepulse.datasets.cache_config`: :class:`PreprocessConfig`, the folder layout;
- :mod:`facepulse.roi.crops`: the face crops (a stage of its own, shared with ``predict``);
- :mod:`facepulse.datasets.cache_writer`: atomic, compressed HDF5 writing;
- :mod:`facepulse.datasets.preprocess`: one video, and a dataset as jobs on an executor;
- :mod:`facepulse.datasets.cache_reader`: :class:`CachedVideo`, reading.

>>> from facepulse.datasets import get_reader
>>> from facepulse.datasets.cache import PreprocessConfig, open_cached, preprocess_dataset
>>> summary = preprocess_dataset(get_reader("ubfc-rppg", "data/UBFC"), ".cache", PreprocessConfig(size=72), workers=2)  # doctest: +SKIP
>>> video = open_cached(summary.paths["subject1"])            # doctest: +SKIP
>>> video.rgb.shape, video.clips(0, 128).shape                 # doctest: +SKIP
((1547, 3), (128, 72, 72, 3))
"""

from __future__ import annotations

from facepulse.datasets.cache_config import (
    FORMAT,
    FORMAT_VERSION,
    PreprocessConfig,
    cache_path,
    cache_root,
)
from facepulse.datasets.cache_reader import CachedVideo, cached_files, open_cached
from facepulse.datasets.preprocess import (
    PREPROCESS_RESOURCES,
    PreprocessSummary,
    preprocess_dataset,
    preprocess_record,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "PREPROCESS_RESOURCES",
    "CachedVideo",
    "PreprocessConfig",
    "PreprocessSummary",
    "cache_path",
    "cache_root",
    "cached_files",
    "open_cached",
    "preprocess_dataset",
    "preprocess_record",
]
