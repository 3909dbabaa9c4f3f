"""Quality-driven fusion of many (region, method) pulses into one tracked heart rate.

Every candidate region (:mod:`facepulse.roi.regions`) times every classic method gives a
candidate pulse. Per analysis window, each candidate's power spectrum is whitened for the
noise of motion, lighting drift and codec artefacts (falling as 1/f to 1/f^2), which
otherwise pulls every spectral peak to the bottom of the HR band; each candidate is
weighted by its own SNR (de Haan & Jeanne 2013), capped so that no single candidate can
outvote the others, and by its agreement with the rest (a flickering patch is periodic
and clean, but alone); a family of small patches (the grid cells) counts as one region,
not as many; the weighted spectra are averaged (the "goodness"-weighted combination of DistancePPG,
Kumar et al., Biomed. Opt. Express 6(5):1565, 2015), and the HR is tracked through the
fused spectrogram (:mod:`facepulse.signal.tracking`).

All functions are pure: arrays in, arrays out.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import scipy.fft

from facepulse.errors import ConfigError, InputError, SignalTooShortError
from facepulse.signal.filters import bandpass, check_fps
from facepulse.signal.hr import window_starts
from facepulse.signal.tracking import track_confidence, viterbi_track

__all__ = [
    "DEFAULT_FUSION_METHODS",
    "FusionResult",
    "estimate_tilt",
    "candidate_pulses",
    "fuse_pulses",
    "fuse_spectra",
    "region_family",
    "window_spectra",
]

#: Methods run on every region by default: one of each family, projection (POS),
#: chrominance (CHROM), orthogonal removal of the dominant component (OMIT; LGI gives
#: the same pulse), blood-volume signature (PBV) and the raw green channel. Different
#: families fail on different noise, which is what the fusion exploits.
DEFAULT_FUSION_METHODS: tuple[str, ...] = ("pos", "chrom", "omit", "pbv", "green")

#: Exponent of the spectral whitening: power is multiplied by ``f ** tilt``. Noise in
#: face video often falls as 1/f or faster across the HR band (motion, lighting drift,
#: codec noise), which pulls every peak to the bottom of the band; ``"auto"`` measures
#: the noise's slope on the video itself (:func:`estimate_tilt`) and flattens it, up to
#: :data:`MAX_TILT`.
DEFAULT_TILT = "auto"

#: Whitening stops at 1/f^2, the spectrum of a random walk (drift). The noise measured on
#: real compressed face video falls as f^-1.7 to f^-2.8 across the HR band; stopping at
#: 1/f left the bottom of the band the noisiest place in it, and put nearly every
#: estimate on low-bitrate copies of our clips at 55-65 bpm. A tilt of 2 lifts the
#: pulse's harmonic 6 dB against its fundamental, which a clean pulse survives (the
#: harmonic is 7-15 dB down) and a very weak one may not (docs/benchmarks.md).
MAX_TILT = 2.0

#: The candidates' band-pass reaches this many times past the top of the HR band (up to
#: 0.9 x Nyquist): its roll-off would otherwise bend the top of the spectra whose slope the
#: whitening measures, and the fused pulse keeps its harmonic, i.e. its shape.
FILTER_HEADROOM = 2.0

#: Spectral sampling of the fusion grid, bpm per bin.
GRID_STEP_BPM = 0.5

#: Tolerance of the agreement test between a candidate's peak and the other regions', bpm.
AGREEMENT_TOL_BPM = 3.0

#: A cell of a region family: ``<family>_r<row>c<col>`` (the grid of
#: :mod:`facepulse.roi.regions` names its cells ``grid_r0c0``, ``grid_r0c1``, ...).
_CELL_NAME = re.compile(r"^(?P<family>.+)_r\d+c\d+$")

#: FFT values computed at once by window_spectra (bounds memory to ~64 MB).
_MAX_FFT_VALUES = 4_000_000


@dataclass(frozen=True)
class FusionResult:
    """What :func:`fuse_pulses` returns. Window arrays are (W,), per-sample arrays (N,).

    Attributes
    ----------
    t_start_s, t_end_s, t_center_s : window bounds and centre, seconds on the input's
        time axis.
    hr_bpm : tracked heart rate per window, bpm; NaN where the window had too few valid
        samples.
    peak_bpm : the fused spectrum's own peak per window (untracked), bpm.
    confidence : in [0, 1], the share of the fused evidence that supports ``hr_bpm``
        beyond what a flat (noise-only) spectrum would give.
    agreement : in [0, 1], the weight share of candidates whose own peak lies within
        6 bpm of ``hr_bpm`` (regions and methods agreeing).
    snr_db : SNR of the fused (whitened) spectrum at ``hr_bpm``, dB.
    valid_fraction : share of valid samples in each window.
    grid_bpm : (G,) the HR candidates, bpm.
    spectrum : (W, G) fused, whitened spectrum, each row summing to 1.
    weights : (C, W) each candidate's weight per window (columns sum to 1).
    candidates : the C candidate names, ``"region/method"``.
    pulse : (N,) the fused pulse waveform (weighted candidates, overlap-added), unit
        variance, NaN where invalid.
    """

    t_start_s: np.ndarray
    t_end_s: np.ndarray
    t_center_s: np.ndarray
    hr_bpm: np.ndarray
    peak_bpm: np.ndarray
    confidence: np.ndarray
    agreement: np.ndarray
    snr_db: np.ndarray
    valid_fraction: np.ndarray
    grid_bpm: np.ndarray
    spectrum: np.ndarray
    weights: np.ndarray
    candidates: tuple[str, ...]
    pulse: np.ndarray

    def __len__(self) -> int:
        return len(self.hr_bpm)


def candidate_pulses(
    region_rgb: np.ndarray,
    fps: float,
    *,
    region_names: tuple[str, ...] | list[str] | None = None,
    methods: tuple[str, ...] | list[str] = DEFAULT_FUSION_METHODS,
    band_bpm: tuple[float, float] = (42.0, 210.0),
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Every (region, method) pulse, band-passed.

    Parameters
    ----------
    region_rgb : (N, R, 3) float mean RGB per region on a uniform grid at ``fps``; NaN
        rows are gaps (bridged linearly for the methods; mark them invalid downstream).
    fps : samples per second.
    region_names : R names (default ``r0, r1, ...``).
    methods : ``facepulse.methods.METHODS`` names.
    band_bpm : the HR band, bpm. Each pulse is band-passed from its low edge to
        :data:`FILTER_HEADROOM` times its high edge (at most 0.9 x Nyquist).

    Returns
    -------
    pulses : (C, N) float, C = R * len(methods) minus regions never seen.
    names : C names ``"region/method"``.
    """
    from facepulse.methods import METHODS

    fps = check_fps(fps)
    rgb = np.asarray(region_rgb, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"region_rgb must be (N, R, 3), got {rgb.shape}")
    n, n_regions, _ = rgb.shape
    names = list(region_names) if region_names is not None else [f"r{i}" for i in range(n_regions)]
    if len(names) != n_regions:
        raise InputError(f"{len(names)} region names for {n_regions} regions")
    fns = [(m, METHODS.get(m)) for m in methods]
    pulses, labels = [], []
    idx = np.arange(n)
    for r in range(n_regions):
        trace = rgb[:, r, :].copy()
        seen = np.isfinite(trace).all(axis=1)
        if seen.sum() < 2 or np.any(trace[seen] <= 0):
            continue
        for c in range(3):
            trace[~seen, c] = np.interp(idx[~seen], idx[seen], trace[seen, c])
        for name, fn in fns:
            try:
                pulse = fn(trace, fps)
            except (InputError, SignalTooShortError):
                continue  # e.g. a region too dark for a ratio-based method
            if not np.all(np.isfinite(pulse)) or np.ptp(pulse) == 0:
                continue
            pulses.append(pulse)
            labels.append(f"{names[r]}/{name}")
    if not pulses:
        raise InputError("no region gave a usable pulse (every region trace is empty or constant)")
    # one filter call over all candidates (columns)
    high_bpm = max(band_bpm[1], min(FILTER_HEADROOM * band_bpm[1], 0.9 * 30.0 * fps))
    filtered = bandpass(np.stack(pulses, axis=1), fps, low_hz=band_bpm[0] / 60.0, high_hz=high_bpm / 60.0)
    return np.ascontiguousarray(filtered.T), tuple(labels)


