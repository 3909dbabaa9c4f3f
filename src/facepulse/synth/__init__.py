"""Synthetic face videos with an exactly known pulse (generator, scenarios, writer).

>>> from facepulse.synth import SynthParams, generate_video
>>> video = generate_video(SynthParams(duration_s=5), seed=1)  # doctest: +SKIP

See docs/synthetic.md for the model and the on-disk layout.
"""

from facepulse.synth.generator import FrameTruth, Renderer, SynthVideo, generate_video, stream_rng
from facepulse.synth.params import (
    CameraParams,
    CodecParams,
    LightingParams,
    MotionParams,
    OpticsParams,
    PhysiologyParams,
    SynthParams,
)

__all__ = [
    "CameraParams",
    "CodecParams",
    "FrameTruth",
    "LightingParams",
    "MotionParams",
    "OpticsParams",
    "PhysiologyParams",
    "Renderer",
    "SynthParams",
    "SynthVideo",
    "generate_video",
    "stream_rng",
]
