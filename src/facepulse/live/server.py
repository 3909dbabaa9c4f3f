"""``facepulse serve``: a local web app that measures heart rate live.

The page (``static/index.html`` + ``app.js``) either uses the browser's own camera or
watches a server-side SOURCE (as ``facepulse live``):

- **Browser camera** (``/ws/camera``): the page grabs each camera frame, downscales it
  to 320 px wide, encodes it as JPEG (``canvas.toBlob``) and sends it with its capture
  time (a 16-byte header: float64 capture time in ms on the page's ``performance.now()``
  clock, float64 sequence number; then the JPEG). The server decodes it, tracks the face,
  feeds the :class:`~facepulse.live.estimator.LiveEstimator` and answers every frame with
  ``{"type": "frame", "seq", "box", ...}`` (the face box, and the page's acknowledgement:
  the page keeps at most 3 frames in flight, so a slow server slows the page's sending
  instead of queueing) and once a second with ``{"type": "update", ...}`` (HR,
  confidence, SNR, face, waveform, and the capture time of the newest frame it includes,
  from which the page shows the latency).
- **Server source** (``/ws/source``): one reader thread runs the source; every page
  connected receives the updates and a preview (JPEG, 320 px, at most 10 frames/s).

Bounded everywhere: the server keeps at most 2 received frames per session (the oldest
is dropped when a new one arrives), at most 64 outgoing messages per page (the oldest
dropped for a page that does not read), at most ``max_sessions`` camera sessions, and
no frame is stored. Only the page's own assets are served (a fixed list, no directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import struct
import threading
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response

from facepulse.errors import ConfigError, FacepulseError

__all__ = ["ServeConfig", "create_app"]

#: The only files served: name -> media type (read from the package, never from disk paths).
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
HEADER = struct.Struct("<dd")  # capture time (ms, page clock), sequence number
MAX_FRAME_BYTES = 2_000_000  # a 320x240 JPEG is ~20 kB; anything this big is refused
OUT_QUEUE = 64
IN_QUEUE = 2
PREVIEW_FPS = 10.0
PREVIEW_WIDTH = 320


@dataclass
class ServeConfig:
    """Settings of the web app (see ``facepulse serve --help``)."""

    window_s: float = 10.0
    update_every_s: float = 1.0
    method: str = "auto"
    detector: str = "auto"
    source: str | None = None
    realtime: bool = True
    loop: bool = False
    max_sessions: int = 4
    stall_timeout_s: float = 10.0
    retry_s: float = 5.0

    def check(self) -> ServeConfig:
        from facepulse.live.estimator import LiveEstimator

        LiveEstimator(self.window_s, method=self.method)  # raises on a bad window or method
        if self.max_sessions < 1:
            raise ConfigError(f"--max-sessions must be at least 1, got {self.max_sessions}")
        return self


def _asset(name: str) -> bytes:
    return resources.files("facepulse.live").joinpath("static", name).read_bytes()


def _offer(q: asyncio.Queue, item: Any) -> None:
    """Put without blocking; a full queue loses its oldest item (bounded memory)."""
    while True:
        try:
            q.put_nowait(item)
            return
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()


def _box_json(face, width: int, height: int) -> list[float] | None:
    """The face box as fractions of the frame (x0, y0, x1, y1), or None."""
    if face is None:
        return None
    x0, y0, x1, y1 = (float(v) for v in face.box_xyxy)
    return [round(x0 / width, 4), round(y0 / height, 4), round(x1 / width, 4), round(y1 / height, 4)]


def _warm_up(detector: str) -> None:
    from facepulse.face.detectors import make_detector

    with contextlib.suppress(Exception):
        made = make_detector(detector)
        made.detect(np.zeros((240, 320, 3), dtype=np.uint8))
        if hasattr(made, "close"):
            made.close()


def _decode_jpeg(data: bytes) -> np.ndarray | None:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or min(bgr.shape[:2]) < 32:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class CameraSession:
    """One page's camera: a worker thread runs the pipeline on the frames it receives.

    ``offer_frame`` is called from the event loop with each received message; the worker
    keeps at most ``IN_QUEUE`` waiting frames and drops the oldest. Results are handed to
    ``emit`` (thread-safe, non-blocking).
    """

    def __init__(self, config: ServeConfig, emit) -> None:
        from facepulse.live.session import LivePipeline

        self.config = config
        self.emit = emit
        self.pipeline = LivePipeline(
            config.window_s, update_every_s=config.update_every_s, detector=config.detector, method=config.method
        )
        self.frames: queue.Queue = queue.Queue(maxsize=IN_QUEUE)
        self.dropped = 0
        self.processed = 0
        self._t0_ms: float | None = None
        self._thread = threading.Thread(target=self._run, name="facepulse-camera-session", daemon=True)
        self._thread.start()

    def offer_frame(self, data: bytes) -> None:
        while True:
            try:
                self.frames.put_nowait(data)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.frames.get_nowait()
                    self.dropped += 1

    def reset(self) -> None:
        self.offer_frame(b"reset")

    def close(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.frames.get_nowait()
        self.frames.put(None)
        self._thread.join(timeout=5.0)
        self.pipeline.close()

    def _run(self) -> None:
        while True:
            data = self.frames.get()
            if data is None:
                return
            if data == b"reset":
                self.pipeline.reset()
                self._t0_ms = None
                continue
            try:
                self._process(data)
            except FacepulseError as err:
                self.emit({"type": "error", "text": str(err)})
            except Exception as err:  # noqa: BLE001 - a bad frame must not end the session
                self.emit({"type": "error", "text": f"frame failed: {type(err).__name__}: {err}"})

    def _process(self, data: bytes) -> None:
        started = time.perf_counter()
        if len(data) < HEADER.size + 4:
            self.emit({"type": "error", "text": "malformed frame message (too short)"})
            return
        capture_ms, seq = HEADER.unpack_from(data)
        frame = _decode_jpeg(data[HEADER.size :])
        if frame is None or not np.isfinite(capture_ms):
            self.emit({"type": "frame", "seq": seq, "t_ms": capture_ms, "box": None, "error": "undecodable frame"})
            return
        if self._t0_ms is None or capture_ms < self._t0_ms:
            self._t0_ms = capture_ms
        t_s = (capture_ms - self._t0_ms) / 1000.0
        face, update = self.pipeline.process(t_s, frame)
        self.processed += 1
        height, width = frame.shape[:2]
        proc_ms = 1000.0 * (time.perf_counter() - started)
        self.emit({
            "type": "frame",
            "seq": seq,
            "t_ms": capture_ms,
            "box": _box_json(face, width, height),
            "proc_ms": round(proc_ms, 2),
            "dropped": self.dropped,
        })
        if update is not None:
            message = update.to_json(wave=True)
            message.update({"type": "update", "t_ms": capture_ms, "dropped": self.dropped, "frames": self.processed})
            self.emit(message)


class SourceHub:
    """The server-side SOURCE: one reader thread, any number of pages watching it.

    Source errors (unplugged camera, stalled or ended stream) are shown to the pages as a
    status and the source is reopened every ``retry_s`` seconds; a file that ends (not
    looped) stays ended.
    """

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = "starting"
        self.label = str(config.source)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="facepulse-source-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=OUT_QUEUE)
        with self._lock:
            self.subscribers.add((loop, q))
        _offer(q, {"type": "status", "text": self.status, "source": self.label})
        return q

    def unsubscribe(self, loop: asyncio.AbstractEventLoop, q: asyncio.Queue) -> None:
        with self._lock:
            self.subscribers.discard((loop, q))

    def broadcast(self, message: dict[str, Any]) -> None:
        with self._lock:
            targets = list(self.subscribers)
        for loop, q in targets:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(_offer, q, message)

    def _set_status(self, text: str, level: str = "info") -> None:
        self.status = text
        self.broadcast({"type": "status", "text": text, "level": level, "source": self.label})

    def _run(self) -> None:
        from facepulse.live.session import LivePipeline, run_live
        from facepulse.live.sources import open_live_source

        config = self.config
        while not self._stop.is_set():
            pipeline = None
            try:
                self._set_status(f"opening {self.label}")
                source = open_live_source(
                    config.source, realtime=config.realtime, loop=config.loop, stall_timeout_s=config.stall_timeout_s
                )
                self.label = source.label
                pipeline = LivePipeline(
                    config.window_s, update_every_s=config.update_every_s, detector=config.detector, method=config.method
                )
                self._set_status(f"live: {source.label}")
                with source:
                    run_live(
                        source,
                        pipeline,
                        self._on_update,
                        on_frame=self._preview(),
                        on_idle=self._on_idle,
                        stop=self._stop,
                    )
                if not self._stop.is_set():
                    self._set_status(f"{source.label}: the file ended", "warning")
                return
            except FacepulseError as err:
                self._set_status(f"{err} (retrying in {config.retry_s:g} s)", "error")
            except Exception as err:  # noqa: BLE001 - keep serving the page whatever happens
                self._set_status(f"{self.label}: {type(err).__name__}: {err} (retrying in {config.retry_s:g} s)", "error")
            finally:
                if pipeline is not None:
                    pipeline.close()
            self._stop.wait(config.retry_s)

    def _on_update(self, update, stats) -> None:
        message = update.to_json(wave=True)
        message.update({"type": "update", "dropped": stats.dropped, "frames": stats.frames})
        if stats.update_latency_s:
            message["latency_ms"] = round(1000 * stats.update_latency_s[-1], 1)
        self.broadcast(message)

    def _on_idle(self, idle_s: float, stats) -> None:
        if idle_s > 1.0:
            self.broadcast({"type": "status", "text": f"waiting for frames ({idle_s:.0f} s)", "level": "warning"})

    def _preview(self):
        import cv2

        last = [-1.0]

        def on_frame(item, face) -> None:
            if not self.subscribers or item.captured_at - last[0] < 1.0 / PREVIEW_FPS:
                return
            last[0] = item.captured_at
            frame = item.frame
            height, width = frame.shape[:2]
            if width > PREVIEW_WIDTH:
                size = (PREVIEW_WIDTH, max(2, round(height * PREVIEW_WIDTH / width)))
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 75])
            if ok:
                import base64

                self.broadcast({
                    "type": "preview",
                    "jpeg": base64.b64encode(jpeg.tobytes()).decode("ascii"),
                    "box": _box_json(face, width, height),
                    "t_s": round(item.t_s, 3),
                })

        return on_frame


def create_app(config: ServeConfig | None = None):
    """The FastAPI app of ``facepulse serve`` (run it with uvicorn)."""
    config = (config or ServeConfig()).check()
    hub = SourceHub(config) if config.source else None
    sessions: set[CameraSession] = set()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # Load the face detector's libraries in the background, so the first page's
        # session starts in a fraction of a second instead of several.
        threading.Thread(target=_warm_up, args=(config.detector,), name="facepulse-warm-up", daemon=True).start()
        if hub is not None:
            hub.start()
        try:
            yield
        finally:
            if hub is not None:
                hub.stop()

    app = FastAPI(title="facepulse live", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.config = config
    app.state.sessions = sessions
    app.state.hub = hub

    no_store = {"Cache-Control": "no-store"}

    @app.get("/")
    async def index() -> Response:
        return Response(_asset("index.html"), media_type=ASSETS["index.html"], headers=no_store)

    @app.get("/assets/{name}")
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            return Response("not found\n", status_code=404, media_type="text/plain")
        return Response(_asset(name), media_type=ASSETS[name], headers=no_store)

    @app.get("/api/config")
    async def api_config() -> JSONResponse:
        return JSONResponse({
            "window_s": config.window_s,
            "update_every_s": config.update_every_s,
            "method": config.method,
            "source": hub.label if hub is not None else None,
            "sessions": len(sessions),
            "max_sessions": config.max_sessions,
        })

    async def pump(websocket: WebSocket, out: asyncio.Queue) -> None:
        while True:
            message = await out.get()
            await websocket.send_text(json.dumps(message, allow_nan=False))

    @app.websocket("/ws/camera")
    async def ws_camera(websocket: WebSocket) -> None:
        await websocket.accept()
        if len(sessions) >= config.max_sessions:
            await websocket.send_text(json.dumps({
                "type": "error",
                "text": f"the server is busy ({config.max_sessions} camera sessions); try again later",
            }))
            await websocket.close(code=1013)
            return
        loop = asyncio.get_running_loop()
        out: asyncio.Queue = asyncio.Queue(maxsize=OUT_QUEUE)

        def emit(message: dict[str, Any]) -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_offer, out, message)

        try:
            session = await asyncio.to_thread(CameraSession, config, emit)
        except FacepulseError as err:
            await websocket.send_text(json.dumps({"type": "error", "text": str(err)}))
            await websocket.close(code=1011)
            return
        sessions.add(session)
        sender = asyncio.create_task(pump(websocket, out))
        # The page starts sending frames only now: frames sent while the face detector
        # loads would arrive as a stale burst followed by a gap.
        _offer(out, {"type": "ready", "window_s": config.window_s, "update_every_s": config.update_every_s})
        try:
            while True:
                message = await websocket.receive()
                if message.get("type") == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is not None:
                    if len(data) > MAX_FRAME_BYTES:
                        _offer(out, {"type": "error", "text": f"frame of {len(data)} bytes refused (max {MAX_FRAME_BYTES})"})
                        continue
                    session.offer_frame(data)
                elif message.get("text"):
                    with contextlib.suppress(ValueError, TypeError, AttributeError):
                        if json.loads(message["text"]).get("type") == "reset":
                            session.reset()
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            sessions.discard(session)
            await asyncio.to_thread(session.close)

    @app.websocket("/ws/source")
    async def ws_source(websocket: WebSocket) -> None:
        await websocket.accept()
        if hub is None:
            await websocket.send_text(json.dumps({"type": "error", "text": "no server-side source (start with --source)"}))
            await websocket.close(code=1000)
            return
        loop = asyncio.get_running_loop()
        out = hub.subscribe(loop)
        sender = asyncio.create_task(pump(websocket, out))
        try:
            while True:
                message = await websocket.receive()
                if message.get("type") == "websocket.disconnect":
                    break
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            hub.unsubscribe(loop, out)

    return app
