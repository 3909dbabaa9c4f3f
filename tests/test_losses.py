"""Pulse losses on analytic signals against hand-computed values; gradient safety."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facepulse.errors import ConfigError, InputError
from facepulse.losses import (
    LOSSES,
    band_psd,
    build_loss,
    hr_bins_bpm,
    irrelevant_power_ratio,
    max_cross_correlation,
    psd_mse,
    rfft_psd,
    snr_db,
    torch_psd,
)

torch.set_num_threads(2)

FPS = 30.0
T = 300  # 10 s: FFT bins (n_fft = T) every 0.1 Hz = 6 bpm


def tone(freq_hz: float, n: int = T, fps: float = FPS, phase: float = 0.0, amp: float = 1.0) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / fps
    return amp * torch.sin(2 * math.pi * freq_hz * t + phase)


def batch(*signals: torch.Tensor) -> torch.Tensor:
    return torch.stack(signals)


def test_registry_names():
    assert {
        "neg_pearson", "freq_ce", "hybrid", "snr_loss", "irrelevant_power_ratio", "max_cross_correlation", "psd_mse",
    } <= set(LOSSES.names())
    with pytest.raises(ConfigError, match="unknown loss 'l2'"):
        build_loss("l2")
    with pytest.raises(ConfigError, match=r"loss 'neg_pearson': unknown option\(s\) \['lam'\]"):
        build_loss("neg_pearson", lam=1.0)
    with pytest.raises(ConfigError, match="loss 'hybrid'"):
        build_loss("hybrid", bogus=1)
    with pytest.raises(ConfigError, match="loss 'freq_ce' needs hr_bpm"):
        build_loss("freq_ce")(batch(tone(1.5)), fps=FPS)
    with pytest.raises(ConfigError, match="loss 'psd_mse' needs target"):
        build_loss("psd_mse")(batch(tone(1.5)), fps=FPS)


# ----------------------------------------------------------------------- neg_pearson
def test_neg_pearson_analytic():
    loss = build_loss("neg_pearson", reduction="none")
    s = tone(1.5)  # 15 whole cycles in 10 s
    quarter = tone(1.5, phase=math.pi / 2)  # quarter period later: orthogonal
    values = loss(batch(s, s, s, 3 * s + 7), batch(s, -s, quarter, s))
    np.testing.assert_allclose(values.numpy(), [0.0, 2.0, 1.0, 0.0], atol=1e-6)
    noise = torch.randn(2, 5000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(loss(noise[:1], noise[1:]).item() - 1.0) < 0.05  # uncorrelated: r ~ N(0, 1/sqrt(T))
    mean = build_loss("neg_pearson")(batch(s, s), batch(s, -s))
    assert mean.item() == pytest.approx(1.0, abs=1e-6)  # mean of 0 and 2


# --------------------------------------------------------------------------- spectra
def test_torch_psd_matches_fft_on_bins_and_per_sample_fps():
    x = batch(tone(1.5), tone(1.5, fps=25.0))
    fps = torch.tensor([30.0, 25.0], dtype=torch.float64)
    freqs = torch.tensor([1.0, 1.5, 2.0], dtype=torch.float64)
    p = torch_psd(x, fps, freqs, window=None)
    # a unit sine of T samples on a bin frequency has |X|^2 = (T/2)^2, 0 on the other bins
    np.testing.assert_allclose(p[0].numpy(), [0.0, (T / 2) ** 2, 0.0], atol=1e-6)
    assert p[1, 1] == p[1].max()  # the 25 fps sample peaks at its own 1.5 Hz too
    spec = np.abs(np.fft.rfft(x[0].numpy())) ** 2
    np.testing.assert_allclose(p[0, 1].item(), spec[15], rtol=1e-9)
    freqs_b, power = rfft_psd(x[:1], FPS, n_fft=T)
    np.testing.assert_allclose(power[0].numpy(), spec, atol=1e-6)
    assert freqs_b[0, 15].item() == pytest.approx(1.5)
    assert hr_bins_bpm(40, 180, 1).shape == (141,)


# --------------------------------------------------------------------------- freq_ce
def reference_freq_ce(x: np.ndarray, fps: float, hr_bpm: float) -> float:
    """AutoHR's frequency CE written independently in numpy (float64)."""
    bins = np.arange(40, 181) / 60.0
    xw = (x - x.mean()) * np.hanning(len(x))
    n = np.arange(len(x))
    power = np.array([abs(np.sum(xw * np.exp(-2j * np.pi * f * n / fps))) ** 2 for f in bins])
    logits = power / power.sum()
    k = int(round(hr_bpm - 40))
    return float(np.log(np.exp(logits).sum()) - logits[k])


