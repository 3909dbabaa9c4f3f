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
rerun skips finished videos and deletes the temporaries of dead runs. Videos run in
parallel worker processes, each streaming frames (bounded memory).

>>> from facepulse.datasets import get_reader
>>> from facepulse.datasets.cache import PreprocessConfig, open_cached, preprocess_dataset
>>> summary = preprocess_dataset(get_reader("ubfc-rppg", "data/UBFC"), ".cache", PreprocessConfig(size=72), workers=2)  # doctest: +SKIP
>>> video = open_cached(summary.paths["subject1"])            # doctest: +SKIP
>>> video.rgb.shape, video.clips(0, 128).shape                 # doctest: +SKIP
((1547, 3), (128, 72, 72, 3))
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from facepulse.datasets.base import DatasetReader, Record, Reference
from facepulse.errors import ConfigError, FacepulseError, InputError

__all__ = [
    "CachedVideo",
    "PreprocessConfig",
    "PreprocessSummary",
    "cache_path",
    "cache_root",
    "open_cached",
    "preprocess_dataset",
    "preprocess_record",
]

FORMAT = "facepulse-cache"
FORMAT_VERSION = 1
_SUFFIX = ".h5"
_TMP_SUFFIX = ".tmp"
# Settings that only change how bytes are stored, not what is stored: not hashed.
_STORAGE_FIELDS = ("compression", "compression_level", "chunk_s")


