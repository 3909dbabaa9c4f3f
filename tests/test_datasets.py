"""Dataset readers: each one on a tiny fixture built here in that dataset's exact layout,
plus the UBFC reader on the real shared UBFC-rPPG subset."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facepulse.datasets import DATASETS, Reference, get_reader
from facepulse.errors import InputError
from facepulse.paths import shared_data_dir

PULSE_HZ = 1.25  # 75 bpm test pulse


def pulse(t_s: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * PULSE_HZ * np.asarray(t_s, dtype=np.float64))


def write_video(path: Path, n_frames: int, fps: float, size=(32, 24)) -> Path:
    """A tiny MJPG (.avi) or mp4v (.mp4) video whose frame k has grey level 10 k."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    assert writer.isOpened()
    for k in range(n_frames):
        writer.write(np.full((size[1], size[0], 3), (10 * k) % 250, np.uint8))
    writer.release()
    return path


def write_lines(path: Path, values, header: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "\n".join(f"{v:.6f}" if isinstance(v, float) else str(v) for v in values)
    path.write_text((header + "\n" if header else "") + body + "\n")
    return path


def assert_follows_pulse(ref: Reference, frame_t_s: np.ndarray, shift_s: float = 0.0, tol=0.03):
    """The reference PPG resampled onto frame times is the pulse at those times."""
    got = ref.ppg_on(frame_t_s)
    assert got.shape == frame_t_s.shape
    np.testing.assert_allclose(got, pulse(frame_t_s + shift_s), atol=tol)


def test_registry_lists_every_reader():
    assert DATASETS.names() == [
        "cohface", "generic", "mahnob-hci", "mmpd", "mmse-hr",
        "pure", "scamps", "synthetic", "ubfc-phys", "ubfc-rppg", "vipl-hr",
    ]


def test_missing_root_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="dataset folder not found"):
        get_reader("pure", tmp_path / "nope")


def test_empty_root_names_the_expected_layout(tmp_path):
    with pytest.raises(InputError, match="no UBFC-rPPG subject folders"):
        get_reader("ubfc-rppg", tmp_path).records()


# ----------------------------------------------------------------------------- UBFC-rPPG


def make_ubfc2_subject(root: Path, name: str, n: int = 40, t0: float = 23.5) -> np.ndarray:
    folder = root / name
    write_video(folder / "vid.avi", n, 30.0)
    # Frame stamps jitter around 30 fps and start late, like the real files.
    t = t0 + np.arange(n) / 30.0 + 0.004 * np.sin(np.arange(n))
    hr = np.full(n, 75.0)
    hr[5] = 1.0  # oximeter dropout
    lines = [" ".join(f"{v:.7e}" for v in row) for row in (pulse(t - t0), hr, t)]
    (folder / "ground_truth.txt").write_text("\n".join(lines) + "\n")
    return t - t0


def test_ubfc_dataset2_records_and_reference(tmp_path):
    t_rel = make_ubfc2_subject(tmp_path, "subject10")
    make_ubfc2_subject(tmp_path, "subject2")
    reader = get_reader("ubfc-rppg", tmp_path)
    recs = reader.records()
    assert [r.video_id for r in recs] == ["subject2", "subject10"]  # natural order
    rec = recs[1]
    assert (rec.dataset, rec.subject_id) == ("ubfc-rppg", "subject10")
    assert rec.tags == {"part": "DATASET_2"}
    assert rec.video_path.name == "vid.avi" and rec.fps is None
    ref = reader.load_reference(rec)
    np.testing.assert_allclose(ref.frame_t_s, t_rel, atol=1e-6)
    assert ref.frame_t_s[0] == 0.0
    # On the dataset's own frame times the PPG comes back sample for sample.
    np.testing.assert_allclose(ref.ppg_on(ref.frame_t_s), pulse(t_rel), atol=1e-6)
    # On nominal 30 fps frame times it is the same pulse, up to the stamps' jitter.
    assert_follows_pulse(ref, np.arange(40) / 30.0)
    assert np.isnan(ref.hr_bpm[5]) and np.all(ref.hr_bpm[np.arange(40) != 5] == 75.0)