def window_spectra(
    pulses: np.ndarray,
    fps: float,
    *,
    window_s: float = 10.0,
    step_s: float = 1.0,
    band_bpm: tuple[float, float] = (42.0, 210.0),
    tilt: float | str = DEFAULT_TILT,
    valid: np.ndarray | None = None,
    timestamps_s: np.ndarray | None = None,
    max_tilt: float = MAX_TILT,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whitened power spectra of each pulse in sliding windows.

    Welch-style Hann-tapered periodograms (Welch 1967) on a regular bpm grid, power
    multiplied by ``f ** tilt`` (1/f whitening; see :data:`DEFAULT_TILT`).

    Parameters
    ----------
    pulses : (C, N) float, finite, sampled at ``fps``.
    window_s, step_s : window length and hop, seconds.
    band_bpm : HR band, bpm: the grid spans it in :data:`GRID_STEP_BPM` steps.
    tilt : whitening exponent, or ``"auto"`` (:func:`estimate_tilt` on these spectra, at
        most ``max_tilt``).
    valid : (N,) bool; invalid samples are zeroed after removing the window mean.
    timestamps_s : (N,) sample times (default ``arange(N) / fps``); windows are placed
        as :func:`facepulse.signal.hr.windowed_hr` places them.

    Returns
    -------
    starts : (W,) int, first sample of each window.
    grid_bpm : (G,) float.
    spectra : (C, W, G) float, non-negative.
    """
    fps = check_fps(fps)
    x = np.asarray(pulses, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"pulses must be (C, N), got {x.shape}")
    lo, hi = band_bpm
    if not 0 < lo < hi <= 30.0 * fps:
        raise ConfigError(f"band_bpm must satisfy 0 < low < high <= {30 * fps:g}, got {band_bpm}")
    n = x.shape[1]
    n_win = int(round(window_s * fps))
    if n_win < 2 * 60.0 / lo * fps:
        raise ConfigError(
            f"window_s={window_s:g} is too short for HR down to {lo:g} bpm (two periods need "
            f"{2 * 60.0 / lo:.2f} s): use a longer --window or a higher --band-min"
        )
    if n < n_win:
        raise SignalTooShortError(f"signal is {n / fps:.1f} s long, shorter than one {window_s:g} s window")
    ok = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    t = np.arange(n) / fps if timestamps_s is None else np.asarray(timestamps_s, dtype=np.float64)
    starts = window_starts(t, n_win, fps, step_s)
    nfft = scipy.fft.next_fast_len(max(n_win, int(np.ceil(60.0 * fps / GRID_STEP_BPM))), real=True)
    freq_bpm = 60.0 * scipy.fft.rfftfreq(nfft, 1.0 / fps)
    grid = np.arange(lo, hi + 1e-9, GRID_STEP_BPM)
    # linear interpolation onto the grid: the FFT bins are at least as fine
    k = np.clip(np.searchsorted(freq_bpm, grid) - 1, 0, freq_bpm.size - 2)
    frac = (grid - freq_bpm[k]) / (freq_bpm[k + 1] - freq_bpm[k])
    taper = np.hanning(n_win)
    spectra = np.empty((x.shape[0], starts.size, grid.size))
    chunk = max(1, _MAX_FFT_VALUES // (x.shape[0] * nfft))  # bounds memory on long videos
    for a in range(0, starts.size, chunk):
        idx = starts[a : a + chunk, None] + np.arange(n_win)[None, :]
        seg = x[:, idx]  # (C, w, n_win)
        ok_w = ok[idx]
        count = np.maximum(ok_w.sum(axis=1), 1)
        mean = (seg * ok_w).sum(axis=-1, keepdims=True) / count[None, :, None]
        seg = np.where(ok_w[None], seg - mean, 0.0) * taper
        power = np.abs(scipy.fft.rfft(seg, n=nfft, axis=-1)) ** 2
        spectra[:, a : a + chunk] = power[..., k] * (1 - frac) + power[..., k + 1] * frac
    if isinstance(tilt, str):
        if tilt != "auto":
            raise ConfigError(f"tilt must be a number or 'auto', got {tilt!r}")
        tilt = estimate_tilt(spectra, grid, max_tilt)
    spectra *= (grid / 60.0) ** tilt
    return starts, grid, spectra


def region_family(region: str) -> str:
    """The family a region belongs to: the cells of a grid (``grid_r2c1``) are one family
    (``"grid"``); any other region is a family of its own.

    Neighbouring small patches share their artefacts (the same head motion, light and
    codec blocks), as the methods run on one region do, so they are not second opinions
    for each other, and twenty of them must not outvote one forehead.
    """
    match = _CELL_NAME.match(region)
    return match.group("family") if match else region


def estimate_tilt(spectra: np.ndarray, grid_bpm: np.ndarray, max_tilt: float = MAX_TILT) -> float:
    """The whitening exponent that flattens the noise of these spectra, in [0, max_tilt].

    The log-log slope of the median (over candidates and windows) normalised spectrum
    across the band, least squares: noise falling as ``f ** -b`` gives ``tilt = b``. The
    median keeps a moving pulse peak from steepening the fit.

    Parameters
    ----------
    spectra : (C, W, G) unwhitened power (``window_spectra(..., tilt=0)``).
    grid_bpm : (G,) bpm.
    """
    spec = np.asarray(spectra, dtype=np.float64)
    total = spec.sum(-1, keepdims=True)
    norm = np.divide(spec, total, out=np.zeros_like(spec), where=total > 0)
    typical = np.median(norm.reshape(-1, norm.shape[-1]), axis=0)
    ok = typical > 0
    if ok.sum() < 3:
        return 0.0
    slope = np.polyfit(np.log(np.asarray(grid_bpm)[ok]), np.log(typical[ok]), 1)[0]
    return float(np.clip(-slope, 0.0, max_tilt))


def _snr_db(spectra: np.ndarray, grid: np.ndarray, hr: np.ndarray, tol_bpm: float = 6.0) -> np.ndarray:
    """de Haan & Jeanne (2013) SNR on a grid: power near HR (and 2 HR) over the rest."""
    signal = (np.abs(grid - hr[..., None]) <= tol_bpm) | (np.abs(grid - 2 * hr[..., None]) <= tol_bpm)
    s = (spectra * signal).sum(-1)
    rest = (spectra * ~signal).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(s / rest)


def fuse_spectra(
    spectra: np.ndarray,
    grid_bpm: np.ndarray,
    *,
    snr_cap_db: float = 3.0,
    agreement: bool = True,
    groups: np.ndarray | None = None,
    prior: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Quality-weighted average of candidate spectra, per window.

    Each candidate's spectrum is normalised to unit sum; its weight is its own SNR at its
    own peak (linear, capped at ``snr_cap_db`` so a clean but lone artefact cannot
    dominate) times, with ``agreement``, how strongly the candidates of all *other*
    groups (regions) support its peak frequency: their weighted mean spectrum near that
    peak over its own maximum, in [0, 1]. Methods run on the same region share its
    artefacts, so only other regions count as a second opinion.

    Parameters
    ----------
    spectra : (C, W, G) non-negative.
    grid_bpm : (G,) bpm.
    groups : (C,) int, the region (family) of each candidate (default: each its own).
    prior : (C,) non-negative factor on each candidate's weight, applied after the SNR
        and agreement terms (default 1): e.g. ``1 / k`` for the candidates of a family of
        ``k`` regions, so that the family weighs as one region.

    Returns
    -------
    fused : (W, G), rows summing to 1 (uniform where no candidate holds power).
    weights : (C, W), columns summing to 1.
    """
    spec = np.asarray(spectra, dtype=np.float64)
    grid = np.asarray(grid_bpm, dtype=np.float64)
    total = spec.sum(-1, keepdims=True)
    norm = np.divide(spec, total, out=np.zeros_like(spec), where=total > 0)
    peak = grid[np.argmax(norm, axis=-1)]
    snr = _snr_db(norm, grid, peak)
    w = np.minimum(10.0 ** (np.nan_to_num(snr, nan=-np.inf) / 10.0), 10.0 ** (snr_cap_db / 10.0))
    group = np.arange(spec.shape[0]) if groups is None else np.asarray(groups)
    if agreement and np.unique(group).size > 1:
        weighted = (w[..., None] * norm).sum(0)  # (W, G)
        own = np.zeros_like(norm)
        for g in np.unique(group):
            members = group == g
            own[members] = (w[members][..., None] * norm[members]).sum(0)
        others = weighted[None] - own  # leave-one-region-out, (C, W, G)
        # support of the other regions at this candidate's peak (within a few bins),
        # relative to their own strongest frequency
        reach = max(1, int(round(AGREEMENT_TOL_BPM / float(grid[1] - grid[0]))))
        k = np.argmax(norm, axis=-1)  # (C, W)
        near = np.clip(k[..., None] + np.arange(-reach, reach + 1), 0, grid.size - 1)
        support = np.take_along_axis(others, near, axis=-1).max(-1)
        top = others.max(-1)
        w = w * np.divide(support, top, out=np.zeros_like(support), where=top > 0)
    if prior is not None:
        w = w * np.asarray(prior, dtype=np.float64)[:, None]
    wsum = w.sum(0, keepdims=True)
    w = np.divide(w, wsum, out=np.full_like(w, 1.0 / w.shape[0]), where=wsum > 0)
    fused = (w[..., None] * norm).sum(0)
    rows = fused.sum(-1, keepdims=True)
    fused = np.divide(fused, rows, out=np.full_like(fused, 1.0 / grid.size), where=rows > 0)
    return fused, w


def fuse_pulses(
    pulses: np.ndarray,
    fps: float,
    *,
    candidates: tuple[str, ...] | list[str] | None = None,
    valid: np.ndarray | None = None,
    timestamps_s: np.ndarray | None = None,
    window_s: float = 10.0,
    step_s: float = 1.0,
    band_bpm: tuple[float, float] = (42.0, 210.0),
    tilt: float | str = DEFAULT_TILT,
    snr_cap_db: float = 3.0,
    agreement: bool = True,
    track: bool = True,
    sigma_bpm_per_s: float = 3.0,
    max_change_bpm_per_s: float = 10.0,
    min_valid_fraction: float = 0.8,
    harmonic_weight: float = 0.0,
    group_families: bool = True,
    max_tilt: float = MAX_TILT,
) -> FusionResult:
    """Candidate pulses -> tracked HR per window, with confidence and a fused pulse.

    Parameters
    ----------
    pulses : (C, N) float, finite (see :func:`candidate_pulses`), uniform at ``fps``.
    candidates : C names.
    valid : (N,) bool, False where the face was missing.
    timestamps_s : (N,) sample times (default ``arange(N) / fps``).
    window_s, step_s : sliding window and hop, seconds.
    band_bpm : HR band, bpm.
    tilt, max_tilt, snr_cap_db, agreement : see :func:`window_spectra` and
        :func:`fuse_spectra`.
    track : Viterbi-track the HR (else each window's fused peak).
    sigma_bpm_per_s, max_change_bpm_per_s : the tracker's prior on HR change.
    min_valid_fraction : windows with fewer valid samples get NaN HR.
    harmonic_weight : evidence for HR ``f`` also counts ``harmonic_weight`` times the
        fused power at ``2 f`` (harmonic support). Off by default: on our real clips it
        favours half the true HR (the true HR then "supports" f/2), see
        docs/benchmarks.md.
    group_families : the cells of a grid (:func:`region_family`) are one region for the
        agreement test and share one region's weight; False counts each cell as a region.
    """
    fps = check_fps(fps)
    x = np.asarray(pulses, dtype=np.float64)
    if x.ndim != 2 or not np.all(np.isfinite(x)):
        raise InputError(f"pulses must be a finite (C, N) array, got shape {x.shape}")
    n = x.shape[1]
    ok = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    t = np.arange(n) / fps if timestamps_s is None else np.asarray(timestamps_s, dtype=np.float64)
    names = tuple(candidates) if candidates is not None else tuple(f"c{i}" for i in range(x.shape[0]))
    starts, grid, spectra = window_spectra(
        x, fps, window_s=window_s, step_s=step_s, band_bpm=band_bpm, tilt=tilt, valid=ok, timestamps_s=t,
        max_tilt=max_tilt,
    )
    n_win = int(round(window_s * fps))
    idx = starts[:, None] + np.arange(n_win)[None, :]
    valid_fraction = ok[idx].mean(axis=1)
    usable = valid_fraction >= min_valid_fraction
    regions = [c.split("/")[0] for c in names]
    family_of = {r: region_family(r) if group_families else r for r in set(regions)}
    families = [family_of[r] for r in regions]
    groups = np.unique(families, return_inverse=True)[1]
    # a family of k regions weighs as one region: each of its candidates 1/k
    family_size = Counter(family_of.values())
    prior = np.array([1.0 / family_size[f] for f in families])
    fused, weights = fuse_spectra(
        spectra, grid, snr_cap_db=snr_cap_db, agreement=agreement, groups=groups, prior=prior
    )
    evidence = fused
    if harmonic_weight:
        double = np.array([np.interp(2 * grid, grid, row, right=0.0) for row in fused])
        evidence = fused + harmonic_weight * double
    peak = grid[np.argmax(evidence, axis=1)]
    if track:
        floor = 1e-6 * evidence.max(axis=1, keepdims=True)
        ll = np.where(usable[:, None], np.log(evidence + floor + 1e-300), 0.0)
        hr = viterbi_track(ll, grid, step_s, sigma_bpm_per_s=sigma_bpm_per_s,
                           max_change_bpm_per_s=max_change_bpm_per_s)
    else:
        hr = peak.copy()
    hr = np.where(usable, _refine(evidence, grid, hr), np.nan)
    peak = np.where(usable, peak, np.nan)
    confidence = track_confidence(fused, grid, hr)
    cand_peak = grid[np.argmax(spectra, axis=-1)]  # (C, W)
    agree = (weights * (np.abs(cand_peak - hr[None, :]) <= 6.0)).sum(0)
    agree = np.where(usable, agree, np.nan)
    snr = np.where(usable, _snr_db(fused, grid, np.nan_to_num(hr, nan=grid[0])), np.nan)
    pulse = _overlap_add(x, weights, starts, n_win)
    pulse[~ok] = np.nan
    t_start = t[starts]
    t_end = t[starts + n_win - 1] + 1.0 / fps
    return FusionResult(
        t_start_s=t_start,
        t_end_s=t_end,
        t_center_s=0.5 * (t_start + t_end),
        hr_bpm=hr,
        peak_bpm=peak,
        confidence=confidence,
        agreement=agree,
        snr_db=snr,
        valid_fraction=valid_fraction,
        grid_bpm=grid,
        spectrum=fused,
        weights=weights,
        candidates=names,
        pulse=pulse,
    )


def _refine(evidence: np.ndarray, grid: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """HR between grid bins: a parabola through the log evidence of the bin and its two
    neighbours (Gaussian peak interpolation), where the bin is a local maximum."""
    k = np.clip(np.searchsorted(grid, hr), 1, grid.size - 2)
    rows = np.arange(evidence.shape[0])
    tiny = np.finfo(np.float64).tiny
    ya, yb, yc = (np.log(np.maximum(evidence[rows, j], tiny)) for j in (k - 1, k, k + 1))
    denom = ya - 2.0 * yb + yc
    local_max = (yb >= ya) & (yb >= yc) & (denom < 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(local_max, 0.5 * (ya - yc) / denom, 0.0)
    return grid[k] + np.clip(np.nan_to_num(delta), -0.5, 0.5) * (grid[1] - grid[0])


def _overlap_add(x: np.ndarray, weights: np.ndarray, starts: np.ndarray, n_win: int) -> np.ndarray:
    """Per window, the weighted sum of standardised candidates, Hann overlap-added."""
    n = x.shape[1]
    taper = np.hanning(n_win) + 1e-3
    out = np.zeros(n)
    norm = np.zeros(n)
    for k, s in enumerate(starts):
        seg = x[:, s : s + n_win]
        sd = seg.std(axis=1, keepdims=True)
        z = np.divide(seg - seg.mean(axis=1, keepdims=True), sd, out=np.zeros_like(seg), where=sd > 0)
        mix = weights[:, k] @ z
        mix_sd = mix.std()
        if mix_sd > 0:
            mix = mix / mix_sd
        out[s : s + n_win] += taper * mix
        norm[s : s + n_win] += taper
    covered = norm > 0
    out[covered] /= norm[covered]
    sd = out[covered].std() if covered.any() else 0.0
    return out / sd if sd > 0 else out