def test_freq_ce_low_when_hr_matches():
    s = tone(1.5)  # 90 bpm
    loss = build_loss("freq_ce", reduction="none")
    labels = torch.arange(40.0, 181.0, dtype=torch.float64)
    values = loss(s.expand(len(labels), -1), fps=FPS, hr_bpm=labels)
    assert labels[values.argmin()].item() == 90.0  # the true HR bin has the lowest loss
    for hr in (90.0, 150.0):
        got = loss(batch(s), fps=FPS, hr_bpm=torch.tensor([hr])).item()
        assert got == pytest.approx(reference_freq_ce(s.numpy(), FPS, hr), rel=1e-9)
    n_bins = 141  # with logits summing to 1: ln(F + 1) - 1 <= CE <= ln(F - 1 + e)
    assert math.log(n_bins + 1) - 1 <= values.min().item() < values.max().item() <= math.log(n_bins - 1 + math.e)
    ln_f = math.log(n_bins)
    sharp = build_loss("freq_ce", logit_scale=100.0, reduction="none")  # 10 s: peak ~ 20 bins wide
    matched, wrong = sharp(batch(s, s), fps=FPS, hr_bpm=torch.tensor([90.0, 150.0]))
    assert matched.item() < 2.0 < ln_f < wrong.item()


def test_freq_ce_per_sample_fps_and_vectorised():
    x = batch(tone(72 / 60, n=160, fps=30.0), tone(120 / 60, n=160, fps=20.0))
    fps = torch.tensor([30.0, 20.0])
    hr = torch.tensor([72.0, 120.0])
    loss = build_loss("freq_ce", reduction="none")
    both = loss(x, fps=fps, hr_bpm=hr)
    one = loss(x[1:], fps=20.0, hr_bpm=hr[1:])
    assert both[1].item() == pytest.approx(one.item(), rel=1e-9)
    swapped = loss(x, fps=fps, hr_bpm=torch.tensor([120.0, 72.0]))
    assert (both < swapped).all()
    strict = build_loss("freq_ce", reduction="none", out_of_band="error")
    with pytest.raises(InputError, match=r"hr_bpm 200 is outside the loss band \[40, 180\] bpm"):
        strict(x, fps=fps, hr_bpm=torch.tensor([72.0, 200.0]))


def test_hybrid_out_of_band_hr_does_not_stop_training():
    """A 190 bpm clip (above the 40-180 bpm bins): by default its frequency term is 0 and
    the rest of the batch trains as before; "clamp" targets the edge bin; "error" raises."""
    x = batch(tone(72 / 60), tone(3.0), tone(1.5)).requires_grad_(True)
    target = batch(tone(72 / 60, phase=0.2), tone(3.0, phase=0.2), tone(1.5, phase=0.2))
    hr = torch.tensor([72.0, 190.0, 90.0])
    pearson = build_loss("neg_pearson", reduction="none")(x, target)
    per_sample = build_loss("hybrid", reduction="none")(x, target, fps=FPS, hr_bpm=hr)
    assert torch.isfinite(per_sample).all()
    assert per_sample[1].item() == pytest.approx(pearson[1].item(), abs=1e-12)  # no frequency term
    in_band = build_loss("hybrid", reduction="none")(x[[0, 2]], target[[0, 2]], fps=FPS, hr_bpm=hr[[0, 2]])
    assert torch.allclose(per_sample[[0, 2]], in_band, rtol=1e-12, atol=0)  # the other clips are untouched
    build_loss("hybrid")(x, target, fps=FPS, hr_bpm=hr).backward()
    assert torch.isfinite(x.grad).all() and x.grad[1].abs().max() > 0  # time term still trains it
    clamped = build_loss("freq_ce", reduction="none", out_of_band="clamp")(x, fps=FPS, hr_bpm=hr)
    edge = build_loss("freq_ce", reduction="none")(x, fps=FPS, hr_bpm=torch.tensor([72.0, 180.0, 90.0]))
    assert torch.equal(clamped, edge)
    nan_hr = build_loss("hybrid", reduction="none")(x, target, fps=FPS, hr_bpm=torch.tensor([72.0, float("nan"), 90.0]))
    assert torch.equal(nan_hr, per_sample)
    with pytest.raises(InputError, match="hr_bpm 190 is outside the loss band"):
        build_loss("hybrid", out_of_band="error")(x, target, fps=FPS, hr_bpm=hr)
    with pytest.raises(ConfigError, match="out_of_band 'drop' unknown"):
        build_loss("hybrid", out_of_band="drop")


