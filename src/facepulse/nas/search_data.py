"""The clips of an architecture search: in-memory synthetic clips, or a dataset's clips."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
from torch.utils.data import Dataset

from facepulse.config import DataConfig, ExperimentConfig, SynthClipsConfig
from facepulse.errors import ConfigError

__all__ = ["search_datamodule", "synthetic_splits"]


def _render_clips(seeds: Sequence[int], synth: SynthClipsConfig, data: DataConfig):
    """Render the videos of ``seeds`` and cut them into labelled clips (an ``ArrayClips``)."""
    import cv2

    from facepulse.synth import SynthParams, generate_video, sample_params
    from facepulse.synth.params import CameraParams
    from facepulse.train.data import ArrayClips

    # The renderer's smallest frame is 32 px; the face fills most of it (like a face crop).
    render = max(32, data.size + data.size % 2)
    base = SynthParams(
        duration_s=synth.duration_s,
        camera=CameraParams(width=render, height=render, fps=data.fps, exposure_s=min(0.01, 1 / data.fps),
                            face_height_frac=0.8),
    )
    n_frames = base.n_frames
    if n_frames < data.clip_len:
        raise ConfigError(
            f"search.synth.duration_s {synth.duration_s:g} s gives {n_frames} frames < data.clip_len {data.clip_len}"
        )
    starts = range(0, n_frames - data.clip_len + 1, data.clip_stride)
    clips, ppgs, hrs, vids, firsts = [], [], [], [], []
    for seed in seeds:
        video = generate_video(sample_params(synth.scenario, seed=seed, base=base), seed=seed)
        frames = video.frames
        if render != data.size:
            frames = np.stack([cv2.resize(f, (data.size, data.size), interpolation=cv2.INTER_AREA) for f in frames])
        for s in starts:
            clips.append(frames[s : s + data.clip_len])
            ppgs.append(video.ppg[s : s + data.clip_len])
            hrs.append(float(video.hr_bpm[s : s + data.clip_len].mean()))
            vids.append(f"synth{seed:05d}")
            firsts.append(s)
    return ArrayClips(np.stack(clips), np.stack(ppgs), np.array(hrs), data.fps, video_ids=vids, starts=firsts)


def synthetic_splits(synth: SynthClipsConfig, data: DataConfig) -> dict[str, Dataset]:
    """Train / val / test clips (``ArrayClips``) from disjoint synthetic videos.

    Each video is its own person; video seeds are ``synth.seed + k`` for consecutive
    ``k`` (train first, then val, then test), so the same config gives the same clips.
    Clips are ``data.clip_len`` frames every ``data.clip_stride`` frames, ``data.size``
    pixels square, at ``data.fps``; a clip's ``hr_bpm`` is its mean true HR.
    """
    sizes = {"train": synth.n_train, "val": synth.n_val, "test": synth.n_test}
    out: dict[str, Dataset] = {}
    first = synth.seed
    for split, n in sizes.items():
        if n:
            out[split] = _render_clips(range(first, first + n), synth, data)
        first += n
    return out


def search_datamodule(config: ExperimentConfig) -> L.LightningDataModule:
    """The clips of a search: ``search.synth`` in-memory synthetic clips, else ``config.data``
    (both through :class:`facepulse.train.data.ClipDataModule`)."""
    from facepulse.train.data import ClipDataModule

    if config.search.synth is None:
        return ClipDataModule(config)
    splits = synthetic_splits(config.search.synth.model_copy(update={"n_test": 0}), config.data)
    return ClipDataModule(config, train=splits["train"], val=splits["val"])
