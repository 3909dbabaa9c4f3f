"""UBFC-rPPG (Bobbia et al., Pattern Recognition Letters 2019).

Layout (both parts of the dataset; the root may hold ``DATASET_1/`` and ``DATASET_2/``
or be one of them)::

    <root>/<subject>/vid.avi          (vid.mp4 also accepted, e.g. re-encoded copies)
    <root>/<subject>/ground_truth.txt DATASET_2: three whitespace-separated lines:
                                        PPG per frame, oximeter HR (bpm), timestamps (s)
    <root>/<subject>/gtdump.xmp       DATASET_1: CSV without header, one row per oximeter
                                        sample: timestamp (ms), HR (bpm), SpO2 (%), PPG
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from facepulse.datasets._common import find_paths, finite_1d, increasing_times, natural_key
from facepulse.datasets.base import DATASETS, DatasetReader, Record, Reference
from facepulse.errors import InputError

VIDEO_NAMES = ("vid.avi", "vid.mp4")
GT2_NAME = "ground_truth.txt"
GT1_NAME = "gtdump.xmp"
# The oximeter reports a lost signal as 0 or 1 bpm; such readings are not heart rates.
_HR_VALID_BPM = (30.0, 250.0)


def _oximeter_hr(hr_bpm: np.ndarray) -> np.ndarray:
    """Oximeter HR with dropout readings (outside 30-250 bpm) replaced by NaN."""
    out = hr_bpm.astype(np.float64, copy=True)
    out[(out < _HR_VALID_BPM[0]) | (out > _HR_VALID_BPM[1])] = np.nan
    return out


def read_ground_truth_txt(path: Path) -> Reference:
    """Parse a DATASET_2 ``ground_truth.txt`` into a :class:`Reference`.

    PPG is one sample per video frame (``per_frame``): sample i belongs to decoded frame
    i. The file's timestamps (line 3, seconds, shifted so the first frame is at 0) are
    kept in ``ppg_t_s`` / ``frame_t_s`` but are not used for alignment: they log dropped
    capture frames (gaps up to 0.75 s) that the videos do not have, so placing the PPG by
    them would shift it against the video (see docs/datasets.md). ``hr_bpm`` is the
    oximeter's own reading (line 2); its dropouts (0 or 1 bpm) are NaN: derive reference
    HR from the PPG instead.
    """
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    if len(lines) != 3:
        columns = {len(ln.split()) for ln in lines}
        hint = (
            f" of {columns.pop()} columns (one row per sample?); DATASET_2 has one line per signal"
            if len(lines) > 3 and len(columns) == 1
            else ""
        )
        raise InputError(
            f"{path}: expected 3 lines (PPG, HR, timestamps), found {len(lines)} lines{hint}"
        )
    rows = []
    for i, (line, field) in enumerate(zip(lines[:3], ("PPG", "HR", "timestamps")), start=1):
        try:
            values = [float(tok) for tok in line.split()]
        except ValueError:
            raise InputError(f"{path}: line {i} ({field}) has a non-number") from None
        rows.append(finite_1d(values, path, f"line {i} ({field})"))
    ppg, hr, t = rows
    if not (len(ppg) == len(hr) == len(t)):
        raise InputError(
            f"{path}: line lengths differ (PPG {len(ppg)}, HR {len(hr)}, timestamps {len(t)})"
        )
    t_s = increasing_times(t - t[0], path, "line 3 (timestamps)")
    return Reference(
        ppg=ppg,
        ppg_t_s=t_s,
        hr_bpm=_oximeter_hr(hr),
        hr_t_s=t_s.copy(),
        frame_t_s=t_s.copy(),
        ppg_source="finger pulse oximeter (CMS50E), one sample per frame",
        hr_source="pulse oximeter reading (dropouts are NaN)",
        per_frame=True,
        source=str(path),
    )


def read_gtdump_xmp(path: Path) -> Reference:
    """Parse a DATASET_1 ``gtdump.xmp`` (timestamp ms, HR, SpO2, PPG) into a Reference.

    Times are shifted so the first oximeter sample is at 0 s: the dataset records the
    oximeter from the first video frame on. SpO2 goes to ``extra["spo2"]``.
    """
    cols: list[list[float]] = [[], [], [], []]
    with path.open(newline="", errors="replace") as f:
        for i, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 4:
                raise InputError(f"{path}: row {i} has {len(row)} columns; expected 4")
            try:
                for c in range(4):
                    cols[c].append(float(row[c]))
            except ValueError:
                raise InputError(f"{path}: row {i} has a non-number") from None
    t_ms, hr, spo2, ppg = (finite_1d(c, path, name) for c, name in
                           zip(cols, ("timestamp", "HR", "SpO2", "PPG")))
    t_s = increasing_times((t_ms - t_ms[0]) / 1000.0, path, "timestamp column")
    return Reference(
        ppg=ppg,
        ppg_t_s=t_s,
        hr_bpm=_oximeter_hr(hr),
        hr_t_s=t_s.copy(),
        ppg_source="finger pulse oximeter (CMS50E)",
        hr_source="pulse oximeter reading (dropouts are NaN)",
        extra={"spo2": (spo2, t_s.copy())},
        source=str(path),
    )


@DATASETS.register("ubfc-rppg", help="UBFC-rPPG DATASET_1/2: <subject>/vid.avi + ground truth")
class UBFCrPPGReader(DatasetReader):
    """UBFC-rPPG (DATASET_1 ``gtdump.xmp`` and DATASET_2 ``ground_truth.txt``)."""

    name = "ubfc-rppg"

    def records(self) -> list[Record]:
        records = []
        videos = sorted(p for name in VIDEO_NAMES for p in find_paths(self.root, f"**/{name}"))
        folders: dict[Path, Path] = {}
        for video in videos:
            if video.parent in folders:
                raise InputError(f"{video.parent}: both vid.avi and vid.mp4; keep one")
            folders[video.parent] = video
        for folder, video in folders.items():
            has2 = (folder / GT2_NAME).is_file()
            has1 = (folder / GT1_NAME).is_file()
            if has1 and has2:
                raise InputError(f"{folder}: both {GT1_NAME} and {GT2_NAME}; expected one")
            if not (has1 or has2):
                raise InputError(f"{folder}: no {GT2_NAME} or {GT1_NAME} next to {video.name}")
            rel = folder.relative_to(self.root)
            video_id = "_".join(rel.parts) if rel.parts else folder.name
            records.append(
                Record(
                    dataset=self.name,
                    video_id=video_id,
                    subject_id=folder.name,
                    video_path=video,
                    tags={"part": "DATASET_2" if has2 else "DATASET_1"},
                )
            )
        if not records:
            raise InputError(f"{self.root}: no UBFC-rPPG subject folders (*/vid.avi or */vid.mp4)")
        return sorted(records, key=lambda r: natural_key(r.video_id))

    def load_reference(self, record: Record) -> Reference:
        folder = record.video_path.parent
        gt2 = folder / GT2_NAME
        if gt2.is_file():
            return read_ground_truth_txt(gt2)
        gt1 = folder / GT1_NAME
        if gt1.is_file():
            return read_gtdump_xmp(gt1)
        raise InputError(f"{folder}: no {GT2_NAME} or {GT1_NAME}")
