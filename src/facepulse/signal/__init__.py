"""Signal stage: pulse conditioning (filters), heart rate (hr) and HRV (hrv)."""

from __future__ import annotations

from facepulse.signal.filters import bandpass, detrend, finite_segments
from facepulse.signal.hr import (
    DEFAULT_BAND_BPM,
    WindowedHR,
    estimate_hr_bpm,
    power_spectrum,
    snr_db,
    windowed_hr,
)
from facepulse.signal.hrv import detect_beats, hrv_metrics, ibi_ms

__all__ = [
    "DEFAULT_BAND_BPM",
    "WindowedHR",
    "bandpass",
    "detect_beats",
    "detrend",
    "estimate_hr_bpm",
    "finite_segments",
    "hrv_metrics",
    "ibi_ms",
    "power_spectrum",
    "snr_db",
    "windowed_hr",
]
