"""The live estimation seam: per-frame ``push``, once-a-second ``update``.

:class:`LiveEstimator` keeps a bounded ring buffer of the tracked skin ROI's mean colour,
one row per frame (the per-frame work is the same ROI machinery as
:func:`facepulse.roi.trace.extract_trace`: an ROI drawn once on the face and carried
along with it). :meth:`LiveEstimator.update` analyses only the buffered RGB rows of the
last ``window_s`` seconds (a few hundred numbers): frames are never re-processed.

With ``method="auto"`` (the default, as in ``facepulse predict``) each frame gives the
mean colour of every candidate region (:class:`facepulse.roi.regions.RegionSampler`),
each update fuses every region x method pulse of the window by its quality
(:func:`facepulse.signal.fusion.fuse_pulses`) and carries the HR forward with the
forward pass of the same Viterbi tracker (:mod:`facepulse.signal.tracking`): the HR may
move between updates only as fast as a heart rate does. A method name runs that one
method on the forehead-and-cheeks ROI.

>>> est = LiveEstimator(window_s=10)                         # doctest: +SKIP
>>> for t_s, frame in frames:                                 # doctest: +SKIP
...     est.push(t_s, frame, tracker.update(frame))
...     if t_s >= next_update_s:
...         print(est.update(t_s).hr_bpm)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facepulse.errors import ConfigError
from facepulse.face.detectors import Face

__all__ = ["LiveEstimator", "LiveUpdate", "confidence_from_snr"]

DEFAULT_BAND_BPM = (42.0, 210.0)

#: SNR (dB) mapped to confidence 0 and 1 (linear in between). On clean synthetic and
#: still-subject webcam video, POS windows of 10 s give +3 to +10 dB; windows dominated
#: by motion or noise give -10 dB and below.
SNR_AT_ZERO_CONFIDENCE_DB = -8.0
SNR_AT_FULL_CONFIDENCE_DB = 4.0


def confidence_from_snr(snr_db: float | None) -> float:
    """Confidence in [0, 1] of an HR estimate from its spectral SNR (dB): a linear ramp
    from :data:`SNR_AT_ZERO_CONFIDENCE_DB` (0) to :data:`SNR_AT_FULL_CONFIDENCE_DB` (1)."""
    if snr_db is None or not math.isfinite(snr_db):
        return 0.0 if snr_db is None or snr_db < 0 else 1.0
    span = SNR_AT_FULL_CONFIDENCE_DB - SNR_AT_ZERO_CONFIDENCE_DB
    return float(min(1.0, max(0.0, (snr_db - SNR_AT_ZERO_CONFIDENCE_DB) / span)))


@dataclass(frozen=True)
class LiveUpdate:
    """One rolling estimate.

    Attributes
    ----------
    t_s : stream time of the update (seconds, the source's own clock).
    hr_bpm : heart rate over the last window (beats/min), None while there is not
        enough face-covered signal (warming up, face lost).
    confidence : in [0, 1], from the SNR (:func:`confidence_from_snr`); 0 without HR.
    snr_db : SNR of the window's pulse at ``hr_bpm`` (dB, de Haan 2013), None without HR.
    face : a face was tracked in the latest frame.
    status : ``"ok"``, ``"warming up"``, ``"no face"`` or ``"waiting for frames"``.
    window_fill : fraction of the analysis window covered by usable samples, [0, 1].
    wave_t_s, wave : the recent pulse waveform (band-passed, unit variance) on a regular
        grid, for display; NaN where there was no face.
    """

    t_s: float
    hr_bpm: float | None
    confidence: float
    snr_db: float | None
    face: bool
    status: str = "ok"
    window_fill: float = 0.0
    wave_t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wave: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_json(self, *, wave: bool = False, digits: int = 2) -> dict[str, Any]:
        """Plain JSON-ready numbers (``t_s``, ``hr_bpm``, ``confidence``, ``snr_db``,
        ``face``, ``status``, ``window_fill``; ``wave_t_s``/``wave`` with ``wave=True``)."""

        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(float(x), digits)

        out: dict[str, Any] = {
            "t_s": round(float(self.t_s), 3),
            "hr_bpm": num(self.hr_bpm),
            "confidence": round(float(self.confidence), 3),
            "snr_db": num(self.snr_db),
            "face": bool(self.face),
            "status": self.status,
            "window_fill": round(float(self.window_fill), 3),
        }
        if wave:
            out["wave_t_s"] = [round(float(t), 3) for t in self.wave_t_s]
            out["wave"] = [None if not math.isfinite(v) else round(float(v), 3) for v in self.wave]
        return out


class LiveEstimator:
    """Rolling heart rate from a stream of frames and tracked faces.

    Parameters
    ----------
    window_s : analysis window (seconds): each update uses the last ``window_s`` seconds.
    band_bpm : HR search band (beats/min).
    method : ``"auto"`` (every region x method, fused, tracked across updates) or one
        ``facepulse.methods.METHODS`` name on the skin ROI.
    analysis_fps : the buffered trace is resampled onto a regular grid at this rate
        (frames arrive at whatever rate the camera or browser manages).
    max_gap_s : gaps without a face up to this long are interpolated; longer ones split
        the trace (and the ROI is drawn afresh when the face is back).
    min_fill : fraction of the window that must hold usable samples before an HR is given.
    wave_s : length of the waveform returned with each update (seconds).
    max_fps : frames per second the ring buffer is sized for; faster input keeps a
        shorter history (memory stays bounded whatever the input does).
    roi : skin ROI name (``facepulse.roi.skin.ROIS``).
    """

    def __init__(
        self,
        window_s: float = 10.0,
        *,
        band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
        method: str = "auto",
        analysis_fps: float = 30.0,
        max_gap_s: float = 1.0,
        min_fill: float = 0.8,
        wave_s: float = 6.0,
        max_fps: float = 120.0,
        roi: str = "skin",
    ) -> None:
        from facepulse.methods import METHODS

        if method != "auto":
            METHODS.get(method)  # unknown method: ConfigError listing the known ones
        lo, hi = (float(b) for b in band_bpm)
        if not 0 < lo < hi:
            raise ConfigError(f"band_bpm: need 0 < low < high, got {lo}..{hi}")
        if not (math.isfinite(window_s) and window_s >= 4.0):
            raise ConfigError(f"--window must be at least 4 s (two beats at 30 bpm), got {window_s}")
        if not 2 * hi / 60.0 < analysis_fps:
            raise ConfigError(f"analysis_fps must exceed twice the band's top ({hi:g} bpm), got {analysis_fps}")
        if not 0.0 < min_fill <= 1.0:
            raise ConfigError(f"min_fill must be in (0, 1], got {min_fill}")
        self.window_s = float(window_s)
        self.band_bpm = (lo, hi)
        self.method = method
        self.analysis_fps = float(analysis_fps)
        self.max_gap_s = float(max_gap_s)
        self.min_fill = float(min_fill)
        self.wave_s = float(wave_s)
        self.roi_name = roi
        self.buffer_s = self.window_s + 2.0
        self.capacity = int(math.ceil(self.buffer_s * max_fps))
        self._t = np.full(self.capacity, np.nan)
        self._rgb = np.full((self.capacity, 3), np.nan)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget everything (a new subject, a restarted stream)."""
        self._t[:] = np.nan
        self._rgb = np.full((self.capacity, 3), np.nan)  # (capacity, 3) or (capacity, R, 3)
        self._n = 0  # rows ever pushed (the ring's write position is _n % capacity)
        self._last_t: float | None = None
        self._last_face_t: float | None = None
        self._face_now = False
        self._roi = None
        self._track_score: np.ndarray | None = None  # forward Viterbi scores over the HR grid
        self._track_t: float | None = None
        self.n_frames = 0
        self.n_frames_with_face = 0

    @property
    def n_buffered(self) -> int:
        return min(self._n, self.capacity)

    # --------------------------------------------------------------- per frame

    def push(self, t_s: float, frame_rgb: np.ndarray, face: Face | None) -> None:
        """Add one frame: ``t_s`` its capture time (seconds, increasing), ``frame_rgb``
        (H, W, 3) uint8 RGB, ``face`` the tracked face in it or None.

        Cheap: places the ROI on the face and averages it (no analysis). Frames whose
        time is not after the previous one are ignored; a jump back by more than a
        second (a restarted source) resets the estimator.
        """
        t_s = float(t_s)
        if self._last_t is not None and t_s <= self._last_t:
            if self._last_t - t_s > 1.0:
                self.reset()
            else:
                return
        rgb = None
        if face is not None:
            if self._last_face_t is not None and t_s - self._last_face_t > self.max_gap_s:
                self._roi = None  # a new stretch of face: draw the ROI afresh
            rgb = self._measure(frame_rgb, face)
            self._last_face_t = t_s
            self.n_frames_with_face += 1
        self.n_frames += 1
        self.push_rgb(t_s, rgb)
        self._face_now = face is not None

    def _measure(self, frame_rgb: np.ndarray, face: Face) -> np.ndarray | tuple[float, float, float] | None:
        """Mean colour of ``face``'s regions in this frame, ``(R, 3)`` (auto) or the skin
        ROI's ``(3,)`` (one method); the regions are carried along with the face."""
        from facepulse.roi.trace import _FaceFixedRoi

        if self.method == "auto":
            from facepulse.roi.regions import DEFAULT_REGIONS, RegionSampler

            if self._roi is None:
                self._roi = RegionSampler(DEFAULT_REGIONS)
            return self._roi.update(frame_rgb, face)
        if self._roi is None:
            self._roi = _FaceFixedRoi(self.roi_name, colour_filter=True, tol_px=None, level_match=True)
        self._roi.update(frame_rgb, face)
        return self._roi.mean_rgb(frame_rgb)

    def push_rgb(self, t_s: float, rgb: tuple[float, float, float] | np.ndarray | None) -> None:
        """Add one already-measured row (mean skin R, G, B; None = no face in that frame)."""
        t_s = float(t_s)
        if self._last_t is not None and t_s <= self._last_t:
            return
        i = self._n % self.capacity
        self._t[i] = t_s
        if rgb is None:
            self._rgb[i] = np.nan
        else:
            row = np.asarray(rgb, dtype=np.float64)
            if row.shape != self._rgb.shape[1:]:
                # the first face fixes the number of regions: rows so far had no face
                self._rgb = np.full((self.capacity, *row.shape), np.nan)
            self._rgb[i] = row
        self._n += 1
        self._last_t = t_s
        self._face_now = rgb is not None

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Buffered rows, oldest first."""
        n = self.n_buffered
        if self._n <= self.capacity:
            return self._t[:n].copy(), self._rgb[:n].copy()
        start = self._n % self.capacity
        order = np.r_[start : self.capacity, 0:start]
        return self._t[order], self._rgb[order]

    # ------------------------------------------------------------- per update

    def update(self, t_s: float | None = None) -> LiveUpdate:
        """The estimate over the window ending at ``t_s`` (default: the latest frame)."""
        if t_s is None:
            t_s = self._last_t if self._last_t is not None else 0.0
        t_s = float(t_s)
        t, rgb = self._rows()
        keep = t > t_s - self.window_s - 1e-9
        keep &= t <= t_s + 1e-9
        t, rgb = t[keep], rgb[keep]
        if t.size < 2:
            status = "waiting for frames" if self._n == 0 else ("warming up" if self._face_now else "no face")
            return LiveUpdate(t_s, None, 0.0, None, self._face_now, status)
        return self._analyse(t_s, t, rgb)

    def _analyse(self, t_s: float, t: np.ndarray, rgb: np.ndarray) -> LiveUpdate:
        """Window rows (times ``t`` (N,), mean colours ``rgb`` (N, 3) or (N, R, 3), NaN =
        no face) -> estimate."""
        if self.method == "auto":
            return self._analyse_fused(t_s, t, rgb if rgb.ndim == 3 else rgb[:, None, :])
        from facepulse.methods import apply_method
        from facepulse.roi.trace import _fill_gaps, resample_uniform
        from facepulse.signal.filters import bandpass, finite_segments
        from facepulse.signal.hr import estimate_hr_bpm, snr_db

        fps = self.analysis_fps
        measured = np.isfinite(rgb).all(axis=1)
        face = self._face_now
        no_hr_status = "warming up" if face else "no face"
        if measured.sum() < 2:
            return LiveUpdate(t_s, None, 0.0, None, face, no_hr_status)
        rgb, _valid, _interp = _fill_gaps(t, rgb, measured, self.max_gap_s, fps)
        t_u, rgb_u = resample_uniform(t, rgb, fps)
        usable = np.isfinite(rgb_u).all(axis=1)
        fill = float(min(1.0, usable.sum() / (self.window_s * fps)))
        bvp = np.full(t_u.shape[0], np.nan)
        lo_hz, hi_hz = self.band_bpm[0] / 60.0, self.band_bpm[1] / 60.0
        min_segment = int(math.ceil(3 * fps / lo_hz))  # filtfilt needs a few slow periods
        segments = [s for s in finite_segments(usable) if s.stop - s.start >= min_segment]
        if segments:
            raw = apply_method(self.method, np.where(usable[:, None], rgb_u, np.nan), fps)
            for seg in segments:
                if np.isfinite(raw[seg]).all() and np.ptp(raw[seg]) > 0:
                    bvp[seg] = bandpass(raw[seg], fps, low_hz=lo_hz, high_hz=hi_hz)
        wave_t, wave = self._wave(t_u, bvp)
        good = np.isfinite(bvp)
        if fill < self.min_fill or good.sum() < self.min_fill * self.window_s * fps:
            return LiveUpdate(t_s, None, 0.0, None, face, no_hr_status, fill, wave_t, wave)
        filled = np.where(good, bvp, 0.0)  # gaps add no power, as in facepulse.predict
        hr = estimate_hr_bpm(filled, fps, band_bpm=self.band_bpm)
        snr = snr_db(filled, fps, hr)
        return LiveUpdate(t_s, hr, confidence_from_snr(snr), snr, face, "ok", fill, wave_t, wave)

    def _analyse_fused(self, t_s: float, t: np.ndarray, rgb: np.ndarray) -> LiveUpdate:
        """The fused estimator over the window, tracked from update to update."""
        from facepulse.roi.trace import _fill_gaps, resample_uniform
        from facepulse.signal.fusion import candidate_pulses, fuse_pulses
        from facepulse.signal.tracking import forward_step, log_transition, track_confidence

        fps = self.analysis_fps
        face = self._face_now
        no_hr_status = "warming up" if face else "no face"
        n_rows, n_regions, _ = rgb.shape
        seen = np.isfinite(rgb).all(axis=2)  # (N, R): region measured in that frame
        measured = seen.any(axis=1)  # a face in that frame
        if measured.sum() < 2:
            self._track_score = None  # the face is gone: the next one starts a new track
            return LiveUpdate(t_s, None, 0.0, None, face, no_hr_status)
        rgb = rgb.copy()
        for r in range(n_regions):  # short gaps bridged per region, as extract_trace does
            if seen[:, r].any():
                rgb[:, r], _v, _i = _fill_gaps(t, rgb[:, r], seen[:, r], self.max_gap_s, fps)
        t_u, flat_u = resample_uniform(t, rgb.reshape(n_rows, -1), fps)
        usable = np.isfinite(flat_u.reshape(t_u.size, n_regions, 3)).all(axis=2).any(axis=1)
        fill = float(min(1.0, usable.sum() / (self.window_s * fps)))
        if fill < self.min_fill or usable.sum() < 2 * 60.0 / self.band_bpm[0] * fps:
            return LiveUpdate(t_s, None, 0.0, None, face, no_hr_status, fill)
        # the longest stretch with a face (gaps over max_gap_s split the window)
        from facepulse.signal.filters import finite_segments

        seg = max(finite_segments(usable), key=lambda s: s.stop - s.start)
        if seg.stop - seg.start < 2 * 60.0 / self.band_bpm[0] * fps:
            return LiveUpdate(t_s, None, 0.0, None, face, no_hr_status, fill)
        region_u = flat_u[seg].reshape(-1, n_regions, 3)
        pulses, names = candidate_pulses(region_u, fps, band_bpm=self.band_bpm)
        span_s = pulses.shape[1] / fps
        fused = fuse_pulses(pulses, fps, candidates=names, window_s=span_s, step_s=span_s,
                            band_bpm=self.band_bpm, track=False)
        evidence = fused.spectrum[-1]
        grid = fused.grid_bpm
        log_evidence = np.log(evidence + 1e-6 * evidence.max() + 1e-300)
        dt = t_s - self._track_t if self._track_t is not None else None
        if self._track_score is None or self._track_score.shape != grid.shape or dt is None or dt <= 0:
            score = log_evidence
        else:  # one forward step of the tracker predict uses
            score = forward_step(self._track_score, log_evidence, log_transition(grid, dt))
        score = score - score.max()
        self._track_score, self._track_t = score, t_s
        hr = float(grid[int(np.argmax(score))])
        confidence = float(track_confidence(evidence[None, :], grid, np.array([hr]))[0])
        snr = float(fused.snr_db[-1]) if np.isfinite(fused.snr_db[-1]) else None
        bvp = np.full(t_u.shape[0], np.nan)
        bvp[seg] = fused.pulse
        wave_t, wave = self._wave(t_u, bvp)
        return LiveUpdate(t_s, hr, confidence, snr, face, "ok", fill, wave_t, wave)

    def _wave(self, t_u: np.ndarray, bvp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = t_u > t_u[-1] - self.wave_s
        wave_t, wave = t_u[keep], bvp[keep]
        good = np.isfinite(wave)
        if good.sum() > 1:
            scale = float(np.std(wave[good]))
            if scale > 0:
                wave = wave / scale
        return wave_t, wave
