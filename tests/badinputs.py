"""A corpus of bad (and odd) inputs, generated on the fly: no binary fixture is committed.

Each builder writes its files under a folder it is given and returns the paths the CLI
case needs. Videos are written with PyAV (no ffmpeg binary), images with OpenCV, text
files with plain Python. :data:`CASES` lists the command-line cases: for each the argv
(with ``{tmp}``-style placeholders filled from the builder's dict), the exit code, and a
substring the one-line ``facepulse: error:`` message must contain.
"""

from __future__ import annotations

import json
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

# ----------------------------------------------------------------------- videos


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: int = 30,
    codec: str = "ffv1",
    pix_fmt: str = "bgr0",
    src_format: str = "rgb24",
    metadata: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` (T, H, W, C) with PyAV; ``src_format`` is the frames' own format."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        for key, value in (metadata or {}).items():
            stream.metadata[key] = value
        if len(frames) == 0:
            container.start_encoding()  # a valid header and no frame at all
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(frame, format=src_format)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def noise_frames(n: int = 45, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Flat grey noise: decodable, but no face in it."""
    rng = np.random.default_rng(seed)
    return rng.integers(90, 110, size=(n, height, width, 3), dtype=np.uint8)


def text_as_video(folder: Path) -> dict[str, Path]:
    path = folder / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    return {"video": path}


def random_bytes_avi(folder: Path) -> dict[str, Path]:
    path = folder / "random.avi"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    return {"video": path}


def empty_file(folder: Path) -> dict[str, Path]:
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return {"video": path}


def header_only_mp4(folder: Path) -> dict[str, Path]:
    """An MP4 cut after its first bytes: the container opens, nothing decodes."""
    full = write_video(folder / "full.mp4", noise_frames(30), codec="mpeg4", pix_fmt="yuv420p")
    cut = folder / "cut.mp4"
    cut.write_bytes(full.read_bytes()[:600])
    return {"video": cut}


def zero_frames_mkv(folder: Path) -> dict[str, Path]:
    return {"video": write_video(folder / "zero.mkv", np.zeros((0, 48, 64, 3), np.uint8))}


def audio_only_wav(folder: Path) -> dict[str, Path]:
    path = folder / "sound.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(8000, np.int16).tobytes())
    return {"video": path}


def odd_pixel_format(pix_fmt: str, codec: str = "ffv1", ext: str = "mkv") -> Callable[[Path], dict[str, Path]]:
    """A decodable no-face video in pixel format ``pix_fmt``: decoding must cope."""

    def build(folder: Path) -> dict[str, Path]:
        return {"video": write_video(folder / f"noise_{pix_fmt}.{ext}", noise_frames(), codec=codec, pix_fmt=pix_fmt)}

    build.__name__ = f"pixfmt_{pix_fmt}"
    return build


def odd_size(folder: Path) -> dict[str, Path]:
    """Odd frame width/height (many codecs want even sizes)."""
    return {"video": write_video(folder / "odd.mkv", noise_frames(height=47, width=63))}


def rotated_mp4(folder: Path) -> dict[str, Path]:
    """An MP4 whose stream carries a rotation tag (phone videos)."""
    frames = noise_frames(height=64, width=48)
    return {
        "video": write_video(
            folder / "rotated.mp4", frames, codec="mpeg4", pix_fmt="yuv420p", metadata={"rotate": "90"}
        )
    }


def truncated_mkv(folder: Path) -> dict[str, Path]:
    """A lossless Matroska file cut at 60%: decodes partly, then ends early."""
    full = write_video(folder / "full.mkv", noise_frames(90))
    cut = folder / "truncated.mkv"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    return {"video": cut}


def corrupt_middle_mpeg4(folder: Path) -> dict[str, Path]:
    """An MPEG-4 file with garbage over its middle third: some frames fail to decode."""
    full = write_video(folder / "full.avi", noise_frames(90), codec="mpeg4", pix_fmt="yuv420p")
    data = bytearray(full.read_bytes())
    a, b = len(data) // 3, 2 * len(data) // 3
    data[a:b] = np.random.default_rng(2).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path = folder / "corrupt.avi"
    path.write_bytes(bytes(data))
    return {"video": path}


# ------------------------------------------------------------------ frame folders


def empty_frame_folder(folder: Path) -> dict[str, Path]:
    frames = folder / "frames"
    frames.mkdir()
    return {"video": frames}


def frame_folder_of_text(folder: Path) -> dict[str, Path]:
    frames = folder / "frames"
    frames.mkdir()
    for i in range(3):
        (frames / f"{i:04d}.png").write_text("not a png")
    return {"video": frames}


def frame_folder_mixed_sizes(folder: Path) -> dict[str, Path]:
    import cv2

    frames = folder / "frames"
    frames.mkdir()
    for i, (h, w) in enumerate([(48, 64)] * 40 + [(40, 60)] * 5):
        cv2.imwrite(str(frames / f"{i:04d}.png"), np.full((h, w, 3), 100, np.uint8))
    return {"video": frames}


def frame_folder_ok(folder: Path) -> dict[str, Path]:
    import cv2

    frames = folder / "frames"
    frames.mkdir()
    for i, frame in enumerate(noise_frames(10)):
        cv2.imwrite(str(frames / f"{i:04d}.png"), frame)
    return {"video": frames}


# ----------------------------------------------------------------- dataset layouts

_FACE_VIDEO: list[Path] = []


def face_video(folder: Path, name: str = "vid.mkv") -> Path:
    """A 6 s synthetic face video (160x120, lossless), rendered once per process and copied."""
    import shutil
    import tempfile

    if not _FACE_VIDEO or not _FACE_VIDEO[0].is_file():
        from facepulse.synth import SynthParams
        from facepulse.synth import write_video as synth_video
        from facepulse.synth.writer import VIDEO_FILE

        clip = Path(tempfile.mkdtemp(prefix="fp-badinputs-")) / "clip"
        params = SynthParams(duration_s=6.0).with_overrides(
            {"physiology.hr_bpm": 75.0, "camera.width": 160, "camera.height": 120}
        )
        synth_video(clip, params, seed=7)
        _FACE_VIDEO[:] = [clip / VIDEO_FILE]
    target = folder / name
    shutil.copyfile(_FACE_VIDEO[0], target)
    return target


def ubfc_face_short_truth(folder: Path) -> dict[str, Path]:
    """A face video with a ground truth of 3 samples: the reference cannot cover it."""
    root = folder / "UBFC"
    (root / "subject1").mkdir(parents=True)
    face_video(root / "subject1", "vid.mp4")
    (root / "subject1" / "ground_truth.txt").write_text(ubfc_ground_truth_text(_ppg(3)))
    return {"data": root}


def face_clip(folder: Path) -> dict[str, Path]:
    return {"video": face_video(folder)}


def ubfc_ground_truth_text(ppg: np.ndarray, fps: float = 30.0) -> str:
    t = np.arange(ppg.size) / fps
    hr = np.full(ppg.size, 72.0)
    return "\n".join(" ".join(f"{v:.6e}" for v in row) for row in (ppg, hr, t)) + "\n"


def ubfc_empty(folder: Path) -> dict[str, Path]:
    root = folder / "UBFC"
    (root / "subject1").mkdir(parents=True)
    (root / "subject1" / "notes.txt").write_text("nothing here")
    return {"data": root}


def ubfc_without_ground_truth(folder: Path) -> dict[str, Path]:
    root = folder / "UBFC"
    (root / "subject1").mkdir(parents=True)
    write_video(root / "subject1" / "vid.mp4", noise_frames(10), codec="mpeg4", pix_fmt="yuv420p")
    return {"data": root}


def ubfc_ground_truth(text: str, name: str) -> Callable[[Path], dict[str, Path]]:
    """A one-subject UBFC folder with a (tiny, no-face) video and ``text`` as its truth."""

    def build(folder: Path) -> dict[str, Path]:
        root = folder / "UBFC"
        (root / "subject1").mkdir(parents=True)
        write_video(root / "subject1" / "vid.mp4", noise_frames(10), codec="mpeg4", pix_fmt="yuv420p")
        (root / "subject1" / "ground_truth.txt").write_text(text)
        return {"data": root}

    build.__name__ = name
    return build


def ubfc_both_videos(folder: Path) -> dict[str, Path]:
    root = folder / "UBFC"
    (root / "subject1").mkdir(parents=True)
    for name in ("vid.mp4", "vid.avi"):
        write_video(root / "subject1" / name, noise_frames(5), codec="mpeg4", pix_fmt="yuv420p")
    return {"data": root}


def generic_bad_json(folder: Path) -> dict[str, Path]:
    root = folder / "mine"
    root.mkdir()
    write_video(root / "a.mkv", noise_frames(10))
    (root / "a.json").write_text("{not json")
    return {"data": root}


def generic_ragged_csv(folder: Path) -> dict[str, Path]:
    root = folder / "mine"
    root.mkdir()
    write_video(root / "a.mkv", noise_frames(10))
    (root / "a.csv").write_text("ppg,time_s\n1,0\n2,0.1\n3\n")
    return {"data": root}


# ----------------------------------------------------------------------- configs


def config_file(text: str, name: str) -> Callable[[Path], dict[str, Path]]:
    def build(folder: Path) -> dict[str, Path]:
        path = folder / "exp.yaml"
        path.write_text(text)
        return {"config": path}

    build.__name__ = name
    return build


def split_file_bad(folder: Path) -> dict[str, Path]:
    root = ubfc_ground_truth(ubfc_ground_truth_text(np.sin(np.arange(10))), "x")(folder)["data"]
    split = folder / "split.json"
    split.write_text(json.dumps({"train": ["nobody"]}))
    return {"data": root, "split": split}


# ------------------------------------------------------------------ output paths


def output_folder(folder: Path) -> dict[str, Path]:
    out = folder / "outdir"
    out.mkdir()
    return {"out": out, **text_as_video(folder)}


def output_under_a_file(folder: Path) -> dict[str, Path]:
    blocker = folder / "blocker.txt"
    blocker.write_text("a file")
    return {"out": blocker / "r.json", "outdir": blocker / "results", **text_as_video(folder)}


def nothing(folder: Path) -> dict[str, Path]:  # noqa: ARG001
    return {}


# An output location nobody can write, root included (root ignores chmod): /sys.
UNWRITABLE = Path("/sys/facepulse-test/out")


@dataclass
class Case:
    """One command-line case: ``argv`` items may hold ``{key}`` filled from ``build``."""

    id: str
    build: Callable[[Path], dict[str, Path]]
    argv: list[str]
    exit_code: int
    needles: tuple[str, ...]
    warning: str | None = None  # a one-line warning that must also appear
    not_created: tuple[str, ...] = field(default=())  # paths (keys) the failed run must not create


def _ppg(n: int) -> np.ndarray:
    return np.sin(2 * np.pi * 1.2 * np.arange(n) / 30.0)


PREDICT_FAST = ["--window", "1", "--step", "1", "-q", "--detector", "haar"]

CASES: list[Case] = [
    # containers and codecs
    Case("text-as-mp4", text_as_video, ["predict", "{video}"], 2, ("notes.mp4", "not a video")),
    Case("random-bytes-avi", random_bytes_avi, ["predict", "{video}"], 2, ("random.avi",)),
    Case("empty-file", empty_file, ["predict", "{video}"], 2, ("empty.mp4",)),
    Case("header-only-mp4", header_only_mp4, ["predict", "{video}"], 2, ("cut.mp4",)),
    Case("zero-frames", zero_frames_mkv, ["predict", "{video}"], 2, ("zero.mkv",)),
    Case("audio-only", audio_only_wav, ["predict", "{video}"], 2, ("sound.wav", "no video stream")),
    Case("missing-file", nothing, ["predict", "{tmp}/nope.mp4"], 2, ("nope.mp4", "not found")),
    Case("folder-not-video", nothing, ["predict", "{tmp}"], 2, ("no images",)),
    # pixel formats, sizes, rotation: decodable, no face -> exit 3, never a traceback
    Case("pixfmt-gray", odd_pixel_format("gray"), ["predict", "{video}", *PREDICT_FAST], 3, ("no face",)),
    Case("pixfmt-yuv444p", odd_pixel_format("yuv444p"), ["predict", "{video}", *PREDICT_FAST], 3, ("no face",)),
    Case("pixfmt-gray16", odd_pixel_format("gray16le"), ["predict", "{video}", *PREDICT_FAST], 3, ("no face",)),
    Case("pixfmt-yuv420p10", odd_pixel_format("yuv420p10le"), ["predict", "{video}", *PREDICT_FAST], 3, ("no face",)),
    Case("odd-size", odd_size, ["predict", "{video}", *PREDICT_FAST], 3, ("no face",)),
    Case("rotated-mp4", rotated_mp4, ["predict", "{video}", *PREDICT_FAST], 3, ("no face",)),
    Case("truncated-mkv", truncated_mkv, ["predict", "{video}", *PREDICT_FAST], 3, ("no face",),
         warning="truncated"),
    Case("corrupt-middle", corrupt_middle_mpeg4, ["predict", "{video}", *PREDICT_FAST], 3, ("corrupt.avi",)),
    # frame folders
    Case("frames-empty", empty_frame_folder, ["predict", "{video}", "--fps", "30"], 2, ("no images",)),
    Case("frames-not-images", frame_folder_of_text, ["predict", "{video}", "--fps", "30"], 2,
         ("0000.png", "cannot read image")),
    Case("frames-mixed-sizes", frame_folder_mixed_sizes, ["predict", "{video}", "--fps", "30", *PREDICT_FAST], 2,
         ("0040.png",)),
    Case("frames-no-fps", frame_folder_ok, ["predict", "{video}"], 2, ("fps",)),
    Case("frames-bad-fps", frame_folder_ok, ["predict", "{video}", "--fps", "-5"], 2, ("fps",)),
    # dataset layouts and ground truths
    Case("data-missing", nothing, ["evaluate", "--dataset", "ubfc-rppg", "--data", "{tmp}/none", "-q"], 2,
         ("none", "not found")),
    Case("data-unknown-reader", nothing, ["evaluate", "--dataset", "ubfc-xyz", "--data", "{tmp}", "-q"], 2,
         ("ubfc-xyz",)),
    Case("ubfc-no-subjects", ubfc_empty, ["evaluate", "--dataset", "ubfc-rppg", "--data", "{data}", "-q"], 2,
         ("no UBFC-rPPG subject",)),
    Case("ubfc-no-ground-truth", ubfc_without_ground_truth,
         ["evaluate", "--dataset", "ubfc-rppg", "--data", "{data}", "-q"], 2, ("ground_truth.txt",)),
    Case("ubfc-two-videos", ubfc_both_videos, ["evaluate", "--dataset", "ubfc-rppg", "--data", "{data}", "-q"], 2,
         ("vid.avi and vid.mp4",)),
    Case("ubfc-gt-columns",
         ubfc_ground_truth("\n".join(f"{v:.4f} 72 {i / 30:.4f}" for i, v in enumerate(_ppg(10))) + "\n", "gt_columns"),
         ["preprocess", "{data}", "--dataset", "ubfc-rppg", "--cache-dir", "{tmp}/cache", "-q", "--detector", "haar"],
         2, ("ground_truth.txt", "expected 3 lines")),
    Case("ubfc-gt-short", ubfc_face_short_truth,
         ["preprocess", "{data}", "--dataset", "ubfc-rppg", "--cache-dir", "{tmp}/cache", "-q", "--detector", "haar"],
         2, ("ground_truth.txt", "shorter than the video")),
    Case("ubfc-gt-text", ubfc_ground_truth("1 2 3\nfoo bar baz\n0 1 2\n", "gt_text"),
         ["preprocess", "{data}", "--dataset", "ubfc-rppg", "--cache-dir", "{tmp}/cache", "-q", "--detector", "haar"],
         2, ("ground_truth.txt", "line 2")),
    Case("ubfc-gt-nan", ubfc_ground_truth("1 nan 3\n72 72 72\n0 1 2\n", "gt_nan"),
         ["preprocess", "{data}", "--dataset", "ubfc-rppg", "--cache-dir", "{tmp}/cache", "-q", "--detector", "haar"],
         2, ("ground_truth.txt", "non-finite")),
    Case("ubfc-gt-backwards", ubfc_ground_truth("1 2 3\n72 72 72\n0 2 1\n", "gt_backwards"),
         ["preprocess", "{data}", "--dataset", "ubfc-rppg", "--cache-dir", "{tmp}/cache", "-q", "--detector", "haar"],
         2, ("ground_truth.txt", "back in time")),
    Case("generic-bad-json", generic_bad_json,
         ["preprocess", "{data}", "--dataset", "generic", "--cache-dir", "{tmp}/cache", "-q", "--detector", "haar"],
         2, ("a.json", "not valid JSON")),
    Case("generic-ragged-csv", generic_ragged_csv,
         ["preprocess", "{data}", "--dataset", "generic", "--cache-dir", "{tmp}/cache", "-q", "--detector", "haar"],
         2, ("a.csv",)),
    Case("split-file-unknown-subject", split_file_bad,
         ["evaluate", "--dataset", "ubfc-rppg", "--data", "{data}", "--split-file", "{split}", "-q"], 2,
         ("split.json",)),
    # configs
    Case("config-missing", nothing, ["train", "--config", "{tmp}/none.yaml"], 2, ("none.yaml", "not found")),
    Case("config-not-yaml", config_file("name: [unclosed\n", "cfg_yaml"), ["train", "--config", "{config}"], 2,
         ("exp.yaml", "not valid YAML")),
    Case("config-a-list", config_file("- 1\n- 2\n", "cfg_list"), ["train", "--config", "{config}"], 2,
         ("exp.yaml", "mapping")),
    Case("config-unknown-field", config_file("optim:\n  lrate: 1\n", "cfg_field"), ["train", "--config", "{config}"],
         2, ("exp.yaml", "optim.lrate")),
    Case("config-bad-value", config_file("data:\n  clip_len: 2\n", "cfg_value"), ["train", "--config", "{config}"],
         2, ("data.clip_len",)),
    Case("config-bad-override", config_file("name: x\n", "cfg_ok"), ["train", "--config", "{config}", "optim.lr"],
         2, ("optim.lr", "key=value")),
    Case("config-override-not-section", config_file("name: x\n", "cfg_ok2"),
         ["train", "--config", "{config}", "name.sub=1"], 2, ("name",)),
    Case("config-unwritable-out-dir", config_file("name: x\n", "cfg_ok3"),
         ["train", "--config", "{config}", f"out_dir={UNWRITABLE}"], 2, ("out_dir", "cannot write")),
    # CLI values
    Case("cli-unknown-option", nothing, ["predict", "--bogus-option"], 2, ("No such option: --bogus-option",)),
    Case("cli-missing-argument", nothing, ["predict"], 2, ("Missing argument",)),
    Case("cli-not-a-number", nothing, ["predict", "x.mp4", "--window", "abc"], 2, ("--window",)),
    Case("cli-unknown-command", nothing, ["nosuch"], 2, ("nosuch",)),
    Case("cli-unknown-method", text_as_video, ["predict", "{video}", "--method", "magic"], 2, ("magic",)),
    Case("cli-negative-face-index", text_as_video, ["predict", "{video}", "--face-index", "-1"], 2,
         ("--face-index",)),
    Case("cli-band-reversed", text_as_video, ["predict", "{video}", "--band-min", "200", "--band-max", "100"], 2,
         ("band",)),
    Case("cli-reference", nothing, ["evaluate", "--dataset", "ubfc-rppg", "--data", "{tmp}", "--reference", "x"], 2,
         ("--reference",)),
    Case("cli-face-index-out-of-range", face_clip, ["predict", "{video}", "--window", "2", "-q",
         "--face-index", "5"], 3, ("--face-index 5 is out of range", "1 face")),
    Case("cli-synth-size", nothing, ["synth", "{tmp}/syn", "--size", "big"], 2, ("--size",)),
    Case("cli-synth-n-videos", nothing, ["synth", "{tmp}/syn", "--n-videos", "0"], 2, ("--n-videos",)),
    Case("cli-synth-scenario", nothing, ["synth", "{tmp}/syn", "--scenario", "moonwalk", "--n-videos", "1"], 2,
         ("moonwalk",)),
    # output paths: refused before any work, one line
    Case("json-is-folder", output_folder, ["predict", "{video}", "--json", "{out}"], 2, ("--json", "is a folder")),
    Case("csv-under-a-file", output_under_a_file, ["predict", "{video}", "--csv", "{out}"], 2,
         ("--csv", "is a file, not a folder")),
    Case("plot-unwritable", text_as_video, ["predict", "{video}", "--plot", f"{UNWRITABLE}/r.png"], 2,
         ("--plot", "cannot write")),
    Case("evaluate-out-unwritable", ubfc_without_ground_truth,
         ["evaluate", "--dataset", "ubfc-rppg", "--data", "{data}", "--out", str(UNWRITABLE),
          "--cache-dir", "{tmp}/cache", "-q"], 2, ("--out", "cannot write"), not_created=("cache",)),
    Case("evaluate-out-under-a-file", output_under_a_file,
         ["evaluate", "--dataset", "ubfc-rppg", "--data", "{tmp}", "--out", "{outdir}"], 2,
         ("--out", "is a file")),
    Case("export-onnx-folder", output_folder, ["export", "{video}", "--onnx", "{out}"], 2, ("--onnx", "is a folder")),
]
