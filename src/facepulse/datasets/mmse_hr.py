"""MMSE-HR (Tulyakov et al., CVPR 2016), the heart-rate subset of BP4D+.

Layout, as distributed (two parts, each a frames tree and a physiology tree)::

    <root>/first 10 subjects 2D/<subject>/<task>/*.jpg                       25 fps
    <root>/first 10 subjects Phydata released/Phydata/<subject>/<task>/BP_mmHg.txt
    <root>/T10_T11_30Subjects/<subject>/<task>/*.jpg
    <root>/T10_T11_30PhyBPHRData/<subject>/<task>/Pulse Rate_BPM.txt

Subjects are ``F013``, ``M010``...; tasks ``T1`` ... ``T11``. Physiology files hold one
value per line at 1 kHz from the first frame: ``BP_mmHg.txt`` (continuous blood
pressure, a pulsatile waveform used as the pulse reference) and ``Pulse Rate_BPM.txt``.
"""

from __future__ import annotations

import re
from pathlib import Path

from facepulse.datasets._common import find_paths, natural_key, read_number_lines, uniform_times_s
from facepulse.datasets.base import DATASETS, DatasetReader, Record, Reference
from facepulse.errors import InputError

FPS = 25.0
PHYS_FS = 1000.0
PARTS = {
    "first 10 subjects 2D": Path("first 10 subjects Phydata released") / "Phydata",
    "T10_T11_30Subjects": Path("T10_T11_30PhyBPHRData"),
}
BP_FILE = "BP_mmHg.txt"
HR_FILE = "Pulse Rate_BPM.txt"
_TASK = re.compile(r"^T\d+$")


@DATASETS.register("mmse-hr", help="MMSE-HR: JPG frame folders (25 fps) + 1 kHz BP/HR text files")
class MMSEHRReader(DatasetReader):
    """MMSE-HR: 40 subjects, JPG frames at 25 fps, blood pressure and pulse rate at 1 kHz."""

    name = "mmse-hr"

    def _phys_dir(self, frames_dir: Path) -> Path:
        part = frames_dir.parent.parent.name
        if part not in PARTS:
            raise InputError(
                f"{frames_dir}: not inside an MMSE-HR frames folder ({', '.join(PARTS)})"
            )
        return self.root / PARTS[part] / frames_dir.parent.name / frames_dir.name

    def records(self) -> list[Record]:
        records: dict[str, Record] = {}
        parts = [p for p in PARTS if (self.root / p).is_dir()]
        if not parts:
            raise InputError(f"{self.root}: no MMSE-HR frames folder ({' or '.join(PARTS)})")
        for part in parts:
            for frames_dir in find_paths(self.root / part, "*/*"):
                if not (frames_dir.is_dir() and _TASK.match(frames_dir.name)):
                    continue
                if not any(frames_dir.glob("*.jpg")):
                    raise InputError(f"{frames_dir}: no .jpg frames")
                phys = self._phys_dir(frames_dir)
                if not phys.is_dir():
                    raise InputError(f"{phys}: physiology folder not found")
                subject, task = frames_dir.parent.name, frames_dir.name
                video_id = f"{subject}_{task}"
                if video_id in records:
                    raise InputError(f"{frames_dir}: {video_id} is in both parts of the dataset")
                records[video_id] = Record(
                    dataset=self.name,
                    video_id=video_id,
                    subject_id=subject,
                    video_path=frames_dir,
                    fps=FPS,
                    tags={"task": task},
                )
        if not records:
            raise InputError(f"{self.root}: no MMSE-HR <subject>/<task>/ frame folders")
        return sorted(records.values(), key=lambda r: natural_key(r.video_id))

    def load_reference(self, record: Record) -> Reference:
        phys = self._phys_dir(record.video_path)
        bp = read_number_lines(phys / BP_FILE, "blood pressure")
        hr = read_number_lines(phys / HR_FILE, "pulse rate")
        return Reference(
            ppg=bp,
            ppg_t_s=uniform_times_s(bp.size, PHYS_FS),
            hr_bpm=hr,
            hr_t_s=uniform_times_s(hr.size, PHYS_FS),
            ppg_source="continuous blood pressure waveform (mmHg), 1 kHz, used as pulse",
            hr_source="pulse rate from the blood pressure device, 1 kHz",
        )