class PreprocessConfig(BaseModel):
    """What the preprocessing stage computes and how it stores it.

    Content settings (hashed into the cache folder name):

    size : face crops are ``size x size`` pixels (uint8 RGB).
    clips : store face crops; False keeps only traces, boxes and references.
    box_scale : side of the square crop box, as a multiple of the larger side of the
        tracked face box (1.5 takes in the whole head and a margin).
    box_smooth_s : the crop box is the mean of the square boxes over a centred window of
        this many seconds, so crops do not jitter with the tracker (0 = no smoothing).
    detector : face detector name (``"auto"`` is resolved before hashing).
    max_gap_s, roi : as in :func:`facepulse.roi.trace.extract_trace`.

    Storage settings (not hashed): ``compression`` (``"gzip"``, ``"lzf"`` or ``"none"``),
    ``compression_level`` (gzip 1-9), ``chunk_s`` (seconds of frames per HDF5 chunk).
    The default, gzip level 4, stores UBFC face crops in a third of their raw size
    (levels 1-3 about 0.40, lzf 0.90: docs/benchmarks.md) at a small fraction of the
    per-frame cost of decoding.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(72, ge=8, le=1024)
    clips: bool = True
    box_scale: float = Field(1.5, gt=0, le=10)
    box_smooth_s: float = Field(0.5, ge=0, le=10)
    detector: str = "auto"
    max_gap_s: float = Field(1.0, ge=0)
    roi: str = "skin"
    compression: Literal["gzip", "lzf", "none"] = "gzip"
    compression_level: int = Field(4, ge=1, le=9)
    chunk_s: float = Field(1.0, gt=0, le=60)

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, value: str) -> str:
        from facepulse.face.detectors import DETECTORS

        if value != "auto" and value not in DETECTORS:
            raise ValueError(f"unknown face detector {value!r}; available: auto, {', '.join(DETECTORS.names())}")
        return value

    @field_validator("roi")
    @classmethod
    def _known_roi(cls, value: str) -> str:
        from facepulse.roi.skin import ROIS

        if value not in ROIS:
            raise ValueError(f"unknown ROI {value!r}; available: {', '.join(ROIS.names())}")
        return value

    @classmethod
    def create(cls, **fields: Any) -> PreprocessConfig:
        """Like the constructor, but a bad value raises ConfigError naming the field."""
        try:
            return cls(**fields)
        except ValidationError as err:
            first = err.errors()[0]
            name = ".".join(str(x) for x in first["loc"]) or "config"
            raise ConfigError(f"preprocess config: field {name!r}: {first['msg']}") from None

    def resolved(self) -> PreprocessConfig:
        """The same config with ``detector="auto"`` replaced by the detector it picks."""
        if self.detector != "auto":
            return self
        import importlib.util

        # make_detector("auto") picks MediaPipe when it is installed, else Haar.
        name = "mediapipe" if importlib.util.find_spec("mediapipe") is not None else "haar"
        return self.model_copy(update={"detector": name})

    def content(self) -> dict[str, Any]:
        """The hashed settings (resolved), plus the file-format version."""
        data = self.resolved().model_dump(exclude=set(_STORAGE_FIELDS))
        data["format_version"] = FORMAT_VERSION
        return data

    def hash(self) -> str:
        """12 hex digits identifying :meth:`content`."""
        text = json.dumps(self.content(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_root(cache_dir: str | Path, dataset: str, config: PreprocessConfig) -> Path:
    """``<cache_dir>/<dataset>/<config_hash>``: the folder of one dataset and config."""
    return Path(cache_dir) / dataset / config.hash()


def _file_stem(video_id: str) -> str:
    # Video ids are flat names; guard against separators all the same.
    return video_id.replace("/", "~").replace("\\", "~")


def cache_path(cache_dir: str | Path, dataset: str, video_id: str, config: PreprocessConfig) -> Path:
    """Where the cache file of one video lives."""
    return cache_root(cache_dir, dataset, config) / f"{_file_stem(video_id)}{_SUFFIX}"


# ------------------------------------------------------------------------ face crops


class _ClipCropper:
    """Square face crops of a box smoothed over a centred window, emitted in frame order.

    Frame i is cropped once the boxes of frames ``i + 1 .. i + half_window`` are known,
    so at most ``half_window`` decoded frames are held (bounded memory). Frames whose
    window holds no face box reuse the last smoothed box; before the first face there
    is none, and the crop is black with ``ok=False``.
    """

    def __init__(self, size: int, box_scale: float, half_window: int) -> None:
        self.size = size
        self.box_scale = box_scale
        self.k = max(0, int(half_window))
        self.squares: list[tuple[float, float, float]] = []  # (cx, cy, side) per frame, NaN without face
        self.held: deque[np.ndarray] = deque()
        self.next_index = 0
        self.last: np.ndarray | None = None

    def push(self, frame: np.ndarray, box_xyxy: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray, bool]]:
        if box_xyxy is None:
            self.squares.append((np.nan, np.nan, np.nan))
        else:
            x0, y0, x1, y1 = (float(v) for v in box_xyxy)
            side = self.box_scale * max(x1 - x0, y1 - y0)
            self.squares.append((0.5 * (x0 + x1), 0.5 * (y0 + y1), side))
        # The frame buffer may be reused by the decoder once we return: keep a copy.
        self.held.append(frame.copy() if self.k else frame)
        out = []
        while len(self.held) > self.k:
            out.append(self._emit())
        return out

    def finish(self) -> list[tuple[np.ndarray, np.ndarray, bool]]:
        return [self._emit() for _ in range(len(self.held))]

    def _emit(self) -> tuple[np.ndarray, np.ndarray, bool]:
        frame = self.held.popleft()
        i = self.next_index
        self.next_index += 1
        window = np.asarray(self.squares[max(0, i - self.k) : i + self.k + 1], dtype=np.float64)
        known = np.isfinite(window[:, 2])
        if known.any():
            self.last = window[known].mean(axis=0)
        if self.last is None:
            return np.zeros((self.size, self.size, 3), np.uint8), np.full(4, np.nan), False
        crop, box = _crop_square(frame, *self.last, self.size)
        return crop, box, True


def _crop_square(frame: np.ndarray, cx: float, cy: float, side: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The square of ``side`` px centred on (cx, cy), black outside the frame, resized to size."""
    import cv2

    s = max(1, int(round(side)))
    x0 = int(round(cx - 0.5 * s))
    y0 = int(round(cy - 0.5 * s))
    x1, y1 = x0 + s, y0 + s
    h, w = frame.shape[:2]
    sub = frame[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    if sub.size == 0:
        out = np.zeros((size, size, 3), np.uint8)
    else:
        if sub.shape[:2] != (s, s):
            sub = cv2.copyMakeBorder(
                sub, max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w), cv2.BORDER_CONSTANT, value=0
            )
        # Shrinking averages each output pixel's footprint (it also averages camera noise,
        # like the ROI mean): a box filter of that size, then bilinear sampling, matches
        # INTER_AREA within 0.1 levels at a third of its cost on 640x480 video.
        k = int(round(s / size))
        if k > 1:
            sub = cv2.blur(sub, (k, k))
        out = cv2.resize(sub, (size, size), interpolation=cv2.INTER_LINEAR)
    return out, np.array([x0, y0, x1, y1], dtype=np.float64)


