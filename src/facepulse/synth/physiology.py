"""Synthetic cardiorespiratory physiology: HR trajectory, HRV, respiration, PPG waveform.

neurokit2's ``ppg_simulate`` only takes one constant heart rate and does not return
its beat times, so the waveform is built here beat by beat instead: the instantaneous
HR (trajectory + respiratory sinus arrhythmia + Mayer waves) is integrated into a
cardiac phase, and a pulse template evaluated at that phase gives the PPG. The per-frame
HR is the exact phase rate, and the beat times are the systolic maxima of that same
waveform (located on a 1 kHz grid), so PPG, HR and beats are consistent by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from facepulse.synth.params import HR_MAX_BPM, HR_MIN_BPM, PhysiologyParams
from facepulse.synth.trajectories import HR_TRAJECTORIES

# The phase is integrated on this fine grid; trapezoidal error is O(dt^2) -> < 1e-6 beat.
_FINE_RATE_HZ = 1000.0
# Rubins-style sum of Gaussians (amplitude, centre phase, width in phase units): early
# systolic wave, late systolic wave, diastolic (reflected) wave. Fitted by least squares
# to the mean beat of the contact PPG of UBFC-rPPG subjects 3, 4, 5 and 9 (shared data),
# with a shallow dicrotic notch imposed: foot at phase ~0, systolic peak at 0.245, notch
# at 0.55, diastolic peak at 0.635 (height 0.38). Harmonic amplitudes 1 : 0.64 : 0.15 :
# 0.07 against 1 : 0.58 : 0.17 : 0.05 for those recordings.
_TEMPLATE_WAVES = np.array([[0.318, 0.1823, 0.0654], [0.6355, 0.3021, 0.1075], [0.3256, 0.6478, 0.1675]])
_DIASTOLIC_WAVES = np.array([False, False, True])


def _wrapped_gaussians(phase: np.ndarray, centres: np.ndarray, widths: np.ndarray) -> np.ndarray:
    frac = np.mod(phase, 1.0)[:, None]
    # Sum over neighbouring beats keeps the template smooth and periodic across beats.
    out = np.zeros((frac.shape[0], centres.shape[0]))
    for shift in (-1.0, 0.0, 1.0):
        out += np.exp(-0.5 * ((frac - centres + shift) / widths) ** 2)
    return out


def _template_landmarks() -> tuple[float, float, float]:
    grid = np.linspace(0.0, 1.0, 20001)
    waves = _wrapped_gaussians(grid, _TEMPLATE_WAVES[:, 1], _TEMPLATE_WAVES[:, 2])
    y = waves @ _TEMPLATE_WAVES[:, 0]
    return float(y.min()), float(y.max()), float(grid[np.argmax(y)])


_TEMPLATE_MIN, _TEMPLATE_MAX, SYSTOLIC_PHASE = _template_landmarks()


def pulse_template(phase: np.ndarray, diastolic_gain: np.ndarray | float = 1.0) -> np.ndarray:
    """One PPG beat as a smooth periodic function of the cardiac phase.

    Sum of Gaussian waves, after Rubins 2008 (Med Biol Eng Comput 46:1271, "Finger and
    ear photoplethysmogram waveform analysis by fitting with Gaussians").

    Parameters
    ----------
    phase : (N,) cardiac phase in beats (integer = pulse foot); any real values.
    diastolic_gain : scalar or (N,) gain of the diastolic waves (notch depth / shape).

    Returns
    -------
    (N,) pulse, 0 at the foot and 1 at the systolic peak (for ``diastolic_gain=1``).
    """
    phase = np.asarray(phase, dtype=np.float64)
    waves = _wrapped_gaussians(phase, _TEMPLATE_WAVES[:, 1], _TEMPLATE_WAVES[:, 2])
    amps = _TEMPLATE_WAVES[:, 0]
    systolic = waves[:, ~_DIASTOLIC_WAVES] @ amps[~_DIASTOLIC_WAVES]
    diastolic = waves[:, _DIASTOLIC_WAVES] @ amps[_DIASTOLIC_WAVES]
    y = systolic + np.asarray(diastolic_gain) * diastolic
    return (y - _TEMPLATE_MIN) / (_TEMPLATE_MAX - _TEMPLATE_MIN)


def hr_trajectory_bpm(t_s: np.ndarray, params: PhysiologyParams, duration_s: float) -> np.ndarray:
    """Requested mean heart rate over time (before HRV), in bpm.

    Constant, linear drift, or a raised-cosine step (Hann-window edge, Harris 1978,
    Proc. IEEE 66:51) from ``hr_bpm`` to ``hr_end_bpm`` (see ``HR_TRAJECTORIES``).

    Parameters
    ----------
    t_s : (N,) times in seconds.
    params : physiology parameters (trajectory name and HR values).
    duration_s : video length, for the drift slope and the default step time.

    Returns
    -------
    (N,) heart rate in beats per minute.
    """
    t_s = np.asarray(t_s, dtype=np.float64)
    frac = HR_TRAJECTORIES.get(params.hr_trajectory)(t_s, params, duration_s)
    end = params.hr_bpm if params.hr_end_bpm is None else params.hr_end_bpm
    return params.hr_bpm + (end - params.hr_bpm) * frac


def band_limited_noise(
    n: int, rate_hz: float, band_hz: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Zero-mean, unit-RMS Gaussian noise restricted to a frequency band.

    White noise through a zero-phase Butterworth band-pass (SciPy ``sosfiltfilt``).

    Parameters
    ----------
    n : number of samples.
    rate_hz : sampling rate (Hz).
    band_hz : (low, high) pass band in Hz; high is clipped below Nyquist.
    rng : random generator (consumes ``n + 2 * pad`` normal draws).

    Returns
    -------
    (n,) noise with RMS 1 (all zeros when ``n`` < 2).
    """
    if n < 2:
        return np.zeros(n)
    nyq = rate_hz / 2
    low, high = band_hz[0], min(band_hz[1], 0.95 * nyq)
    pad = int(np.ceil(2 * rate_hz / low))  # settles the filter at the ends
    white = rng.standard_normal(n + 2 * pad)
    if low >= high:
        return np.zeros(n)
    sos = sps.butter(2, [low, high], btype="bandpass", fs=rate_hz, output="sos")
    x = sps.sosfiltfilt(sos, white)[pad : pad + n]
    rms = float(np.sqrt(np.mean(x**2)))
    return x / rms if rms > 0 else x


def _systolic_peaks_s(fine_t: np.ndarray, phase: np.ndarray, ppg: np.ndarray) -> np.ndarray:
    """Times of the waveform's systolic maxima, one per beat.

    Beat k's template peak is where the phase equals k + SYSTOLIC_PHASE; amplitude and
    baseline modulation move the actual maximum by a few ms, so it is searched within
    +-40 ms (the diastolic peak is >= 100 ms away even at 220 bpm) and refined by a
    parabola through the three samples around it. Peaks outside the grid are dropped.
    """
    k = np.arange(np.ceil(phase[0] - SYSTOLIC_PHASE), np.floor(phase[-1] - SYSTOLIC_PHASE) + 1)
    centre = np.searchsorted(phase, k + SYSTOLIC_PHASE)
    half = int(round(0.04 * _FINE_RATE_HZ))
    idx = centre[:, None] + np.arange(-half, half + 1)[None, :]
    inside = (idx[:, 0] >= 1) & (idx[:, -1] <= ppg.size - 2)
    idx = idx[inside]
    best = idx[np.arange(idx.shape[0]), np.argmax(ppg[idx], axis=1)]
    y0, y1, y2 = ppg[best - 1], ppg[best], ppg[best + 1]
    denom = y0 - 2 * y1 + y2
    shift = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, -1.0), 0.0)
    return fine_t[best] + np.clip(shift, -0.5, 0.5) / _FINE_RATE_HZ


