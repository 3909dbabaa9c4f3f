"""Codec realism (facepulse.augment.codec): real bitrates, frame-aligned labels, seeds, config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facepulse.augment import AUGMENTS, ClipSample, CodecAugment, CodecSettings, build_augment, codec_roundtrip
from facepulse.augment.codec import CODEC_ENCODERS, FRAME_OVERHEAD_BITS, REFERENCE_PIXELS, check_codec_available
from facepulse.config import load_config
from facepulse.errors import ConfigError, InputError
from facepulse.train.data import build_config_augment

REPO = Path(__file__).resolve().parents[1]
FPS = 30.0


def _available() -> list[str]:
    import av

    return [c for c, (enc, dec) in CODEC_ENCODERS.items() if enc in av.codecs_available and dec in av.codecs_available]


def _textured_clip(n: int = 96, size: int = 72, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8: a fine texture panning at 0.7 px/frame, a global pulse of
    brightness, mild sensor noise (hard enough that 12 kbps visibly starves a codec)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    frames = []
    for i in range(n):
        x = xx - 0.7 * i
        frame = 120 + 40 * np.sin(x / 3.0) * np.cos(yy / 2.5) + 30 * np.sin((x + yy) / 7)
        frame = frame + 10 * np.sin(2 * np.pi * 1.2 * i / FPS)
        rgb = np.stack([frame, 0.8 * frame, 0.6 * frame], -1) + rng.normal(0, 2, (size, size, 3))
        frames.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return np.stack(frames)


def _psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse)


def test_all_three_encoders_are_in_this_build() -> None:
    assert _available() == ["h264", "h265", "vp9"]


# ----------------------------------------------------------------- (a) bitrate is real
@pytest.mark.parametrize("codec", ["h264", "h265", "vp9"])
def test_encoded_size_follows_the_requested_bitrate(codec: str) -> None:
    clip = _textured_clip()
    low = codec_roundtrip(clip, FPS, CodecSettings(codec=codec, kbps=12.0))
    high = codec_roundtrip(clip, FPS, CodecSettings(codec=codec, kbps=250.0))
    for result, kbps in ((low, 12.0), (high, 250.0)):
        assert result.frames.shape == clip.shape and result.frames.dtype == np.uint8
        assert result.n_encoded == clip.shape[0]
        # the stream's measured size (all packets over the clip's duration) follows the
        # request within a factor 2 (VP9's realtime mode stops short of high rates)
        assert kbps / 2 <= result.kbps <= kbps * 1.5, (codec, kbps, result.kbps)
    assert high.kbps > 8 * low.kbps
    # the damage is measurable and follows the bitrate
    psnr_low, psnr_high = _psnr_db(low.frames, clip), _psnr_db(high.frames, clip)
    assert psnr_low < 34.5 and psnr_high > 36.5, (codec, psnr_low, psnr_high)
    assert psnr_high > psnr_low + 2.0


def test_crf_mode_and_frame_rate_change_the_stream() -> None:
    clip = _textured_clip()
    fine = codec_roundtrip(clip, FPS, CodecSettings(codec="h264", kbps=None, crf=15))
    coarse = codec_roundtrip(clip, FPS, CodecSettings(codec="h264", kbps=None, crf=40))
    assert fine.n_bits > 5 * coarse.n_bits
    assert _psnr_db(fine.frames, clip) > _psnr_db(coarse.frames, clip) + 5
    slow = codec_roundtrip(clip, FPS, CodecSettings(codec="h264", kbps=100.0, camera_fps=15.0))
    fast = codec_roundtrip(clip, FPS, CodecSettings(codec="h264", kbps=100.0, camera_fps=60.0))
    # the codec sees the camera's frames: 96 frames at 30 fps span 95/30 s
    assert (slow.n_encoded, fast.n_encoded) == (49, 191)  # 15 fps: 48 + a late last frame
    assert slow.frames.shape == fast.frames.shape == clip.shape
    small = codec_roundtrip(clip, FPS, CodecSettings(codec="h264", kbps=100.0, scale=0.5))
    assert small.encoded_size == (36, 36) and small.frames.shape == clip.shape


def test_bitrate_is_scaled_to_the_encoded_pixels() -> None:
    aug = CodecAugment(p=1.0, kbps_range=(100.0, 100.0), scale_range=(1.0, 1.0), fps_range=None)
    _, settings, _ = aug.draw(72, 72, FPS, generator=0)
    overhead_kbps = FRAME_OVERHEAD_BITS * FPS / 1000
    assert settings.kbps == pytest.approx((100.0 - overhead_kbps) * 72 * 72 / REFERENCE_PIXELS + overhead_kbps)
    aug2 = CodecAugment(p=1.0, kbps_range=(100.0, 100.0), scale_range=(2.0, 2.0), fps_range=None)
    _, settings2, _ = aug2.draw(72, 72, FPS, generator=0)
    assert settings2.kbps - overhead_kbps == pytest.approx(4 * (settings.kbps - overhead_kbps))
    full = CodecAugment(p=1.0, kbps_range=(100.0, 100.0), scale_range=(1.0, 1.0), fps_range=None)
    assert full.draw(480, 640, FPS, generator=0)[1].kbps == pytest.approx(100.0)


# --------------------------------------------------------- (b) labels stay aligned
def _moving_square(n: int = 40, size: int = 64, speed_px: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """A bright 8 px square whose left edge is at ``6 + speed_px * i`` in frame i (drawn
    with sub-pixel coverage); returns the frames and the square's centre x per frame."""
    xs = 6 + speed_px * np.arange(n)
    cols = np.arange(size, dtype=np.float64)
    frames = np.full((n, size, size, 3), 30.0)
    for i, x0 in enumerate(xs):
        cover = np.clip(np.minimum(cols + 1, x0 + 8) - np.maximum(cols, x0), 0, 1)  # (W,)
        frames[i, 28:36, :, :] += 190 * cover[None, :, None]
    return np.rint(frames).astype(np.uint8), xs + 4.0