def test_ubfc_dataset2_aligns_by_frame_index(tmp_path):
    """DATASET_2 has one PPG sample per frame: sample i goes to video frame i, whatever
    the logged stamps say (they hold dropped-capture gaps the video does not have)."""
    make_ubfc2_subject(tmp_path, "subject1", n=40)
    gt = tmp_path / "subject1" / "ground_truth.txt"
    ppg_line, hr_line, t_line = gt.read_text().splitlines()
    t = np.array([float(v) for v in t_line.split()])
    t[20:] += 0.5  # a logged gap of 0.5 s between samples 19 and 20
    gt.write_text("\n".join([ppg_line, hr_line, " ".join(f"{v:.7e}" for v in t)]) + "\n")
    reader = get_reader("ubfc-rppg", tmp_path)
    ref = reader.load_reference(reader.records()[0])
    assert ref.per_frame
    ppg = np.array([float(v) for v in ppg_line.split()])
    video_t = np.arange(41) / 30.0  # the video's own, evenly spaced frames (one more than samples)
    on_frames = ref.ppg_on_frames(video_t)
    np.testing.assert_array_equal(on_frames[:40], ppg)
    assert np.isnan(on_frames[40])
    # Placing it by the logged stamps instead would shift the second half by 15 frames.
    assert not np.allclose(ref.ppg_on(video_t)[25:40], ppg[25:40], atol=1e-3)
    hr = ref.hr_on_frames(video_t)
    assert np.isnan(hr[5]) and hr[6] == 75.0 and np.isnan(hr[40])


def test_ubfc_dataset1_gtdump(tmp_path):
    folder = tmp_path / "DATASET_1" / "5-gt"
    write_video(folder / "vid.avi", 30, 30.0)
    t_ms = 1000.0 + np.arange(0, 1500, 1000 / 62)  # about 62 Hz, first stamp at 1 s
    ppg = pulse((t_ms - t_ms[0]) / 1000)
    rows = [f"{t:.0f},{72 if i else 0},{98},{p:.6f}" for i, (t, p) in enumerate(zip(t_ms, ppg))]
    (folder / "gtdump.xmp").write_text("\n".join(rows) + "\n")
    reader = get_reader("ubfc-rppg", tmp_path)
    (rec,) = reader.records()
    assert rec.video_id == "DATASET_1_5-gt" and rec.subject_id == "5-gt"
    assert rec.tags == {"part": "DATASET_1"}
    ref = reader.load_reference(rec)
    assert ref.ppg_t_s[0] == 0.0 and ref.frame_t_s is None
    assert not ref.per_frame  # 62 Hz oximeter log: aligned by its timestamps
    on_frames = ref.ppg_on_frames(np.arange(100) / 30.0)
    assert np.isfinite(on_frames[:45]).all() and np.isnan(on_frames[47:]).all()  # log ends at 1.5 s
    assert_follows_pulse(ref, np.arange(30) / 30.0, tol=0.02)
    assert np.isnan(ref.hr_bpm[0]) and ref.hr_bpm[1] == 72
    spo2, spo2_t = ref.extra["spo2"]
    assert spo2.shape == spo2_t.shape == t_ms.shape and np.all(spo2 == 98)


def test_ubfc_broken_ground_truth_names_the_file(tmp_path):
    make_ubfc2_subject(tmp_path, "subject1")
    gt = tmp_path / "subject1" / "ground_truth.txt"
    gt.write_text("\n".join(gt.read_text().splitlines()[:2]) + "\n")
    reader = get_reader("ubfc-rppg", tmp_path)
    with pytest.raises(InputError, match=r"ground_truth\.txt: expected 3 lines"):
        reader.load_reference(reader.records()[0])
    gt.write_text("0.1 0.2 oops\n75 75 75\n0 0.03 0.06\n")
    with pytest.raises(InputError, match=r"ground_truth\.txt: line 1 \(PPG\) has a non-number"):
        reader.load_reference(reader.records()[0])
    gt.write_text("0.1 0.2 0.3\n75 75\n0 0.03 0.06\n")
    with pytest.raises(InputError, match="line lengths differ"):
        reader.load_reference(reader.records()[0])
    gt.unlink()
    with pytest.raises(InputError, match=r"subject1: no ground_truth\.txt or gtdump\.xmp"):
        reader.records()


