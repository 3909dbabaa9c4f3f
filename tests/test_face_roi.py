"""Face detection/tracking, skin ROI and RGB-trace extraction: scripted detectors on
synthetic frames (exact answers), then MediaPipe and Haar on real recordings."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from scipy import signal

from facepulse.errors import ConfigError, InputError, NoFaceError
from facepulse.face.detectors import DETECTORS, Face, FaceDetector, make_detector
from facepulse.face.tracker import FaceTracker
from facepulse.io.video import FrameSource, VideoInfo, open_video
from facepulse.paths import shared_data_dir
from facepulse.roi.skin import ROIS, roi_polygons, skin_mask
from facepulse.roi.trace import Trace, extract_trace, resample_uniform

H, W = 120, 160
FACE_BOX = np.array([40.0, 20.0, 120.0, 110.0])
BACKGROUND = (30, 60, 90)


# ------------------------------------------------------------------ synthetic helpers


def _stamp(frame: np.ndarray, index: int) -> np.ndarray:
    """Write the frame index into pixel (0, 0) so a scripted detector can read it."""
    frame[0, 0] = (index % 256, index // 256, 0)
    return frame


def _index(frame: np.ndarray) -> int:
    return int(frame[0, 0, 0]) + 256 * int(frame[0, 0, 1])


def _skin(index: int) -> tuple[int, int, int]:
    """A pulsing skin colour: every channel changes from frame to frame."""
    return (170 + index % 9, 120 + (index * 5) % 7, 100 + (index * 3) % 5)


def _scene(n: int, box: np.ndarray = FACE_BOX, colour: Callable[[int], tuple] = _skin) -> np.ndarray:
    frames = np.empty((n, H, W, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box.astype(int)
    for i in range(n):
        frames[i] = BACKGROUND
        frames[i, y0:y1, x0:x1] = colour(i)
        _stamp(frames[i], i)
    return frames


class Scripted:
    """A detector whose answer for frame i is ``script(i)``; it records the frames it saw."""

    name = "scripted"

    def __init__(self, script: Callable[[int], list[Face]], max_faces: int | None = None) -> None:
        self.script = script
        self.calls: list[int] = []
        if max_faces is not None:
            self.max_faces = max_faces

    def detect(self, frame_rgb: np.ndarray) -> list[Face]:
        index = _index(frame_rgb)
        self.calls.append(index)
        return self.script(index)


def _face(box=FACE_BOX, landmarks=None) -> Face:
    return Face(np.asarray(box, dtype=float), 0.9, landmarks)


def _blank(n: int) -> list[np.ndarray]:
    return [_stamp(np.zeros((H, W, 3), np.uint8), i) for i in range(n)]


def _fixed_cadence(detector, every: int = 3, **kw) -> FaceTracker:
    return FaceTracker(detector, detect_every=every, max_detect_every=None, motion_threshold=None, **kw)


# --------------------------------------------------------------------------- detector API


def test_registry_and_protocol():
    assert {"mediapipe", "haar"} <= set(DETECTORS.names())
    assert isinstance(Scripted(lambda i: []), FaceDetector)
    with pytest.raises(ConfigError, match="unknown face detector 'nope'"):
        make_detector("nope")
    with pytest.raises(ConfigError, match="bad option"):
        make_detector("haar", no_such_option=1)


def test_auto_falls_back_to_haar_with_a_warning(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    with pytest.warns(RuntimeWarning, match="Haar"):
        detector = make_detector("auto")
    assert detector.name == "haar"


def test_mediapipe_start_up_is_quiet_and_downscaling_maps_back(capfd):
    frame = _frame_at(VITALLENS / "sample_video_2.mp4", 30)
    capfd.readouterr()
    full = make_detector("mediapipe", static=True, max_side=None)
    small = make_detector("mediapipe", static=True, max_side=384)
    faces_full, faces_small = full.detect(frame), small.detect(frame)
    full.close()
    small.close()
    err = capfd.readouterr().err
    assert "inference_feedback_manager" not in err and "XNNPACK" not in err, err
    assert len(faces_full) == len(faces_small) == 1
    # Same face at full resolution either way (to within the coarser model input).
    error_px = np.abs(faces_full[0].landmarks_xy - faces_small[0].landmarks_xy)
    assert np.median(error_px) < 3.0
    assert faces_full[0].landmarks_xy[:, 0].max() > 300  # pixels, not normalised units


# ---------------------------------------------------------------------------- tracker


def test_tracker_detects_every_n_frames_and_holds_between():
    det = Scripted(lambda i: [_face()])
    tracker = _fixed_cadence(det, every=3)
    faces = [tracker.update(f) for f in _blank(10)]
    assert det.calls == [0, 3, 6, 9]
    assert all(f is not None for f in faces)
    np.testing.assert_array_equal(faces[4].box_xyxy, FACE_BOX)


def test_tracker_redetects_every_frame_while_lost():
    det = Scripted(lambda i: [] if i in (3, 4, 5) else [_face()])
    tracker = _fixed_cadence(det, every=3)
    faces = [tracker.update(f) for f in _blank(10)]
    assert [f is None for f in faces] == [False] * 3 + [True] * 3 + [False] * 4
    assert det.calls == [0, 3, 4, 5, 6, 9]


def test_tracker_selects_largest_or_kth_largest():
    small, big = _face([0, 0, 20, 20]), _face([50, 50, 110, 110])
    det = Scripted(lambda i: [small, big])
    assert _fixed_cadence(det).update(_blank(1)[0]) is big
    assert _fixed_cadence(det, select=1).update(_blank(1)[0]) is small
    assert _fixed_cadence(det, select=2).update(_blank(1)[0]) is None  # only two faces


def test_tracker_refuses_select_beyond_detector_capacity():
    with pytest.raises(ConfigError, match=r"select=1 needs a detector that reports 2 faces"):
        FaceTracker(Scripted(lambda i: [], max_faces=1), select=1)
    with pytest.raises(ConfigError, match="select must be"):
        FaceTracker(Scripted(lambda i: []), select="smallest")


def test_tracker_smooths_small_moves_and_follows_jumps():
    landmarks = np.array([[50.0, 40.0], [100.0, 90.0]])
    boxes = {0: FACE_BOX, 1: FACE_BOX + 4.0, 2: FACE_BOX + 60.0}
    det = Scripted(lambda i: [_face(boxes[i], landmarks + (boxes[i][0] - FACE_BOX[0]))])
    tracker = _fixed_cadence(det, every=1, smooth=0.5)
    frames = _blank(3)
    first = tracker.update(frames[0])
    np.testing.assert_allclose(first.box_xyxy, FACE_BOX)
    second = tracker.update(frames[1])  # a 4 px move: blended halfway
    np.testing.assert_allclose(second.box_xyxy, FACE_BOX + 2.0)
    np.testing.assert_allclose(second.landmarks_xy, landmarks + 2.0)
    third = tracker.update(frames[2])  # a 60 px jump: taken as is
    np.testing.assert_allclose(third.box_xyxy, FACE_BOX + 60.0)


def test_tracker_stretches_interval_while_face_is_still():
    det = Scripted(lambda i: [_face()])
    tracker = FaceTracker(det, detect_every=3, max_detect_every=12, motion_threshold=None)
    for frame in _blank(50):
        tracker.update(frame)
    assert det.calls == [0, 3, 9, 21, 33, 45]


def test_tracker_motion_check_triggers_early_detection():
    # A bright face moves 8 px at frame 7; the held box's thumbnail changes, so the
    # tracker detects at frame 7 instead of waiting for its scheduled frame 9.
    def box_at(i):
        return FACE_BOX + (8.0 if i >= 7 else 0.0)

    frames = [_scene(1, box_at(i), colour=lambda _: (220, 170, 150))[0] for i in range(12)]
    for i, frame in enumerate(frames):
        _stamp(frame, i)
    det = Scripted(lambda i: [_face(box_at(i))])
    tracker = FaceTracker(det, detect_every=3, max_detect_every=12, motion_threshold=3.0)
    faces = [tracker.update(f) for f in frames]
    assert det.calls == [0, 3, 7, 10]
    assert faces[6].box_xyxy[0] == FACE_BOX[0]
    assert faces[7].box_xyxy[0] > FACE_BOX[0]


# ---------------------------------------------------------------------------- skin ROI


def test_box_only_roi_is_forehead_and_cheek_sub_boxes():
    face = _face()
    polygons = roi_polygons(face)
    assert len(polygons) == 3
    for poly in polygons:
        assert poly.shape == (4, 2)
        assert np.all(poly[:, 0] >= FACE_BOX[0]) and np.all(poly[:, 0] <= FACE_BOX[2])
        assert np.all(poly[:, 1] >= FACE_BOX[1]) and np.all(poly[:, 1] <= FACE_BOX[3])
    forehead, right, left = polygons
    assert forehead[:, 1].max() < right[:, 1].min()  # forehead above the cheeks
    assert right[:, 0].max() < left[:, 0].min()  # cheeks on either side of the nose
    assert len(ROIS.get("forehead")(face)) == 1 and len(ROIS.get("cheeks")(face)) == 2
    with pytest.raises(ConfigError, match="unknown skin ROI"):
        roi_polygons(face, "chin")


def test_colour_filter_drops_hair_over_the_forehead():
    frame = _scene(1, colour=lambda _: (200, 150, 130))[0]
    forehead = roi_polygons(_face(), "forehead")[0]
    y_hair = int(forehead[:, 1].min()) + 2
    frame[y_hair - 3 : y_hair + 3, :] = (40, 30, 25)  # a dark fringe across the forehead
    with_filter = skin_mask(frame, _face())
    without = skin_mask(frame, _face(), colour_filter=False)
    hair = np.all(frame == (40, 30, 25), axis=2)
    assert without[hair].any()
    assert not with_filter[hair].any()
    assert with_filter.sum() > 0.8 * without[~hair].sum()
    assert np.all(frame[with_filter] == (200, 150, 130))


def test_mask_of_a_face_outside_the_frame_is_empty():
    mask = skin_mask(_scene(1)[0], _face([500, 500, 600, 600]))
    assert mask.shape == (H, W) and not mask.any()


# --------------------------------------------------------------------- trace (synthetic)


def test_trace_is_the_exact_mean_skin_colour():
    n = 40
    frames = _scene(n)
    det = Scripted(lambda i: [_face()])
    trace = extract_trace(open_video(frames, fps=30), _fixed_cadence(det))
    assert isinstance(trace, Trace)
    assert trace.fps == 30 and trace.n_frames == n
    np.testing.assert_allclose(trace.timestamps_s, np.arange(n) / 30)
    np.testing.assert_allclose(trace.rgb, [_skin(i) for i in range(n)])
    assert trace.valid.all() and not trace.interpolated.any()
    assert trace.frames_without_face == 0
    np.testing.assert_allclose(trace.boxes, np.tile(FACE_BOX, (n, 1)))
    assert np.all(trace.n_skin_px > 500)
    assert trace.preview_frame.shape == (H, W, 3) and trace.preview_mask.shape == (H, W)
    assert trace.preview_mask.sum() == trace.n_skin_px[n // 2]


def test_short_gaps_interpolated_long_gaps_invalid():
    n = 120
    missing = set(range(0, 3)) | set(range(10, 15)) | set(range(40, 80)) | set(range(115, 120))
    det = Scripted(lambda i: [] if i in missing else [_face()])
    trace = extract_trace(open_video(_scene(n), fps=30), _fixed_cadence(det, every=1), max_gap_s=1.0)
    truth = np.array([_skin(i) for i in range(n)], dtype=float)
    assert trace.frames_without_face == len(missing)
    assert np.isnan(trace.boxes[sorted(missing)]).all()
    assert np.isfinite(trace.boxes[[i for i in range(n) if i not in missing]]).all()
    # 5 frames (0.17 s): linear interpolation between frames 9 and 15.
    inner = np.arange(10, 15)
    expected = truth[9] + (truth[15] - truth[9]) * ((inner - 9) / 6)[:, None]
    np.testing.assert_allclose(trace.rgb[inner], expected)
    assert trace.valid[inner].all() and trace.interpolated[inner].all()
    # At the ends: the nearest measured value is held.
    np.testing.assert_allclose(trace.rgb[:3], np.tile(truth[3], (3, 1)))
    np.testing.assert_allclose(trace.rgb[115:], np.tile(truth[114], (5, 1)))
    assert trace.valid[:3].all() and trace.valid[115:].all()
    # 40 frames (1.33 s): left invalid, never filled from the whole frame.
    long_gap = np.arange(40, 80)
    assert np.isnan(trace.rgb[long_gap]).all() and not trace.valid[long_gap].any()
    assert not trace.interpolated[long_gap].any()
    measured = [i for i in range(n) if i not in missing]
    np.testing.assert_allclose(trace.rgb[measured], truth[measured])


def test_max_gap_zero_interpolates_nothing():
    det = Scripted(lambda i: [] if i == 5 else [_face()])
    trace = extract_trace(open_video(_scene(10), fps=30), _fixed_cadence(det, every=1), max_gap_s=0.0)
    assert not trace.valid[5] and np.isnan(trace.rgb[5]).all()


def test_no_face_anywhere_raises():
    det = Scripted(lambda i: [])
    with pytest.raises(NoFaceError, match=r"<array>: no face found in any of the 12 frames"):
        extract_trace(open_video(_scene(12), fps=30), _fixed_cadence(det))


def test_parallel_and_sequential_extraction_agree():
    # Faces that drift and vanish for a while: the worker-thread path must reproduce
    # the sequential detector calls and faces exactly.
    def script(i):
        return [] if 20 <= i < 26 else [_face(FACE_BOX + (i // 10))]

    frames = _scene(60)
    runs = []
    for parallel in (False, True):
        det = Scripted(script)
        tracker = FaceTracker(det, detect_every=3, max_detect_every=12, motion_threshold=3.0)
        runs.append((extract_trace(open_video(frames, fps=30), tracker, parallel=parallel), det.calls))
    (seq, seq_calls), (par, par_calls) = runs
    assert seq_calls == par_calls
    np.testing.assert_array_equal(seq.rgb, par.rgb)
    np.testing.assert_array_equal(seq.boxes, par.boxes)
    np.testing.assert_array_equal(seq.valid, par.valid)


def test_sampling_fills_detection_waits_without_changing_the_trace():
    # A slow detector: while it runs, the frames already tracked are sampled (the ROI
    # means lag the tracker). Frames must still be sampled in order, once each, with the
    # faces of the sequential loop, and OpenCV's thread setting must come back unchanged.
    import threading
    import time

    import cv2

    class Slow(Scripted):
        def detect(self, frame_rgb):
            time.sleep(0.02)
            return super().detect(frame_rgb)

    def script(i):
        return [_face(FACE_BOX + (i // 10))]

    frames = _scene(60)
    main = threading.main_thread()
    seen, cv2_threads = [], []

    def on_frame(i, t, frame, face):
        assert threading.current_thread() is main
        seen.append((i, _index(frame), None if face is None else tuple(face.box_xyxy)))
        cv2_threads.append(cv2.getNumThreads())

    threads_before = cv2.getNumThreads()
    runs = []
    for parallel, detector in ((False, Scripted(script)), (True, Slow(script))):
        seen.clear()
        tracker = FaceTracker(detector, detect_every=3, max_detect_every=12, motion_threshold=3.0)
        trace = extract_trace(open_video(frames, fps=30), tracker, parallel=parallel, on_frame=on_frame)
        runs.append((trace, list(seen), detector.calls))
    (seq, seq_seen, seq_calls), (par, par_seen, par_calls) = runs
    assert [s[:2] for s in par_seen] == [(i, i) for i in range(60)]
    assert par_seen == seq_seen and par_calls == seq_calls
    np.testing.assert_array_equal(seq.rgb, par.rgb)
    assert set(cv2_threads) == {1} and cv2.getNumThreads() == threads_before


def test_sampling_lags_the_tracker_by_at_most_the_backlog_its_frame_size_allows(monkeypatch):
    import facepulse.roi.trace as trace_module

    def lags_of_a_run() -> list[int]:
        tracker = _fixed_cadence(Scripted(lambda i: [_face()]))
        tracked, lags = [], []
        update = tracker.update
        monkeypatch.setattr(tracker, "update", lambda frame, faces=None: (tracked.append(1), update(frame, faces))[1])
        extract_trace(open_video(_scene(40), fps=30), tracker, parallel=False,
                      on_frame=lambda i, t, frame, face: lags.append(len(tracked) - 1 - i))
        return lags

    assert max(lags_of_a_run()) == trace_module._MAX_PENDING
    # frames this large (one frame's bytes is the whole budget): one frame of backlog
    monkeypatch.setattr(trace_module, "_MAX_PENDING_BYTES", H * W * 3)
    assert max(lags_of_a_run()) == 1


def test_single_threaded_opencv_restores_the_setting_even_on_error():
    import cv2

    from facepulse.face.tracker import single_threaded_opencv

    before = cv2.getNumThreads()
    with pytest.raises(RuntimeError), single_threaded_opencv():
        assert cv2.getNumThreads() == 1
        raise RuntimeError("boom")
    assert cv2.getNumThreads() == before


def test_on_frame_callback_sees_every_frame_and_face():
    seen = []
    det = Scripted(lambda i: [] if i == 4 else [_face()])
    extract_trace(
        open_video(_scene(8), fps=30),
        _fixed_cadence(det, every=1),
        on_frame=lambda i, t, frame, face: seen.append((i, round(t * 30), frame.shape, face is None)),
    )
    assert seen == [(i, i, (H, W, 3), i == 4) for i in range(8)]


def test_trace_option_errors():
    det = Scripted(lambda i: [_face()])
    with pytest.raises(ConfigError, match="unknown skin ROI 'ears'"):
        extract_trace(open_video(_scene(3), fps=30), _fixed_cadence(det), roi="ears")
    with pytest.raises(ConfigError, match="max_gap_s"):
        extract_trace(open_video(_scene(3), fps=30), _fixed_cadence(det), max_gap_s=-1)


def test_progress_bar_reports_on_stderr(capsys):
    det = Scripted(lambda i: [_face()])
    extract_trace(open_video(_scene(40), fps=30), _fixed_cadence(det), progress=True)
    assert "40/40" in capsys.readouterr().err


# -------------------------------------------------------------------- resample_uniform


def test_resample_uniform_is_exact_for_linear_signals():
    t = np.cumsum(np.r_[0.0, np.random.default_rng(3).uniform(0.02, 0.05, 99)])
    values = np.stack([2.0 * t + 1.0, -t, 5.0 + 0 * t], axis=1)
    t_u, v_u = resample_uniform(t, values, 30.0)
    np.testing.assert_allclose(np.diff(t_u), 1 / 30)
    assert t_u[0] == t[0] and t_u[-1] <= t[-1] < t_u[-1] + 1 / 30
    np.testing.assert_allclose(v_u, np.stack([2.0 * t_u + 1.0, -t_u, 5.0 + 0 * t_u], axis=1))
    t_u1, v_u1 = resample_uniform(t, values[:, 0], 30.0)
    np.testing.assert_allclose(v_u1, v_u[:, 0])


def test_resample_uniform_keeps_nan_stretches_nan():
    t = np.arange(10) * 0.1
    v = np.arange(10, dtype=float)
    v[4] = np.nan
    t_u, v_u = resample_uniform(t, v, 20.0)
    nan_at = t_u[np.isnan(v_u)]
    assert nan_at.min() > t[3] and nan_at.max() < t[5]
    np.testing.assert_allclose(v_u[~np.isnan(v_u)], t_u[~np.isnan(v_u)] * 10)


def test_resample_uniform_errors():
    with pytest.raises(InputError, match=r"increase strictly \(sample 2\)"):
        resample_uniform(np.array([0.0, 0.1, 0.1]), np.zeros(3), 30)
    with pytest.raises(InputError, match="3 timestamps for 2 samples"):
        resample_uniform(np.array([0.0, 0.1, 0.2]), np.zeros(2), 30)
    with pytest.raises(ConfigError, match="fps must be positive"):
        resample_uniform(np.array([0.0, 0.1]), np.zeros(2), 0)


# ----------------------------------------------------------------------- real recordings

VITALLENS = shared_data_dir() / "vitallens_samples"
# MediaPipe mesh points inside features that carry no pulse (eye corners and lids,
# brows, lips, nostrils): the skin mask must stay away from all of them.
NON_SKIN_POINTS = {
    "eyes": [33, 133, 159, 145, 362, 263, 386, 374],
    "brows": [105, 66, 334, 296],
    "mouth": [13, 14, 61, 291, 0, 17],
    "nostrils": [98, 327, 2],
}


def _frame_at(path, index: int) -> np.ndarray:
    for i, (_, frame) in enumerate(open_video(path)):
        if i == index:
            return frame
    raise AssertionError(f"{path} has fewer than {index + 1} frames")


def _kovac_skin(pixels: np.ndarray) -> np.ndarray:
    """Kovac et al. (EUROCON 2003) fixed RGB skin rule, as an independent check."""
    r, g, b = (pixels[:, k].astype(int) for k in range(3))
    spread = pixels.max(axis=1).astype(int) - pixels.min(axis=1)
    return (r > 95) & (g > 40) & (b > 20) & (spread > 15) & (np.abs(r - g) > 15) & (r > g) & (r > b)


@pytest.fixture(scope="module")
def mesh_detector():
    detector = make_detector("mediapipe", static=True)
    yield detector
    detector.close()


@pytest.mark.parametrize("clip", ["sample_video_1.mp4", "sample_video_2.mp4"])
def test_mediapipe_mask_is_skin_and_avoids_eyes_brows_mouth(clip, mesh_detector):
    frame = _frame_at(VITALLENS / clip, 60)
    faces = mesh_detector.detect(frame)
    assert len(faces) == 1
    face = faces[0]
    assert face.landmarks_xy.shape == (468, 2)
    mask = skin_mask(frame, face)
    assert mask.shape == frame.shape[:2] and mask.dtype == bool
    assert mask.sum() > 2000
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = face.box_xyxy
    assert xs.min() >= x0 - 2 and xs.max() <= x1 + 2 and ys.min() >= y0 - 2 and ys.max() <= y1 + 2
    for feature, indices in NON_SKIN_POINTS.items():
        for k in indices:
            x, y = np.round(face.landmarks_xy[k]).astype(int)
            assert not mask[y - 3 : y + 4, x - 3 : x + 4].any(), f"mask touches {feature} point {k}"
    in_box = np.zeros_like(mask)
    in_box[int(y0) : int(y1), int(x0) : int(x1)] = True
    skin_in_mask = _kovac_skin(frame[mask]).mean()
    assert skin_in_mask >= 0.7
    assert skin_in_mask >= _kovac_skin(frame[in_box]).mean()


def test_haar_finds_the_face_and_masks_inside_it(mesh_detector):
    frame = _frame_at(VITALLENS / "sample_video_2.mp4", 60)
    nose_tip = mesh_detector.detect(frame)[0].landmarks_xy[1]
    faces = make_detector("haar").detect(frame)
    assert len(faces) >= 1
    face = max(faces, key=lambda f: f.area)
    assert face.landmarks_xy is None and face.score > 0
    x0, y0, x1, y1 = face.box_xyxy
    assert x0 < nose_tip[0] < x1 and y0 < nose_tip[1] < y1
    mask = skin_mask(frame, face)
    ys, xs = np.nonzero(mask)
    assert mask.sum() > 1000
    assert xs.min() >= x0 and xs.max() <= x1 and ys.min() >= y0 and ys.max() <= y1


class FirstSeconds(FrameSource):
    """The first ``seconds`` of another source."""

    def __init__(self, source: FrameSource, seconds: float) -> None:
        self.source = source
        self.seconds = seconds
        n = int(np.ceil(seconds * source.info.fps))
        info = source.info
        self.info = VideoInfo(info.path, info.fps, n, info.width, info.height, seconds)

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        return itertools.takewhile(lambda item: item[0] < self.seconds, iter(self.source))


def test_real_clip_every_frame_valid_and_parallel_equals_sequential():
    path = VITALLENS / "sample_video_1.mp4"
    traces = [
        extract_trace(FirstSeconds(open_video(path), 5.0), detector="mediapipe", parallel=parallel)
        for parallel in (True, False)
    ]
    trace = traces[0]
    assert 140 <= trace.n_frames <= 152
    assert trace.valid.all() and not trace.interpolated.any() and trace.frames_without_face == 0
    assert np.isfinite(trace.rgb).all() and np.isfinite(trace.boxes).all()
    assert trace.n_skin_px.min() > 2000
    assert np.all(np.diff(trace.timestamps_s) > 0)
    assert trace.preview_mask is not None and trace.preview_mask.sum() > 2000
    # Skin, not background: red dominates the mean colour.
    assert np.all(trace.rgb[:, 0] > trace.rgb[:, 1])
    np.testing.assert_array_equal(traces[0].rgb, traces[1].rgb)
    np.testing.assert_array_equal(traces[0].boxes, traces[1].boxes)


def test_blank_video_has_no_face_for_mediapipe():
    frames = np.full((6, 240, 320, 3), 128, dtype=np.uint8)
    with pytest.raises(NoFaceError, match="no face found in any of the 6 frames"):
        extract_trace(open_video(frames, fps=30), detector="mediapipe")


def _spectral_peak_bpm(x: np.ndarray, fs: float) -> float:
    """Peak of the periodogram in 42-210 bpm after a 0.7-3.5 Hz band-pass."""
    b, a = signal.butter(3, [0.7, 3.5], btype="band", fs=fs)
    filtered = signal.filtfilt(b, a, signal.detrend(x))
    freq, power = signal.periodogram(filtered, fs=fs, nfft=1 << 15)
    band = (freq >= 0.7) & (freq <= 3.5)
    return 60.0 * freq[band][np.argmax(power[band])]


def test_green_trace_of_ubfc_subject_carries_the_pulse():
    subject = shared_data_dir() / "ubfc_rppg_dev" / "subject5"
    ground_truth = np.loadtxt(subject / "ground_truth.txt")
    ppg, ppg_t = ground_truth[0], ground_truth[2]
    keep = np.r_[True, np.diff(ppg_t) > 0]  # the file repeats a few timestamps
    _, ppg_uniform = resample_uniform(ppg_t[keep], ppg[keep], 30.0)
    reference_bpm = _spectral_peak_bpm(ppg_uniform, 30.0)

    trace = extract_trace(open_video(subject / "vid.mp4"))
    assert trace.valid.mean() > 0.99
    _, rgb = resample_uniform(trace.timestamps_s, trace.rgb, trace.fps)
    green_bpm = _spectral_peak_bpm(rgb[:, 1], trace.fps)
    assert abs(green_bpm - reference_bpm) < 3.0, (green_bpm, reference_bpm)
