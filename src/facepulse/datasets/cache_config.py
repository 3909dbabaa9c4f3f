"""What the preprocessing cache computes (:class:`PreprocessConfig`) and where it stores it.

Layout: ``<cache_dir>/<dataset>/<config_hash>/<video_id>.h5`` (see :mod:`facepulse.datasets.cache`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from facepulse.errors import ConfigError
from facepulse.roi.crops import BOX_SCALE, BOX_SMOOTH_S

__all__ = ["FORMAT", "FORMAT_VERSION", "PreprocessConfig", "cache_path", "cache_root", "file_stem"]

FORMAT = "facepulse-cache"
FORMAT_VERSION = 2  # 2: per-region traces (region_rgb) for the fused estimator
SUFFIX = ".h5"
TMP_SUFFIX = ".tmp"
# Settings that only change how bytes are stored, not what is stored: not hashed.
STORAGE_FIELDS = ("compression", "compression_level", "chunk_s")


class PreprocessConfig(BaseModel):
    """What the preprocessing stage computes and how it stores it.

    Content settings (hashed into the cache folder name):

    size : face crops are ``size x size`` pixels (uint8 RGB).
    clips : store face crops; False keeps only traces, boxes and references.
    box_scale : side of the square crop box, as a multiple of the larger side of the
        tracked face box (1.5 takes in the whole head and a margin).
    box_smooth_s : the crop box is the mean of the square boxes over a centred window of
        this many seconds, so crops do not jitter with the tracker (0 = no smoothing).
    detector : face detector name (``"auto"`` is resolved before hashing).
    max_gap_s, roi : as in :func:`facepulse.roi.trace.extract_trace`.

    Storage settings (not hashed): ``compression`` (``"gzip"``, ``"lzf"`` or ``"none"``),
    ``compression_level`` (gzip 1-9), ``chunk_s`` (seconds of frames per HDF5 chunk).
    The default, gzip level 4, stores UBFC face crops in a third of their raw size
    (levels 1-3 about 0.40, lzf 0.90: docs/benchmarks.md) at a small fraction of the
    per-frame cost of decoding.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(72, ge=8, le=1024)
    clips: bool = True
    box_scale: float = Field(BOX_SCALE, gt=0, le=10)
    box_smooth_s: float = Field(BOX_SMOOTH_S, ge=0, le=10)
    detector: str = "auto"
    max_gap_s: float = Field(1.0, ge=0)
    roi: str = "skin"
    compression: Literal["gzip", "lzf", "none"] = "gzip"
    compression_level: int = Field(4, ge=1, le=9)
    chunk_s: float = Field(1.0, gt=0, le=60)

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, value: str) -> str:
        from facepulse.face.detectors import DETECTORS

        if value != "auto" and value not in DETECTORS:
            raise ValueError(f"unknown face detector {value!r}; available: auto, {', '.join(DETECTORS.names())}")
        return value

    @field_validator("roi")
    @classmethod
    def _known_roi(cls, value: str) -> str:
        from facepulse.roi.skin import ROIS

        if value not in ROIS:
            raise ValueError(f"unknown ROI {value!r}; available: {', '.join(ROIS.names())}")
        return value

    @classmethod
    def create(cls, **fields: Any) -> PreprocessConfig:
        """Like the constructor, but a bad value raises ConfigError naming the field."""
        try:
            return cls(**fields)
        except ValidationError as err:
            first = err.errors()[0]
            name = ".".join(str(x) for x in first["loc"]) or "config"
            raise ConfigError(f"preprocess config: field {name!r}: {first['msg']}") from None

    def resolved(self) -> PreprocessConfig:
        """The same config with ``detector="auto"`` replaced by the detector it picks."""
        if self.detector != "auto":
            return self
        import importlib.util

        # make_detector("auto") picks MediaPipe when it is installed, else Haar.
        name = "mediapipe" if importlib.util.find_spec("mediapipe") is not None else "haar"
        return self.model_copy(update={"detector": name})

    def content(self) -> dict[str, Any]:
        """The hashed settings (resolved), plus the file-format version."""
        data = self.resolved().model_dump(exclude=set(STORAGE_FIELDS))
        data["format_version"] = FORMAT_VERSION
        return data

    def hash(self) -> str:
        """12 hex digits identifying :meth:`content`."""
        text = json.dumps(self.content(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_root(cache_dir: str | Path, dataset: str, config: PreprocessConfig) -> Path:
    """``<cache_dir>/<dataset>/<config_hash>``: the folder of one dataset and config."""
    return Path(cache_dir) / dataset / config.hash()


def file_stem(video_id: str) -> str:
    """The file name (without suffix) of a video id; ids are flat names, separators guarded."""
    return video_id.replace("/", "~").replace("\\", "~")


def cache_path(cache_dir: str | Path, dataset: str, video_id: str, config: PreprocessConfig) -> Path:
    """Where the cache file of one video lives."""
    return cache_root(cache_dir, dataset, config) / f"{file_stem(video_id)}{SUFFIX}"
