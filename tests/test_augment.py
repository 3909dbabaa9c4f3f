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
    Tubes,
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
    erase = RandomErase(p=1.0, fill="zero")
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
    out = erase_tubes(clips, tubes, fill="channel_mean")
    mask = tubes.mask(20, 10, 10)
    means = clips.mean(dim=(2, 3, 4))
    for b in range(4):
        for c in range(3):
            erased = out[b, c][mask[b, 0]]
            assert torch.allclose(erased, means[b, c].expand_as(erased))
        assert torch.equal(out[b][:, ~mask[b, 0]], clips[b][:, ~mask[b, 0]])  # rest untouched
    assert len({tuple(m.nonzero()[0].tolist()) for m in mask}) > 1  # independent tube per sample
    assert torch.equal(RandomErase(p=0.0)(ClipSample(clips[0], FPS), 3).clip, clips[0])
    with pytest.raises(ConfigError, match="erase fill 'bogus' unknown"):
        RandomErase(fill="bogus")


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


# ------------------------------------------------------------ erase vs normalisation
def face_like_clip(seed: int = 0, t: int = 60, size: int = 24) -> torch.Tensor:
    """(3, T, S, S) raw pixels: a bright face on a darker background, a 1.2 Hz pulse of
    ~1 grey level and sensor noise (the scale of a real face crop)."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    face = (((yy - size / 2) / (0.45 * size)) ** 2 + ((xx - size / 2) / (0.35 * size)) ** 2 < 1).double()
    base = torch.tensor([170.0, 120.0, 100.0]).view(3, 1, 1) * (0.35 + 0.65 * face)
    base = base + 8 * torch.rand(3, size, size, generator=gen, dtype=torch.float64)  # texture
    pulse = torch.sin(2 * math.pi * 1.2 * torch.arange(t, dtype=torch.float64) / FPS)
    clip = base[:, None] + torch.tensor([0.3, 1.0, 0.5]).view(3, 1, 1, 1) * pulse.view(1, t, 1, 1) * face
    return clip + 0.5 * torch.randn(clip.shape, generator=gen, dtype=torch.float64)


def largest_tube(t: int, size: int) -> Tubes:
    """A tube of the largest size erasing allows (20 % of the area, 20 % of the frames)."""
    side = math.isqrt(math.floor(0.2 * size * size))
    one = lambda v: torch.tensor([v])  # noqa: E731
    return Tubes(t0=one(t // 3), t1=one(t // 3 + t // 5), y0=one(4), y1=one(4 + side), x0=one(6), x1=one(6 + side))


def normalised_untouched_stats(fill: str) -> tuple[float, float]:
    """Largest change of the per-channel mean (in clip-std units) and relative change of
    the per-channel std of the untouched pixels after ``standardize``, erasing the
    largest tube with ``fill`` versus not erasing."""
    from facepulse.models.normalize import normalize_clip

    clip = face_like_clip()
    t, size = clip.shape[1], clip.shape[2]
    tubes = largest_tube(t, size)
    keep = ~tubes.mask(t, size, size)[0, 0]  # (T, H, W) untouched voxels
    erased = erase_tubes(clip, tubes, fill=fill, generator=0)
    assert torch.equal(erased[:, keep], clip[:, keep]) and not torch.equal(erased, clip)
    before = normalize_clip(clip[None], "standardize")[0][:, keep]  # (3, N)
    after = normalize_clip(erased[None], "standardize")[0][:, keep]
    mean_shift = (after.mean(dim=1) - before.mean(dim=1)).abs().max().item()
    std_change = (after.std(dim=1) / before.std(dim=1) - 1).abs().max().item()
    return mean_shift, std_change


@pytest.mark.parametrize("fill,tol", [("mean", 1e-3), ("noise", 1e-3), ("channel_mean", 0.05)])
def test_erase_keeps_statistics_of_untouched_pixels_after_normalisation(fill, tol):
    """Per-clip standardisation of the erased clip leaves the untouched pixels' per-channel
    mean and standard deviation (hence the size of the pulse they carry) as without
    erasing: exactly up to the tube's own pulse for the pixel-wise fills, within a few
    percent for the clip's channel mean."""
    mean_shift, std_change = normalised_untouched_stats(fill)
    assert mean_shift < tol and std_change < tol, (mean_shift, std_change)


