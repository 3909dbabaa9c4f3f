"""facepulse.io.video: files (constant and variable frame rate), image folders, arrays,
and every user error they can raise."""

from __future__ import annotations

import threading
import time
import warnings
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from facepulse.errors import ConfigError, InputError
from facepulse.io.video import ArraySource, FrameSource, VideoInfo, open_video
from facepulse.paths import shared_data_dir

W, H = 64, 48


def _frame(i: int) -> np.ndarray:
    """A frame whose colour encodes its index (survives lossy coding to within a few levels)."""
    rgb = np.empty((H, W, 3), dtype=np.uint8)
    rgb[...] = (20 + 3 * i, 200 - 2 * i, 90)
    return rgb


def _write(
    path: Path,
    n: int = 30,
    *,
    pts_ms: list[int] | None = None,
    codec: str = "libx264",
    options: dict | None = None,
) -> Path:
    """Encode n frames with PyAV; pts in milliseconds (regular 30 fps unless given).

    AVI stores a constant rate, so it gets a 1/30 s time base and pts = frame index.
    """
    avi = path.suffix == ".avi"
    time_base = Fraction(1, 30) if avi else Fraction(1, 1000)
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "10"}
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(_frame(i), format="rgb24")
            frame.pts = i if avi else (pts_ms[i] if pts_ms is not None else round(i * 1000 / 30))
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _read_all(source: FrameSource) -> tuple[np.ndarray, list[np.ndarray]]:
    times, frames = [], []
    for t_s, frame in source:
        times.append(t_s)
        frames.append(frame)
    return np.array(times), frames


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_file_streams_rgb_frames_with_timestamps(tmp_path, suffix):
    codec = "mpeg4" if suffix == ".avi" else "libx264"
    path = _write(tmp_path / f"clip{suffix}", 30, codec=codec)
    source = open_video(path)
    assert isinstance(source.info, VideoInfo)
    assert source.info.path == str(path)
    assert (source.info.width, source.info.height) == (W, H)
    assert source.info.fps == pytest.approx(30, rel=0.01)
    times, frames = _read_all(source)
    assert len(frames) == 30
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)
    np.testing.assert_allclose(times, np.arange(30) / 30, atol=2e-3)
    # RGB order and frame order: the colour of frame i is (20 + 3i, 200 - 2i, 90).
    means = np.array([f.reshape(-1, 3).mean(axis=0) for f in frames])
    expected = np.array([_frame(i)[0, 0] for i in range(30)], dtype=float)
    assert np.abs(means - expected).max() < 6


def test_variable_frame_rate_timestamps_are_read_not_assumed(tmp_path):
    steps_ms = np.random.default_rng(1).integers(15, 70, size=39)
    pts_ms = np.r_[0, np.cumsum(steps_ms)].tolist()
    path = _write(tmp_path / "vfr.mkv", 40, pts_ms=pts_ms)
    source = open_video(path)
    times, frames = _read_all(source)
    assert len(frames) == 40
    np.testing.assert_allclose(times, np.array(pts_ms) / 1000.0, atol=1e-6)
    # A constant-rate assumption would be off by tens of milliseconds somewhere.
    assert np.abs(times - np.arange(40) / source.info.fps).max() > 0.03
    # Frames still arrive in order with their own content.
    greens = [f[..., 1].mean() for f in frames]
    assert np.all(np.diff(greens) < 0)


def test_background_and_foreground_decoding_agree(tmp_path):
    path = _write(tmp_path / "clip.mp4", 25)
    t_bg, f_bg = _read_all(open_video(path, background=True))
    t_fg, f_fg = _read_all(open_video(path, background=False))
    np.testing.assert_array_equal(t_bg, t_fg)
    for a, b in zip(f_bg, f_fg, strict=True):
        np.testing.assert_array_equal(a, b)


