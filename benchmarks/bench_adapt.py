"""Does test-time adaptation (``predict --adapt``) help? Issue 14, item 4.

    python benchmarks/bench_adapt.py [--steps 40] [--folds subject5,subject10,subject9]

Takes the leave-one-subject-out TSNet checkpoints of ``bench_default_model.py`` (run that
first) and reads each fold's held-out UBFC subject and the two vitallens clips with and
without ``adapt_steps`` of label-free fine-tuning on the clip itself (SiNC spectral
priors, :func:`facepulse.contrastive.adapt.adapt_runner`). Prints whole-video HR and the
10-s windowed MAE against the reference's windows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_default_model as bdm  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--folds", default="subject5,subject10,subject9")
    args = ap.parse_args()
    from facepulse.models.inference import load_model
    from facepulse.pipeline import predict_from_face_frames

    faces = {f["name"]: f for f in bdm.faces()}
    print("| fold | clip | reference (window median) | no adaptation: whole / windowed MAE | adapted: whole / windowed MAE |")
    print("|---|---|---|---|---|")
    for fold in args.folds.split(","):
        ckpt = bdm.OUT / "tsnet" / "runs" / fold / "last.ckpt"
        for name in ("vitallens/1", "vitallens/2", f"ubfc/{fold}"):
            face, cells = faces[name], []
            ref = np.asarray(face["ref"]["windows"])
            for steps in (0, args.steps):
                r = predict_from_face_frames(bdm._Trace(face), face["frames"], load_model(ckpt), adapt_steps=steps)
                w = np.asarray(r.windows.hr_bpm)
                k = min(w.size, ref.size)
                cells.append(f"{r.hr_bpm:.1f} / {np.nanmean(np.abs(w[:k] - ref[:k])):.2f}")
            print(f"| {fold} | {name} | {face['ref']['median']:.1f} | {cells[0]} | {cells[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
