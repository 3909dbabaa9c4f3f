"""The end-to-end path: video -> face -> skin ROI -> RGB trace -> method -> pulse -> HR/HRV.

>>> import facepulse
>>> result = facepulse.predict("face.mp4", method="pos")        # doctest: +SKIP
>>> result.hr_bpm, result.windows.hr_bpm                        # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facepulse.errors import ConfigError, FacepulseError, SignalTooShortError

DEFAULT_BAND_BPM = (42.0, 210.0)

#: The ``method`` name of the fused multi-region estimator (the default of :func:`predict`).
FUSED_METHOD = "auto"


@dataclass
class PredictionResult:
    """What :func:`predict` returns.

    Per-frame arrays have one entry per decoded video frame (N,); windowed arrays one per
    analysis window (W,).

    Attributes
    ----------
    source : the input (path, or ``"<array>"``).
    method : the rPPG method (or model) that produced the pulse.
    fps : nominal frame rate of the input (frames/s).
    timestamps_s : (N,) each frame's own timestamp, seconds from the first frame.
    bvp : (N,) the pulse waveform (blood-volume pulse, arbitrary units, band-passed),
        NaN on frames in long no-face gaps.
    valid : (N,) True where a face (or a short interpolated gap) gave the frame a value.
    rgb : (N, 3) mean skin colour per frame (0-255).
    hr_bpm : whole-video heart rate (beats/min) from the spectral peak.
    snr_db : whole-video SNR (de Haan 2013) at ``hr_bpm``.
    windows : windowed HR series (:class:`facepulse.signal.hr.WindowedHR`).
    beat_times_s : (B,) detected beats (seconds).
    hrv : HRV metrics (SDNN / RMSSD ms, pNN50 %, LF/HF); NaN where too short or where
        the beats failed the quality gate (``hrv_reason`` says why).
    frames_without_face : frames where no face was found (before gap interpolation).
    quality : how far the HR can be trusted (:func:`facepulse.signal.quality.hr_quality`):
        ``reliable``, ``warnings`` (one line each), ``median_confidence``...
    hrv_reason : None when HRV is reported, else why it is not.
    regions : the candidate regions measured (fused estimator), else ().
    fusion : the :class:`facepulse.signal.fusion.FusionResult` behind the estimate, or None.
    """

    source: str
    method: str
    fps: float
    timestamps_s: np.ndarray
    bvp: np.ndarray
    valid: np.ndarray
    rgb: np.ndarray
    hr_bpm: float
    snr_db: float
    windows: Any
    beat_times_s: np.ndarray
    hrv: dict[str, float]
    frames_without_face: int
    band_bpm: tuple[float, float] = DEFAULT_BAND_BPM
    spectrum_freq_hz: np.ndarray = field(default_factory=lambda: np.zeros(0))
    spectrum_power: np.ndarray = field(default_factory=lambda: np.zeros(0))
    boxes: np.ndarray | None = None
    preview_frame: np.ndarray | None = None
    preview_mask: np.ndarray | None = None
    quality: dict[str, Any] = field(default_factory=dict)
    hrv_reason: str | None = None
    regions: tuple[str, ...] = ()
    fusion: Any = None

    @property
    def n_frames(self) -> int:
        return int(self.timestamps_s.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.timestamps_s[-1] - self.timestamps_s[0]) if self.n_frames else 0.0

    def summary(self) -> dict[str, Any]:
        """Key figures, as plain Python numbers (what the CLI prints)."""
        hr = np.asarray(self.windows.hr_bpm, dtype=float)
        ok = np.isfinite(hr)
        return {
            "source": self.source,
            "method": self.method,
            "frames": self.n_frames,
            "duration_s": round(self.duration_s, 2),
            "fps": round(self.fps, 3),
            "hr_bpm": round(float(self.hr_bpm), 2),
            "hr_min_bpm": round(float(hr[ok].min()), 2) if ok.any() else None,
            "hr_max_bpm": round(float(hr[ok].max()), 2) if ok.any() else None,
            "snr_db": round(float(self.snr_db), 2),
            "windows": int(hr.size),
            "windows_valid": int(ok.sum()),
            "frames_without_face": int(self.frames_without_face),
            "confidence": _round_or_none(self.quality.get("median_confidence")),
            "reliable": bool(self.quality.get("reliable", True)),
            "warnings": list(self.quality.get("warnings", [])),
            "hrv_reason": self.hrv_reason,
        }


def _round_or_none(x: Any, digits: int = 3) -> float | None:
    return round(float(x), digits) if x is not None and np.isfinite(x) else None


def _check_band(band_bpm: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(b) for b in band_bpm)
    if not (0 < lo < hi):
        raise ConfigError(f"band_bpm: need 0 < low < high, got {lo}..{hi}")
    return lo, hi


def predict(
    src: str | Path | np.ndarray,
    fps: float | None = None,
    method: str = FUSED_METHOD,
    *,
    window_s: float = 10.0,
    step_s: float = 1.0,
    band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
    detector: str = "auto",
    detect_every: int | None = None,
    face_index: int | None = None,
    max_gap_s: float = 1.0,
    progress: bool = False,
    model: str | Path | Any | None = None,
    adapt_steps: int = 0,
) -> PredictionResult:
    """Measure the pulse and heart rate in a face video.

    Parameters
    ----------
    src : a video file (any format FFmpeg reads), a folder of numbered frames (give
        ``fps``), or an array (T, H, W, 3) uint8 RGB (give ``fps``).
    fps : frame rate for folders and arrays; files use their own timestamps.
    method : ``"auto"`` (default): every candidate region (:mod:`facepulse.roi.regions`)
        times every classic method, fused by signal quality and tracked across windows
        (:mod:`facepulse.signal.fusion`); or one registered method name
        (``facepulse.methods.METHODS``) on the forehead-and-cheeks ROI.
    window_s, step_s : sliding window for the HR time series (seconds).
    band_bpm : HR search band (beats/min).
    detector : face detector (``facepulse.face.detectors.DETECTORS`` name or ``"auto"``).
    detect_every : run the detector every N frames (tracking in between); None = default.
    face_index : None = the largest face; k = the k-th largest.
    max_gap_s : no-face gaps up to this long are interpolated, longer ones invalid.
    progress : show a progress bar.
    model : a trained model instead of ``method``: a checkpoint of ``facepulse train``
        (``.ckpt``), an ONNX file of ``facepulse export``, or a loaded runner
        (:func:`facepulse.models.inference.load_model`). The same face stage also cuts
        face crops (as the preprocessing cache does), the model runs over the whole
        video in overlapping clips, and its pulse takes the same HR path as a method's.
        Its result counts as reliable only where the fused classic estimate on the same
        frames is reliable and agrees with it (a model's pulse looks clean even where it
        fails); ``quality["classic_hr_bpm"]`` holds that estimate.
    adapt_steps : with a ``.ckpt`` model, first fine-tune a copy of it on this video's
        face crops without labels for this many steps
        (:func:`facepulse.contrastive.adapt.adapt_model`, SiNC spectral priors); 0 = off.
    """
    from facepulse.face.tracker import FaceTracker
    from facepulse.face.detectors import make_detector
    from facepulse.io.video import open_video
    from facepulse.methods import METHODS
    from facepulse.roi.regions import DEFAULT_REGIONS
    from facepulse.roi.trace import extract_trace

    band_bpm = _check_band(band_bpm)
    if adapt_steps and model is None:
        raise ConfigError("adapt_steps (--adapt) needs a model (--model)")
    runner = None
    if model is not None:
        from facepulse.models.inference import load_model

        # a bad model file fails before anything is decoded
        runner = load_model(model) if isinstance(model, (str, Path)) else model
    elif method != FUSED_METHOD:
        METHODS.get(method)  # fail on an unknown method before decoding anything
    if window_s <= 0 or step_s <= 0:
        raise ConfigError(f"window_s and step_s must be > 0 (got {window_s}, {step_s})")

    source = open_video(src, fps=fps)
    info = source.info
    if info.duration_s is not None and info.duration_s + 1.5 / info.fps < window_s:
        raise SignalTooShortError(
            f"{info.path or 'input'}: video is {info.duration_s:.1f} s long, shorter than one "
            f"{window_s:g} s analysis window (use a shorter --window)"
        )

    tracker_kw: dict[str, Any] = {}
    if detect_every is not None:
        tracker_kw["detect_every"] = detect_every
    if face_index is not None:
        tracker_kw["select"] = face_index
    detector_kw: dict[str, Any] = {}
    if face_index is not None and face_index > 0 and detector in ("auto", "mediapipe"):
        detector_kw["max_faces"] = face_index + 1  # MediaPipe reports one face unless asked
    tracker = FaceTracker(make_detector(detector, **detector_kw), **tracker_kw)
    if runner is not None:
        from facepulse.roi.crops import face_crop_hook

        on_frame, crops = face_crop_hook(runner.info.size, info.fps)
        # the regions as well, in the same pass: the classic estimate checks the model's
        # (rgb and the preview from the regions' skin patch: one warp a frame, as for auto)
        trace = extract_trace(
            source, tracker, max_gap_s=max_gap_s, progress=progress, on_frame=on_frame,
            regions=DEFAULT_REGIONS, rgb_region="skin",
        )
        frames, _ = crops()
        result = predict_from_face_frames(
            trace,
            frames,
            runner,
            window_s=window_s,
            step_s=step_s,
            band_bpm=band_bpm,
            source=str(info.path) if info.path else "<array>",
            adapt_steps=adapt_steps,
            progress=progress,
        )
        return check_model_against_classic(result, trace, window_s=window_s, step_s=step_s, band_bpm=band_bpm)
    if method == FUSED_METHOD:
        # rgb from the regions' skin patch: the candidates are all the fusion reads
        trace = extract_trace(
            source, tracker, max_gap_s=max_gap_s, progress=progress, regions=DEFAULT_REGIONS, rgb_region="skin"
        )
        return predict_from_regions(
            trace.timestamps_s,
            trace.region_rgb,
            trace.fps,
            region_names=trace.region_names,
            window_s=window_s,
            step_s=step_s,
            band_bpm=band_bpm,
            source=str(info.path) if info.path else "<array>",
            frames_without_face=trace.frames_without_face,
            rgb=trace.rgb,
            boxes=trace.boxes,
            preview_frame=trace.preview_frame,
            preview_mask=trace.preview_mask,
        )
    trace = extract_trace(source, tracker, max_gap_s=max_gap_s, progress=progress)
    return predict_from_trace(
        trace.timestamps_s,
        trace.rgb,
        trace.fps,
        method=method,
        window_s=window_s,
        step_s=step_s,
        band_bpm=band_bpm,
        source=str(info.path) if info.path else "<array>",
        frames_without_face=trace.frames_without_face,
        boxes=trace.boxes,
        preview_frame=trace.preview_frame,
        preview_mask=trace.preview_mask,
    )


def predict_from_face_frames(
    trace: Any,
    frames: np.ndarray,
    runner: Any,
    *,
    window_s: float = 10.0,
    step_s: float = 1.0,
    band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
    source: str = "<frames>",
    adapt_steps: int = 0,
    progress: bool = False,
) -> PredictionResult:
    """The back half of :func:`predict` with a model: face crops -> model pulse -> result.

    ``trace`` is the video's :class:`facepulse.roi.trace.Trace` or a cached video
    (:class:`facepulse.datasets.cache.CachedVideo`): frame times, validity, skin colour
    and boxes for the report; ``frames`` its face crops (N, S, S, 3) and ``runner`` a
    :func:`facepulse.models.inference.load_model` runner. The crops are resampled onto a
    regular grid at the model's frame rate, the model's clip pulses are overlap-added
    (:func:`facepulse.models.inference.video_pulse`), frames in long no-face gaps become
    NaN, and the pulse is tracked across windows as the fused estimator's candidates are
    (:func:`facepulse.signal.fusion.fuse_pulses`, one candidate, no whitening).
    ``adapt_steps`` > 0 first fine-tunes a copy of the model on the crops without labels
    (:func:`facepulse.contrastive.adapt.adapt_runner`; ``progress``: its progress bar).
    """
    from facepulse.io.timegrid import resample_frames
    from facepulse.models.inference import video_pulse
    from facepulse.signal.filters import bandpass
    from facepulse.signal.fusion import fuse_pulses

    band_bpm = _check_band(band_bpm)
    fps = float(runner.info.fps)
    t_uniform, frames_uniform = resample_frames(trace.timestamps_s, frames, fps)
    valid_uniform = np.interp(t_uniform, trace.timestamps_s, trace.valid.astype(float)) > 0.5
    _check_long_enough(source, t_uniform, valid_uniform, fps, window_s)
    method = f"model:{runner.info.name}"
    if adapt_steps < 0:
        raise ConfigError(f"adapt_steps must be >= 0, got {adapt_steps}")
    if adapt_steps:
        from facepulse.contrastive.adapt import adapt_runner

        runner = adapt_runner(runner, frames_uniform, steps=adapt_steps, progress=progress)
        method += "+adapt"
    pulse = video_pulse(runner, frames_uniform)
    pulse[~valid_uniform] = np.nan
    # the model's pulse takes the fused estimator's HR path as its one candidate: windows
    # tracked across the video (a window whose peak jumps is overruled by its neighbours),
    # the whole-video HR from the track. No spectral whitening: it corrects the 1/f noise
    # of raw colour traces, and a model's output is already a pulse (docs/benchmarks.md).
    bvp = _bandpass_segments(pulse, fps, band_bpm, bandpass)
    fusion = fuse_pulses(
        np.nan_to_num(bvp)[None],
        fps,
        candidates=(method,),
        valid=valid_uniform,
        timestamps_s=t_uniform,
        window_s=window_s,
        step_s=step_s,
        band_bpm=band_bpm,
        tilt=0.0,
        agreement=False,
    )
    return _result_from_fusion(
        fusion,
        t_uniform=t_uniform,
        valid_uniform=valid_uniform,
        timestamps_s=np.asarray(trace.timestamps_s, dtype=float),
        fps=fps,
        method=method,
        window_s=window_s,
        band_bpm=band_bpm,
        source=source,
        frames_without_face=trace.frames_without_face,
        rgb=trace.rgb,
        boxes=trace.boxes,
        preview_frame=getattr(trace, "preview_frame", None),
        preview_mask=getattr(trace, "preview_mask", None),
    )


def predict_from_trace(
    timestamps_s: np.ndarray,
    rgb: np.ndarray,
    fps: float,
    method: str = "pos",
    *,
    window_s: float = 10.0,
    step_s: float = 1.0,
    band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
    source: str = "<trace>",
    frames_without_face: int = 0,
    boxes: np.ndarray | None = None,
    preview_frame: np.ndarray | None = None,
    preview_mask: np.ndarray | None = None,
) -> PredictionResult:
    """The back half of :func:`predict`: an RGB trace (N, 3) with its frame times -> result.

    The trace may be irregularly sampled (variable frame rate) and hold NaN rows (frames in
    long no-face gaps). It is resampled onto a regular grid at ``fps`` for the method and the
    spectra, and the pulse is mapped back onto the original frame times.
    """
    from facepulse.methods import apply_method
    from facepulse.roi.trace import resample_uniform

    band_bpm = _check_band(band_bpm)
    timestamps_s = np.asarray(timestamps_s, dtype=float)
    rgb = np.asarray(rgb, dtype=float)
    if rgb.ndim != 2 or rgb.shape[1] != 3 or rgb.shape[0] != timestamps_s.shape[0]:
        raise ConfigError(f"rgb must be (N, 3) with one row per timestamp, got {rgb.shape}")
    t_uniform, rgb_uniform = resample_uniform(timestamps_s, rgb, fps)
    valid_uniform = np.all(np.isfinite(rgb_uniform), axis=1)
    _check_long_enough(source, t_uniform, valid_uniform, fps, window_s)

    warnings_: list[str] = []
    if method != "green" and _is_grayscale(rgb_uniform):
        # R = G = B: chrominance methods see nothing but their own rounding; the pulse
        # is in the luminance alone
        warnings_.append(f"grayscale video: used the luminance method (green) instead of {method}")
        method = "green"
    bvp_raw = apply_method(method, rgb_uniform, fps)
    return result_from_pulse(
        t_uniform,
        bvp_raw,
        fps,
        extra_warnings=warnings_,
        method=method,
        frame_timestamps_s=timestamps_s,
        rgb=rgb,
        window_s=window_s,
        step_s=step_s,
        band_bpm=band_bpm,
        source=source,
        frames_without_face=frames_without_face,
        boxes=boxes,
        preview_frame=preview_frame,
        preview_mask=preview_mask,
    )


def result_from_pulse(
    t_uniform: np.ndarray,
    bvp_uniform_raw: np.ndarray,
    fps: float,
    *,
    method: str,
    frame_timestamps_s: np.ndarray | None = None,
    rgb: np.ndarray | None = None,
    window_s: float = 10.0,
    step_s: float = 1.0,
    band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
    source: str = "<pulse>",
    frames_without_face: int = 0,
    boxes: np.ndarray | None = None,
    preview_frame: np.ndarray | None = None,
    preview_mask: np.ndarray | None = None,
    extra_warnings: list[str] | None = None,
) -> PredictionResult:
    """Pulse -> numbers, shared by the classic methods and the deep models.

    ``bvp_uniform_raw`` (M,) is the method's or model's raw pulse on the regular grid
    ``t_uniform`` (M,) at ``fps``; NaN marks gaps without a face. It is band-passed per
    valid segment, then HR (whole and windowed), SNR, beats and HRV are computed, and the
    pulse is mapped back onto ``frame_timestamps_s`` (defaults to the grid itself).
    """
    from facepulse.signal.filters import bandpass
    from facepulse.signal.hr import estimate_hr_bpm, power_spectrum, snr_db, windowed_hr
    from facepulse.signal.hrv import detect_beats
    from facepulse.signal.quality import hr_quality

    band_bpm = _check_band(band_bpm)
    t_uniform = np.asarray(t_uniform, dtype=float)
    timestamps_s = t_uniform if frame_timestamps_s is None else np.asarray(frame_timestamps_s, float)
    valid_uniform = np.isfinite(bvp_uniform_raw)
    bvp_uniform = _bandpass_segments(np.asarray(bvp_uniform_raw, dtype=float), fps, band_bpm, bandpass)

    # Whole-video spectrum: gaps contribute zero (no power), so the peak reflects the face.
    filled = np.where(np.isfinite(bvp_uniform), bvp_uniform, 0.0)
    hr_bpm = estimate_hr_bpm(filled, fps, band_bpm=band_bpm)
    whole_snr_db = snr_db(filled, fps, hr_bpm, band_bpm=band_bpm)
    freq_hz, power = power_spectrum(filled, fps)

    windows = windowed_hr(
        bvp_uniform,
        fps,
        window_s=window_s,
        step_s=step_s,
        band_bpm=band_bpm,
        valid=valid_uniform,
        timestamps_s=t_uniform,
    )

    beat_times_s = _beats_in_valid_segments(bvp_uniform, t_uniform, fps, detect_beats)
    hrv, hrv_reason = _gated_hrv(beat_times_s, windows, snr_db=float(whole_snr_db))
    quality = hr_quality(
        None, windows.snr_db, windows.valid_fraction, longest_gap_s=_longest_gap_s(t_uniform, valid_uniform, fps)
    )
    _add_warnings(quality, extra_warnings)

    valid_frames, bvp_frames = _on_frames(timestamps_s, t_uniform, valid_uniform, filled)
    if rgb is None:
        rgb = np.full((timestamps_s.size, 3), np.nan)
    return PredictionResult(
        source=source,
        method=method,
        fps=float(fps),
        timestamps_s=timestamps_s,
        bvp=bvp_frames,
        valid=valid_frames,
        rgb=rgb,
        hr_bpm=float(hr_bpm),
        snr_db=float(whole_snr_db),
        windows=windows,
        beat_times_s=beat_times_s,
        hrv=hrv,
        frames_without_face=int(frames_without_face),
        band_bpm=band_bpm,
        spectrum_freq_hz=freq_hz,
        spectrum_power=power,
        boxes=boxes,
        preview_frame=preview_frame,
        preview_mask=preview_mask,
        quality=quality,
        hrv_reason=hrv_reason,
    )


def predict_from_regions(
    timestamps_s: np.ndarray,
    region_rgb: np.ndarray,
    fps: float,
    *,
    region_names: tuple[str, ...] | list[str] | None = None,
    methods: tuple[str, ...] | list[str] | None = None,
    window_s: float = 10.0,
    step_s: float = 1.0,
    band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
    source: str = "<regions>",
    frames_without_face: int = 0,
    rgb: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    preview_frame: np.ndarray | None = None,
    preview_mask: np.ndarray | None = None,
) -> PredictionResult:
    """The back half of the fused estimator: per-region RGB traces -> tracked HR.

    ``region_rgb`` (N, R, 3) holds one mean-RGB trace per candidate region at the frame
    times ``timestamps_s`` (N,), NaN in long no-face gaps (:attr:`Trace.region_rgb`). Each
    region x method pulse (:func:`facepulse.signal.fusion.candidate_pulses`) is scored
    per window and fused by its quality, the HR is tracked across windows, and the
    whole-video HR is the confidence-weighted median of the tracked HR (HR drifts: one
    long periodogram would pick whichever rate lasted longest, or the drift's noise).
    """
    from facepulse.roi.trace import resample_uniform
    from facepulse.signal.fusion import DEFAULT_FUSION_METHODS, candidate_pulses, fuse_pulses
    from facepulse.signal.hr import WindowedHR
    from facepulse.signal.hrv import detect_beats
    from facepulse.signal.quality import hr_quality, pulse_too_noisy

    band_bpm = _check_band(band_bpm)
    timestamps_s = np.asarray(timestamps_s, dtype=float)
    region_rgb = np.asarray(region_rgb, dtype=float)
    if region_rgb.ndim != 3 or region_rgb.shape[0] != timestamps_s.shape[0] or region_rgb.shape[2] != 3:
        raise ConfigError(f"region_rgb must be (N, R, 3) with one row per timestamp, got {region_rgb.shape}")
    if window_s <= 0 or step_s <= 0:
        raise ConfigError(f"window_s and step_s must be > 0 (got {window_s}, {step_s})")
    n_frames, n_regions, _ = region_rgb.shape
    t_uniform, flat = resample_uniform(timestamps_s, region_rgb.reshape(n_frames, -1), fps)
    rgb_uniform = flat.reshape(t_uniform.size, n_regions, 3)
    valid_uniform = np.isfinite(rgb_uniform).all(axis=2).any(axis=1)
    _check_long_enough(source, t_uniform, valid_uniform, fps, window_s)
    warnings_: list[str] = []
    methods = tuple(methods) if methods is not None else DEFAULT_FUSION_METHODS
    if _is_grayscale(rgb_uniform[valid_uniform].reshape(-1, 3)):
        warnings_.append("grayscale video: only the luminance method (green) can see a pulse")
        methods = ("green",)
    pulses, candidates = candidate_pulses(
        rgb_uniform, fps, region_names=region_names, methods=methods, band_bpm=band_bpm
    )
    fusion = fuse_pulses(
        pulses,
        fps,
        candidates=candidates,
        valid=valid_uniform,
        timestamps_s=t_uniform,
        window_s=window_s,
        step_s=step_s,
        band_bpm=band_bpm,
    )
    return _result_from_fusion(
        fusion,
        t_uniform=t_uniform,
        valid_uniform=valid_uniform,
        timestamps_s=timestamps_s,
        fps=fps,
        method=FUSED_METHOD,
        window_s=window_s,
        band_bpm=band_bpm,
        source=source,
        frames_without_face=frames_without_face,
        rgb=rgb,
        boxes=boxes,
        preview_frame=preview_frame,
        preview_mask=preview_mask,
        warnings_=warnings_,
        region_names=region_names,
    )


def _result_from_fusion(
    fusion: Any,
    *,
    t_uniform: np.ndarray,
    valid_uniform: np.ndarray,
    timestamps_s: np.ndarray,
    fps: float,
    method: str,
    window_s: float,
    band_bpm: tuple[float, float],
    source: str,
    frames_without_face: int = 0,
    rgb: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    preview_frame: np.ndarray | None = None,
    preview_mask: np.ndarray | None = None,
    warnings_: list[str] | None = None,
    region_names: tuple[str, ...] | list[str] | None = None,
) -> PredictionResult:
    """Tracked windows (:func:`facepulse.signal.fusion.fuse_pulses`) -> result: the
    whole-video HR from the track, beats and HRV only from a clean pulse, quality flags.
    Shared by the fused estimator and the deep models."""
    from facepulse.signal.hr import WindowedHR
    from facepulse.signal.hrv import detect_beats
    from facepulse.signal.quality import hr_quality, pulse_too_noisy

    windows = WindowedHR(
        t_center_s=fusion.t_center_s,
        t_start_s=fusion.t_start_s,
        t_end_s=fusion.t_end_s,
        hr_bpm=fusion.hr_bpm,
        snr_db=fusion.snr_db,
        valid_fraction=fusion.valid_fraction,
        confidence=fusion.confidence,
    )
    ok = np.isfinite(fusion.hr_bpm)
    if not ok.any():
        raise SignalTooShortError(f"{source}: no {window_s:g} s window had a face for long enough")
    # the whole-video HR summarises the track: windows weigh by how much evidence they hold
    hr_bpm = _weighted_median(fusion.hr_bpm[ok], np.nan_to_num(fusion.confidence[ok]) + 1e-3)
    whole_snr_db = float(np.median(fusion.snr_db[ok]))
    bvp_uniform = fusion.pulse
    # beats (and HRV) only from a pulse clean enough to show them: from a noisy one they
    # are noise, and skipping them saves the beat detector's cost
    noisy = pulse_too_noisy(confidence=fusion.confidence)
    if noisy is not None:
        beat_times_s, hrv, hrv_reason = np.zeros(0), _nan_hrv(), noisy
    else:
        beat_times_s = _beats_in_valid_segments(bvp_uniform, t_uniform, fps, detect_beats)
        hrv, hrv_reason = _gated_hrv(beat_times_s, windows, confidence=fusion.confidence)
    quality = hr_quality(
        fusion.confidence,
        fusion.snr_db,
        fusion.valid_fraction,
        longest_gap_s=_longest_gap_s(t_uniform, valid_uniform, fps),
        # agreement between candidates means nothing for one (a model's pulse): not reported
        agreement=fusion.agreement if len(fusion.candidates) > 1 else None,
    )
    _add_warnings(quality, warnings_ or [])
    valid_frames, bvp_frames = _on_frames(timestamps_s, t_uniform, valid_uniform, np.nan_to_num(bvp_uniform))
    if rgb is None:
        rgb = np.full((timestamps_s.size, 3), np.nan)
    return PredictionResult(
        source=source,
        method=method,
        fps=float(fps),
        timestamps_s=timestamps_s,
        bvp=bvp_frames,
        valid=valid_frames,
        rgb=np.asarray(rgb, dtype=float),
        hr_bpm=hr_bpm,
        snr_db=whole_snr_db,
        windows=windows,
        beat_times_s=beat_times_s,
        hrv=hrv,
        frames_without_face=int(frames_without_face),
        band_bpm=band_bpm,
        spectrum_freq_hz=fusion.grid_bpm / 60.0,
        spectrum_power=np.nanmean(fusion.spectrum[ok], axis=0),
        boxes=boxes,
        preview_frame=preview_frame,
        preview_mask=preview_mask,
        quality=quality,
        hrv_reason=hrv_reason,
        regions=tuple(region_names) if region_names is not None else (),
        fusion=fusion,
    )


def _check_long_enough(
    source: str, t_uniform: np.ndarray, valid_uniform: np.ndarray, fps: float, window_s: float
) -> None:
    """SignalTooShortError unless the video, and its part with a face, fill one window."""
    span_s = t_uniform[-1] - t_uniform[0] + 1.0 / fps
    if span_s < window_s:
        raise SignalTooShortError(
            f"{source}: video is {span_s:.1f} s long, shorter than one {window_s:g} s analysis window "
            "(use a shorter --window)"
        )
    if valid_uniform.sum() < window_s * fps:
        raise SignalTooShortError(
            f"{source}: only {valid_uniform.sum() / fps:.1f} s of the video has a face, "
            f"less than one {window_s:g} s analysis window"
        )


def _on_frames(
    timestamps_s: np.ndarray, t_uniform: np.ndarray, valid_uniform: np.ndarray, pulse_uniform: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validity and pulse mapped from the regular grid back onto the frame times."""
    valid_frames = np.interp(timestamps_s, t_uniform, valid_uniform.astype(float)) > 0.5
    bvp_frames = np.interp(timestamps_s, t_uniform, pulse_uniform)
    bvp_frames[~valid_frames] = np.nan
    return valid_frames, bvp_frames


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value at which the cumulative weight reaches half the total."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _is_grayscale(rgb: np.ndarray) -> bool:
    """True when the three channels carry the same values (a grayscale video)."""
    finite = rgb[np.isfinite(rgb).all(axis=1)]
    if finite.size == 0:
        return False
    spread = np.abs(finite - finite.mean(axis=1, keepdims=True)).max()
    return bool(spread < 0.5)  # below one 8-bit level everywhere


def _gated_hrv(beat_times_s, windows, *, confidence=None, snr_db=None) -> tuple[dict[str, float], str | None]:
    """HRV only from beats that pass :func:`facepulse.signal.quality.hrv_gate`."""
    from facepulse.signal.hrv import hrv_metrics
    from facepulse.signal.quality import hrv_gate

    reason = hrv_gate(
        beat_times_s, windows.t_center_s, windows.hr_bpm, confidence=confidence, snr_db=snr_db
    )
    if reason is not None:
        return _nan_hrv(), reason
    try:
        return hrv_metrics(beat_times_s), None
    except SignalTooShortError as err:  # too few clean beats for HRV; HR is still reported
        return _nan_hrv(), str(err)


def _longest_gap_s(t_uniform: np.ndarray, valid: np.ndarray, fps: float) -> float:
    runs = _segments(~np.asarray(valid, dtype=bool))
    return max(((stop - start) / fps for start, stop in runs), default=0.0)


#: A model's and the classic estimate's whole-video HR agree within this many bpm, or this
#: fraction of the classic HR, whichever is larger.
MODEL_AGREEMENT_BPM, MODEL_AGREEMENT_FRACTION = 5.0, 0.05


def check_model_against_classic(
    result: PredictionResult, trace: Any, *, window_s: float, step_s: float, band_bpm: tuple[float, float]
) -> PredictionResult:
    """A model's result, marked unreliable unless the classic fused estimate on the same
    frames is reliable and agrees with it. ``trace``: the frames' region traces (anything
    with ``timestamps_s``, ``region_rgb`` (N, R, 3), ``fps`` and ``region_names``: a
    :class:`facepulse.roi.trace.Trace` or a cached video). Used by ``predict --model`` and
    ``evaluate --model``.

    A model's pulse looks clean whether or not the face holds one, so the SNR and the
    confidence computed on it do not show when it fails: on degraded copies of the real
    clips the packaged model called 16 of its 17 wrong estimates reliable
    (docs/benchmarks.md). The fused classic estimate's quality does fall with the pulse.
    ``quality["classic_hr_bpm"]`` records it.
    """
    if trace.region_rgb is None:  # e.g. a cache made by an older facepulse
        _add_warnings(result.quality, [
            "the model's estimate cannot be checked: no region traces (preprocess again)"
        ])
        return result
    try:
        classic = predict_from_regions(
            trace.timestamps_s, trace.region_rgb, trace.fps, region_names=trace.region_names,
            window_s=window_s, step_s=step_s, band_bpm=band_bpm,
        )
    except FacepulseError as err:
        _add_warnings(result.quality, [f"the model's estimate could not be checked: {err}"])
        return result
    result.quality["classic_hr_bpm"] = float(classic.hr_bpm)
    off_bpm = abs(result.hr_bpm - classic.hr_bpm)
    if not classic.quality.get("reliable", False):
        _add_warnings(result.quality, [
            f"the model's estimate cannot be checked: the classic estimate ({classic.hr_bpm:.1f} bpm) "
            "is unreliable on this video, and a model's own confidence does not show when it fails"
        ])
    elif off_bpm > max(MODEL_AGREEMENT_BPM, MODEL_AGREEMENT_FRACTION * classic.hr_bpm):
        _add_warnings(result.quality, [
            f"the model ({result.hr_bpm:.1f} bpm) and the classic estimate ({classic.hr_bpm:.1f} bpm) "
            f"disagree by {off_bpm:.1f} bpm"
        ])
    return result


def _add_warnings(quality: dict[str, Any], extra: list[str] | None) -> None:
    if extra:
        quality["warnings"] = list(extra) + list(quality.get("warnings", []))
        quality["reliable"] = False


def _segments(valid: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the runs of True in ``valid``."""
    edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _bandpass_segments(x: np.ndarray, fps: float, band_bpm, bandpass) -> np.ndarray:
    out = np.full_like(x, np.nan)
    for start, stop in _segments(np.isfinite(x)):
        # two periods of the lowest rate: what one HR window needs at least (and more than
        # filtfilt's edge padding); shorter runs stay NaN
        if stop - start >= 2 * fps * 60.0 / band_bpm[0]:
            out[start:stop] = bandpass(
                x[start:stop], fps, low_hz=band_bpm[0] / 60.0, high_hz=band_bpm[1] / 60.0
            )
    return out


def _beats_in_valid_segments(bvp, t_uniform, fps, detect_beats) -> np.ndarray:
    beats: list[np.ndarray] = []
    for start, stop in _segments(np.isfinite(bvp)):
        if stop - start >= 5 * fps:
            beats.append(t_uniform[start] + detect_beats(bvp[start:stop], fps))
    return np.concatenate(beats) if beats else np.zeros(0)


def _nan_hrv() -> dict[str, float]:
    return {k: float("nan") for k in ("sdnn_ms", "rmssd_ms", "pnn50_pct", "lf_hf")}
