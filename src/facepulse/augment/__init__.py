"""Clip augmentations for training deep rPPG models (see :mod:`facepulse.augment.clip`)."""

from __future__ import annotations

from facepulse.augment.clip import (
    AUGMENTS,
    ERASE_FILLS,
    Augment,
    ClipSample,
    ColorJitter,
    Compose,
    HRBalance,
    HRBalancedClips,
    RandomErase,
    RandomHFlip,
    Tubes,
    as_generator,
    build_augment,
    clip_hr_labels,
    color_gain,
    erase_tubes,
    hflip,
    sample_tubes,
    source_frames_needed,
    temporal_resample,
)

__all__ = [
    "AUGMENTS",
    "ERASE_FILLS",
    "Augment",
    "ClipSample",
    "ColorJitter",
    "Compose",
    "HRBalance",
    "HRBalancedClips",
    "RandomErase",
    "RandomHFlip",
    "Tubes",
    "as_generator",
    "build_augment",
    "clip_hr_labels",
    "color_gain",
    "erase_tubes",
    "hflip",
    "sample_tubes",
    "source_frames_needed",
    "temporal_resample",
]