def _centre_x(frames: np.ndarray) -> np.ndarray:
    weight = np.clip(frames.astype(np.float64).mean(-1) - 30.0, 0, None)  # above the background
    cols = np.arange(frames.shape[2])
    return (weight * cols).sum((1, 2)) / weight.sum((1, 2)) + 0.5


@pytest.mark.parametrize("camera_fps", [15.0, 24.0, 30.0, 60.0])
def test_label_stays_aligned_frame_by_frame(camera_fps: float) -> None:
    frames, centre = _moving_square()
    assert np.abs(_centre_x(frames) - centre).max() < 0.05  # the probe reads the label back
    result = codec_roundtrip(frames, FPS, CodecSettings(codec="h264", kbps=300.0, camera_fps=camera_fps))
    err = _centre_x(result.frames) - centre
    # one frame of lag would be 1.2 px everywhere
    assert np.abs(err).max() < 0.4, (camera_fps, np.round(err, 2))


def test_augment_keeps_the_ppg_and_moves_no_pulse() -> None:
    """Through the registered augmentation (as training uses it): brightness follows a
    known pulse; after any draw the brightness still peaks with the unchanged label."""
    n = 128
    t = np.arange(n) / FPS
    ppg = np.sin(2 * np.pi * 1.3 * t)
    yy, xx = np.mgrid[:48, :48]
    still = 110 + 40 * np.sin(xx / 3.0)[..., None] * np.cos(yy / 2.5)[..., None] * np.array([1.0, 0.8, 0.6])
    frames = np.clip(still[None] * (1 + 0.15 * ppg)[:, None, None, None], 0, 255)
    clip = torch.from_numpy(frames.transpose(3, 0, 1, 2).copy()).float()
    label = torch.from_numpy(ppg).float()
    # enough bits that the pulse survives (at the lowest default rates a codec may drop
    # it altogether: then there is nothing to align)
    aug = AUGMENTS.get("codec")(p=1.0, codecs=_available(), kbps_range=(3000.0, 10000.0))
    for seed in range(6):
        out = aug(ClipSample(clip=clip, fps=FPS, ppg=label, hr_bpm=78.0), seed)
        assert torch.equal(out.ppg, label) and out.hr_bpm == 78.0 and out.fps == FPS
        assert out.clip.shape == clip.shape
        brightness = out.clip.mean(dim=(0, 2, 3)).double().numpy()
        b = brightness - brightness.mean()
        lags = range(-3, 4)
        corr = [np.corrcoef(np.roll(b, lag)[3:-3], ppg[3:-3])[0, 1] for lag in lags]
        assert int(np.argmax(corr)) == 3 and corr[3] > 0.99, (aug.last_settings, np.round(corr, 3))


