"""UBFC-Phys (Meziati Sabour et al., IEEE Trans. Affective Computing 2021).

Layout::

    <root>/s<N>/vid_s<N>_T<k>.avi    35 fps
    <root>/s<N>/bvp_s<N>_T<k>.csv    BVP (Empatica E4 wristband), 64 Hz, one value per line

Tasks: T1 rest, T2 speech, T3 arithmetic.
"""

from __future__ import annotations

import re

from facepulse.datasets._common import find_paths, natural_key, read_number_lines, require_file, uniform_times_s
from facepulse.datasets.base import DATASETS, DatasetReader, Record, Reference
from facepulse.errors import InputError

BVP_FS = 64.0
TASKS = {"T1": "rest", "T2": "speech", "T3": "arithmetic"}
_VIDEO = re.compile(r"^vid_(s\d+)_(T\d+)\.avi$")


@DATASETS.register("ubfc-phys", help="UBFC-Phys: s<N>/vid_s<N>_T<k>.avi + bvp_*.csv (64 Hz)")
class UBFCPhysReader(DatasetReader):
    """UBFC-Phys: 56 subjects x 3 tasks, 35 fps video, 64 Hz wrist BVP."""

    name = "ubfc-phys"

    def records(self) -> list[Record]:
        records = []
        for video in find_paths(self.root, "s*/vid_s*_T*.avi"):
            m = _VIDEO.match(video.name)
            if not m or m.group(1) != video.parent.name:
                continue
            subject, task = m.groups()
            require_file(video.parent / f"bvp_{subject}_{task}.csv", "BVP file")
            records.append(
                Record(
                    dataset=self.name,
                    video_id=f"{subject}_{task}",
                    subject_id=subject,
                    video_path=video,
                    tags={"task": task, "activity": TASKS.get(task, "unknown")},
                )
            )
        if not records:
            raise InputError(f"{self.root}: no UBFC-Phys videos (s<N>/vid_s<N>_T<k>.avi)")
        return sorted(records, key=lambda r: natural_key(r.video_id))

    def load_reference(self, record: Record) -> Reference:
        subject, task = record.subject_id, record.tags["task"]
        bvp = read_number_lines(record.video_path.parent / f"bvp_{subject}_{task}.csv", "BVP")
        return Reference(
            ppg=bvp,
            ppg_t_s=uniform_times_s(bvp.size, BVP_FS),
            ppg_source="wrist BVP (Empatica E4), 64 Hz",
        )
