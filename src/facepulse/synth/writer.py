"""Write synthetic datasets to disk in the layout documented in docs/synthetic.md.

::

    OUT_DIR/
      dataset.json              how the dataset was made (scenario, master seed, base params)
      videos/
        v00000/
          video.mkv             Matroska: FFV1 lossless RGB (bgr0) or H.264 yuv420p
          frames.csv            one row per frame: timestamp_s, ppg, hr_bpm, ... (exact truth)
          beats.csv             one row per heart beat: systolic-peak time_s
          meta.json             every parameter of this video; written last = video complete

Every file is written under a temporary name and renamed into place, and ``meta.json``
comes last, so an interrupted run leaves no half-written video that looks finished:
running the same command again skips the finished videos and makes identical files.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from facepulse.errors import ConfigError, FacepulseError
from facepulse.executors.base import Executor, Job, Resources, RunProgress, TaskContext
from facepulse.synth.codecs import CODECS
from facepulse.synth.params import CodecParams, SynthParams
from facepulse.synth.seeds import check_seed, video_seed

LAYOUT_NAME = "facepulse-synthetic"
LAYOUT_VERSION = 1
DATASET_FILE = "dataset.json"
VIDEOS_DIR = "videos"
VIDEO_FILE = "video.mkv"
FRAMES_FILE = "frames.csv"
BEATS_FILE = "beats.csv"
META_FILE = "meta.json"

#: Columns of frames.csv, in order.
FRAME_COLUMNS = (
    "frame", "timestamp_s", "ppg", "hr_bpm", "mean_hr_bpm", "resp", "illumination", "specular",
    "face_x0", "face_y0", "face_x1", "face_y1",
    "pose_dx_px", "pose_dy_px", "pose_angle_deg", "pose_scale",
    "skin_r", "skin_g", "skin_b", "skin_pixels",
)


#: What rendering one video needs: one core (encoders run single-threaded) and memory for
#: the renderer's textures and the encoder at 640x480.
SYNTH_RESOURCES = Resources(cpus=1.0, memory_mb=1024)


def video_id(index: int) -> str:
    """Folder name of video ``index`` (``v00000``, ``v00001``, ...)."""
    return f"v{index:05d}"


def _frame_rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(100_000)


class VideoEncoder:
    """Encode RGB frames into a Matroska file (or a file object), bit-exactly.

    The stream comes from :data:`facepulse.synth.codecs.CODECS` (FFV1: lossless 8-bit
    RGB; H.264: libx264, YUV 4:2:0 at ``codec.crf``). Muxer and encoders run bit-exact and single-threaded with explicit frame timestamps,
    so the same frames always give the same bytes.
    """

    def __init__(
        self, target: str | Path | io.BytesIO, width: int, height: int, fps: float, codec: CodecParams
    ) -> None:
        import av

        self._container = av.open(
            str(target) if isinstance(target, Path) else target, "w", format="matroska",
            options={"fflags": "+bitexact"},  # no random segment UID, no muxing date
        )
        stream = CODECS.get(codec.codec)(self._container, _frame_rate(fps), codec)
        stream.width, stream.height = width, height
        stream.codec_context.thread_count = 1
        self._time_base = Fraction(1, 1) / _frame_rate(fps)
        self._index = 0
        # No encoder version string in the stream: same bytes across library versions too.
        stream.codec_context.flags |= int(av.codec.context.Flags.bitexact)
        self._stream = stream
        self._av = av

    def write(self, frame_rgb: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb), format="rgb24")
        # Explicit timestamps: without them libx264's rate control varies from run to run.
        frame.pts = self._index
        frame.time_base = self._time_base
        self._index += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


def apply_codec(frames: np.ndarray, fps: float, codec: CodecParams) -> np.ndarray:
    """Round-trip frames through the codec in memory (what the written file decodes to).

    Parameters
    ----------
    frames : (T, H, W, 3) uint8 RGB.
    fps : frame rate (Hz).
    codec : codec settings (FFV1 returns the frames unchanged, bit for bit).

    Returns
    -------
    (T, H, W, 3) uint8 RGB decoded frames.
    """
    import av

    buffer = io.BytesIO()
    enc = VideoEncoder(buffer, frames.shape[2], frames.shape[1], fps, codec)
    for frame in frames:
        enc.write(frame)
    enc.close()
    buffer.seek(0)
    with av.open(buffer, "r", format="matroska") as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(decoded) if decoded else np.empty_like(frames)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename onto ``path`` (:func:`facepulse.fileio.atomic_path`)."""
    from facepulse.fileio import atomic_path

    # the fixed temporary name of earlier versions, left by a killed run: ours, remove it
    path.with_name(f".{path.name}.tmp").unlink(missing_ok=True)
    with atomic_path(path, path.suffix) as tmp:
        write(tmp)


