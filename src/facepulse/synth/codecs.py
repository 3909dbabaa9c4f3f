"""Video codecs of the synthetic-dataset writer, by name (registry ``CODECS``).

Each entry adds a configured video stream to an open PyAV output container:
``f(container, rate: Fraction, codec: CodecParams) -> stream``. The writer sets the
frame size, single-threaded encoding and bit-exact flags around it.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from facepulse.registry import Registry

if TYPE_CHECKING:
    from facepulse.synth.params import CodecParams

CODECS: Registry[Callable[[Any, Fraction, CodecParams], Any]] = Registry("codec")


@CODECS.register("ffv1")
def ffv1(container: Any, rate: Fraction, codec: CodecParams) -> Any:
    """FFV1, lossless 8-bit RGB (bgr0): the frames decode bit for bit."""
    stream = container.add_stream("ffv1", rate=rate)
    stream.pix_fmt = "bgr0"
    return stream


@CODECS.register("h264")
def h264(container: Any, rate: Fraction, codec: CodecParams) -> Any:
    """H.264 (libx264), YUV 4:2:0, constant rate factor ``codec.crf``, ``codec.preset``."""
    # Macroblock-tree rate control off: its SIMD code made libx264 (core 165) give
    # different bytes from run to run on the same frames; everything else is the preset's.
    options = {"crf": str(codec.crf), "preset": codec.preset, "x264-params": "mbtree=0"}
    stream = container.add_stream("libx264", rate=rate, options=options)
    stream.pix_fmt = "yuv420p"
    return stream
