"""A supervised run shorter than its first validation still validates and writes best.ckpt,
and Lightning's start-up banner stays out of the output (issue 17)."""

from __future__ import annotations

import math

import torch

from _clips import noise_clips
from facepulse.config import load_config
from facepulse.train.data import ClipDataModule
from facepulse.train.runner import run_experiment

torch.set_num_threads(1)

TINY = [
    "data.clip_len=32",
    "data.size=16",
    "model.params={base_channels: 2}",
    "optim.batch_size=4",
    "trainer.log_every_n_steps=1",
    "trainer.early_stopping_patience=3",  # early stopping on: it used to crash here
]


def test_max_steps_before_the_first_validation_writes_best(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["name=short", "out_dir=runs", *TINY, "optim.max_steps=2"])
    # 24 clips / batch 4 = 6 steps per epoch: max_steps=2 ends mid-epoch, before validation
    dm = ClipDataModule(cfg, train=noise_clips(24, seed=1), val=noise_clips(8, seed=2))
    result = run_experiment(cfg, resume=False, datamodule=dm, progress=False)
    assert result.trainer.global_step == 2
    assert result.best_ckpt is not None and result.best_ckpt.is_file()
    assert result.best_score is not None and math.isfinite(result.best_score)
    saved = torch.load(result.best_ckpt, weights_only=False)
    assert saved["global_step"] == 2
    out = capfd.readouterr()
    text = out.out + out.err
    for banner in ("GPU available", "TPU available", "Trainable params", "LitLogger"):
        assert banner not in text, text


def test_validation_interval_past_the_end_still_validates_last(tmp_path, monkeypatch):
    """Validation every 4 batches, 6 batches: the run's last batch is validated too."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(
        None, ["name=interval", "out_dir=runs", *TINY, "optim.max_epochs=1", "trainer.val_check_interval=4"]
    )
    dm = ClipDataModule(cfg, train=noise_clips(24, seed=1), val=noise_clips(8, seed=2))
    result = run_experiment(cfg, resume=False, datamodule=dm, progress=False)
    saved = torch.load(result.best_ckpt, weights_only=False)
    assert result.trainer.global_step == 6
    # the best checkpoint is from step 4 or step 6; the last validation ran at step 6
    import csv

    rows = list(csv.DictReader(open(result.metrics_csv)))
    val_steps = sorted({int(r["step"]) for r in rows if r.get("val_mae_bpm")})
    assert val_steps[-1] == 5 and saved["global_step"] in (4, 6)
