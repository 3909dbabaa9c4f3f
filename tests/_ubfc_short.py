"""Short UBFC-rPPG clips for tests: the first frames of real subjects, in the dataset's layout.

The clips are re-encoded (H.264, near-lossless) into a temporary folder at test time; the
real data stays in $FACEPULSE_DATA (default ../shared/data) and nothing is committed.
"""

from __future__ import annotations

from pathlib import Path

from facepulse.paths import shared_data_dir


def ubfc_dev_dir() -> Path:
    return shared_data_dir() / "ubfc_rppg_dev"


def write_short_subject(source: Path, dest: Path, n_frames: int) -> Path:
    """Copy the first ``n_frames`` of ``source/vid.mp4`` and of its ground_truth.txt to ``dest``."""
    import av

    dest.mkdir(parents=True, exist_ok=True)
    with av.open(str(source / "vid.mp4")) as inp, av.open(str(dest / "vid.mp4"), "w") as out:
        src = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=src.average_rate)
        stream.width, stream.height, stream.pix_fmt = src.width, src.height, "yuv420p"
        # deterministic bytes (libx264's mbtree and threading vary run to run under load)
        stream.options = {"crf": "12", "preset": "ultrafast", "threads": "1", "x264-params": "mbtree=0"}
        for i, frame in enumerate(inp.decode(video=0)):
            if i >= n_frames:
                break
            rgb = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            for packet in stream.encode(rgb):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    lines = (source / "ground_truth.txt").read_text().split("\n")[:3]
    (dest / "ground_truth.txt").write_text("\n".join(" ".join(ln.split()[:n_frames]) for ln in lines) + "\n")
    return dest


def short_ubfc(dest: Path, subjects: dict[str, str], n_frames: int) -> Path:
    """A UBFC-rPPG DATASET_2 folder at ``dest``: ``{name in dest: real subject}``; clips of
    the same real subject are encoded once and copied."""
    import shutil

    made: dict[str, Path] = {}
    for name, subject in subjects.items():
        if subject in made:
            shutil.copytree(made[subject], dest / name)
        else:
            made[subject] = write_short_subject(ubfc_dev_dir() / subject, dest / name, n_frames)
    return dest