def test_source_can_be_iterated_twice_and_stopped_early(tmp_path):
    path = _write(tmp_path / "clip.mp4", 30)
    source = open_video(path)
    for i, _ in enumerate(source):
        if i == 4:
            break
    deadline = time.monotonic() + 5
    while any(t.name == "facepulse-decode" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "decode thread still alive after the loop stopped"
        time.sleep(0.02)
    times, _ = _read_all(source)
    assert len(times) == 30


def test_fps_argument_overrides_nominal_rate_only(tmp_path):
    path = _write(tmp_path / "clip.mp4", 10)
    source = open_video(path, fps=25.0)
    assert source.info.fps == 25.0
    times, _ = _read_all(source)
    np.testing.assert_allclose(times, np.arange(10) / 30, atol=2e-3)  # still the file's own


def test_raw_stream_without_timestamps_warns_and_uses_nominal_rate(tmp_path):
    path = tmp_path / "clip.h264"
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(_frame(i), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    source = open_video(path)
    with pytest.warns(RuntimeWarning, match="no timestamps"):
        times, _ = _read_all(source)
    np.testing.assert_allclose(times, np.arange(8) / source.info.fps)


def test_real_video_info_and_first_frames():
    path = shared_data_dir() / "ubfc_rppg_dev" / "subject3" / "vid.mp4"
    source = open_video(path)
    assert (source.info.width, source.info.height) == (640, 480)
    assert source.info.n_frames == 1802
    assert source.info.fps == pytest.approx(29.55, abs=0.05)
    assert source.info.duration_s == pytest.approx(61.0, abs=0.2)
    for i, (t_s, frame) in enumerate(source):
        assert frame.shape == (480, 640, 3)
        if i == 0:
            assert t_s == 0.0
        if i == 59:
            assert t_s == pytest.approx(59 / 29.55, abs=0.01)
            break


# ----------------------------------------------------------------------- file errors


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(InputError, match=r"nope\.mp4: video file not found"):
        open_video(tmp_path / "nope.mp4")


def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n")
    with pytest.raises(InputError, match=r"notes\.mp4: not a video") as info:
        open_video(path)
    assert "\n" not in str(info.value)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "sound.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
    with pytest.raises(InputError, match=r"sound\.wav: no video stream"):
        open_video(path)


def test_zero_frames(tmp_path):
    # A Matroska file with a video stream that never receives a packet (audio only).
    path = tmp_path / "empty.mkv"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        audio = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*audio.encode(frame), *audio.encode()]:
            container.mux(packet)
    source = open_video(path)
    with pytest.raises(InputError, match=r"empty\.mkv: the video contains no frames"):
        _read_all(source)


def test_undecodable_first_frame_names_frame_zero(tmp_path):
    good = _write(tmp_path / "good.mkv", 10)
    bad = tmp_path / "garbage.mkv"
    rng = np.random.default_rng(0)
    with av.open(str(good)) as src, av.open(str(bad), "w") as dst:
        in_stream = src.streams.video[0]
        out_stream = dst.add_stream_from_template(in_stream)
        for packet in src.demux(in_stream):
            if packet.size == 0:
                continue
            junk = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
            junk.pts, junk.dts, junk.time_base = packet.pts, packet.dts, packet.time_base
            junk.stream = out_stream
            dst.mux(junk)
    source = open_video(bad)
    with pytest.raises(InputError, match=r"garbage\.mkv: cannot decode frame 0"):
        _read_all(source)


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_mid_stream_keeps_decoded_frames_and_warns(tmp_path, damage):
    path = _write(tmp_path / "clip.mp4", 60, options={"movflags": "faststart"})
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        middle = len(data) // 2
        noise = np.random.default_rng(2).integers(0, 256, 2000, dtype=np.uint8)
        data[middle : middle + 2000] = noise.tobytes()
    path.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        times, frames = _read_all(open_video(path))
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert 0 < len(frames) < 60
    assert len(messages) == 1, messages
    assert "clip.mp4" in messages[0]
    assert f"frame {len(frames)}" in messages[0]
    np.testing.assert_allclose(times, np.arange(len(frames)) / 30, atol=2e-3)


def test_truncated_matroska_ending_silently_is_reported(tmp_path):
    path = _write(tmp_path / "clip.mkv", 60)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match=r"clip\.mkv: stream ended at frame \d+ .*truncated"):
        _, frames = _read_all(open_video(path))
    assert 0 < len(frames) < 60


def test_complete_file_does_not_warn(tmp_path):
    path = _write(tmp_path / "clip.mkv", 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, frames = _read_all(open_video(path))
    assert len(frames) == 20


def test_timestamps_argument_is_refused_for_files(tmp_path):
    path = _write(tmp_path / "clip.mp4", 5)
    with pytest.raises(ConfigError, match="timestamps_s"):
        open_video(path, timestamps_s=[0, 1, 2, 3, 4])


# --------------------------------------------------------------------- image folders


def _write_folder(folder: Path, numbers: list[int]) -> None:
    folder.mkdir()
    for k, number in enumerate(numbers):
        bgr = cv2.cvtColor(_frame(k), cv2.COLOR_RGB2BGR)
        # Written in shuffled order so the directory order cannot be relied on.
        cv2.imwrite(str(folder / f"Image{number}.png"), bgr)


def test_image_folder_natural_order_and_rgb(tmp_path):
    numbers = [1, 2, 10, 11, 100]  # lexical order would be 1, 10, 100, 11, 2
    _write_folder(tmp_path / "frames", numbers)
    (tmp_path / "frames" / "notes.txt").write_text("ignored")
    source = open_video(tmp_path / "frames", fps=20)
    assert source.info.n_frames == 5 and source.info.fps == 20
    assert (source.info.width, source.info.height) == (W, H)
    times, frames = _read_all(source)
    np.testing.assert_allclose(times, np.arange(5) / 20)
    for k, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, _frame(k))  # PNG is lossless; RGB order kept