@dataclass
class PulseTruth:
    """Exact physiology on a time axis.

    t_s : (N,) sample times (s).
    ppg : (N,) blood volume pulse, dimensionless; a beat rises from ~0 (foot) to ~1
        (systolic peak), modulated by respiration and per-beat jitter. Skin reflectance
        falls when it rises (more blood absorbs more light), as in contact PPG.
    hr_bpm : (N,) instantaneous heart rate, 60 x d(phase)/dt (bpm).
    resp : (N,) respiration signal in [-1, 1] (inhalation positive).
    beat_times_s : (B,) times of the PPG's systolic maxima within [t_s[0], t_s[-1]].
    mean_hr_bpm : (N,) requested HR trajectory before HRV (bpm).
    """

    t_s: np.ndarray
    ppg: np.ndarray
    hr_bpm: np.ndarray
    resp: np.ndarray
    beat_times_s: np.ndarray
    mean_hr_bpm: np.ndarray


def simulate_physiology(
    t_s: np.ndarray, params: PhysiologyParams, duration_s: float, rng: np.random.Generator
) -> PulseTruth:
    """PPG, instantaneous HR, respiration and beat times sampled at ``t_s``.

    Beat-by-beat synthesis by phase integration of the instantaneous HR (integral pulse
    frequency modulation, Mateo & Laguna 2000, IEEE TBME 47:985); waveform from
    :func:`pulse_template`.

    Parameters
    ----------
    t_s : (N,) non-decreasing sample times in seconds, within ``[0, duration_s]``
        (e.g. video frame times, or a fine grid for checks).
    params : physiology parameters.
    duration_s : length of the simulated recording (s).
    rng : random generator; the same generator state gives the same physiology for
        any ``t_s`` (the random draws do not depend on ``t_s``).

    Returns
    -------
    PulseTruth sampled at ``t_s``.
    """
    t_s = np.asarray(t_s, dtype=np.float64)
    n_fine = int(np.ceil(duration_s * _FINE_RATE_HZ)) + 2
    fine_t = np.arange(n_fine) / _FINE_RATE_HZ
    coarse_rate = 10.0  # HRV components are slow: draw them at 10 Hz and interpolate
    coarse_t = np.arange(int(np.ceil(duration_s * coarse_rate)) + 2) / coarse_rate

    # Fixed draw order so that every random quantity depends only on the seed.
    resp_phase0 = rng.uniform(0, 2 * np.pi)
    resp_rate_jitter = band_limited_noise(coarse_t.size, coarse_rate, (0.005, 0.05), rng)
    lf = band_limited_noise(coarse_t.size, coarse_rate, (0.04, 0.15), rng)
    cardiac_phase0 = rng.uniform(0.0, 1.0)
    n_beats_max = int(np.ceil(duration_s * HR_MAX_BPM * 1.2 / 60)) + 4
    beat_gain = 1.0 + params.beat_jitter * rng.standard_normal(n_beats_max)
    beat_diastolic = 1.0 + params.beat_jitter * rng.standard_normal(n_beats_max)

    # Respiration: a sinusoid whose rate wanders by up to ~10 %.
    resp_rate_hz = params.resp_rate_per_min / 60 * (1 + 0.1 * np.interp(fine_t, coarse_t, resp_rate_jitter))
    resp_phase = resp_phase0 + 2 * np.pi * np.concatenate(
        [[0.0], np.cumsum((resp_rate_hz[1:] + resp_rate_hz[:-1]) / 2) / _FINE_RATE_HZ]
    )
    resp = np.sin(resp_phase)

    mean_hr = hr_trajectory_bpm(fine_t, params, duration_s)
    hr = mean_hr + params.rsa_bpm * resp + params.lf_bpm * np.interp(fine_t, coarse_t, lf)
    # HRV must not push the rate outside what a heart does (or make the phase go back).
    hr = np.clip(hr, HR_MIN_BPM - 10, HR_MAX_BPM + 20)

    beats_hz = hr / 60.0
    phase = cardiac_phase0 + np.concatenate(
        [[0.0], np.cumsum((beats_hz[1:] + beats_hz[:-1]) / 2) / _FINE_RATE_HZ]
    )
    # Per-beat amplitude / shape interpolated over the phase: smooth, continuous at beats.
    beat_index = np.arange(n_beats_max, dtype=np.float64) + SYSTOLIC_PHASE
    gain_fine = np.interp(phase, beat_index, beat_gain)
    dia_fine = np.interp(phase, beat_index, beat_diastolic)

    def waveform(phase_: np.ndarray, dia_: np.ndarray, gain_: np.ndarray, resp_: np.ndarray) -> np.ndarray:
        gain_ = gain_ * (1 + params.resp_amplitude * resp_)
        return gain_ * pulse_template(phase_, dia_) + params.resp_baseline * resp_

    resp_t = np.interp(t_s, fine_t, resp)
    ppg = waveform(
        np.interp(t_s, fine_t, phase), np.interp(t_s, fine_t, dia_fine), np.interp(t_s, fine_t, gain_fine), resp_t
    )
    beat_times = _systolic_peaks_s(fine_t, phase, waveform(phase, dia_fine, gain_fine, resp))
    if t_s.size:
        beat_times = beat_times[(beat_times >= t_s[0]) & (beat_times <= t_s[-1])]

    return PulseTruth(
        t_s=t_s,
        ppg=ppg,
        hr_bpm=np.interp(t_s, fine_t, hr),
        resp=resp_t,
        beat_times_s=beat_times,
        mean_hr_bpm=np.interp(t_s, fine_t, mean_hr),
    )
