"""Tests of facepulse.methods: the classic rPPG methods on synthetic and real RGB traces.

Real-data tests read $FACEPULSE_DATA (default <repo>/../shared/data); they fail, not skip,
when it is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from scipy.ndimage import gaussian_filter1d

import facepulse.methods as methods
from facepulse.errors import ConfigError, InputError, SignalTooShortError
from facepulse.methods import METHODS, apply_method
from facepulse.paths import shared_data_dir
from facepulse.signal.filters import bandpass
from facepulse.signal.hr import estimate_hr_bpm

ALL = ["chrom", "green", "ica", "lgi", "omit", "pbv", "pos"]
#: Methods built to reject intensity and specular changes (GREEN and ICA are not).
MOTION_ROBUST = ["chrom", "lgi", "omit", "pbv", "pos"]
HRS_BPM = [48.0, 66.0, 87.0, 112.0, 145.0, 180.0]
FPS = 30.0

SKIN_DC = np.array([180.0, 130.0, 100.0])  # mean skin colour (R, G, B) on an 8-bit scale
#: Relative pulse amplitude per normalised channel (Wang et al. 2017's Pbv); each trace
#: perturbs it by up to 10 % so PBV's fixed signature is not an exact match.
PULSE_STRENGTHS = np.array([0.33, 0.77, 0.53])

UBFC10 = shared_data_dir() / "signals" / "ubfc_subject10_rgb_trace"


def unit_noise(rng: np.random.Generator, n: int, smooth_s: float) -> np.ndarray:
    x = gaussian_filter1d(rng.standard_normal(n), smooth_s * FPS)
    return x / x.std()


def skin_trace(
    hr_bpm: float,
    seed: int,
    *,
    duration_s: float = 30.0,
    pulse_amp: float = 2e-3,
    motion: float = 1e-3,
    periodic_motion: float = 0.0,
    specular: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """A mean-skin-colour trace (N, 3) with a known pulse, and the blood volume (N,).

    Model: ``rgb = I(t) * dc * (1 - pulse_amp * strengths * bv(t)) + s(t) * white + noise``
    where ``I`` carries slow drift, random head motion, a few abrupt steps and optional
    periodic motion (all common-mode), and ``s`` is specular reflection of white light.
    """
    rng = np.random.default_rng(seed)
    n = round(duration_s * FPS)
    t = np.arange(n) / FPS
    phase = 2 * np.pi * hr_bpm / 60 * t + rng.uniform(0, 2 * np.pi)
    bv = np.sin(phase) + 0.35 * np.sin(2 * phase - 0.9)  # systolic peak plus a harmonic
    bv /= bv.std()
    strengths = PULSE_STRENGTHS * (1 + 0.1 * rng.uniform(-1, 1, 3))
    steps = np.zeros(n)
    for k in rng.integers(0, n, 3):
        steps[k:] += rng.normal(0, 0.02)
    intensity = (
        1.0
        + 0.05 * (np.sin(2 * np.pi * t / 40 + rng.uniform(0, 6)) + t / duration_s)  # drift
        + motion * unit_noise(rng, n, 0.08)
        + periodic_motion * np.sin(2 * np.pi * 1.6 * t)  # e.g. talking, walking
        + gaussian_filter1d(steps, 0.1 * FPS)
    )
    spec = specular * np.abs(unit_noise(rng, n, 0.15)) * SKIN_DC.mean()
    rgb = intensity[:, None] * SKIN_DC * (1 - pulse_amp * strengths * bv[:, None]) + spec[:, None]
    rgb += 3e-4 * SKIN_DC * rng.standard_normal((n, 3))  # sensor noise
    return rgb, bv


def hr_of(bvp: np.ndarray, fps: float = FPS) -> float:
    return estimate_hr_bpm(bandpass(bvp, fps), fps)


def test_registry_has_all_methods():
    assert METHODS.names() == ALL
    for name in ALL:
        assert METHODS.get(name) is getattr(methods, name)
        assert METHODS.describe(name)


@pytest.mark.parametrize("name", ALL)
def test_method_recovers_hr_and_polarity(name):
    fn = METHODS.get(name)
    for i, hr in enumerate(HRS_BPM):
        rgb, bv = skin_trace(hr, seed=10 + i)
        bvp = fn(rgb, FPS)
        assert bvp.shape == (len(rgb),) and np.isfinite(bvp).all()
        assert hr_of(bvp) == pytest.approx(hr, abs=1.0), f"{name} at {hr} bpm"
        # Same polarity as blood volume for every method.
        r = np.corrcoef(bandpass(bvp, FPS), bandpass(bv, FPS))[0, 1]
        assert r > 0.4, f"{name} at {hr} bpm: r = {r:.2f}"


def test_strong_motion_defeats_green_but_not_chrominance_methods():
    traces = [skin_trace(hr, seed=40 + i, periodic_motion=8e-3, specular=3e-3) for i, hr in enumerate(HRS_BPM)]
    # The in-band common-mode motion is strong enough to hide the pulse from GREEN ...
    green_errors = [abs(hr_of(methods.green(rgb, FPS)) - hr) for (rgb, _), hr in zip(traces, HRS_BPM)]
    assert sum(e > 5.0 for e in green_errors) >= len(HRS_BPM) - 1
    # ... which the methods designed for motion reject.
    for name in MOTION_ROBUST:
        for (rgb, _), hr in zip(traces, HRS_BPM):
            assert hr_of(METHODS.get(name)(rgb, FPS)) == pytest.approx(hr, abs=1.0), f"{name} at {hr} bpm"


def test_pos_equals_algorithm_1_loop():
    rgb, _ = skin_trace(75.0, seed=3, duration_s=6.0)
    length = 48  # 1.6 s at 30 fps
    expected = np.zeros(len(rgb))
    proj = np.array([[0.0, 1.0, -1.0], [-2.0, 1.0, 1.0]])
    for m in range(len(rgb) - length + 1):  # Wang et al. 2017, Algorithm 1, as written
        cn = rgb[m : m + length] / rgb[m : m + length].mean(axis=0)
        s = cn @ proj.T
        h = s[:, 0] + s[:, 0].std() / s[:, 1].std() * s[:, 1]
        expected[m : m + length] += h - h.mean()
    np.testing.assert_allclose(methods.pos(rgb, FPS), -expected, atol=1e-12)


def test_lgi_and_omit_match_their_matrix_definitions():
    rgb, _ = skin_trace(75.0, seed=4, duration_s=10.0)
    x = rgb.T
    u = np.linalg.svd(x, full_matrices=False)[0][:, 0]
    g = ((np.eye(3) - np.outer(u, u)) @ x)[1]
    np.testing.assert_allclose(methods.lgi(rgb, FPS), -(g - g.mean()), atol=1e-9)
    q = np.linalg.qr(x)[0][:, 0]
    g = ((np.eye(3) - np.outer(q, q)) @ x)[1]
    np.testing.assert_allclose(methods.omit(rgb, FPS), -(g - g.mean()), atol=1e-9)


@pytest.mark.parametrize("name", ["lgi", "omit", "pbv"])
def test_windowed_variants_recover_hr(name):
    rgb, _ = skin_trace(93.0, seed=5, periodic_motion=8e-3)
    assert hr_of(METHODS.get(name)(rgb, FPS, window_s=3.2)) == pytest.approx(93.0, abs=1.0)


def test_ica_is_deterministic():
    rgb, _ = skin_trace(70.0, seed=6)
    np.testing.assert_array_equal(methods.ica(rgb, FPS), methods.ica(rgb, FPS))


# --------------------------------------------------------------------------- gaps


def test_apply_method_processes_each_valid_segment():
    rgb, _ = skin_trace(80.0, seed=7, duration_s=40.0)
    gappy = rgb.copy()
    gappy[450:600] = np.nan  # 15-20 s: no face
    gappy[900:930] = np.nan  # 30-31 s
    gappy[930 + 30 : 930 + 31] = np.nan  # leaves a 1 s run (930-960): too short for POS
    out = apply_method("pos", gappy, FPS)
    assert np.isnan(out[450:600]).all() and np.isnan(out[900:961]).all()
    np.testing.assert_allclose(out[:450], methods.pos(rgb[:450], FPS))
    np.testing.assert_allclose(out[600:900], methods.pos(rgb[600:900], FPS))
    np.testing.assert_allclose(out[961:], methods.pos(rgb[961:], FPS))
    assert hr_of(out[:450]) == pytest.approx(80.0, abs=1.0)
    # No gaps: identical to calling the method.
    np.testing.assert_array_equal(apply_method("chrom", rgb, FPS), methods.chrom(rgb, FPS))


def test_apply_method_all_segments_too_short():
    rgb, _ = skin_trace(80.0, seed=8, duration_s=5.0)
    rgb[30::40] = np.nan  # runs of at most 39 frames (1.3 s)
    with pytest.raises(SignalTooShortError, match=r"pos needs at least 48 frames .* got 39"):
        apply_method("pos", rgb, FPS)


# --------------------------------------------------------------------------- errors


def test_unknown_method_lists_available():
    with pytest.raises(ConfigError, match="unknown method 'xyz'; available: chrom, green, ica, lgi, omit, pbv, pos"):
        apply_method("xyz", np.ones((100, 3)), FPS)


@pytest.mark.parametrize("name", ALL)
def test_bad_inputs_raise_one_line_errors(name):
    fn = METHODS.get(name)
    rgb, _ = skin_trace(70.0, seed=9, duration_s=5.0)
    for bad in (rgb[:, :2], rgb.ravel(), rgb[None]):
        with pytest.raises(InputError, match=r"shape \(N, 3\)"):
            fn(bad, FPS)
    with pytest.raises(SignalTooShortError, match=rf"{name} needs at least \d+ frames .* got 20"):
        fn(rgb[:20], FPS)
    for fps in (0.0, -30.0, float("nan")):
        with pytest.raises(ConfigError, match="fps"):
            fn(rgb, fps)
    nan = rgb.copy()
    nan[17, 1] = np.nan
    with pytest.raises(InputError, match="frame 17"):
        fn(nan, FPS)


@pytest.mark.parametrize("name", ["green", "chrom", "pos", "pbv"])
def test_normalising_methods_reject_non_positive_intensities(name):
    rgb, _ = skin_trace(70.0, seed=11, duration_s=5.0)
    rgb[33, 2] = 0.0
    with pytest.raises(InputError, match="channel B is 0 at frame 33"):
        METHODS.get(name)(rgb, FPS)


def test_bad_parameters():
    rgb, _ = skin_trace(70.0, seed=12, duration_s=5.0)
    with pytest.raises(ConfigError, match="window_s"):
        methods.pos(rgb, FPS, window_s=0.0)
    with pytest.raises(ConfigError, match="signature"):
        methods.pbv(rgb, FPS, signature=(0.0, 0.0, 0.0))
    with pytest.raises(ConfigError, match="fps/2"):
        methods.chrom(rgb, 6.0)


# --------------------------------------------------------------------------- real data


def load_ubfc10():
    rgb = scipy.io.loadmat(UBFC10 / "mean_rgb.mat")["mean_rgb"].astype(float)
    gt = np.loadtxt(UBFC10 / "ground_truth.txt")  # rows: PPG, oximeter HR, timestamps (s)
    fps = 1.0 / np.mean(np.diff(gt[2]))
    return rgb, fps, gt[0]


@pytest.mark.parametrize("name", ALL)
def test_ubfc_subject10_hr(name):
    rgb, fps, ppg = load_ubfc10()
    assert fps == pytest.approx(29.9, abs=0.2)
    reference = hr_of(ppg, fps)
    assert reference == pytest.approx(119.3, abs=0.5)  # the dataset README's value
    assert hr_of(METHODS.get(name)(rgb, fps), fps) == pytest.approx(119.3, abs=2.0)


@pytest.mark.parametrize(("name", "key", "sign", "min_r"), [("pos", "POS", -1.0, 0.75), ("chrom", "CHROM", 1.0, 0.7)])
def test_ubfc_subject10_matches_reference_implementation(name, key, sign, min_r):
    rgb, fps, ppg = load_ubfc10()
    ref = scipy.io.loadmat(UBFC10 / f"bvp_{key}_cdf.mat")[key].ravel()
    # The reference CHROM drops the last partial window (2016 of 2024 samples), and keeps
    # Wang's POS polarity (intensity, opposite to blood volume): hence ``sign``.
    ours = METHODS.get(name)(rgb, fps)[: len(ref)]
    r = np.corrcoef(bandpass(ours, fps), sign * bandpass(ref, fps))[0, 1]
    assert r > min_r
    # Ours follows the contact PPG at least as closely as the reference does (it adds
    # colour-distortion filtering, which we do not).
    gt = bandpass(ppg[: len(ref)], fps)
    assert np.corrcoef(bandpass(ours, fps), gt)[0, 1] >= np.corrcoef(sign * bandpass(ref, fps), gt)[0, 1] - 0.02
