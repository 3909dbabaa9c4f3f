"""Synthetic face videos: exact ground truth, the pulse really in the pixels, determinism,
the on-disk layout and its reader, the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import signal as sps

from facepulse.datasets import get_reader
from facepulse.errors import ConfigError, InputError
from facepulse.signal.hr import estimate_hr_bpm, windowed_hr
from facepulse.synth import (
    CameraParams,
    CodecParams,
    LightingParams,
    MotionParams,
    OpticsParams,
    PhysiologyParams,
    SynthParams,
    apply_codec,
    generate_video,
    sample_params,
    write_dataset,
    write_video,
)
from facepulse.synth.optics import flicker_gain
from facepulse.synth.physiology import hr_trajectory_bpm, pulse_template, simulate_physiology

QUIET_HRV = dict(rsa_bpm=0.5, lf_bpm=0.3)


def _still(duration_s=30.0, hr_bpm=75.0, amplitude=0.004, size=(128, 128), **optics) -> SynthParams:
    return SynthParams(
        duration_s=duration_s,
        camera=CameraParams(width=size[0], height=size[1], fps=30.0),
        physiology=PhysiologyParams(hr_bpm=hr_bpm, **QUIET_HRV),
        optics=OpticsParams(pulse_amplitude=amplitude, **optics),
    )


@pytest.fixture(scope="module")
def pulse_video():
    return generate_video(_still(duration_s=60.0, hr_bpm=75.0), seed=3)


@pytest.fixture(scope="module")
def no_pulse_video():
    return generate_video(_still(duration_s=60.0, hr_bpm=75.0, amplitude=0.0), seed=3)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------- physiology


def test_pulse_template_has_systolic_peak_and_dicrotic_notch():
    phase = np.linspace(0, 1, 2001)
    y = pulse_template(phase)
    assert y[0] == pytest.approx(0.0, abs=2e-3) and y.max() == pytest.approx(1.0, abs=1e-5)
    d = np.diff(y)
    maxima = phase[1:-1][(d[:-1] > 0) & (d[1:] <= 0)]
    minima = phase[1:-1][(d[:-1] < 0) & (d[1:] >= 0)]
    # systolic peak, then a notch, then a smaller diastolic peak, then the foot (~phase 1)
    assert len(maxima) == 2 and len(minima) == 2 and minima[1] > 0.95
    assert 0.15 < maxima[0] < minima[0] < maxima[1]
    assert y[np.searchsorted(phase, maxima[1])] < 0.8
    # smooth across the beat boundary (periodic)
    assert pulse_template(np.array([1.0 - 1e-6]))[0] == pytest.approx(pulse_template(np.array([1e-6]))[0], abs=1e-4)


@pytest.mark.parametrize(
    "physiology",
    [
        PhysiologyParams(hr_bpm=40.0, rsa_bpm=0, lf_bpm=0),
        PhysiologyParams(hr_bpm=180.0, rsa_bpm=0, lf_bpm=0),
        PhysiologyParams(hr_bpm=60.0, hr_trajectory="drift", hr_end_bpm=120.0, rsa_bpm=0, lf_bpm=0),
        PhysiologyParams(hr_bpm=70.0, hr_trajectory="step", hr_end_bpm=130.0, hr_change_time_s=30.0,
                         hr_change_duration_s=4.0, rsa_bpm=0, lf_bpm=0),
    ],
    ids=["constant40", "constant180", "drift", "step"],
)
def test_ppg_beats_follow_requested_hr_trajectory(physiology):
    duration_s, fs = 60.0, 500.0
    t = np.arange(int(duration_s * fs)) / fs
    truth = simulate_physiology(t, physiology, duration_s, np.random.default_rng(0))
    # Independent check: find the systolic peaks in the waveform itself.
    hr_max = max(physiology.hr_bpm, physiology.hr_end_bpm or 0)
    peaks, _ = sps.find_peaks(truth.ppg, distance=int(0.6 * fs * 60 / hr_max), prominence=0.3)
    t_peaks = t[peaks]
    ibi_hr = 60.0 / np.diff(t_peaks)
    mid = (t_peaks[1:] + t_peaks[:-1]) / 2
    requested = hr_trajectory_bpm(mid, physiology, duration_s)
    assert np.max(np.abs(ibi_hr - requested)) < 1.0 + 0.02 * requested.max()
    # The beat list is the waveform's peaks (find_peaks misses a peak cut by the ends).
    inner = truth.beat_times_s[(truth.beat_times_s > 0.5) & (truth.beat_times_s < duration_s - 0.5)]
    gap = np.abs(inner[:, None] - t_peaks[None, :])
    assert np.all(gap.min(axis=1) <= 1 / fs)  # every true beat is a waveform peak ...
    assert len(t_peaks) - len(inner) <= 2  # ... and there are no others (bar the ends)
    # Per-sample HR truth is the requested trajectory when there is no HRV.
    assert np.allclose(truth.hr_bpm, hr_trajectory_bpm(t, physiology, duration_s), atol=1e-9)


def test_hrv_and_respiration_vary_the_rate_around_the_trajectory():
    phys = PhysiologyParams(hr_bpm=70.0, rsa_bpm=4.0, lf_bpm=2.0, resp_rate_per_min=12.0)
    duration_s, fs = 120.0, 250.0
    t = np.arange(int(duration_s * fs)) / fs
    truth = simulate_physiology(t, phys, duration_s, np.random.default_rng(1))
    ibi_hr = 60.0 / np.diff(truth.beat_times_s)
    # Beat-to-beat rates follow the instantaneous truth, and vary (HRV is there).
    mid = (truth.beat_times_s[1:] + truth.beat_times_s[:-1]) / 2
    assert np.max(np.abs(ibi_hr - np.interp(mid, t, truth.hr_bpm))) < 1.5
    assert np.std(ibi_hr) > 1.5
    assert abs(np.mean(truth.hr_bpm) - 70.0) < 1.5
    # Respiratory sinus arrhythmia: HR correlates with breathing.
    assert np.corrcoef(truth.hr_bpm, truth.resp)[0, 1] > 0.5


def test_physiology_is_identical_at_any_sampling():
    phys = PhysiologyParams(hr_bpm=88.0)
    fine = np.arange(0, 10, 0.001)
    coarse = fine[::40]
    a = simulate_physiology(fine, phys, 10.0, np.random.default_rng(5))
    b = simulate_physiology(coarse, phys, 10.0, np.random.default_rng(5))
    assert np.allclose(a.ppg[::40], b.ppg) and np.allclose(a.hr_bpm[::40], b.hr_bpm)


# ----------------------------------------------------------------- the pulse in the pixels


def test_pos_on_ideal_skin_trace_recovers_true_hr(pulse_video):
    from facepulse.methods import apply_method

    rgb = pulse_video.mean_skin_rgb()
    bvp = apply_method("pos", rgb, pulse_video.fps)
    hr = estimate_hr_bpm(bvp, pulse_video.fps)
    assert abs(hr - pulse_video.hr_bpm.mean()) < 1.0
    # Polarity and shape: the recovered pulse follows the truth.
    assert np.corrcoef(bvp, pulse_video.ppg)[0, 1] > 0.3


def test_pos_recovers_true_hr_at_another_rate_and_skin_type():
    video = generate_video(_still(duration_s=20.0, hr_bpm=128.0, fitzpatrick=4), seed=8)
    from facepulse.methods import METHODS

    bvp = METHODS.get("pos")(video.mean_skin_rgb(), video.fps)
    assert abs(estimate_hr_bpm(bvp, video.fps) - video.hr_bpm.mean()) < 1.0


@pytest.mark.filterwarnings("ignore:FastICA did not converge")
def test_no_method_finds_a_consistent_hr_without_pulse(pulse_video, no_pulse_video):
    from facepulse.methods import METHODS, apply_method

    true_hr = pulse_video.hr_bpm.mean()
    with_pulse = pulse_video.mean_skin_rgb()
    without = no_pulse_video.mean_skin_rgb()
    # The two videos differ only by the pulse (same seed, same noise draws).
    assert np.abs(with_pulse - without).max() < 3.0
    checked = 0
    for name in METHODS.names():
        try:
            bvp0 = apply_method(name, without, no_pulse_video.fps)
            bvp1 = apply_method(name, with_pulse, pulse_video.fps)
        except (TypeError, ConfigError):  # a method that needs other inputs (e.g. a model)
            continue
        w0 = windowed_hr(bvp0, 30.0, window_s=5.0, step_s=5.0).hr_bpm
        w1 = windowed_hr(bvp1, 30.0, window_s=5.0, step_s=5.0).hr_bpm
        # 12 independent 5-s windows: with the pulse they agree on the true HR; without
        # it, hits are chance (a random peak in 42-210 bpm lands within 5 bpm ~6 % of
        # the time).
        if name == "pos":  # the reference method sees the pulse when it is there
            assert np.sum(np.abs(w1 - true_hr) < 5.0) >= 10, (name, w1)
        assert np.sum(np.abs(w0 - true_hr) < 5.0) <= 3, (name, w0)
        checked += 1
    assert checked >= 1


def test_pulse_only_on_skin_and_strongest_in_green():
    base = _still(duration_s=3.0, amplitude=0.0)
    strong = dataclasses.replace(base, optics=OpticsParams(pulse_amplitude=0.05))
    a, b = generate_video(base, seed=2), generate_video(strong, seed=2)
    changed = np.any(a.frames != b.frames, axis=3)
    assert changed.any()
    near_skin = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0 for m in a.skin_mask])
    assert not np.any(changed & ~near_skin)  # zero off skin
    # Per-channel pulse strength follows the blood volume pulse vector (green strongest).
    rgb = b.mean_skin_rgb()
    ac = np.array([np.corrcoef(rgb[:, c], -b.ppg)[0, 1] * rgb[:, c].std() / rgb[:, c].mean() for c in range(3)])
    assert np.all(ac > 0) and np.argmax(ac) == 1


def test_motion_moves_face_and_its_skin_mask():
    params = dataclasses.replace(
        _still(duration_s=4.0),
        motion=MotionParams(translation_rms_frac=0.08, rotation_rms_deg=5, slow_band_hz=(0.2, 2.0)),
    )
    video = generate_video(params, seed=4)
    boxes = video.truth.face_boxes_xyxy
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert centre.std(axis=0).max() > 1.0
    ys, xs = zip(*[np.argwhere(m).mean(axis=0) for m in video.skin_mask])
    assert np.corrcoef(xs, centre[:, 0])[0, 1] > 0.9 and np.corrcoef(ys, centre[:, 1])[0, 1] > 0.9


def test_mains_flicker_cancels_over_a_full_period_and_aliases_otherwise():
    t = np.arange(300) / 30.0
    assert np.allclose(flicker_gain(t, 1 / 100, 100.0, 0.2), 1.0)
    g = flicker_gain(t, 1 / 500, 100.0, 0.2)
    freq, power = sps.periodogram(g - g.mean(), fs=30.0)
    assert freq[np.argmax(power)] == pytest.approx(10.0)  # |100 - 3 x 30| Hz


def test_h264_damages_frames_and_ffv1_is_lossless():
    video = generate_video(_still(duration_s=2.0), seed=1)
    same = apply_codec(video.frames, video.fps, CodecParams(codec="ffv1"))
    assert np.array_equal(same, video.frames)
    lossy = apply_codec(video.frames, video.fps, CodecParams(codec="h264", crf=35))
    assert lossy.shape == video.frames.shape and not np.array_equal(lossy, video.frames)
    assert np.abs(lossy.astype(int) - video.frames).mean() < 8


# ----------------------------------------------------------------- determinism, disk layout, reader


def test_h264_encoding_is_deterministic():
    import io

    from facepulse.synth.writer import VideoEncoder

    params = sample_params("hard", seed=5, base=SynthParams(duration_s=3.0, camera=CameraParams(width=96, height=96)))
    frames = generate_video(params, 5).frames
    outputs = set()
    for _ in range(4):
        buffer = io.BytesIO()
        encoder = VideoEncoder(buffer, 96, 96, 30.0, params.codec)
        for frame in frames:
            encoder.write(frame)
        encoder.close()
        outputs.add(buffer.getvalue())
    assert len(outputs) == 1


def test_same_seed_same_video_different_seed_different_video():
    params = sample_params("hard", seed=5, base=SynthParams(duration_s=2.0, camera=CameraParams(width=64, height=64)))
    a, b, c = generate_video(params, 5), generate_video(params, 5), generate_video(params, 6)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.ppg, b.ppg)
    assert not np.array_equal(a.frames, c.frames)


def test_dataset_is_byte_identical_for_a_seed_and_resumes(tmp_path):
    base = SynthParams(duration_s=2.0, camera=CameraParams(width=64, height=48))
    write_dataset(tmp_path / "a", n_videos=3, scenario="motion", seed=11, base=base)
    write_dataset(tmp_path / "b", n_videos=2, scenario="motion", seed=11, base=base)
    # Interrupted mid-video: a stale temp file, the video's meta.json missing.
    (tmp_path / "b/videos/v00001/meta.json").unlink()
    (tmp_path / "b/videos/v00001/.video.mkv.tmp").write_bytes(b"half a video")
    first = (tmp_path / "b/videos/v00000/video.mkv").stat().st_mtime_ns
    results = write_dataset(tmp_path / "b", n_videos=3, scenario="motion", seed=11, base=base)
    assert [r.skipped for r in results] == [True, False, False]
    assert (tmp_path / "b/videos/v00000/video.mkv").stat().st_mtime_ns == first
    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert files_a.keys() == files_b.keys() and files_a == files_b
    write_dataset(tmp_path / "c", n_videos=1, scenario="motion", seed=12, base=base)
    assert _files(tmp_path / "c")["videos/v00000/video.mkv"] != files_a["videos/v00000/video.mkv"]
    with pytest.raises(ConfigError, match="scenario"):
        write_dataset(tmp_path / "a", n_videos=3, scenario="still", seed=11, base=base)


def test_interrupted_video_leaves_nothing_that_looks_finished(tmp_path):
    params = _still(duration_s=2.0, size=(64, 64))
    calls = []

    def stop_after_ten():
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_video(tmp_path / "v", params, 0, on_frame=stop_after_ten)
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == []
    assert not write_video(tmp_path / "v", params, 0).skipped
    assert write_video(tmp_path / "v", params, 0).skipped


def test_reader_loads_dataset_and_truth_lines_up_with_decoded_frames(tmp_path):
    base = SynthParams(duration_s=3.0, camera=CameraParams(width=64, height=64, fps=25.0))
    write_dataset(tmp_path, n_videos=2, scenario="dark-skin", seed=2, base=base)
    reader = get_reader("synthetic", tmp_path)
    records = reader.records()
    assert [r.video_id for r in records] == ["v00000", "v00001"]
    assert records[0].tags["scenario"] == "dark-skin" and records[0].tags["fitzpatrick"] in ("5", "6")
    rec = records[1]
    ref = reader.load_reference(rec)
    decoded = list(reader.open_video(rec))
    assert len(decoded) == len(ref.ppg) == len(ref.frame_t_s) == 75
    times = np.array([t for t, _ in decoded])
    assert np.max(np.abs(times - ref.frame_t_s)) < 1e-3  # Matroska stores milliseconds
    assert np.allclose(ref.frame_t_s, np.arange(75) / 25.0)
    # meta.json holds everything needed to re-render the video bit for bit.
    meta = reader.load_meta(rec)
    again = generate_video(SynthParams.from_dict(meta["params"]), meta["seed"])
    assert np.array_equal(np.stack([f for _, f in decoded]), again.frames)
    assert np.allclose(ref.ppg, again.ppg) and np.allclose(ref.hr_bpm, again.hr_bpm)
    beats = reader.load_beat_times_s(rec)
    assert np.allclose(beats, again.beat_times_s)
    truth = reader.load_truth(rec)
    assert np.allclose(truth["skin_g"], again.mean_skin_rgb()[:, 1])


def test_reader_rejects_a_broken_dataset(tmp_path):
    with pytest.raises(InputError, match="dataset.json"):
        get_reader("synthetic", tmp_path)
    base = SynthParams(duration_s=2.0, camera=CameraParams(width=32, height=32))
    write_dataset(tmp_path / "d", n_videos=1, base=base)
    frames_csv = tmp_path / "d/videos/v00000/frames.csv"
    lines = frames_csv.read_text().splitlines()
    lines[5] = lines[5].replace(",", ",x", 1)
    frames_csv.write_text("\n".join(lines))
    reader = get_reader("synthetic", tmp_path / "d")
    with pytest.raises(InputError, match=r"frames\.csv: line 6"):
        reader.load_reference(reader.records()[0])


def test_end_to_end_face_detector_and_trace_find_the_pulse(tmp_path):
    from facepulse.methods import apply_method
    from facepulse.roi.trace import extract_trace

    params = _still(duration_s=20.0, hr_bpm=97.0, size=(160, 120))
    write_video(tmp_path / "v", params, seed=11)
    trace = extract_trace(tmp_path / "v/video.mkv")
    assert trace.frames_without_face == 0 and trace.valid.all()
    table = np.genfromtxt(tmp_path / "v/frames.csv", delimiter=",", names=True)
    # The detected face is where the generator put it.
    box_err = np.abs(np.nanmedian(trace.boxes, axis=0) - np.median(
        np.column_stack([table["face_x0"], table["face_y0"], table["face_x1"], table["face_y1"]]), axis=0))
    assert box_err.max() < 0.1 * (table["face_y1"] - table["face_y0"]).mean()
    bvp = apply_method("pos", trace.rgb, trace.fps)
    assert abs(estimate_hr_bpm(bvp, trace.fps) - table["hr_bpm"].mean()) < 3.0


# ----------------------------------------------------------------- parameters, scenarios, CLI


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: PhysiologyParams(hr_bpm=250.0), "physiology.hr_bpm"),
        (lambda: PhysiologyParams(hr_trajectory="step"), "physiology.hr_end_bpm"),
        (lambda: PhysiologyParams(hr_trajectory="zigzag"), "physiology.hr_trajectory"),
        (lambda: OpticsParams(fitzpatrick=7), "optics.fitzpatrick"),
        (lambda: CameraParams(width=101), "camera.width"),
        (lambda: CameraParams(fps=30.0, exposure_s=0.05), "camera.exposure_s"),
        (lambda: CodecParams(codec="vp9"), "codec.codec"),
        (lambda: LightingParams(light_rgb=(1.0, 1.0)), "lighting.light_rgb"),
        (lambda: SynthParams().with_overrides({"optics.colour": 1}), "optics.colour"),
        (lambda: SynthParams(duration_s=5.0, physiology=PhysiologyParams(
            hr_trajectory="step", hr_end_bpm=90.0, hr_change_time_s=9.0)), "physiology.hr_change_time_s"),
    ],
)
def test_bad_parameters_raise_one_line_config_error_naming_the_field(make, field):
    with pytest.raises(ConfigError) as err:
        make()
    assert str(err.value).startswith(field) and "\n" not in str(err.value)


def test_params_round_trip_and_scenarios():
    base = SynthParams(duration_s=12.0, camera=CameraParams(width=96, height=72, fps=25.0))
    people = set()
    for name in ("still", "motion", "lighting", "dark-skin", "compressed", "hard", "mixed"):
        params = sample_params(name, seed=21, base=base)
        assert SynthParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params
        assert (params.duration_s, params.camera.width, params.camera.fps) == (12.0, 96, 25.0)
        people.add((params.physiology, params.optics.pulse_amplitude))
    assert len(people) == 1  # one seed = one person under every scenario
    assert sample_params("dark-skin", 21, base).optics.fitzpatrick >= 5
    assert sample_params("compressed", 21, base).codec.codec == "h264"
    hard = sample_params("hard", 21, base)
    assert hard.motion.talk_rms_deg > 0 and hard.lighting.shadow_depth > 0 and hard.codec.codec == "h264"
    assert sample_params("still", 21, base).motion.is_still
    assert sample_params("still", 21, base, {"codec.crf": 40}).codec.crf == 40


def test_cli_writes_the_same_bytes_as_the_api_and_names_bad_options(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "facepulse.cli", "synth"]
    args = ["--n-videos", "1", "--duration-s", "2", "--fps", "20", "--size", "64x48", "--scenario", "lighting",
            "--seed", "4", "--quiet"]
    run = subprocess.run([*cmd, str(tmp_path / "cli"), *args], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    base = SynthParams(duration_s=2.0, camera=CameraParams(width=64, height=48, fps=20.0))
    write_dataset(tmp_path / "api", n_videos=1, scenario="lighting", seed=4, base=base)
    assert _files(tmp_path / "cli") == _files(tmp_path / "api")  # also: another process, same bytes
    bad = subprocess.run([*cmd, str(tmp_path / "x"), "--size", "64by48"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2
    last_line = bad.stderr.strip().splitlines()[-1]
    assert last_line == "facepulse: error: --size='64by48': must be WIDTHxHEIGHT, e.g. 640x480"
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------- --face
def _face_photo(path: Path) -> np.ndarray:
    """A face photo made at test time: one rendered frame of the built-in face, mirrored
    left-right and tinted (so that it is not the built-in photo), saved as PNG."""
    frame = generate_video(SynthParams(duration_s=1.0, camera=CameraParams(width=320, height=240, fps=2.0)), seed=5).frames[0]
    photo = np.ascontiguousarray(frame[:, ::-1])
    photo = np.clip(photo.astype(np.float64) * [1.1, 0.95, 0.85], 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    return photo


def _finds_a_face(frames: np.ndarray) -> bool:
    from facepulse.face.detectors import make_detector

    detector = make_detector("mediapipe", static=True)
    return all(len(detector.detect(f)) == 1 for f in frames)


def test_synth_takes_its_face_from_an_image_and_a_video(tmp_path):
    from facepulse.synth.writer import VideoEncoder

    photo = _face_photo(tmp_path / "face.png")
    # a tiny video whose face appears in its third frame
    with_face = cv2.resize(photo, (160, 120), interpolation=cv2.INTER_AREA)
    enc = VideoEncoder(tmp_path / "face.mkv", 160, 120, 10.0, CodecParams(codec="ffv1"))
    for frame in [np.full_like(with_face, 90), np.full_like(with_face, 140), with_face, with_face]:
        enc.write(frame)
    enc.close()

    params = SynthParams(duration_s=1.0, camera=CameraParams(width=128, height=128, fps=10.0))
    builtin = generate_video(params, seed=2)
    for source in ("face.png", "face.mkv"):
        video = generate_video(dataclasses.replace(params, face=str(tmp_path / source)), seed=2)
        assert video.frames.shape == builtin.frames.shape
        assert _finds_a_face(video.frames[::3])
        assert video.skin_mask.sum(axis=(1, 2)).min() > 500  # a pulse to measure
        # another face (mirrored, tinted): the pixels differ, the truth is the same person's
        assert np.abs(video.frames.astype(int) - builtin.frames).mean() > 5
        np.testing.assert_array_equal(video.ppg, builtin.ppg)
    # skin-tone variation works on the given face too: darker skin, same background
    dark = generate_video(
        dataclasses.replace(params, face=str(tmp_path / "face.png"), optics=OpticsParams(fitzpatrick=6)), seed=2
    )
    light = generate_video(dataclasses.replace(params, face=str(tmp_path / "face.png")), seed=2)
    skin = light.skin_mask[0]
    assert dark.frames[0][skin].mean() < light.frames[0][skin].mean() - 30
    assert np.abs(dark.frames[0][0:8, 0:8].astype(int) - light.frames[0][0:8, 0:8]).max() <= 8  # sensor noise only


def test_synth_cli_face_option_and_one_line_errors(tmp_path):
    _face_photo(tmp_path / "face.png")
    cv2.imwrite(str(tmp_path / "wall.png"), np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "facepulse.cli", "synth"]
    args = ["--n-videos", "1", "--duration-s", "1", "--fps", "10", "--size", "128x128", "--seed", "1", "--quiet"]
    run = subprocess.run([*cmd, str(tmp_path / "out"), *args, "--face", str(tmp_path / "face.png")],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    meta = json.loads((tmp_path / "out" / "videos" / "v00000" / "meta.json").read_text())
    assert meta["params"]["face"] == str((tmp_path / "face.png").resolve())
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["face"] == meta["params"]["face"]
    reader = get_reader("synthetic", tmp_path / "out")
    record = next(iter(reader.records()))
    frames = np.stack([f for _, f in reader.open_video(record)])
    assert frames.shape == (10, 128, 128, 3) and _finds_a_face(frames[::3])
    # re-rendering from meta.json gives the same frames (the face is part of the parameters)
    again = generate_video(SynthParams.from_dict(meta["params"]), meta["seed"])
    np.testing.assert_array_equal(again.frames, frames)  # FFV1: lossless

    for bad, expected in (("wall.png", "no face found"), ("missing.png", "file not found")):
        fail = subprocess.run([*cmd, str(tmp_path / f"out_{bad}"), *args, "--face", str(tmp_path / bad)],
                              capture_output=True, text=True, env=env)
        assert fail.returncode != 0
        lines = fail.stderr.strip().splitlines()
        assert lines[-1].startswith("facepulse: error: --face ") and bad in lines[-1] and expected in lines[-1], lines
        assert "Traceback" not in fail.stderr
        assert not (tmp_path / f"out_{bad}" / "dataset.json").exists()  # refused before any work


def test_face_parameter_round_trips_and_is_absent_by_default():
    assert "face" not in SynthParams().to_dict()  # files of built-in-face videos unchanged
    p = SynthParams(face="/data/me.png")
    assert SynthParams.from_dict(p.to_dict()) == p
    assert SynthParams().with_overrides({"face": "/x.jpg"}).face == "/x.jpg"
    with pytest.raises(ConfigError, match="face="):
        SynthParams(face="")
