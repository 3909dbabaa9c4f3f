"""Clip augmentations for training deep rPPG models (see :mod:`facepulse.augment.clip`)."""

from __future__ import annotations

from facepulse.augment.clip import (
    AUGMENTS,
    Augment,
    ClipSample,
    ColorJitter,
    Compose,
    HRBalance,
    RandomErase,
    RandomHFlip,
    Tubes,
    as_generator,
    build_augment,
    color_gain,
    erase_tubes,
    hflip,
    sample_tubes,
    source_frames_needed,
    temporal_resample,
)

__all__ = [
    "AUGMENTS",
    "Augment",
    "ClipSample",
    "ColorJitter",
    "Compose",
    "HRBalance",
    "RandomErase",
    "RandomHFlip",
    "Tubes",
    "as_generator",
    "build_augment",
    "color_gain",
    "erase_tubes",
    "hflip",
    "sample_tubes",
    "source_frames_needed",
    "temporal_resample",
]
