"""VIPL-HR (Niu, Han, Shan, Chen, ACCV 2018; RhythmNet, IEEE TIP 2020).

Layout::

    <root>/p<subject>/v<scenario>/source<k>/video.avi
    <root>/p<subject>/v<scenario>/source<k>/wave.csv    header "Wave", BVP at about 60 Hz
    <root>/p<subject>/v<scenario>/source<k>/gt_HR.csv   header "HR", one value per second
    <root>/p<subject>/v<scenario>/source<k>/time.txt    frame times in ms, one per line
                                                        (absent for some sources)

Scenarios are ``v1`` ... ``v9`` plus repeats such as ``v1-2``; sources 1-3 are visible
light cameras (webcam, RealSense, phone), source 4 is near-infrared.
"""

from __future__ import annotations

import re

from facepulse.datasets._common import (
    find_paths,
    increasing_times,
    natural_key,
    read_number_lines,
    require_file,
    uniform_times_s,
)
from facepulse.datasets.base import DATASETS, DatasetReader, Record, Reference
from facepulse.errors import InputError

_SUBJECT = re.compile(r"^p\d+$")
_SCENARIO = re.compile(r"^v\d+(-\d+)?$")
_SOURCE = re.compile(r"^source\d+$")


@DATASETS.register("vipl-hr", help="VIPL-HR: p*/v*/source*/video.avi + wave.csv + gt_HR.csv")
class VIPLHRReader(DatasetReader):
    """VIPL-HR: 107 subjects, 9 scenarios, 4 cameras; BVP at 60 Hz, HR once a second.

    The BVP has no timestamps of its own: it is taken as sampled at ``WAVE_FS`` Hz from the
    first video frame (the sensor's nominal rate; stretching it over the video length, as
    some loaders do, turns a recording-length mismatch into an HR error).
    """

    name = "vipl-hr"
    WAVE_FS = 60.0
    HR_PERIOD_S = 1.0

    def records(self) -> list[Record]:
        records = []
        for video in find_paths(self.root, "p*/v*/source*/video.avi"):
            source_dir = video.parent
            scenario_dir = source_dir.parent
            subject_dir = scenario_dir.parent
            if not (
                _SUBJECT.match(subject_dir.name)
                and _SCENARIO.match(scenario_dir.name)
                and _SOURCE.match(source_dir.name)
            ):
                continue
            require_file(source_dir / "wave.csv", "BVP file wave.csv")
            records.append(
                Record(
                    dataset=self.name,
                    video_id=f"{subject_dir.name}_{scenario_dir.name}_{source_dir.name}",
                    subject_id=subject_dir.name,
                    video_path=video,
                    tags={"scenario": scenario_dir.name, "source": source_dir.name},
                )
            )
        if not records:
            raise InputError(f"{self.root}: no VIPL-HR videos (p*/v*/source*/video.avi)")
        return sorted(records, key=lambda r: natural_key(r.video_id))

    def load_reference(self, record: Record) -> Reference:
        folder = record.video_path.parent
        wave = read_number_lines(folder / "wave.csv", "Wave", header="Wave")
        hr = read_number_lines(folder / "gt_HR.csv", "HR", header="HR")
        ref = Reference(
            ppg=wave,
            ppg_t_s=uniform_times_s(wave.size, self.WAVE_FS),
            hr_bpm=hr,
            hr_t_s=uniform_times_s(hr.size, 1.0 / self.HR_PERIOD_S),
            ppg_source=f"finger BVP sensor (CONTEC CMS60C), taken as {self.WAVE_FS:g} Hz",
            hr_source="sensor HR, one reading per second",
        )
        # time.txt exists for some sources only; without it the video's own clock is used.
        time_path = folder / "time.txt"
        if time_path.is_file():
            t_ms = read_number_lines(time_path, "frame times")
            ref.frame_t_s = increasing_times((t_ms - t_ms[0]) / 1000.0, time_path, "frame times")
        return ref
