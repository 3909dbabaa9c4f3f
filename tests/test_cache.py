"""Preprocessing cache: file layout and content, config hashing, failures, and resuming
after a real SIGINT / SIGKILL of `facepulse preprocess` (the result equals an
uninterrupted run, no temporary file is left)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from facepulse.datasets import get_reader
from facepulse.datasets.cache import (
    PreprocessConfig,
    cache_root,
    open_cached,
    preprocess_dataset,
)
from facepulse.errors import ConfigError, InputError
from facepulse.roi.crops import ClipCropper

N_VIDEOS = 5
ARRAYS = ("timestamps_s", "rgb", "valid", "interpolated", "boxes", "clips", "clip_boxes", "clip_valid", "ppg", "hr_bpm")


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    """Five 5-s still synthetic videos, 160x120 at 30 fps (each its own subject)."""
    from facepulse.synth.params import CameraParams, SynthParams
    from facepulse.synth.writer import write_dataset

    root = tmp_path_factory.mktemp("synth")
    base = SynthParams(duration_s=5.0, camera=CameraParams(width=160, height=120, fps=30.0))
    write_dataset(root, n_videos=N_VIDEOS, scenario="still", seed=3, base=base)
    return root


@pytest.fixture(scope="module")
def uninterrupted(synth_dir, tmp_path_factory):
    """One uninterrupted in-process run over the whole dataset."""
    cache = tmp_path_factory.mktemp("cache_ref")
    summary = preprocess_dataset(get_reader("synthetic", synth_dir), cache, PreprocessConfig(), workers=1, progress=False)
    return summary


def h5_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*.h5") if not p.name.startswith("."))


def leftovers(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def read_all(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in ARRAYS}


# --------------------------------------------------------------------- content


def test_cache_file_holds_trace_clips_and_reference(synth_dir, uninterrupted):
    summary = uninterrupted
    config = PreprocessConfig()
    assert summary.ok and summary.written == [f"v{i:05d}" for i in range(N_VIDEOS)] and not summary.skipped
    assert summary.root == cache_root(summary.root.parents[1], "synthetic", config)
    assert summary.root.name == config.hash() and (summary.root / "config.json").is_file()
    assert summary.frames == N_VIDEOS * 150 and summary.peak_rss_mb > 0
    assert leftovers(summary.root) == []

    reader = get_reader("synthetic", synth_dir)
    rec = reader.records()[1]
    truth = reader.load_truth(rec)
    with open_cached(summary.paths[rec.video_id]) as video:
        assert (video.dataset, video.video_id, video.subject_id) == ("synthetic", "v00001", "v00001")
        assert video.tags == rec.tags and video.fps == 30.0 and video.n_frames == 150
        assert video.config["size"] == 72 and video.config["detector"] == "mediapipe"
        assert video.config_hash == config.hash() and video.reference_alignment == "frame index"
        assert video.timestamps_s.shape == (150,) and video.rgb.shape == (150, 3) and video.valid.all()
        # One PPG value per frame, exactly the generator's (aligned by index).
        np.testing.assert_array_equal(video.ppg, truth["ppg"])
        np.testing.assert_array_equal(video.hr_bpm, truth["hr_bpm"])
        clips = video.clips(10, 40)
        assert clips.shape == (30, 72, 72, 3) and clips.dtype == np.uint8 and video.clip_valid.all()
        # The face crop is mostly face: the centre of the crop is skin, brighter than black.
        assert clips[:, 30:42, 30:42].mean() > 60
        with pytest.raises(InputError, match="frames 140:200 outside 0:150"):
            video.clips(140, 200)
    with h5py.File(summary.paths["v00001"], "r") as f:
        dset = f["clips"]
        assert dset.chunks == (30, 72, 72, 3)  # ~1 s of frames per chunk
        assert dset.compression == "gzip"


def test_cached_trace_is_the_trace_of_the_predict_path(synth_dir, uninterrupted):
    """The cache stores exactly what extract_trace gives with predict's settings."""
    from facepulse.face.detectors import make_detector
    from facepulse.face.tracker import FaceTracker
    from facepulse.roi.trace import extract_trace

    reader = get_reader("synthetic", synth_dir)
    rec = reader.records()[0]
    trace = extract_trace(reader.open_video(rec), FaceTracker(make_detector("auto")))
    with open_cached(uninterrupted.paths[rec.video_id]) as video:
        np.testing.assert_array_equal(video.timestamps_s, trace.timestamps_s)
        np.testing.assert_array_equal(video.rgb, trace.rgb)
        np.testing.assert_array_equal(video.valid, trace.valid)
        np.testing.assert_array_equal(video.boxes, trace.boxes)


def test_config_hash_separates_content_not_storage():
    base = PreprocessConfig()
    assert PreprocessConfig(size=64).hash() != base.hash()
    assert PreprocessConfig(detector="haar").hash() != base.hash()
    assert PreprocessConfig(clips=False).hash() != base.hash()
    assert PreprocessConfig(box_scale=1.2).hash() != base.hash()
    # "auto" is hashed as the detector it resolves to; storage settings are not hashed.
    assert PreprocessConfig(detector="auto").hash() == PreprocessConfig(detector=base.resolved().detector).hash()
    assert PreprocessConfig(compression="lzf").hash() == base.hash()
    assert PreprocessConfig(chunk_s=2.0, compression_level=4).hash() == base.hash()
    assert len(base.hash()) == 12
    with pytest.raises(ConfigError, match="field 'size'"):
        PreprocessConfig.create(size=4)
    with pytest.raises(ConfigError, match="unknown face detector 'yolo'"):
        PreprocessConfig.create(detector="yolo")


