"""Leave-one-subject-out benchmark of self-supervised training on real video (issue 14).

    facepulse synth data/synth_ssl --n-videos 32 --duration-s 30 --size 160x120 --scenario mixed
    python benchmarks/bench_selfsup.py --variant synthetic     # the initial model (no real video)
    python benchmarks/bench_selfsup.py --variant prior          # spectral priors, 6 folds
    python benchmarks/bench_selfsup.py --variant prior_adapt    # + test-time adaptation
    python benchmarks/bench_selfsup.py --report                 # tables of every variant run

``synthetic`` trains ``configs/selfsup_synthetic.yaml`` (at 36 px) once, without labels, on
the synthetic videos in ``--synthetic-root``: the initial model. Every other variant
trains ``configs/selfsup_ubfc.yaml`` (or its frequency-contrast counterpart) without labels
on five ``ubfc_rppg_dev`` subjects, starting from the initial model where the variant says
so, for a fixed number of steps (no validation, so no label and no frame of the sixth
subject chooses anything), then reads the sixth subject and the two vitallens clips
(cross-dataset) through ``predict``'s model path (tracked windows). Scored like
``bench_default_model.py`` (10-s windows every 1 s against the reference PPG's windows,
the primary metric; whole-video HR against the reference's periodogram and window median).
POS and the fused classic estimator are taken from ``out/bench_fusion/bench_fusion.json``
(``bench_fusion.py``, same clips, windows and references) when it is there.

Resumable: a finished fold is kept in ``out/bench_selfsup/<variant>/<subject>.json``.
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
import bench_default_model as bdm  # noqa: E402
from bench_fusion import table  # noqa: E402

OUT = Path("out/bench_selfsup")
SYNTH_CKPT = OUT / "synthetic" / "runs" / "initial" / "last.ckpt"

_FC = [  # Gideon & Stent's frequency contrast on the same backbone and data
    "contrastive.objective=frequency_contrast", "contrastive.view_len=64", "contrastive.n_views=4",
    "contrastive.resample_min=1.25", "contrastive.resample_max=1.5", "contrastive.ipr_weight=0.01",
]
#: variant -> (config, overrides, start from the synthetic initial model, adapt steps at test)
VARIANTS: dict[str, tuple[str, list[str], bool, int]] = {
    "prior": ("configs/selfsup_ubfc.yaml", [], True, 0),
    "prior_adapt": ("configs/selfsup_ubfc.yaml", [], True, 40),
    "prior_standardize": ("configs/selfsup_ubfc.yaml", ["model.normalize=standardize"], True, 0),
    "prior_standardize_novar": ("configs/selfsup_ubfc.yaml", ["model.normalize=standardize",
                                                              "contrastive.prior_params={variance_weight: 0.0}"], True, 0),
    "prior_scratch": ("configs/selfsup_ubfc.yaml", [], False, 0),
    "prior_ema": ("configs/selfsup_ubfc.yaml", ["contrastive.ema_teacher=0.99"], True, 0),
    "prior_bank": ("configs/selfsup_ubfc.yaml", ["contrastive.memory_bank=256"], True, 0),
    "prior_temporal3": ("configs/selfsup_ubfc.yaml", ["model.params={channels: 8, temporal_blocks: 3}"], False, 0),
    "fc": ("configs/selfsup_ubfc.yaml", _FC, True, 0),
    "fc_bank": ("configs/selfsup_ubfc.yaml", [*_FC, "contrastive.memory_bank=256"], True, 0),
    "fc_paper": ("configs/contrastive_ubfc.yaml", ["data.size=36", "trainer.limit_val_batches=0", "optim.max_steps=400",
                                                   "data.split_file=configs/splits/ubfc_dev_all.yaml"], False, 0),
}


def train_initial(root: Path, steps: int) -> Path:
    """The synthetic-only initial model (trained once, without labels)."""
    from facepulse.config import load_config
    from facepulse.train.runner import run_experiment

    if SYNTH_CKPT.is_file() and (SYNTH_CKPT.parent / "done").is_file():
        return SYNTH_CKPT
    config = load_config("configs/selfsup_synthetic.yaml", [
        f"out_dir={OUT / 'synthetic' / 'runs'}", "name=initial", f"data.root={root}", "data.size=36",
        "trainer.limit_val_batches=0", f"optim.max_steps={steps}", "optim.max_epochs=1000",
    ])
    t0 = time.perf_counter()
    result = run_experiment(config, progress=False)
    (SYNTH_CKPT.parent / "done").write_text(json.dumps({"train_s": time.perf_counter() - t0}))
    assert result.last_ckpt is not None and Path(result.last_ckpt) == SYNTH_CKPT, result.last_ckpt
    return SYNTH_CKPT


def score(ckpt: Path, face: dict, adapt_steps: int) -> dict:
    """``predict``'s model path on one clip (tracked windows, whole HR from the track)."""
    from facepulse.models.inference import load_model
    from facepulse.pipeline import predict_from_face_frames

    r = predict_from_face_frames(bdm._Trace(face), face["frames"], load_model(ckpt), window_s=10.0, step_s=1.0,
                                 adapt_steps=adapt_steps)
    return {"whole": float(r.hr_bpm), "windows": np.asarray(r.windows.hr_bpm, float).tolist()}


