"""A simple layout for users' own recordings.

Layout::

    <root>/<name>.mp4              (or .avi .mkv .mov .m4v .webm); subject = <name>
    <root>/<name>.csv              columns ppg and/or hr_bpm, optional time_s
      or <root>/<name>.json        {"ppg": [...], "hr_bpm": [...], "time_s": [...]}
    <root>/<subject>/<name>.mp4    videos in a sub-folder share the subject <subject>

``time_s`` is seconds from the first video frame; without it there is one row per
video frame, at the video's frame rate.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from facepulse.datasets._common import (
    find_paths,
    VIDEO_SUFFIXES,
    finite_1d,
    increasing_times,
    natural_key,
    probe_fps,
    uniform_times_s,
)
from facepulse.datasets.base import DATASETS, DatasetReader, Record, Reference
from facepulse.errors import InputError

FIELDS = ("ppg", "hr_bpm", "time_s")


def _read_csv(path: Path) -> dict[str, list[str]]:
    with path.open(newline="", errors="replace") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise InputError(f"{path}: empty file; expected a header with ppg and/or hr_bpm")
        names = [n.strip() for n in reader.fieldnames]
        cols: dict[str, list[str]] = {n: [] for n in names if n in FIELDS}
        for row in reader:
            for raw_name, value in row.items():
                if raw_name is not None and raw_name.strip() in cols:
                    cols[raw_name.strip()].append((value or "").strip())
    return cols


def _read_json(path: Path) -> dict[str, list]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected an object with ppg and/or hr_bpm lists")
    return {k: data[k] for k in FIELDS if k in data}


def read_signals_file(path: Path, fps: float | None) -> Reference:
    """Parse a generic ``<stem>.csv`` / ``<stem>.json`` into a Reference.

    ``fps`` is the video's frame rate, needed only when the file has no ``time_s``.
    """
    cols = _read_csv(path) if path.suffix == ".csv" else _read_json(path)
    if "ppg" not in cols and "hr_bpm" not in cols:
        raise InputError(f"{path}: no 'ppg' or 'hr_bpm' field")
    arrays = {}
    for name, values in cols.items():
        if not isinstance(values, list):
            raise InputError(f"{path}: field {name!r} is not a list")
        try:
            arrays[name] = finite_1d([float(v) for v in values], path, f"field {name!r}")
        except (TypeError, ValueError):
            raise InputError(f"{path}: field {name!r} has a value that is not a number") from None
    lengths = {n: a.size for n, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{n} {k}" for n, k in lengths.items())
        raise InputError(f"{path}: fields have different lengths ({detail})")
    n = next(iter(lengths.values()))
    if "time_s" in arrays:
        t_s = increasing_times(arrays["time_s"], path, "time_s")
    else:
        if fps is None:
            raise InputError(f"{path}: no time_s and no frame rate to place rows at")
        t_s = uniform_times_s(n, fps)
    # Without time_s the rows are documented as one per video frame: align them by index.
    ref = Reference(per_frame="time_s" not in arrays, source=str(path))
    source = f"user file {path.name}"
    if "ppg" in arrays:
        ref.ppg, ref.ppg_t_s, ref.ppg_source = arrays["ppg"], t_s, source
    if "hr_bpm" in arrays:
        ref.hr_bpm, ref.hr_t_s, ref.hr_source = arrays["hr_bpm"], t_s.copy(), source
    return ref


@DATASETS.register("generic", help="Your own videos: <name>.mp4 + <name>.csv/.json (ppg, hr_bpm)")
class GenericReader(DatasetReader):
    """A folder of videos, each with a ``.csv`` or ``.json`` of reference signals."""

    name = "generic"

    def _signals_file(self, video: Path) -> Path:
        found = [p for p in (video.with_suffix(".csv"), video.with_suffix(".json")) if p.is_file()]
        if not found:
            raise InputError(f"{video}: no {video.stem}.csv or {video.stem}.json next to it")
        if len(found) > 1:
            raise InputError(f"{video}: both {video.stem}.csv and {video.stem}.json; keep one")
        return found[0]

    def records(self) -> list[Record]:
        videos = [
            p
            for pattern in ("*", "*/*")
            for p in find_paths(self.root, pattern)
            if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
        ]
        records = {}
        for video in videos:
            self._signals_file(video)
            rel = video.relative_to(self.root).with_suffix("")
            video_id = "_".join(rel.parts)
            if video_id in records:
                raise InputError(f"{video}: another video has the same name {video_id!r}")
            subject = rel.parts[0] if len(rel.parts) > 1 else video.stem
            records[video_id] = Record(
                dataset=self.name,
                video_id=video_id,
                subject_id=subject,
                video_path=video,
                tags={},
            )
        if not records:
            raise InputError(f"{self.root}: no videos ({', '.join(VIDEO_SUFFIXES)})")
        return sorted(records.values(), key=lambda r: natural_key(r.video_id))

    def load_reference(self, record: Record) -> Reference:
        path = self._signals_file(record.video_path)
        # Rows without time_s are one per frame: only then is the frame rate needed.
        fps = None if _has_time(path) else probe_fps(record.video_path)
        return read_signals_file(path, fps)


def _has_time(path: Path) -> bool:
    """Whether a signals file carries its own ``time_s`` (then no fps probe is needed)."""
    if path.suffix == ".csv":
        with path.open(newline="", errors="replace") as f:
            header = next(csv.reader(f), [])
        return "time_s" in [h.strip() for h in header]
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False  # read_signals_file reports the broken JSON
    return isinstance(data, dict) and "time_s" in data

