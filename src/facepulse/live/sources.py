"""Live frame sources: cameras, network streams and files (paced or as fast as possible).

:func:`open_live_source` turns what the user typed into a :class:`LiveSource`:

- ``0``, ``1``... or ``/dev/video0``: a camera (V4L2 on Linux, AVFoundation on macOS,
  DirectShow through OpenCV on Windows);
- ``rtsp://``, ``rtmp://``, ``http(s)://`` (incl. HLS ``.m3u8``), ``udp://``, ``tcp://``,
  ``srt://``: a network stream FFmpeg reads;
- an existing file: played at its own speed (``realtime=True``) or as fast as possible.

A helper thread decodes into a small bounded queue. Live sources (cameras, streams,
paced files) never block on a slow consumer: when the queue is full the oldest frame is
dropped (and counted), so latency and memory stay bounded. An unpaced file blocks the
decoder instead, so every frame is processed.

Errors are one-line :class:`SourceError` messages naming the source. A live source that
ends raises :class:`StreamEndedError` from :meth:`LiveSource.read`; one that delivers no
frame for ``stall_timeout_s`` raises :class:`StreamStalledError`. A file that ends is not
an error (``read`` returns :data:`END`), unless it is looped.
"""

from __future__ import annotations

import queue
import re
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from facepulse.errors import ConfigError, InputError

__all__ = [
    "END",
    "LiveFrame",
    "LiveSource",
    "SourceError",
    "StreamEndedError",
    "StreamStalledError",
    "open_live_source",
    "parse_source",
]

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp", "hls")


class SourceError(InputError):
    """A live source cannot be opened or read (one line naming the source)."""


class StreamEndedError(SourceError):
    """A camera or network stream ended."""


class StreamStalledError(SourceError):
    """A camera or network stream delivered no frame for too long."""


@dataclass
class LiveFrame:
    """One frame as it arrives.

    t_s : capture time on the source's own clock, seconds from its first frame.
    frame : (H, W, 3) uint8 RGB.
    captured_at : ``time.monotonic()`` when the frame became available: when it was
        decoded (cameras, streams), or when a paced file released it.
    index : frame number from the source's start (dropped frames count too).
    """

    t_s: float
    frame: np.ndarray
    captured_at: float
    index: int


class _End:
    def __repr__(self) -> str:
        return "END"


#: Returned by :meth:`LiveSource.read` when a (non-looped) file is finished.
END = _End()


@dataclass(frozen=True)
class SourceSpec:
    """What a SOURCE string means: ``kind`` in camera/stream/file, ``target`` what FFmpeg
    (or OpenCV) opens, ``label`` for messages."""

    kind: str
    target: str
    label: str
    camera_index: int | None = None


def parse_source(text: str) -> SourceSpec:
    """Classify a SOURCE string (no I/O beyond checking that a file or device exists)."""
    text = str(text).strip()
    if not text:
        raise SourceError("SOURCE is empty: give a camera index (0), a device, a stream URL or a file")
    if re.fullmatch(r"\d+", text):
        index = int(text)
        if sys.platform.startswith("linux"):
            device = f"/dev/video{index}"
            if not Path(device).exists():
                raise SourceError(f"camera {index}: no such camera ({device} does not exist)")
            return SourceSpec("camera", device, f"camera {index} ({device})", index)
        return SourceSpec("camera", str(index), f"camera {index}", index)
    match = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*)://", text)
    if match:
        scheme = match.group(1).lower()
        if scheme == "file":
            return parse_source(text[len("file://") :])
        if scheme not in STREAM_SCHEMES:
            raise SourceError(f"{text}: unsupported URL scheme {scheme!r} (use {', '.join(STREAM_SCHEMES)})")
        return SourceSpec("stream", text, _redact(text))
    if text.startswith("/dev/"):
        if not Path(text).exists():
            raise SourceError(f"{text}: no such camera device")
        return SourceSpec("camera", text, f"camera {text}")
    path = Path(text)
    if path.is_file():
        return SourceSpec("file", str(path), str(path))
    if path.exists():
        raise SourceError(f"{text}: not a video file")
    raise SourceError(f"{text}: no such file, camera or stream URL")


