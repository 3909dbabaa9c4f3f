"""Robustness of the classic rPPG methods across synthetic scenarios.

    python benchmarks/bench_robustness.py                         # 20 videos x 7 scenarios
    python benchmarks/bench_robustness.py --n-videos 5 --scenarios still hard --out out/rob.md

Videos are rendered in memory, exactly as ``facepulse synth OUT --scenario S --seed K``
would write them (same per-video seeds and parameters; H.264 scenarios go through the
same encoder in memory), so nothing is written to disk. Each video then goes through the
full pipeline: face detection and tracking, skin ROI, mean-RGB trace
(:func:`facepulse.roi.trace.extract_trace`, once per video) and, for every method,
:func:`facepulse.pipeline.predict_from_trace`, the back half of :func:`facepulse.predict`.
``--via-predict`` calls ``facepulse.predict(frames, fps=..., method=...)`` per method
instead (same numbers, one face-tracking pass per method).

The reference HR of a video is the spectral-peak HR of its exact ground-truth PPG, with
the same estimator as the prediction (:func:`facepulse.signal.hr.estimate_hr_bpm` on the
band-passed PPG), as rPPG benchmarks do with contact PPG. A second reference needs no
estimator at all: the mean of the generator's true instantaneous HR over the video's frames
(``MAE vs mean HR``), which is what the whole-video HR stands for when HR drifts or varies
beat to beat. Scores per scenario and method: MAE, RMSE (bpm) and Pearson r over videos,
with standard errors
(:func:`facepulse.eval.metrics.summarize`). A video where a method fails (no face, too
short...) is counted in the failures column, never silently dropped.

A second table scores the ``reliable`` flag each result carries (``result.quality``): of
the videos it calls reliable, how many are right, and of the wrong ones, how many it
catches (right: within 5 bpm of the true mean HR; wrong: more than 10 bpm off).
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
    from facepulse.errors import FacepulseError
    from facepulse.eval.metrics import summarize
    from facepulse.io.video import open_video
    from facepulse.pipeline import FUSED_METHOD, predict_from_regions, predict_from_trace
    from facepulse.roi.regions import DEFAULT_REGIONS
    from facepulse.roi.trace import extract_trace
    from facepulse.synth import apply_codec, generate_video, sample_params, video_seed
    from facepulse.synth.params import CameraParams, SynthParams

    width, height = (int(v) for v in args.size.lower().split("x"))
    base = SynthParams(duration_s=args.duration_s, camera=CameraParams(width=width, height=height, fps=args.fps))
    pred: dict[str, list[float]] = {m: [] for m in methods}
    ref: dict[str, list[float]] = {m: [] for m in methods}
    ref_mean: dict[str, list[float]] = {m: [] for m in methods}
    failures: dict[str, list[str]] = {m: [] for m in methods}
    per_video: dict[str, list[dict]] = {m: [] for m in methods}
    t_gen = t_eval = 0.0
    for index in range(args.n_videos):
        t0 = time.perf_counter()
        seed = video_seed(args.seed, index)
        params = sample_params(scenario, seed, base)
        video = generate_video(params, seed)
        frames = video.frames if params.codec.codec == "ffv1" else apply_codec(video.frames, video.fps, params.codec)
        hr_ref = reference_hr_bpm(video.ppg, video.fps)
        hr_mean = float(np.mean(video.hr_bpm))
        t1 = time.perf_counter()
        label = f"{scenario}/v{index:05d}"
        trace = None
        if not args.via_predict:
            try:
                # one pass gives every candidate region; its "skin" region is the
                # single-ROI trace the classic methods use
                trace = extract_trace(open_video(frames, fps=video.fps), regions=DEFAULT_REGIONS)
            except FacepulseError as err:
                for m in methods:
                    failures[m].append(f"{label}: {err}")
                frames = None
        for m in methods:
            if frames is None:
                break
            try:
                if args.via_predict:
                    result = predict(frames, fps=video.fps, method=m)
                elif m == FUSED_METHOD:
                    result = predict_from_regions(
                        trace.timestamps_s, trace.region_rgb, trace.fps, region_names=trace.region_names,
                        source=label, frames_without_face=trace.frames_without_face,
                    )
                else:
                    result = predict_from_trace(
                        trace.timestamps_s, trace.rgb, trace.fps, method=m, source=label,
                        frames_without_face=trace.frames_without_face,
                    )
            except FacepulseError as err:
                failures[m].append(f"{label}: {err}")
                continue
            pred[m].append(float(result.hr_bpm))
            ref[m].append(hr_ref)
            ref_mean[m].append(hr_mean)
            quality = result.quality or {}
            per_video[m].append({
                "video": label, "hr_bpm": float(result.hr_bpm), "ref_mean_hr_bpm": hr_mean,
                "reliable": bool(quality.get("reliable", True)),
                **{k: float(quality[k]) for k in ("median_confidence", "median_agreement", "median_snr_db")
                   if k in quality},
            })
        t_gen += t1 - t0
        t_eval += time.perf_counter() - t1

    out = {}
    for m in methods:
        scores = summarize(np.array(pred[m]), np.array(ref[m])) if pred[m] else {"n": 0}
        vs_mean = summarize(np.array(pred[m]), np.array(ref_mean[m])) if pred[m] else {}
        out[m] = {**scores, "vs_mean_hr": vs_mean, "failures": failures[m], "n_videos": args.n_videos,
                  "videos": per_video[m]}
    print(
        f"# {scenario}: {args.n_videos} videos, generation {t_gen:.0f} s, evaluation {t_eval:.0f} s",
        file=sys.stderr,
    )
    return out


def markdown(results: dict[str, dict[str, dict]], args) -> str:
    lines = [
        f"{args.n_videos} videos per scenario, {args.duration_s:g} s, {args.size}, {args.fps:g} fps, "
        f"seed {args.seed}; whole-video HR vs spectral HR of the true PPG.",
        "",
        "| scenario | method | n | MAE (bpm) | RMSE (bpm) | Pearson r | MAE vs mean HR (bpm) | failures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario, per_method in results.items():
        for m, s in per_method.items():
            if s["n"]:
                lines.append(
                    f"| {scenario} | {m} | {s['n']} | {s['mae']:.2f} ± {s['mae_se']:.2f} | "
                    f"{s['rmse']:.2f} ± {s['rmse_se']:.2f} | {s['pearson_r']:.3f} ± {s['pearson_r_se']:.3f} | "
                    f"{s['vs_mean_hr']['mae']:.2f} ± {s['vs_mean_hr']['mae_se']:.2f} | {len(s['failures'])} |"
                )
            else:
                lines.append(f"| {scenario} | {m} | 0 | - | - | - | - | {len(s['failures'])} |")
    return "\n".join(lines) + "\n" + reliability_markdown(results)


#: Errors (bpm, against the true mean HR) that count as right and as wrong when scoring the
#: ``reliable`` flag; errors in between are neither.
RIGHT_BPM, WRONG_BPM = 5.0, 10.0


def reliability(videos: list[dict]) -> dict:
    """How well a method's ``quality["reliable"]`` flag tells right estimates from wrong ones.

    ``precision``: share of the videos flagged reliable that are right (error <= RIGHT_BPM).
    ``wrong_caught``: share of the wrong videos (error > WRONG_BPM) flagged unreliable.
    ``right_kept``: share of the right videos flagged reliable.
    """
    err = np.array([abs(v["hr_bpm"] - v["ref_mean_hr_bpm"]) for v in videos])
    flag = np.array([v["reliable"] for v in videos], dtype=bool)
    right, wrong = err <= RIGHT_BPM, err > WRONG_BPM

    def share(num: np.ndarray, den: np.ndarray) -> float:
        return float(num.sum() / den.sum()) if den.sum() else float("nan")

    return {"n": int(err.size), "n_reliable": int(flag.sum()), "n_right": int(right.sum()), "n_wrong": int(wrong.sum()),
            "precision": share(flag & right, flag), "wrong_caught": share(~flag & wrong, wrong),
            "right_kept": share(flag & right, right),
            "mae_reliable": float(err[flag].mean()) if flag.any() else float("nan"),
            "mae_unreliable": float(err[~flag].mean()) if (~flag).any() else float("nan")}


def reliability_markdown(results: dict[str, dict[str, dict]]) -> str:
    lines = [
        "",
        f"The `reliable` flag (`result.quality`) against the error vs the true mean HR: right <= {RIGHT_BPM:g} bpm, "
        f"wrong > {WRONG_BPM:g} bpm.",
        "",
        "| scenario | method | flagged reliable | right / wrong | precision (reliable that are right) "
        "| wrong flagged unreliable | right flagged reliable | MAE reliable / unreliable |",
        "|---|---|---|---|---|---|---|---|",
    ]
    pooled: dict[str, list[dict]] = {}
    for scenario, per_method in list(results.items()) + [("all", None)]:
        items = per_method.items() if per_method is not None else ((m, {"videos": v}) for m, v in pooled.items())
        for m, s in items:
            videos = s.get("videos", [])
            if per_method is not None:
                pooled.setdefault(m, []).extend(videos)
            if not videos:
                continue
            r = reliability(videos)
            lines.append(
                f"| {scenario} | {m} | {r['n_reliable']}/{r['n']} | {r['n_right']} / {r['n_wrong']} | "
                f"{r['precision']:.2f} | {r['wrong_caught']:.2f} | {r['right_kept']:.2f} | "
                f"{r['mae_reliable']:.2f} / {r['mae_unreliable']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", default=ALL_SCENARIOS)
    parser.add_argument("--methods", nargs="+", default=None, help="default: auto (the fused estimator) and every registered method")
    parser.add_argument("--n-videos", type=int, default=20)
    parser.add_argument("--duration-s", type=float, default=30.0)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the Markdown table here (and a .json next to it)")
    parser.add_argument(
        "--via-predict", action="store_true", help="call facepulse.predict(frames, fps, method) per method"
    )
    args = parser.parse_args()

    from facepulse.methods import METHODS

    methods = args.methods or ["auto", *METHODS.names()]
    for m in methods:
        if m != "auto":
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
