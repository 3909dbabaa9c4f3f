"""Video input: one streaming interface over video files, image folders and arrays.

:func:`open_video` returns a :class:`FrameSource`; iterating it yields
``(timestamp_s, frame_rgb)`` pairs, one frame at a time, so memory stays bounded whatever
the video's length. Timestamps are read from the container (variable frame rate is
handled), not assumed from a nominal rate.
"""

from __future__ import annotations

import queue
import re
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from facepulse.errors import ConfigError, InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")

__all__ = [
    "ArraySource",
    "FrameSource",
    "ImageFolderSource",
    "VideoFileSource",
    "VideoInfo",
    "open_video",
]


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video before decoding it.

    Attributes
    ----------
    path : file or folder, or None for an in-memory array.
    fps : nominal (average) frame rate, frames per second.
    n_frames : frame count when the container declares it, else None.
    width, height : frame size in pixels.
    duration_s : duration in seconds when known, else None.
    """

    path: str | None
    fps: float
    n_frames: int | None
    width: int
    height: int
    duration_s: float | None


class FrameSource(ABC):
    """A re-iterable stream of ``(timestamp_s, frame_rgb)`` pairs.

    ``timestamp_s`` is a float in seconds from the first frame; ``frame_rgb`` is a
    ``(height, width, 3)`` uint8 RGB array. Each ``iter()`` starts a fresh pass.
    """

    info: VideoInfo

    @abstractmethod
    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]: ...

    @property
    def name(self) -> str:
        """A label for messages: the path, or ``<array>``."""
        return self.info.path if self.info.path is not None else "<array>"


# --------------------------------------------------------------------------- files


def _stream_fps(stream, container) -> float | None:
    # Raw elementary streams (.h264) carry no durations, and FFmpeg then reports a
    # made-up average rate of 25; the codec-derived guess is the honest one there.
    has_timing = stream.duration is not None or container.duration is not None
    candidates = (
        (stream.average_rate, stream.guessed_rate)
        if has_timing
        else (stream.guessed_rate, stream.average_rate)
    )
    for rate in (*candidates, stream.base_rate):
        if rate is not None and float(rate) > 0:
            return float(rate)
    return None


class VideoFileSource(FrameSource):
    """Frames of a video file decoded by FFmpeg (PyAV), streamed one at a time.

    Parameters
    ----------
    path : any container/codec FFmpeg reads.
    fps : overrides the nominal rate in :attr:`info` (timestamps still come from the
        container's presentation timestamps); needed only when the file declares none.
    background : decode in a helper thread, so decoding (which FFmpeg does without
        holding the GIL) overlaps with the caller's per-frame work.
    queue_frames : decoded frames the helper thread may hold ahead (bounds memory).
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | None = None,
        *,
        background: bool = True,
        queue_frames: int = 8,
    ) -> None:
        import av

        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: video file not found")
        if not self.path.is_file():
            raise InputError(f"{self.path}: not a file")
        self.background = background
        self.queue_frames = max(1, int(queue_frames))
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise InputError(f"{self.path}: no video stream in the file")
                stream = container.streams.video[0]
                nominal = _stream_fps(stream, container)
                width, height = int(stream.width), int(stream.height)
                n_frames = int(stream.frames) or None
                if _rotation_quarters(container) % 2:
                    width, height = height, width  # shown sideways: the display swaps them
                if stream.duration is not None and stream.time_base is not None:
                    duration_s: float | None = float(stream.duration * stream.time_base)
                elif container.duration is not None and len(container.streams) == 1:
                    duration_s = container.duration / av.time_base
                else:
                    duration_s = None
        except InputError:
            raise
        except (av.error.FFmpegError, EOFError, IndexError) as err:
            raise InputError(f"{self.path}: not a video FFmpeg can read ({_short(err)})") from None
        if fps is not None:
            nominal = _check_fps(fps, self.path)
        if nominal is None:
            raise InputError(f"{self.path}: the file declares no frame rate; pass fps=")
        if width <= 0 or height <= 0:
            raise InputError(f"{self.path}: the video stream declares no frame size")
        self.info = VideoInfo(
            path=str(self.path),
            fps=nominal,
            n_frames=n_frames,
            width=width,
            height=height,
            duration_s=duration_s,
        )

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        frames = self._decode_threaded() if self.background else self._decode()
        n_done = 0
        last_t = 0.0
        try:
            for item in frames:
                if isinstance(item, _DecodeFailure):
                    self._fail(item, n_done)
                    return
                last_t = item[0]
                n_done += 1
                yield item
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()
        if n_done == 0:
            raise InputError(f"{self.path}: the video contains no frames")
        self._check_complete(n_done, last_t)

    def _fail(self, failure: _DecodeFailure, n_done: int) -> None:
        if n_done == 0:
            raise InputError(f"{self.path}: cannot decode frame 0 ({failure.message})")
        warnings.warn(
            f"{self.path}: decoding failed at frame {n_done} ({failure.message}); "
            f"keeping the {n_done} frames decoded before it",
            RuntimeWarning,
            stacklevel=3,
        )

    def _check_complete(self, n_done: int, last_t: float) -> None:
        # Some containers (Matroska) end silently when truncated: compare with what the
        # header declared, so a cut-off file is never taken for a complete one.
        info = self.info
        short_frames = info.n_frames is not None and n_done < info.n_frames
        end_s = last_t + 1.0 / info.fps
        short_time = info.duration_s is not None and end_s < info.duration_s - max(
            2.0 / info.fps, 0.02 * info.duration_s
        )
        # A declared frame count can be loose (AVI counts dropped-frame slots), so a
        # declared duration, when there is one, is what decides.
        if short_time if info.duration_s is not None else short_frames:
            declared = (
                f"{info.duration_s:.2f} s" if info.duration_s is not None else f"{info.n_frames} frames"
            )
            warnings.warn(
                f"{self.path}: stream ended at frame {n_done} ({end_s:.2f} s), but the file "
                f"declares {declared} (truncated?)",
                RuntimeWarning,
                stacklevel=3,
            )

    def _decode(self) -> Iterator[tuple[float, np.ndarray] | _DecodeFailure]:
        """Decode in the calling thread; a decoding error becomes a final _DecodeFailure."""
        import av

        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, EOFError) as err:
            yield _DecodeFailure(_short(err))
            return
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame + slice threading inside FFmpeg
            stream.thread_count = decoder_threads(self.info.width * self.info.height)
            to_rgb = _RgbConverter()
            first_pts: int | None = None
            time_base = stream.time_base or Fraction(1, 1)
            warned_no_pts = warned_order = False
            last_t_s = -np.inf
            index = 0
            try:
                for frame in container.decode(stream):
                    pts = frame.pts
                    if pts is None:
                        # Raw elementary streams have no timestamps: nothing to read.
                        if not warned_no_pts:
                            warnings.warn(
                                f"{self.path}: frames carry no timestamps; assuming a "
                                f"constant {self.info.fps:g} fps",
                                RuntimeWarning,
                                stacklevel=2,
                            )
                            warned_no_pts = True
                        t_s = index / self.info.fps
                    else:
                        if first_pts is None:
                            first_pts = pts
                        t_s = float((pts - first_pts) * time_base)
                    if t_s <= last_t_s and not warned_order:
                        # Kept (datasets align references by frame index), but said.
                        warnings.warn(
                            f"{self.path}: frame {index} has timestamp {t_s:.4f} s, not after "
                            f"the previous frame's {last_t_s:.4f} s (broken timestamps)",
                            RuntimeWarning,
                            stacklevel=2,
                        )
                        warned_order = True
                    last_t_s = t_s
                    yield t_s, _upright(frame, to_rgb)
                    index += 1
            except (av.error.FFmpegError, EOFError) as err:
                yield _DecodeFailure(_short(err))
        finally:
            container.close()

    def _decode_threaded(self) -> Iterator[tuple[float, np.ndarray] | _DecodeFailure]:
        """Same as :meth:`_decode`, produced by a helper thread through a bounded queue."""
        q: queue.Queue = queue.Queue(maxsize=self.queue_frames)
        stop = threading.Event()
        done = object()

        def produce() -> None:
            gen = self._decode()
            try:
                for item in gen:
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            except BaseException as err:  # a bug, not a decoding error: re-raise it there
                q.put(_Crash(err))
                return
            finally:
                gen.close()
            q.put(done)

        thread = threading.Thread(target=produce, name="facepulse-decode", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, _Crash):
                    raise item.error
                yield item
        finally:
            stop.set()
            # Drain so a producer blocked on put() sees the stop flag promptly.
            while thread.is_alive():
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
            thread.join()


