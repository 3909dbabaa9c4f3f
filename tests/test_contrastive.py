"""Frequency contrast (Gideon & Stent, ICCV 2021): resampling, triplet loss, memory bank,
saliency sampler, unsupervised training on synthetic videos, fine-tuning."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from _triplet_reference import loop_triplet
from facepulse.config import load_config
from facepulse.contrastive import (
    MemoryBank,
    MultiViewTripletLoss,
    SaliencySampler,
    build_distance,
    gaussian_kernel,
    max_view_len,
    resample_clips,
    resample_signals,
    sample_factors,
    sample_views,
    saliency_grid,
    saliency_sparsity,
    saliency_temporal,
    valid_length,
)
from facepulse.contrastive.module import (
    ContrastiveModule,
    check_config,
    common_power,
    frequency_contrast,
    step_generator,
    window_offsets,
)
from facepulse.errors import ConfigError, InputError
from facepulse.losses import irrelevant_power_ratio, max_cross_correlation, psd_mse
from facepulse.models import build_model

torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]
FPS = 30.0
W = 60  # 2 s views: with n_fft = W the FFT bins are 0.5 Hz apart (30 bpm)
BAND_BINS = 7  # bins 1.0, 1.5, ..., 4.0 Hz lie in 40-250 bpm (0.67-4.17 Hz)


def tone(freq_hz: float, n: int = W, phase: float = 0.0, fps: float = FPS) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / fps
    return torch.sin(2 * math.pi * freq_hz * t + phase)


def lagged(freq_hz: float, lag: int) -> torch.Tensor:
    """The tone of :func:`tone` ``lag`` samples later (a whole number of samples, so that
    the circular cross-correlation with n_fft = W finds it exactly)."""
    return tone(freq_hz, phase=2 * math.pi * freq_hz * lag / FPS)


def views(*signals: torch.Tensor) -> torch.Tensor:
    """(1, N, W) views of one sample."""
    return torch.stack(signals)[None]


def peak_hz(x: np.ndarray, fps: float, n_fft: int = 1 << 15) -> float:
    spec = np.abs(np.fft.rfft(x - x.mean(), n_fft))
    return float(np.fft.rfftfreq(n_fft, 1 / fps)[spec.argmax()])


# ------------------------------------------------------------------------ resampling
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resampled_clip_carries_pulse_at_f_times_r(mode):
    t_len, f_hz = 300, 1.2
    factors = torch.tensor([1.25, 1.33, 1.5, 1.41])
    pixels = torch.rand(1, 3, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 100
    clip = pixels + 5 * tone(f_hz, t_len).float()[None, None, :, None, None]  # pulse in every pixel
    out = resample_clips(clip.expand(4, -1, -1, -1, -1), factors, mode=mode)
    assert out.shape == (4, 3, t_len, 4, 4)
    n_real = valid_length(t_len, factors)
    np.testing.assert_array_equal(n_real.numpy(), np.floor((t_len - 1) / factors.numpy() + 1e-6).astype(int) + 1)
    for b, r in enumerate(factors.tolist()):
        trace = out[b, 1, : n_real[b]].mean(dim=(1, 2)).double().numpy()
        assert peak_hz(trace, FPS) == pytest.approx(f_hz * r, abs=0.01)
        assert torch.all(out[b, :, n_real[b] :] == 0)  # zero padding past the real frames
    edge = resample_clips(clip.expand(4, -1, -1, -1, -1), factors, pad="edge", mode=mode)
    torch.testing.assert_close(edge[:, :, -1], clip[:, :, -1].expand(4, -1, -1, -1))  # repeats the last frame


def test_resample_signals_exact_positions():
    x = torch.arange(10, dtype=torch.float64)[None].repeat(3, 1)
    out = resample_signals(x, torch.tensor([1.0, 2.0, 0.5]), pad="zeros")
    np.testing.assert_allclose(out[0].numpy(), np.arange(10))  # identity
    np.testing.assert_allclose(out[1].numpy(), [0, 2, 4, 6, 8, 0, 0, 0, 0, 0])  # 2x faster, then padding
    np.testing.assert_allclose(out[2].numpy(), np.arange(10) / 2)  # linear interpolation in between
    short = resample_signals(x[:1], 0.5, pad="edge", valid_len=torch.tensor([3]))
    np.testing.assert_allclose(short[0].numpy(), [0, 0.5, 1, 1.5, 2, 2, 2, 2, 2, 2])  # never past sample 2
    with pytest.raises(InputError, match="one value per sample"):
        resample_signals(x, torch.tensor([1.0, 2.0]))
    with pytest.raises(ConfigError, match="resampling mode 'cubic' unknown"):
        resample_clips(torch.zeros(1, 3, 4, 2, 2), 1.5, mode="cubic")


def test_sample_factors_per_sample_and_views():
    f = sample_factors(1000, 1.25, 1.5, generator=torch.Generator().manual_seed(1))
    assert f.shape == (1000,) and f.min() >= 1.25 and f.max() <= 1.5 and f.std() > 0.05  # one per sample
    with pytest.raises(ConfigError, match="1 < resample_min <= resample_max"):
        sample_factors(4, 0.8, 1.5)
    x = torch.arange(200, dtype=torch.float64).reshape(2, 100)
    valid = torch.tensor([100, 40])
    v = sample_views(x, 16, 30, valid, generator=torch.Generator().manual_seed(2))
    assert v.shape == (2, 16, 30)
    starts = v[:, :, 0] - x[:, :1]
    np.testing.assert_array_equal((v - v[:, :, :1]).numpy(), np.broadcast_to(np.arange(30.0), (2, 16, 30)))
    assert starts[1].max() <= 40 - 30 and starts[0].max() <= 70 and len(set(starts[0].tolist())) > 4
    with pytest.raises(ConfigError, match="view_len 50 is longer than the usable signal \\(40 samples\\)"):
        sample_views(x, 2, 50, valid)
    assert max_view_len(128, 1.5) == 85


class ChannelMean(nn.Module):
    """A 'backbone' whose pulse is the clip's mean first channel: lets the branches be checked exactly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0].mean(dim=(2, 3))


