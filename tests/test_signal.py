"""Tests of facepulse.signal: filters, spectral HR, SNR, windowed HR, beats and HRV.

Real-data tests read $FACEPULSE_DATA (default <repo>/../shared/data); they fail, not skip,
when it is missing.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.signal

from facepulse.errors import ConfigError, InputError, SignalTooShortError
from facepulse.paths import shared_data_dir
from facepulse.signal import filters, hr, hrv
from facepulse.signal.filters import bandpass, detrend, finite_segments, smoothness_lambda
from facepulse.signal.hr import estimate_hr_bpm, power_spectrum, snr_db, windowed_hr
from facepulse.signal.hrv import clean_ibi_mask, detect_beats, hrv_metrics, ibi_ms

SIGNALS = shared_data_dir() / "signals"


def tone(freq_hz: float, fps: float, duration_s: float, phase: float = 0.0) -> np.ndarray:
    t = np.arange(round(duration_s * fps)) / fps
    return np.sin(2 * np.pi * freq_hz * t + phase)


def amplitude(x: np.ndarray) -> float:
    return float(np.sqrt(2) * np.std(x))


# --------------------------------------------------------------------------- filters


def test_finite_segments():
    v = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    assert finite_segments(v) == [slice(1, 3), slice(5, 6), slice(7, 10)]
    assert finite_segments(np.zeros(4, bool)) == []
    assert finite_segments(np.ones(3, bool)) == [slice(0, 3)]


def test_detrend_matches_dense_smoothness_priors_formula():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2)).cumsum(axis=0)
    lam = 25.0
    d2 = np.diff(np.eye(200), n=2, axis=0)
    expected = x - np.linalg.solve(np.eye(200) + lam**2 * d2.T @ d2, x)
    np.testing.assert_allclose(detrend(x, 30.0, lam), expected, atol=1e-9)


def test_detrend_removes_trend_and_keeps_pulse():
    fps = 30.0
    t = np.arange(round(60 * fps)) / fps
    pulse = np.sin(2 * np.pi * 1.2 * t)
    trend = 5.0 + 0.002 * (t - 30) ** 2 + 2.0 * np.sin(2 * np.pi * 0.03 * t)
    out = detrend(pulse + trend, fps)
    core = slice(150, -150)  # the detrender's own edge transient
    assert np.max(np.abs(out[core] - pulse[core])) < 0.1
    assert amplitude(out[core]) == pytest.approx(1.0, rel=0.05)


def test_detrend_cutoff_is_half_amplitude_point():
    fps, cutoff = 30.0, 0.4
    assert smoothness_lambda(0.48, 30.0) == pytest.approx(100.0, rel=0.02)
    x = tone(cutoff, fps, 120)
    out = detrend(x, fps, cutoff_hz=cutoff)
    assert amplitude(out[600:-600]) == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ConfigError):
        detrend(x, fps, 10.0, cutoff_hz=0.4)


def test_bandpass_passes_band_rejects_rest_zero_phase():
    fps = 30.0
    inside = tone(1.5, fps, 30)
    out = bandpass(inside, fps)
    core = slice(90, -90)
    assert amplitude(out[core]) == pytest.approx(1.0, rel=0.02)
    # Zero phase: the filtered tone lines up with the input.
    assert np.corrcoef(out[core], inside[core])[0, 1] > 0.999
    for f in (0.15, 7.0):
        assert amplitude(bandpass(tone(f, fps, 30), fps)[core]) < 0.05


def test_bandpass_nan_gaps_are_filtered_per_segment():
    fps = 30.0
    rng = np.random.default_rng(1)
    x = rng.standard_normal(600)
    x[200:260] = np.nan
    x[300:310] = np.nan  # leaves a 40-sample run between the gaps
    out = bandpass(x, fps)
    assert np.isnan(out[200:260]).all()
    np.testing.assert_allclose(out[:200], bandpass(x[:200], fps))
    np.testing.assert_allclose(out[310:], bandpass(x[310:], fps))
    # 260..300 has 40 samples: longer than the default filter's padding, so filtered.
    assert np.isfinite(out[260:300]).all()
    short = np.full(100, np.nan)
    short[10:20] = 1.0
    short[50:60] = 2.0
    with pytest.raises(SignalTooShortError, match="longest run has 10"):
        bandpass(short, fps)


def test_bandpass_bad_arguments():
    x = np.zeros(300)
    with pytest.raises(ConfigError, match="fps/2"):
        bandpass(x, 6.0, 0.7, 3.5)
    with pytest.raises(ConfigError, match="fps"):
        bandpass(x, 0.0)
    with pytest.raises(ConfigError, match="order"):
        bandpass(x, 30.0, order=0)
    with pytest.raises(SignalTooShortError, match="needs at least"):
        bandpass(np.zeros(10), 30.0)
    with pytest.raises(InputError, match="shape"):
        bandpass(np.zeros((10, 2, 2)), 30.0)


# --------------------------------------------------------------------------- spectra and HR


@pytest.mark.parametrize("method", ["periodogram", "welch"])
@pytest.mark.parametrize("fps", [15.0, 25.0, 30.0, 60.0])
def test_estimate_hr_pure_sinusoid_sweep(method, fps):
    rng = np.random.default_rng(int(fps))
    hrs = np.concatenate([[42.0, 210.0], np.arange(42.0, 210.0, 1.37)])
    for duration_s in (10.0, 23.0, 60.0):
        errors = [
            estimate_hr_bpm(tone(h / 60, fps, duration_s, rng.uniform(0, 2 * np.pi)), fps, method=method) - h
            for h in hrs
        ]
        worst = float(np.max(np.abs(errors)))
        assert worst < 0.5, f"{method} {fps} fps {duration_s} s: worst error {worst:.3f} bpm"


def test_estimate_hr_picks_fundamental_of_noisy_pulse():
    fps = 30.0
    rng = np.random.default_rng(3)
    for h in (48.0, 75.0, 133.0):
        t = np.arange(round(20 * fps)) / fps
        ph = 2 * np.pi * h / 60 * t
        x = np.sin(ph) + 0.6 * np.sin(2 * ph + 1) + 0.3 * np.sin(3 * ph + 2) + 0.7 * rng.standard_normal(len(t))
        assert estimate_hr_bpm(x, fps) == pytest.approx(h, abs=0.5)


def test_estimate_hr_respects_band():
    fps = 30.0
    x = tone(1.0, fps, 20) + 0.3 * tone(2.2, fps, 20)
    assert estimate_hr_bpm(x, fps) == pytest.approx(60.0, abs=0.5)
    assert estimate_hr_bpm(x, fps, band_bpm=(90, 200)) == pytest.approx(132.0, abs=0.5)


def test_power_spectrum_shapes_peak_and_parseval():
    fps = 30.0
    rng = np.random.default_rng(4)
    noise = rng.standard_normal(3000)
    for method in ("periodogram", "welch"):
        freq, power = power_spectrum(noise, fps, method=method)
        assert freq[0] == 0 and freq[-1] == pytest.approx(fps / 2)
        assert np.sum(power) * (freq[1] - freq[0]) == pytest.approx(np.var(noise), rel=0.1)
    freq, power = power_spectrum(np.stack([tone(1.1, fps, 20), tone(2.3, fps, 20)]), fps, nfft=8192)
    assert power.shape == (2, 4097) and freq.shape == (4097,)
    np.testing.assert_allclose(freq[np.argmax(power, axis=1)], [1.1, 2.3], atol=0.01)
    with pytest.raises(ConfigError, match="available"):
        power_spectrum(noise, fps, method="lomb")
    with pytest.raises(ConfigError, match="nfft"):
        power_spectrum(noise, fps, nfft=100)


def test_snr_db_definition():
    fps = 30.0
    # Integer numbers of cycles in 20 s: the whole main lobes fall inside +-15 bpm.
    x = tone(1.0, fps, 20) + 0.5 * tone(2.5, fps, 20)
    assert snr_db(x, fps, 60.0, tol_bpm=15.0) == pytest.approx(20 * np.log10(2.0), abs=0.05)
    # The first harmonic counts as signal.
    x = tone(1.0, fps, 20) + 0.5 * tone(2.0, fps, 20) + 0.25 * tone(3.1, fps, 20)
    assert snr_db(x, fps, 60.0, tol_bpm=15.0) == pytest.approx(10 * np.log10(1.25 / 0.0625), abs=0.05)
    # More noise, lower SNR; pure noise is clearly negative.
    rng = np.random.default_rng(5)
    clean = tone(1.2, fps, 10)
    values = [snr_db(clean + s * rng.standard_normal(300), fps, 72.0) for s in (0.0, 0.3, 1.0, 3.0)]
    assert values == sorted(values, reverse=True)
    assert values[0] > 8.0 and values[-1] < 0.0
    with pytest.raises(ConfigError, match="hr_bpm"):
        snr_db(clean, fps, 0.0)


def test_windowed_hr_tracks_a_step_and_places_windows():
    fps = 30.0
    x = np.concatenate([tone(1.0, fps, 30), tone(1.5, fps, 30)])
    w = windowed_hr(x, fps, window_s=10.0, step_s=1.0, timestamps_s=100.0 + np.arange(len(x)) / fps)
    assert len(w) == 51
    np.testing.assert_allclose(w.t_start_s, 100.0 + np.arange(51), atol=1e-9)
    np.testing.assert_allclose(w.t_end_s - w.t_start_s, 10.0, atol=1e-9)
    np.testing.assert_allclose(w.t_center_s, w.t_start_s + 5.0, atol=1e-9)
    first = w.t_end_s <= 130.0
    second = w.t_start_s >= 130.0
    np.testing.assert_allclose(w.hr_bpm[first], 60.0, atol=0.5)
    np.testing.assert_allclose(w.hr_bpm[second], 90.0, atol=0.5)
    assert np.all(w.valid_fraction == 1.0) and np.all(w.snr_db[first | second] > 8.0)


def test_windowed_hr_matches_single_window_estimate():
    fps = 25.0
    rng = np.random.default_rng(6)
    x = tone(1.3, fps, 40) + 0.5 * rng.standard_normal(1000)
    w = windowed_hr(x, fps, window_s=12.0, step_s=4.0)
    for k in range(len(w)):
        seg = x[int(round(w.t_start_s[k] * fps)) : int(round(w.t_end_s[k] * fps))]
        assert w.hr_bpm[k] == pytest.approx(estimate_hr_bpm(seg, fps), abs=1e-9)
        assert w.snr_db[k] == pytest.approx(snr_db(seg, fps, w.hr_bpm[k]), abs=1e-9)


def test_windowed_hr_invalid_samples():
    fps = 30.0
    x = tone(1.2, fps, 60)
    x[900:1200] = np.nan  # 30-40 s
    valid = np.ones(len(x), bool)
    valid[1500:1530] = False  # 1 s at 50 s
    w = windowed_hr(x, fps, valid=valid, min_valid_fraction=0.8)
    overlap_gap = np.clip(np.minimum(w.t_end_s, 40) - np.maximum(w.t_start_s, 30), 0, None)
    overlap_bad = np.clip(np.minimum(w.t_end_s, 51) - np.maximum(w.t_start_s, 50), 0, None)
    np.testing.assert_allclose(w.valid_fraction, 1 - (overlap_gap + overlap_bad) / 10.0, atol=1e-9)
    usable = w.valid_fraction >= 0.8
    assert np.isnan(w.hr_bpm[~usable]).all() and np.isnan(w.snr_db[~usable]).all()
    assert usable.sum() > 10 and (~usable).sum() > 10
    np.testing.assert_allclose(w.hr_bpm[usable], 72.0, atol=0.5)


def test_windowed_hr_errors():
    x = tone(1.2, 30.0, 8)
    with pytest.raises(SignalTooShortError, match=r"240 samples \(8.00 s\) but one window needs 300"):
        windowed_hr(x, 30.0)
    x = tone(1.2, 30.0, 20)
    with pytest.raises(InputError, match="timestamps_s"):
        windowed_hr(x, 30.0, timestamps_s=np.arange(600) / 25.0)
    with pytest.raises(InputError, match="valid"):
        windowed_hr(x, 30.0, valid=np.ones(10, bool))
    with pytest.raises(ConfigError, match="window_s"):
        windowed_hr(x, 30.0, window_s=1.0)
    with pytest.raises(InputError, match="NaN"):
        estimate_hr_bpm(np.where(np.arange(600) == 7, np.nan, x), 30.0)
    with pytest.raises(SignalTooShortError, match="needs at least"):
        estimate_hr_bpm(x[:50], 30.0)
    with pytest.raises(ConfigError, match="band_bpm"):
        estimate_hr_bpm(x, 30.0, band_bpm=(100, 40))


# --------------------------------------------------------------------------- HRV units


def test_ibi_and_hrv_on_known_intervals():
    ibi = np.tile([0.8, 0.9], 30)
    t = np.concatenate([[0.0], np.cumsum(ibi)])
    np.testing.assert_allclose(ibi_ms(t), ibi * 1000)
    m = hrv_metrics(t)
    assert m["n_ibi"] == 60 and m["n_ibi_rejected"] == 0
    assert m["mean_hr_bpm"] == pytest.approx(60000 / 850)
    assert m["sdnn_ms"] == pytest.approx(np.std(ibi * 1000, ddof=1))
    assert m["rmssd_ms"] == pytest.approx(100.0)
    assert m["pnn50_pct"] > 95
    assert np.isnan(m["lf_hf"])  # 51 s: too short for LF/HF
    # A missed beat (one long interval) and a spurious beat (two short ones) are rejected,
    # and no successive difference is taken across them.
    missed = np.delete(t, 20)
    extra = np.sort(np.append(t, t[40] + 0.35))
    for beats, rejected in ((missed, 1), (extra, 2)):
        m = hrv_metrics(beats)
        assert m["n_ibi_rejected"] == rejected
        assert m["rmssd_ms"] == pytest.approx(100.0)
    with pytest.raises(InputError, match="increase"):
        ibi_ms(np.array([0.0, 1.0, 0.5]))
    with pytest.raises(SignalTooShortError, match="usable inter-beat"):
        hrv_metrics(np.array([0.0, 0.8, 1.6, 2.4]))


def test_clean_ibi_mask_range_and_local_median():
    ibi = np.array([800, 810, 790, 200, 805, 1600, 795, 2000, 800, 815.0])
    keep = clean_ibi_mask(ibi)
    np.testing.assert_array_equal(keep, [1, 1, 1, 0, 1, 0, 1, 0, 1, 1])


def test_lf_hf_follows_the_dominant_band():
    def beats(lf_ms, hf_ms, duration_s):
        t = [0.0]
        while t[-1] < duration_s:
            x = t[-1]
            t.append(x + 0.9 + lf_ms / 1000 * np.sin(2 * np.pi * 0.1 * x) + hf_ms / 1000 * np.sin(2 * np.pi * 0.25 * x))
        return np.array(t)

    assert hrv_metrics(beats(40, 10, 300))["lf_hf"] > 3
    assert hrv_metrics(beats(10, 40, 300))["lf_hf"] < 1 / 3
    assert np.isnan(hrv_metrics(beats(40, 10, 100))["lf_hf"])


def test_detect_beats_skips_gaps_and_rejects_bad_input():
    fps = 30.0
    x = tone(1.25, fps, 40)
    x[600:750] = np.nan  # 20-25 s
    b = detect_beats(x, fps)
    assert not np.any((b > 20.0) & (b < 25.0))
    assert len(b) == pytest.approx(35 * 1.25, abs=3)
    # Away from the ends of each run (filter transients), beats are 0.8 s apart to 5 ms.
    inner = b[((b > 1.5) & (b < 18.5)) | ((b > 26.5) & (b < 38.5))]
    gaps = np.diff(inner)
    np.testing.assert_allclose(gaps[gaps < 1.0], 0.8, atol=0.005)
    assert (gaps < 1.0).sum() >= len(inner) - 2
    with pytest.raises(ConfigError, match="fiducial"):
        detect_beats(tone(1.2, fps, 10), fps, fiducial="notch")
    with pytest.raises(InputError, match="shape"):
        detect_beats(np.zeros((300, 2)), fps)


# --------------------------------------------------------------------------- real data


def load_iphys():
    ppg = scipy.io.loadmat(SIGNALS / "iphys_contact_ppg_ecg" / "PPGData.mat")["PPG"][0, 0]
    ecg = scipy.io.loadmat(SIGNALS / "iphys_contact_ppg_ecg" / "ECGData.mat")["ECG"][0, 0]
    fs = float(ppg["fs"].ravel()[0])
    ecg_fs = float(ecg["fs"].ravel()[0])
    # MATLAB indices are 1-based. The annotated PPG "peaks" are the pulse onsets (feet).
    ann_s = (ppg["peaks"].ravel().astype(float) - 1) / fs
    r_s = (ecg["peaks"].ravel().astype(float) - 1) / ecg_fs
    return ppg["data"].ravel().astype(float), fs, ann_s, r_s


def nearest_distance(beats: np.ndarray, ref: np.ndarray) -> np.ndarray:
    j = np.clip(np.searchsorted(beats, ref), 1, len(beats) - 1)
    return np.minimum(np.abs(beats[j] - ref), np.abs(beats[j - 1] - ref))


@pytest.mark.parametrize("fps", [None, 30.0])
def test_iphys_beats_match_annotations(fps):
    x, fs, ann_s, r_s = load_iphys()
    if fps is not None:  # the camera case: 250 Hz -> 30 fps
        ratio = Fraction(int(fps), int(fs))
        x = scipy.signal.resample_poly(x, ratio.numerator, ratio.denominator)
        fs = fps
    beats = detect_beats(x, fs)
    hit = nearest_distance(beats, ann_s) <= 0.05
    assert hit.mean() > 0.95
    ours = hrv_metrics(beats)
    annotated = hrv_metrics(ann_s)
    assert ours["mean_hr_bpm"] == pytest.approx(68.0, abs=1.0)
    assert ours["mean_hr_bpm"] == pytest.approx(60 * (len(r_s) - 1) / (r_s[-1] - r_s[0]), abs=0.5)
    assert ours["sdnn_ms"] == pytest.approx(annotated["sdnn_ms"], rel=0.1)
    assert ours["rmssd_ms"] == pytest.approx(annotated["rmssd_ms"], rel=0.1)


def load_welltory(subject: int, fps: float = 30.0):
    folder = SIGNALS / "welltory_finger_ppg" / "data" / f"subject_{subject:02d}"
    table = pd.read_csv(folder / "PPG.csv")
    rr_ms = np.loadtxt(folder / "RR.txt")
    t = table["time"].to_numpy() / 1000.0
    grid = np.arange(t[0], t[-1], 1.0 / fps)  # camera frames are irregular: resample
    rgb = np.stack([np.interp(grid, t, table[c].to_numpy()) for c in "RGB"], axis=1)
    return rgb, rr_ms


@pytest.mark.parametrize("subject", [16, 18])
def test_welltory_finger_ppg_against_polar(subject):
    fps = 30.0
    rgb, rr_ms = load_welltory(subject, fps)
    # The saturated channels differ per phone: use the one with the clearest pulse.
    snrs = []
    for c in range(3):
        if np.ptp(rgb[:, c]) == 0:
            snrs.append(-np.inf)
            continue
        xf = bandpass(rgb[:, c], fps)
        snrs.append(snr_db(xf, fps, estimate_hr_bpm(xf, fps)))
    ppg = -rgb[:, int(np.argmax(snrs))]  # more blood, less light through the finger
    polar = hrv_metrics(np.concatenate([[0.0], np.cumsum(rr_ms) / 1000.0]))
    ours = hrv_metrics(detect_beats(ppg, fps))
    assert ours["mean_hr_bpm"] == pytest.approx(polar["mean_hr_bpm"], abs=2.0)
    # The whole-recording spectral peak is not exactly the mean rate when HR varies.
    assert estimate_hr_bpm(bandpass(ppg, fps), fps) == pytest.approx(polar["mean_hr_bpm"], abs=2.5)
    assert ours["sdnn_ms"] == pytest.approx(polar["sdnn_ms"], rel=0.2)
    assert ours["rmssd_ms"] == pytest.approx(polar["rmssd_ms"], rel=0.2)


def test_signal_package_exports():
    for module in (filters, hr, hrv):
        for name in module.__all__:
            assert hasattr(module, name)
