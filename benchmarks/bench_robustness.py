"""Robustness of the classic rPPG methods across synthetic scenarios.

    python benchmarks/bench_robustness.py                         # 20 videos x 7 scenarios
    python benchmarks/bench_robustness.py --n-videos 5 --scenarios still hard --out out/rob.md

For every scenario it generates (or reuses) a synthetic dataset with ``facepulse synth``'s
writer under ``--data-dir`` (resumable: finished videos are kept), then runs the full
pipeline on every video file: face detection and tracking, skin ROI, mean-RGB trace
(:func:`facepulse.roi.trace.extract_trace`, once per video) and, for every method,
:func:`facepulse.pipeline.predict_from_trace`, which is exactly the back half of
:func:`facepulse.predict` (``--via-predict`` calls :func:`facepulse.predict` itself per
method instead: same numbers, one decode per method).

The reference HR of a video is the spectral-peak HR of its exact ground-truth PPG, computed
with the same estimator as the prediction (:func:`facepulse.signal.hr.estimate_hr_bpm` on
the band-passed PPG), as rPPG benchmarks do with contact PPG. Scores per scenario and
method: MAE, RMSE (bpm) and Pearson r over videos, with standard errors
(:func:`facepulse.eval.metrics.summarize`). A video where a method fails (no face, too
short...) counts as a failure in the table, never silently dropped from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ALL_SCENARIOS = ["still", "motion", "lighting", "dark-skin", "compressed", "hard", "mixed"]


def reference_hr_bpm(ppg: np.ndarray, fps: float) -> float:
    """Spectral-peak HR of the ground-truth PPG (same estimator as the predictions)."""
    from facepulse.signal.filters import bandpass
    from facepulse.signal.hr import estimate_hr_bpm

    return estimate_hr_bpm(bandpass(ppg - ppg.mean(), fps), fps)


def run_scenario(args, scenario: str, methods: list[str]) -> dict[str, dict]:
    from facepulse import predict
    from facepulse.datasets.base import get_reader
    from facepulse.errors import FacepulseError
    from facepulse.eval.metrics import summarize
    from facepulse.pipeline import predict_from_trace
    from facepulse.roi.trace import extract_trace
    from facepulse.synth.params import CameraParams, SynthParams
    from facepulse.synth.writer import write_dataset

    width, height = (int(v) for v in args.size.lower().split("x"))
    base = SynthParams(duration_s=args.duration_s, camera=CameraParams(width=width, height=height, fps=args.fps))
    folder = Path(args.data_dir) / f"{scenario}_{args.size}_{args.duration_s:g}s_seed{args.seed}"
    t0 = time.perf_counter()
    write_dataset(folder, n_videos=args.n_videos, scenario=scenario, seed=args.seed, base=base, progress=args.progress)
    t_gen = time.perf_counter() - t0

    reader = get_reader("synthetic", folder)
    records = reader.records()[: args.n_videos]
    pred: dict[str, list[float]] = {m: [] for m in methods}
    ref: dict[str, list[float]] = {m: [] for m in methods}
    failures: dict[str, list[str]] = {m: [] for m in methods}
    t0 = time.perf_counter()
    for record in records:
        reference = reader.load_reference(record)
        fps = float(reader.load_meta(record)["fps"])
        hr_ref = reference_hr_bpm(reference.ppg, fps)
        trace = None
        if not args.via_predict:
            try:
                trace = extract_trace(reader.open_video(record))
            except FacepulseError as err:
                for m in methods:
                    failures[m].append(f"{record.video_id}: {err}")
                continue
        for m in methods:
            try:
                if args.via_predict:
                    result = predict(str(record.video_path), method=m)
                else:
                    result = predict_from_trace(
                        trace.timestamps_s, trace.rgb, trace.fps, method=m,
                        source=str(record.video_path), frames_without_face=trace.frames_without_face,
                    )
            except FacepulseError as err:
                failures[m].append(f"{record.video_id}: {err}")
                continue
            pred[m].append(float(result.hr_bpm))
            ref[m].append(hr_ref)
    t_eval = time.perf_counter() - t0

    out = {}
    for m in methods:
        scores = summarize(np.array(pred[m]), np.array(ref[m])) if pred[m] else {"n": 0}
        out[m] = {**scores, "failures": failures[m], "n_videos": len(records)}
    print(
        f"# {scenario}: {len(records)} videos, generation {t_gen:.0f} s, evaluation {t_eval:.0f} s",
        file=sys.stderr,
    )
    return out


def markdown(results: dict[str, dict[str, dict]], args) -> str:
    lines = [
        f"{args.n_videos} videos per scenario, {args.duration_s:g} s, {args.size}, {args.fps:g} fps, "
        f"seed {args.seed}; whole-video HR vs spectral HR of the true PPG.",
        "",
        "| scenario | method | n | MAE (bpm) | RMSE (bpm) | Pearson r | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario, per_method in results.items():
        for m, s in per_method.items():
            if s["n"]:
                lines.append(
                    f"| {scenario} | {m} | {s['n']} | {s['mae']:.2f} ± {s['mae_se']:.2f} | "
                    f"{s['rmse']:.2f} ± {s['rmse_se']:.2f} | {s['pearson_r']:.3f} ± {s['pearson_r_se']:.3f} | "
                    f"{len(s['failures'])} |"
                )
            else:
                lines.append(f"| {scenario} | {m} | 0 | - | - | - | {len(s['failures'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", default=ALL_SCENARIOS)
    parser.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    parser.add_argument("--n-videos", type=int, default=20)
    parser.add_argument("--duration-s", type=float, default=30.0)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default="out/bench_robustness", help="generated videos (reused)")
    parser.add_argument("--out", default=None, help="write the Markdown table here (and a .json next to it)")
    parser.add_argument("--via-predict", action="store_true", help="call facepulse.predict per method")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()

    from facepulse.methods import METHODS

    methods = args.methods or METHODS.names()
    for m in methods:
        METHODS.get(m)  # fail early on a typo
    results = {s: run_scenario(args, s, methods) for s in args.scenarios}
    table = markdown(results, args)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
        out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
