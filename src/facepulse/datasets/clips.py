"""Fixed-length face clips from the preprocessing cache, as a PyTorch dataset.

:class:`ClipDataset` cuts every cached video into clips of ``clip_len`` frames every
``stride`` frames, only inside runs of usable frames (a face was tracked, and the label
exists when labels are asked for), optionally resampled to a common frame rate. Items
are dicts::

    clip        (3, T, S, S) float32 face crops, pixel / 255 (i.e. [0, 1]) by default
    rgb         (3, T) float32 mean skin colour instead of ``clip`` when source="trace"
    fps         float, frames/s of the clip
    ppg         (T,) float32 reference pulse, standardised per clip   (labels=True)
    hr_bpm      float, reference HR of the clip (beats/min)           (labels=True)
    video_id, subject_id : str
    start       int, index of the clip's first frame in its video (native frames)
    start_s     float, time of the clip's first sample (s from the video's first frame)

Frames are read lazily (only the clip's HDF5 chunks), through file handles opened in
the process that reads them, so DataLoader workers (fork or spawn) each open their own.

>>> ds = ClipDataset(".cache/facepulse/ubfc-rppg/3f2a9c0d1e4b", clip_len=128, stride=64, fps=30)  # doctest: +SKIP
>>> item = ds[0]; item["clip"].shape, item["hr_bpm"]                                            # doctest: +SKIP
(torch.Size([3, 128, 72, 72]), 97.3)
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from facepulse.datasets._common import find_paths
from facepulse.datasets.cache import CachedVideo, cached_files
from facepulse.io.timegrid import source_positions as _source_positions
from facepulse.errors import ConfigError, InputError

if TYPE_CHECKING:
    from facepulse.config import DataConfig
    from facepulse.datasets.base import Record

__all__ = ["ClipDataset", "clip_datasets", "records_by_split"]

Item = dict[str, Any]
_MAX_OPEN_FILES = 32  # per process: enough for shuffled reading, far below fd limits


@dataclass
class _Video:
    """What the index needs of one cache file (small arrays only, picklable)."""

    path: str
    video_id: str
    subject_id: str
    fps: float
    timestamps_s: np.ndarray
    ppg: np.ndarray | None
    hr_bpm: np.ndarray | None


def _runs(ok: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], ok.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _resolve_files(files_or_cache_dir: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(files_or_cache_dir, (str, Path)):
        root = Path(files_or_cache_dir)
        if root.is_file():
            return [root]
        if not root.is_dir():
            raise InputError(f"{root}: no such cache file or folder")
        direct = cached_files(root)
        if direct:
            return direct
        # A dataset folder holding one config folder is fine; several would mix configs.
        folders = sorted({p.parent for p in find_paths(root, "**/*.h5") if not p.name.startswith(".")})
        if not folders:
            raise InputError(f"{root}: no cache files (*.h5); run `facepulse preprocess` first")
        if len(folders) > 1:
            names = ", ".join(str(f.relative_to(root)) for f in folders[:4])
            raise ConfigError(f"{root}: cache files of several preprocess configs ({names}); give one folder")
        return cached_files(folders[0])
    files = [Path(p) for p in files_or_cache_dir]
    if not files:
        raise InputError("ClipDataset: no cache files given")
    return files


class ClipDataset(Dataset):
    """Clips of cached videos (see the module docstring for the items).

    Parameters
    ----------
    files_or_cache_dir : cache files, or a cache folder (``<cache>/<dataset>/<hash>``, or
        ``<cache>/<dataset>`` when it holds a single config).
    clip_len : frames per clip (T) as returned, before ``augment`` changes it.
    stride : frames between the starts of consecutive clips of a run of usable frames.
    fps : resample clips to this frame rate (linear interpolation between the two
        nearest frames, by their timestamps); None keeps the native frames.
    labels : add ``ppg`` and ``hr_bpm`` (clips whose reference is missing are skipped).
    augment : applied to each item: a ``facepulse.augment.Augment`` (gets a
        ``ClipSample``; its ``source_frames`` decides how many frames are loaded, e.g.
        2 T for ``hr_balance``) or any callable ``item dict -> item dict``.
    source : ``"clip"`` (face crops) or ``"trace"`` (mean skin RGB, ``rgb`` (3, T)).
    extra_frames : load this many frames more per clip (a longer raw window).
    pixel_scale : crops (and traces) are multiplied by this; the default 1/255 gives
        [0, 1]. ``facepulse.train`` expects 0..255 and passes 1.0.
    hr_from : ``"ppg"``: clip HR = spectral peak of the clip's reference PPG
        (:func:`facepulse.signal.hr.estimate_hr_bpm`); ``"dataset"``: mean of the
        dataset's HR readings over the clip.
    band_bpm : HR band of the ``"ppg"`` estimate.
    label_fn : labels from elsewhere than the cache file's reference (e.g. a teacher,
        :mod:`facepulse.train.teacher`): ``label_fn(video: CachedVideo) -> (N,)`` pulse per
        frame, NaN where there is no label. Called once per video when the dataset is
        built; the file's reference PPG and HR are then never read. Needs
        ``hr_from="ppg"`` (the clip HR is the spectral peak of the clip's label).

    Clips never include an invalid frame (no face, or a gap longer than the trace's
    ``max_gap_s``), nor, with labels, a frame without reference.
    """

    def __init__(
        self,
        files_or_cache_dir: str | Path | Sequence[str | Path],
        clip_len: int = 128,
        stride: int = 64,
        fps: float | None = None,
        labels: bool = True,
        augment: Callable[..., Any] | None = None,
        source: Literal["clip", "trace"] = "clip",
        *,
        extra_frames: int = 0,
        pixel_scale: float = 1.0 / 255.0,
        hr_from: Literal["ppg", "dataset"] = "ppg",
        band_bpm: tuple[float, float] = (42.0, 210.0),
        label_fn: Callable[[CachedVideo], np.ndarray] | None = None,
    ) -> None:
        if clip_len < 2 or stride < 1 or extra_frames < 0:
            raise ConfigError(f"ClipDataset: need clip_len >= 2, stride >= 1, extra_frames >= 0 (got {clip_len}, {stride}, {extra_frames})")
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ConfigError(f"ClipDataset: fps must be positive or None, got {fps}")
        if source not in ("clip", "trace"):
            raise ConfigError(f"ClipDataset: source must be 'clip' or 'trace', got {source!r}")
        if hr_from not in ("ppg", "dataset"):
            raise ConfigError(f"ClipDataset: hr_from must be 'ppg' or 'dataset', got {hr_from!r}")
        if label_fn is not None and hr_from != "ppg":
            raise ConfigError("ClipDataset: a label_fn gives a pulse, so it needs hr_from='ppg'")
        self.clip_len = int(clip_len)
        self.stride = int(stride)
        self.fps = None if fps is None else float(fps)
        self.labels = bool(labels)
        self.augment = augment
        self.source = source
        self.pixel_scale = float(pixel_scale)
        self.hr_from = hr_from
        self.band_bpm = (float(band_bpm[0]), float(band_bpm[1]))
        self._label_fn = label_fn  # used while indexing only (not kept: items need no callable)
        source_frames = getattr(augment, "source_frames", None)
        base = int(source_frames(self.clip_len)) if callable(source_frames) else self.clip_len
        self.load_len = base + int(extra_frames)

        self.videos: list[_Video] = []
        items: list[tuple[int, int]] = []
        for path in _resolve_files(files_or_cache_dir):
            video, starts = self._index_file(path)
            fi = len(self.videos)
            self.videos.append(video)
            items.extend((fi, s) for s in starts)
        self._items = np.asarray(items, dtype=np.int64).reshape(-1, 2)
        self._label_fn = None
        self._handles: OrderedDict[int, Any] = OrderedDict()
        self._pid = os.getpid()

    # ----------------------------------------------------------------- indexing
    def _index_file(self, path: Path) -> tuple[_Video, list[int]]:
        with CachedVideo(path) as v:
            if self.source == "clip" and not v.has_clips:
                raise InputError(f"{path}: no face clips (preprocessed with clips=False); use source='trace'")
            ok = v.valid.copy()
            if self.source == "clip":
                ok &= v.clip_valid
            if self._label_fn is not None:
                # labels from elsewhere: the file's reference is not read at all
                ppg = np.asarray(self._label_fn(v), dtype=np.float64) if self.labels else None
                if ppg is not None and ppg.shape != (v.n_frames,):
                    raise InputError(f"{path}: label_fn gave {ppg.shape} labels for {v.n_frames} frames")
                hr = None
            else:
                ppg = v.ppg
                hr = v.hr_bpm
            if self.labels:
                label = ppg if self.hr_from == "ppg" else hr
                if label is None:
                    what = "PPG" if self.hr_from == "ppg" else "HR"
                    raise InputError(f"{path}: no reference {what} for labels (labels=False for unlabelled clips)")
                ok &= np.isfinite(label)
                if ppg is not None:
                    ok &= np.isfinite(ppg)
            video = _Video(str(path), v.video_id, v.subject_id, v.fps, v.timestamps_s, ppg, hr)
        fps_out = self.fps if self.fps is not None else video.fps
        if self.labels and self.hr_from == "ppg":
            need = math.ceil(2.0 * 60.0 / self.band_bpm[0] * fps_out)
            if self.load_len < need:
                raise ConfigError(
                    f"ClipDataset: {self.load_len} frames at {fps_out:g} fps are too short for an HR label down to "
                    f"{self.band_bpm[0]:g} bpm (needs {need}); use longer clips or hr_from='dataset'"
                )
        if self.fps is None:
            grid_ok = ok
        else:
            i0, i1, w = _source_positions(video.timestamps_s, self._grid(video))
            grid_ok = ok[i0] & (ok[i1] | (w == 0.0))
        starts: list[int] = []
        for a, b in _runs(grid_ok):
            starts.extend(range(a, b - self.load_len + 1, self.stride))
        return video, starts

    def _grid(self, video: _Video) -> np.ndarray:
        """Sample times (s) of the resampled video: every 1/fps from its first frame."""
        t = video.timestamps_s
        n = int(math.floor((t[-1] - t[0]) * self.fps + 1e-9)) + 1
        return t[0] + np.arange(n) / self.fps

    def __len__(self) -> int:
        return int(self._items.shape[0])

    @property
    def clip_index(self) -> list[tuple[str, int]]:
        """``(video_id, start)`` of every clip, in item order (start on the clip grid)."""
        return [(self.videos[f].video_id, int(s)) for f, s in self._items]

    # ------------------------------------------------------------------ reading
    def _file(self, fi: int):
        import h5py

        pid = os.getpid()
        if pid != self._pid:
            # Inherited through fork: HDF5 handles must not be shared across processes.
            self._handles = OrderedDict()
            self._pid = pid
        handle = self._handles.get(fi)
        if handle is None:
            handle = h5py.File(self.videos[fi].path, "r")
            self._handles[fi] = handle
            if len(self._handles) > _MAX_OPEN_FILES:
                _, oldest = self._handles.popitem(last=False)
                oldest.close()
        else:
            self._handles.move_to_end(fi)
        return handle

    def close(self) -> None:
        """Close this process's open cache files (they reopen on the next read)."""
        if self._pid == os.getpid():
            for handle in self._handles.values():
                handle.close()
        self._handles = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"] = OrderedDict()
        return state

    def __getitem__(self, index: int) -> Item:
        if not -len(self) <= index < len(self):
            raise IndexError(f"clip {index} out of range ({len(self)} clips)")
        fi, start = (int(x) for x in self._items[index])
        video = self.videos[fi]
        handle = self._file(fi)
        name = "clips" if self.source == "clip" else "rgb"
        n = self.load_len
        if self.fps is None:
            frames = np.asarray(handle[name][start : start + n], dtype=np.float32)
            ppg = video.ppg[start : start + n] if video.ppg is not None else None
            hr = video.hr_bpm[start : start + n] if video.hr_bpm is not None else None
            first_frame, fps_out = start, video.fps
            start_s = float(video.timestamps_s[start])
        else:
            grid = self._grid(video)[start : start + n]
            i0, i1, w = _source_positions(video.timestamps_s, grid)
            a, b = int(i0[0]), int(i1[-1]) + 1
            block = np.asarray(handle[name][a:b], dtype=np.float32)
            wb = w.astype(np.float32).reshape((-1,) + (1,) * (block.ndim - 1))
            frames = (1.0 - wb) * block[i0 - a] + wb * block[i1 - a]
            ppg = _lerp(video.ppg, i0, i1, w)
            hr = _lerp(video.hr_bpm, i0, i1, w)
            first_frame, fps_out, start_s = a, self.fps, float(grid[0])
        frames *= self.pixel_scale
        if self.source == "clip":
            data = torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2)))  # (3, T, S, S)
        else:
            data = torch.from_numpy(np.ascontiguousarray(frames.T))  # (3, T)
        item: Item = {
            "clip" if self.source == "clip" else "rgb": data,
            "fps": float(fps_out),
            "video_id": video.video_id,
            "subject_id": video.subject_id,
            "start": int(first_frame),
            "start_s": start_s,
        }
        if self.labels:
            item["ppg"] = torch.from_numpy(_standardise(ppg).astype(np.float32))
            item["hr_bpm"] = self._hr_label(ppg, hr, fps_out, video, first_frame)
        if self.augment is not None:
            item = apply_augment(self.augment, item)
        return item

    def _hr_label(self, ppg: np.ndarray, hr: np.ndarray | None, fps: float, video: _Video, frame: int) -> float:
        if self.hr_from == "dataset":
            return float(np.mean(hr))
        from facepulse.errors import FacepulseError
        from facepulse.signal.hr import estimate_hr_bpm

        try:
            return estimate_hr_bpm(ppg, fps, band_bpm=self.band_bpm)
        except FacepulseError as err:
            raise InputError(f"{video.path}: no HR label for the clip at frame {frame} ({err})") from None

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_config(
        cls,
        data: DataConfig,
        records: Sequence[Record] | None = None,
        *,
        clip_len: int | None = None,
        augment: Callable[..., Any] | None = None,
        workers: int = 1,
        progress: bool = False,
        pixel_scale: float = 1.0,
        label_fn: Callable[[CachedVideo], np.ndarray] | None = None,
    ) -> ClipDataset:
        """Clips of ``records`` (default: all of ``data.dataset``) of a
        :class:`facepulse.config.DataConfig`, preprocessing missing videos into
        ``data.cache_dir`` first (face crops of ``data.size`` pixels).

        Clips are resampled to ``data.fps``; ``clip_len`` overrides ``data.clip_len``.
        ``pixel_scale`` defaults to 1.0 (pixel values 0..255, what facepulse.train and
        facepulse.models expect). ``label_fn``: labels instead of the reference (see the
        class). Raises InputError if a video cannot be preprocessed.
        """
        from facepulse.config import resolve_data_root
        from facepulse.datasets import get_reader
        from facepulse.datasets.cache import PreprocessConfig, preprocess_dataset

        reader = get_reader(data.dataset, resolve_data_root(data.root))
        records = list(reader.records() if records is None else records)
        if not records:
            raise ConfigError(f"data: no videos of {data.dataset} to cut clips from")
        summary = preprocess_dataset(
            reader, data.cache_dir, PreprocessConfig.create(size=data.size), workers=workers,
            progress=progress, records=records,
        )
        if summary.failed:
            vid, msg = next(iter(summary.failed.items()))
            raise InputError(f"preprocessing {vid} failed: {msg} ({len(summary.failed)} videos failed)")
        return cls(
            [summary.paths[r.video_id] for r in records],
            clip_len=clip_len if clip_len is not None else data.clip_len,
            stride=data.clip_stride,
            fps=data.fps,
            labels=data.labels,
            augment=augment,
            pixel_scale=pixel_scale,
            label_fn=label_fn,
        )


