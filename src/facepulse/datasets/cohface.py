"""COHFACE (Heusch, Anjos, Marcel, arXiv:1709.00962, 2017).

Layout::

    <root>/<subject>/<session>/data.avi     640x480, 20 fps
    <root>/<subject>/<session>/data.hdf5    datasets: pulse (BVP, 256 Hz), respiration,
                                            time (s, one per physiological sample)

Subjects are numbered 1-40 and sessions 0-3; sessions 0 and 1 are lit by studio lights,
2 and 3 by natural light.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facepulse.datasets._common import find_paths, finite_1d, increasing_times, natural_key, require_file
from facepulse.datasets.base import DATASETS, DatasetReader, Record, Reference
from facepulse.errors import InputError

PULSE_FS = 256.0
LIGHTING = {"0": "studio", "1": "studio", "2": "natural", "3": "natural"}


def read_data_hdf5(path: Path) -> Reference:
    """Parse a COHFACE ``data.hdf5`` into a Reference (times shifted to start at 0 s)."""
    import h5py

    require_file(path)
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("pulse", "time") if k not in f]
            if missing:
                raise InputError(f"{path}: dataset {missing[0]!r} not found")
            pulse = np.asarray(f["pulse"][()])
            t = np.asarray(f["time"][()])
            resp = np.asarray(f["respiration"][()]) if "respiration" in f else None
    except InputError:
        raise
    except Exception as err:  # h5py raises OSError and friends for damaged files
        raise InputError(f"{path}: not a readable HDF5 file ({type(err).__name__})") from None
    pulse = finite_1d(pulse, path, "pulse")
    t = finite_1d(t, path, "time")
    if len(t) != len(pulse):
        raise InputError(f"{path}: 'time' has {len(t)} samples but 'pulse' has {len(pulse)}")
    # Video and physiology start together; the time axis may not start at exactly 0.
    t_s = increasing_times(t - t[0], path, "time")
    extra = {}
    if resp is not None:
        resp = finite_1d(resp, path, "respiration")
        if len(resp) != len(t_s):
            raise InputError(
                f"{path}: 'respiration' has {len(resp)} samples; 'time' has {len(t_s)}"
            )
        extra["resp"] = (resp, t_s.copy())
    return Reference(
        ppg=pulse,
        ppg_t_s=t_s,
        ppg_source="contact blood-volume-pulse sensor, 256 Hz",
        extra=extra,
    )


@DATASETS.register("cohface", help="COHFACE: subject/session/data.avi + data.hdf5 (256 Hz BVP)")
class COHFACEReader(DatasetReader):
    """COHFACE: 40 subjects x 4 sessions, 20 fps video, 256 Hz contact BVP."""

    name = "cohface"

    def records(self) -> list[Record]:
        records = []
        for video in find_paths(self.root, "*/*/data.avi"):
            session_dir = video.parent
            require_file(session_dir / "data.hdf5", "physiology file data.hdf5")
            subject, session = session_dir.parent.name, session_dir.name
            tags = {"session": session}
            if session in LIGHTING:
                tags["lighting"] = LIGHTING[session]
            records.append(
                Record(
                    dataset=self.name,
                    video_id=f"{subject}-{session}",
                    subject_id=subject,
                    video_path=video,
                    tags=tags,
                )
            )
        if not records:
            raise InputError(f"{self.root}: no COHFACE sessions (<subject>/<session>/data.avi)")
        return sorted(records, key=lambda r: natural_key(r.video_id))

    def load_reference(self, record: Record) -> Reference:
        return read_data_hdf5(record.video_path.parent / "data.hdf5")
