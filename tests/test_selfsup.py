"""Issue 14: the SiNC spectral-prior objective, its augmentation, the EMA teacher and the
memory bank's same-video exclusion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facepulse.config import load_config
from facepulse.contrastive import MemoryBank, MultiViewTripletLoss
from facepulse.contrastive.module import ContrastiveModule, bank_keep, ema_update, step_generator
from facepulse.contrastive.objectives import OBJECTIVES, video_codes
from facepulse.contrastive.prior import prior_augment
from facepulse.errors import ConfigError
from facepulse.losses import (
    SpectralPriorLoss,
    band_spectra,
    bandwidth_loss,
    build_loss,
    sparsity_loss,
    variance_loss,
)

torch.set_num_threads(2)
FPS = 30.0


def tones(freqs_hz, n: int = 256, fps: float = FPS) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / fps
    return torch.stack([torch.sin(2 * math.pi * f * t + 0.3) for f in freqs_hz])


# --------------------------------------------------------------------------- priors
def test_bandwidth_and_sparsity_separate_a_pulse_from_noise():
    noise = torch.randn(8, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    inside, outside = tones([1.2, 2.0]), tones([0.2, 5.0])
    assert bandwidth_loss(inside, FPS).max() < 0.05 and bandwidth_loss(outside, FPS).min() > 0.9
    assert sparsity_loss(inside, FPS).max() < 0.15  # a tone's power sits in its main lobe
    assert sparsity_loss(noise, FPS).min() > 0.5  # noise spreads over the band
    # half-width: max(6 bpm, the resolution fps / T): on 64 samples, 28 bpm
    short = tones([1.5], n=64)
    assert sparsity_loss(short, FPS).item() < 0.2


def test_sparsity_matches_numpy():
    rng = np.random.default_rng(1)
    x = np.sin(2 * np.pi * 1.4 * np.arange(300) / FPS) + rng.standard_normal(300)
    xc = x - x.mean()
    n_fft = 2048  # default_n_fft(300): 4x padding to the next power of two
    power = np.abs(np.fft.rfft(xc, n_fft)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1 / FPS)
    band = (freqs >= 40 / 60) & (freqs <= 180 / 60)
    p_in = np.where(band, power, 0)
    peak = freqs[p_in.argmax()]
    near = np.abs(freqs - peak) <= max(6 / 60, FPS / 300)
    expected = p_in[~near].sum() / p_in.sum()
    assert sparsity_loss(torch.tensor(xc)[None], FPS).item() == pytest.approx(expected, rel=1e-9)


def test_variance_prior_penalises_one_rate_for_every_clip():
    same = band_spectra(tones([1.5] * 8), FPS)
    spread = band_spectra(tones(np.linspace(0.75, 2.9, 8)), FPS)
    assert same.shape == (8, 141) and torch.allclose(same.sum(dim=1), torch.ones(8, dtype=torch.float64))
    assert variance_loss(same).item() > 10 * variance_loss(spread).item()
    # hand-computed: every sample a one-hot at bin k of F: mean_f (step(f >= k) - (f + 1) / F)^2
    f_bins, k = 5, 2
    onehot = torch.zeros(3, f_bins, dtype=torch.float64)
    onehot[:, k] = 1
    cdf = (np.arange(f_bins) >= k).astype(float)
    expected = np.mean((cdf - np.arange(1, f_bins + 1) / f_bins) ** 2)
    assert variance_loss(onehot).item() == pytest.approx(expected)
    uniform = torch.full((2, f_bins), 1 / f_bins, dtype=torch.float64)
    assert variance_loss(uniform).item() == pytest.approx(0.0, abs=1e-15)
    # a bank of other rates widens the batch: the one-hot batch gets closer to uniform
    other = torch.eye(f_bins, dtype=torch.float64)
    assert variance_loss(onehot, bank=other).item() < variance_loss(onehot).item()
    with pytest.raises(ConfigError, match="variance_loss: expected spectra"):
        variance_loss(torch.zeros(4))


def test_spectral_prior_loss_registered_and_vectorised():
    loss = build_loss("spectral_prior", reduction="none", variance_weight=2.0)
    assert isinstance(loss, SpectralPriorLoss)
    x = tones([1.0, 1.5, 2.0, 2.5], n=128).float()
    per_sample = loss(x, fps=FPS)
    terms = loss.terms(x, FPS)
    torch.testing.assert_close(per_sample, terms.bandwidth + terms.sparsity + 2.0 * terms.variance)
    mean = build_loss("spectral_prior", variance_weight=2.0)(x, fps=torch.full((4,), FPS))
    assert mean.item() == pytest.approx(float(per_sample.mean()), rel=1e-6)
    with pytest.raises(ConfigError, match="needs fps"):
        loss(x)
    with pytest.raises(ConfigError, match="unknown option"):
        build_loss("spectral_prior", bogus=1)
    # gradients flow and are finite on a constant pulse
    flat = torch.zeros(2, 64, requires_grad=True)
    (grad,) = torch.autograd.grad(build_loss("spectral_prior")(flat, fps=FPS), flat)
    assert torch.isfinite(grad).all()


# ---------------------------------------------------------------------- augmentation
def peak_hz(x: np.ndarray, fps: float = FPS) -> float:
    spec = np.abs(np.fft.rfft(x - x.mean(), 1 << 15))
    return float(np.fft.rfftfreq(1 << 15, 1 / fps)[spec.argmax()])


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_prior_augment_moves_the_pulse_by_its_factor(mode):
    t_len, f_hz, n = 256, 1.2, 6
    pattern = torch.arange(4.0).view(1, 1, 1, 1, 4)  # left-right ramp: shows the flip
    clip = 100 + 5 * tones([f_hz], t_len).float()[0].view(1, 1, t_len, 1, 1) + pattern
    clips = clip.expand(n, 3, t_len, 2, 4).contiguous()
    out, factor = prior_augment(clips, 150, (1.0, 1.6), 0.5, 0.5, torch.Generator().manual_seed(3), mode)
    assert out.shape == (n, 3, 150, 2, 4) and factor.shape == (n,)
    assert float(factor.min()) >= 1.0 and float(factor.max()) <= 1.6 and float(factor.std()) > 0.05
    flipped_h = out[:, 0, 0, 0, 0] > out[:, 0, 0, 0, 3]
    assert 0 < int(flipped_h.sum()) < n  # some flipped, some not (seed 3)
    for b in range(n):
        trace = out[b, 0, :, 0, 0].double().numpy()
        assert peak_hz(trace) == pytest.approx(f_hz * float(factor[b]), abs=0.03)
    if mode == "nearest":  # whole frames only: every output frame is one of the input frames
        values = set(np.round(clips[0, 0, :, 0, 0].numpy(), 4))
        assert set(np.round(out[:, 0, :, 0, 0].numpy().ravel(), 4)) <= values | set(np.round(clips[0, 0, :, 0, 3].numpy(), 4))
    with pytest.raises(ConfigError, match="view_len 200 resampled by up to 1.6 needs more than 256 frames"):
        prior_augment(clips, 200, (1.0, 1.6))
    with pytest.raises(ConfigError, match="prior_resample: need 0 < low <= high"):
        prior_augment(clips, 100, (1.2, 1.0))


def test_prior_augment_reverses_time():
    ramp = torch.arange(64.0).view(1, 1, 64, 1, 1).expand(32, 1, 64, 1, 1)
    out, _ = prior_augment(ramp.contiguous(), 40, (1.0, 1.0), 0.5, 0.0, torch.Generator().manual_seed(0))
    rising = (out[:, 0, -1, 0, 0] > out[:, 0, 0, 0, 0])
    assert 5 < int(rising.sum()) < 27  # about half reversed
    assert bool(((out[:, 0, 1:, 0, 0] - out[:, 0, :-1, 0, 0]).abs() == 1).all())  # c = 1: consecutive frames


# ----------------------------------------------------------------------- the module
def prior_config(*extra: str):
    return load_config(None, [
        "kind=contrastive", "data.clip_len=64", "data.size=8", "model.name=physnet_interp",
        "model.params={base_channels: 2}", "contrastive.objective=spectral_prior", "contrastive.view_len=40",
        *extra,
    ])


def batch(n: int = 4, ids=None) -> dict:
    clips = torch.rand(n, 3, 64, 8, 8, generator=torch.Generator().manual_seed(7)) * 255
    out = {"clip": clips, "fps": FPS}
    if ids is not None:
        out["video_id"] = ids
    return out


def test_objective_registry_and_config_checks():
    assert set(OBJECTIVES.names()) == {"frequency_contrast", "spectral_prior"}
    with pytest.raises(ConfigError, match="contrastive.objective"):
        load_config(None, ["contrastive.objective=sinc"])
    with pytest.raises(ConfigError, match="view_len 60: resampled by up to prior_resample 1.4"):
        ContrastiveModule(prior_config("contrastive.view_len=60"))
    with pytest.raises(ConfigError, match="ema_teacher"):
        load_config(None, ["contrastive.ema_teacher=1.5"])


def test_spectral_prior_step_with_bank_teacher_and_common():
    module = ContrastiveModule(prior_config(
        "contrastive.memory_bank=6", "contrastive.ema_teacher=0.9", "contrastive.common_weight=0.5",
        "contrastive.ipr_weight=0.01",
    ))
    first = module.step_losses(batch(ids=["a", "a", "b", "c"]), update_bank=True, generator=step_generator(0, 0, 0))
    assert set(first) == {"loss", "bandwidth", "peak_sparsity", "variance", "ipr", "common", "teacher"}
    assert len(module.bank) == 4 and module.bank.video_codes().tolist() == video_codes(["a", "a", "b", "c"], 4).tolist()
    assert first["teacher"].item() == pytest.approx(0.0, abs=1e-6)  # the teacher starts as a copy
    w = module.prior.weights
    prior_part = w[0] * first["bandwidth"] + w[1] * first["peak_sparsity"] + w[2] * first["variance"]
    expected = prior_part + 0.01 * first["ipr"] + 0.5 * first["common"] + first["teacher"]
    assert first["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    # the bank joins the variance prior's average: same weights and draws, without a bank, differ
    nobank = ContrastiveModule(prior_config())
    with_bank = module.step_losses(batch(ids=["a", "a", "b", "c"]), generator=step_generator(0, 0, 1))["variance"]
    without = nobank.step_losses(batch(ids=["a", "a", "b", "c"]), generator=step_generator(0, 0, 1))["variance"]
    assert abs(with_bank.item() - without.item()) > 1e-4 * without.item()
    # the optimiser sees the student only; the teacher follows by EMA after a step
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    params = {id(p) for g in opt.param_groups for p in g["params"]}
    assert params == {id(p) for p in module.model.parameters()}
    assert not any(p.requires_grad for p in module.teacher.parameters())
    first["loss"].backward()
    opt.step()
    module.on_train_batch_end(None, None, 0)
    later = module.step_losses(batch(ids=["a", "a", "b", "c"]), generator=step_generator(0, 0, 1))
    assert later["teacher"].item() > 0


def test_ema_update_formula():
    student, teacher = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = teacher.weight.detach().clone()
    ema_update(teacher, student, 0.75)
    torch.testing.assert_close(teacher.weight, 0.75 * before + 0.25 * student.weight.detach())


def test_memory_bank_leaves_out_the_clips_own_video():
    codes = video_codes(["x", "y", "x"], 3)
    assert codes[0] == codes[2] != codes[1] and video_codes(None, 2).tolist() == [-1, -1]
    bank_codes = torch.cat([video_codes(["x", "z"], 2), torch.tensor([-1])])
    keep = bank_keep(codes, bank_codes)
    assert keep.tolist() == [[False, True, True], [True, True, True], [False, True, True]]
    # queued spectra of the anchor's own video would be false negatives: left out of the mean
    n_fft = 60
    t = torch.arange(60, dtype=torch.float64) / FPS
    anchor = torch.sin(2 * math.pi * 1.5 * t)[None, None]
    loss = MultiViewTripletLoss("psd_mse", n_fft=n_fft, reduction="none")
    same = loss.spectra(anchor, FPS)  # its own video: the same spectrum (distance 0)
    other = loss.spectra(torch.sin(2 * math.pi * 2.5 * t)[None, None], FPS)
    bank = torch.cat([same, other])
    plain = loss.terms(anchor, anchor, anchor, FPS, bank).bank
    masked = loss.terms(anchor, anchor, anchor, FPS, bank, torch.tensor([[False, True]])).bank
    alone = loss.terms(anchor, anchor, anchor, FPS, other).bank
    assert masked.item() == pytest.approx(alone.item()) and masked.item() == pytest.approx(2 * plain.item())
    none_kept = loss.terms(anchor, anchor, anchor, FPS, bank, torch.tensor([[False, False]])).bank
    assert none_kept.item() == 0.0
    # the bank keeps codes through a checkpoint round trip
    q = MemoryBank(4)
    q.push(torch.rand(3, 5), FPS, video_codes(["a", "b", "c"], 3))
    again = MemoryBank(4)
    again.load_state(q.state())
    assert torch.equal(again.video_codes(), q.video_codes())
    old = {k: v for k, v in q.state().items() if k != "codes"}  # a checkpoint from before the codes
    again.load_state(old)
    assert again.video_codes().tolist() == [-1, -1, -1]


def test_frequency_contrast_bank_excludes_same_video():
    cfg = [
        "kind=contrastive", "data.clip_len=32", "data.size=8", "model.name=physnet_interp",
        "model.params={base_channels: 2}", "contrastive.view_len=16", "contrastive.n_views=2",
        "contrastive.memory_bank=64",
    ]
    module = ContrastiveModule(load_config(None, cfg))
    b = {"clip": torch.rand(4, 3, 32, 8, 8, generator=torch.Generator().manual_seed(1)) * 255, "fps": FPS,
         "video_id": ["v"] * 4}
    module.step_losses(b, update_bank=True, generator=step_generator(0, 0, 0))
    assert len(module.bank) == 8
    out = module.step_losses(b, generator=step_generator(0, 0, 1))
    assert out["bank"].item() == 0.0  # every queued spectrum is from video "v": none used
    b["video_id"] = ["w"] * 4
    assert module.step_losses(b, generator=step_generator(0, 0, 1))["bank"].item() > 0
    off = ContrastiveModule(load_config(None, [*cfg, "contrastive.bank_exclude_same_video=false"]))
    off.step_losses({**b, "video_id": ["v"] * 4}, update_bank=True, generator=step_generator(0, 0, 0))
    assert off.step_losses({**b, "video_id": ["v"] * 4}, generator=step_generator(0, 0, 1))["bank"].item() > 0


def test_teacher_checkpoint_loads_like_a_model(tmp_path, monkeypatch):
    from _clips import noise_clips
    from facepulse.models.inference import load_checkpoint_model
    from facepulse.train.data import ClipDataModule
    from facepulse.train.runner import run_experiment

    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, [
        "name=t", "out_dir=runs", "kind=contrastive", "data.clip_len=32", "data.size=8", "model.name=physnet_interp",
        "model.params={base_channels: 2}", "contrastive.objective=spectral_prior", "contrastive.view_len=16",
        "contrastive.ema_teacher=0.5", "optim.batch_size=4", "optim.max_steps=2", "trainer.early_stopping_patience=null",
    ])
    dm = ClipDataModule(cfg, train=noise_clips(8, 32, 8, seed=1), val=noise_clips(4, 32, 8, seed=2))
    result = run_experiment(cfg, datamodule=dm, progress=False)
    ckpt = torch.load(result.best_ckpt, weights_only=True)
    assert any(k.startswith("teacher.") for k in ckpt["state_dict"])
    model, info = load_checkpoint_model(result.best_ckpt)
    assert info.kind == "contrastive"
    student = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    teacher = {k.removeprefix("teacher."): v for k, v in ckpt["state_dict"].items() if k.startswith("teacher.")}
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, student[key])  # predictions use the student
    moved = [k for k in teacher if teacher[k].is_floating_point() and not torch.equal(teacher[k], student[k])]
    assert moved  # the teacher lags behind (EMA), it is not a copy