def _lerp(values: np.ndarray | None, i0: np.ndarray, i1: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    return None if values is None else (1.0 - w) * values[i0] + w * values[i1]


def _standardise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def apply_augment(augment: Callable[..., Any], item: Item, generator: Any = None) -> Item:
    """A new item with ``augment`` applied: a :class:`facepulse.augment.Augment` (drawing
    from ``generator``) transforms the clip and its labels; any other callable gets the
    whole item. Shared by :class:`ClipDataset` and the training data module."""
    from facepulse.augment import Augment, ClipSample

    if not isinstance(augment, Augment):
        return augment(item)
    if "clip" not in item:
        raise ConfigError("ClipDataset: facepulse.augment augmentations need source='clip'")
    hr = item.get("hr_bpm")
    sample = augment(ClipSample(clip=item["clip"], fps=float(item["fps"]), ppg=item.get("ppg"),
                                hr_bpm=None if hr is None else float(hr)), generator)
    out = dict(item)
    out["clip"] = sample.clip.contiguous()
    if sample.ppg is not None:
        out["ppg"] = sample.ppg.to(torch.float32)
    if sample.hr_bpm is not None:
        out["hr_bpm"] = float(sample.hr_bpm)
    return out


# ------------------------------------------------------------------------- splits


def records_by_split(data: DataConfig, seed: int = 0) -> dict[str, list[Record]]:
    """The records of ``data.dataset`` grouped subject-wise into train / val / test.

    ``data`` is a :class:`facepulse.config.DataConfig`: ``data.split_file`` gives fixed
    subject lists (:func:`facepulse.eval.splits.load_split`); otherwise a random subject
    split with ``data.split_fractions`` and ``seed``
    (:func:`facepulse.eval.splits.random_split`). No subject is in two splits.
    """
    from facepulse.config import resolve_data_root
    from facepulse.datasets import get_reader
    from facepulse.eval.splits import load_split, random_split, subjects_of

    reader = get_reader(data.dataset, resolve_data_root(data.root))
    records = reader.records()
    if data.split_file is not None:
        split = load_split(data.split_file)
    else:
        train_f, val_f, test_f = data.split_fractions
        if abs(train_f + val_f + test_f - 1.0) > 1e-6:
            raise ConfigError(f"data.split_fractions {tuple(data.split_fractions)}: must sum to 1")
        split = random_split(subjects_of(records), val_fraction=val_f, test_fraction=test_f, seed=seed)
    return split.assign(records)


def clip_datasets(
    data: DataConfig,
    seed: int = 0,
    *,
    augment: Mapping[str, Callable[..., Any] | None] | None = None,
    workers: int = 1,
    progress: bool = False,
    pixel_scale: float = 1.0 / 255.0,
) -> dict[str, ClipDataset]:
    """Train / val / test :class:`ClipDataset` of a DataConfig, split by subject.

    Keys are the roles ``"train"``, ``"val"``, ``"test"``; role r takes the subject list
    named ``data.<r>_split`` (e.g. ``data.val_split = "test"`` validates on the test
    list). Roles whose list has no video are left out. ``augment`` maps roles to
    augmentations (typically only ``"train"`` has one).
    """
    groups = records_by_split(data, seed)
    lists = {"train": data.train_split, "val": data.val_split, "test": data.test_split}
    out: dict[str, ClipDataset] = {}
    for role, list_name in lists.items():
        if list_name not in groups:
            raise ConfigError(f"data.{role}_split={list_name!r}: must be one of {', '.join(groups)}")
        records = groups[list_name]
        if records:
            out[role] = ClipDataset.from_config(
                data, records, augment=(augment or {}).get(role), workers=workers,
                progress=progress, pixel_scale=pixel_scale,
            )
    return out
