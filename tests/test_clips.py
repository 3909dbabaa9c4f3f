"""ClipDataset: shapes, labels, resampling, no clip across invalid frames, DataLoader
workers (fork and spawn), augmentations, and subject-wise datasets from a DataConfig."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from facepulse.augment import HRBalance
from facepulse.config import DataConfig
from facepulse.datasets import get_reader
from facepulse.datasets.cache import PreprocessConfig, preprocess_dataset
from facepulse.datasets.clips import ClipDataset, clip_datasets
from facepulse.errors import ConfigError, InputError

N_FRAMES = 180  # 6 s at 30 fps


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three 6-s synthetic videos (160x120, 30 fps), preprocessed into a cache."""
    from facepulse.synth.params import CameraParams, SynthParams
    from facepulse.synth.writer import write_dataset

    root = tmp_path_factory.mktemp("clips")
    base = SynthParams(duration_s=6.0, camera=CameraParams(width=160, height=120, fps=30.0))
    write_dataset(root / "data", n_videos=3, scenario="still", seed=11, base=base)
    reader = get_reader("synthetic", root / "data")
    summary = preprocess_dataset(reader, root / "cache", PreprocessConfig(), progress=False)
    assert summary.ok
    return {"root": root, "reader": reader, "summary": summary, "truth": {
        r.video_id: reader.load_truth(r) for r in reader.records()}}


def test_items_have_the_documented_shapes_and_labels(dataset):
    summary = dataset["summary"]
    ds = ClipDataset(summary.root, clip_len=96, stride=32)
    # Per video, starts 0, 32, 64 (84 + 96 = 180 is the last that fits).
    assert len(ds) == 3 * 3
    assert ds.clip_index[:3] == [("v00000", 0), ("v00000", 32), ("v00000", 64)]
    item = ds[4]
    assert set(item) == {"clip", "fps", "ppg", "hr_bpm", "video_id", "subject_id", "start", "start_s"}
    assert item["clip"].shape == (3, 96, 72, 72) and item["clip"].dtype == torch.float32
    assert 0.0 <= float(item["clip"].min()) and float(item["clip"].max()) <= 1.0
    assert (item["video_id"], item["subject_id"], item["start"], item["fps"]) == ("v00001", "v00001", 32, 30.0)
    with h5py.File(summary.paths["v00001"], "r") as f:
        crops = f["clips"][32:128]
    np.testing.assert_allclose(item["clip"].numpy(), crops.transpose(3, 0, 1, 2) / 255.0, rtol=1e-6)
    ppg = item["ppg"].numpy()
    assert ppg.shape == (96,) and ppg.dtype == np.float32
    assert abs(ppg.mean()) < 1e-5 and abs(ppg.std() - 1.0) < 1e-4
    truth = dataset["truth"]["v00001"]
    np.testing.assert_allclose(ppg, (truth["ppg"][32:128] - truth["ppg"][32:128].mean()) / truth["ppg"][32:128].std(),
                               atol=1e-5)
    # HR label: spectral peak of the clip's PPG, close to the simulated instantaneous HR.
    assert abs(item["hr_bpm"] - truth["hr_bpm"][32:128].mean()) < 4.0
    unlabelled = ClipDataset(summary.root, clip_len=96, stride=32, labels=False)[0]
    assert "ppg" not in unlabelled and "hr_bpm" not in unlabelled
    trace = ClipDataset(summary.root, clip_len=96, stride=32, source="trace", pixel_scale=1.0)[0]
    assert trace["rgb"].shape == (3, 96) and "clip" not in trace
    with h5py.File(summary.paths["v00000"], "r") as f:
        np.testing.assert_allclose(trace["rgb"].numpy(), f["rgb"][0:96].T, rtol=1e-6)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_resampling_to_a_target_frame_rate(dataset):
    summary = dataset["summary"]
    native = ClipDataset(summary.root, clip_len=64, stride=32, labels=False)
    half = ClipDataset(summary.root, clip_len=64, stride=32, fps=15.0)
    # 15 fps from 30 fps: every other frame, exactly.
    item = half[0]
    assert item["fps"] == 15.0 and item["clip"].shape == (3, 64, 72, 72)
    with h5py.File(summary.paths["v00000"], "r") as f:
        crops = f["clips"][0:128:2]
        t = f["timestamps_s"][()]
        ppg = f["ppg"][()]
    np.testing.assert_allclose(item["clip"].numpy(), crops.transpose(3, 0, 1, 2) / 255.0, rtol=1e-6)
    assert len(half) == 3 * 1 and len(native) == 3 * 4  # 90 resampled frames hold one 64-frame clip
    # 20 fps: sample k sits 1.5 k frames in, halfway between two frames every other sample.
    ds20 = ClipDataset(summary.root, clip_len=64, stride=16, fps=20.0)
    item = ds20[1]
    assert item["start"] == 24 and item["start_s"] == pytest.approx(0.8)  # grid index 16 -> 0.8 s
    with h5py.File(summary.paths["v00000"], "r") as f:
        a, b = f["clips"][25].astype(np.float32), f["clips"][26].astype(np.float32)  # sample 1 at 0.85 s
    np.testing.assert_allclose(item["clip"][:, 1].numpy(), ((a + b) / 2).transpose(2, 0, 1) / 255.0, atol=1e-6)
    grid = 0.8 + np.arange(64) / 20.0
    want = np.interp(grid, t, ppg)
    np.testing.assert_allclose(item["ppg"].numpy(), (want - want.mean()) / want.std(), atol=1e-5)
    # The HR label is measured on the resampled clip: the same pulse, the same HR.
    native_hr = ClipDataset(summary.root, clip_len=96, stride=32)[0]["hr_bpm"]
    assert abs(ClipDataset(summary.root, clip_len=64, stride=32, fps=20.0)[0]["hr_bpm"] - native_hr) < 5.0