#: Cores left to the consumer of the frames: the face stage keeps two threads busy (the
#: tracker with the ROI sampling, and the face detector).
_CONSUMER_CORES = 2
#: Frames up to this size decode on one thread (~2 ns a pixel, RGB conversion included) at
#: least as fast as the face stage consumes them (~1.2 ms a frame, whatever the size);
#: for larger ones decoding may become the slow stage, and FFmpeg keeps its own choice.
_ONE_THREAD_MAX_PIXELS = 600_000


def decoder_threads(pixels_per_frame: int) -> int:
    """FFmpeg decoding threads for frames of this size; 0 lets FFmpeg choose (one per core).

    FFmpeg's default competes with the face stage for the same cores: with two cores
    or three, one decoding thread took ~7 % of the CPU off `facepulse predict` on a 68 s
    640x480 clip. On a 20 s 1920x1440 clip the difference was within the run-to-run
    noise (-4 % and +9 % wall time in two A/B runs), so frames that large keep FFmpeg's
    default. With more cores, decoding gets those the face stage leaves free. Decoded
    pixels do not depend on it.
    """
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    spare = cores - _CONSUMER_CORES
    if spare >= 2:
        return spare
    return 1 if pixels_per_frame <= _ONE_THREAD_MAX_PIXELS else 0