def test_ubfc_real_shared_subset():
    """The six real UBFC-rPPG subjects in ../shared/data (vid.mp4 + ground_truth.txt)."""
    import av

    reader = get_reader("ubfc-rppg", shared_data_dir() / "ubfc_rppg_dev")
    recs = reader.records()
    expected = {"subject3": 1801, "subject4": 1368, "subject5": 1550,
                "subject8": 2022, "subject9": 2016, "subject10": 2024}
    assert [r.video_id for r in recs] == list(expected)
    for rec in recs:
        assert rec.subject_id == rec.video_id and rec.video_path.name == "vid.mp4"
        ref = reader.load_reference(rec)
        n = expected[rec.video_id]
        assert ref.ppg.shape == ref.ppg_t_s.shape == ref.frame_t_s.shape == (n,)
        assert ref.frame_t_s[0] == 0.0 and np.all(np.diff(ref.frame_t_s) >= 0)
        # About 30 fps of frame stamps, and the video holds as many frames (+-2).
        assert 28.0 < (n - 1) / ref.frame_t_s[-1] < 31.0
        with av.open(str(rec.video_path)) as c:
            assert abs(c.streams.video[0].frames - n) <= 2
        assert np.isfinite(ref.ppg).all() and np.nanstd(ref.ppg) > 0
        assert ref.per_frame  # DATASET_2: one PPG sample per video frame


# ------------------------------------------------------------------------------------ PURE

T0_NS = 1392643993642815000


def make_pure_session(root: Path, name: str, n: int = 30, nested: bool = True) -> np.ndarray:
    session = root / name
    frames = session / name if nested else session
    frames.mkdir(parents=True)
    frame_ns = T0_NS + np.round(np.arange(n) / 30.0 * 1e9).astype(np.int64) + 1000 * np.arange(n)
    for t in frame_ns:
        cv2.imwrite(str(frames / f"Image{t}.png"), np.full((12, 16, 3), 100, np.uint8))
    # The oximeter starts 0.2 s before the camera and runs at 60 Hz.
    pulse_ns = T0_NS - 200_000_000 + np.round(np.arange(2 * n + 30) / 60.0 * 1e9).astype(np.int64)
    data = {
        "/FullPackage": [
            {
                "Timestamp": int(t),
                "Value": {"waveform": float(pulse((t - T0_NS) / 1e9)), "pulseRate": 75,
                          "o2saturation": 98, "signalStrength": 4},
            }
            for t in pulse_ns
        ],
        "/Image": [{"Timestamp": int(t)} for t in frame_ns],
    }
    json_path = (session if nested else root) / f"{name}.json"
    json_path.write_text(json.dumps(data))
    return (frame_ns - frame_ns[0]) / 1e9


def test_pure_records_and_reference(tmp_path):
    t_rel = make_pure_session(tmp_path, "01-02")
    make_pure_session(tmp_path, "10-01", n=10)
    reader = get_reader("pure", tmp_path)
    recs = reader.records()
    assert [r.video_id for r in recs] == ["01-02", "10-01"]
    rec = recs[0]
    assert rec.subject_id == "01" and rec.fps == 30.0
    assert rec.tags == {"setup": "02", "activity": "talking"}
    assert rec.video_path == tmp_path / "01-02" / "01-02"
    ref = reader.load_reference(rec)
    np.testing.assert_allclose(ref.frame_t_s, t_rel)
    assert ref.ppg_t_s[0] == pytest.approx(-0.2)  # before the first frame
    assert_follows_pulse(ref, ref.frame_t_s, tol=0.02)
    assert np.all(ref.hr_on(ref.frame_t_s) == 75)
    # The frame source plays the PNGs on the same clock as the reference.
    source = reader.open_video(rec)
    times = [t for t, _ in source]
    np.testing.assert_allclose(times, t_rel)


def test_pure_flat_layout(tmp_path):
    make_pure_session(tmp_path, "03-05", n=8, nested=False)
    reader = get_reader("pure", tmp_path)
    (rec,) = reader.records()
    assert rec.video_path == tmp_path / "03-05" and rec.tags["activity"] == "small rotation"
    assert reader.load_reference(rec).ppg.size == 46


def test_pure_broken_json_names_the_file_and_entry(tmp_path):
    make_pure_session(tmp_path, "02-01", n=5)
    path = tmp_path / "02-01" / "02-01.json"
    data = json.loads(path.read_text())
    del data["/FullPackage"][3]["Value"]["waveform"]
    path.write_text(json.dumps(data))
    reader = get_reader("pure", tmp_path)
    with pytest.raises(InputError, match=r"02-01\.json: /FullPackage\[3\] lacks"):
        reader.load_reference(reader.records()[0])
    path.write_text("{not json")
    with pytest.raises(InputError, match=r"02-01\.json: not valid JSON"):
        reader.load_reference(reader.records()[0])
    path.unlink()
    with pytest.raises(InputError, match=r"02-01\.json not found"):
        reader.records()