def _redact(url: str) -> str:
    """The URL without a password (``rtsp://user:pw@host`` -> ``rtsp://user:***@host``)."""
    return re.sub(r"(://[^:/@]+:)[^@/]+@", r"\1***@", url)


def _short(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err).strip() or type(err).__name__
    return str(text).splitlines()[0][:160]


class _Clock:
    """Stream time from presentation timestamps, kept increasing.

    Network streams restart their timestamps, wrap or skip; a step backwards or a jump of
    more than ``max_jump_s`` re-anchors the clock one nominal frame after the last time.
    """

    def __init__(self, fps: float, max_jump_s: float = 5.0) -> None:
        self.period_s = 1.0 / fps
        self.max_jump_s = max_jump_s
        self.offset_s: float | None = None
        self.last_s: float | None = None
        self.count = 0

    def __call__(self, pts_s: float | None) -> float:
        if pts_s is None:
            t = self.count * self.period_s if self.last_s is None else self.last_s + self.period_s
        else:
            if self.offset_s is None:
                self.offset_s = -pts_s
            t = pts_s + self.offset_s
            if self.last_s is not None and not (self.last_s < t <= self.last_s + self.max_jump_s):
                self.offset_s += self.last_s + self.period_s - t
                t = self.last_s + self.period_s
        self.last_s = t
        self.count += 1
        return t


