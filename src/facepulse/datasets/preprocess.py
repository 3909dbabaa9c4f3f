"""The preprocessing stage: one video -> one cache file; a dataset -> one job per video.

:func:`preprocess_record` runs the face/ROI stage on one video and writes its cache file
atomically. :func:`preprocess_dataset` makes one job per video not cached yet and hands
them to an executor (:mod:`facepulse.executors`: this process, a local process pool, or
Ray), which runs them wherever it runs them; the files land in the same layout either
way, byte for byte.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facepulse.datasets.base import DatasetReader, Record, Reference
from facepulse.datasets.cache_config import FORMAT, FORMAT_VERSION, SUFFIX, PreprocessConfig, cache_root, file_stem
from facepulse.datasets.cache_writer import CacheWriter, remove_stale_temps, temp_path, write_config_file
from facepulse.errors import ConfigError, InputError
from facepulse.executors.base import Executor, Job, JobStopped, Resources, RunProgress, TaskContext

__all__ = ["PREPROCESS_RESOURCES", "PreprocessSummary", "preprocess_dataset", "preprocess_record"]

#: What one preprocessing job needs: one core (decoder, tracker and crops run in one
#: thread each, overlapped), and memory for a worker process holding one video's
#: decoder, face model and a second of frames (peak 230-720 MiB per worker process on
#: 640x480 UBFC, Ray worker overhead included: docs/benchmarks.md), with a margin.
PREPROCESS_RESOURCES = Resources(cpus=1.0, memory_mb=1024)


def _reference_arrays(ref: Reference, timestamps_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays: dict[str, np.ndarray] = {}
    ppg = ref.ppg_on_frames(timestamps_s)
    if ppg is not None:
        arrays["ppg"] = ppg
    hr = ref.hr_on_frames(timestamps_s)
    if hr is not None:
        arrays["hr_bpm"] = hr
    attrs = {
        "ppg_source": ref.ppg_source,
        "hr_source": ref.hr_source,
        "reference_alignment": "frame index" if ref.per_frame else "timestamps",
        "reference_samples": int(ref.ppg.size) if ref.ppg is not None else 0,
    }
    return arrays, attrs


def preprocess_record(
    reader: DatasetReader,
    record: Record,
    path: str | Path,
    config: PreprocessConfig | None = None,
    *,
    on_frames: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Preprocess one video into the cache file ``path`` (atomically); returns its frames.

    ``on_frames(n)`` is told about every 16 decoded frames; ``should_stop()`` is polled
    as often, and True abandons the video. The file appears only when complete; on any
    error its temporary file is removed.
    """
    from facepulse.version import __version__
    from facepulse.face.detectors import make_detector
    from facepulse.face.tracker import FaceTracker
    from facepulse.roi.crops import ClipCropper, half_window
    from facepulse.roi.regions import DEFAULT_REGIONS
    from facepulse.roi.trace import extract_trace

    config = (config or PreprocessConfig()).resolved()
    path = Path(path)
    tmp = temp_path(path)
    reference = reader.load_reference(record)  # a broken reference fails before decoding
    source = reader.open_video(record)
    fps = float(source.info.fps)
    writer: CacheWriter | None = None
    half = half_window(config.box_smooth_s, fps)
    cropper = ClipCropper(config.size, config.box_scale, half) if config.clips else None
    counter = [0]

    def on_frame(index: int, t_s: float, frame: np.ndarray, face) -> None:
        if cropper is not None:
            for crop in cropper.push(frame, None if face is None else face.box_xyxy):
                writer.add(*crop)
        counter[0] += 1
        if counter[0] == 16:
            if on_frames is not None:
                on_frames(counter[0])
            counter[0] = 0
            if should_stop is not None and should_stop():
                raise JobStopped(record.video_id)

    try:
        writer = CacheWriter(tmp, config, fps)
        # The same tracker and trace settings as facepulse.predict, so the cached trace
        # gives exactly the figures of the predict path.
        tracker = FaceTracker(make_detector(config.detector))
        trace = extract_trace(
            source, tracker, max_gap_s=config.max_gap_s, roi=config.roi, on_frame=on_frame, regions=DEFAULT_REGIONS
        )
        if cropper is not None:
            for crop in cropper.finish():
                writer.add(*crop)
        ref_arrays, ref_attrs = _reference_arrays(reference, trace.timestamps_s)
        arrays = {
            "timestamps_s": trace.timestamps_s,
            "rgb": trace.rgb,
            "valid": trace.valid,
            "interpolated": trace.interpolated,
            "boxes": trace.boxes,
            "n_skin_px": trace.n_skin_px,
            "region_rgb": trace.region_rgb,
            **ref_arrays,
        }
        info = source.info
        attrs = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "dataset": record.dataset,
            "video_id": record.video_id,
            "subject_id": record.subject_id,
            "tags": json.dumps(record.tags, sort_keys=True),
            "fps": fps,
            "n_frames": trace.n_frames,
            "width": int(info.width),
            "height": int(info.height),
            "source_path": str(record.video_path),
            "config": json.dumps(config.model_dump(), sort_keys=True),
            "config_hash": config.hash(),
            "frames_without_face": int(trace.frames_without_face),
            "n_detections": int(trace.n_detections),
            "region_names": json.dumps(list(trace.region_names)),
            "facepulse_version": __version__,
            **ref_attrs,
        }
        writer.finish(trace.n_frames, arrays, attrs)
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    if on_frames is not None and counter[0]:
        on_frames(counter[0])
    return int(trace.n_frames)


