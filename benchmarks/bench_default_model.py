"""Leave-one-subject-out benchmark of the deep models on real video (issue 12).

    python benchmarks/bench_default_model.py                         # TSNet, all 6 folds
    python benchmarks/bench_default_model.py --variant physnet --folds subject3,subject9
    python benchmarks/bench_default_model.py --variant tsnet_teacher
    python benchmarks/bench_default_model.py --report                # tables of every variant run
    python benchmarks/bench_default_model.py --rescore               # score finished folds again
    python benchmarks/bench_default_model.py --speed CKPT            # predict speed, model vs fused

For each of the six ``ubfc_rppg_dev`` subjects: train the variant's config on the other
five (``facepulse.train.run_experiment``, fixed schedule, no model selection, so no frame
of the test subject reaches training or selection), then run the model on the held-out
subject and on the two vitallens clips (a cross-dataset test; each fold's model scores
them, so they get six evaluations). Scored like ``bench_fusion.py``: 10-s windows every
1 s against the reference PPG's windows (primary), and whole-video HR against the
reference's periodogram. Resumable: a finished fold is kept in
``out/bench_default_model/<variant>/<subject>.json`` and a killed training resumes from
its ``last.ckpt``.

The face stage (decode, tracking, 36 px crops) runs once per clip and is kept in
``out/bench_default_model/faces/``. Say what else shared the CPU when quoting times.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fusion import DECODE_ONLY, decode_command, reference, table, time_commands  # noqa: E402
from bench_predict import clips  # noqa: E402

OUT = Path("out/bench_default_model")
SUBJECTS = ("subject3", "subject4", "subject5", "subject8", "subject9", "subject10")

#: variant -> (config file, overrides). Every variant trains the same number of epochs.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "tsnet": ("configs/tsnet_ubfc.yaml", []),
    "tsnet_no_speed": ("configs/tsnet_ubfc.yaml", ["augment.speed_p=0"]),
    "tsnet_teacher": ("configs/tsnet_ubfc.yaml", ["data.label_source=teacher"]),
    "tsnet_codec": ("configs/tsnet_ubfc.yaml", ["augment.codec.p=0.5"]),
    "physnet": ("configs/tsnet_ubfc.yaml", ["model.name=physnet", "model.params={base_channels: 8}"]),
    "autohr": ("configs/tsnet_ubfc.yaml", ["model.name=autohr", "model.params={channels: 16, n_blocks: 4}"]),
}


def faces(size: int = 36) -> list[dict]:
    """Face crops, frame times and reference of every real clip (computed once, kept)."""
    from facepulse.face.detectors import make_detector
    from facepulse.face.tracker import FaceTracker
    from facepulse.io.video import open_video
    from facepulse.roi.crops import face_crop_hook
    from facepulse.roi.trace import extract_trace

    out = []
    for clip in clips():
        path = OUT / "faces" / f"{clip['name'].replace('/', '_')}_{size}.npz"
        if not path.is_file():
            src = open_video(clip["video"])
            on_frame, finish = face_crop_hook(size, src.info.fps)
            trace = extract_trace(src, FaceTracker(make_detector("auto")), on_frame=on_frame)
            frames, _ = finish()
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, frames=frames, t_s=trace.timestamps_s, valid=trace.valid,
                                rgb=trace.rgb, fps=trace.fps)
        d = np.load(path)
        ts = d["t_s"]
        ref = reference(clip["reference"].ppg_on_frames(ts), ts, float(d["fps"]))
        out.append({"name": clip["name"], "frames": d["frames"], "t_s": ts, "valid": d["valid"],
                    "rgb": d["rgb"], "fps": float(d["fps"]), "ref": ref})
    return out


class _Trace:
    """The attributes of a trace that ``predict_from_face_frames`` reads."""

    def __init__(self, face: dict) -> None:
        self.timestamps_s, self.valid, self.rgb = face["t_s"], face["valid"], face["rgb"]
        self.frames_without_face, self.boxes = int((~face["valid"]).sum()), None


def score(ckpt: Path, face: dict) -> dict:
    """The model on one clip: ``predict``'s path (tracked windows, whole HR from the track)
    and, under ``"plain"``, each window's own spectral peak and the whole clip's
    periodogram (the path before tracking)."""
    from facepulse.io.timegrid import resample_frames
    from facepulse.models.inference import load_model, video_pulse
    from facepulse.pipeline import predict_from_face_frames, result_from_pulse

    runner = load_model(ckpt)
    r = predict_from_face_frames(_Trace(face), face["frames"], runner, window_s=10.0, step_s=1.0)
    t_u, frames_u = resample_frames(face["t_s"], face["frames"], runner.info.fps)
    plain = result_from_pulse(t_u, video_pulse(runner, frames_u), runner.info.fps, method="plain",
                              window_s=10.0, step_s=1.0)
    return {"whole": float(r.hr_bpm), "windows": np.asarray(r.windows.hr_bpm, float).tolist(),
            "plain": {"whole": float(plain.hr_bpm), "windows": np.asarray(plain.windows.hr_bpm, float).tolist()}}


def rescore(variant: str, face_list: list[dict]) -> None:
    """Score every finished fold of ``variant`` again from its checkpoint (same model)."""
    by_name = {f["name"]: f for f in face_list}
    for path in sorted((OUT / variant).glob("subject*.json")):
        d = json.loads(path.read_text())
        ckpt = OUT / variant / "runs" / d["subject"] / "last.ckpt"
        d["est"] = {name: score(ckpt, by_name[name]) for name in d["est"]}
        path.write_text(json.dumps(d, indent=1))


def train_fold(run_dir: Path, subject: str, cfg_file: str, overrides: list[str]) -> tuple[object, float, list[str]]:
    """Train ``cfg_file`` with every subject of ``SUBJECTS`` but ``subject`` (leave one subject
    out), in ``run_dir / subject``. Returns the run's result, its seconds and the overrides
    that placed the fold (out_dir, name, split file), after ``overrides``."""
    from facepulse.config import load_config
    from facepulse.train.runner import run_experiment

    split = run_dir / f"split_{subject}.yaml"
    split.parent.mkdir(parents=True, exist_ok=True)
    split.write_text(f"train: [{', '.join(s for s in SUBJECTS if s != subject)}]\ntest: [{subject}]\n")
    fold = [f"out_dir={run_dir}", f"name={subject}", f"data.split_file={split}"]
    t0 = time.perf_counter()
    result = run_experiment(load_config(cfg_file, overrides + fold), progress=False)
    return result, time.perf_counter() - t0, fold


def run_fold(variant: str, subject: str, face_list: list[dict], epochs: int | None) -> dict:
    path = OUT / variant / f"{subject}.json"
    if path.is_file():
        return json.loads(path.read_text())
    cfg_file, overrides = VARIANTS[variant]
    if epochs is not None:
        overrides = overrides + [f"optim.max_epochs={epochs}"]
    result, train_s, fold = train_fold(OUT / variant / "runs", subject, cfg_file, overrides)
    ckpt = result.best_ckpt or result.last_ckpt
    rows = {}
    for face in face_list:
        if face["name"] == f"ubfc/{subject}" or face["name"].startswith("vitallens"):
            rows[face["name"]] = score(ckpt, face)
    out = {"variant": variant, "subject": subject, "train_s": train_s, "epochs": result.epochs,
           "config": cfg_file, "overrides": overrides + fold[2:], "est": rows}
    path.write_text(json.dumps(out, indent=1))
    return out


def report(variants: list[str], face_list: list[dict], only: list[str] | None = None) -> dict:
    """Rows in bench_fusion's layout: one per (clip, evaluation); ``only``: these folds."""
    refs = {f["name"]: f["ref"] for f in face_list}
    summary = {}
    for variant in variants:
        folds = sorted(f for f in (OUT / variant).glob("subject*.json") if only is None or f.stem in only)
        if not folds:
            continue
        ubfc_rows, vl_rows = [], []
        for fold in folds:
            d = json.loads(fold.read_text())
            for name, est in d["est"].items():
                ref = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in refs[name].items()}
                both = {variant: est, **({f"{variant} (untracked)": est["plain"]} if "plain" in est else {})}
                row = {"clip": name, "ref": ref, "est": both}
                (ubfc_rows if name.startswith("ubfc") else vl_rows).append(row)
        entry = {"folds": [f.stem for f in folds],
                 "train_s_mean": float(np.mean([json.loads(f.read_text())["train_s"] for f in folds]))}
        for label, rows in (("ubfc_loso", ubfc_rows), ("vitallens", vl_rows), ("all", ubfc_rows + vl_rows)):
            if rows:
                tab = table(rows)
                entry[label] = tab[variant]
                if f"{variant} (untracked)" in tab:
                    entry[f"{label}_untracked"] = tab[f"{variant} (untracked)"]
        entry["per_clip"] = {r["clip"]: round(r["est"][variant]["whole"], 1) for r in ubfc_rows}
        entry["vitallens_per_fold"] = [round(r["est"][variant]["whole"], 1) for r in vl_rows]
        summary[variant] = entry
    return summary