def test_no_clip_covers_an_invalid_frame(dataset, tmp_path):
    src = dataset["summary"].paths["v00002"]
    path = tmp_path / "v00002.h5"
    shutil.copy(src, path)
    with h5py.File(path, "r+") as f:
        valid = f["valid"][()]
        valid[70:75] = False  # a no-face gap
        f["valid"][...] = valid
    ds = ClipDataset([path], clip_len=40, stride=20, labels=False)
    starts = [s for _, s in ds.clip_index]
    # Run 0-69: starts 0, 20 (40 + 40 > 70); run 75-179: 75, 95, 115, 135.
    assert starts == [0, 20, 75, 95, 115, 135]
    for s in starts:
        assert not (s < 75 and s + 40 > 70)
    resampled = ClipDataset([path], clip_len=20, stride=10, fps=15.0, labels=False)
    for _, g in resampled.clip_index:  # grid sample g is frame 2 g
        assert 2 * (g + 19) < 70 or 2 * g >= 75


def test_dataloader_workers_fork_and_spawn(dataset):
    ds = ClipDataset(dataset["summary"].root, clip_len=96, stride=32)
    expected = [ds[i] for i in range(len(ds))]  # opens files in the parent before forking
    for context in ("fork", "spawn"):
        loader = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context=context)
        batches = list(loader)
        assert sum(b["clip"].shape[0] for b in batches) == len(ds)
        clips = torch.cat([b["clip"] for b in batches])
        assert clips.shape == (len(ds), 3, 96, 72, 72)
        np.testing.assert_array_equal(clips.numpy(), torch.stack([e["clip"] for e in expected]).numpy())
        hr = torch.cat([b["hr_bpm"] for b in batches]).numpy()
        np.testing.assert_allclose(hr, [e["hr_bpm"] for e in expected])
        assert [v for b in batches for v in b["video_id"]] == [e["video_id"] for e in expected]
    ds.close()


def test_augment_gets_a_longer_window(dataset):
    root = dataset["summary"].root
    balance = HRBalance(low_bpm=70.0, high_bpm=90.0, out_frames=48)
    ds = ClipDataset(root, clip_len=48, stride=48, augment=balance)
    assert ds.load_len == 96  # hr_balance needs 2 T source frames
    plain = ClipDataset(root, clip_len=96, stride=48)
    item, raw = ds[0], plain[0]
    assert item["clip"].shape == (3, 48, 72, 72) and item["ppg"].shape == (48,)
    speed = balance.speed_for(raw["hr_bpm"])
    assert item["hr_bpm"] == pytest.approx(raw["hr_bpm"] * speed)
    longer = ClipDataset(root, clip_len=48, stride=48, extra_frames=48, augment=lambda d: {**d, "seen": True})
    got = longer[0]
    assert got["clip"].shape == (3, 96, 72, 72) and got["seen"]


def test_bad_arguments_are_config_errors(dataset, tmp_path):
    root = dataset["summary"].root
    with pytest.raises(ConfigError, match="too short for an HR label"):
        ClipDataset(root, clip_len=32)
    with pytest.raises(ConfigError, match="source must be"):
        ClipDataset(root, source="video")
    with pytest.raises(InputError, match="no cache files"):
        ClipDataset(tmp_path)


def test_subject_wise_datasets_from_a_data_config(dataset, monkeypatch):
    root = dataset["root"]
    monkeypatch.chdir(root)
    data = DataConfig(dataset="synthetic", root="data", cache_dir="cache", clip_len=96, clip_stride=48,
                      fps=30.0, size=72, split_fractions=(0.34, 0.33, 0.33))
    sets = clip_datasets(data, seed=0)
    assert set(sets) == {"train", "val", "test"}
    subjects = {name: {v.subject_id for v in ds.videos} for name, ds in sets.items()}
    assert all(len(s) == 1 for s in subjects.values())
    assert len(set.union(*subjects.values())) == 3  # one subject each, none shared
    item = sets["train"][0]
    assert item["clip"].shape == (3, 96, 72, 72) and float(item["clip"].max()) <= 1.0
    # The training stack's entry point: pixel values 0..255, the existing cache reused.
    (vid,) = subjects["test"]
    records = [r for r in dataset["reader"].records() if r.video_id == vid]
    train_style = ClipDataset.from_config(data, records)
    assert float(train_style[0]["clip"].max()) > 1.0
    assert [v.video_id for v in train_style.videos] == [vid]
    assert Path(train_style.videos[0].path).resolve() == dataset["summary"].paths[vid].resolve()
