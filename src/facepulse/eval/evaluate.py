"""Dataset evaluation: per-video and windowed HR of an estimator against the reference.

The prediction and the reference go through the same code: the estimator's pulse (for
the classic methods, :func:`facepulse.pipeline.predict_from_trace` on the cached trace,
i.e. exactly what :func:`facepulse.predict` computes) and the reference PPG (resampled
onto the same regular grid) both pass through
:func:`facepulse.pipeline.result_from_pulse`: same band-pass, same spectral-peak HR
estimator, same windows. Differences in the numbers are then differences in the pulse,
not in the bookkeeping.

An estimator is anything with the :class:`PulseEstimator` protocol (cached video ->
:class:`~facepulse.pipeline.PredictionResult`); the built-in ones (a classic method, a
trained model) and the ``ESTIMATORS`` registry live in :mod:`facepulse.eval.estimators`.

>>> from facepulse.datasets import get_reader
>>> from facepulse.eval.evaluate import MethodEstimator, evaluate_dataset, write_report
>>> report = evaluate_dataset(get_reader("ubfc-rppg", "data/UBFC"), MethodEstimator("pos"))  # doctest: +SKIP
>>> report.whole_video["mae"], report.windowed["mae"]              # doctest: +SKIP
>>> write_report(report, "results/ubfc-pos")                       # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from contextlib import nullcontext
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facepulse.datasets.base import DatasetReader, Record
from facepulse.datasets.cache import CachedVideo, PreprocessConfig, open_cached, preprocess_dataset
from facepulse.errors import ConfigError, FacepulseError, InputError
from facepulse.eval.estimators import ESTIMATORS, MethodEstimator, PulseEstimator, make_estimator
from facepulse.executors.base import Executor
from facepulse.pipeline import DEFAULT_BAND_BPM, PredictionResult

__all__ = [
    "ESTIMATORS",
    "EvaluationReport",
    "MethodEstimator",
    "PulseEstimator",
    "VideoEvaluation",
    "evaluate_dataset",
    "evaluate_video",
    "make_estimator",
    "reference_result",
    "write_report",
]

ReferenceKind = Literal["ppg", "hr"]


# ------------------------------------------------------------------------ reference


def reference_result(
    video: CachedVideo,
    *,
    window_s: float = 10.0,
    step_s: float = 1.0,
    band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
    fps: float | None = None,
) -> PredictionResult:
    """The reference PPG of ``video`` through the prediction's HR path.

    The PPG (stored on the video's frames) is resampled onto the same regular grid the
    prediction uses (``fps``, Hz: the video's own rate by default; a deep model passes the
    rate it was trained at, e.g. 30 Hz for a 29.5 fps UBFC video) and passed to :func:`facepulse.pipeline.result_from_pulse` as if it
    were a method's pulse: same band-pass, spectral-peak HR, windows and SNR. Frames
    without a reference value are gaps.
    """
    from facepulse.pipeline import result_from_pulse
    from facepulse.roi.trace import resample_uniform

    if video.ppg is None:
        raise InputError(f"{video.path}: the dataset gives no reference PPG for {video.video_id} (use reference='hr')")
    grid_fps = float(video.fps if fps is None else fps)
    t_uniform, ppg_uniform = resample_uniform(video.timestamps_s, video.ppg, grid_fps)
    return result_from_pulse(
        t_uniform,
        ppg_uniform,
        grid_fps,
        method="reference",
        frame_timestamps_s=video.timestamps_s,
        window_s=window_s,
        step_s=step_s,
        band_bpm=band_bpm,
        source=video.source_path,
    )


def _reference_hr_from_dataset(video: CachedVideo, pred: PredictionResult) -> tuple[float, np.ndarray]:
    """Dataset HR (bpm) averaged over the video and over each of the prediction's windows."""
    if video.hr_bpm is None:
        raise InputError(f"{video.path}: the dataset gives no reference HR for {video.video_id}")
    t, hr = video.timestamps_s, video.hr_bpm
    whole = float(np.nanmean(hr)) if np.isfinite(hr).any() else float("nan")
    w = pred.windows
    out = np.full(len(w), np.nan)
    for i, (a, b) in enumerate(zip(w.t_start_s, w.t_end_s)):
        sel = hr[(t >= a) & (t < b)]
        if np.isfinite(sel).any():
            out[i] = np.nanmean(sel)
    return whole, out


# ----------------------------------------------------------------------- per video


@dataclass
class VideoEvaluation:
    """One video's figures. HR in bpm, SNR in dB, times in seconds; windowed arrays (W,).

    ``snr_db`` is the SNR of the predicted pulse at the reference HR (de Haan & Jeanne,
    IEEE TBME 2013); ``window_snr_db`` the same per window (NaN where either HR is NaN).
    """

    video_id: str
    subject_id: str
    tags: dict[str, str]
    n_frames: int
    duration_s: float
    hr_pred_bpm: float
    hr_ref_bpm: float
    snr_db: float
    window_t_center_s: np.ndarray
    window_hr_pred_bpm: np.ndarray
    window_hr_ref_bpm: np.ndarray
    window_snr_db: np.ndarray
    #: the estimate's own ``quality["reliable"]`` (for a model: checked against the classic
    #: estimate on the same frames, as ``predict --model`` does)
    reliable: bool = True
    prediction: PredictionResult | None = field(default=None, repr=False)

    @property
    def hr_ref_windows_bpm(self) -> float:
        """The reference summarised from its windows: the median of its windowed HR (bpm).
        Where HR drifts, it lies closer to a tracked whole-video HR (the fused default's)
        than the reference's whole-video spectral peak does."""
        ok = np.isfinite(self.window_hr_ref_bpm)
        return float(np.median(self.window_hr_ref_bpm[ok])) if ok.any() else float("nan")

    @property
    def error_bpm(self) -> float:
        return self.hr_pred_bpm - self.hr_ref_bpm

    @property
    def window_scored(self) -> np.ndarray:
        """(W,) True where both windowed HRs exist (the windows that are scored)."""
        return np.isfinite(self.window_hr_pred_bpm) & np.isfinite(self.window_hr_ref_bpm)

    @property
    def window_mae_bpm(self) -> float:
        ok = self.window_scored
        return float(np.abs(self.window_hr_pred_bpm[ok] - self.window_hr_ref_bpm[ok]).mean()) if ok.any() else float("nan")

    def row(self) -> dict[str, Any]:
        """The per-video table row (plain Python values)."""
        return {
            "video_id": self.video_id,
            "subject_id": self.subject_id,
            "frames": self.n_frames,
            "duration_s": round(self.duration_s, 2),
            "hr_ref_bpm": _round(self.hr_ref_bpm),
            "hr_ref_windows_bpm": _round(self.hr_ref_windows_bpm),
            "hr_pred_bpm": _round(self.hr_pred_bpm),
            "error_bpm": _round(self.error_bpm),
            "snr_db": _round(self.snr_db),
            "windows_scored": int(self.window_scored.sum()),
            "windows": int(self.window_hr_pred_bpm.size),
            "window_mae_bpm": _round(self.window_mae_bpm),
            "reliable": self.reliable,
        }


def _round(x: float, digits: int = 2) -> float | None:
    return round(float(x), digits) if np.isfinite(x) else None


def _window_snr_at(bvp_uniform: np.ndarray, fps: float, t_uniform: np.ndarray, windows, ref_hr: np.ndarray) -> np.ndarray:
    """SNR (dB) of each window of the pulse at that window's reference HR."""
    from facepulse.signal.hr import snr_db

    n_win = round((windows.t_end_s[0] - windows.t_start_s[0]) * fps) if len(windows) else 0
    out = np.full(len(windows), np.nan)
    for i, (t0, hr) in enumerate(zip(windows.t_start_s, ref_hr)):
        if not np.isfinite(hr) or not np.isfinite(windows.hr_bpm[i]):
            continue
        a = int(np.searchsorted(t_uniform, t0 - 0.5 / fps))
        seg = bvp_uniform[a : a + n_win]
        ok = np.isfinite(seg)
        if ok.sum() < 2:
            continue
        # As windowed_hr does: centre the valid samples, zero the gaps.
        x = np.where(ok, seg - seg[ok].mean(), 0.0)
        if np.ptp(x) > 0:
            out[i] = snr_db(x, fps, float(hr))
    return out


def evaluate_video(
    video: CachedVideo,
    estimator: PulseEstimator,
    *,
    window_s: float = 10.0,
    step_s: float = 1.0,
    band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
    reference: ReferenceKind = "ppg",
    keep_prediction: bool = False,
) -> VideoEvaluation:
    """Whole-video and windowed HR of ``estimator`` on ``video`` against its reference.

    ``reference="ppg"`` derives the reference HR from the reference PPG exactly as the
    prediction's HR is derived (see :func:`reference_result`); ``"hr"`` averages the
    dataset's own HR readings over the video and over each window (for datasets without
    a PPG, e.g. MAHNOB-HCI). Raises FacepulseError subclasses for unusable videos.
    """
    from facepulse.roi.trace import resample_uniform
    from facepulse.signal.hr import snr_db

    if reference not in ("ppg", "hr"):
        raise ConfigError(f"reference must be 'ppg' or 'hr', got {reference!r}")
    pred = estimator.estimate(video, window_s=window_s, step_s=step_s, band_bpm=band_bpm)
    if reference == "ppg":
        ref = reference_result(video, window_s=window_s, step_s=step_s, band_bpm=band_bpm, fps=pred.fps)
        if len(ref.windows) != len(pred.windows) or not np.allclose(ref.windows.t_start_s, pred.windows.t_start_s):
            raise InputError(f"{video.path}: prediction and reference windows differ (estimator {estimator.name!r})")
        hr_ref, win_ref = float(ref.hr_bpm), np.asarray(ref.windows.hr_bpm, dtype=float)
    else:
        hr_ref, win_ref = _reference_hr_from_dataset(video, pred)

    # The predicted pulse back on the regular grid, for the SNR at the reference HR.
    t_uniform, bvp_uniform = resample_uniform(pred.timestamps_s, pred.bvp, pred.fps)
    filled = np.where(np.isfinite(bvp_uniform), bvp_uniform, 0.0)
    whole_snr = snr_db(filled, pred.fps, hr_ref) if np.isfinite(hr_ref) and np.ptp(filled) > 0 else float("nan")
    return VideoEvaluation(
        video_id=video.video_id,
        subject_id=video.subject_id,
        tags=dict(video.tags),
        n_frames=video.n_frames,
        duration_s=float(video.timestamps_s[-1] - video.timestamps_s[0] + 1.0 / video.fps),
        hr_pred_bpm=float(pred.hr_bpm),
        hr_ref_bpm=hr_ref,
        snr_db=float(whole_snr),
        window_t_center_s=np.asarray(pred.windows.t_center_s, dtype=float),
        window_hr_pred_bpm=np.asarray(pred.windows.hr_bpm, dtype=float),
        window_hr_ref_bpm=win_ref,
        window_snr_db=_window_snr_at(bvp_uniform, pred.fps, t_uniform, pred.windows, win_ref),
        reliable=bool(pred.quality.get("reliable", True)),
        prediction=pred if keep_prediction else None,
    )


# ------------------------------------------------------------------------- dataset


@dataclass
class EvaluationReport:
    """Everything an evaluation produced.

    ``videos`` holds the evaluated videos in dataset order; ``failed`` maps the video id
    of every video without a result to its one-line error (they are not scored, and are
    counted in the summary). Metrics (``whole_video``, ``windowed``) are the flat dicts
    of :func:`facepulse.eval.metrics.summarize` (value and ``_se`` for MAE, RMSE, MAPE,
    Pearson r, bias, SD of error, SNR), or None when nothing could be scored.
    """

    dataset: str
    estimator: str
    window_s: float
    step_s: float
    band_bpm: tuple[float, float]
    reference: str
    videos: list[VideoEvaluation] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    cache_root: str | None = None

    @property
    def whole_video(self) -> dict[str, float | int] | None:
        return _whole_video_metrics(self.videos)

    @property
    def windowed(self) -> dict[str, float | int] | None:
        return _windowed_metrics(self.videos)

    @property
    def whole_video_vs_reference_windows(self) -> dict[str, float | int] | None:
        """:attr:`whole_video` against :attr:`VideoEvaluation.hr_ref_windows_bpm` (the
        reference summarised from its windows) instead of the reference's own whole-video HR."""
        return _whole_video_metrics(self.videos, windows_reference=True)

    @property
    def n_reliable(self) -> int:
        """How many evaluated videos the estimator flagged reliable."""
        return sum(v.reliable for v in self.videos)

    @property
    def whole_video_reliable(self) -> dict[str, float | int] | None:
        """:attr:`whole_video` over the videos flagged reliable only (what a user who
        trusts the flag gets; compare ``n`` with the evaluated videos for the coverage)."""
        return _whole_video_metrics([v for v in self.videos if v.reliable])

    @property
    def windowed_reliable(self) -> dict[str, float | int] | None:
        return _windowed_metrics([v for v in self.videos if v.reliable])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None)."""
        return _jsonable({
            "dataset": self.dataset,
            "estimator": self.estimator,
            "reference": self.reference,
            "reference_hr": (
                "spectral peak of the band-passed reference PPG, over the whole video and per window"
                if self.reference == "ppg" else "dataset HR readings averaged per video / window"
            ),
            "window_s": self.window_s,
            "step_s": self.step_s,
            "band_bpm": list(self.band_bpm),
            "n_videos": len(self.videos) + len(self.failed),
            "n_evaluated": len(self.videos),
            "n_failed": len(self.failed),
            "n_reliable": self.n_reliable,
            "metrics": {
                "whole_video": self.whole_video,
                "windowed": self.windowed,
                "whole_video_reliable": self.whole_video_reliable,
                "windowed_reliable": self.windowed_reliable,
                "whole_video_vs_reference_windows": self.whole_video_vs_reference_windows,
            },
            "videos": [
                {
                    **v.row(),
                    "tags": v.tags,
                    "windows_detail": {
                        "t_center_s": v.window_t_center_s.tolist(),
                        "hr_pred_bpm": v.window_hr_pred_bpm.tolist(),
                        "hr_ref_bpm": v.window_hr_ref_bpm.tolist(),
                        "snr_db": v.window_snr_db.tolist(),
                    },
                }
                for v in self.videos
            ],
            "failed": dict(self.failed),
            "cache_root": self.cache_root,
        })

    def markdown(self) -> str:
        """The summary and per-video tables as Markdown."""
        return _markdown(self)


def _whole_video_metrics(
    videos: list[VideoEvaluation], *, windows_reference: bool = False
) -> dict[str, float | int] | None:
    """``windows_reference``: against the reference summarised from its windows (no SNR:
    the videos' SNR is taken at the reference's own whole-video HR)."""
    from facepulse.eval.metrics import summarize

    ref = np.array([v.hr_ref_windows_bpm if windows_reference else v.hr_ref_bpm for v in videos])
    pred = np.array([v.hr_pred_bpm for v in videos])
    ok = np.isfinite(pred) & np.isfinite(ref)
    if not ok.any():
        return None
    snr = np.array([v.snr_db for v in videos])[ok]
    use_snr = not windows_reference and np.isfinite(snr).all()
    return summarize(pred[ok], ref[ok], snr_db=snr if use_snr else None)


def _windowed_metrics(videos: list[VideoEvaluation]) -> dict[str, float | int] | None:
    from facepulse.eval.metrics import summarize

    pred = np.concatenate([v.window_hr_pred_bpm[v.window_scored] for v in videos] or [np.zeros(0)])
    ref = np.concatenate([v.window_hr_ref_bpm[v.window_scored] for v in videos] or [np.zeros(0)])
    snr = np.concatenate([v.window_snr_db[v.window_scored] for v in videos] or [np.zeros(0)])
    if pred.size == 0:
        return None
    return summarize(pred, ref, snr_db=snr if np.isfinite(snr).all() else None)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


_METRIC_ROWS = (
    ("MAE (bpm)", "mae"),
    ("RMSE (bpm)", "rmse"),
    ("MAPE (%)", "mape"),
    ("Pearson r", "pearson_r"),
    ("bias (bpm)", "bias"),
    ("SD of error (bpm)", "sd_error"),
    ("SNR (dB)", "snr_db"),
)


def _pm(metrics: dict | None, key: str) -> str:
    if metrics is None or key not in metrics:
        return "n/a"
    value, se = metrics[key], metrics.get(f"{key}_se", float("nan"))
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.2f} ± {se:.2f}" if np.isfinite(se) else f"{value:.2f}"


def _markdown(report: EvaluationReport) -> str:
    whole, windowed = report.whole_video, report.windowed
    lines = [
        f"# Evaluation: {report.estimator} on {report.dataset}",
        "",
        f"{len(report.videos)} videos evaluated, {len(report.failed)} failed; windows {report.window_s:g} s, "
        f"step {report.step_s:g} s, HR band {report.band_bpm[0]:g}-{report.band_bpm[1]:g} bpm; reference HR from "
        + ("the spectral peak of the band-passed reference PPG, over the whole video and per window."
           if report.reference == "ppg" else "the dataset's HR readings."),
        "",
        f"| metric (value ± SE) | whole video (n={whole['n'] if whole else 0}) | windowed (n={windowed['n'] if windowed else 0}) |",
        "|---|---|---|",
    ]
    for label, key in _METRIC_ROWS:
        lines.append(f"| {label} | {_pm(whole, key)} | {_pm(windowed, key)} |")
    lines += [
        "",
        "Whole video against the median of the reference's windowed HR instead (closer to a tracked HR "
        f"where HR drifts): MAE {_pm(report.whole_video_vs_reference_windows, 'mae')} bpm.",
        "",
        f"Flagged reliable by the estimator: {report.n_reliable} of {len(report.videos)} videos; on those, "
        f"MAE {_pm(report.whole_video_reliable, 'mae')} bpm whole video, "
        f"{_pm(report.windowed_reliable, 'mae')} bpm windowed.",
        "",
        "| video | subject | frames | ref HR | pred HR | error | SNR (dB) | windows | window MAE | reliable |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.1f}"

    for v in report.videos:
        r = v.row()
        lines.append(
            f"| {r['video_id']} | {r['subject_id']} | {r['frames']} | {f(r['hr_ref_bpm'])} | {f(r['hr_pred_bpm'])} | "
            f"{f(r['error_bpm'])} | {f(r['snr_db'])} | {r['windows_scored']}/{r['windows']} | {f(r['window_mae_bpm'])} | "
            f"{'yes' if r['reliable'] else 'no'} |"
        )
    for vid, msg in report.failed.items():
        lines.append(f"| {vid} | | | | | | | | failed: {msg.replace('|', '/')} | |")
    return "\n".join(lines) + "\n"


def evaluate_dataset(
    reader: DatasetReader,
    estimator: PulseEstimator,
    *,
    records: Sequence[Record] | None = None,
    cache_dir: str | Path | None = None,
    config: PreprocessConfig | None = None,
    window_s: float = 10.0,
    step_s: float = 1.0,
    band_bpm: tuple[float, float] = DEFAULT_BAND_BPM,
    reference: ReferenceKind = "ppg",
    workers: int = 1,
    progress: bool = False,
    keep_predictions: bool = False,
    executor: Executor | None = None,
) -> EvaluationReport:
    """Evaluate ``estimator`` on the videos of ``reader`` (or ``records``).

    The face stage runs through the preprocessing cache: with ``cache_dir`` finished
    files are reused (and kept); without it a temporary cache is used and deleted. The
    default ``config`` is :class:`PreprocessConfig()` (that of ``facepulse preprocess``)
    with a cache folder, and without face crops in a temporary cache unless the
    estimator needs them. A video that cannot be preprocessed or estimated is listed in
    ``report.failed`` and the others go on.

    Preprocessing runs one job per video on ``executor`` (default: ``workers`` local
    processes; :func:`facepulse.executors.make_executor` for Ray, then ``cache_dir`` must
    be on storage every node sees); the estimator then runs here on the cached videos.
    """
    if window_s <= 0 or step_s <= 0:
        raise ConfigError(f"window_s and step_s must be > 0 (got {window_s}, {step_s})")
    if config is None:
        config = PreprocessConfig() if cache_dir is not None else PreprocessConfig(clips=estimator.needs_clips)
    if estimator.needs_clips and not config.clips:
        raise ConfigError(f"estimator {estimator.name!r} needs face clips, but the preprocess config has clips=False")
    records = list(reader.records() if records is None else records)
    with tempfile.TemporaryDirectory(prefix="facepulse-eval-") if cache_dir is None else nullcontext(cache_dir) as cdir:
        summary = preprocess_dataset(reader, cdir, config, workers=workers, progress=progress, records=records,
                                     executor=executor)
        report = EvaluationReport(
            dataset=records[0].dataset if records else reader.name,
            estimator=estimator.name,
            window_s=float(window_s),
            step_s=float(step_s),
            band_bpm=(float(band_bpm[0]), float(band_bpm[1])),
            reference=reference,
            cache_root=str(summary.root) if cache_dir is not None else None,
        )
        for rec in records:
            if rec.video_id in summary.failed:
                report.failed[rec.video_id] = summary.failed[rec.video_id]
                continue
            try:
                with open_cached(summary.paths[rec.video_id]) as video:
                    report.videos.append(
                        evaluate_video(
                            video, estimator, window_s=window_s, step_s=step_s, band_bpm=band_bpm,
                            reference=reference, keep_prediction=keep_predictions,
                        )
                    )
            except FacepulseError as err:
                report.failed[rec.video_id] = str(err).splitlines()[0]
    return report


# -------------------------------------------------------------------------- output


def write_report(report: EvaluationReport, out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
    """Write ``results.json``, ``per_video.csv``, ``windows.csv``, ``summary.md`` and,
    with ``plots``, ``bland_altman.png`` and ``scatter.png`` into ``out_dir``."""
    from facepulse.eval.plots import plot_bland_altman, plot_scatter

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{out}: cannot create the output folder ({err.strerror})") from None
    paths = {
        "json": out / "results.json",
        "per_video_csv": out / "per_video.csv",
        "windows_csv": out / "windows.csv",
        "markdown": out / "summary.md",
    }
    from facepulse.fileio import atomic_path, write_text

    write_text(paths["json"], json.dumps(report.to_dict(), indent=2) + "\n")
    rows = [v.row() for v in report.videos]
    fields = list(rows[0]) if rows else ["video_id"]
    with atomic_path(paths["per_video_csv"], ".csv") as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*fields, "error"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "error": ""})
        for vid, msg in report.failed.items():
            writer.writerow({"video_id": vid, "error": msg})
    with atomic_path(paths["windows_csv"], ".csv") as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video_id", "t_center_s", "hr_pred_bpm", "hr_ref_bpm", "snr_db"])
        for v in report.videos:
            for row in zip(v.window_t_center_s, v.window_hr_pred_bpm, v.window_hr_ref_bpm, v.window_snr_db):
                writer.writerow([v.video_id, *(f"{x:.4f}" if np.isfinite(x) else "" for x in row)])
    write_text(paths["markdown"], report.markdown())
    if plots:
        whole = ("whole video", np.array([v.hr_pred_bpm for v in report.videos]),
                 np.array([v.hr_ref_bpm for v in report.videos]))
        windows = ("windows", np.concatenate([v.window_hr_pred_bpm for v in report.videos] or [np.zeros(0)]),
                   np.concatenate([v.window_hr_ref_bpm for v in report.videos] or [np.zeros(0)]))
        paths["bland_altman"] = plot_bland_altman(out / "bland_altman.png", [whole, windows])
        paths["scatter"] = plot_scatter(out / "scatter.png", [whole, windows])
    return paths