# --------------------------------------------------------------------------------- COHFACE


def make_cohface_session(root: Path, subject: str, session: str, pulse_s: float = 2.0):
    import h5py

    folder = root / subject / session
    write_video(folder / "data.avi", 20, 20.0)
    t = 0.37 + np.arange(int(pulse_s * 256)) / 256.0  # the time axis need not start at 0
    with h5py.File(folder / "data.hdf5", "w") as f:
        f["pulse"] = pulse(t - t[0])
        f["respiration"] = np.cos(t)
        f["time"] = t


def test_cohface_records_and_reference(tmp_path):
    for subject, session in (("1", "0"), ("1", "2"), ("12", "1")):
        make_cohface_session(tmp_path, subject, session)
    reader = get_reader("cohface", tmp_path)
    recs = reader.records()
    assert [r.video_id for r in recs] == ["1-0", "1-2", "12-1"]
    assert [r.subject_id for r in recs] == ["1", "1", "12"]
    assert recs[1].tags == {"session": "2", "lighting": "natural"}
    assert recs[2].tags == {"session": "1", "lighting": "studio"}
    ref = reader.load_reference(recs[0])
    assert ref.ppg.size == 512 and ref.ppg_t_s[0] == 0.0
    assert ref.ppg_t_s[1] == pytest.approx(1 / 256)
    assert_follows_pulse(ref, np.arange(20) / 20.0, tol=1e-3)
    assert ref.extra["resp"][0].size == 512


def test_cohface_broken_hdf5(tmp_path):
    import h5py

    make_cohface_session(tmp_path, "3", "0")
    path = tmp_path / "3" / "0" / "data.hdf5"
    with h5py.File(path, "a") as f:
        del f["pulse"]
    reader = get_reader("cohface", tmp_path)
    with pytest.raises(InputError, match=r"data\.hdf5: dataset 'pulse' not found"):
        reader.load_reference(reader.records()[0])
    path.write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"data\.hdf5: not a readable HDF5 file"):
        reader.load_reference(reader.records()[0])


# ------------------------------------------------------------------------------ MAHNOB-HCI

MAHNOB_FS = 256


def write_bdf(path: Path, channels: dict[str, np.ndarray]) -> None:
    import pyedflib

    writer = pyedflib.EdfWriter(str(path), len(channels), file_type=pyedflib.FILETYPE_BDF)
    headers = []
    for label, x in channels.items():
        lo, hi = float(np.floor(np.min(x))) - 1.0, float(np.ceil(np.max(x))) + 1.0
        headers.append({"label": label, "dimension": "uV", "sample_frequency": MAHNOB_FS,
                        "physical_min": lo, "physical_max": hi,
                        "digital_min": -8388608, "digital_max": 8388607})
    writer.setSignalHeaders(headers)
    writer.writeSamples([np.asarray(x, dtype=np.float64) for x in channels.values()])
    writer.close()


def make_mahnob_session(
    root: Path, n: str, subject: str, *, status: bool = True, hr_bpm=72, onset_s: int = 3
):
    import neurokit2 as nk

    folder = root / "Sessions" / n
    video = f"P{subject}-Rec1-2009.07.09.17.53.46_C1 trigger _C_Section_{n}.avi"
    write_video(folder / video, 10, 61.0)
    duration_s = 20
    ecg = nk.ecg_simulate(duration=duration_s, sampling_rate=MAHNOB_FS, heart_rate=hr_bpm,
                          method="simple", random_state=int(n))
    stat = np.zeros(duration_s * MAHNOB_FS)
    stat[onset_s * MAHNOB_FS: 18 * MAHNOB_FS] = 1.0  # the trial (and video) runs to 18 s
    chans = {"Fp1": np.zeros_like(ecg), "EXG1": ecg * 0.5, "EXG2": ecg * 0.7, "EXG3": ecg * 1000}
    if status:
        chans["Status"] = stat
    write_bdf(folder / f"Part_{subject}_S_Trial{n}_emotion.bdf", chans)
    (folder / "session.xml").write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<session cutNr="{n}" mediaFile="69.avi" '
        f'isStim="1"><subject id="{subject}" /></session>\n'
    )


