"""The `facepulse` command as a user runs it: outputs, and every user error as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from facepulse.paths import shared_data_dir

VITALLENS = shared_data_dir() / "vitallens_samples"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "facepulse.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def write_video(path: Path, frames: np.ndarray, fps: int = 30) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "bgr0"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    """12 s of a synthetic face at a known 84 bpm (lossless, 160x120)."""
    from facepulse.synth import SynthParams, write_video as synth_write
    from facepulse.synth.writer import VIDEO_FILE

    folder = tmp_path_factory.mktemp("face") / "clip"
    params = SynthParams(duration_s=12.0).with_overrides(
        {"physiology.hr_bpm": 84.0, "camera.width": 160, "camera.height": 120}
    )
    synth_write(folder, params, seed=3)
    return folder / VIDEO_FILE


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("facepulse: error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_predict_writes_json_csv_png(face_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli(
        "predict", str(face_video), "--window", "8", "--step", "2",
        "--json", str(out / "r.json"), "--csv", str(out / "r.csv"), "--plot", str(out / "r.png"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "heart rate" in proc.stdout
    data = json.loads((out / "r.json").read_text())
    n = len(data["timestamps_s"])
    assert n == 360 and len(data["bvp"]) == n
    assert data["fps"] == pytest.approx(30.0)
    assert abs(data["hr_bpm"] - 84.0) < 3.0
    hr_series = [h for h in data["windows"]["hr_bpm"] if h is not None]
    assert len(hr_series) == len(data["windows"]["t_center_s"]) == 3
    rows = (out / "r.csv").read_text().splitlines()
    assert rows[0].startswith("t_start_s,t_end_s,t_center_s,hr_bpm,snr_db")
    assert len(rows) == 1 + 3
    assert (out / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*"))  # no temp files left behind


def test_methods_lists_all_classic_methods() -> None:
    proc = run_cli("methods")
    assert proc.returncode == 0
    names = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert {"green", "ica", "chrom", "pos", "lgi", "pbv", "omit"} <= names


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    assert_one_line_error(run_cli("predict", str(missing)), "nope.mp4")


def test_undecodable_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 50)
    assert_one_line_error(run_cli("predict", str(bad)), "notes.mp4")


def test_truncated_file(tmp_path: Path) -> None:
    src = VITALLENS / "sample_video_1.mp4"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(src.read_bytes()[:2000])  # header only: nothing decodable
    assert_one_line_error(run_cli("predict", str(cut)), "cut.mp4")


def test_zero_frames(tmp_path: Path) -> None:
    empty = write_video(tmp_path / "empty.mkv", np.zeros((0, 64, 64, 3), np.uint8))
    assert_one_line_error(run_cli("predict", str(empty)), "empty.mkv")


def test_unknown_method(face_video: Path) -> None:
    proc = run_cli("predict", str(face_video), "--method", "magic")
    assert_one_line_error(proc, "magic", "pos")


def test_video_shorter_than_window(face_video: Path) -> None:
    proc = run_cli("predict", str(face_video), "--window", "30")
    assert_one_line_error(proc, "30")


def test_no_face_anywhere(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(90, 110, size=(90, 96, 128, 3), dtype=np.uint8)
    video = write_video(tmp_path / "wall.mkv", frames)
    proc = run_cli("predict", str(video), "--window", "2")
    assert_one_line_error(proc, "no face")
    assert proc.returncode == 3


def test_existing_outputs_survive_a_failed_run(face_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    out.write_text('{"kept": true}')
    proc = run_cli("predict", str(face_video), "--method", "magic", "--json", str(out))
    assert proc.returncode != 0
    assert json.loads(out.read_text()) == {"kept": True}


def test_usage_error_exits_2_without_traceback() -> None:
    proc = run_cli("predict", "--bogus-option")
    assert proc.returncode == 2
    assert "No such option" in proc.stderr and "Traceback" not in proc.stderr