def test_frequency_contrast_branches():
    t_len, f_hz = 256, 1.5
    clip = (100 + 20 * tone(f_hz, t_len).float())[None, None, :, None, None].expand(3, 3, t_len, 2, 2)
    factor = torch.tensor([1.25, 1.4, 1.5])
    br = frequency_contrast(ChannelMean(), clip, factor, normalize="raw")
    n_neg = int(valid_length(t_len, torch.tensor([1.5]))[0])
    assert br.anchor.shape == (3, t_len) and br.negative.shape == (3, n_neg)  # cut, never padded
    for b, r in enumerate(factor.tolist()):
        assert peak_hz(br.negative[b].double().numpy(), FPS) == pytest.approx(f_hz * r, abs=0.01)
        n_pos = int(br.positive_len[b])
        assert n_pos == min(t_len, math.floor((n_neg - 1) * r + 1e-4) + 1)
        # the positive is the negative slowed back down: it matches the anchor
        err = (br.positive[b, :n_pos] - br.anchor[b, :n_pos]).abs().max().item()
        assert err < 0.06 * br.anchor[b].abs().max().item()  # nearest-frame timing jitter only


# --------------------------------------------------------------------------- distances
def test_distances_on_analytic_signals():
    a, b = tone(1.5), tone(2.5)  # bins 3 and 5: one-hot normalised spectra
    psd = build_distance("psd_mse", n_fft=W)
    l1 = build_distance("l1", n_fft=W)
    mcc = build_distance("mcc", n_fft=W)
    fps = torch.tensor([FPS], dtype=torch.float64)
    va, vb = views(a, lagged(1.5, 3)), views(b, a)
    for dist, same, other in ((psd, 0.0, 2 / BAND_BINS), (l1, 0.0, 2 / BAND_BINS), (mcc, -1.0, 0.0)):
        fa, fb = dist.embed(va, fps), dist.embed(vb, fps)
        n_bins = dist.band_bins(va, fps)
        assert int(n_bins[0]) == BAND_BINS
        d = dist.pairwise(fa, fb, fps, n_bins)[0]  # rows: a, a shifted; columns: b, a
        np.testing.assert_allclose(d[:, 1].numpy(), [same, same], atol=1e-9)  # identical / phase-shifted
        np.testing.assert_allclose(d[:, 0].numpy(), [other, other], atol=1e-9)  # different frequency