def speed(ckpt: Path, video: Path, repeats: int) -> dict:
    """Wall time of whole ``facepulse predict`` processes on one video, interleaved:
    decode only, the fused default, the packaged model (ONNX Runtime) and the same model's
    PyTorch checkpoint. Also the model alone on the video's face crops, per second of video."""
    facepulse = str(Path(sys.executable).with_name("facepulse"))
    cmds = {
        DECODE_ONLY: decode_command(video),
        "predict --method auto (fused)": [facepulse, "predict", str(video), "-q"],
        "predict --model default (ONNX Runtime)": [facepulse, "predict", str(video), "-q", "--model", "default"],
        "predict --model CKPT (PyTorch)": [facepulse, "predict", str(video), "-q", "--model", str(ckpt)],
    }
    out: dict = time_commands(cmds, repeats)
    from facepulse.models.inference import load_model, video_pulse

    face = next(f for f in faces() if f["name"] == "ubfc/subject9")
    duration_s = face["t_s"][-1] - face["t_s"][0]
    for label, spec in (("model only, ONNX Runtime", "default"), ("model only, PyTorch", ckpt)):
        runner = load_model(spec)
        best = min(_timed(lambda: video_pulse(runner, face["frames"])) for _ in range(repeats))
        out[label] = {"best_s": best, "s_per_video_s": best / duration_s}
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="tsnet", choices=sorted(VARIANTS))
    ap.add_argument("--folds", default=",".join(SUBJECTS), help="held-out subjects, comma-separated")
    ap.add_argument("--epochs", type=int, default=None, help="override optim.max_epochs")
    ap.add_argument("--report", action="store_true", help="only print the tables of finished folds")
    ap.add_argument("--rescore", action="store_true", help="score every finished fold again from its checkpoint")
    ap.add_argument("--speed", type=Path, default=None, metavar="CKPT",
                    help="time predict with this checkpoint and the packaged model instead")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    if args.speed is not None:
        video = clips()[4]["video"]  # ubfc subject9, 68 s, 640x480
        result = {"video": str(video), **speed(args.speed, Path(video), args.repeats)}
        (OUT / "speed.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
        return 0
    face_list = faces()
    if args.rescore:
        for variant in sorted(VARIANTS):
            rescore(variant, face_list)
    elif not args.report:
        for subject in args.folds.split(","):
            d = run_fold(args.variant, subject, face_list, args.epochs)
            print(json.dumps({"fold": subject, "train_s": round(d["train_s"], 1),
                              "est": {k: round(v["whole"], 1) for k, v in d["est"].items()}}), flush=True)
    summary = report(sorted(VARIANTS), face_list)
    summary["_machine"] = {"platform": platform.platform(), "python": platform.python_version(),
                           "torch": torch.__version__, "threads": torch.get_num_threads()}
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