@dataclass
class PreprocessSummary:
    """What :func:`preprocess_dataset` did.

    Attributes
    ----------
    root : the cache folder of this dataset and config.
    paths : video_id -> cache file, for every video that is cached (written or already there).
    written, skipped : video ids processed now / found complete.
    failed : video_id -> one-line error, for videos that could not be preprocessed.
    frames : frames decoded in this run.
    elapsed_s : wall time of the run (s).
    peak_rss_mb : largest peak resident memory of one worker process (MiB).
    executor : where the jobs ran (e.g. ``"local, 2 workers"``).
    video_seconds : video_id -> seconds its job took on its worker (written videos).
    """

    root: Path
    paths: dict[str, Path] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    elapsed_s: float = 0.0
    peak_rss_mb: float = 0.0
    executor: str = "local"
    video_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    def failure_lines(self) -> list[str]:
        """One line per failed video: ``<video_id>: <error>``."""
        return [f"{vid}: {msg}" for vid, msg in self.failed.items()]



def _preprocess_job(reader: DatasetReader, record: Record, path: Path, config: PreprocessConfig, *,
                    ctx: TaskContext) -> int:
    """One video, wherever the executor runs it: the frames decoded (0 if already cached)."""
    remove_stale_temps(path.parent, path.name)  # a killed earlier attempt on this host
    if path.is_file():  # finished meanwhile (a retried task, a concurrent run)
        return 0
    return preprocess_record(reader, record, path, config, on_frames=ctx.frames, should_stop=ctx.should_stop)


def preprocess_dataset(
    reader: DatasetReader,
    cache_dir: str | Path,
    config: PreprocessConfig | None = None,
    workers: int = 1,
    progress: bool = True,
    *,
    records: Sequence[Record] | None = None,
    executor: Executor | None = None,
) -> PreprocessSummary:
    """Run the face/ROI stage once per video of ``reader`` and cache the results.

    Parameters
    ----------
    reader : a dataset reader (``facepulse.datasets.get_reader(name, root)``).
    cache_dir : cache folder; files go to ``<cache_dir>/<dataset>/<config_hash>/``. With
        a cluster executor it must be on a filesystem every node sees at the same path.
    config : what to compute and store (default :class:`PreprocessConfig()`).
    workers : worker processes of the default local executor; 1 runs in this process.
        Each worker holds one video's decoder, tracker and a few frames, whatever the
        video's length.
    progress : show a progress bar on stderr (videos done / failed / left, throughput).
    records : a subset of ``reader.records()`` (default: all of them).
    executor : where the jobs run (:func:`facepulse.executors.make_executor`, e.g. Ray);
        default ``LocalExecutor(workers)``.

    Returns
    -------
    PreprocessSummary. Failed videos are listed in ``summary.failed`` (one line each);
    the others are processed regardless. Finished files are skipped, so a rerun after an
    interruption resumes where it stopped.

    Raises
    ------
    KeyboardInterrupt : after the workers stopped and removed their temporary files.
    """
    from facepulse.executors.local import LocalExecutor

    if executor is None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        executor = LocalExecutor(workers)
    config = (config or PreprocessConfig()).resolved()
    records = list(reader.records() if records is None else records)
    seen: set[str] = set()
    for rec in records:
        if rec.video_id in seen:
            raise InputError(f"{reader.root}: video id {rec.video_id!r} appears twice")
        seen.add(rec.video_id)
    dataset = records[0].dataset if records else reader.name
    root = cache_root(cache_dir, dataset, config)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{root}: cannot create the cache folder ({err.strerror})") from None
    write_config_file(root, config)
    remove_stale_temps(root)

    summary = PreprocessSummary(root=root, executor=executor.describe())
    jobs = []
    paths: dict[str, Path] = {}
    for rec in records:
        path = root / f"{file_stem(rec.video_id)}{SUFFIX}"
        paths[rec.video_id] = path
        if path.is_file():
            summary.skipped.append(rec.video_id)
            summary.paths[rec.video_id] = path
        else:
            jobs.append(Job(rec.video_id, _preprocess_job, (reader, rec, path, config)))

    bar = RunProgress(len(jobs), f"preprocess {dataset}", enabled=progress)
    try:
        results = executor.run(jobs, PREPROCESS_RESOURCES, bar)
    finally:
        bar.close()
    summary.elapsed_s = bar.elapsed_s
    for res in results:
        summary.peak_rss_mb = max(summary.peak_rss_mb, res.peak_rss_mb)
        if res.error is not None:
            summary.failed[res.key] = res.error
        else:
            summary.written.append(res.key)
            summary.paths[res.key] = paths[res.key]
            summary.frames += int(res.value or 0)
            summary.video_seconds[res.key] = res.elapsed_s
    order = {rec.video_id: i for i, rec in enumerate(records)}
    summary.written.sort(key=order.__getitem__)
    summary.failed = dict(sorted(summary.failed.items(), key=lambda kv: order[kv[0]]))
    summary.paths = dict(sorted(summary.paths.items(), key=lambda kv: order[kv[0]]))
    return summary
