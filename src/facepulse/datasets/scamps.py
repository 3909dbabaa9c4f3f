"""SCAMPS synthetic avatars (McDuff et al., NeurIPS Datasets and Benchmarks 2022).

Layout::

    <root>/P<NNNNNN>.mat    MATLAB v7.3 (HDF5): Xsub face crops 240x240, 30 fps, floats
                            in [0, 1] (HDF5 axes [c, w, h, t], i.e. (T, H, W, 3) in
                            MATLAB order); d_ppg pulse per frame; d_br breathing per frame

Every file is a distinct synthetic person, so the subject id is the file's stem.
"""

from __future__ import annotations

import re

from facepulse.datasets._common import find_paths, mat_vars, natural_key
from facepulse.datasets._matvideo import MatVideoReader
from facepulse.datasets.base import DATASETS, Record, Reference
from facepulse.errors import InputError

_FILE = re.compile(r"^P\d+\.mat$")


@DATASETS.register("scamps", help="SCAMPS: P*.mat (v7.3) with Xsub frames + d_ppg at 30 fps")
class SCAMPSReader(MatVideoReader):
    """SCAMPS: 2,800 rendered videos with exact pulse and breathing waveforms, 30 fps."""

    name = "scamps"
    VIDEO_VAR = "Xsub"
    FPS = 30.0

    def records(self) -> list[Record]:
        records = [
            Record(
                dataset=self.name,
                video_id=p.stem,
                subject_id=p.stem,
                video_path=p,
                fps=self.FPS,
                tags={"synthetic": "true"},
            )
            for p in find_paths(self.root, "P*.mat")
            if _FILE.match(p.name)
        ]
        if not records:
            raise InputError(f"{self.root}: no SCAMPS files (P<number>.mat)")
        return sorted(records, key=lambda r: natural_key(r.video_id))

    def load_reference(self, record: Record) -> Reference:
        path = record.video_path
        values = mat_vars(path, ["d_ppg"], optional=["d_br"])
        ppg = self.pulse_vector(values["d_ppg"], path, "d_ppg")
        extra = {}
        if "d_br" in values:
            br = self.pulse_vector(values["d_br"], path, "d_br")
            extra["resp"] = (br, self.pulse_times_s(path, br.size))
        return Reference(
            ppg=ppg,
            ppg_t_s=self.pulse_times_s(path, ppg.size),
            ppg_source="simulated blood volume pulse driving the render (exact)",
            extra=extra,
        )
