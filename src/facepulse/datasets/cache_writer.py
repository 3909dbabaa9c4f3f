"""Writing cache files: chunked, compressed HDF5, under a temporary name until complete.

A temporary file is named ``.<name>.<pid>@<host>.tmp`` (the host matters on a filesystem
shared by several nodes); :func:`remove_stale_temps` deletes those whose process on this
host is gone, so a killed run leaves nothing behind once the folder is used again.
"""

from __future__ import annotations

import glob
import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from facepulse.datasets.cache_config import TMP_SUFFIX, PreprocessConfig
from facepulse.fileio import pid_alive

__all__ = ["CacheWriter", "remove_stale_temps", "temp_path", "write_config_file"]

_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)(?:@(?P<host>[^@]+))?" + re.escape(TMP_SUFFIX) + "$")


def _host() -> str:
    return socket.gethostname().replace("/", "_").replace("@", "_") or "localhost"


def temp_path(path: Path) -> Path:
    """The temporary name under which this process writes ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}@{_host()}{TMP_SUFFIX}")


def remove_stale_temps(root: Path, name: str | None = None) -> None:
    """Delete temporary files (of file ``name``, or all) left by dead processes of this host.

    Temporaries of other hosts are left alone: their processes cannot be checked from here.
    """
    host = _host()
    pattern = f".{glob.escape(name)}.*{TMP_SUFFIX}" if name else f".*{TMP_SUFFIX}"
    for tmp in root.glob(pattern):
        match = _TMP_NAME.match(tmp.name)
        if match is None or (name and match["name"] != name):
            continue
        if match["host"] is not None and match["host"] != host:
            continue
        if not pid_alive(int(match["pid"])):
            tmp.unlink(missing_ok=True)


def write_config_file(root: Path, config: PreprocessConfig) -> None:
    """``<root>/config.json``: the config of the folder, written once (atomically)."""
    target = root / "config.json"
    if target.is_file():
        return
    text = json.dumps({"config": config.model_dump(), "content": config.content()}, indent=2, sort_keys=True)
    tmp = temp_path(target)
    tmp.write_text(text + "\n")
    os.replace(tmp, target)


def _compression(config: PreprocessConfig) -> dict[str, Any]:
    if config.compression == "gzip":
        return {"compression": "gzip", "compression_opts": config.compression_level}
    if config.compression == "lzf":
        return {"compression": "lzf"}
    return {}


class CacheWriter:
    """Streams face crops into a chunked, compressed HDF5 dataset, one chunk at a time."""

    def __init__(self, path: Path, config: PreprocessConfig, fps: float) -> None:
        self.path = path
        self.config = config
        self.comp = _compression(config)
        self.file = h5py.File(path, "w")
        self.chunk = max(1, int(round(config.chunk_s * fps)))
        self.n = 0
        self.boxes: list[np.ndarray] = []
        self.ok: list[bool] = []
        self.clips = None
        if config.clips:
            s = config.size
            self.buffer = np.empty((self.chunk, s, s, 3), np.uint8)
            self.n_buffered = 0
            self.clips = self.file.create_dataset(
                "clips", shape=(0, s, s, 3), maxshape=(None, s, s, 3), dtype=np.uint8,
                chunks=(self.chunk, s, s, 3), **self.comp,
            )

    def add(self, crop: np.ndarray, box: np.ndarray, ok: bool) -> None:
        self.buffer[self.n_buffered] = crop
        self.n_buffered += 1
        self.boxes.append(box)
        self.ok.append(ok)
        if self.n_buffered == self.chunk:
            self._flush()

    def _flush(self) -> None:
        if self.clips is None or self.n_buffered == 0:
            return
        # Whole-chunk writes: each chunk is compressed once, never read back.
        self.clips.resize(self.n + self.n_buffered, axis=0)
        self.clips[self.n : self.n + self.n_buffered] = self.buffer[: self.n_buffered]
        self.n += self.n_buffered
        self.n_buffered = 0

    def array(self, name: str, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values)
        kw = dict(self.comp) if values.size > 256 else {}
        if kw and values.dtype.kind == "f":
            kw["shuffle"] = True  # byte-shuffling makes float arrays compress far better
        self.file.create_dataset(name, data=values, **kw)

    def finish(self, n_frames: int, arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
        self._flush()
        if self.clips is not None:
            if self.n != n_frames:
                raise RuntimeError(f"{self.path}: {self.n} crops for {n_frames} frames")
            self.array("clip_boxes", np.asarray(self.boxes, np.float64).reshape(n_frames, 4))
            self.array("clip_valid", np.asarray(self.ok, bool))
        for name, values in arrays.items():
            self.array(name, values)
        for key, value in attrs.items():
            self.file.attrs[key] = value
        self.file.flush()
        self.file.close()
        # Data on disk before the rename makes it visible: a crash never shows a torn file.
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def abort(self) -> None:
        try:
            self.file.close()
        except Exception:  # noqa: BLE001  (closing a half-written file while unwinding)
            pass