def test_mahnob_records_and_ecg_reference(tmp_path):
    make_mahnob_session(tmp_path, "10", "1", hr_bpm=72)
    make_mahnob_session(tmp_path, "2", "3", hr_bpm=90)
    (tmp_path / "Sessions" / "99").mkdir()  # empty session folders exist in the release
    reader = get_reader("mahnob-hci", tmp_path)
    recs = reader.records()
    assert [r.video_id for r in recs] == ["2", "10"]
    assert [r.subject_id for r in recs] == ["3", "1"]
    assert recs[1].tags == {"session": "10", "media": "69.avi"}
    assert "C1 trigger" in recs[1].video_path.name
    for rec, bpm in zip(recs, (90, 72)):
        ref = reader.load_reference(rec)
        assert ref.ppg is None and ref.ppg_on(np.zeros(3)) is None
        assert "ECG" in ref.hr_source
        # Beats before the trigger have negative times; the video starts at Status onset.
        assert ref.hr_t_s[0] < 0 < ref.hr_t_s[-1]
        frame_t = np.arange(0, 15, 1 / 61.0)
        assert np.median(ref.hr_on(frame_t)) == pytest.approx(bpm, abs=2.0)
        ecg, ecg_t = ref.extra["ecg"]
        assert ecg.size == 20 * MAHNOB_FS and ecg_t[3 * MAHNOB_FS] == pytest.approx(0.0)


def test_mahnob_broken_files(tmp_path):
    make_mahnob_session(tmp_path, "4", "2", status=False)
    reader = get_reader("mahnob-hci", tmp_path)
    (rec,) = reader.records()
    with pytest.raises(InputError, match=r"Trial4_emotion\.bdf: channel 'Status' not found"):
        reader.load_reference(rec)
    make_mahnob_session(tmp_path, "4", "2", onset_s=0)
    with pytest.raises(InputError, match=r"Trial4_emotion\.bdf: Status channel is already on"):
        reader.load_reference(rec)
    xml = tmp_path / "Sessions" / "4" / "session.xml"
    xml.write_text("<session cutNr='4'></session>")
    with pytest.raises(InputError, match=r"session\.xml: no <subject id=\.\.\.> element"):
        reader.records()
    next((tmp_path / "Sessions" / "4").glob("*.bdf")).unlink()
    with pytest.raises(InputError, match=r"4: video but no \.bdf"):
        reader.records()


# --------------------------------------------------------------------------------- VIPL-HR


def make_vipl_source(root: Path, p: str, v: str, s: str, *, with_time: bool = True, n=25):
    folder = root / p / v / s
    write_video(folder / "video.avi", n, 25.0)
    wave_t = np.arange(int(n / 25 * 60) + 6) / 60.0
    write_lines(folder / "wave.csv", [float(x) for x in pulse(wave_t)], header="Wave")
    write_lines(folder / "gt_HR.csv", [75, 76], header="HR")
    write_lines(folder / "gt_SpO2.csv", [98, 98], header="SpO2")
    if with_time:
        write_lines(folder / "time.txt", [int(500 + 40 * k + (k % 3)) for k in range(n)])


def test_vipl_records_and_reference(tmp_path):
    make_vipl_source(tmp_path, "p1", "v1", "source1")
    make_vipl_source(tmp_path, "p1", "v1-2", "source2", with_time=False)
    make_vipl_source(tmp_path, "p10", "v9", "source3")
    reader = get_reader("vipl-hr", tmp_path)
    recs = reader.records()
    by_id = {r.video_id: r for r in recs}
    assert sorted(by_id) == ["p10_v9_source3", "p1_v1-2_source2", "p1_v1_source1"]
    assert [r.subject_id for r in recs] == ["p1", "p1", "p10"]
    assert by_id["p1_v1-2_source2"].tags == {"scenario": "v1-2", "source": "source2"}
    ref = reader.load_reference(by_id["p1_v1_source1"])
    assert ref.frame_t_s[0] == 0.0 and ref.frame_t_s[1] == pytest.approx(0.041)
    assert_follows_pulse(ref, np.arange(25) / 25.0, tol=0.01)
    assert ref.ppg_t_s[1] == pytest.approx(1 / 60)
    np.testing.assert_allclose(ref.hr_on(np.array([0.0, 0.5, 1.0])), [75, 75.5, 76])
    assert reader.load_reference(by_id["p1_v1-2_source2"]).frame_t_s is None  # no time.txt