def run_fold(variant: str, subject: str, faces: list[dict], steps: int | None) -> dict:
    path = OUT / variant / f"{subject}.json"
    if path.is_file():
        return json.loads(path.read_text())
    tests = [f for f in faces if f["name"] == f"ubfc/{subject}" or f["name"].startswith("vitallens")]
    if variant == "synthetic":  # one model for every fold: it never saw real video
        ckpt, train_s, overrides = SYNTH_CKPT, 0.0, []
        adapt = 0
    else:
        cfg_file, overrides, from_initial, adapt = VARIANTS[variant]
        if variant == "prior_adapt":  # the prior folds' models, adapted on each test clip
            ckpt, train_s = OUT / "prior" / "runs" / subject / "last.ckpt", 0.0
            if not ckpt.is_file():
                raise SystemExit(f"{ckpt}: run --variant prior first")
        else:
            extra = [f"model.init_from={SYNTH_CKPT}"] if from_initial else []
            if steps is not None:
                extra.append(f"optim.max_steps={steps}")
            result, train_s, fold = bdm.train_fold(OUT / variant / "runs", subject, cfg_file, overrides + extra)
            ckpt = Path(result.last_ckpt)
            overrides = overrides + extra + fold[2:]
    out = {"variant": variant, "subject": subject, "train_s": train_s, "overrides": overrides,
           "adapt_steps": adapt, "est": {f["name"]: score(ckpt, f, adapt) for f in tests}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out


def classic_rows(faces: list[dict]) -> dict[str, dict]:
    """POS and the fused estimator per clip, from bench_fusion's results (same references)."""
    path = Path("out/bench_fusion/bench_fusion.json")
    if not path.is_file():
        return {}
    names = {"facepulse pos (skin ROI)": "POS (skin ROI)", "facepulse auto (fused)": "fused classic (auto)"}
    return {c["clip"]: {names[k]: v for k, v in c["est"].items() if k in names}
            for c in json.loads(path.read_text())["clips"]}


def report(faces: list[dict]) -> dict:
    """Per variant: UBFC (LOSO, held-out subjects) and vitallens (every fold's model)."""
    refs = {f["name"]: {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f["ref"].items()} for f in faces}
    summary: dict = {}
    classic = classic_rows(faces)
    for variant in ["synthetic", *VARIANTS]:
        folds = sorted((OUT / variant).glob("subject*.json"))
        if not folds:
            continue
        ubfc, vl, per_clip = [], [], {}
        for fold in folds:
            d = json.loads(fold.read_text())
            for name, est in d["est"].items():
                row = {"clip": name, "ref": refs[name], "est": {variant: est}}
                (ubfc if name.startswith("ubfc") else vl).append(row)
                if name.startswith("ubfc"):
                    per_clip[name] = round(est["whole"], 1)
        entry = {"folds": [f.stem for f in folds], "per_clip": per_clip,
                 "train_s_mean": float(np.mean([json.loads(f.read_text())["train_s"] for f in folds]))}
        for label, rows in (("ubfc_loso", ubfc), ("vitallens", vl)):
            if rows:
                entry[label] = table(rows)[variant]
        summary[variant] = entry
    for label in ("POS (skin ROI)", "fused classic (auto)"):
        rows = [{"clip": f["name"], "ref": refs[f["name"]], "est": {label: classic[f["name"]][label]}}
                for f in faces if label in classic.get(f["name"], {})]
        if rows:
            summary[label] = {
                "ubfc_loso": table([r for r in rows if r["clip"].startswith("ubfc")])[label],
                "vitallens": table([r for r in rows if not r["clip"].startswith("ubfc")])[label],
                "per_clip": {r["clip"]: round(r["est"][label]["whole"], 1) for r in rows if r["clip"].startswith("ubfc")},
            }
    return summary


def markdown(summary: dict) -> str:
    lines = ["| model | folds | UBFC windowed MAE | UBFC whole MAE (periodogram / median) | UBFC r | "
             "vitallens windowed MAE | vitallens whole MAE (median) | train s / fold |",
             "|---|---|---|---|---|---|---|---|"]
    for name, e in summary.items():
        if name.startswith("_"):
            continue
        u, v = e.get("ubfc_loso"), e.get("vitallens")
        cells = [name, str(len(e.get("folds", [])) or "-")]
        cells.append(f"{u['window_mae']:.2f}" if u else "")
        cells.append(f"{u['whole_periodogram']['mae']:.2f} / {u['whole_median']['mae']:.2f}" if u else "")
        cells.append(f"{u['whole_periodogram']['pearson_r']:.2f}" if u else "")
        cells.append(f"{v['window_mae']:.2f}" if v else "")
        cells.append(f"{v['whole_median']['mae']:.2f}" if v else "")
        cells.append(f"{e['train_s_mean']:.0f}" if "train_s_mean" in e else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="prior", choices=["synthetic", *VARIANTS])
    ap.add_argument("--folds", default=",".join(bdm.SUBJECTS), help="held-out subjects, comma-separated")
    ap.add_argument("--steps", type=int, default=None, help="override optim.max_steps of the real-video training")
    ap.add_argument("--initial-steps", type=int, default=400, help="steps of the synthetic initial model")
    ap.add_argument("--synthetic-root", type=Path, default=Path("data/synth_ssl"))
    ap.add_argument("--report", action="store_true", help="only print the tables of finished folds")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    faces = bdm.faces()
    if not args.report:
        needs_initial = args.variant == "synthetic" or VARIANTS.get(args.variant, ("", [], False, 0))[2]
        if needs_initial:
            train_initial(args.synthetic_root, args.initial_steps)
        for subject in args.folds.split(","):
            d = run_fold(args.variant, subject, faces, args.steps)
            print(json.dumps({"variant": args.variant, "fold": subject, "train_s": round(d["train_s"], 1),
                              "est": {k: round(v["whole"], 1) for k, v in d["est"].items()}}), flush=True)
    summary = report(faces)
    summary["_machine"] = {"platform": platform.platform(), "python": platform.python_version(),
                           "torch": torch.__version__, "threads": torch.get_num_threads()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    (OUT / "table.md").write_text(markdown(summary) + "\n")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
