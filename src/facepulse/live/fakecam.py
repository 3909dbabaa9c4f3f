"""Y4M files for Chromium's fake camera (``--use-file-for-fake-video-capture=CLIP.y4m``).

Used by the web page's browser test and benchmark: a synthetic face clip with a known
pulse becomes the browser's webcam. Y4M is raw 8-bit YUV 4:2:0 with a text header.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from facepulse.errors import InputError

__all__ = ["write_y4m"]


def write_y4m(path: str | Path, frames_rgb: Iterable[np.ndarray], fps: float) -> int:
    """Write (H, W, 3) uint8 RGB frames (even H and W) as a Y4M (I420, BT.601); returns the count."""
    import cv2

    rate = Fraction(fps).limit_denominator(1001)
    n = 0
    with open(path, "wb") as f:
        for frame in frames_rgb:
            height, width = frame.shape[:2]
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or height % 2 or width % 2:
                raise InputError(f"{path}: frame {n} must be (even H, even W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
            if n == 0:
                f.write(f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 C420jpeg\n".encode())
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420).tobytes())
            n += 1
    if n == 0:
        raise InputError(f"{path}: no frames to write")
    return n
