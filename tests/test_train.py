"""Supervised training: it learns, it resumes exactly after a kill, DDP runs on CPU (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from _clips import noise_clips, render_videos, video_clips
from facepulse.config import load_config
from facepulse.errors import ConfigError
from facepulse.train.data import AugmentedClips, ClipDataModule, SeededSampler, augment_specs, build_config_augment
from facepulse.train.runner import run_experiment

# One thread: on a shared 2-core machine OpenMP's spinning threads make two far slower.
torch.set_num_threads(1)

TESTS_DIR = Path(__file__).resolve().parent

# A tiny PhysNet on tiny clips: for plumbing (resume, DDP), not for learning.
TINY = [
    "data.clip_len=32",
    "data.size=16",
    "model.params={base_channels: 2}",
    "optim.batch_size=4",
    "trainer.early_stopping_patience=null",
    "trainer.log_every_n_steps=1",
]


def tiny_config(name: str, *extra: str):
    return load_config(None, [f"name={name}", "out_dir=runs", *TINY, *extra])


def run_script(code: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    script = cwd / "script.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


# ------------------------------------------------------------------------ sampling
def test_sampler_order_depends_on_seed_and_epoch_only():
    a = SeededSampler(10, seed=3)
    b = SeededSampler(10, seed=3)
    a.set_epoch(1)
    b.set_epoch(1)
    first = list(a)
    assert first == list(b)  # same seed and epoch: same order and per-clip seeds
    assert sorted(i for i, _ in first) == list(range(10))
    b.set_epoch(2)
    assert [i for i, _ in b] != [i for i, _ in first]
    assert [i for i, _ in SeededSampler(10, seed=3, shuffle=False)] == list(range(10))


def test_sampler_shards_ranks_disjointly():
    shards = []
    for rank in range(3):
        s = SeededSampler(9, seed=0, num_replicas=3, rank=rank)
        s.set_epoch(4)
        shards.append([i for i, _ in s])
    assert all(len(x) == 3 for x in shards)
    assert sorted(sum(shards, [])) == list(range(9))


def test_augment_config_maps_onto_augmentations():
    cfg = load_config(None, ["augment.hr_resample=true", "augment.erase_p=0.5", "augment.flip_p=0.5", "augment.color_jitter=0.2"])
    specs = augment_specs(cfg.augment, 32)
    # HR balancing is not in the chain: the data module adds resampled copies (HRBalancedClips)
    assert [s["name"] for s in specs] == ["erase", "hflip", "color_jitter"]
    assert specs[0]["fill"] == "mean"  # augment.erase_fill's default
    assert specs[-1]["brightness"] == pytest.approx(0.2) and specs[-1]["color"] == pytest.approx(0.05)
    chain = build_config_augment(cfg.augment, 32)
    assert ClipDataModule(cfg).source_clip_len == 2 * cfg.data.clip_len  # HR balancing reads twice the frames
    # the same (index, seed) key gives the same augmented clip; another seed a different one
    data = AugmentedClips(noise_clips(2, clip_len=32), chain)
    one, again, other = data[(0, 11)], data[(0, 11)], data[(0, 12)]
    assert one["clip"].shape == (3, 32, 16, 16)
    assert torch.equal(one["clip"], again["clip"])
    assert not torch.equal(one["clip"], other["clip"])
    with pytest.raises(ConfigError, match="color_jitter"):
        augment_specs(load_config(None, ["augment.color_jitter=1.5"]).augment, 32)


# ------------------------------------------------------------------------- learning
@pytest.mark.slow
def test_physnet_learns_hr_on_synthetic_videos(tmp_path, monkeypatch):
    """A narrow PhysNet trained for a few minutes predicts held-out videos far better.

    40 short training videos (each its own person, HR 50-120 bpm), 4 held-out ones, all
    under varying light (drift, flicker, moving shadows): an untrained network follows
    the light, a trained one has learnt to pick the pulse out of the skin colour. The
    camera is noise-free so that the ~200 CPU steps of a test suffice (with sensor noise
    a network this small needs far more videos and steps to generalise).
    """
    from facepulse.models.inference import PulseModel, TorchRunner, load_model, model_info, video_pulse
    from facepulse.signal.hr import estimate_hr_bpm
    from facepulse.train.module import SupervisedModule

    monkeypatch.chdir(tmp_path)
    look = {"optics.pulse_amplitude": 0.02, "camera.read_noise_dn": 0.0, "camera.dn_per_electron": 0.0}
    train = render_videos(range(100, 140), duration_s=6.0, overrides=look, scenario="lighting")
    val = render_videos(range(140, 142), duration_s=6.0, overrides=look, scenario="lighting")
    test = render_videos(range(200, 204), duration_s=12.0, overrides=look, scenario="lighting")
    cfg = load_config(
        None,
        [
            "name=learn",
            "out_dir=runs",
            "data.clip_len=64",
            "data.size=32",
            "model.params={base_channels: 4}",
            "model.normalize=diff",
            "loss.name=neg_pearson",
            "optim.lr=3e-3",
            "optim.batch_size=8",
            "optim.max_epochs=10",  # 20 steps an epoch
            "trainer.early_stopping_patience=null",
        ],
    )
    dm = ClipDataModule(cfg, train=video_clips(train, 64, 32), val=video_clips(val, 64, 32))

    def test_mae(runner) -> float:
        errors = [abs(estimate_hr_bpm(video_pulse(runner, v.frames), v.fps) - v.hr_bpm.mean()) for v in test]
        return float(np.mean(errors))

    untrained = test_mae(TorchRunner(PulseModel(SupervisedModule(cfg).model, "diff"), model_info(cfg, "diff")))
    result = run_experiment(cfg, resume=False, datamodule=dm, progress=False)
    trained = test_mae(load_model(result.best_ckpt))
    print(f"held-out HR MAE: untrained {untrained:.1f} bpm, trained {trained:.1f} bpm (val MAE {result.best_score:.1f})")
    assert trained < 3.0
    assert trained < untrained / 2


# -------------------------------------------------------------------------- resume
KILL_SCRIPT = """
    import os, signal
    import torch
    import lightning as L
    from _clips import noise_clips
    from facepulse.config import load_config
    from facepulse.train.data import ClipDataModule
    from facepulse.train.runner import run_experiment

    torch.set_num_threads(1)

    class KillInSecondEpoch(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.current_epoch == 1 and batch_idx == 2:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, like a crash or OOM kill

    cfg = load_config(None, {overrides!r})
    dm = ClipDataModule(cfg, train=noise_clips(24, seed=1), val=noise_clips(8, seed=2))
    run_experiment(cfg, datamodule=dm, callbacks=[KillInSecondEpoch()], progress=False)
"""


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = ("optim.max_epochs=2", "augment.flip_p=0.5", "augment.color_jitter=0.1")

    straight_cfg = tiny_config("straight", *extra)
    dm = ClipDataModule(straight_cfg, train=noise_clips(24, seed=1), val=noise_clips(8, seed=2))
    straight = run_experiment(straight_cfg, datamodule=dm, progress=False)
    assert straight.epochs == 2 and not straight.resumed

    killed_cfg = tiny_config("killed", *extra)
    proc = run_script(KILL_SCRIPT.format(overrides=[f"name=killed", "out_dir=runs", *TINY, *extra]), tmp_path)
    assert proc.returncode == -9, proc.stderr[-2000:]
    last = tmp_path / "runs" / "killed" / "last.ckpt"
    epoch0 = torch.load(last, weights_only=True)
    assert epoch0["epoch"] == 0  # only the first epoch was saved

    dm = ClipDataModule(killed_cfg, train=noise_clips(24, seed=1), val=noise_clips(8, seed=2))
    resumed = run_experiment(killed_cfg, datamodule=dm, progress=False)
    assert resumed.resumed and resumed.epochs == 2

    a = torch.load(straight.last_ckpt, weights_only=True)
    b = torch.load(resumed.last_ckpt, weights_only=True)
    assert a["global_step"] == b["global_step"] == 12
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key  # bit-for-bit
    # the resumed epoch did train (the weights moved on from the killed run's checkpoint)
    assert not torch.equal(b["state_dict"]["model.stem.0.weight"], epoch0["state_dict"]["model.stem.0.weight"])


def test_no_resume_starts_over(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config("again", "optim.max_epochs=1")
    clips = noise_clips(8, seed=1), noise_clips(4, seed=2)
    first = run_experiment(cfg, datamodule=ClipDataModule(cfg, *clips), progress=False)
    again = run_experiment(cfg, resume=False, datamodule=ClipDataModule(cfg, *clips), progress=False)
    assert not again.resumed and again.epochs == 1
    assert (first.run_dir / "config.yaml").is_file()
    ckpt = torch.load(again.best_ckpt, weights_only=True)
    assert ckpt["facepulse"]["config"]["name"] == "again"


# ----------------------------------------------------------------------------- DDP
DDP_SCRIPT = """
    import json, os
    import torch
    import lightning as L
    from _clips import noise_clips
    from facepulse.config import load_config
    from facepulse.train.data import ClipDataModule
    from facepulse.train.runner import run_experiment

    torch.set_num_threads(1)

    class Seen(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            with open(f"seen_rank{{trainer.global_rank}}.txt", "a") as fh:
                fh.write(json.dumps([trainer.current_epoch, [int(s) for s in batch["start"]]]) + "\\n")

    cfg = load_config(None, {overrides!r})
    train = noise_clips(16, seed=1)
    train.starts = list(range(16))  # a unique id per clip
    dm = ClipDataModule(cfg, train=train, val=noise_clips(8, seed=2))
    result = run_experiment(cfg, datamodule=dm, callbacks=[Seen()], progress=False)
    trainer = result.trainer
    # one file per rank: the two processes share stdout, and their prints can interleave
    line = " ".join(str(v) for v in (
        "RANK", trainer.global_rank, "WORLD", trainer.world_size, "BACKEND",
        torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        "STEP", trainer.global_step, "BEST", result.best_ckpt))
    with open(f"done_rank{{trainer.global_rank}}.txt", "w") as fh:
        fh.write(line + "\\n")
"""


def test_ddp_two_cpu_processes_gloo(tmp_path):
    overrides = [
        "name=ddp",
        "out_dir=runs",
        *TINY,
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "optim.max_epochs=1",
    ]
    proc = run_script(DDP_SCRIPT.format(overrides=overrides), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = [tmp_path / f"done_rank{rank}.txt" for rank in (0, 1)]
    assert all(p.is_file() for p in done), proc.stdout  # both processes finished
    lines = [p.read_text().strip() for p in done]
    assert all("WORLD 2" in ln and "BACKEND gloo" in ln and "STEP 2" in ln for ln in lines)
    assert (tmp_path / "runs" / "ddp" / "best.ckpt").is_file()
    # the two processes trained on disjoint halves of the clips
    seen = {}
    for rank in (0, 1):
        rows = [eval(ln) for ln in (tmp_path / f"seen_rank{rank}.txt").read_text().splitlines()]
        seen[rank] = {s for _, starts in rows for s in starts}
    assert len(seen[0]) == len(seen[1]) == 8
    assert not seen[0] & seen[1]


# ----------------------------------------------------------------------------- CLI
def test_cli_train_reports_config_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: x\noptim:\n  lr: -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "facepulse.cli", "train", "--config", "bad.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "optim.lr" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "facepulse.cli", "train", "--config", "bad.yaml", "optim.lr=1e-3", "model.name=nope"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2 and "unknown model 'nope'" in proc.stderr


def test_cli_trains_a_config_file_on_a_dataset_and_resumes(tmp_path):
    """`facepulse train --config` on a synthetic dataset on disk: cache, clips, checkpoints."""
    from facepulse.synth import SynthParams
    from facepulse.synth.params import CameraParams
    from facepulse.synth.writer import write_dataset

    base = SynthParams(duration_s=6.0, camera=CameraParams(width=160, height=120))
    write_dataset(tmp_path / "data", n_videos=6, scenario="still", seed=5, base=base, progress=False)
    config = TESTS_DIR.parent / "configs" / "physnet_synthetic.yaml"
    small = [
        "data.root=data",
        "data.size=16",
        "data.clip_len=96",
        "data.split_fractions=[0.5, 0.25, 0.25]",
        "model.params={base_channels: 2}",
        "optim.batch_size=2",
    ]

    def train(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "facepulse.cli", "train", "--config", str(config), *small, *extra],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )

    first = train("optim.max_epochs=1")
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = tmp_path / "runs" / "physnet_synthetic"
    assert "physnet_synthetic: 1 epochs, best val_mae_bpm" in first.stdout
    assert {"best.ckpt", "last.ckpt", "config.yaml"} <= {p.name for p in run_dir.iterdir()}
    saved = load_config(run_dir / "config.yaml")
    assert saved.data.size == 16 and saved.model.params == {"base_channels": 2}
    assert list((tmp_path / ".cache" / "facepulse" / "synthetic").glob("*/*.h5"))  # the cache was filled
    # the same command with more epochs continues from last.ckpt
    second = train("optim.max_epochs=2")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "2 epochs (resumed)" in second.stdout
    assert torch.load(run_dir / "last.ckpt", weights_only=True)["epoch"] == 1
    assert (run_dir / "logs" / "version_0" / "metrics.csv").is_file()
    assert (run_dir / "logs" / "version_1" / "metrics.csv").is_file()  # the first start's metrics are kept
