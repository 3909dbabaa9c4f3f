"""Agreement plots for evaluations: Bland-Altman and predicted-vs-reference scatter (PNG).

Each function takes panels ``[(title, pred_bpm (N,), ref_bpm (N,)), ...]`` (one panel per
set of pairs, e.g. whole-video and windowed HR) and writes one PNG. Matplotlib's
object API is used (no pyplot state), so plotting is safe in any thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

Panel = tuple[str, np.ndarray, np.ndarray]


def _figure(n_panels: int):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0 * max(1, n_panels), 4.4), layout="constrained")
    axes = fig.subplots(1, max(1, n_panels), squeeze=False)[0]
    return fig, axes


def _finite_pairs(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=float)
    ref = np.asarray(ref, dtype=float)
    ok = np.isfinite(pred) & np.isfinite(ref)
    return pred[ok], ref[ok]


def bland_altman_limits(pred_bpm: np.ndarray, ref_bpm: np.ndarray) -> tuple[float, float, float]:
    """Bias and 95 % limits of agreement ``(bias, bias - 1.96 sd, bias + 1.96 sd)`` in bpm.

    Bland & Altman, The Lancet 1986. ``pred_bpm``, ``ref_bpm``: (N,) bpm; NaN pairs are left
    out; NaN limits when fewer than two pairs remain.
    """
    pred, ref = _finite_pairs(pred_bpm, ref_bpm)
    diff = pred - ref
    if diff.size < 2:
        return (float(diff.mean()) if diff.size else float("nan"), float("nan"), float("nan"))
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1))
    return bias, bias - 1.96 * sd, bias + 1.96 * sd


def plot_bland_altman(path: str | Path, panels: Sequence[Panel]) -> Path:
    """Bland-Altman plot per panel: difference (pred - ref) against the pair mean, bpm."""
    fig, axes = _figure(len(panels))
    for ax, (title, pred_bpm, ref_bpm) in zip(axes, panels):
        pred, ref = _finite_pairs(pred_bpm, ref_bpm)
        mean, diff = 0.5 * (pred + ref), pred - ref
        ax.scatter(mean, diff, s=12 if pred.size > 50 else 28, alpha=0.6, edgecolors="none")
        bias, lo, hi = bland_altman_limits(pred, ref)
        for value, style, label in ((bias, "-", "bias"), (lo, "--", "-1.96 SD"), (hi, "--", "+1.96 SD")):
            if np.isfinite(value):
                ax.axhline(value, color="k", linestyle=style, linewidth=1)
                ax.annotate(f"{label} {value:+.1f}", xy=(1.0, value), xycoords=("axes fraction", "data"),
                            xytext=(-4, 3), textcoords="offset points", ha="right", fontsize=8)
        ax.set_title(f"{title} (n={pred.size})")
        ax.set_xlabel("mean of predicted and reference HR (bpm)")
        ax.set_ylabel("predicted - reference HR (bpm)")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_scatter(path: str | Path, panels: Sequence[Panel]) -> Path:
    """Predicted against reference HR per panel, with the identity line, bpm."""
    fig, axes = _figure(len(panels))
    for ax, (title, pred_bpm, ref_bpm) in zip(axes, panels):
        pred, ref = _finite_pairs(pred_bpm, ref_bpm)
        ax.scatter(ref, pred, s=12 if pred.size > 50 else 28, alpha=0.6, edgecolors="none")
        if pred.size:
            lo = float(min(pred.min(), ref.min())) - 5.0
            hi = float(max(pred.max(), ref.max())) + 5.0
            ax.plot([lo, hi], [lo, hi], color="k", linewidth=1)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(f"{title} (n={pred.size})")
        ax.set_xlabel("reference HR (bpm)")
        ax.set_ylabel("predicted HR (bpm)")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    from facepulse.fileio import atomic_path

    path = Path(path)
    with atomic_path(path, path.suffix) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    return path
