"""Clip augmentations: erase bounds, HR-balancing labels, flip, jitter, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facepulse.augment import (
    AUGMENTS,
    ClipSample,
    ColorJitter,
    HRBalance,
    RandomErase,
    RandomHFlip,
    build_augment,
    erase_tubes,
    hflip,
    sample_tubes,
    source_frames_needed,
    temporal_resample,
)
from facepulse.errors import ConfigError, InputError

FPS = 30.0


def analytic_ppg(hr_bpm: float, n: int, fps: float = FPS) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / fps
    return torch.sin(2 * math.pi * hr_bpm / 60.0 * t) + 0.3 * torch.sin(4 * math.pi * hr_bpm / 60.0 * t + 0.5)


def measured_hr_bpm(ppg: np.ndarray, fps: float = FPS) -> float:
    """Spectral peak (Hann window, 2^16-point FFT: 0.03 bpm grid) within 30-240 bpm."""
    x = (ppg - ppg.mean()) * np.hanning(len(ppg))
    power = np.abs(np.fft.rfft(x, n=1 << 16)) ** 2
    freqs_bpm = np.fft.rfftfreq(1 << 16, 1 / fps) * 60
    band = (freqs_bpm >= 30) & (freqs_bpm <= 240)
    return float(freqs_bpm[band][np.argmax(power[band])])


def pulsing_clip(ppg: torch.Tensor, h: int = 6, w: int = 5) -> torch.Tensor:
    """(3, T, H, W) clip whose every pixel is an affine function of the PPG."""
    base = torch.tensor([90.0, 120.0, 150.0], dtype=torch.float64)[:, None, None, None]
    return base + 10 * ppg[None, :, None, None].expand(3, -1, h, w)


# --------------------------------------------------------------------------- erasing
@pytest.mark.parametrize("t,h,w", [(37, 24, 31), (160, 128, 128), (64, 9, 13), (4, 3, 2)])
def test_sampled_tubes_within_bounds(t, h, w):
    tubes = sample_tubes(2000, t, h, w, generator=0)
    area = (tubes.y1 - tubes.y0) * (tubes.x1 - tubes.x0)
    span = tubes.t1 - tubes.t0
    assert (area <= math.floor(0.2 * h * w)).all()
    assert (span <= math.floor(0.2 * t)).all()
    assert (tubes.t0 >= 0).all() and (tubes.t1 <= t).all()
    assert (tubes.y0 >= 0).all() and (tubes.y1 <= h).all()
    assert (tubes.x0 >= 0).all() and (tubes.x1 <= w).all()
    if math.floor(0.2 * h * w) >= 1 and math.floor(0.2 * t) >= 1:
        assert (area >= 1).all() and (span >= 1).all()
        # the draws use the whole allowed range, not one fixed box
        assert span.max() == math.floor(0.2 * t) and len(torch.unique(area)) > 1
    else:
        assert ((area == 0) | (span == 0)).all()  # nothing can be erased


def test_random_erase_volume_within_bounds():
    t, h, w = 50, 20, 30
    clip = torch.ones(3, t, h, w)
    erase = RandomErase(p=1.0)
    for seed in range(50):
        out = erase(ClipSample(clip, FPS), seed).clip
        zeros = out == 0
        assert torch.equal(zeros[0], zeros[1]) and torch.equal(zeros[0], zeros[2])  # same tube in every channel
        frames = zeros[0].flatten(1).any(dim=1)
        per_frame = zeros[0].flatten(1).sum(dim=1)
        assert 1 <= int(frames.sum()) <= 0.2 * t
        assert int(per_frame.max()) <= 0.2 * h * w
        # a single box: frames contiguous, the same rectangle in each erased frame
        idx = torch.nonzero(frames).flatten()
        assert int(idx[-1] - idx[0] + 1) == len(idx)
        assert all(torch.equal(zeros[0, idx[0]], zeros[0, i]) for i in idx)
        tb = erase.last_tubes
        assert int(zeros.sum()) == 3 * int((tb.t1 - tb.t0) * (tb.y1 - tb.y0) * (tb.x1 - tb.x0))


def test_erase_fill_mean_and_batches():
    gen = torch.Generator().manual_seed(0)
    clips = torch.rand(4, 3, 20, 10, 10, generator=gen) * 255
    tubes = sample_tubes(4, 20, 10, 10, generator=1)
    out = erase_tubes(clips, tubes, fill="mean")
    mask = tubes.mask(20, 10, 10)
    means = clips.mean(dim=(2, 3, 4))
    for b in range(4):
        for c in range(3):
            erased = out[b, c][mask[b, 0]]
            assert torch.allclose(erased, means[b, c].expand_as(erased))
        assert torch.equal(out[b][:, ~mask[b, 0]], clips[b][:, ~mask[b, 0]])  # rest untouched
    assert len({tuple(m.nonzero()[0].tolist()) for m in mask}) > 1  # independent tube per sample
    assert torch.equal(RandomErase(p=0.0)(ClipSample(clips[0], FPS), 3).clip, clips[0])
    with pytest.raises(ConfigError, match="erase fill 'noise' unknown"):
        RandomErase(fill="noise")


# ----------------------------------------------------------------------- HR balance
@pytest.mark.parametrize("hr_in,hr_out", [(100.0, 50.0), (120.0, 60.0), (60.0, 120.0), (45.0, 90.0), (80.0, 80.0)])
def test_hr_balance_label_matches_resampled_ppg(hr_in, hr_out):
    n_out = 300
    aug = HRBalance()
    n_src = aug.source_frames(n_out)
    assert n_src == 2 * n_out
    ppg = analytic_ppg(hr_in, n_src)
    sample = aug(ClipSample(pulsing_clip(ppg), FPS, ppg, hr_in))
    assert sample.clip.shape == (3, n_out, 6, 5) and sample.ppg.shape == (n_out,)
    assert sample.hr_bpm == hr_out and sample.fps == FPS
    assert measured_hr_bpm(sample.ppg.numpy()) == pytest.approx(sample.hr_bpm, abs=0.5)
    # the clip moved with its label: every pixel is still the same affine map of the PPG
    torch.testing.assert_close(sample.clip, pulsing_clip(sample.ppg))


def test_temporal_resample_exact_frames_and_errors():
    clip = torch.arange(10, dtype=torch.float64)[None, :, None, None].expand(3, 10, 2, 2)
    fast, _ = temporal_resample(clip, 2.0, 5)
    assert fast[0, :, 0, 0].tolist() == [0, 2, 4, 6, 8]
    slow, ppg = temporal_resample(clip, 0.5, 4, torch.arange(10.0, dtype=torch.float64))
    assert slow[0, :, 0, 0].tolist() == [0, 0.5, 1, 1.5] and ppg.tolist() == [0, 0.5, 1, 1.5]
    assert source_frames_needed(5, 2.0) == 9 and source_frames_needed(4, 0.5) == 3
    with pytest.raises(InputError, match="speed 2 x 6 frames needs 11 source frames, got 10"):
        temporal_resample(clip, 2.0, 6)
    with pytest.raises(InputError, match="the sample has no hr_bpm label"):
        HRBalance()(ClipSample(clip, FPS))
    with pytest.raises(InputError, match="ppg shape"):
        temporal_resample(clip, 1.0, 4, torch.zeros(7))


# ------------------------------------------------------------------- flip and colour
def test_hflip():
    clip = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(1, 2, 3, 4, 5).expand(3, 2, 3, 4, 5)[0]
    flipped = hflip(clip)
    assert torch.equal(flipped[..., 0], clip[..., -1]) and torch.equal(hflip(flipped), clip)
    assert torch.equal(RandomHFlip(p=1.0)(ClipSample(clip, FPS), 0).clip, flipped)
    assert torch.equal(RandomHFlip(p=0.0)(ClipSample(clip, FPS), 0).clip, clip)


def test_color_jitter_constant_gains_within_bounds():
    clip = torch.rand(3, 16, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 200 + 10
    jitter = ColorJitter(brightness=0.2, color=0.05, max_value=None)
    gains = []
    for seed in range(20):
        ratio = jitter(ClipSample(clip, FPS), seed).clip / clip
        per_channel = ratio.flatten(1)
        # one gain per channel, constant in time and space: the pulse is only rescaled
        torch.testing.assert_close(per_channel, per_channel[:, :1].expand_as(per_channel))
        g = per_channel[:, 0]
        assert ((g >= 0.8 * 0.95 - 1e-12) & (g <= 1.2 * 1.05 + 1e-12)).all()
        gains.append(g)
    assert torch.stack(gains).std(dim=0).min() > 0.01  # gains vary between draws
    clamped = ColorJitter(brightness=0.5, color=0.0)(ClipSample(torch.full((3, 2, 2, 2), 250.0), FPS), 1).clip
    assert clamped.max() <= 255.0


# -------------------------------------------------------------- composition and seeds
def test_compose_is_deterministic_given_a_seed():
    n_out = 64
    aug = build_augment(["hr_balance", {"name": "erase", "p": 1.0}, "hflip", {"name": "color_jitter", "color": 0.1}])
    assert aug.source_frames(n_out) == 2 * n_out
    ppg = analytic_ppg(100.0, 2 * n_out)
    clip = pulsing_clip(ppg, 12, 16) + torch.rand(3, 2 * n_out, 12, 16, generator=torch.Generator().manual_seed(0))
    sample = ClipSample(clip, FPS, ppg, 100.0)
    a = aug(sample, 7)
    b = aug(sample, torch.Generator().manual_seed(7))
    assert torch.equal(a.clip, b.clip) and torch.equal(a.ppg, b.ppg) and a.hr_bpm == b.hr_bpm == 50.0
    others = [aug(sample, seed).clip for seed in range(8, 12)]
    assert any(not torch.equal(a.clip, o) for o in others)
    assert torch.equal(sample.clip, clip)  # the input sample is never modified


def test_build_augment_errors():
    assert {"erase", "hflip", "color_jitter", "hr_balance"} <= set(AUGMENTS.names())
    with pytest.raises(ConfigError, match="unknown augmentation 'rotate'"):
        build_augment(["rotate"])
    with pytest.raises(ConfigError, match="augmentation 'hflip': .*prob"):
        build_augment([{"name": "hflip", "prob": 0.5}])
    with pytest.raises(ConfigError, match="missing 'name'"):
        build_augment([{"p": 0.5}])