def test_vipl_broken_wave_names_file_and_line(tmp_path):
    make_vipl_source(tmp_path, "p2", "v3", "source1")
    wave = tmp_path / "p2" / "v3" / "source1" / "wave.csv"
    lines = wave.read_text().splitlines()
    lines[4] = "abc"
    wave.write_text("\n".join(lines))
    reader = get_reader("vipl-hr", tmp_path)
    with pytest.raises(InputError, match=r"wave\.csv: line 5: 'abc' is not a number"):
        reader.load_reference(reader.records()[0])
    wave.write_text("0.1\n0.2\n")
    with pytest.raises(InputError, match=r"wave\.csv: expected header 'Wave'"):
        reader.load_reference(reader.records()[0])


# --------------------------------------------------------------------------------- MMSE-HR


def make_mmse_task(root: Path, frames_part: str, phys_part: str, subject: str, task: str, n=10):
    frames = root / frames_part / subject / task
    frames.mkdir(parents=True)
    for k in range(n):
        cv2.imwrite(str(frames / f"{k:04d}.jpg"), np.full((12, 16, 3), 90, np.uint8))
    phys = root / phys_part / subject / task
    t = np.arange(int(n / 25 * 1000)) / 1000.0
    write_lines(phys / "BP_mmHg.txt", [float(x) for x in 90 + 20 * pulse(t)])
    write_lines(phys / "Pulse Rate_BPM.txt", [75.0] * t.size)


def test_mmse_records_and_reference(tmp_path):
    part1 = ("first 10 subjects 2D", "first 10 subjects Phydata released/Phydata")
    make_mmse_task(tmp_path, *part1, "F013", "T1")
    make_mmse_task(tmp_path, *part1, "F013", "T8")
    make_mmse_task(tmp_path, "T10_T11_30Subjects", "T10_T11_30PhyBPHRData", "M010", "T10")
    reader = get_reader("mmse-hr", tmp_path)
    recs = reader.records()
    assert [r.video_id for r in recs] == ["F013_T1", "F013_T8", "M010_T10"]
    assert [r.subject_id for r in recs] == ["F013", "F013", "M010"]
    assert recs[2].tags == {"task": "T10"} and recs[2].fps == 25.0
    assert recs[0].video_path.is_dir()
    ref = reader.load_reference(recs[2])
    assert ref.ppg.size == 400 and ref.ppg_t_s[1] == pytest.approx(1e-3)
    frame_t = np.arange(10) / 25.0
    np.testing.assert_allclose(ref.ppg_on(frame_t), 90 + 20 * pulse(frame_t), atol=1e-4)
    assert np.all(ref.hr_on(frame_t) == 75.0)


def test_mmse_missing_physiology_file(tmp_path):
    make_mmse_task(tmp_path, "T10_T11_30Subjects", "T10_T11_30PhyBPHRData", "F001", "T11")
    (tmp_path / "T10_T11_30PhyBPHRData" / "F001" / "T11" / "Pulse Rate_BPM.txt").unlink()
    reader = get_reader("mmse-hr", tmp_path)
    with pytest.raises(InputError, match=r"Pulse Rate_BPM\.txt: file not found"):
        reader.load_reference(reader.records()[0])


# ------------------------------------------------------------------------------- UBFC-Phys


def make_ubfc_phys(root: Path, subject: str, task: str, n=35):
    folder = root / subject
    write_video(folder / f"vid_{subject}_{task}.avi", n, 35.0)
    t = np.arange(int(n / 35 * 64) + 4) / 64.0
    write_lines(folder / f"bvp_{subject}_{task}.csv", [float(x) for x in pulse(t)])
    write_lines(folder / f"eda_{subject}_{task}.csv", [1.0] * 8)


def test_ubfc_phys_records_and_reference(tmp_path):
    for subject, task in (("s1", "T1"), ("s1", "T3"), ("s12", "T2")):
        make_ubfc_phys(tmp_path, subject, task)
    reader = get_reader("ubfc-phys", tmp_path)
    recs = reader.records()
    assert [r.video_id for r in recs] == ["s1_T1", "s1_T3", "s12_T2"]
    assert recs[1].tags == {"task": "T3", "activity": "arithmetic"}
    assert recs[2].subject_id == "s12"
    ref = reader.load_reference(recs[0])
    assert ref.ppg_t_s[1] == pytest.approx(1 / 64)
    assert_follows_pulse(ref, np.arange(35) / 35.0, tol=0.02)


