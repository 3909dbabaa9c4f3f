"""Accuracy of facepulse's deep models on real video, next to POS and open-rppg's models.

    python benchmarks/bench_accuracy.py --work /tmp/acc              # everything (resumable)
    python benchmarks/bench_accuracy.py --work /tmp/acc --only score # tables from what exists

Steps (each reuses what an earlier, possibly interrupted, run left in ``--work``):

* ``synth``: ``facepulse synth`` of ``--n-videos`` 30 s videos, scenario ``mixed``
  (still/motion/lighting/skin tones/compression), 320x240, into WORK/data/synthetic.
* ``train``: PhysNet supervised on those videos only (configs/physnet_synthetic.yaml with
  32 x 32 face crops, ``--steps`` optimiser steps of batch 8; best checkpoint by the
  synthetic validation HR MAE). No real video is seen.
  Then the AutoHR network (default TDC cell, 16 channels, 4 blocks, hybrid loss, AutoHR's
  erasing and HR resampling; configs/autohr_synthetic.yaml) the same way.
* ``finetune``: two folds by subject over ``ubfc_rppg_dev``: the synthetic checkpoint
  (``model.init_from``) trained further on two subjects, the third picks the checkpoint,
  the other three are held out. Every subject is held out in exactly one fold.
* ``peers``: open-rppg 0.1.1's pretrained models (PhysNet, PhysFormer, EfficientPhys,
  TSCAN, PhysMamba, RhythmMamba trained on PURE; FacePhys on RLAP) through
  ``benchmarks/peer_openrppg.py`` in its own environment (``--peer-python``).
* ``score``: ``facepulse.eval.evaluate_dataset`` on the six ubfc_rppg_dev subjects and the
  two vitallens clips (generic layout, per-frame PPG), reference = the PPG through the
  same HR path; windows of 10 s every 1 s. open-rppg's raw pulse goes through our HR path
  like ours (same windows, same band); its own whole-video HR is shown as well.

Runs on the CPU. Say whether other work shared the CPU when quoting timings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

REPO = Path(__file__).resolve().parents[1]
UBFC = ["subject3", "subject4", "subject5", "subject8", "subject9", "subject10"]
FOLDS = {  # name: (train, val, test) subjects
    "A": (["subject3", "subject4"], ["subject5"], ["subject8", "subject9", "subject10"]),
    "B": (["subject8", "subject9"], ["subject10"], ["subject3", "subject4", "subject5"]),
}
PEERS = ["PhysNet.pure", "PhysFormer.pure", "EfficientPhys.pure", "TSCAN.pure", "PhysMamba.pure",
         "RhythmMamba.pure", "FacePhys.rlap"]
SIZE = 32


def data_dir() -> Path:
    from facepulse.paths import shared_data_dir

    return shared_data_dir().resolve()


# ------------------------------------------------------------------------- synth
def step_synth(args) -> None:
    from facepulse.synth import SynthParams
    from facepulse.synth.params import CameraParams
    from facepulse.synth.writer import write_dataset

    base = SynthParams(duration_s=30.0, camera=CameraParams(width=320, height=240))
    write_dataset(Path("data/synthetic"), n_videos=args.n_videos, scenario="mixed", seed=0, base=base, progress=True)


# ------------------------------------------------------------------------- train
def experiment_config(name: str, extra: list[str], base: str = "physnet_synthetic.yaml"):
    from facepulse.config import load_config

    return load_config(REPO / "configs" / base, [
        f"name={name}", "out_dir=runs", f"data.size={SIZE}", "trainer.early_stopping_patience=null",
        "optim.max_epochs=100000",
        *extra,
    ])


def run(cfg) -> Path:
    from facepulse.train.runner import run_experiment

    start = time.perf_counter()
    result = run_experiment(cfg, resume=True, progress=True)
    print(f"  {cfg.name}: best {result.best_ckpt} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return Path(result.best_ckpt)


def step_train(args) -> Path:
    ckpt = run(experiment_config("physnet_synth", [f"optim.max_steps={args.steps}", "data.root=data/synthetic"]))
    if args.autohr_steps:
        # The AutoHR network (default TDC cell) with its hybrid loss and augmentations.
        run(experiment_config("autohr_synth", [f"optim.max_steps={args.autohr_steps}", "data.root=data/synthetic",
                                            "model.params={channels: 16, n_blocks: 4}", "optim.batch_size=8"],
                           base="autohr_synthetic.yaml"))
    return ckpt


def step_finetune(args) -> dict[str, Path]:
    import yaml

    synth_ckpt = Path("runs/physnet_synth/best.ckpt")
    if not synth_ckpt.exists():
        raise SystemExit("finetune needs runs/physnet_synth/best.ckpt (run the train step)")
    out = {}
    for fold, (train, val, test) in FOLDS.items():
        split = Path(f"split_{fold}.yaml")
        split.write_text(yaml.safe_dump({"train": train, "val": val, "test": test}))
        cfg = experiment_config(f"physnet_ubfc_{fold}", [
            "data.dataset=ubfc-rppg", "data.root=shared:ubfc_rppg_dev", f"data.split_file={split}",
            f"model.init_from={synth_ckpt}", f"optim.max_steps={args.finetune_steps}", "optim.lr=1e-3",
        ])
        out[fold] = run(cfg)
    return out


# ------------------------------------------------------------------------- peers
def step_peers(args) -> None:
    if not Path(args.peer_python).exists():
        print(f"  peers: {args.peer_python} not found; skipped (see peer_openrppg.py)", file=sys.stderr)
        return
    videos = [f"{s}={data_dir() / 'ubfc_rppg_dev' / s / 'vid.mp4'}" for s in UBFC]
    videos += [f"vitallens_{k}={data_dir() / 'vitallens_samples' / f'sample_video_{k}.mp4'}" for k in (1, 2)]
    subprocess.run([args.peer_python, str(REPO / "benchmarks" / "peer_openrppg.py"), "peers",
                    "--model", *args.peers, "--video", *videos], check=True)


@dataclass
class PeerEstimator:
    """open-rppg's raw pulse (from peer_openrppg.py) through facepulse's HR path."""

    model: str
    folder: Path
    own_hr: bool = False  # True: replace the whole-video HR by the peer's own figure
    needs_clips: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return f"open-rppg {self.model}" + (" (its own HR)" if self.own_hr else "")

    def estimate(self, video, *, window_s: float, step_s: float, band_bpm: tuple[float, float]):
        import dataclasses

        from facepulse.errors import InputError
        from facepulse.pipeline import result_from_pulse
        from facepulse.roi.trace import resample_uniform

        path = self.folder / self.model / f"{video.video_id}.json"
        if not path.exists():
            raise InputError(f"{path}: no open-rppg output (run the peers step)")
        rec = json.loads(path.read_text())
        if "error" in rec:
            raise InputError(f"open-rppg {self.model} on {video.video_id}: {rec['error']}")
        t_s, bvp = np.asarray(rec["t_s"], float), np.asarray(rec["bvp"], float)
        if t_s.size < 2:
            raise InputError(f"open-rppg {self.model} on {video.video_id}: no pulse")
        # The peer's times count from its first decoded frame; ours are the video's frame
        # times. Put its pulse on our frames, then on the grid the reference uses.
        frames_t = video.timestamps_s
        on_frames = np.interp(frames_t - frames_t[0], t_s - t_s[0], bvp, left=np.nan, right=np.nan)
        fps = float(rec["model_fps"])
        t_uniform, bvp_uniform = resample_uniform(frames_t, on_frames, fps)
        result = result_from_pulse(t_uniform, bvp_uniform, fps, method=self.name, frame_timestamps_s=frames_t,
                                   window_s=window_s, step_s=step_s, band_bpm=band_bpm, source=rec["video"])
        if self.own_hr:
            result = dataclasses.replace(result, hr_bpm=float("nan") if rec["hr_bpm"] is None else rec["hr_bpm"])
        return result


# ------------------------------------------------------------------------- score
def vitallens_reader():
    """The two vitallens clips in the generic layout (``<name>.mp4`` + ``<name>.csv``)."""
    from facepulse.datasets import get_reader

    root = Path("vitallens")
    root.mkdir(exist_ok=True)
    for k in (1, 2):
        for src, dst in ((f"sample_video_{k}.mp4", f"vitallens_{k}.mp4"), (f"sample_vitals_{k}.csv", f"vitallens_{k}.csv")):
            if not (root / dst).exists():
                (root / dst).symlink_to(data_dir() / "vitallens_samples" / src)
    return get_reader("generic", root)


def evaluate(estimator, reader, records=None):
    from facepulse.datasets.cache import PreprocessConfig
    from facepulse.eval.evaluate import evaluate_dataset

    return evaluate_dataset(reader, estimator, records=records, cache_dir=".cache/facepulse",
                            config=PreprocessConfig.create(size=SIZE))


def summary_row(label: str, reports: list) -> dict:
    """Whole-video and windowed figures of several reports pooled (their videos together)."""
    from facepulse.eval.evaluate import EvaluationReport

    pooled = EvaluationReport(dataset="", estimator=label, window_s=10.0, step_s=1.0, band_bpm=(0, 0), reference="ppg")
    for r in reports:
        pooled.videos += r.videos
        pooled.failed.update(r.failed)
    whole, win = pooled.whole_video or {}, pooled.windowed or {}
    per_video: dict[str, list[float]] = {}
    for v in pooled.videos:  # a video scored by two fold models appears twice: "id", "id #2"
        key = v.video_id if v.video_id not in per_video else f"{v.video_id} #2"
        per_video[key] = [round(v.hr_pred_bpm, 1), round(v.hr_ref_bpm, 1)]
    return {
        "model": label,
        "videos": len(pooled.videos),
        "scored": int(sum(np.isfinite(v.hr_pred_bpm) for v in pooled.videos)),
        "failed": dict(pooled.failed),
        "whole_mae": whole.get("mae"),
        "whole_rmse": whole.get("rmse"),
        "win_mae": win.get("mae"),
        "win_rmse": win.get("rmse"),
        "win_r": win.get("pearson_r"),
        "per_video": per_video,
    }


def step_score(args) -> dict:
    import facepulse.models.inference  # noqa: F401  (registers the "model" estimator)
    from facepulse.datasets import get_reader
    from facepulse.eval.evaluate import MethodEstimator, make_estimator

    ubfc = get_reader("ubfc-rppg", data_dir() / "ubfc_rppg_dev")
    vl = vitallens_reader()
    by_id = {r.video_id: r for r in ubfc.records()}
    estimators: list[tuple[str, object]] = [("facepulse POS", MethodEstimator("pos"))]
    if Path("runs/physnet_synth/best.ckpt").exists():
        estimators.append(("facepulse PhysNet, synthetic only", make_estimator("model", "runs/physnet_synth/best.ckpt")))
    if Path("runs/autohr_synth/best.ckpt").exists():
        estimators.append(("facepulse AutoHR net, synthetic only", make_estimator("model", "runs/autohr_synth/best.ckpt")))
    for model in args.peers:
        if (Path("peers") / model).is_dir():
            estimators.append((f"open-rppg {model}", PeerEstimator(model, Path("peers"))))
            estimators.append((f"open-rppg {model}, its own HR", PeerEstimator(model, Path("peers"), own_hr=True)))

    out: dict = {"all": [], "finetune": []}
    ubfc_reports = {}
    for label, est in estimators:
        ubfc_reports[label] = evaluate(est, ubfc)
        ubfc_row, vl_row = summary_row(label, [ubfc_reports[label]]), summary_row(label, [evaluate(est, vl)])
        out["all"].append({"model": label, "ubfc": ubfc_row, "vitallens": vl_row})
        print(f"  {label}: ubfc whole {ubfc_row['whole_mae']}, vitallens whole {vl_row['whole_mae']}", file=sys.stderr)

    # Held-out subjects of the fine-tuning folds. The folds' test subjects together are all
    # six, so the models that were not fine-tuned are compared on the reports above.
    finetuned = {f: Path(f"runs/physnet_ubfc_{f}/best.ckpt") for f in FOLDS}
    if all(p.exists() for p in finetuned.values()):
        for label in ("facepulse POS", "facepulse PhysNet, synthetic only"):
            if label in ubfc_reports:
                out["finetune"].append({"model": label, "ubfc": summary_row(label, [ubfc_reports[label]]),
                                        "vitallens": None})
        label = "facepulse PhysNet, synthetic + fine-tuned"
        held_out, vitallens = [], []
        for fold, (_, _, test) in FOLDS.items():
            est = make_estimator("model", str(finetuned[fold]))
            held_out.append(evaluate(est, ubfc, [by_id[s] for s in test]))
            vitallens.append(evaluate(est, vl))
        out["finetune"].append({"model": label, "ubfc": summary_row(label, held_out),
                                "vitallens": summary_row(label, vitallens)})
    return out


# ------------------------------------------------------------------------ report
def _f(x, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def markdown(scores: dict) -> str:
    lines = []
    for key, title in (("all", "All six ubfc_rppg_dev subjects and both vitallens clips"),
                       ("finetune", "Held-out ubfc_rppg_dev subjects of the two fine-tuning folds "
                                    "(vitallens: both fold models, 4 evaluations)")):
        if not scores.get(key):
            continue
        lines += [f"**{title}**", "",
                  "| model | UBFC whole MAE | UBFC whole RMSE | UBFC win. MAE | UBFC win. r | vitallens whole MAE | vitallens win. MAE |",
                  "|---|---|---|---|---|---|---|"]
        for row in scores[key]:
            u, v = row["ubfc"], row["vitallens"] or {}
            n_bad = len(u["failed"]) + u["videos"] - u["scored"] + len(v.get("failed") or {}) + v.get("videos", 0) - v.get("scored", 0)
            fail = f" ({n_bad} videos without HR)" if n_bad else ""
            lines.append(f"| {row['model']}{fail} | {_f(u['whole_mae'])} | {_f(u['whole_rmse'])} | {_f(u['win_mae'])} | "
                         f"{_f(u['win_r'], 2)} | {_f(v.get('whole_mae'))} | {_f(v.get('win_mae'))} |")
        lines.append("")
        lines.append("per video (predicted, reference bpm):")
        for row in scores[key]:
            per = {**row["ubfc"]["per_video"], **((row["vitallens"] or {}).get("per_video") or {})}
            lines.append(f"- {row['model']}: " + ", ".join(f"{k} {p}/{r}" for k, (p, r) in per.items()))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="working folder (data, runs, cache, peer outputs)")
    parser.add_argument("--only", nargs="+", choices=["synth", "train", "finetune", "peers", "score"],
                        default=["synth", "train", "finetune", "peers", "score"])
    parser.add_argument("--n-videos", type=int, default=32)
    parser.add_argument("--steps", type=int, default=600, help="synthetic training: optimiser steps (batch 8)")
    parser.add_argument("--autohr-steps", type=int, default=400, help="AutoHR network on synthetic (0: skip)")
    parser.add_argument("--finetune-steps", type=int, default=150)
    parser.add_argument("--peer-python", default=str(REPO / ".venv-peer" / "bin" / "python"))
    parser.add_argument("--peers", nargs="+", default=PEERS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("FACEPULSE_DATA", str(data_dir()))
    args.work.mkdir(parents=True, exist_ok=True)
    os.chdir(args.work)  # configs take relative paths: everything lives in the work folder
    timings = {}
    scores = None
    for step in args.only:
        start = time.perf_counter()
        result = {"synth": step_synth, "train": step_train, "finetune": step_finetune, "peers": step_peers,
                  "score": step_score}[step](args)
        timings[step] = time.perf_counter() - start
        if step == "score":
            scores = result
    if scores is not None:
        Path("accuracy.json").write_text(json.dumps({"scores": scores, "timings_s": timings,
                                                     "load_avg": os.getloadavg()}, indent=1, default=str))
        print(markdown(scores))
    print(f"\ntimings (s): {json.dumps({k: round(v) for k, v in timings.items()})}; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