# ---------------------------------------------------------------------- HDF5 writer


def _compression(config: PreprocessConfig) -> dict[str, Any]:
    if config.compression == "gzip":
        return {"compression": "gzip", "compression_opts": config.compression_level}
    if config.compression == "lzf":
        return {"compression": "lzf"}
    return {}


class _CacheWriter:
    """Streams face crops into a chunked, compressed HDF5 dataset, one chunk at a time."""

    def __init__(self, path: Path, config: PreprocessConfig, fps: float) -> None:
        self.path = path
        self.config = config
        self.comp = _compression(config)
        self.file = h5py.File(path, "w")
        self.chunk = max(1, int(round(config.chunk_s * fps)))
        self.n = 0
        self.boxes: list[np.ndarray] = []
        self.ok: list[bool] = []
        self.clips = None
        if config.clips:
            s = config.size
            self.buffer = np.empty((self.chunk, s, s, 3), np.uint8)
            self.n_buffered = 0
            self.clips = self.file.create_dataset(
                "clips", shape=(0, s, s, 3), maxshape=(None, s, s, 3), dtype=np.uint8,
                chunks=(self.chunk, s, s, 3), **self.comp,
            )

    def add(self, crop: np.ndarray, box: np.ndarray, ok: bool) -> None:
        self.buffer[self.n_buffered] = crop
        self.n_buffered += 1
        self.boxes.append(box)
        self.ok.append(ok)
        if self.n_buffered == self.chunk:
            self._flush()

    def _flush(self) -> None:
        if self.clips is None or self.n_buffered == 0:
            return
        # Whole-chunk writes: each chunk is compressed once, never read back.
        self.clips.resize(self.n + self.n_buffered, axis=0)
        self.clips[self.n : self.n + self.n_buffered] = self.buffer[: self.n_buffered]
        self.n += self.n_buffered
        self.n_buffered = 0

    def array(self, name: str, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values)
        kw = dict(self.comp) if values.size > 256 else {}
        if kw and values.dtype.kind == "f":
            kw["shuffle"] = True  # byte-shuffling makes float arrays compress far better
        self.file.create_dataset(name, data=values, **kw)

    def finish(self, n_frames: int, arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
        self._flush()
        if self.clips is not None:
            if self.n != n_frames:
                raise RuntimeError(f"{self.path}: {self.n} crops for {n_frames} frames")
            self.array("clip_boxes", np.asarray(self.boxes, np.float64).reshape(n_frames, 4))
            self.array("clip_valid", np.asarray(self.ok, bool))
        for name, values in arrays.items():
            self.array(name, values)
        for key, value in attrs.items():
            self.file.attrs[key] = value
        self.file.flush()
        self.file.close()
        # Data on disk before the rename makes it visible: a crash never shows a torn file.
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def abort(self) -> None:
        try:
            self.file.close()
        except Exception:  # noqa: BLE001  (closing a half-written file while unwinding)
            pass


# -------------------------------------------------------------------- one video


class _Stopped(Exception):
    """Raised inside a worker when the run is being interrupted."""


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
    from facepulse import __version__
    from facepulse.face.detectors import make_detector
    from facepulse.face.tracker import FaceTracker
    from facepulse.roi.trace import extract_trace

    config = (config or PreprocessConfig()).resolved()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP_SUFFIX}")
    reference = reader.load_reference(record)  # a broken reference fails before decoding
    source = reader.open_video(record)
    fps = float(source.info.fps)
    writer: _CacheWriter | None = None
    half = int(round(0.5 * config.box_smooth_s * fps))
    cropper = _ClipCropper(config.size, config.box_scale, half) if config.clips else None
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
                raise _Stopped(record.video_id)

    try:
        writer = _CacheWriter(tmp, config, fps)
        # The same tracker and trace settings as facepulse.predict, so the cached trace
        # gives exactly the figures of the predict path.
        tracker = FaceTracker(make_detector(config.detector))
        trace = extract_trace(source, tracker, max_gap_s=config.max_gap_s, roi=config.roi, on_frame=on_frame)
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