def test_erase_with_zeros_distorts_the_normalisation():
    """The old fill: zeros in raw 0..255 pixels shift and shrink the rest of the clip."""
    mean_shift, std_change = normalised_untouched_stats("zero")
    assert mean_shift > 0.05 and std_change > 0.03, (mean_shift, std_change)


@pytest.mark.parametrize("fill", ["mean", "noise", "zero"])
def test_erase_adds_no_edge_spikes_under_diff_normalisation(fill):
    """Under ``diff`` the pixel-wise fills keep every normalised frame difference within
    the clip's own range and the untouched pixels' differences (the pulse) at their
    size; zeros make spikes at the tube's first and last frame, which inflate the clip's
    std and shrink the pulse everywhere else many times."""
    from facepulse.models.normalize import normalize_clip

    clip = face_like_clip(seed=1)
    t, size = clip.shape[1], clip.shape[2]
    tubes = largest_tube(t, size)
    mask = tubes.mask(t, size, size)[0, 0]
    # differences that touch no erased voxel (neither frame t nor t + 1)
    keep = ~(mask | torch.cat([mask[1:], mask[-1:]], dim=0))
    erased = erase_tubes(clip, tubes, fill=fill, generator=0)
    before, after = normalize_clip(clip[None], "diff")[0], normalize_clip(erased[None], "diff")[0]
    spike = after.abs().max().item() / before.abs().max().item()
    pulse = (after[:, keep].std() / before[:, keep].std()).item()
    if fill == "zero":
        assert spike > 1.5 and pulse < 0.2, (spike, pulse)
    else:
        assert spike < 1.5 and abs(pulse - 1) < 0.05, (spike, pulse)


def test_random_erase_default_fill_is_the_pixel_mean():
    clip = face_like_clip(seed=2)
    out = RandomErase(p=1.0)(ClipSample(clip, FPS), 5).clip
    changed = (out != clip).any(dim=0)
    assert changed.any()
    expected = clip.mean(dim=1, keepdim=True).expand_as(clip)
    assert torch.allclose(out[:, changed], expected[:, changed])


# ------------------------------------------------------------- HR balancing by copies
def test_hr_balancing_adds_copies_and_keeps_the_real_speed_clips():
    """With augment.hr_resample an epoch holds every clip at real speed (its first T of
    the 2T loaded frames, labels unchanged) plus one resampled copy of each clip outside
    70-90 bpm; in-band clips get no copy."""
    from facepulse.augment import HRBalancedClips
    from facepulse.config import load_config
    from facepulse.train.data import ArrayClips, ClipDataModule

    t, n_src = 16, 32
    hrs = np.array([60.0, 80.0, 100.0, 50.0, 85.0])
    gen = np.random.default_rng(0)
    clips = gen.integers(0, 256, size=(len(hrs), n_src, 8, 8, 3), dtype=np.uint8)
    ppg = np.stack([analytic_ppg(h, n_src).numpy() for h in hrs])
    base = ArrayClips(clips, ppg, hrs, FPS, video_ids=[f"v{i}" for i in range(len(hrs))])
    cfg = load_config(None, ["augment.hr_resample=true", f"data.clip_len={t}", "optim.batch_size=2"])
    dm = ClipDataModule(cfg, train=base, val=base)
    assert dm.source_clip_len == n_src
    data = dm.train_clips()
    assert isinstance(data, HRBalancedClips)
    assert len(data) == len(hrs) + 3 and data.copies == [0, 2, 3]
    for i in range(len(hrs)):  # the originals, at real speed
        item = data[i]
        assert item["hr_bpm"] == hrs[i] and item["hr_speed"] == 1.0
        assert torch.equal(item["clip"], base[i]["clip"][:, :t])
        assert torch.equal(item["ppg"], base[i]["ppg"][:t])
    for k, (src, speed) in enumerate([(0, 2.0), (2, 0.5), (3, 2.0)]):  # the added copies
        item = data[len(hrs) + k]
        assert item["video_id"] == f"v{src}" and item["hr_speed"] == speed
        assert item["hr_bpm"] == pytest.approx(hrs[src] * speed)
        expected, _ = temporal_resample(base[src]["clip"], speed, t)
        assert torch.equal(item["clip"], expected)
    # one epoch of the training loader sees each original once and each copy once
    seen = [(vid, float(s)) for batch in dm.train_dataloader() for vid, s in zip(batch["video_id"], batch["hr_speed"])]
    assert sorted(seen) == sorted([(f"v{i}", 1.0) for i in range(len(hrs))] + [("v0", 2.0), ("v2", 0.5), ("v3", 2.0)])
