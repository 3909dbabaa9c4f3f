"""Per-sample temporal resampling: the frequency-contrast negative and positive branches.

Gideon & Stent, ICCV 2021 (frequency contrast): a clip played ``r`` times faster carries
its pulse at ``f * r``; the prediction on that clip, slowed back down by ``1 / r``, must
match the prediction on the original clip.

Convention: ``out[b, t] = in[b, t * factor[b]]`` (signals: linear interpolation; clips:
the nearest frame or a linear blend), so a factor > 1 compresses time and multiplies
every frequency by ``factor``. Positions
past the last input frame are padded (``"zeros"`` or ``"edge"``); :func:`valid_length`
says how many output samples come from real frames. Every sample of the batch has its
own factor and the whole batch is resampled by one gather (no loop over samples).
"""

from __future__ import annotations

import torch

from facepulse.errors import ConfigError, InputError

PAD_MODES = ("zeros", "edge")
INTERPOLATIONS = ("nearest", "linear")


def sample_factors(
    batch: int,
    low: float = 1.25,
    high: float = 1.5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(B,) float32 resampling factors drawn uniformly from ``[low, high]``, one per sample."""
    if not 1.0 < low <= high:
        raise ConfigError(f"contrastive resampling factors need 1 < resample_min <= resample_max, got {low}, {high}")
    u = torch.rand(batch, generator=generator, device=generator.device if generator is not None else device)
    return (low + (high - low) * u).to(device=device)


def valid_length(length: int, factor: torch.Tensor) -> torch.Tensor:
    """(B,) long: output samples ``t`` with ``t * factor <= length - 1`` (not padding)."""
    t = torch.arange(length, dtype=torch.float64, device=factor.device)
    return (t[None, :] * factor.double()[:, None] <= (length - 1) + 1e-4).sum(dim=1)


def max_view_len(length: int, max_factor: float) -> int:
    """Longest view that fits into the real part of a clip of ``length`` frames sped up by ``max_factor``."""
    return int(valid_length(length, torch.tensor([float(max_factor)]))[0])


def _positions(
    length_in: int, length_out: int, factor: torch.Tensor, pad: str, valid_in: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left index, right index, right weight and padding mask, each (B, length_out).

    ``valid_in`` (B,): only the first ``valid_in[b]`` input samples are real; later
    positions are padding (``"edge"`` repeats the last real sample).
    """
    if pad not in PAD_MODES:
        raise ConfigError(f"resampling pad {pad!r} unknown; available: {', '.join(PAD_MODES)}")
    t = torch.arange(length_out, dtype=factor.dtype, device=factor.device)
    pos = t[None, :] * factor[:, None]  # (B, T_out) fractional input frame
    if valid_in is None:
        last = torch.full_like(factor, length_in - 1)
    else:
        last = (valid_in.to(factor) - 1).clamp(0, length_in - 1)
    last = last[:, None]
    inside = pos <= last + 1e-4
    pos = torch.minimum(pos, last)  # "edge": repeat the last real sample
    left = torch.floor(pos).long().clamp(max=length_in - 1)
    right = torch.minimum(left + 1, last.long())
    weight = pos - left.to(pos.dtype)
    return left, right, weight, inside


def _check_factor(factor: float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    f = torch.as_tensor(factor, dtype=torch.float64, device=device)  # exact positions on long clips
    f = f.expand(batch) if f.ndim == 0 else f.reshape(-1)
    if f.shape[0] != batch:
        raise InputError(f"resampling factor: expected one value per sample ({batch}), got {f.shape[0]}")
    if not bool(torch.isfinite(f).all()) or bool((f <= 0).any()):
        raise InputError("resampling factor: every factor must be finite and > 0")
    return f


def resample_signals(
    x: torch.Tensor,
    factor: float | torch.Tensor,
    length: int | None = None,
    pad: str = "zeros",
    valid_len: torch.Tensor | None = None,
) -> torch.Tensor:
    """Resample each signal in time by its own factor.

    Gideon & Stent, ICCV 2021 (positive branch: the negative's pulse resampled by ``1 / r``).

    Parameters
    ----------
    x : (B, T) signals.
    factor : scalar or (B,); ``out[b, t] = x[b, t * factor[b]]`` (frequencies times factor).
    length : output samples (default T).
    pad : ``"zeros"`` or ``"edge"`` for positions past the last input sample.
    valid_len : (B,) real samples of each input (e.g. the negative branch's
        :func:`valid_length`); later samples are treated as padding, never interpolated.

    Returns
    -------
    (B, length) signals, dtype of ``x``.
    """
    if x.ndim != 2 or not x.is_floating_point():
        raise InputError(f"resample_signals: expected float signals (B, T), got {x.dtype} {tuple(x.shape)}")
    f = _check_factor(factor, x.shape[0], x.device)
    left, right, w, inside = _positions(x.shape[1], length or x.shape[1], f, pad, valid_len)
    w = w.to(x.dtype)
    out = torch.gather(x, 1, left) * (1 - w) + torch.gather(x, 1, right) * w
    return out * inside.to(x.dtype) if pad == "zeros" else out


def resample_clips(
    clips: torch.Tensor,
    factor: float | torch.Tensor,
    length: int | None = None,
    pad: str = "zeros",
    mode: str = "nearest",
) -> torch.Tensor:
    """Resample each clip in time by its own factor.

    Gideon & Stent, ICCV 2021 (negative branch: the input clip resampled by ``r``).

    Parameters
    ----------
    clips : (B, C, T, H, W) float clips (normalised, so that zero padding is the mean).
    factor : scalar or (B,); output frame ``t`` is input frame ``t * factor[b]``.
    length : output frames (default T).
    pad : ``"zeros"`` or ``"edge"`` for frames past the end of the input.
    mode : ``"nearest"`` picks whole frames (default: the sensor noise stays white, as in
        the anchor) or ``"linear"`` blends neighbouring frames (smoother timing, but the
        blend low-passes the noise: a cue that tells the network which branch it sees).

    Returns
    -------
    (B, C, length, H, W), dtype of ``clips``.
    """
    if clips.ndim != 5 or not clips.is_floating_point():
        raise InputError(
            f"resample_clips: expected float clips (B, C, T, H, W), got {clips.dtype} {tuple(clips.shape)}"
        )
    if mode not in INTERPOLATIONS:
        raise ConfigError(f"resampling mode {mode!r} unknown; available: {', '.join(INTERPOLATIONS)}")
    f = _check_factor(factor, clips.shape[0], clips.device)
    left, right, w, inside = _positions(clips.shape[2], length or clips.shape[2], f, pad)
    shape = (clips.shape[0], 1, left.shape[1], 1, 1)
    if mode == "nearest":
        out = torch.take_along_dim(clips, torch.where(w >= 0.5, right, left).view(shape), dim=2)
    else:
        w = w.to(clips.dtype).view(shape)
        out = torch.take_along_dim(clips, left.view(shape), dim=2) * (1 - w)
        out = out + torch.take_along_dim(clips, right.view(shape), dim=2) * w
    return out * inside.to(clips.dtype).view(shape) if pad == "zeros" else out


def sample_views(
    x: torch.Tensor,
    n_views: int,
    view_len: int,
    valid_len: torch.Tensor | int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random windows of each signal, independently placed per sample and per view.

    Gideon & Stent, ICCV 2021 (multi-view triplet loss: N random views of length W).

    Parameters
    ----------
    x : (B, T) signals.
    n_views : N windows per signal; view_len : W samples per window.
    valid_len : (B,) or scalar; windows lie within ``x[b, :valid_len[b]]`` (default T).

    Returns
    -------
    (B, N, W) windows (a differentiable gather).
    """
    b, t = x.shape
    valid = torch.as_tensor(t if valid_len is None else valid_len, device=x.device).long()
    valid = valid.expand(b) if valid.ndim == 0 else valid
    if bool((valid < view_len).any()) or view_len < 1:
        short = int(valid.min())
        raise ConfigError(f"contrastive view_len {view_len} is longer than the usable signal ({short} samples)")
    dev = generator.device if generator is not None else x.device
    u = torch.rand(b, n_views, generator=generator, device=dev).to(x.device)
    start = torch.floor(u * (valid - view_len + 1)[:, None].to(u.dtype)).long()  # (B, N)
    idx = start[:, :, None] + torch.arange(view_len, device=x.device)  # (B, N, W)
    return torch.gather(x[:, None, :].expand(b, n_views, t), 2, idx)