def test_image_folder_with_own_timestamps(tmp_path):
    _write_folder(tmp_path / "frames", [5, 6, 7, 8])
    stamps = [100.0, 100.04, 100.07, 100.13]
    source = open_video(tmp_path / "frames", timestamps_s=stamps)
    times, _ = _read_all(source)
    np.testing.assert_allclose(times, np.array(stamps) - 100.0)
    assert source.info.fps == pytest.approx(3 / 0.13)


def test_image_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(InputError, match=r"empty: no images"):
        open_video(empty, fps=30)
    _write_folder(tmp_path / "frames", [1, 2, 3])
    with pytest.raises(InputError, match=r"frames: fps is required"):
        open_video(tmp_path / "frames")
    with pytest.raises(InputError, match=r"timestamps_s has 2 values for 3 frames"):
        open_video(tmp_path / "frames", timestamps_s=[0.0, 0.1])
    with pytest.raises(InputError, match=r"increase strictly \(frame 2\)"):
        open_video(tmp_path / "frames", timestamps_s=[0.0, 0.1, 0.1])
    with pytest.raises(InputError, match="fps must be positive"):
        open_video(tmp_path / "frames", fps=0)


def test_image_folder_unreadable_frame_names_file_and_index(tmp_path):
    _write_folder(tmp_path / "frames", [1, 2, 3])
    (tmp_path / "frames" / "Image2.png").write_bytes(b"not a png")
    source = open_video(tmp_path / "frames", fps=30)
    with pytest.raises(InputError, match=r"Image2\.png: cannot read image \(frame 1\)"):
        _read_all(source)


# ----------------------------------------------------------------------------- arrays


def test_array_source():
    frames = np.stack([_frame(i) for i in range(12)])
    source = open_video(frames, fps=24)
    assert isinstance(source, ArraySource)
    assert source.info == VideoInfo(None, 24.0, 12, W, H, 12 / 24)
    times, out = _read_all(source)
    np.testing.assert_allclose(times, np.arange(12) / 24)
    np.testing.assert_array_equal(np.stack(out), frames)
    t_irregular = np.cumsum(np.r_[0, np.full(11, 0.05)]) + 3.0
    times, _ = _read_all(open_video(frames, timestamps_s=t_irregular))
    np.testing.assert_allclose(times, t_irregular - 3.0)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, H, W), np.uint8), r"shape \(T, H, W, 3\)"),
        (np.zeros((4, H, W, 4), np.uint8), r"shape \(T, H, W, 3\)"),
        (np.zeros((4, H, W, 3), np.float32), "uint8"),
        (np.zeros((0, H, W, 3), np.uint8), "no frames"),
    ],
)
def test_array_errors(array, message):
    with pytest.raises(InputError, match=message):
        open_video(array, fps=30)


def test_array_needs_fps():
    with pytest.raises(InputError, match="fps is required"):
        open_video(np.zeros((3, H, W, 3), np.uint8))


def test_other_objects_are_refused():
    with pytest.raises(InputError, match="cannot open list"):
        open_video([1, 2, 3])


def test_decoding_gives_pyav_own_rgb_conversion_bit_for_bit(tmp_path):
    """The reused swscale converter (one per pass, not one per frame) changes no pixel."""
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30, options={"crf": "18", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for _ in range(12):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        expected = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    _, frames = _read_all(open_video(path))
    assert len(frames) == len(expected) == 12
    for a, b in zip(frames, expected, strict=True):
        assert a.dtype == np.uint8 and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)


def test_decoder_threads_leave_the_face_stage_two_cores(monkeypatch):
    import os

    from facepulse.io.video import decoder_threads

    vga, uhd = 640 * 480, 3840 * 2160
    for cores, pixels, expected in ((1, vga, 1), (2, vga, 1), (3, vga, 1), (2, uhd, 0), (4, vga, 2), (16, uhd, 14)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        assert decoder_threads(pixels) == expected, (cores, pixels)