def test_psd_distances_with_noise_match_numpy():
    noise = torch.randn(W, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = noise.numpy() - noise.numpy().mean()
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(W, 1 / FPS)
    band = (freqs >= 40 / 60) & (freqs <= 250 / 60)
    p = np.where(band, power, 0) / power[band].sum()  # band-normalised noise spectrum
    onehot = np.zeros_like(p)
    onehot[3] = 1.0  # 1.5 Hz
    fps = torch.tensor([FPS], dtype=torch.float64)
    for name, expected in (
        ("psd_mse", ((onehot - p) ** 2).sum() / BAND_BINS),
        ("l1", np.abs(onehot - p).sum() / BAND_BINS),
    ):
        dist = build_distance(name, n_fft=W)
        va, vn = views(tone(1.5)), views(noise)
        got = dist.pairwise(dist.embed(va, fps), dist.embed(vn, fps), fps, dist.band_bins(va, fps))
        assert got.item() == pytest.approx(expected, rel=1e-9)
    assert 0 < psd_mse(views(tone(1.5))[0], views(noise)[0], FPS, n_fft=W).item() < 2 / BAND_BINS


def test_triplet_loss_correct_positive_beats_swapped():
    anchor = views(tone(1.5), lagged(1.5, 2))
    same = views(lagged(1.5, 7), lagged(1.5, 4))  # the positive: same pulse, other phases
    shifted = views(tone(2.5), lagged(2.5, 1))  # the negative: pulse moved to another bin
    for name, value in (("psd_mse", 2 / BAND_BINS), ("l1", 2 / BAND_BINS), ("mcc", 1.0)):
        loss = MultiViewTripletLoss(name, n_fft=W)
        right = loss(anchor, same, shifted, FPS)
        swapped = loss(anchor, shifted, same, FPS)
        assert right.item() == pytest.approx(-value, abs=1e-9)
        assert swapped.item() == pytest.approx(value, abs=1e-9)
    with pytest.raises(InputError, match="views differ in batch or length"):
        MultiViewTripletLoss()(anchor, same[:, :, :30], shifted, FPS)


@pytest.mark.parametrize("name", ["psd_mse", "l1", "mcc"])
def test_triplet_vectorised_matches_loop_and_is_per_sample(name):
    g = torch.Generator().manual_seed(4)
    a, p, n = (torch.randn(3, 4, 64, generator=g, dtype=torch.float64) for _ in range(3))
    loss = MultiViewTripletLoss(name, reduction="none")
    got = loss(a, p, n, FPS)
    torch.testing.assert_close(got, loop_triplet(name, a, p, n, FPS), rtol=1e-9, atol=1e-12)
    # spectra are normalised per sample: scaling / offsetting one sample changes nothing
    scaled = a.clone()
    scaled[0] = 1000 * scaled[0] + 7
    torch.testing.assert_close(loss(scaled, p, n, FPS), got, rtol=1e-7, atol=1e-10)


def test_triplet_gradients_finite_on_constant_views():
    a = torch.zeros(2, 3, 64, requires_grad=True)
    p = torch.randn(2, 3, 64)
    for name in ("psd_mse", "l1", "mcc"):
        loss = MultiViewTripletLoss(name)(a, p, p.flip(-1), FPS)
        (grad,) = torch.autograd.grad(loss, a)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


# ------------------------------------------------------ shared spectral losses (paper)
def test_mcc_and_ipr_match_the_paper_definitions():
    """Gideon & Stent's MCC and IPR written out independently in numpy, on random signals."""
    rng = np.random.default_rng(6)
    n, lo, hi = 150, 40.0, 250.0
    x = np.sin(2 * np.pi * 1.3 * np.arange(n) / FPS) + 0.7 * rng.standard_normal(n)
    y = np.roll(x, 5) + 0.5 * rng.standard_normal(n) + 0.01 * np.arange(n)  # lagged, noisy, drifting
    n_fft = 2 * n  # linear (not circular) correlation, as the authors pad
    xc, yc = x - x.mean(), y - y.mean()
    cross = np.fft.rfft(xc, n_fft) * np.conj(np.fft.rfft(yc, n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1 / FPS)
    band = (freqs >= lo / 60) & (freqs <= hi / 60)
    in_band_share = np.abs(cross[band]).sum() / np.abs(cross).sum()
    cc = np.fft.irfft(np.where(band, cross, 0), n_fft)  # band-passed cross-correlation over lags
    mcc = cc.max() / np.sqrt((xc**2).sum() * (yc**2).sum()) / in_band_share
    got = max_cross_correlation(torch.tensor(x)[None], torch.tensor(y)[None], FPS, lo, hi, n_fft=n_fft)
    assert got.item() == pytest.approx(mcc, rel=1e-9)
    assert 0.5 < mcc < 1.0
    power = np.abs(np.fft.rfft(yc, n_fft)) ** 2
    ipr = power[~band].sum() / power.sum()  # power outside the HR band / total power
    got = irrelevant_power_ratio(torch.tensor(y)[None], FPS, lo, hi, n_fft=n_fft)
    assert got.item() == pytest.approx(ipr, rel=1e-9)


# -------------------------------------------------------------------------- memory bank
def test_memory_bank_fifo_and_negatives():
    bank = MemoryBank(5)
    assert len(bank) == 0 and bank.spectra().numel() == 0
    bank.push(torch.arange(3.0)[:, None].expand(3, 4), FPS)
    assert len(bank) == 3
    bank.push(torch.arange(3.0, 7.0)[:, None].expand(4, 4), FPS)
    assert len(bank) == 5
    assert sorted(bank.spectra()[:, 0].tolist()) == [2, 3, 4, 5, 6]  # the two oldest were dropped
    with pytest.raises(InputError, match="spectra have 3 bins, the queue holds 4"):
        bank.push(torch.zeros(1, 3), FPS)
    with pytest.raises(InputError, match="frame rate 25 differs"):
        bank.push(torch.zeros(1, 4), 25.0)
    with pytest.raises(InputError, match="different frame rates"):
        bank.push(torch.zeros(2, 4), torch.tensor([30.0, 25.0]))

    # queued spectra unlike the anchor's are extra negatives: they lower the loss
    loss = MultiViewTripletLoss("psd_mse", n_fft=W, bank_weight=0.5, reduction="none")
    anchor = views(tone(1.5), tone(1.5, phase=1.0))
    other = MultiViewTripletLoss("psd_mse", n_fft=W).spectra(views(tone(2.5), tone(3.5)), FPS)
    assert other.shape == (2, W // 2 + 1)
    q = MemoryBank(8)
    q.push(other, FPS)
    terms = loss.terms(anchor, anchor, anchor, FPS, bank=q.spectra())
    assert terms.bank.item() == pytest.approx(2 / BAND_BINS)
    assert terms.loss.item() == pytest.approx(-0.5 * 2 / BAND_BINS)
    with pytest.raises(ConfigError, match="memory_bank needs a spectral distance"):
        MultiViewTripletLoss("mcc").terms(anchor, anchor, anchor, FPS, bank=q.spectra())


# ----------------------------------------------------------------------------- saliency
def test_gaussian_kernel_fwhm():
    k = gaussian_kernel(21, fwhm=6.0)
    assert k[10, 10] == 1.0 and k.shape == (21, 21)
    assert k[10, 13].item() == pytest.approx(0.5)  # half maximum at fwhm / 2 from the centre
    torch.testing.assert_close(k, k.T)


def test_uniform_saliency_is_identity_and_peak_zooms():
    g = 8
    uniform = torch.full((1, g, g), 1.0 / g**2)
    grid = saliency_grid(uniform, g, gaussian_kernel(2 * g + 1, 0.4 * g), (16, 16))
    identity = torch.nn.functional.affine_grid(torch.eye(2, 3)[None], (1, 1, 16, 16), align_corners=True)
    torch.testing.assert_close(grid, identity, atol=1e-5, rtol=0)
    peaked = torch.full((1, g, g), 1e-4)
    peaked[0, 1, 1] = 1.0  # salient region near the top-left corner
    peaked = peaked / peaked.sum()
    zoom = saliency_grid(peaked, g, gaussian_kernel(2 * g + 1, 0.4 * g), (16, 16))
    in_quadrant = ((zoom[..., 0] < 0) & (zoom[..., 1] < 0)).float().mean().item()
    assert in_quadrant > 0.5  # most output pixels now sample the salient quarter (vs 1/4)
    assert zoom.abs().max() <= 1.0


def test_saliency_sampler_starts_as_identity_and_learns():
    clips = torch.rand(2, 3, 5, 16, 16, generator=torch.Generator().manual_seed(5))
    sampler = SaliencySampler(grid_size=8, input_size=16)
    sampled, sal = sampler(clips)
    assert sampled.shape == clips.shape and sal.shape == (2, 5, 8, 8)
    torch.testing.assert_close(sampled, clips, atol=1e-4, rtol=0)  # zero-initialised head: uniform saliency
    torch.testing.assert_close(sal.sum(dim=(2, 3)), torch.ones(2, 5))
    assert saliency_sparsity(sal).item() == pytest.approx(1.0)
    assert saliency_temporal(sal).item() == pytest.approx(0.0, abs=1e-12)
    (sampled[:, :, :, :4, :4].mean() + saliency_sparsity(sal)).backward()
    assert sampler.net.head.weight.grad.abs().sum() > 0  # gradients reach the saliency network


def test_saliency_losses_hand_computed():
    onehot = torch.zeros(1, 2, 4, 4)
    onehot[0, 0, 0, 0] = 1.0
    onehot[0, 1, 3, 3] = 1.0
    assert saliency_sparsity(onehot).item() == pytest.approx(0.0, abs=1e-9)
    # two cells change by 1 between the two frames: 2 / 16 per cell
    assert saliency_temporal(onehot).item() == pytest.approx(2 / 16)


def test_saliency_model_registered():
    model = build_model("saliency", backbone="physnet", backbone_params={"base_channels": 2}, grid_size=4, input_size=8)
    clips = torch.randn(2, 3, 16, 16, 16)
    assert model(clips).shape == (2, 16)
    pulse, sal = model(clips, return_saliency=True)
    assert pulse.shape == (2, 16) and sal.shape == (2, 16, 4, 4)
    with pytest.raises(ConfigError, match="model 'saliency'"):
        build_model("saliency", bogus=1)


# ------------------------------------------------------------------------------ config
def test_config_checks_and_shipped_configs():
    with pytest.raises(ConfigError, match="contrastive.view_len 100 > 85"):
        check_config(load_config(None, ["kind=contrastive", "data.clip_len=128", "contrastive.view_len=100"]))
    with pytest.raises(ConfigError, match="memory_bank needs distance psd_mse or l1"):
        check_config(load_config(None, ["contrastive.memory_bank=64", "contrastive.distance=mcc"]))
    with pytest.raises(ConfigError, match="contrastive.distance"):
        load_config(None, ["contrastive.distance=cosine"])
    for name in ("contrastive_synthetic.yaml", "contrastive_ubfc.yaml"):
        cfg = load_config(REPO / "configs" / name)
        assert cfg.kind == "contrastive" and cfg.data.labels is False
        check_config(cfg)
        module = ContrastiveModule(cfg)
        assert module.monitor == "val_ipr"


def test_module_step_with_memory_bank_and_saliency():
    config = load_config(None, [
        "kind=contrastive", "data.clip_len=32", "data.size=8", "model.name=physnet_interp",
        "model.params={base_channels: 2}", "contrastive.view_len=16", "contrastive.n_views=3",
        "contrastive.memory_bank=20", "contrastive.saliency=true", "contrastive.saliency_params={grid_size: 4, input_size: 8}",
        "contrastive.saliency_sparsity=0.1", "contrastive.saliency_temporal=0.1", "contrastive.ipr_weight=0.01",
    ])
    module = ContrastiveModule(config)
    batch = {"clip": torch.rand(4, 3, 32, 8, 8, generator=torch.Generator().manual_seed(7)) * 255, "fps": FPS}
    first = module.step_losses(batch, update_bank=True)
    assert len(module.bank) == 12 and first["bank"].item() == 0.0  # 4 clips x 3 views queued after the loss
    out = module.step_losses(batch, update_bank=True)
    assert len(module.bank) == 20 and out["bank"].item() > 0  # full queue; earlier spectra used as negatives
    assert set(out) == {"loss", "positive", "negative", "bank", "ipr", "sparsity", "temporal"}
    expected = out["positive"] - out["negative"] - out["bank"] + 0.01 * out["ipr"] + 0.1 * (out["sparsity"] + out["temporal"])
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    out["loss"].backward()
    assert module.model.sampler.net.head.weight.grad.abs().sum() > 0
    assert all(k.startswith(("model.sampler.", "model.backbone.")) for k in module.state_dict())  # no queue in checkpoints


# ------------------------------------------------------ issue 14: clip-position collapse
class ClipLocked(nn.Module):
    """A 'backbone' that ignores the video: ``k`` cycles per input clip, locked to its edges
    (what the UBFC model had learned: the same waveform at every clip position)."""

    def __init__(self, cycles: float = 8.0) -> None:
        super().__init__()
        self.cycles = cycles

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.arange(x.shape[2], dtype=x.dtype) / x.shape[2]
        return torch.sin(2 * math.pi * self.cycles * t).expand(x.shape[0], -1) + 0 * x.sum(dim=(1, 3, 4))


def pulse_batch(n: int = 8, t_len: int = 128, seed: int = 0) -> torch.Tensor:
    """(n, 3, t_len, 4, 4) clips whose pixels carry a tone of 60-150 bpm, random phase, plus noise."""
    g = torch.Generator().manual_seed(seed)
    hz = torch.linspace(1.0, 2.5, n)
    phase = 2 * math.pi * torch.rand(n, generator=g)
    t = torch.arange(t_len) / FPS
    pulse = torch.sin(2 * math.pi * hz[:, None] * t + phase[:, None])
    return 100 + 5 * pulse[:, None, :, None, None] + torch.randn(n, 3, t_len, 4, 4, generator=g)


def contrast_loss(backbone: nn.Module, branches: str, clips: torch.Tensor, common: float = 0.0) -> dict:
    config = load_config(None, ["kind=contrastive", "data.clip_len=128", "contrastive.n_views=8",
                                f"contrastive.branches={branches}", f"contrastive.common_weight={common}"])
    module = ContrastiveModule(config)
    module.model = backbone
    with torch.no_grad():
        return {k: float(v) for k, v in module.step_losses({"clip": clips, "fps": FPS}, generator=step_generator(0, 0, 3)).items()}


def test_shorter_negative_rewards_an_output_locked_to_the_clip():
    """Issue 14's collapse: with the paper's shorter negative (L = 85 of 128 frames), an
    output with a fixed number of cycles per clip moves to f * 128 / 85 in the negative, just
    as a pulse moves to f * r: the triplet loss scores it like a perfect pulse reader. With
    equal branch lengths it is penalised (anchor = negative), and the common-power term
    sees it whatever the branches."""
    clips = pulse_batch()
    locked_cut = contrast_loss(ClipLocked(), "cut", clips)
    reader_cut = contrast_loss(ChannelMean(), "cut", clips)
    locked_equal = contrast_loss(ClipLocked(), "equal", clips)
    reader_equal = contrast_loss(ChannelMean(), "equal", clips)
    print(f"triplet loss cut: locked {locked_cut['loss']:.4f} reader {reader_cut['loss']:.4f}; "
          f"equal: locked {locked_equal['loss']:.4f} reader {reader_equal['loss']:.4f}")
    assert reader_cut["loss"] < 0 and reader_equal["loss"] < 0  # the pulse reader is rewarded either way
    assert locked_cut["loss"] < 0.5 * reader_cut["loss"]  # ... and so is the collapse, with a shorter negative
    print({k: round(v, 6) for k, v in locked_equal.items()})
    # equal lengths: the negative is the anchor again (up to where the views fall)
    assert locked_equal["negative"] < 0.1 * locked_equal["positive"] and locked_equal["loss"] > 0
    assert locked_equal["loss"] > reader_equal["loss"] + 0.5 * abs(reader_equal["loss"])
    # common power: 1 for the locked output, about 1 / B for pulses of different videos
    locked_common = contrast_loss(ClipLocked(), "equal", clips, common=1.0)["common"]
    reader_common = contrast_loss(ChannelMean(), "equal", clips, common=1.0)["common"]
    assert locked_common == pytest.approx(1.0, abs=1e-4) and reader_common < 3.0 / clips.shape[0]


def test_equal_branches_window_and_common_power():
    t_len = 128
    clip = (100 + 20 * tone(1.5, t_len).float())[None, None, :, None, None].expand(3, 3, t_len, 2, 2)
    factor = torch.tensor([1.25, 1.4, 1.5])
    n_neg = max_view_len(t_len, 1.5)
    offset = window_offsets(t_len, n_neg, factor, torch.Generator().manual_seed(0))
    assert bool(((offset + (n_neg - 1) * factor) <= t_len - 1 + 1e-4).all()) and offset.dtype == torch.long
    big = window_offsets(t_len, n_neg, torch.full((2000,), 1.25), torch.Generator().manual_seed(1))
    assert int(big.min()) == 0 and int(big.max()) == math.floor(t_len - 1 - (n_neg - 1) * 1.25 + 1e-4)  # every start
    br = frequency_contrast(ChannelMean(), clip, factor, normalize="raw", offset=offset)
    assert br.anchor.shape == br.negative.shape == br.positive.shape == (3, n_neg)
    assert bool((br.positive_len == n_neg).all())  # the positive covers the whole anchor window
    for b in range(3):
        o = int(offset[b])
        torch.testing.assert_close(br.anchor[b], clip[b, 0, o : o + n_neg].mean(dim=(1, 2)) / 255)
        err = (br.positive[b] - br.anchor[b]).abs().max().item()
        assert err < 0.06 * br.anchor[b].abs().max().item()
    with pytest.raises(InputError, match="one offset per clip"):
        frequency_contrast(ChannelMean(), clip, factor, normalize="raw", offset=offset[:2])
    z = torch.randn(4, 50, generator=torch.Generator().manual_seed(3))
    assert common_power(z.expand(6, 4, 50).reshape(24, 50)[:1].expand(5, -1)).item() == pytest.approx(1.0, abs=1e-5)
    assert common_power(torch.stack([z[0], -z[0]])).item() == pytest.approx(0.0, abs=1e-6)
    assert common_power(3 * z + 7).item() == pytest.approx(common_power(z).item(), rel=1e-4)  # scale and offset free


# -------------------------------------------------------------------------- training
def face_clips(seeds, *, labels: bool, clip_len: int = 128, stride: int = 32, size: int = 8):
    """ArrayClips of synthetic face crops: each video's (still) face box cut out and shrunk
    to ``size`` px, with a strong clean pulse so that a few minutes of CPU suffice. Without
    ``labels`` the clips carry NaN HR and zero PPG: any use of them in training would show."""
    import cv2

    from facepulse.synth import SynthParams, generate_video, sample_params
    from facepulse.synth.params import CameraParams
    from facepulse.train.data import ArrayClips

    base = SynthParams(duration_s=12.0, camera=CameraParams(width=64, height=64, fps=FPS))
    clips, ppg, hr, ids = [], [], [], []
    for seed in seeds:
        v = generate_video(sample_params("still", seed=seed, base=base, overrides={"optics.pulse_amplitude": 0.02}), seed)
        x0, y0, x1, y1 = np.round(v.truth.face_boxes_xyxy.mean(axis=0)).astype(int).clip(0, 64)
        frames = np.stack([cv2.resize(f[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA) for f in v.frames])
        for s in range(0, len(frames) - clip_len + 1, stride):
            clips.append(frames[s : s + clip_len])
            ppg.append(v.ppg[s : s + clip_len] if labels else np.zeros(clip_len))
            hr.append(v.hr_bpm[s : s + clip_len].mean() if labels else np.nan)
            ids.append(f"v{seed}")
    return ArrayClips(np.stack(clips), np.stack(ppg), np.array(hr), FPS, ids)


def clip_mae_bpm(model: nn.Module, data) -> float:
    from facepulse.train.module import clip_hr_bpm

    clips = torch.stack([data[i]["clip"] for i in range(len(data))])
    with torch.no_grad():
        pulse = model.eval()(clips)
    return float((clip_hr_bpm(pulse, FPS) - torch.as_tensor(data.hr_bpm, dtype=torch.float32)).abs().mean())


@pytest.mark.slow
def test_unlabelled_training_learns_pulse_and_loads_like_supervised(tmp_path, monkeypatch):
    from facepulse.models.inference import PulseModel, load_checkpoint_model, load_model
    from facepulse.train.data import ClipDataModule
    from facepulse.train.module import SupervisedModule
    from facepulse.train.runner import run_experiment

    monkeypatch.chdir(tmp_path)
    config = load_config(
        REPO / "configs" / "contrastive_synthetic.yaml",
        ["name=unit", "out_dir=runs", "optim.max_steps=160", "optim.max_epochs=100", "trainer.early_stopping_patience=null"],
    )
    train = face_clips(range(12), labels=False)
    val = face_clips([50, 51], labels=False, stride=64)
    test = face_clips(range(100, 106), labels=True, stride=64)
    untrained = PulseModel(ContrastiveModule(config).model, config.model.normalize)
    mae_untrained = clip_mae_bpm(untrained, test)

    result = run_experiment(config, resume=False, datamodule=ClipDataModule(config, train=train, val=val), progress=False)
    assert result.monitor == "val_ipr" and result.best_ckpt is not None
    model, info = load_checkpoint_model(result.best_ckpt)  # the supervised models' loading path
    assert info.kind == "contrastive" and info.clip_len == 128
    mae_trained = clip_mae_bpm(model, test)
    print(f"held-out clip MAE: untrained {mae_untrained:.1f} bpm, trained without labels {mae_trained:.1f} bpm")
    assert mae_untrained > 20.0
    assert mae_trained < 8.0 and mae_trained < 0.3 * mae_untrained

    runner = load_model(result.best_ckpt)  # what predict / evaluate use
    clips = np.stack([test[i]["clip"].numpy() for i in range(4)])
    np.testing.assert_allclose(runner(clips), model(torch.from_numpy(clips)).detach().numpy(), rtol=1e-5, atol=1e-5)

    # fine-tuning with labels starts from the contrastive weights
    tune = load_config(None, ["kind=supervised", "model.name=physnet_interp", "model.params={base_channels: 4}",
                              f"model.init_from={result.best_ckpt}"])
    supervised = SupervisedModule(tune)
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(supervised.model.state_dict()[key], value)
    assert float(irrelevant_power_ratio(model(torch.from_numpy(clips)), FPS).mean()) < 0.2


# ------------------------------------------------------------------ resume, export
CONTRASTIVE_TINY = [
    "kind=contrastive", "out_dir=runs", "data.clip_len=32", "data.size=8", "model.name=physnet_interp",
    "model.params={base_channels: 2}", "contrastive.view_len=16", "contrastive.n_views=2",
    "contrastive.memory_bank=16", "optim.batch_size=4", "optim.max_epochs=3",
    "trainer.early_stopping_patience=null", "trainer.log_every_n_steps=1",
]

CONTRASTIVE_KILL_SCRIPT = """
import os, signal, sys
import torch
import lightning as L
from _clips import noise_clips
from facepulse.config import load_config
from facepulse.train.data import ClipDataModule
from facepulse.train.runner import run_experiment

torch.set_num_threads(1)


class KillInSecondEpoch(L.Callback):
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, like a crash or an OOM kill


cfg = load_config(None, {overrides!r})
dm = ClipDataModule(cfg, train=noise_clips(12, 32, 8, seed=1), val=noise_clips(4, 32, 8, seed=2))
run_experiment(cfg, datamodule=dm, callbacks=[KillInSecondEpoch()] if sys.argv[1:] == ["kill"] else [], progress=False)
"""


def run_python(code: str, cwd: Path, *args: str):
    import os
    import subprocess
    import sys

    script = cwd / "script.py"
    script.write_text(code)
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=600)


def test_contrastive_resume_after_sigkill_is_bit_for_bit(tmp_path):
    """A contrastive run killed by SIGKILL in its second epoch and resumed from last.ckpt
    ends with exactly the weights (and memory bank) of an uninterrupted run: the factors
    and views come from (seed, rank, step)-seeded generators, the bank is in the checkpoint."""
    straight = run_python(CONTRASTIVE_KILL_SCRIPT.format(overrides=["name=straight", *CONTRASTIVE_TINY]), tmp_path)
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed_code = CONTRASTIVE_KILL_SCRIPT.format(overrides=["name=killed", *CONTRASTIVE_TINY])
    proc = run_python(killed_code, tmp_path, "kill")
    assert proc.returncode == -9, proc.stderr[-2000:]
    last = tmp_path / "runs" / "killed" / "last.ckpt"
    epoch0 = torch.load(last, weights_only=True)
    assert epoch0["epoch"] == 0 and epoch0["facepulse_contrastive"]["bank"]["count"] > 0  # the bank is saved
    resumed = run_python(killed_code, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    a = torch.load(tmp_path / "runs" / "straight" / "last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["global_step"] == b["global_step"] == 9
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key  # bit for bit
    bank_a, bank_b = a["facepulse_contrastive"]["bank"], b["facepulse_contrastive"]["bank"]
    assert torch.equal(bank_a["queue"], bank_b["queue"]) and bank_a["ptr"] == bank_b["ptr"]
    # the resumed epochs did train
    key = next(k for k in a["state_dict"] if k.endswith("weight"))
    assert not torch.equal(b["state_dict"][key], epoch0["state_dict"][key])


def test_memory_bank_state_round_trips():
    bank = MemoryBank(5)
    bank.push(torch.rand(3, 7), 30.0)
    bank.push(torch.rand(4, 7), 30.0)
    again = MemoryBank(5)
    again.load_state(bank.state())
    assert torch.equal(again.spectra(), bank.spectra()) and (again.ptr, again.count) == (bank.ptr, bank.count)
    new = torch.rand(2, 7)
    bank.push(new, 30.0)
    again.push(new, 30.0)
    assert torch.equal(again.spectra(), bank.spectra())
    with pytest.raises(InputError, match="holds 5 spectra"):
        MemoryBank(6).load_state(bank.state())


def test_short_saliency_run_writes_best_and_exports_to_onnx(tmp_path, monkeypatch):
    """A contrastive run whose max_steps ends inside its first epoch still validates and
    writes best.ckpt; its saliency-sampler model exports to ONNX (adaptive pooling used to
    fail) and ONNX Runtime matches PyTorch, with a non-uniform saliency map."""
    from _clips import noise_clips
    from facepulse.models.inference import compare_onnx, export_onnx, load_model
    from facepulse.train.data import ClipDataModule
    from facepulse.train.runner import run_experiment

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, [
        "name=short", *CONTRASTIVE_TINY, "optim.max_steps=2", "contrastive.saliency=true",
        "contrastive.saliency_params={grid_size: 4, input_size: 6, channels: 4}",
    ])
    dm = ClipDataModule(cfg, train=noise_clips(12, 32, 8, seed=1), val=noise_clips(4, 32, 8, seed=2))
    result = run_experiment(cfg, datamodule=dm, progress=False)
    assert result.trainer.global_step == 2  # 3 batches an epoch: stopped inside the first one
    assert result.best_ckpt is not None and result.best_ckpt.is_file() and result.best_score is not None

    ckpt = torch.load(result.best_ckpt, weights_only=True)
    head = "model.sampler.net.head.weight"
    ckpt["state_dict"][head] = torch.randn(ckpt["state_dict"][head].shape, generator=torch.Generator().manual_seed(0))
    salient = tmp_path / "salient.ckpt"
    torch.save(ckpt, salient)
    onnx_path = export_onnx(salient, tmp_path / "saliency.onnx")
    assert compare_onnx(salient, onnx_path) < 1e-4
    clips = np.random.default_rng(3).uniform(0, 255, size=(2, 3, 32, 8, 8)).astype(np.float32)
    torch_out, onnx_out = load_model(salient)(clips), load_model(onnx_path)(clips)
    assert np.abs(torch_out).max() > 1e-3 and np.allclose(torch_out, onnx_out, atol=1e-4)
