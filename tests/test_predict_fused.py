"""The default predict path (issue 11): multi-region traces, fusion, quality reporting,
phone-video rotation, grayscale and short clips."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np
import pytest

import facepulse
from facepulse.errors import FacepulseError, SignalTooShortError
from facepulse.io.video import open_video
from facepulse.pipeline import predict_from_regions
from facepulse.roi.regions import DEFAULT_REGIONS, REGIONS, RegionSampler
from facepulse.roi.trace import extract_trace

HR_BPM = 78.0


def _render(width: int, height: int, duration_s: float, hr_bpm: float = HR_BPM, seed: int = 5):
    from facepulse.synth import SynthParams, generate_video

    params = SynthParams(duration_s=duration_s).with_overrides(
        {"physiology.hr_bpm": hr_bpm, "camera.width": width, "camera.height": height}
    )
    return generate_video(params, seed=seed)


def write_mp4(path: Path, frames: np.ndarray, fps: float, rotation_cw: int = 0) -> Path:
    """H.264 at high quality; ``rotation_cw`` writes a display matrix into the track
    header, as phones do for video stored sideways (players turn it clockwise by that)."""
    with av.open(str(path), "w") as container:
        # mbtree off and one thread: libx264 otherwise gives different bytes from run to run
        # under CPU load (seen as a flaky HR on a 4 s clip); see facepulse.synth.codecs
        options = {"crf": "10", "threads": "1", "x264-params": "mbtree=0"}
        stream = container.add_stream("libx264", rate=int(round(fps)), options=options)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv444p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    if rotation_cw:
        data = bytearray(path.read_bytes())
        at = data.find(b"tkhd")
        version = data[at + 4]
        matrix_at = at + 4 + (24 if version == 0 else 36) + 16  # box layout of ISO/IEC 14496-12
        one = 0x10000
        cos, sin = {90: (0, 1), 180: (-1, 0), 270: (0, -1)}[rotation_cw]
        data[matrix_at : matrix_at + 36] = struct.pack(
            ">9i", cos * one, sin * one, 0, -sin * one, cos * one, 0, 0, 0, 0x40000000
        )
        path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def portrait(tmp_path_factory):
    """A 14 s portrait face clip (120x160) stored upright and stored sideways + rotation tag."""
    video = _render(120, 160, 14.0)
    folder = tmp_path_factory.mktemp("phone")
    upright = write_mp4(folder / "upright.mp4", video.frames, video.fps)
    # stored as the sensor saw it: turned a quarter counter-clockwise, to be shown turned back
    sideways_frames = np.rot90(video.frames, k=1, axes=(1, 2))
    sideways = write_mp4(folder / "sideways.mp4", sideways_frames, video.fps, rotation_cw=90)
    return video, upright, sideways


def test_a_rotation_tag_is_honoured_when_decoding(portrait):
    video, upright, sideways = portrait
    a = open_video(upright)
    b = open_video(sideways)
    assert (b.info.width, b.info.height) == (a.info.width, a.info.height) == (120, 160)
    fa = next(iter(a))[1].astype(float)
    fb = next(iter(b))[1].astype(float)
    assert fb.shape == fa.shape
    assert np.abs(fa - fb).mean() < 2.0  # the same picture, up to codec noise


def test_a_rotated_phone_video_gives_the_same_hr_as_the_upright_one(portrait):
    video, upright, sideways = portrait
    r_up = facepulse.predict(upright)
    r_side = facepulse.predict(sideways)
    assert r_up.hr_bpm == pytest.approx(HR_BPM, abs=3.0)
    assert r_side.hr_bpm == pytest.approx(r_up.hr_bpm, abs=1.0)
    assert r_side.frames_without_face == r_up.frames_without_face


def test_regions_are_measured_in_one_pass_and_skin_matches_the_single_roi(portrait):
    video, upright, _ = portrait
    single = extract_trace(open_video(upright))
    multi = extract_trace(open_video(upright), regions=DEFAULT_REGIONS)
    names = multi.region_names
    assert {"skin", "forehead", "cheek_left", "cheek_right", "face", "box"} <= set(names)
    assert any(n.startswith("grid_") for n in names)
    assert multi.region_rgb.shape == (multi.n_frames, len(names), 3)
    # rgb is unchanged by measuring regions; the "skin" region is the same patch of skin,
    # sampled on the reduced reference crop
    np.testing.assert_array_equal(multi.rgb, single.rgb)
    assert np.nanmax(np.abs(multi.rgb - multi.region_rgb[:, names.index("skin")])) < 1.0
    # the box is not colour-filtered: it is larger than the skin-only face region
    sampler = RegionSampler(("face", "box"))
    frame = video.frames[0]
    from facepulse.face.detectors import make_detector

    face = make_detector("auto").detect(frame)[0]
    sampler.update(frame, face)
    masks = sampler.masks_in_frame(frame.shape[:2])
    assert masks["box"].sum() > 0 and masks["face"].sum() > 0
    # skin-filtered regions keep the eyes out: the eye landmarks fall outside "face"
    eye = face.landmarks_xy[159].round().astype(int)  # an upper-eyelid point
    assert not masks["face"][eye[1], eye[0]]


def test_rgb_can_come_from_a_region_instead_of_a_second_warp(portrait):
    # The fused default reads only the regions: its rgb is the regions' skin patch
    # (one warp a frame), and everything else about the trace is what it was.
    _, upright, _ = portrait
    multi = extract_trace(open_video(upright), regions=DEFAULT_REGIONS)
    lean = extract_trace(open_video(upright), regions=DEFAULT_REGIONS, rgb_region="skin")
    np.testing.assert_array_equal(lean.region_rgb, multi.region_rgb)
    np.testing.assert_array_equal(lean.rgb, multi.region_rgb[:, multi.region_names.index("skin")])
    np.testing.assert_array_equal(lean.valid, multi.valid)
    assert lean.preview_mask is not None and lean.preview_mask.any()
    assert lean.n_skin_px.min() > 0
    with pytest.raises(FacepulseError, match="rgb_region 'cheeks' must be one of regions"):
        extract_trace(open_video(upright), regions=("skin", "face"), rgb_region="cheeks")


def test_unknown_region_names_the_choices():
    with pytest.raises(FacepulseError, match="unknown region 'nose'.*forehead"):
        RegionSampler(("nose",))
    assert set(DEFAULT_REGIONS) <= set(REGIONS.names())


def test_grayscale_video_falls_back_to_luminance(tmp_path):
    video = _render(160, 120, 14.0, hr_bpm=90.0, seed=7)
    gray = video.frames.astype(float) @ np.array([0.299, 0.587, 0.114])
    frames = np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=3)
    for method in ("auto", "pos"):
        result = facepulse.predict(frames, fps=video.fps, method=method)
        assert result.hr_bpm == pytest.approx(90.0, abs=3.0), method
        assert any("grayscale" in w for w in result.quality["warnings"]), result.quality


def test_a_4_s_clip_works_with_a_short_window_and_fails_clearly_with_the_default(tmp_path):
    video = _render(320, 240, 4.0, hr_bpm=96.0, seed=10)
    path = write_mp4(tmp_path / "short.mp4", video.frames, video.fps)
    result = facepulse.predict(path, window_s=3.5, step_s=0.5)
    # a 3.5 s window resolves HR to a few bpm at best
    assert result.hr_bpm == pytest.approx(video.hr_bpm.mean(), abs=4.0)
    assert len(result.windows.hr_bpm) == 2
    with pytest.raises(SignalTooShortError, match=r"short\.mp4: video is 4\.0 s long, shorter than one 10 s"):
        facepulse.predict(path)


def test_noise_gets_no_hrv_and_says_why():
    rng = np.random.default_rng(0)
    n = 900
    t = np.arange(n) / 30.0
    rgb = 120 + rng.normal(0, 1.0, (n, 6, 3))
    result = predict_from_regions(t, rgb, 30.0)
    assert result.hrv_reason is not None and "noisy" in result.hrv_reason
    assert all(np.isnan(v) for v in result.hrv.values())
    assert result.quality["reliable"] is False
    assert any("confidence" in w for w in result.quality["warnings"])
    assert result.summary()["warnings"] == result.quality["warnings"]


def test_a_clean_pulse_is_reliable_and_gets_hrv():
    n = int(60 * 30.0)
    t = np.arange(n) / 30.0
    rng = np.random.default_rng(1)
    beat_phase = 2 * np.pi * np.cumsum(np.full(n, 72.0 / 60.0)) / 30.0
    wave = np.sin(beat_phase) + 0.3 * np.sin(2 * beat_phase)
    rgb = np.array([170.0, 130.0, 110.0]) * (1 + 0.01 * wave[:, None, None] * np.array([0.33, 0.77, 0.53]))
    rgb = np.repeat(rgb, 6, axis=1) + rng.normal(0, 0.05, (n, 6, 3))
    result = predict_from_regions(t, rgb, 30.0)
    assert result.hr_bpm == pytest.approx(72.0, abs=1.0)
    assert result.quality["reliable"], result.quality
    assert result.hrv_reason is None
    assert np.isfinite(result.hrv["sdnn_ms"])
    assert np.nanmin(result.windows.confidence) > 0.5


def test_single_method_hrv_is_gated_on_snr():
    from facepulse.pipeline import predict_from_trace

    rng = np.random.default_rng(2)
    n = 1800
    t = np.arange(n) / 30.0
    rgb = 120 + rng.normal(0, 1.0, (n, 3))
    result = predict_from_trace(t, rgb, 30.0, method="pos")
    assert result.hrv_reason is not None
    assert all(np.isnan(v) for v in result.hrv.values())
