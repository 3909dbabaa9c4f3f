"""facepulse synthetic datasets (``facepulse synth``), read like any real dataset.

Layout (docs/synthetic.md)::

    <root>/dataset.json               how the dataset was made (scenario, master seed...)
    <root>/videos/v<NNNNN>/video.mkv  FFV1 (lossless) or H.264 in Matroska
    <root>/videos/v<NNNNN>/frames.csv one row per frame: frame, timestamp_s, ppg, hr_bpm, ...
    <root>/videos/v<NNNNN>/beats.csv  one row per beat: beat, time_s (systolic peaks)
    <root>/videos/v<NNNNN>/meta.json  every parameter; its presence marks the video complete

Each video is its own synthetic person (own heart, skin type, conditions), so the
subject id is the video id. Unfinished videos (no meta.json yet) are not listed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from facepulse.datasets._common import find_paths
from facepulse.datasets.base import DATASETS, DatasetReader, Record, Reference
from facepulse.errors import InputError

_DATASET_FILE = "dataset.json"
_VIDEOS_DIR = "videos"
_META_FILE = "meta.json"
_LAYOUT = "facepulse-synthetic"
_SUPPORTED_VERSIONS = (1,)
_REQUIRED_COLUMNS = ("frame", "timestamp_s", "ppg", "hr_bpm")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{path}: not valid JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _read_csv(path: Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A numeric CSV with a header line, as ``{column: (N,) float64}``."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with path.open(encoding="utf-8") as fh:
            header = fh.readline().strip().split(",")
            body = fh.read()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: unreadable ({err})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}: missing column {missing[0]!r} in the header")
    lines = [ln for ln in body.splitlines() if ln.strip()]
    try:
        rows = np.array([[float(v) for v in ln.split(",")] for ln in lines], dtype=np.float64)
    except ValueError:
        bad = next(i for i, ln in enumerate(lines) if not _numeric(ln))
        raise InputError(f"{path}: line {bad + 2} is not numbers") from None
    if rows.size == 0:
        rows = rows.reshape(0, len(header))
    if rows.ndim != 2 or rows.shape[1] != len(header):
        raise InputError(f"{path}: rows do not have {len(header)} columns like the header")
    bad_rows = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if bad_rows.size:
        raise InputError(f"{path}: non-finite value on line {int(bad_rows[0]) + 2}")
    return {name: rows[:, j] for j, name in enumerate(header)}


def _numeric(line: str) -> bool:
    try:
        [float(v) for v in line.split(",")]
    except ValueError:
        return False
    return True


@DATASETS.register("synthetic", help="facepulse synth output: videos/v*/video.mkv + frames.csv + meta.json")
class SyntheticReader(DatasetReader):
    """Videos made by ``facepulse synth`` with exact per-frame pulse, HR and beat times."""

    name = "synthetic"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        info = _read_json(self.root / _DATASET_FILE) if (self.root / _DATASET_FILE).is_file() else None
        if info is None:
            raise InputError(f"{self.root}: not a synthetic dataset ({_DATASET_FILE} not found)")
        if info.get("layout") != _LAYOUT:
            raise InputError(f"{self.root / _DATASET_FILE}: layout is {info.get('layout')!r}, not {_LAYOUT!r}")
        if info.get("layout_version") not in _SUPPORTED_VERSIONS:
            raise InputError(
                f"{self.root / _DATASET_FILE}: layout_version {info.get('layout_version')!r} is not supported"
            )
        self.info = info

    def records(self) -> list[Record]:
        folder = self.root / _VIDEOS_DIR
        metas = find_paths(folder, f"*/{_META_FILE}")
        if not metas:
            raise InputError(f"{folder}: no finished videos (no */{_META_FILE})")
        records = []
        for meta_path in metas:
            meta = _read_json(meta_path)
            params = meta.get("params")
            if not isinstance(params, dict):
                raise InputError(f"{meta_path}: field 'params' missing")
            video = meta_path.parent / str(meta.get("files", {}).get("video", "video.mkv"))
            records.append(
                Record(
                    dataset=self.name,
                    video_id=meta_path.parent.name,
                    subject_id=meta_path.parent.name,
                    video_path=video,
                    fps=None,  # the Matroska file carries its rate and timestamps
                    tags=_tags(meta, params),
                )
            )
        return records

    def load_meta(self, record: Record) -> dict[str, Any]:
        """The record's ``meta.json`` (all generation parameters, seed, counts)."""
        return _read_json(record.video_path.parent / _META_FILE)

    def load_truth(self, record: Record) -> dict[str, np.ndarray]:
        """Every column of ``frames.csv`` (see docs/synthetic.md), one value per frame."""
        path = record.video_path.parent / "frames.csv"
        table = _read_csv(path, _REQUIRED_COLUMNS)
        n = table["frame"].size
        if n < 2:
            raise InputError(f"{path}: {n} frame rows; need at least 2")
        if not np.array_equal(table["frame"], np.arange(n)):
            bad = int(np.flatnonzero(table["frame"] != np.arange(n))[0])
            raise InputError(f"{path}: frame numbers are not 0..{n - 1} (line {bad + 2})")
        if np.any(np.diff(table["timestamp_s"]) <= 0):
            bad = int(np.flatnonzero(np.diff(table["timestamp_s"]) <= 0)[0]) + 1
            raise InputError(f"{path}: timestamp_s does not increase at frame {bad}")
        return table

    def load_beat_times_s(self, record: Record) -> np.ndarray:
        """(B,) systolic-peak times in seconds from the first frame."""
        path = record.video_path.parent / "beats.csv"
        times = _read_csv(path, ("beat", "time_s"))["time_s"]
        if np.any(np.diff(times) <= 0):
            raise InputError(f"{path}: time_s does not increase")
        return times

    def load_reference(self, record: Record) -> Reference:
        truth = self.load_truth(record)
        t = truth["timestamp_s"]
        extra: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in ("resp", "mean_hr_bpm", "illumination"):
            if name in truth:
                extra[name] = (truth[name], t)
        return Reference(
            ppg=truth["ppg"],
            ppg_t_s=t,
            hr_bpm=truth["hr_bpm"],
            hr_t_s=t,
            frame_t_s=t,
            ppg_source="simulated blood volume pulse driving the render (exact)",
            hr_source="simulated instantaneous heart rate (exact)",
            extra=extra,
            # frames.csv has one row per video frame; the container's timestamps are
            # rounded (Matroska: 1 ms), so align by frame index, not by time.
            per_frame=True,
        )


def _tags(meta: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
    def get(section: str, key: str, default: Any = "") -> Any:
        value = params.get(section, {})
        return value.get(key, default) if isinstance(value, dict) else default

    motion = params.get("motion", {})
    moving = isinstance(motion, dict) and any(
        float(motion.get(k, 0) or 0) > 0
        for k in ("translation_rms_frac", "rotation_rms_deg", "scale_rms_frac", "talk_rms_deg")
    )
    lighting = params.get("lighting", {})
    varying = isinstance(lighting, dict) and any(
        float(lighting.get(k, 0) or 0) > 0 for k in ("drift_rms_frac", "flicker_amplitude", "shadow_depth")
    )
    return {
        "synthetic": "true",
        "scenario": str(meta.get("scenario", "")),
        "fitzpatrick": str(get("optics", "fitzpatrick")),
        "codec": str(get("codec", "codec")),
        "hr_trajectory": str(get("physiology", "hr_trajectory")),
        "motion": "talking" if float(get("motion", "talk_rms_deg", 0) or 0) > 0 else ("moving" if moving else "still"),
        "lighting": "varying" if varying else "steady",
    }
