"""MMPD, the Multi-domain Mobile video Physiology Dataset (Tang et al., EMBC 2023).

Layout (also mini-MMPD, the same files at 80x60)::

    <root>/subject<N>/p<N>_<k>.mat    video (T, H, W, 3) floats in [0, 1] at 30 fps,
                                      GT_ppg (1, T) pulse aligned with the frames,
                                      light, motion, exercise, skin_color tags
                                      (plus gender, glasser, hair_cover, makeup)
"""

from __future__ import annotations

import re

import numpy as np

from facepulse.datasets._common import find_paths, mat_vars, natural_key
from facepulse.datasets._matvideo import MatVideoReader
from facepulse.datasets.base import DATASETS, Record, Reference
from facepulse.errors import InputError

REQUIRED_TAGS = ("light", "motion", "exercise", "skin_color")
OPTIONAL_TAGS = ("gender", "glasser", "hair_cover", "makeup")
_FILE = re.compile(r"^p(\d+)_(\d+)\.mat$")


def _tag_text(value: object) -> str:
    """A MAT tag variable (char array or 1x1 number) as a short string."""
    if isinstance(value, str):
        return value.strip()
    arr = np.asarray(value).reshape(-1)
    if arr.size == 1 and arr.dtype.kind in "iuf":
        v = arr[0]
        return str(int(v)) if float(v).is_integer() else str(float(v))
    return " ".join(str(x) for x in arr.tolist()).strip()


@DATASETS.register("mmpd", help="MMPD / mini-MMPD: subject<N>/p<N>_<k>.mat with video + GT_ppg")
class MMPDReader(MatVideoReader):
    """MMPD: 33 subjects, phone videos in .mat files with condition tags, 30 fps."""

    name = "mmpd"
    VIDEO_VAR = "video"
    FPS = 30.0

    def records(self) -> list[Record]:
        records = []
        for path in find_paths(self.root, "subject*/p*_*.mat"):
            m = _FILE.match(path.name)
            if not m:
                continue
            subject = path.parent.name.removeprefix("subject")
            if m.group(1) != subject:
                raise InputError(
                    f"{path}: file is for subject {m.group(1)} but sits in {path.parent.name}"
                )
            values = mat_vars(path, REQUIRED_TAGS, optional=OPTIONAL_TAGS)
            tags = {k: _tag_text(v) for k, v in values.items()}
            tags["take"] = m.group(2)
            records.append(
                Record(
                    dataset=self.name,
                    video_id=path.stem,
                    subject_id=path.parent.name,
                    video_path=path,
                    fps=self.FPS,
                    tags=tags,
                )
            )
        if not records:
            raise InputError(f"{self.root}: no MMPD files (subject<N>/p<N>_<k>.mat)")
        return sorted(records, key=lambda r: natural_key(r.video_id))

    def load_reference(self, record: Record) -> Reference:
        path = record.video_path
        ppg = self.pulse_vector(mat_vars(path, ["GT_ppg"])["GT_ppg"], path, "GT_ppg")
        return Reference(
            ppg=ppg,
            ppg_t_s=self.pulse_times_s(path, ppg.size),
            ppg_source="finger oximeter PPG, stored at the frame rate",
        )