def test_ubfc_phys_broken_bvp(tmp_path):
    make_ubfc_phys(tmp_path, "s2", "T1")
    (tmp_path / "s2" / "bvp_s2_T1.csv").write_text("0.5\nnan\n0.2\n")
    reader = get_reader("ubfc-phys", tmp_path)
    with pytest.raises(InputError, match=r"bvp_s2_T1\.csv: BVP has a non-finite value at sample 1"):
        reader.load_reference(reader.records()[0])
    (tmp_path / "s2" / "bvp_s2_T1.csv").unlink()
    with pytest.raises(InputError, match=r"bvp_s2_T1\.csv: BVP file not found"):
        reader.records()


# ------------------------------------------------------------------------------------ MMPD


def mmpd_video(n=12, h=6, w=8) -> np.ndarray:
    k = np.arange(n)[:, None, None, None]
    y = np.arange(h)[None, :, None, None]
    x = np.arange(w)[None, None, :, None]
    c = np.arange(3)[None, None, None, :]
    return ((k + 2 * y + 3 * x + 5 * c) % 51) / 50.0  # floats in [0, 1], all axes distinct


def make_mmpd_file(root: Path, subject: int, take: int, n=12, **overrides):
    from scipy.io import savemat

    folder = root / f"subject{subject}"
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "video": mmpd_video(n),
        "GT_ppg": pulse(np.arange(n) / 30.0)[None, :],
        "light": "LED-low", "motion": "Stationary", "exercise": "False",
        "skin_color": np.array([[3]]), "gender": "male", "glasser": "False",
        "hair_cover": "False", "makeup": "False",
    }
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}
    savemat(folder / f"p{subject}_{take}.mat", data)


def test_mmpd_records_frames_and_reference(tmp_path):
    make_mmpd_file(tmp_path, 1, 0)
    make_mmpd_file(tmp_path, 1, 1, motion="Walking", light="Nature", exercise="True")
    make_mmpd_file(tmp_path, 2, 0, skin_color=np.array([[5]]))
    reader = get_reader("mmpd", tmp_path)
    recs = reader.records()
    assert [r.video_id for r in recs] == ["p1_0", "p1_1", "p2_0"]
    assert [r.subject_id for r in recs] == ["subject1", "subject1", "subject2"]
    assert recs[1].tags == {
        "light": "Nature", "motion": "Walking", "exercise": "True", "skin_color": "3",
        "gender": "male", "glasser": "False", "hair_cover": "False", "makeup": "False",
        "take": "1",
    }
    assert recs[2].tags["skin_color"] == "5" and recs[0].fps == 30.0
    frames = reader.load_frames(recs[0])
    assert frames.shape == (12, 6, 8, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, np.round(mmpd_video() * 255).astype(np.uint8))
    source = reader.open_video(recs[0])
    got = list(source)
    assert len(got) == 12 and got[3][0] == pytest.approx(0.1)
    np.testing.assert_array_equal(got[3][1], frames[3])
    ref = reader.load_reference(recs[0])
    assert_follows_pulse(ref, np.arange(12) / 30.0, tol=1e-9)


def test_mmpd_broken_files(tmp_path):
    make_mmpd_file(tmp_path, 3, 0, GT_ppg=None)
    reader = get_reader("mmpd", tmp_path)
    (rec,) = reader.records()
    with pytest.raises(InputError, match=r"p3_0\.mat: variable 'GT_ppg' not found"):
        reader.load_reference(rec)
    make_mmpd_file(tmp_path, 3, 0, video=mmpd_video() * 255)
    with pytest.raises(InputError, match=r"p3_0\.mat: variable 'video' is float but not within"):
        reader.load_frames(rec)
    make_mmpd_file(tmp_path, 3, 0, light=None)
    with pytest.raises(InputError, match=r"p3_0\.mat: variable 'light' not found"):
        reader.records()
    (tmp_path / "subject3" / "p3_0.mat").write_bytes(b"MATLAB garbage")
    with pytest.raises(InputError, match=r"p3_0\.mat: not a readable MAT file"):
        reader.records()


# ---------------------------------------------------------------------------------- SCAMPS


def make_scamps_file(root: Path, name: str, n=9, h=5, w=7, with_ppg=True):
    import h5py

    video = mmpd_video(n, h, w)  # MATLAB order (T, H, W, 3)
    with h5py.File(root / f"{name}.mat", "w") as f:
        f["Xsub"] = video.T  # v7.3 stores reversed axes: [c, w, h, t]
        if with_ppg:
            f["d_ppg"] = pulse(np.arange(n) / 30.0)[:, None]  # a MATLAB 1 x T row vector
        f["d_br"] = np.linspace(0, 1, n)[:, None]
    return video