def _rotation_quarters(container) -> int:
    """Quarter turns (counter-clockwise) of the first frame's display matrix."""
    import av

    try:
        frame = next(container.decode(video=0))
    except (StopIteration, av.error.FFmpegError, EOFError):
        return 0
    return int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 4


class _RgbConverter:
    """Decoded frames to RGB arrays through one reused swscale context.

    ``frame.to_ndarray(format="rgb24")`` builds a new converter for every frame (PyAV
    keeps it on the frame), and with it a fresh swscale context and its slice-thread
    pool, which are torn down again when the frame goes: on a 640x480 clip that set-up
    costs about as much CPU as the conversion itself, and far more wall time on a busy
    machine. One converter per pass gives the same pixels (same swscale parameters;
    ``tests/test_io_video.py`` checks equality with ``to_ndarray``) without the churn.
    """

    def __init__(self) -> None:
        from av.video.reformatter import VideoReformatter

        self._reformatter = VideoReformatter()

    def __call__(self, frame) -> np.ndarray:
        return self._reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()


def _upright(frame, to_rgb: _RgbConverter | None = None) -> np.ndarray:
    """The frame as RGB, turned as its display matrix says (phone videos are stored
    sideways with a rotation tag; players honour it, and so must we: a sideways face
    breaks face detection and the skin regions). ``to_rgb``: a converter reused across
    frames (default: PyAV's own, built for this frame)."""
    rgb = to_rgb(frame) if to_rgb is not None else frame.to_ndarray(format="rgb24")
    quarters = int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    # PyAV >= 18.1.1 returns a view of the padded plane when a row's bytes are not a
    # multiple of its alignment (e.g. 1080 or 96 pixels wide): one copy makes it a plain
    # C-contiguous image again (no copy where it already is one, e.g. 640 wide)
    return np.ascontiguousarray(np.rot90(rgb, k=quarters) if quarters else rgb)


@dataclass
class _DecodeFailure:
    message: str


@dataclass
class _Crash:
    error: BaseException


def _short(err: BaseException) -> str:
    # FFmpeg errors repeat the errno and the path in str(); strerror is the useful part.
    text = getattr(err, "strerror", None) or str(err).strip() or type(err).__name__
    return str(text).splitlines()[0][:160]


# ---------------------------------------------------------------- folders and arrays


def _check_fps(fps: float, where: object) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise InputError(f"{where}: fps must be a number, got {fps!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{where}: fps must be positive, got {fps!r}")
    return value


def _check_timestamps(timestamps_s: Sequence[float] | np.ndarray, n: int, where: object) -> np.ndarray:
    t = np.asarray(timestamps_s, dtype=np.float64).reshape(-1)
    if t.size != n:
        raise InputError(f"{where}: timestamps_s has {t.size} values for {n} frames")
    if not np.all(np.isfinite(t)):
        bad = int(np.argmin(np.isfinite(t)))
        raise InputError(f"{where}: timestamps_s has a non-finite value at frame {bad}")
    steps = np.diff(t)
    if np.any(steps <= 0):
        raise InputError(
            f"{where}: timestamps_s must increase strictly (frame {int(np.argmax(steps <= 0)) + 1})"
        )
    return t - t[0]


def _fps_and_times(
    fps: float | None, timestamps_s, n: int, where: object
) -> tuple[float, np.ndarray]:
    if timestamps_s is not None:
        t = _check_timestamps(timestamps_s, n, where)
        if fps is not None:
            return _check_fps(fps, where), t
        if n < 2:
            raise InputError(f"{where}: one frame: pass fps= to give its rate")
        return (n - 1) / float(t[-1]), t
    if fps is None:
        raise InputError(f"{where}: fps is required for image folders and arrays (pass fps=)")
    rate = _check_fps(fps, where)
    return rate, np.arange(n, dtype=np.float64) / rate


def _natural_key(name: str) -> tuple:
    # "frame_2.png" < "frame_10.png": numbers compare as numbers.
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


