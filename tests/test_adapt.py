"""Test-time adaptation (``facepulse predict --model M --adapt``): bounded, label-free, a copy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _clips import noise_clips
from facepulse.config import load_config
from facepulse.contrastive import adapt as adapt_mod
from facepulse.contrastive.adapt import adapt_model, adapt_runner
from facepulse.errors import ConfigError, SignalTooShortError
from facepulse.models.inference import load_checkpoint_model, load_model

torch.set_num_threads(1)

CLIP_LEN, SIZE = 32, 8


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A self-supervised (spectral_prior) checkpoint after two steps on noise clips."""
    import os

    from facepulse.train.data import ClipDataModule
    from facepulse.train.runner import run_experiment

    root = tmp_path_factory.mktemp("adapt")
    here = os.getcwd()
    os.chdir(root)
    try:
        cfg = load_config(None, [
            "name=prior", "kind=contrastive", "out_dir=runs", f"data.clip_len={CLIP_LEN}", f"data.size={SIZE}",
            "model.name=physnet_interp", "model.params={base_channels: 2}", "contrastive.objective=spectral_prior",
            "contrastive.view_len=16", "optim.batch_size=4", "optim.max_steps=2", "trainer.early_stopping_patience=null",
        ])
        dm = ClipDataModule(cfg, train=noise_clips(8, CLIP_LEN, SIZE), val=noise_clips(4, CLIP_LEN, SIZE, seed=1))
        result = run_experiment(cfg, resume=False, datamodule=dm, progress=False)
        return root / result.best_ckpt
    finally:
        os.chdir(here)


def test_adapt_model_is_bounded_and_leaves_the_original(checkpoint):
    model, info = load_checkpoint_model(checkpoint)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    frames = np.random.default_rng(0).integers(0, 256, size=(70, SIZE, SIZE, 3), dtype=np.uint8)
    result = adapt_model(model, frames, info.fps, info.clip_len, steps=5, batch_size=2, lr=1e-2)
    assert result.steps == 5 and all(np.isfinite(result.losses))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # the caller's model is untouched
    moved = [k for k, v in result.model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert moved  # the copy was trained
    bn = [k for k in moved if "running_" in k]
    assert bn == []  # BatchNorm statistics kept (eval mode)
    with pytest.raises(SignalTooShortError, match="fewer than the model's clip of 32"):
        adapt_model(model, frames[:20], info.fps, info.clip_len, steps=1)
    with pytest.raises(ConfigError, match="steps and batch_size must be >= 1"):
        adapt_model(model, frames, info.fps, info.clip_len, steps=0)


def test_adapt_refuses_onnx(checkpoint, tmp_path):
    from facepulse.models.inference import export_onnx

    onnx_path = export_onnx(checkpoint, tmp_path / "m.onnx")
    frames = np.zeros((40, SIZE, SIZE, 3), np.uint8)
    with pytest.raises(ConfigError, match="an ONNX model cannot be fine-tuned"):
        adapt_runner(load_model(onnx_path), frames, steps=1)


def test_cli_predict_adapt_runs_its_steps_and_predicts(checkpoint, tmp_path, monkeypatch):
    """``predict VIDEO --model M --adapt --adapt-steps 3`` on a short synthetic face clip:
    exactly three optimisation steps, then a result with a finite HR."""
    from badinputs import face_video
    from facepulse.cli import main

    video = face_video(tmp_path)
    done: list[int] = []
    real = adapt_mod.adapt_model

    def counting(*args, **kwargs):
        result = real(*args, **kwargs)
        done.append(result.steps)
        return result

    monkeypatch.setattr(adapt_mod, "adapt_model", counting)
    out = tmp_path / "r.json"
    code = main(["predict", str(video), "--model", str(checkpoint), "--adapt", "--adapt-steps", "3",
                 "--window", "4", "--quiet", "--json", str(out)])
    assert code == 0
    assert done == [3]
    summary = json.loads(out.read_text())
    text = json.dumps(summary)
    assert "+adapt" in text
    hr = summary.get("hr_bpm", summary.get("summary", {}).get("hr_bpm"))
    assert hr is not None and 40 <= float(hr) <= 250
    assert main(["predict", str(video), "--adapt", "--quiet"]) == 2  # --adapt without --model: a one-line error