def test_scamps_records_frames_and_reference(tmp_path):
    video = make_scamps_file(tmp_path, "P000002")
    make_scamps_file(tmp_path, "P000010")
    reader = get_reader("scamps", tmp_path)
    recs = reader.records()
    assert [r.video_id for r in recs] == ["P000002", "P000010"]
    assert recs[0].subject_id == "P000002" and recs[0].tags == {"synthetic": "true"}
    assert reader.n_frames(recs[0].video_path) == 9
    frames = reader.load_frames(recs[0])
    assert frames.shape == (9, 5, 7, 3)
    np.testing.assert_array_equal(frames, np.round(video * 255).astype(np.uint8))
    ref = reader.load_reference(recs[0])
    assert_follows_pulse(ref, np.arange(9) / 30.0, tol=1e-9)
    np.testing.assert_allclose(ref.extra["resp"][0], np.linspace(0, 1, 9))


def test_scamps_missing_ppg(tmp_path):
    make_scamps_file(tmp_path, "P000003", with_ppg=False)
    reader = get_reader("scamps", tmp_path)
    with pytest.raises(InputError, match=r"P000003\.mat: variable 'd_ppg' not found"):
        reader.load_reference(reader.records()[0])


# --------------------------------------------------------------------------------- generic


def test_generic_csv_and_json(tmp_path):
    write_video(tmp_path / "alice.avi", 20, 20.0)
    t = np.arange(20) / 20.0
    rows = ["ppg,hr_bpm"] + [f"{p:.6f},{70 + k}" for k, p in enumerate(pulse(t))]
    (tmp_path / "alice.csv").write_text("\n".join(rows) + "\n")
    write_video(tmp_path / "bob" / "walk.mp4", 15, 30.0)
    t2 = 0.25 + np.arange(40) / 50.0
    signals = {"ppg": pulse(t2).tolist(), "time_s": t2.tolist()}
    (tmp_path / "bob" / "walk.json").write_text(json.dumps(signals))
    reader = get_reader("generic", tmp_path)
    recs = reader.records()
    assert [(r.video_id, r.subject_id) for r in recs] == [("alice", "alice"), ("bob_walk", "bob")]
    ref = reader.load_reference(recs[0])
    np.testing.assert_allclose(ref.ppg_t_s, t)  # one row per frame at the video's 20 fps
    np.testing.assert_allclose(ref.hr_on(t), 70 + np.arange(20))
    assert ref.per_frame  # no time_s: row i is frame i, whatever the frames' timestamps
    np.testing.assert_allclose(ref.hr_on_frames(np.arange(20) / 19.0), 70 + np.arange(20))
    ref2 = reader.load_reference(recs[1])
    assert ref2.hr_bpm is None and ref2.ppg_t_s[0] == 0.25 and not ref2.per_frame
    assert_follows_pulse(ref2, np.arange(0.3, 0.8, 1 / 30.0), tol=0.02)


def test_generic_broken_files(tmp_path):
    write_video(tmp_path / "clip.avi", 5, 10.0)
    csv_path = tmp_path / "clip.csv"
    csv_path.write_text("red,green\n1,2\n")
    reader = get_reader("generic", tmp_path)
    with pytest.raises(InputError, match=r"clip\.csv: no 'ppg' or 'hr_bpm' field"):
        reader.load_reference(reader.records()[0])
    csv_path.write_text("ppg,time_s\n0.1,0\n0.2,0.1\n0.3,0.05\n")
    with pytest.raises(InputError, match=r"clip\.csv: time_s goes back in time at sample 2"):
        reader.load_reference(reader.records()[0])
    csv_path.write_text("ppg\n0.1\nx\n")
    with pytest.raises(InputError, match=r"clip\.csv: field 'ppg' has a value that is not a num"):
        reader.load_reference(reader.records()[0])
    (tmp_path / "clip.json").write_text("{}")
    with pytest.raises(InputError, match=r"clip\.avi: both clip\.csv and clip\.json"):
        reader.records()
    csv_path.unlink()
    (tmp_path / "clip.json").unlink()
    with pytest.raises(InputError, match=r"clip\.avi: no clip\.csv or clip\.json"):
        reader.records()