def test_open_cached_rejects_other_files(tmp_path):
    with pytest.raises(InputError, match="cache file not found"):
        open_cached(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputError, match=r"text\.h5: not a readable HDF5 file"):
        open_cached(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(InputError, match=r"other\.h5: not a facepulse cache file"):
        open_cached(tmp_path / "other.h5")


def test_cropper_smooths_the_box_and_marks_frames_before_the_first_face():
    rng = np.random.default_rng(0)
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[40:80, 60:100] = 200  # the "face": a bright 40 x 40 square centred at (80, 60)
    cropper = ClipCropper(size=16, box_scale=1.0, half_window=3)
    out, raw_centres = [], []
    for i in range(30):
        box = None if i < 2 else np.array([60.0, 40.0, 100.0, 80.0]) + rng.normal(0, 3, 4)
        if box is not None:
            raw_centres.append((box[0] + box[2]) / 2)
        out += cropper.push(frame, box)
    out += cropper.finish()
    assert len(out) == 30
    crops, boxes, ok = zip(*out)
    assert all(c.shape == (16, 16, 3) and c.dtype == np.uint8 for c in crops)
    # Frame 0's centred window (frames 0-3) already holds faces: every crop has a box.
    assert all(ok)
    assert crops[15][4:12, 4:12].min() == 200  # the crop is centred on the square
    centres = np.array([(b[0] + b[2]) / 2 for b in boxes[5:25]])
    assert np.std(np.diff(centres)) < 0.5 * np.std(np.diff(raw_centres))
    assert np.abs(centres - 80).max() < 3
    blind = ClipCropper(size=8, box_scale=1.0, half_window=1)
    first = blind.push(frame, None) + blind.push(frame, None) + blind.push(frame, None)
    assert [o[2] for o in first] == [False, False] and np.isnan(first[0][1]).all()
    assert not first[0][0].any()  # black


# --------------------------------------------------------------- failures / resume


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facepulse.cli", *args], capture_output=True, text=True,
                          timeout=600, **kw)


def test_failed_video_is_listed_and_the_rest_is_processed(synth_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data, ignore=shutil.ignore_patterns("v00002", "v00003", "v00004"))
    (data / "videos" / "v00000" / "frames.csv").write_text("frame,timestamp_s,ppg,hr_bpm\n0,0,oops,70\n")
    cache = tmp_path / "cache"
    result = run_cli("preprocess", str(data), "--dataset", "synthetic", "--cache-dir", str(cache), "-q")
    assert result.returncode == 2, result.stderr
    assert "facepulse: error: 1 of 2 videos failed" in result.stderr
    failed = [ln for ln in result.stderr.splitlines() if "FAILED" in ln]
    assert len(failed) == 1 and "FAILED v00000:" in failed[0] and "frames.csv: line 2 is not numbers" in failed[0]
    assert "1 videos written, 0 already cached, 1 failed" in result.stdout
    root = cache_root(cache, "synthetic", PreprocessConfig())
    assert [p.name for p in h5_files(root)] == ["v00001.h5"] and leftovers(root) == []


def _start(args: list[str]) -> subprocess.Popen:
    # Its own session: signals go to the whole process group, as a terminal's Ctrl-C does.
    # SIGINT back to its default first: a background job of a non-interactive shell (e.g.
    # `pytest ... &` in a script) inherits it ignored, and so would preprocess.
    return subprocess.Popen([sys.executable, "-m", "facepulse.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(predicate, proc: subprocess.Popen, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"preprocess ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for preprocess")
        time.sleep(0.02)


def test_preprocess_resumes_after_sigint_and_sigkill(synth_dir, uninterrupted, tmp_path):
    cache = tmp_path / "cache"
    root = cache_root(cache, "synthetic", PreprocessConfig())
    args = ["preprocess", str(synth_dir), "--dataset", "synthetic", "--cache-dir", str(cache), "--workers", "2", "-q"]

    # 1. Ctrl-C once the first video is finished: a clean stop, no temporary file left.
    proc = _start(args)
    _wait_for(lambda: root.is_dir() and len(h5_files(root)) >= 1, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    n_after_sigint = len(h5_files(root))
    assert 1 <= n_after_sigint < N_VIDEOS
    assert leftovers(root) == []

    # 2. SIGKILL (no chance to clean up) once one more video is finished.
    proc = _start(args)
    _wait_for(lambda: len(h5_files(root)) > n_after_sigint, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    n_after_kill = len(h5_files(root))
    assert n_after_kill < N_VIDEOS

    # 3. The rerun skips the finished videos, removes the dead run's temporaries, finishes.
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert f"{N_VIDEOS - n_after_kill} videos written, {n_after_kill} already cached, 0 failed" in result.stdout
    assert [p.name for p in h5_files(root)] == [f"v{i:05d}.h5" for i in range(N_VIDEOS)]
    assert leftovers(root) == []
    for path in h5_files(root):
        got, want = read_all(path), read_all(uninterrupted.paths[path.stem])
        for name in ARRAYS:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{path.name}:{name}")