def _write_text(path: Path, text: str) -> None:
    _write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _csv(columns: Iterable[str], rows: np.ndarray, int_columns: Iterable[str] = ()) -> str:
    columns = list(columns)
    ints = set(int_columns)
    fmts = ["%d" if c in ints else "%.10g" for c in columns]
    out = io.StringIO()
    np.savetxt(out, rows, fmt=fmts, delimiter=",", header=",".join(columns), comments="")
    return out.getvalue()


@dataclass
class VideoResult:
    """What :func:`write_video` wrote."""

    folder: Path
    n_frames: int
    skipped: bool


def write_video(
    folder: Path,
    params: SynthParams,
    seed: int,
    meta_extra: dict[str, Any] | None = None,
    on_frame: Callable[[], None] | None = None,
) -> VideoResult:
    """Render one video and write it with its truth into ``folder`` (see module doc).

    A folder that already has ``meta.json`` is left untouched (``skipped=True``).
    """
    from facepulse.version import __version__
    from facepulse.synth.generator import Renderer

    folder = Path(folder)
    if (folder / META_FILE).is_file():
        return VideoResult(folder, int(json.loads((folder / META_FILE).read_text())["n_frames"]), True)
    folder.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(params, seed)
    cam = params.camera
    n = renderer.n_frames
    skin = np.zeros((n, 4))

    def frames() -> Iterator[np.ndarray]:
        import cv2

        for i, (frame, mask) in enumerate(renderer.frames()):
            m = mask.view(np.uint8)
            skin[i, :3] = cv2.mean(frame, m)[:3]
            skin[i, 3] = cv2.countNonZero(m)
            yield frame
            if on_frame is not None:
                on_frame()

    def encode(tmp: Path) -> None:
        enc = VideoEncoder(tmp, cam.width, cam.height, cam.fps, params.codec)
        try:
            for frame in frames():
                enc.write(frame)
        finally:
            enc.close()

    _write_atomic(folder / VIDEO_FILE, encode)

    t = renderer.truth
    pose = t.pose
    table = np.column_stack([
        np.arange(n), t.timestamps_s, t.ppg, t.hr_bpm, t.mean_hr_bpm, t.resp, t.illumination, t.specular,
        t.face_boxes_xyxy, pose.dx_px, pose.dy_px, pose.angle_deg, pose.scale, skin,
    ])
    _write_text(folder / FRAMES_FILE, _csv(FRAME_COLUMNS, table, int_columns=("frame", "skin_pixels")))
    beats = np.column_stack([np.arange(t.beat_times_s.size), t.beat_times_s])
    _write_text(folder / BEATS_FILE, _csv(("beat", "time_s"), beats, int_columns=("beat",)))
    meta = {
        "layout": LAYOUT_NAME,
        "layout_version": LAYOUT_VERSION,
        "generator_version": __version__,
        "video_id": folder.name,
        "seed": int(seed),
        "n_frames": n,
        "fps": float(cam.fps),
        "width": cam.width,
        "height": cam.height,
        "duration_s": float(params.duration_s),
        "n_beats": int(t.beat_times_s.size),
        "files": {"video": VIDEO_FILE, "frames": FRAMES_FILE, "beats": BEATS_FILE},
        "params": params.to_dict(),
        **(meta_extra or {}),
    }
    _write_text(folder / META_FILE, _json(meta))  # last: marks the video complete
    return VideoResult(folder, n, False)


def _dataset_config(scenario: str, seed: int, base: SynthParams, overrides: dict[str, Any]) -> dict[str, Any]:
    face = {} if base.face is None else {"face": base.face}  # built-in face: dataset.json as before
    return {
        **face,
        "layout": LAYOUT_NAME,
        "layout_version": LAYOUT_VERSION,
        "scenario": scenario,
        "seed": seed,
        "duration_s": float(base.duration_s),
        "fps": float(base.camera.fps),
        "width": base.camera.width,
        "height": base.camera.height,
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(overrides.items())},
    }