# ------------------------------------------------------------------ (c) reproducible
def test_same_seed_same_clip_other_seed_other_clip() -> None:
    clip = torch.from_numpy(_textured_clip(48, 40).transpose(3, 0, 1, 2).copy()).float()
    chain = build_augment([{"name": "codec", "p": 1.0, "codecs": _available(), "crf_p": 0.5}])
    sample = ClipSample(clip=clip, fps=FPS)
    a = chain(sample, 11).clip
    b = chain(sample, 11).clip
    assert torch.equal(a, b)
    draws = {CodecAugment(p=1.0, codecs=_available(), crf_p=0.5).draw(40, 40, FPS, s)[1] for s in range(6)}
    assert len(draws) == 6  # every seed draws another camera and codec
    c = chain(sample, 12).clip
    assert not torch.equal(a, c)


def test_probability_zero_leaves_the_clip_alone() -> None:
    clip = torch.rand(3, 16, 32, 32) * 255
    out = CodecAugment(p=0.0)(ClipSample(clip=clip, fps=FPS), 0)
    assert out.clip is clip


# ------------------------------------------------------------------- (d) config errors
def test_existing_configs_keep_codec_off_and_the_example_turns_it_on() -> None:
    for path in sorted((REPO / "configs").glob("*.yaml")):
        config = load_config(path, [])
        chain = build_config_augment(config.augment, config.data.clip_len)
        has_codec = chain is not None and any(isinstance(a, CodecAugment) for a in chain.augments)
        # the codec engine is opt-in: only the configs written to show it turn it on
        assert has_codec == (path.name == "physnet_realistic.yaml"), path.name
    assert load_config(None, []).augment.codec.p == 0.0


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("augment.codec.p=1.5", "augment.codec.p"),
        ("augment.codec.codecs=[av1]", "augment.codec.codecs"),
        ("augment.codec.kbps_range=fast", "augment.codec.kbps_range"),
        ("augment.codec.preset=placebo", "augment.codec.preset"),
        ("augment.codec.bitrate=3", "augment.codec.bitrate"),
    ],
)
def test_bad_values_are_one_line_config_errors(override: str, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert field in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("augment.codec.kbps_range=[500,100]", "augment.codec.kbps_range"),
        ("augment.codec.fps_range=[0,30]", "augment.codec.fps_range"),
        ("augment.codec.crf_range=[10,60]", "augment.codec.crf_range"),
        ("augment.codec.gamma_range=[0.1,1]", "augment.codec.gamma_range"),
    ],
)
def test_bad_ranges_fail_when_the_chain_is_built(override: str, field: str) -> None:
    config = load_config(None, ["augment.codec.p=0.5", override])
    with pytest.raises(ConfigError) as err:
        build_config_augment(config.augment, config.data.clip_len)
    assert str(err.value).startswith(field) and "\n" not in str(err.value)


def test_missing_encoder_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import av

    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"libx265"})
    with pytest.raises(ConfigError, match=r"augment\.codec\.codecs='h265': libx265 is missing"):
        CodecAugment(codecs=["h264", "h265"], field="augment.codec")
    assert check_codec_available("h264") == ("libx264", "h264")


def test_bad_settings_and_inputs() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        CodecSettings(kbps=100.0, crf=20)
    with pytest.raises(ConfigError, match="crf=70"):
        CodecSettings(kbps=None, crf=70)
    with pytest.raises(InputError, match=r"expected frames \(T, H, W, 3\)"):
        codec_roundtrip(np.zeros((4, 8, 8), np.uint8), FPS, CodecSettings())


def test_training_loader_serves_reencoded_clips_with_their_labels() -> None:
    """Through ClipDataModule (train / search / contrastive all load clips this way)."""
    from facepulse.train.data import ArrayClips, ClipDataModule

    clips = np.stack([_textured_clip(32, 32, seed=s) for s in range(4)])
    ppg = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    train = ArrayClips(clips, ppg, np.full(4, 75.0), FPS)
    config = load_config(None, ["augment.codec.p=1.0", "optim.batch_size=2", "data.clip_len=32"])
    batches = [next(iter(ClipDataModule(config, train=train, val=train).train_dataloader())) for _ in range(2)]
    raw = torch.from_numpy(clips.transpose(0, 4, 1, 2, 3)).float()
    for batch in batches:
        assert batch["clip"].shape == (2, 3, 32, 32, 32)
        for clip, label in zip(batch["clip"], batch["ppg"]):
            match = [i for i in range(4) if torch.equal(torch.from_numpy(ppg[i]), label)]
            assert len(match) == 1  # the label is the clip's own, untouched
            assert not torch.equal(clip, raw[match[0]])  # the clip was re-encoded
    assert torch.equal(batches[0]["clip"], batches[1]["clip"])  # (seed, epoch, clip) fixes the draw
