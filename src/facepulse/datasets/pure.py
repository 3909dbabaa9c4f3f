"""PURE (Stricker, Müller, Gross, RO-MAN 2014).

Layout, as distributed (the frames folder may also sit directly under the root)::

    <root>/NN-MM/NN-MM/ImageTTTTTTTTTTTTTTTTTTT.png   frames; T = capture time in ns
    <root>/NN-MM/NN-MM.json                           pulse oximeter stream

NN is the subject (01-10), MM the setup (01 steady, 02 talking, 03 slow translation,
04 fast translation, 05 small rotation, 06 medium rotation). The JSON holds
``/FullPackage``: ``[{"Timestamp": ns, "Value": {"waveform", "pulseRate", ...}}]`` at
60 Hz and ``/Image``: ``[{"Timestamp": ns}]`` for the 30 fps camera.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from facepulse.datasets._common import finite_1d, increasing_times, natural_key, require_file
from facepulse.datasets.base import DATASETS, DatasetReader, Record, Reference
from facepulse.errors import InputError

FPS = 30.0
SETUPS = {
    "01": "steady",
    "02": "talking",
    "03": "slow translation",
    "04": "fast translation",
    "05": "small rotation",
    "06": "medium rotation",
}
_SESSION = re.compile(r"^(\d{2})-(\d{2})$")
_FRAME = re.compile(r"^Image(\d+)\.png$")


def frame_timestamps_ns(folder: Path) -> tuple[list[Path], np.ndarray]:
    """The PNG frames of ``folder`` sorted by time, and their capture times (ns)."""
    frames = []
    for p in folder.iterdir():
        m = _FRAME.match(p.name)
        if m:
            frames.append((int(m.group(1)), p))
        elif p.suffix.lower() == ".png":
            raise InputError(f"{p}: PURE frame names must be Image<timestamp ns>.png")
    if not frames:
        raise InputError(f"{folder}: no Image<timestamp>.png frames")
    frames.sort()
    return [p for _, p in frames], np.array([t for t, _ in frames], dtype=np.int64)


@DATASETS.register("pure", help="PURE: NN-MM/ PNG frames + NN-MM.json (60 Hz pulse oximeter)")
class PUREReader(DatasetReader):
    """PURE: 10 subjects x 6 setups, PNG frames at 30 fps and a 60 Hz oximeter stream."""

    name = "pure"

    def _frames_dir(self, session_dir: Path) -> Path:
        nested = session_dir / session_dir.name
        return nested if nested.is_dir() else session_dir

    def _json_path(self, session_dir: Path) -> Path:
        for candidate in (
            session_dir / f"{session_dir.name}.json",
            session_dir.parent / f"{session_dir.name}.json",
        ):
            if candidate.is_file():
                return candidate
        raise InputError(f"{session_dir}: {session_dir.name}.json not found")

    def records(self) -> list[Record]:
        records = []
        for d in self.root.iterdir():
            m = _SESSION.match(d.name)
            if not (m and d.is_dir()):
                continue
            self._json_path(d)  # fail early, naming the session, if its pulse file is missing
            subject, setup = m.groups()
            records.append(
                Record(
                    dataset=self.name,
                    video_id=d.name,
                    subject_id=subject,
                    video_path=self._frames_dir(d),
                    fps=FPS,
                    tags={"setup": setup, "activity": SETUPS.get(setup, "unknown")},
                )
            )
        if not records:
            raise InputError(f"{self.root}: no PURE session folders (NN-MM/)")
        return sorted(records, key=lambda r: natural_key(r.video_id))

    def open_video(self, record: Record):
        """The frames with their own capture times (from the PNG names) as timestamps."""
        from facepulse.io.video import open_video

        _, frame_ns = frame_timestamps_ns(record.video_path)
        return open_video(record.video_path, fps=FPS, timestamps_s=(frame_ns - frame_ns[0]) / 1e9)

    def load_reference(self, record: Record) -> Reference:
        session_dir = self.root / record.video_id
        path = require_file(self._json_path(session_dir))
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: not valid JSON ({err.__class__.__name__})") from None
        if not isinstance(data, dict) or "/FullPackage" not in data:
            raise InputError(f"{path}: no '/FullPackage' list")
        pkgs = data["/FullPackage"]
        if not isinstance(pkgs, list):
            raise InputError(f"{path}: '/FullPackage' is not a list")
        t_ns, wave, hr = [], [], []
        for i, p in enumerate(pkgs):
            try:
                t_ns.append(int(p["Timestamp"]))
                wave.append(float(p["Value"]["waveform"]))
                hr.append(float(p["Value"]["pulseRate"]))
            except (KeyError, TypeError, ValueError):
                raise InputError(
                    f"{path}: /FullPackage[{i}] lacks Timestamp, Value.waveform or Value.pulseRate"
                ) from None
        _, frame_ns = frame_timestamps_ns(record.video_path)
        # Time zero is the first frame: PNG names are the capture times of the frames that
        # the video source will play, so they define the clock the reference must use.
        t0 = frame_ns[0]
        pulse_t_s = increasing_times(
            (np.array(t_ns, dtype=np.int64) - t0) / 1e9, path, "/FullPackage timestamps"
        )
        frame_t_s = (frame_ns - t0) / 1e9
        return Reference(
            ppg=finite_1d(wave, path, "/FullPackage waveform"),
            ppg_t_s=pulse_t_s,
            hr_bpm=finite_1d(hr, path, "/FullPackage pulseRate"),
            hr_t_s=pulse_t_s.copy(),
            frame_t_s=frame_t_s,
            ppg_source="finger pulse oximeter (CMS50E), 60 Hz",
            hr_source="pulse oximeter reading",
        )