class LiveSource:
    """A started source of :class:`LiveFrame` s. Use :func:`open_live_source`.

    Attributes
    ----------
    kind : ``"camera"``, ``"stream"`` or ``"file"``.
    label : the source, for messages (passwords in URLs masked).
    fps : nominal frame rate (frames/s), or the rate requested.
    width, height : frame size after downscaling.
    live : frames are dropped rather than queued when the consumer is slow.
    dropped : frames dropped so far.
    """

    def __init__(
        self,
        spec: SourceSpec,
        *,
        realtime: bool = False,
        loop: bool = False,
        max_width: int | None = 640,
        camera_size: tuple[int, int] | None = None,
        camera_fps: float | None = None,
        open_timeout_s: float = 10.0,
        stall_timeout_s: float = 10.0,
        queue_frames: int = 8,
    ) -> None:
        if stall_timeout_s <= 0 or open_timeout_s <= 0:
            raise ConfigError("timeouts must be positive seconds")
        if max_width is not None and max_width < 32:
            raise ConfigError(f"--max-width must be at least 32 pixels, got {max_width}")
        if loop and spec.kind != "file":
            raise ConfigError(f"{spec.label}: --loop is for files only")
        self.spec = spec
        self.kind = spec.kind
        self.label = spec.label
        self.realtime = bool(realtime)
        self.loop = bool(loop)
        self.live = spec.kind != "file" or self.realtime
        self.max_width = max_width
        self.camera_size = camera_size
        self.camera_fps = camera_fps
        self.open_timeout_s = float(open_timeout_s)
        self.stall_timeout_s = float(stall_timeout_s)
        self.dropped = 0
        self.frames_read = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_frames)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_frame_at = time.monotonic()
        self._container = None
        self._capture = None  # OpenCV capture (cameras on Windows)
        self._open()

    # ---------------------------------------------------------------- opening

    def _open(self) -> None:
        spec = self.spec
        if spec.kind == "camera" and not (sys.platform.startswith("linux") or sys.platform == "darwin"):
            self._open_opencv_camera()
            return
        import av

        kwargs: dict = {}
        options: dict[str, str] = {}
        if spec.kind == "camera":
            kwargs["format"] = "v4l2" if sys.platform.startswith("linux") else "avfoundation"
            if self.camera_size is not None:
                options["video_size"] = f"{self.camera_size[0]}x{self.camera_size[1]}"
            if self.camera_fps is not None:
                options["framerate"] = f"{self.camera_fps:g}"
        elif spec.kind == "stream":
            if spec.target.lower().startswith("rtsp"):
                options["rtsp_transport"] = "tcp"
            kwargs["timeout"] = (self.open_timeout_s, self.stall_timeout_s)
        try:
            container = av.open(spec.target, container_options=options, **kwargs)
        except (av.error.FFmpegError, OSError, EOFError) as err:
            what = "cannot open the camera" if spec.kind == "camera" else (
                "cannot open the stream" if spec.kind == "stream" else "not a video FFmpeg can read"
            )
            raise SourceError(f"{spec.label}: {what} ({_short(err)})") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"{spec.label}: no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = float(rate) if rate is not None and float(rate) > 0 else (self.camera_fps or 30.0)
        if spec.kind == "file" and not self.realtime:
            stream.thread_type = "AUTO"  # throughput; live sources keep FFmpeg's low-delay default
        self._container = container
        self.width, self.height = self._out_size(int(stream.width), int(stream.height))

    def _open_opencv_camera(self) -> None:
        import cv2

        cap = cv2.VideoCapture(int(self.spec.camera_index or 0))
        if not cap.isOpened():
            raise SourceError(f"{self.spec.label}: cannot open the camera")
        if self.camera_size is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.camera_size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.camera_size[1])
        if self.camera_fps is not None:
            cap.set(cv2.CAP_PROP_FPS, self.camera_fps)
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) or 30.0
        self.width, self.height = self._out_size(
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        )
        self._capture = cap

    def _out_size(self, width: int, height: int) -> tuple[int, int]:
        if self.max_width is None or width <= self.max_width or width <= 0:
            return width, height
        scale = self.max_width / width
        return int(self.max_width) // 2 * 2, max(2, int(round(height * scale)) // 2 * 2)

    # ----------------------------------------------------------------- thread

    def start(self) -> LiveSource:
        """Start decoding (idempotent)."""
        if self._thread is None:
            self._last_frame_at = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="facepulse-live-source", daemon=True)
            self._thread.start()
        return self

    def _put(self, item) -> bool:
        """Queue an item; live sources drop the oldest frame when full. False when stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self.live and isinstance(item, LiveFrame):
                    try:
                        old = self._queue.get_nowait()
                    except queue.Empty:
                        continue
                    if isinstance(old, LiveFrame):
                        self.dropped += 1
                    else:  # never drop an end/error marker
                        self._queue.put(old)
                        return True
        return False

    def _run(self) -> None:
        try:
            if self._capture is not None:
                self._run_opencv()
            else:
                self._run_av()
        except SourceError as err:
            self._put(err)
        except Exception as err:  # noqa: BLE001 - report every failure as a source error
            self._put(SourceError(f"{self.label}: reading failed ({_short(err)})"))

    def _frames_av(self, container):
        """(pts seconds or None, frame RGB) from one pass over ``container``."""
        import av

        stream = container.streams.video[0]
        time_base = stream.time_base or Fraction(1, 1)
        last_at = time.monotonic()
        try:
            for frame in container.decode(stream):
                last_at = time.monotonic()
                if self._stop.is_set():
                    return
                pts = None if frame.pts is None else float(frame.pts * time_base)
                if (self.width, self.height) != (frame.width, frame.height):
                    frame = frame.reformat(width=self.width, height=self.height)
                yield pts, frame.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, OSError) as err:
            message = _short(err)
            if self.kind == "file":
                raise SourceError(f"{self.label}: decoding failed ({message})") from None
            silent_s = time.monotonic() - last_at
            if "timed out" in message.lower() or "timeout" in message.lower() or silent_s >= 0.9 * self.stall_timeout_s:
                raise StreamStalledError(
                    f"{self.label}: stream stalled (no data for {self.stall_timeout_s:g} s)"
                ) from None
            what = "camera" if self.kind == "camera" else "stream"
            raise SourceError(f"{self.label}: {what} read failed ({message}; unplugged or disconnected?)") from None

    def _run_av(self) -> None:
        import av

        clock = _Clock(self.fps)
        start_wall: float | None = None
        index = 0
        pass_offset_s = 0.0  # where the current pass of a looped file starts
        container = self._container
        while True:
            first_pts: float | None = None
            last_t = None
            for pts, rgb in self._frames_av(container):
                if self.kind == "file" and pts is not None:
                    first_pts = pts if first_pts is None else first_pts
                    pts = pass_offset_s + pts - first_pts
                t_s = clock(pts)
                if self.realtime:
                    now = time.monotonic()
                    if start_wall is None:
                        start_wall = now - t_s
                    wait = start_wall + t_s - now
                    if wait > 0 and self._stop.wait(wait):
                        return
                last_t = t_s
                if not self._put(LiveFrame(t_s, rgb, time.monotonic(), index)):
                    return
                index += 1
            if self._stop.is_set():
                return
            container.close()
            self._container = None
            if self.kind != "file":
                self._put(StreamEndedError(f"{self.label}: the stream ended after {index} frames"))
                return
            if index == 0:
                self._put(SourceError(f"{self.label}: the video contains no frames"))
                return
            if not self.loop or last_t is None:
                self._put(END)
                return
            try:
                container = av.open(self.spec.target)
            except (av.error.FFmpegError, OSError) as err:
                raise SourceError(f"{self.label}: cannot reopen for looping ({_short(err)})") from None
            self._container = container
            pass_offset_s = last_t + 1.0 / self.fps

    def _run_opencv(self) -> None:
        cap = self._capture
        start = None
        index = 0
        import cv2

        while not self._stop.is_set():
            ok, bgr = cap.read()
            if not ok:
                raise SourceError(f"{self.label}: camera read failed (unplugged?)")
            now = time.monotonic()
            start = now if start is None else start
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if rgb.shape[1] != self.width:
                rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
            if not self._put(LiveFrame(now - start, rgb, now, index)):
                return
            index += 1

    # ---------------------------------------------------------------- reading

    def read(self, timeout_s: float = 0.5) -> LiveFrame | _End | None:
        """The next frame; None if none came within ``timeout_s``; :data:`END` after the
        last frame of a file. Raises the source's error (stream ended, stalled, unplugged).
        """
        self.start()
        try:
            item = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            idle = time.monotonic() - self._last_frame_at
            if self.live and idle > self.stall_timeout_s:
                what = "camera" if self.kind == "camera" else "stream"
                raise StreamStalledError(
                    f"{self.label}: {what} stalled (no frame for {idle:.0f} s)"
                ) from None
            return None
        if isinstance(item, BaseException):
            self._queue.put(item)  # stays the answer to every later read
            raise item
        if item is END:
            self._queue.put(item)
            return END
        self._last_frame_at = time.monotonic()
        self.frames_read += 1
        return item

    def close(self) -> None:
        """Stop decoding and release the device or connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._container is not None and (self._thread is None or not self._thread.is_alive()):
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - closing a broken stream must not mask its error
                pass
            self._container = None
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> LiveSource:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def open_live_source(
    source: str | Path,
    *,
    realtime: bool = False,
    loop: bool = False,
    max_width: int | None = 640,
    camera_size: tuple[int, int] | None = None,
    camera_fps: float | None = None,
    open_timeout_s: float = 10.0,
    stall_timeout_s: float = 10.0,
) -> LiveSource:
    """Open SOURCE (camera index or device, stream URL, or file) for live reading.

    Parameters
    ----------
    source : ``"0"`` / ``"/dev/video0"``, ``"rtsp://..."`` / ``"http://..."`` / ..., or a path.
    realtime : pace frames at the source's own timestamps (files and on-demand URLs);
        live cameras and streams are paced by nature.
    loop : play a file again and again (time keeps increasing), e.g. for a soak test.
    max_width : downscale wider frames to this width (face tracking cost grows with size).
    camera_size, camera_fps : ask a camera for this size (W, H) and rate.
    open_timeout_s : give up connecting to a stream after this long.
    stall_timeout_s : a camera or stream that delivers no frame for this long is an error.

    Raises
    ------
    SourceError : no such file / camera, unreachable or unreadable stream (one line).
    """
    spec = parse_source(str(source))
    return LiveSource(
        spec,
        realtime=realtime,
        loop=loop,
        max_width=max_width,
        camera_size=camera_size,
        camera_fps=camera_fps,
        open_timeout_s=open_timeout_s,
        stall_timeout_s=stall_timeout_s,
    )