# -------------------------------------------------------------------- the dataset


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
    """

    root: Path
    paths: dict[str, Path] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    elapsed_s: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    def failure_lines(self) -> list[str]:
        """One line per failed video: ``<video_id>: <error>``."""
        return [f"{vid}: {msg}" for vid, msg in self.failed.items()]


@dataclass
class _Task:
    reader: DatasetReader
    record: Record
    path: Path
    config: PreprocessConfig


@dataclass
class _Outcome:
    video_id: str
    frames: int = 0
    error: str | None = None
    peak_rss_mb: float = 0.0


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (MiB).

    Linux's VmHWM restarts at exec, whereas ``ru_maxrss`` of a spawned worker keeps the
    size of the parent it was forked from; elsewhere ru_maxrss is all there is.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _error_line(err: BaseException) -> str:
    if isinstance(err, FacepulseError):
        text = str(err)
    else:  # not a user error: keep the type, it points at the bug
        text = f"{type(err).__name__}: {err}"
    return text.splitlines()[0] if text else type(err).__name__


def _run_task(task: _Task, on_frames=None, should_stop=None) -> _Outcome:
    try:
        frames = preprocess_record(
            task.reader, task.record, task.path, task.config, on_frames=on_frames, should_stop=should_stop
        )
    except (_Stopped, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001  (one bad video must not stop the others)
        return _Outcome(task.record.video_id, error=_error_line(err), peak_rss_mb=_peak_rss_mb())
    return _Outcome(task.record.video_id, frames=frames, peak_rss_mb=_peak_rss_mb())


# Worker-process state, set by _init_worker.
_WORKER: dict[str, Any] = {}


def _init_worker(stop_event, progress_queue, parent_pid: int) -> None:
    # Ctrl-C reaches the whole process group: the parent alone decides to stop (via
    # stop_event), so workers can delete their temporary files in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(1)
    _WORKER.update(stop=stop_event, queue=progress_queue, parent=parent_pid)


def _worker_should_stop() -> bool:
    # An orphaned worker (parent killed) stops too, rather than finishing unseen.
    return _WORKER["stop"].is_set() or os.getppid() != _WORKER["parent"]


def _worker_task(task: _Task) -> _Outcome:
    queue = _WORKER["queue"]
    return _run_task(task, on_frames=queue.put, should_stop=_worker_should_stop)


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Children spawned inside inherit one-thread BLAS/OpenMP settings (workers share the CPU)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({n: "1" for n in names})
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


class _Bar:
    """A rich progress bar over videos, showing decoded frames and frames/s."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.frames = 0
        self.t0 = time.monotonic()
        self.bar = None
        if not enabled or total == 0:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("videos  {task.fields[frames]} frames  {task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.bar.start()
        self.task = self.bar.add_task(label, total=total, frames=0, rate="")

    def add_frames(self, n: int) -> None:
        self.frames += n
        if self.bar is not None:
            rate = self.frames / max(1e-9, time.monotonic() - self.t0)
            self.bar.update(self.task, frames=self.frames, rate=f"{rate:.0f} frames/s")

    def video_done(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _remove_stale_temps(root: Path) -> None:
    """Delete temporary files left by runs whose process is gone (e.g. killed)."""
    for tmp in root.glob(f".*{_TMP_SUFFIX}"):
        try:
            pid = int(tmp.name[: -len(_TMP_SUFFIX)].rsplit(".", 1)[1])
        except (IndexError, ValueError):
            continue
        if not _pid_alive(pid):
            tmp.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    # A killed worker whose parent died too can stay a zombie (PID 1 of a container may
    # never reap it): it answers signals but will never finish its file.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _write_config_file(root: Path, config: PreprocessConfig) -> None:
    target = root / "config.json"
    if target.is_file():
        return
    text = json.dumps({"config": config.model_dump(), "content": config.content()}, indent=2, sort_keys=True)
    tmp = root / f".config.json.{os.getpid()}{_TMP_SUFFIX}"
    tmp.write_text(text + "\n")
    os.replace(tmp, target)


def preprocess_dataset(
    reader: DatasetReader,
    cache_dir: str | Path,
    config: PreprocessConfig | None = None,
    workers: int = 1,
    progress: bool = True,
    *,
    records: Sequence[Record] | None = None,
) -> PreprocessSummary:
    """Run the face/ROI stage once per video of ``reader`` and cache the results.

    Parameters
    ----------
    reader : a dataset reader (``facepulse.datasets.get_reader(name, root)``).
    cache_dir : cache folder; files go to ``<cache_dir>/<dataset>/<config_hash>/``.
    config : what to compute and store (default :class:`PreprocessConfig()`).
    workers : worker processes; 1 runs in this process. Each worker holds one video's
        decoder, tracker and a few frames, whatever the video's length.
    progress : show a progress bar on stderr.
    records : a subset of ``reader.records()`` (default: all of them).

    Returns
    -------
    PreprocessSummary. Failed videos are listed in ``summary.failed`` (one line each);
    the others are processed regardless. Finished files are skipped, so a rerun after an
    interruption resumes where it stopped.

    Raises
    ------
    KeyboardInterrupt : after the workers stopped and removed their temporary files.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
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
    _write_config_file(root, config)
    _remove_stale_temps(root)

    summary = PreprocessSummary(root=root)
    tasks = []
    for rec in records:
        path = root / f"{_file_stem(rec.video_id)}{_SUFFIX}"
        if path.is_file():
            summary.skipped.append(rec.video_id)
            summary.paths[rec.video_id] = path
        else:
            tasks.append(_Task(reader, rec, path, config))

    t0 = time.monotonic()
    bar = _Bar(progress, len(tasks), f"preprocess {dataset}")
    try:
        outcomes = _run_all(tasks, workers, bar)
    finally:
        bar.close()
    summary.elapsed_s = time.monotonic() - t0
    paths = {t.record.video_id: t.path for t in tasks}
    for out in outcomes:
        summary.peak_rss_mb = max(summary.peak_rss_mb, out.peak_rss_mb)
        if out.error is not None:
            summary.failed[out.video_id] = out.error
        else:
            summary.written.append(out.video_id)
            summary.paths[out.video_id] = paths[out.video_id]
            summary.frames += out.frames
    order = {rec.video_id: i for i, rec in enumerate(records)}
    summary.written.sort(key=order.__getitem__)
    summary.failed = dict(sorted(summary.failed.items(), key=lambda kv: order[kv[0]]))
    summary.paths = dict(sorted(summary.paths.items(), key=lambda kv: order[kv[0]]))
    return summary


def _run_all(tasks: list[_Task], workers: int, bar: _Bar) -> list[_Outcome]:
    if not tasks:
        return []
    if workers == 1 or len(tasks) == 1:
        outcomes = []
        for task in tasks:
            outcomes.append(_run_task(task, on_frames=bar.add_frames))
            bar.video_done()
        return outcomes

    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads / HDF5 handles
    stop = ctx.Event()
    queue = ctx.Queue()
    outcomes: list[_Outcome] = []
    with _single_threaded_children():
        pool = ProcessPoolExecutor(
            max_workers=min(workers, len(tasks)), mp_context=ctx,
            initializer=_init_worker, initargs=(stop, queue, os.getpid()),
        )
        futures: dict[Future, _Task] = {}
        try:
            futures = {pool.submit(_worker_task, task): task for task in tasks}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(queue, bar)
                for fut in done:
                    outcomes.append(_collect(fut, futures[fut]))
                    bar.video_done()
            _drain(queue, bar)
        except BaseException:
            stop.set()  # workers abandon their video at the next frame and delete its temp file
            for fut in futures:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    queue.close()
    return outcomes


def _collect(fut: Future, task: _Task) -> _Outcome:
    try:
        return fut.result()
    except BrokenProcessPool:
        return _Outcome(task.record.video_id, error="the worker process died (killed, or out of memory)")
    except Exception as err:  # noqa: BLE001  (e.g. the task could not be pickled)
        return _Outcome(task.record.video_id, error=_error_line(err))


def _drain(queue, bar: _Bar) -> None:
    import queue as queue_module

    while True:
        try:
            bar.add_frames(queue.get_nowait())
        except queue_module.Empty:
            return
        except (OSError, ValueError):  # queue closed
            return


# ---------------------------------------------------------------------- reading


class CachedVideo:
    """One cache file, read lazily: each array is loaded on first access, crops on demand.

    Attributes (from the file's attributes): ``path``, ``dataset``, ``video_id``,
    ``subject_id``, ``tags`` (dict), ``fps`` (nominal frames/s), ``n_frames``,
    ``config`` (dict), ``config_hash``, ``source_path``, ``frames_without_face``,
    ``reference_alignment``, ``ppg_source``, ``hr_source``.

    Arrays (N = ``n_frames``): ``timestamps_s`` (N,) s, ``rgb`` (N, 3) 0-255, ``valid``
    (N,) bool, ``boxes`` (N, 4) px, ``ppg`` (N,) or None, ``hr_bpm`` (N,) bpm or None,
    ``clip_valid`` (N,) bool. Face crops: :meth:`clips` (only the frames asked for are
    read and decompressed).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: cache file not found")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError:
            raise InputError(f"{self.path}: not a readable HDF5 file") from None
        attrs = self._file.attrs
        if attrs.get("format") != FORMAT:
            self._file.close()
            raise InputError(f"{self.path}: not a facepulse cache file (attribute 'format' missing)")
        if int(attrs.get("format_version", -1)) != FORMAT_VERSION:
            version = attrs.get("format_version")
            self._file.close()
            raise InputError(
                f"{self.path}: cache format version {version} (this facepulse reads {FORMAT_VERSION}); preprocess again"
            )
        for name in ("timestamps_s", "rgb", "valid"):
            if name not in self._file:
                self._file.close()
                raise InputError(f"{self.path}: dataset {name!r} missing")
        self.dataset = str(attrs["dataset"])
        self.video_id = str(attrs["video_id"])
        self.subject_id = str(attrs["subject_id"])
        self.tags: dict[str, str] = json.loads(attrs["tags"])
        self.fps = float(attrs["fps"])
        self.n_frames = int(attrs["n_frames"])
        self.config: dict[str, Any] = json.loads(attrs["config"])
        self.config_hash = str(attrs["config_hash"])
        self.source_path = str(attrs["source_path"])
        self.frames_without_face = int(attrs["frames_without_face"])
        self.reference_alignment = str(attrs.get("reference_alignment", ""))
        self.ppg_source = str(attrs.get("ppg_source", ""))
        self.hr_source = str(attrs.get("hr_source", ""))

    def _read(self, name: str) -> np.ndarray | None:
        return self._file[name][()] if name in self._file else None

    @cached_property
    def timestamps_s(self) -> np.ndarray:
        return self._read("timestamps_s")

    @cached_property
    def rgb(self) -> np.ndarray:
        return self._read("rgb")

    @cached_property
    def valid(self) -> np.ndarray:
        return self._read("valid").astype(bool)

    @cached_property
    def boxes(self) -> np.ndarray | None:
        return self._read("boxes")

    @cached_property
    def ppg(self) -> np.ndarray | None:
        return self._read("ppg")

    @cached_property
    def hr_bpm(self) -> np.ndarray | None:
        return self._read("hr_bpm")

    @property
    def has_clips(self) -> bool:
        return "clips" in self._file

    @property
    def clip_size(self) -> int:
        """Side of the face crops in pixels (0 without crops)."""
        return int(self._file["clips"].shape[1]) if self.has_clips else 0

    @cached_property
    def clip_valid(self) -> np.ndarray:
        """(N,) True where the crop was cut around a known face box."""
        v = self._read("clip_valid")
        return v.astype(bool) if v is not None else np.zeros(self.n_frames, bool)

    def clips(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Face crops of frames ``start:stop``: (n, S, S, 3) uint8 RGB."""
        if not self.has_clips:
            raise InputError(f"{self.path}: no face clips (preprocessed with clips=False)")
        stop = self.n_frames if stop is None else stop
        if not 0 <= start <= stop <= self.n_frames:
            raise InputError(f"{self.path}: frames {start}:{stop} outside 0:{self.n_frames}")
        return self._file["clips"][start:stop]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CachedVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CachedVideo({self.video_id!r}, {self.n_frames} frames, {self.path})"


def open_cached(path: str | Path) -> CachedVideo:
    """Open one cache file (lazy: nothing but its attributes is read yet)."""
    return CachedVideo(path)


def cached_files(root: str | Path) -> list[Path]:
    """The finished cache files in a folder (``<cache_dir>/<dataset>/<hash>``), sorted."""
    from facepulse.datasets._common import natural_key

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: cache folder not found")
    return sorted((p for p in root.glob(f"*{_SUFFIX}") if not p.name.startswith(".")), key=lambda p: natural_key(p.stem))
