"""Synthetic face videos with an exactly known pulse (generator, scenarios, writer).

>>> from facepulse.synth import SynthParams, generate_video
>>> video = generate_video(SynthParams(duration_s=5), seed=1)  # doctest: +SKIP
>>> video.frames.shape                                          # doctest: +SKIP
(150, 128, 128, 3)

See docs/synthetic.md for the model, the scenarios and the on-disk layout. Names are
imported lazily, so ``import facepulse.synth.params`` does not load OpenCV or MediaPipe.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CameraParams": "params",
    "CodecParams": "params",
    "LightingParams": "params",
    "MotionParams": "params",
    "OpticsParams": "params",
    "PhysiologyParams": "params",
    "SynthParams": "params",
    "FrameTruth": "generator",
    "Renderer": "generator",
    "SynthVideo": "generator",
    "generate_video": "generator",
    "SCENARIOS": "scenarios",
    "sample_params": "scenarios",
    "video_seed": "seeds",
    "stream_rng": "seeds",
    "apply_codec": "writer",
    "write_dataset": "writer",
    "write_video": "writer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"facepulse.synth.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'facepulse.synth' has no attribute {name!r}")
