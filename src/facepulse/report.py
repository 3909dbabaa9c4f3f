"""Writers for a :class:`facepulse.pipeline.PredictionResult`: JSON, CSV and a PNG figure.

Each writer goes to a temporary file that is renamed into place, so an interrupted run never
leaves a half-written output behind.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facepulse.fileio import atomic_path

if TYPE_CHECKING:
    from facepulse.pipeline import PredictionResult


def _clean(value: Any) -> Any:
    """numpy -> Python, NaN/inf -> None (JSON has no NaN)."""
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def windows_table(result: PredictionResult) -> dict[str, np.ndarray]:
    """The windowed HR series as named columns."""
    w = result.windows
    return {
        "t_start_s": np.asarray(w.t_start_s),
        "t_end_s": np.asarray(w.t_end_s),
        "t_center_s": np.asarray(w.t_center_s),
        "hr_bpm": np.asarray(w.hr_bpm),
        "snr_db": np.asarray(w.snr_db),
        "valid_fraction": np.asarray(w.valid_fraction),
        "confidence": np.asarray(w.confidence if getattr(w, "confidence", None) is not None
                                 else np.full(len(w.hr_bpm), np.nan)),
    }


def fusion_summary(result: PredictionResult, top: int = 10) -> dict[str, Any] | None:
    """The fused estimator's regions and its most trusted (region, method) candidates."""
    fusion = getattr(result, "fusion", None)
    if fusion is None:
        return None
    mean_weight = np.nanmean(fusion.weights, axis=1)
    order = np.argsort(-mean_weight)[:top]
    return {
        "regions": list(result.regions),
        "n_candidates": len(fusion.candidates),
        "top_candidates": [
            {"candidate": fusion.candidates[i], "mean_weight": float(mean_weight[i])} for i in order
        ],
        "agreement": np.asarray(fusion.agreement),
    }


def result_to_dict(result: PredictionResult) -> dict[str, Any]:
    """All of a result as a JSON-ready dict."""
    return _clean(
        {
            "facepulse_version": _version(),
            "summary": result.summary(),
            "source": result.source,
            "method": result.method,
            "fps": result.fps,
            "band_bpm": list(result.band_bpm),
            "hr_bpm": result.hr_bpm,
            "snr_db": result.snr_db,
            "timestamps_s": result.timestamps_s,
            "bvp": result.bvp,
            "valid": result.valid,
            "windows": windows_table(result),
            "beat_times_s": result.beat_times_s,
            "hrv": result.hrv,
            "hrv_reason": getattr(result, "hrv_reason", None),
            "quality": getattr(result, "quality", {}),
            "fusion": fusion_summary(result),
            "frames_without_face": result.frames_without_face,
        }
    )


def _version() -> str:
    from facepulse.version import __version__

    return __version__


def _atomic_path(path: str | Path, suffix: str):
    """Yield a temp path beside ``path``; rename onto it only if the block succeeds.

    See :func:`facepulse.fileio.atomic_path` (umask-respecting, stale temporaries cleaned).
    """
    return atomic_path(path, suffix)


def write_json(result: PredictionResult, path: str | Path) -> Path:
    """JSON with ``fps``, ``timestamps_s``, ``bvp`` (one per frame), ``hr_bpm``, ``windows``..."""
    with _atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(result_to_dict(result), indent=1))
    return Path(path)


def write_csv(result: PredictionResult, path: str | Path) -> Path:
    """CSV of the windowed HR series: one row per window."""
    table = windows_table(result)
    with _atomic_path(path, ".csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(table))
        for row in zip(*table.values(), strict=True):
            writer.writerow(["" if not np.isfinite(v) else f"{v:.4f}" for v in row])
    return Path(path)


def write_plot(result: PredictionResult, path: str | Path) -> Path:
    """PNG: a frame with the ROI drawn, the waveform, the spectrum with its peak, HR over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 7.5), dpi=100)
    grid = fig.add_gridspec(3, 2, width_ratios=[1, 2.2], hspace=0.45, wspace=0.18)

    ax = fig.add_subplot(grid[:, 0])
    if result.preview_frame is not None:
        frame = result.preview_frame.astype(float) / 255.0
        if result.preview_mask is not None:
            overlay = frame.copy()
            overlay[result.preview_mask] = 0.55 * overlay[result.preview_mask] + 0.45 * np.array(
                [0.0, 1.0, 0.2]
            )
            frame = overlay
        ax.imshow(frame)
        ax.set_title("skin ROI (green)")
    ax.axis("off")

    ax = fig.add_subplot(grid[0, 1])
    t = result.timestamps_s
    ax.plot(t, result.bvp, lw=0.8, color="tab:red")
    if result.beat_times_s.size:
        ax.plot(
            result.beat_times_s,
            np.interp(result.beat_times_s, t, np.nan_to_num(result.bvp)),
            "k.",
            ms=3,
        )
    ax.set_title(f"pulse ({result.method})")
    ax.set_xlabel("time (s)")
    ax.set_xlim(t[0], t[-1])

    ax = fig.add_subplot(grid[1, 1])
    f_bpm = result.spectrum_freq_hz * 60.0
    lo, hi = result.band_bpm
    sel = (f_bpm >= lo * 0.8) & (f_bpm <= hi * 1.1)
    if sel.any():
        p = result.spectrum_power[sel]
        ax.plot(f_bpm[sel], p / (p.max() or 1.0), color="tab:blue")
    ax.axvline(result.hr_bpm, color="tab:red", ls="--", lw=1)
    ax.axvspan(lo, hi, color="0.92", zorder=0)
    ax.set_title(f"spectrum: peak {result.hr_bpm:.1f} bpm, SNR {result.snr_db:.1f} dB")
    ax.set_xlabel("heart rate (bpm)")

    ax = fig.add_subplot(grid[2, 1])
    w = result.windows
    ax.plot(w.t_center_s, w.hr_bpm, "o-", ms=3, color="tab:green")
    ax.axhline(result.hr_bpm, color="0.5", ls=":", lw=1)
    ax.set_title("heart rate over time")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("bpm")
    ax.set_xlim(t[0], t[-1])

    fig.suptitle(f"{Path(result.source).name}: {result.hr_bpm:.1f} bpm", fontsize=13)
    try:
        with _atomic_path(path, ".png") as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)
