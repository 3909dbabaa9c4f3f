"""Differentiable torch spectral helpers shared by the frequency losses.

Signals are batches ``(B, T)`` sampled at ``fps`` (a float, or one value per sample as a
``(B,)`` tensor: clips of one batch may come from videos of different frame rates).
Power is the unnormalised periodogram ``|X(f)|^2`` in (signal units)^2; every loss
normalises it, so the scale never matters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facepulse.errors import ConfigError, InputError

WINDOWS = (None, "hann")


def as_batch_values(value: float | torch.Tensor, batch: int, like: torch.Tensor, name: str) -> torch.Tensor:
    """A per-sample ``(B,)`` tensor (dtype/device of ``like``) from a scalar or ``(B,)`` values."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        t = t.expand(batch)
    t = t.reshape(-1)
    if t.shape[0] != batch:
        raise InputError(f"{name}: expected one value per sample ({batch}), got {t.shape[0]}")
    return t


def check_signals(x: torch.Tensor, name: str = "signal") -> None:
    """InputError unless ``x`` is a float ``(B, T)`` batch with T >= 2."""
    if x.ndim != 2 or x.shape[1] < 2 or not x.is_floating_point():
        raise InputError(f"{name}: expected float signals (B, T) with T >= 2, got {x.dtype} {tuple(x.shape)}")


def hr_bins_bpm(min_bpm: float = 40.0, max_bpm: float = 180.0, step_bpm: float = 1.0) -> torch.Tensor:
    """Heart-rate bin centres ``min_bpm, min_bpm + step, ..., max_bpm`` (inclusive), float64."""
    if not 0 < min_bpm < max_bpm or step_bpm <= 0:
        raise ConfigError(f"HR bins need 0 < min_bpm < max_bpm and step_bpm > 0, got {min_bpm}, {max_bpm}, {step_bpm}")
    n = int(math.floor((max_bpm - min_bpm) / step_bpm + 1e-9)) + 1
    return min_bpm + step_bpm * torch.arange(n, dtype=torch.float64)


def prepare(x: torch.Tensor, window: str | None = None, demean: bool = True) -> torch.Tensor:
    """Remove each signal's mean (no DC peak) and apply a taper window (``None``, ``"hann"``)."""
    if window not in WINDOWS:
        raise ConfigError(f"window {window!r} unknown; available: None, hann")
    if demean:
        x = x - x.mean(dim=-1, keepdim=True)
    if window == "hann":
        x = x * torch.hann_window(x.shape[-1], periodic=False, dtype=x.dtype, device=x.device)
    return x


def torch_psd(
    x: torch.Tensor,
    fps: float | torch.Tensor,
    freqs_hz: torch.Tensor,
    window: str | None = "hann",
    demean: bool = True,
) -> torch.Tensor:
    """Power at arbitrary frequencies by a DFT against a fixed sin/cos basis.

    Yu et al., AutoHR, IEEE SPL 2020 (frequency loss: power of the rPPG at each HR bin).
    ``P_b(f) = (sum_n x_b[n] cos(2 pi f n / fps_b))^2 + (sum_n x_b[n] sin(2 pi f n / fps_b))^2``
    after mean removal and windowing.

    Parameters
    ----------
    x : (B, T) signals.
    fps : sampling rate in Hz, scalar or (B,).
    freqs_hz : (F,) frequencies shared by all samples, or (B, F) per sample.

    Returns
    -------
    (B, F) power in (signal units)^2.
    """
    check_signals(x, "torch_psd")
    b, t = x.shape
    fps_b = as_batch_values(fps, b, x, "fps")
    freqs = torch.as_tensor(freqs_hz, dtype=x.dtype, device=x.device)
    freqs = freqs.expand(b, -1) if freqs.ndim == 1 else freqs
    x = prepare(x, window, demean)
    n = torch.arange(t, dtype=x.dtype, device=x.device)
    phase = 2 * math.pi * (freqs / fps_b[:, None])[:, :, None] * n  # (B, F, T) radians
    re = torch.einsum("bt,bft->bf", x, torch.cos(phase))
    im = torch.einsum("bt,bft->bf", x, torch.sin(phase))
    return re**2 + im**2


def default_n_fft(n_samples: int, pad_factor: int = 4) -> int:
    """Zero-padded FFT length: the next power of two >= ``pad_factor * n_samples``."""
    return 1 << max(0, math.ceil(math.log2(max(1, pad_factor * n_samples))))


def zero_pad(x: torch.Tensor, n: int) -> torch.Tensor:
    """Right-pad the last axis with zeros to length ``n`` (>= current length)."""
    if n < x.shape[-1]:
        raise ConfigError(f"n_fft {n} is shorter than the signal ({x.shape[-1]} samples)")
    return F.pad(x, (0, n - x.shape[-1]))


def rfft_freqs_hz(n_fft: int, fps: torch.Tensor) -> torch.Tensor:
    """(B, n_fft // 2 + 1) one-sided FFT bin frequencies for per-sample ``fps`` (B,)."""
    k = torch.arange(n_fft // 2 + 1, dtype=fps.dtype, device=fps.device)
    return k[None, :] * (fps[:, None] / n_fft)


def rfft_psd(
    x: torch.Tensor,
    fps: float | torch.Tensor,
    n_fft: int | None = None,
    window: str | None = None,
    demean: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-sided zero-padded periodogram.

    Gideon & Stent, ICCV 2021 (FFT power spectrum of the zero-padded rPPG).

    Parameters
    ----------
    x : (B, T) signals; fps : Hz, scalar or (B,);
    n_fft : FFT length (default :func:`default_n_fft`, 4x zero padding);
    window : None or "hann"; demean : remove each signal's mean first.

    Returns
    -------
    freqs_hz : (B, F) bin frequencies, F = n_fft // 2 + 1.
    power : (B, F) ``|X(f)|^2`` in (signal units)^2.
    """
    check_signals(x, "rfft_psd")
    n_fft = default_n_fft(x.shape[1]) if n_fft is None else int(n_fft)
    fps_b = as_batch_values(fps, x.shape[0], x, "fps")
    spec = torch.fft.rfft(zero_pad(prepare(x, window, demean), n_fft), dim=-1)
    return rfft_freqs_hz(n_fft, fps_b), spec.real**2 + spec.imag**2


def band_mask(freqs_hz: torch.Tensor, low_hz: float | torch.Tensor, high_hz: float | torch.Tensor) -> torch.Tensor:
    """Boolean mask of ``low_hz <= f <= high_hz`` (bounds scalar or per-sample ``(B, 1)``)."""
    return (freqs_hz >= low_hz) & (freqs_hz <= high_hz)


def check_band(min_bpm: float, max_bpm: float, what: str) -> None:
    if not 0 <= min_bpm < max_bpm:
        raise ConfigError(f"{what}: need 0 <= min_bpm < max_bpm, got {min_bpm}, {max_bpm}")
