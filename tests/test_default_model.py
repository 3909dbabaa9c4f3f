"""The shipped deep model (issue 12): TSNet, HR-coverage speed augmentation, packaged models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import facepulse
from facepulse.augment import RandomSpeed, build_augment
from facepulse.augment.clip import ClipSample
from facepulse.cli import main
from facepulse.errors import InputError
from facepulse.models import build_model
from facepulse.models.inference import PulseModel, load_model
from facepulse.models.pretrained import DEFAULT_MODEL, get_pretrained, pretrained_models, resolve_model
from facepulse.models.tsnet import temporal_shift
from facepulse.paths import shared_data_dir

FPS = 30.0


# ------------------------------------------------------------------ speed augmentation
def _pulse_clip(hr_bpm: float, n: int) -> ClipSample:
    """A clip whose every pixel is the PPG: alignment can be read off the pixels."""
    t = np.arange(n) / FPS
    ppg = np.sin(2 * np.pi * hr_bpm / 60 * t) + 0.3 * np.sin(2 * np.pi * 0.13 * t)  # not periodic in T
    clip = torch.from_numpy(128 + 20 * ppg).float()[None, :, None, None].expand(3, n, 4, 4).clone()
    return ClipSample(clip=clip, fps=FPS, ppg=torch.from_numpy(ppg).float(), hr_bpm=hr_bpm)


def _dominant_bpm(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size), n=8 * x.size))
    return float(np.fft.rfftfreq(8 * x.size, 1 / FPS)[spec.argmax()] * 60)


@pytest.mark.parametrize("seed", range(6))
def test_speed_moves_hr_into_range_with_labels_aligned(seed: int) -> None:
    aug = RandomSpeed(p=1.0, hr_range_bpm=(45.0, 150.0), out_frames=128)
    out = aug(_pulse_clip(110.0, aug.source_frames(128)), torch.Generator().manual_seed(seed))
    assert out.clip.shape == (3, 128, 4, 4) and out.ppg.shape == (128,)
    # the label is the pixels, frame by frame
    np.testing.assert_allclose(out.clip[0, :, 0, 0].numpy(), 128 + 20 * out.ppg.numpy(), atol=1e-3)
    assert 110.0 * 0.4 - 1e-6 <= out.hr_bpm <= 150.0 + 1e-6
    # the stated HR is the HR in the frames (within the spectral resolution of 4.3 s)
    assert abs(_dominant_bpm(out.ppg.numpy()) - out.hr_bpm) < 6.0


def test_speed_covers_low_heart_rates_from_a_high_hr_dataset() -> None:
    aug = RandomSpeed(p=1.0, hr_range_bpm=(45.0, 150.0), out_frames=64)
    hrs = [aug(_pulse_clip(115.0, 128), torch.Generator().manual_seed(s)).hr_bpm for s in range(200)]
    assert min(hrs) < 60 and max(hrs) > 140  # UBFC's 100-120 bpm spread over the band


def test_speed_off_keeps_the_first_frames() -> None:
    sample = _pulse_clip(80.0, 128)
    out = build_augment([{"name": "speed", "p": 0.0, "out_frames": 64}])(sample, 0)
    assert out.hr_bpm == 80.0 and torch.equal(out.ppg, sample.ppg[:64])


# ------------------------------------------------------------------------------ TSNet
def test_temporal_shift_moves_two_channel_groups_one_frame() -> None:
    x = torch.randn(2 * 5, 8, 3, 3)
    y = temporal_shift(x, 5).view(2, 5, 8, 3, 3)
    v = x.view(2, 5, 8, 3, 3)
    assert torch.equal(y[:, :-1, :2], v[:, 1:, :2]) and bool((y[:, -1, :2] == 0).all())
    assert torch.equal(y[:, 1:, 2:4], v[:, :-1, 2:4]) and bool((y[:, 0, 2:4] == 0).all())
    assert torch.equal(y[:, :, 4:], v[:, :, 4:])


def test_tsnet_output_depends_on_each_clip_only() -> None:
    torch.manual_seed(0)
    model = build_model("tsnet", channels=8).eval()
    clips = torch.randn(3, 3, 32, 36, 36)
    out = model(clips)
    assert out.shape == (3, 32)
    alone = model(clips[1:2])
    torch.testing.assert_close(out[1:2], alone, atol=1e-5, rtol=1e-4)


def test_tsnet_exports_to_onnx_and_matches_pytorch(tmp_path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = PulseModel(build_model("tsnet", channels=8), "diff").eval()
    clips = torch.rand(2, 3, 32, 36, 36) * 255
    path = tmp_path / "tsnet.onnx"
    torch.onnx.export(model, (clips,), str(path), input_names=["clips"], output_names=["pulse"],
                      dynamic_axes={"clips": {0: "batch"}, "pulse": {0: "batch"}}, opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"clips": clips.numpy()})[0]
    np.testing.assert_allclose(got, model(clips).detach().numpy(), atol=1e-4, rtol=1e-3)


# ------------------------------------------------------------------ packaged models
def test_the_default_model_ships_in_the_package() -> None:
    names = [m.name for m in pretrained_models()]
    assert DEFAULT_MODEL in names
    model = get_pretrained("default")
    assert model.name == DEFAULT_MODEL and model.path.suffix == ".onnx"
    assert model.size_mb < 5.0
    assert model.card["figures"], "the model card must carry its measured figures"
    runner = load_model("default")
    assert runner.info.size == model.card["input"]["size_px"]


def test_unknown_model_name_is_one_clear_error() -> None:
    with pytest.raises(InputError, match="no such packaged model.*facepulse models"):
        resolve_model("no-such-model")


def test_a_model_file_path_is_not_taken_for_a_name(tmp_path) -> None:
    assert resolve_model(tmp_path / "x.ckpt") == tmp_path / "x.ckpt"


def test_models_command_lists_the_default(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert DEFAULT_MODEL in out and "default" in out and "measured" in out
    assert main(["models", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert any(c["name"] == DEFAULT_MODEL for c in cards)


@pytest.mark.parametrize("k", [1, 2])
def test_predict_with_the_default_model_on_the_vitallens_clips(k: int) -> None:
    """Issue 12's check: the packaged model, end to end (face, crops, model, HR), within
    3 bpm of the reference PPG's HR on both vitallens clips (never seen in training)."""
    from facepulse.pipeline import result_from_pulse
    from facepulse.roi.trace import resample_uniform

    data = shared_data_dir() / "vitallens_samples"
    result = facepulse.predict(data / f"sample_video_{k}.mp4", model="default")
    assert result.method.startswith("model:")
    ppg = pd.read_csv(data / f"sample_vitals_{k}.csv")["ppg"].to_numpy(float)
    ppg = ppg[: result.timestamps_s.size]
    tu, pu = resample_uniform(result.timestamps_s[: ppg.size], ppg[:, None], result.fps)
    ref = result_from_pulse(tu, pu[:, 0], result.fps, method="reference")
    assert abs(result.hr_bpm - ref.hr_bpm) <= 3.0, (result.hr_bpm, ref.hr_bpm)
    # one candidate (the model's pulse): no region agreement to report or warn about
    assert not any("regions disagree" in w for w in result.quality["warnings"])
    assert np.isnan(result.quality["median_agreement"])


def test_the_built_wheel_carries_the_packaged_models(tmp_path) -> None:
    """On a clean machine the model comes from the installed wheel: build the wheel the way
    pip would (no network: --no-build-isolation) and look for every packaged file in it."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(root)],
        check=True, capture_output=True, timeout=600,
    )
    (wheel,) = tmp_path.glob("facepulse-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in pretrained_models():
        for path in (model.path, model.path.with_name(f"{model.name}.json")):
            assert f"facepulse/models/pretrained/{path.name}" in names
