"""Reading cache files: :class:`CachedVideo` (lazy arrays, face crops on demand)."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from facepulse.datasets.cache_config import FORMAT, FORMAT_VERSION, SUFFIX
from facepulse.errors import InputError

__all__ = ["CachedVideo", "cached_files", "open_cached"]


class CachedVideo:
    """One cache file, read lazily: each array is loaded on first access, crops on demand.

    Attributes (from the file's attributes): ``path``, ``dataset``, ``video_id``,
    ``subject_id``, ``tags`` (dict), ``fps`` (nominal frames/s), ``n_frames``,
    ``config`` (dict), ``config_hash``, ``source_path``, ``frames_without_face``,
    ``reference_alignment``, ``ppg_source``, ``hr_source``.

    Arrays (N = ``n_frames``): ``timestamps_s`` (N,) s, ``rgb`` (N, 3) 0-255, ``valid``
    (N,) bool, ``boxes`` (N, 4) px, ``ppg`` (N,) or None, ``hr_bpm`` (N,) bpm or None,
    ``clip_valid`` (N,) bool. Face crops: :meth:`clips` (only the frames asked for are
    read and decompressed).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: cache file not found")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError:
            raise InputError(f"{self.path}: not a readable HDF5 file") from None
        attrs = self._file.attrs
        if attrs.get("format") != FORMAT:
            self._file.close()
            raise InputError(f"{self.path}: not a facepulse cache file (attribute 'format' missing)")
        if int(attrs.get("format_version", -1)) != FORMAT_VERSION:
            version = attrs.get("format_version")
            self._file.close()
            raise InputError(
                f"{self.path}: cache format version {version} (this facepulse reads {FORMAT_VERSION}); preprocess again"
            )
        for name in ("timestamps_s", "rgb", "valid"):
            if name not in self._file:
                self._file.close()
                raise InputError(f"{self.path}: dataset {name!r} missing")
        self.dataset = str(attrs["dataset"])
        self.video_id = str(attrs["video_id"])
        self.subject_id = str(attrs["subject_id"])
        self.tags: dict[str, str] = json.loads(attrs["tags"])
        self.fps = float(attrs["fps"])
        self.n_frames = int(attrs["n_frames"])
        self.config: dict[str, Any] = json.loads(attrs["config"])
        self.config_hash = str(attrs["config_hash"])
        self.source_path = str(attrs["source_path"])
        self.frames_without_face = int(attrs["frames_without_face"])
        self.reference_alignment = str(attrs.get("reference_alignment", ""))
        self.ppg_source = str(attrs.get("ppg_source", ""))
        self.hr_source = str(attrs.get("hr_source", ""))

    def _read(self, name: str) -> np.ndarray | None:
        return self._file[name][()] if name in self._file else None

    @cached_property
    def timestamps_s(self) -> np.ndarray:
        return self._read("timestamps_s")

    @cached_property
    def rgb(self) -> np.ndarray:
        return self._read("rgb")

    @cached_property
    def region_rgb(self) -> np.ndarray | None:
        """(N, R, 3) mean RGB of each candidate region (the fused estimator's input)."""
        return self._read("region_rgb")

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(json.loads(self._file.attrs.get("region_names", "[]")))

    @cached_property
    def valid(self) -> np.ndarray:
        return self._read("valid").astype(bool)

    @cached_property
    def boxes(self) -> np.ndarray | None:
        return self._read("boxes")

    @cached_property
    def ppg(self) -> np.ndarray | None:
        return self._read("ppg")

    @cached_property
    def hr_bpm(self) -> np.ndarray | None:
        return self._read("hr_bpm")

    @property
    def has_clips(self) -> bool:
        return "clips" in self._file

    @property
    def clip_size(self) -> int:
        """Side of the face crops in pixels (0 without crops)."""
        return int(self._file["clips"].shape[1]) if self.has_clips else 0

    @cached_property
    def clip_valid(self) -> np.ndarray:
        """(N,) True where the crop was cut around a known face box."""
        v = self._read("clip_valid")
        return v.astype(bool) if v is not None else np.zeros(self.n_frames, bool)

    def clips(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Face crops of frames ``start:stop``: (n, S, S, 3) uint8 RGB."""
        if not self.has_clips:
            raise InputError(f"{self.path}: no face clips (preprocessed with clips=False)")
        stop = self.n_frames if stop is None else stop
        if not 0 <= start <= stop <= self.n_frames:
            raise InputError(f"{self.path}: frames {start}:{stop} outside 0:{self.n_frames}")
        return self._file["clips"][start:stop]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CachedVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CachedVideo({self.video_id!r}, {self.n_frames} frames, {self.path})"


def open_cached(path: str | Path) -> CachedVideo:
    """Open one cache file (lazy: nothing but its attributes is read yet)."""
    return CachedVideo(path)


def cached_files(root: str | Path) -> list[Path]:
    """The finished cache files in a folder (``<cache_dir>/<dataset>/<hash>``), sorted."""
    from facepulse.datasets._common import natural_key

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: cache folder not found")
    return sorted((p for p in root.glob(f"*{SUFFIX}") if not p.name.startswith(".")), key=lambda p: natural_key(p.stem))