class ImageFolderSource(FrameSource):
    """Numbered images in one folder (PURE-style PNG sequences), in natural order.

    Parameters
    ----------
    folder : folder holding the images (extensions in ``IMAGE_SUFFIXES``).
    fps : frame rate, frames per second; required unless ``timestamps_s`` is given.
    timestamps_s : per-frame times in seconds (made relative to the first), one per image.
    """

    def __init__(
        self,
        folder: str | Path,
        fps: float | None = None,
        *,
        timestamps_s: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        import cv2

        self.folder = Path(folder)
        files = [
            p for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not files:
            raise InputError(f"{self.folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        self.files = sorted(files, key=lambda p: _natural_key(p.name))
        rate, self.timestamps_s = _fps_and_times(fps, timestamps_s, len(self.files), self.folder)
        first = cv2.imread(str(self.files[0]), cv2.IMREAD_COLOR)
        if first is None:
            raise InputError(f"{self.files[0]}: cannot read image (frame 0)")
        height, width = first.shape[:2]
        self.info = VideoInfo(
            path=str(self.folder),
            fps=rate,
            n_frames=len(self.files),
            width=int(width),
            height=int(height),
            duration_s=float(self.timestamps_s[-1]) + 1.0 / rate,
        )

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        import cv2

        for index, (path, t_s) in enumerate(zip(self.files, self.timestamps_s, strict=True)):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise InputError(f"{path}: cannot read image (frame {index})")
            if bgr.shape[:2] != (self.info.height, self.info.width):
                raise InputError(
                    f"{path}: frame {index} is {bgr.shape[1]}x{bgr.shape[0]}, "
                    f"the first is {self.info.width}x{self.info.height}"
                )
            yield float(t_s), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class ArraySource(FrameSource):
    """Frames of an in-memory ``(T, H, W, 3)`` uint8 RGB array.

    Parameters
    ----------
    frames : ``(T, H, W, 3)`` uint8, RGB channel order.
    fps : frame rate, frames per second; required unless ``timestamps_s`` is given.
    timestamps_s : per-frame times in seconds (made relative to the first).
    """

    def __init__(
        self,
        frames: np.ndarray,
        fps: float | None = None,
        *,
        timestamps_s: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
            shape = getattr(frames, "shape", None)
            raise InputError(f"<array>: frames must have shape (T, H, W, 3), got {shape}")
        if frames.dtype != np.uint8:
            raise InputError(f"<array>: frames must be uint8 RGB, got dtype {frames.dtype}")
        if frames.shape[0] == 0:
            raise InputError("<array>: the array contains no frames")
        if frames.shape[1] == 0 or frames.shape[2] == 0:
            raise InputError(f"<array>: frames have an empty size {frames.shape[2]}x{frames.shape[1]}")
        self.frames = frames
        rate, self.timestamps_s = _fps_and_times(fps, timestamps_s, frames.shape[0], "<array>")
        self.info = VideoInfo(
            path=None,
            fps=rate,
            n_frames=int(frames.shape[0]),
            width=int(frames.shape[2]),
            height=int(frames.shape[1]),
            duration_s=float(self.timestamps_s[-1]) + 1.0 / rate,
        )

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        for t_s, frame in zip(self.timestamps_s, self.frames, strict=True):
            yield float(t_s), np.ascontiguousarray(frame)


def open_video(
    src: str | Path | np.ndarray,
    fps: float | None = None,
    *,
    timestamps_s: Sequence[float] | np.ndarray | None = None,
    background: bool = True,
) -> FrameSource:
    """Open a video file, a folder of numbered images, or a frame array as a stream.

    Parameters
    ----------
    src : a video file (any container/codec FFmpeg reads), a folder of numbered images,
        or a ``(T, H, W, 3)`` uint8 RGB array.
    fps : frames per second. Required for folders and arrays (unless ``timestamps_s``);
        for files it only overrides the nominal rate (timestamps come from the file).
    timestamps_s : per-frame times in seconds for folders and arrays.
    background : for files, decode in a helper thread.

    Returns
    -------
    FrameSource yielding ``(timestamp_s, frame_rgb (H, W, 3) uint8)``.

    Raises
    ------
    InputError : missing/unreadable file, no frames, wrong array shape or dtype, no fps.
    """
    if isinstance(src, np.ndarray):
        return ArraySource(src, fps, timestamps_s=timestamps_s)
    if not isinstance(src, (str, Path)):
        raise InputError(f"cannot open {type(src).__name__} as a video (want a path or an array)")
    path = Path(src)
    if path.is_dir():
        return ImageFolderSource(path, fps, timestamps_s=timestamps_s)
    if timestamps_s is not None:
        raise ConfigError(f"{path}: timestamps_s is only for image folders and arrays")
    return VideoFileSource(path, fps, background=background)