def write_dataset(
    out_dir: str | Path,
    *,
    n_videos: int,
    scenario: str = "still",
    seed: int = 0,
    base: SynthParams | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = False,
    executor: Executor | None = None,
) -> list[VideoResult]:
    """Generate (or finish generating) a dataset of ``n_videos`` synthetic videos.

    Parameters
    ----------
    out_dir : dataset folder; created if missing. If it already holds a dataset made
        with the same settings, finished videos are kept and skipped (resume); other
        settings raise ConfigError.
    n_videos : number of videos (indices 0 .. n_videos - 1).
    scenario : a name in :data:`facepulse.synth.scenarios.SCENARIOS`.
    seed : master seed; video i uses ``video_seed(seed, i)``.
    base : duration and camera size / frame rate (see :func:`sample_params`).
    overrides : dotted parameter fields forced on every video, e.g. ``{"codec.crf": 35}``.
    progress : show a Rich progress bar (videos done / failed / left, frames/s).
    executor : where the videos are rendered, one job each (:mod:`facepulse.executors`;
        default this process). Parameters are drawn here, so any executor writes the same
        bytes. A video that fails does not stop the others; FacepulseError after them.

    Returns
    -------
    One VideoResult per video, in index order.
    """
    from facepulse.version import __version__
    from facepulse.synth.scenarios import SCENARIOS, sample_params

    if isinstance(n_videos, bool) or not isinstance(n_videos, int) or n_videos < 1:
        raise ConfigError(f"n_videos={n_videos!r}: must be a positive integer")
    seed = check_seed(seed)
    SCENARIOS.get(scenario)
    base = base if base is not None else SynthParams()
    overrides = dict(overrides or {})
    # Fail on a bad override now, not after an hour of rendering.
    first = sample_params(scenario, video_seed(seed, 0), base, overrides)

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out_dir={str(out)!r}: exists and is not a folder")
    config = _dataset_config(scenario, seed, base, overrides)
    dataset_file = out / DATASET_FILE
    if dataset_file.is_file():
        try:
            old = json.loads(dataset_file.read_text())
        except (OSError, ValueError):
            raise ConfigError(f"{dataset_file}: unreadable; use an empty folder") from None
        for key, value in config.items():
            if old.get(key) != value:
                raise ConfigError(
                    f"{dataset_file}: made with {key}={old.get(key)!r}, not {value!r}; use another folder"
                )
    elif out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"out_dir={str(out)!r}: not empty and not a synthetic dataset")
    out.mkdir(parents=True, exist_ok=True)
    n_before = int(json.loads(dataset_file.read_text()).get("n_videos", 0)) if dataset_file.is_file() else 0
    n_total = max(n_videos, n_before)
    _write_text(dataset_file, _json({**config, "n_videos": n_total, "generator_version": __version__}))

    jobs: list[Job] = []
    done: dict[int, VideoResult] = {}
    for i in range(n_videos):
        folder = out / VIDEOS_DIR / video_id(i)
        if (folder / META_FILE).is_file():  # finished by an earlier run
            done[i] = VideoResult(folder, int(json.loads((folder / META_FILE).read_text())["n_frames"]), True)
            continue
        vseed = video_seed(seed, i)
        params = first if i == 0 else sample_params(scenario, vseed, base, overrides)
        meta_extra = {"index": i, "master_seed": seed, "scenario": scenario}
        jobs.append(Job(video_id(i), _synth_job, (folder, params, vseed, meta_extra)))

    if executor is None:
        from facepulse.executors.local import LocalExecutor

        executor = LocalExecutor(1)
    bar = RunProgress(len(jobs), f"synth {out.name or out}", enabled=progress)
    try:
        outcomes = executor.run(jobs, SYNTH_RESOURCES, bar)
    finally:
        bar.close()
    failed = {o.key: o.error for o in outcomes if o.error is not None}
    for o in outcomes:
        if o.error is None:
            done[int(o.key[1:])] = o.value
    if failed:
        first_id = min(failed)
        raise FacepulseError(
            f"{out}: {len(failed)} of {n_videos} videos failed ({first_id}: {failed[first_id]}); "
            "the others are written, run again to retry"
        )
    return [done[i] for i in range(n_videos)]


def _synth_job(folder: Path, params: SynthParams, seed: int, meta_extra: dict[str, Any], *,
               ctx: TaskContext) -> VideoResult:
    return write_video(folder, params, seed, meta_extra=meta_extra, on_frame=lambda: ctx.frames(1))
