"""MAHNOB-HCI tagging database (Soleymani et al., IEEE Trans. Affective Computing 2012).

Layout::

    <root>/Sessions/<n>/<...>C1 trigger<...>.avi   colour camera (about 61 fps)
    <root>/Sessions/<n>/<...>.bdf                  BioSemi BDF, 256 Hz: EEG, EXG1-3 (ECG),
                                                   GSR, Resp, Temp, Status (trigger)
    <root>/Sessions/<n>/session.xml                <session ...><subject id="..."/></session>

The dataset has no PPG: the reference is heart rate from ECG R-peaks. The BDF's Status
channel is non-zero while the trial (and the trigger-cut video) runs, so the first
non-zero Status sample is time 0 (the first video frame).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from facepulse.datasets._common import finite_1d, natural_key, one_match, require_file
from facepulse.datasets.base import DATASETS, DatasetReader, Record, Reference
from facepulse.errors import ConfigError, InputError

ECG_CHANNELS = ("EXG1", "EXG2", "EXG3")
VIDEO_PATTERNS = ("*C1 trigger*.avi", "*.avi")


def ecg_heart_rate(ecg: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Instantaneous heart rate from ECG R-peaks.

    NeuroKit2 R-peak detection with artifact correction (Makowski et al., Behav. Res.
    Methods 2021; Lipponen & Tarvainen, J. Med. Eng. Technol. 2019).

    Parameters
    ----------
    ecg : (N,) float, ECG in any unit.
    fs : sampling rate in Hz.

    Returns
    -------
    t_s : (K,) float, time of each beat in seconds from the first ECG sample (the R-peak
        that closes each R-R interval).
    hr_bpm : (K,) float, 60 / R-R interval, in beats per minute.
    """
    from facepulse.signal._neurokit import neurokit2

    nk = neurokit2()
    cleaned = nk.ecg_clean(np.asarray(ecg, dtype=np.float64), sampling_rate=int(round(fs)))
    _, info = nk.ecg_peaks(cleaned, sampling_rate=int(round(fs)), correct_artifacts=True)
    peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    if peaks.size < 2:
        return np.empty(0), np.empty(0)
    rr_s = np.diff(peaks) / float(fs)
    return peaks[1:] / float(fs), 60.0 / rr_s


def read_session_subject(path: Path) -> tuple[str, dict[str, str]]:
    """Subject id and a few session attributes from a MAHNOB ``session.xml``."""
    require_file(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise InputError(f"{path}: not valid XML ({err})") from None
    subject = root.find("subject")
    if subject is None or not subject.get("id"):
        raise InputError(f"{path}: no <subject id=...> element")
    attrs = {}
    if root.get("mediaFile"):
        attrs["media"] = root.get("mediaFile", "")
    return subject.get("id", ""), attrs


def read_bdf_ecg(path: Path, channel: str) -> tuple[np.ndarray, float, float]:
    """ECG channel, its rate (Hz), and the video start (s) from the Status channel."""
    import pyedflib

    require_file(path)
    try:
        f = pyedflib.EdfReader(str(path))
    except Exception as err:  # pyedflib raises OSError with a long text for bad headers
        raise InputError(f"{path}: not a readable BDF file ({type(err).__name__})") from None
    try:
        labels = [lab.strip() for lab in f.getSignalLabels()]
        for needed in (channel, "Status"):
            if needed not in labels:
                raise InputError(f"{path}: channel {needed!r} not found")
        ecg_i, status_i = labels.index(channel), labels.index("Status")
        ecg = f.readSignal(ecg_i)
        fs = float(f.getSampleFrequency(ecg_i))
        status = np.round(f.readSignal(status_i)).astype(np.int64)
        status_fs = float(f.getSampleFrequency(status_i))
    finally:
        f.close()
    on = np.flatnonzero(status)
    if on.size == 0:
        raise InputError(f"{path}: Status channel has no trigger (all zero)")
    if on[0] == 0:
        # A trial starts after a baseline; a trigger already on at sample 0 means the onset
        # (and so the video's time zero) is not in the file.
        raise InputError(f"{path}: Status channel is already on at the first sample")
    return finite_1d(ecg, path, channel), fs, on[0] / status_fs


@DATASETS.register("mahnob-hci", help="MAHNOB-HCI: Sessions/<n>/*.avi + *.bdf; HR from ECG")
class MAHNOBHCIReader(DatasetReader):
    """MAHNOB-HCI: colour video with ECG (EXG channels); reference HR from R-peaks.

    ``ecg_channel`` picks the ECG lead: EXG3 (left abdomen) is the cleanest in this
    dataset; EXG1 / EXG2 sit under the clavicles.
    """

    name = "mahnob-hci"

    def __init__(self, root: str | Path, ecg_channel: str = "EXG3") -> None:
        super().__init__(root)
        if ecg_channel not in ECG_CHANNELS:
            raise ConfigError(f"ecg_channel must be one of {', '.join(ECG_CHANNELS)}")
        self.ecg_channel = ecg_channel
        sessions = self.root / "Sessions"
        self.sessions_dir = sessions if sessions.is_dir() else self.root

    def records(self) -> list[Record]:
        records = []
        for d in self.sessions_dir.iterdir():
            if not d.is_dir():
                continue
            has_video = any(d.glob("*.avi"))
            has_bdf = any(d.glob("*.bdf"))
            if not (has_video or has_bdf):
                continue  # not a recording folder
            if not has_bdf:
                raise InputError(f"{d}: video but no .bdf physiology file")
            video = one_match(d, VIDEO_PATTERNS, "colour video (.avi)")
            one_match(d, ("*.bdf",), "BDF")
            subject, attrs = read_session_subject(d / "session.xml")
            records.append(
                Record(
                    dataset=self.name,
                    video_id=d.name,
                    subject_id=subject,
                    video_path=video,
                    tags={"session": d.name, **attrs},
                )
            )
        if not records:
            raise InputError(f"{self.sessions_dir}: no MAHNOB-HCI sessions (<n>/*.avi + *.bdf)")
        return sorted(records, key=lambda r: natural_key(r.video_id))

    def load_reference(self, record: Record) -> Reference:
        bdf = one_match(record.video_path.parent, ("*.bdf",), "BDF")
        ecg, fs, video_start_s = read_bdf_ecg(bdf, self.ecg_channel)
        beat_t_s, hr_bpm = ecg_heart_rate(ecg, fs)
        if hr_bpm.size < 2:
            raise InputError(f"{bdf}: fewer than 3 R-peaks found in {self.ecg_channel}")
        ecg_t_s = np.arange(ecg.size) / fs - video_start_s
        return Reference(
            hr_bpm=hr_bpm,
            hr_t_s=beat_t_s - video_start_s,
            hr_source=f"ECG R-peaks ({self.ecg_channel}, NeuroKit2), beat-to-beat",
            extra={"ecg": (ecg, ecg_t_s)},
        )
