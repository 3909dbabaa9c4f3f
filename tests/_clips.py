"""Small in-memory clip datasets for the training and inference tests."""

from __future__ import annotations

import numpy as np

from facepulse.train.data import ArrayClips


def noise_clips(n: int, clip_len: int = 32, size: int = 16, fps: float = 30.0, seed: int = 0) -> ArrayClips:
    """Random uint8 clips with sinusoidal pulse labels (HR 60-120 bpm): for plumbing tests."""
    rng = np.random.default_rng(seed)
    clips = rng.integers(0, 256, size=(n, clip_len, size, size, 3), dtype=np.uint8)
    hr_bpm = rng.uniform(60, 120, size=n)
    t_s = np.arange(clip_len) / fps
    ppg = np.sin(2 * np.pi * hr_bpm[:, None] / 60.0 * t_s[None, :])
    return ArrayClips(clips, ppg, hr_bpm, fps, [f"v{i // 4}" for i in range(n)])


def render_videos(seeds, size: int = 32, duration_s: float = 12.0, fps: float = 30.0, overrides=None, scenario="still"):
    """Synthetic face videos (facepulse.synth, in memory) whose frame is the face crop:
    the face fills most of a ``size`` x ``size`` frame. ``overrides``: forced parameters."""
    from facepulse.synth import SynthParams, generate_video, sample_params
    from facepulse.synth.params import CameraParams

    base = SynthParams(
        duration_s=duration_s,
        camera=CameraParams(width=size, height=size, fps=fps, exposure_s=min(0.01, 1 / fps), face_height_frac=0.8),
    )
    return [generate_video(sample_params(scenario, seed=s, base=base, overrides=overrides), seed=s) for s in seeds]


def video_clips(videos, clip_len: int = 64, stride: int = 32) -> ArrayClips:
    """Labelled clips cut from rendered videos every ``stride`` frames."""
    clips, ppg, hr, vids, starts = [], [], [], [], []
    for video in videos:
        for s in range(0, video.frames.shape[0] - clip_len + 1, stride):
            clips.append(video.frames[s : s + clip_len])
            ppg.append(video.ppg[s : s + clip_len])
            hr.append(float(video.hr_bpm[s : s + clip_len].mean()))
            vids.append(f"seed{video.seed}")
            starts.append(s)
    return ArrayClips(np.stack(clips), np.stack(ppg), np.array(hr), videos[0].fps, vids, starts=starts)