def test_hybrid_is_weighted_sum():
    s, target = tone(1.5), tone(1.5, phase=0.3)
    fps, hr = FPS, torch.tensor([90.0])
    hybrid = build_loss("hybrid", lambda_time=0.25)(batch(s), batch(target), fps=fps, hr_bpm=hr)
    parts = 0.25 * build_loss("neg_pearson")(batch(s), batch(target)) + build_loss("freq_ce")(
        batch(s), fps=fps, hr_bpm=hr
    )
    assert hybrid.item() == pytest.approx(parts.item(), rel=1e-12)


# ------------------------------------------------------------------------------- SNR
def test_snr_hand_computed():
    # tone at 1.5 Hz (bin 15) plus half-amplitude tone at 3.5 Hz (bin 35, in band, away
    # from the 1.5 and 3.0 Hz windows): SNR = 10 log10(1 / 0.5^2) = 6.0206 dB
    x = batch(tone(1.5) + tone(3.5, amp=0.5))
    got = snr_db(x, FPS, torch.tensor([90.0]), n_fft=T)
    assert got.item() == pytest.approx(10 * math.log10(4.0), abs=1e-6)
    assert snr_db(x, FPS, None, n_fft=T).item() == pytest.approx(got.item())  # peak = 90 bpm
    loss = build_loss("snr_loss", n_fft=T)(x, fps=FPS, hr_bpm=torch.tensor([90.0]))
    assert loss.item() == pytest.approx(-10 * math.log10(4.0), abs=1e-6)
    # wrong HR: the power sits in the noise part
    assert snr_db(x, FPS, torch.tensor([120.0]), n_fft=T).item() < -5
    noise = torch.randn(1, T, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert snr_db(noise, FPS, torch.tensor([90.0])).item() < -5
    assert snr_db(batch(tone(1.5)), FPS, torch.tensor([90.0])).item() > 5  # default padding leaks a bit


# ------------------------------------------------------------------------------- IPR
def test_irrelevant_power_ratio():
    in_band = batch(tone(1.5))
    assert irrelevant_power_ratio(in_band, FPS, n_fft=T).item() == pytest.approx(0.0, abs=1e-12)
    assert irrelevant_power_ratio(in_band, FPS).item() < 0.01  # zero padding: small leakage only
    assert irrelevant_power_ratio(in_band, FPS, window="hann").item() < 1e-4
    # + a half-amplitude 0.3 Hz (18 bpm) tone: power out / total = 0.25 / 1.25
    mixed = batch(tone(1.5) + tone(0.3, amp=0.5))
    assert irrelevant_power_ratio(mixed, FPS, n_fft=T).item() == pytest.approx(0.2, abs=1e-9)
    out_only = batch(tone(0.3) + tone(5.0))  # 18 and 300 bpm
    assert build_loss("irrelevant_power_ratio", n_fft=T)(out_only, fps=FPS).item() == pytest.approx(1.0, abs=1e-9)


# ------------------------------------------------------------------------------- MCC
def test_max_cross_correlation_analytic():
    s = tone(1.5)
    assert max_cross_correlation(batch(s), batch(s), FPS).item() == pytest.approx(1.0, abs=1e-6)
    assert max_cross_correlation(batch(s), batch(3 * s + 2), FPS).item() == pytest.approx(1.0, abs=1e-6)
    # circular lag with whole cycles and n_fft = T: the max over lags recovers it exactly
    assert max_cross_correlation(batch(s), batch(torch.roll(s, 7)), FPS, n_fft=T).item() == pytest.approx(1.0)
    # phase-shifted (linear correlation, default padding): high but below 1 (edge overlap)
    shifted = max_cross_correlation(batch(s), batch(tone(1.5, phase=1.0)), FPS).item()
    assert 0.9 < shifted < 1.0
    # out-of-band component in y, disjoint bins: MCC = E_s / sqrt(E_s (E_s + 0.25 E_s)) = 1 / sqrt(1.25)
    y = s + tone(0.3, amp=0.5)
    assert max_cross_correlation(batch(s), batch(y), FPS, n_fft=T).item() == pytest.approx(1 / math.sqrt(1.25))
    # different in-band frequencies: orthogonal spectra
    assert abs(max_cross_correlation(batch(s), batch(tone(2.5)), FPS, n_fft=T).item()) < 1e-9
    noise = torch.randn(1, T, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert max_cross_correlation(batch(s), noise, FPS).item() < 0.3
    loss = build_loss("max_cross_correlation")(batch(s), batch(s), fps=FPS)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- PSD-MSE
def test_psd_mse_analytic():
    s = tone(1.5)
    assert psd_mse(batch(s), batch(s), FPS).item() == 0.0
    assert psd_mse(batch(s), batch(5 * s - 1), FPS).item() == pytest.approx(0.0, abs=1e-15)
    # two pure tones on different bins: normalised PSDs are two one-hot vectors
    _, _, mask = band_psd(batch(s), FPS, n_fft=T)
    n_band = int(mask.sum())
    assert psd_mse(batch(s), batch(tone(2.5)), FPS, n_fft=T).item() == pytest.approx(2.0 / n_band)
    far = psd_mse(batch(s), batch(tone(3.0)), FPS).item()
    near = psd_mse(batch(s), batch(tone(1.55)), FPS).item()
    assert 0 < near < far
    assert build_loss("psd_mse")(batch(s), batch(s), fps=FPS).item() == 0.0


# ------------------------------------------------------------------------- stability
@pytest.mark.parametrize("name", sorted(LOSSES.names()))
@pytest.mark.parametrize("kind", ["zero", "constant", "random"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_losses_finite_with_finite_gradients(name, kind, dtype):
    gen = torch.Generator().manual_seed(3)
    shape = (3, 97)  # odd length
    pred = {
        "zero": torch.zeros(shape, dtype=dtype),
        "constant": torch.full(shape, 5.0, dtype=dtype),
        "random": torch.randn(shape, generator=gen, dtype=dtype),
    }[kind].requires_grad_(True)
    target = torch.zeros(shape, dtype=dtype) if kind == "zero" else torch.randn(shape, generator=gen, dtype=dtype)
    fps = torch.tensor([30.0, 25.0, 29.97], dtype=dtype)
    loss = build_loss(name)(pred, target, fps=fps, hr_bpm=torch.tensor([60.0, 95.0, 170.0], dtype=dtype))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


@pytest.mark.parametrize(
    "name", sorted(n for n in LOSSES.names() if not getattr(LOSSES.get(n), "batch_coupled", False))
)
def test_losses_vectorised_over_batch(name):
    gen = torch.Generator().manual_seed(4)
    pred = torch.randn(4, 128, generator=gen, dtype=torch.float64)
    target = torch.randn(4, 128, generator=gen, dtype=torch.float64)
    hr = torch.tensor([55.0, 80.0, 110.0, 150.0], dtype=torch.float64)
    loss = build_loss(name, reduction="none")
    together = loss(pred, target, fps=30.0, hr_bpm=hr)
    alone = torch.cat([loss(pred[i : i + 1], target[i : i + 1], fps=30.0, hr_bpm=hr[i : i + 1]) for i in range(4)])
    assert together.shape == (4,)
    torch.testing.assert_close(together, alone, rtol=1e-9, atol=1e-12)
    mean = build_loss(name)(pred, target, fps=30.0, hr_bpm=hr)
    assert mean.item() == pytest.approx(together.mean().item())


def test_batch_coupled_losses_are_the_self_supervised_priors_only():
    """Only a loss built to compare the clips of a batch (SiNC's variance prior) may make a
    clip's loss depend on its batch; its per-sample part is still vectorised."""
    coupled = sorted(n for n in LOSSES.names() if getattr(LOSSES.get(n), "batch_coupled", False))
    assert coupled == ["spectral_prior"]
    gen = torch.Generator().manual_seed(4)
    pred = torch.randn(4, 128, generator=gen, dtype=torch.float64)
    loss = build_loss("spectral_prior", reduction="none", variance_weight=0.0)
    together = loss(pred, pred, fps=30.0)
    alone = torch.cat([loss(pred[i : i + 1], pred[i : i + 1], fps=30.0) for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=1e-9, atol=1e-12)
