"""Where does the pulse go under head motion? Face tracking / skin ROI / trace diagnostic.

    python benchmarks/bench_roi_motion.py                          # 10 motion + 3 still seeds, real clips
    python benchmarks/bench_roi_motion.py --seeds 10 --scenarios motion --no-real
    python benchmarks/bench_roi_motion.py --variants default hold every-frame --seeds 4
    python benchmarks/bench_roi_motion.py --speed 7                # trace vs decode time, UBFC subject3

Synthetic videos (``facepulse.synth``, rendered in memory: frames, the true per-frame
skin mask and the true PPG) go through :func:`facepulse.roi.trace.extract_trace` under
each tracker/ROI *variant* and are compared with the trace of the TRUE skin mask
(``SynthVideo.mean_skin_rgb()``), the best any ROI could do:

- ``hr_true`` / ``hr_pipe``: whole-video POS HR (:func:`facepulse.pipeline.predict_from_trace`,
  the back half of ``facepulse.predict``) from the true-mask trace / from ours; errors
  against the spectral HR of the true PPG;
- ``r_green``: correlation of the band-passed (0.7-3.5 Hz) green channel of our trace
  with that of the true-mask trace; ``r_pos``: the same for the POS pulses;
- ``r_ppg_true`` / ``r_ppg_pipe``: correlation of each POS pulse with the true PPG.

Real clips (the two VitalLens samples, UBFC-rPPG subjects 3 and 5 from
``$FACEPULSE_DATA``, or those given with ``--ubfc``) have no true mask: their HR is compared with the spectral HR of the
contact PPG, and ``snr_db`` is the POS pulse's SNR (de Haan & Jeanne 2013) at that HR.

Variants (``--variants``): ``default`` (extract_trace's defaults), ``hold`` (the face is
held still between detections instead of followed by optical flow), ``every-frame``
(the detector runs on every frame), ``no-smooth`` (detections taken as they are),
``no-colour-filter``, ``no-level-match``.

``--speed N`` alternates N decode-only passes and N ``extract_trace`` passes over
``ubfc_rppg_dev/subject3/vid.mp4`` and prints each ratio (wall and CPU time of this
process); on a shared, loaded machine compare the medians.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS: dict[str, tuple[dict, dict]] = {
    # name: (FaceTracker options, extract_trace options)
    "default": ({}, {}),
    "hold": ({"follow": False}, {}),
    "every-frame": ({"detect_every": 1, "max_detect_every": 1}, {}),
    "no-smooth": ({"smooth": 0.0}, {}),
    "no-colour-filter": ({}, {"colour_filter": False}),
    "no-level-match": ({}, {"level_match": False}),
}


def _band(x: np.ndarray, fps: float) -> np.ndarray:
    from facepulse.signal.filters import bandpass

    return bandpass(x - np.nanmean(x), fps)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def reference_hr_bpm(ppg: np.ndarray, fps: float) -> float:
    """Spectral-peak HR of a PPG sampled at ``fps`` (same estimator as the predictions)."""
    from facepulse.signal.hr import estimate_hr_bpm

    return estimate_hr_bpm(_band(ppg, fps), fps)


def make_tracker(variant: str):
    from facepulse.face.detectors import make_detector
    from facepulse.face.tracker import FaceTracker

    tracker_kw, _ = VARIANTS[variant]
    return FaceTracker(make_detector("mediapipe"), **tracker_kw)


def run_trace(source, variant: str):
    from facepulse.roi.trace import extract_trace

    _, trace_kw = VARIANTS[variant]
    t0 = time.perf_counter()
    trace = extract_trace(source, make_tracker(variant), **trace_kw)
    return trace, time.perf_counter() - t0


def pos_result(trace_t: np.ndarray, rgb: np.ndarray, fps: float):
    from facepulse.pipeline import predict_from_trace

    return predict_from_trace(trace_t, rgb, fps, method="pos")


def synthetic_rows(args, scenario: str, variants: list[str]) -> list[dict]:
    from facepulse.io.video import open_video
    from facepulse.synth import generate_video, sample_params, video_seed
    from facepulse.synth.params import CameraParams, SynthParams

    width, height = (int(v) for v in args.size.lower().split("x"))
    base = SynthParams(duration_s=args.duration_s, camera=CameraParams(width=width, height=height, fps=args.fps))
    rows = []
    n = args.seeds if scenario == "motion" else args.still_seeds
    for index in range(n):
        seed = video_seed(args.seed, index)
        params = sample_params(scenario, seed, base)
        video = generate_video(params, seed)
        hr_ref = reference_hr_bpm(video.ppg, video.fps)
        true_rgb = video.mean_skin_rgb()
        true_res = pos_result(video.timestamps_s, true_rgb, video.fps)
        g_true = _band(true_rgb[:, 1], video.fps)
        kind = "talking" if params.motion.talk_rms_deg > 0 else ("still" if params.motion.is_still else "moving")
        for variant in variants:
            trace, seconds = run_trace(open_video(video.frames, fps=video.fps), variant)
            res = pos_result(trace.timestamps_s, trace.rgb, trace.fps)
            rows.append(
                {
                    "video": f"{scenario}/{index}",
                    "kind": kind,
                    "variant": variant,
                    "hr_ref": hr_ref,
                    "hr_true": float(true_res.hr_bpm),
                    "hr_pipe": float(res.hr_bpm),
                    "err_true": abs(float(true_res.hr_bpm) - hr_ref),
                    "err_pipe": abs(float(res.hr_bpm) - hr_ref),
                    "r_green": _corr(_band(trace.rgb[:, 1], trace.fps), g_true),
                    "r_pos": _corr(res.bvp, true_res.bvp),
                    "r_ppg_true": _corr(true_res.bvp, video.ppg),
                    "r_ppg_pipe": _corr(res.bvp, video.ppg),
                    "detections": trace.n_detections,
                    "rebuilds": trace.n_roi_rebuilds,
                    "trace_s": seconds,
                }
            )
            print(_fmt_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


def real_clips(ubfc_subjects: list[str]) -> list[tuple[str, Path, np.ndarray, np.ndarray]]:
    """(name, video, ppg, ppg_t_s) of the real clips with a reference PPG."""
    from facepulse.io.video import open_video
    from facepulse.paths import shared_data_dir

    data = shared_data_dir()
    clips = []
    for k in (1, 2):
        video = data / "vitallens_samples" / f"sample_video_{k}.mp4"
        ppg = np.loadtxt(data / "vitallens_samples" / f"sample_vitals_{k}.csv", delimiter=",", skiprows=1, ndmin=2)[:, 0]
        fps = open_video(video).info.fps
        clips.append((f"vitallens/{k}", video, ppg, np.arange(ppg.size) / fps))
    for subject in ubfc_subjects:
        folder = data / "ubfc_rppg_dev" / subject
        gt = np.loadtxt(folder / "ground_truth.txt")
        keep = np.r_[True, np.diff(gt[2]) > 0]  # the file repeats a few timestamps
        clips.append((f"ubfc/{subject}", folder / "vid.mp4", gt[0][keep], gt[2][keep]))
    return clips


def real_rows(variants: list[str], ubfc_subjects: list[str]) -> list[dict]:
    from facepulse.roi.trace import resample_uniform
    from facepulse.signal.hr import snr_db

    rows = []
    for name, video, ppg, ppg_t in real_clips(ubfc_subjects):
        for variant in variants:
            trace, seconds = run_trace(video, variant)
            _, ppg_u = resample_uniform(ppg_t - ppg_t[0], ppg, trace.fps)
            hr_ref = reference_hr_bpm(ppg_u, trace.fps)
            res = pos_result(trace.timestamps_s, trace.rgb, trace.fps)
            bvp = res.bvp[np.isfinite(res.bvp)]
            rows.append(
                {
                    "video": name,
                    "kind": "real",
                    "variant": variant,
                    "hr_ref": hr_ref,
                    "hr_pipe": float(res.hr_bpm),
                    "err_pipe": abs(float(res.hr_bpm) - hr_ref),
                    "snr_db": float(snr_db(bvp, trace.fps, hr_ref)),
                    "detections": trace.n_detections,
                    "rebuilds": trace.n_roi_rebuilds,
                    "frames": trace.n_frames,
                    "trace_s": seconds,
                }
            )
            print(_fmt_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _fmt_row(row: dict) -> str:
    return "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def markdown(syn: list[dict], real: list[dict], args) -> str:
    lines = []
    if syn:
        lines += [
            f"Synthetic: {args.size}, {args.duration_s:g} s, {args.fps:g} fps, master seed {args.seed}; "
            "POS, whole-video HR. MAE against the spectral HR of the true PPG; r = Pearson correlation, "
            "median over videos.",
            "",
            "| scenario | variant | n | MAE true mask (bpm) | MAE pipeline (bpm) | r_green | r_pos | "
            "r_ppg true | r_ppg pipe | detections/frame | rebuilds |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for scenario in dict.fromkeys(r["video"].split("/")[0] for r in syn):
            for variant in dict.fromkeys(r["variant"] for r in syn):
                rs = [r for r in syn if r["variant"] == variant and r["video"].startswith(scenario + "/")]
                if not rs:
                    continue
                n_frames = args.duration_s * args.fps
                lines.append(
                    f"| {scenario} | {variant} | {len(rs)} | {np.mean([r['err_true'] for r in rs]):.2f} | "
                    f"{np.mean([r['err_pipe'] for r in rs]):.2f} | {np.median([r['r_green'] for r in rs]):.3f} | "
                    f"{np.median([r['r_pos'] for r in rs]):.3f} | {np.median([r['r_ppg_true'] for r in rs]):.3f} | "
                    f"{np.median([r['r_ppg_pipe'] for r in rs]):.3f} | "
                    f"{np.mean([r['detections'] for r in rs]) / n_frames:.2f} | "
                    f"{np.mean([r['rebuilds'] for r in rs]):.1f} |"
                )
        lines.append("")
    if real:
        lines += [
            "Real clips: POS, whole-video HR against the spectral HR of the contact PPG.",
            "",
            "| clip | variant | HR ref (bpm) | HR (bpm) | error (bpm) | SNR (dB) | detections/frame | rebuilds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in real:
            lines.append(
                f"| {r['video']} | {r['variant']} | {r['hr_ref']:.1f} | {r['hr_pipe']:.1f} | {r['err_pipe']:.1f} | "
                f"{r['snr_db']:.1f} | {r['detections'] / r['frames']:.3f} | {r['rebuilds']} |"
            )
        lines.append("")
    return "\n".join(lines)


def speed(rounds: int) -> None:
    """Alternate decode-only and extract_trace passes over UBFC subject3; print ratios."""
    from facepulse.io.video import open_video
    from facepulse.paths import shared_data_dir
    from facepulse.roi.trace import extract_trace

    path = shared_data_dir() / "ubfc_rppg_dev" / "subject3" / "vid.mp4"
    walls, cpus = [], []
    for k in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in open_video(path):
            pass
        decode_wall, decode_cpu = time.perf_counter() - w0, time.process_time() - c0
        w0, c0 = time.perf_counter(), time.process_time()
        trace = extract_trace(path)
        trace_wall, trace_cpu = time.perf_counter() - w0, time.process_time() - c0
        walls.append(trace_wall / decode_wall)
        cpus.append(trace_cpu / decode_cpu)
        print(
            f"round {k}: decode {decode_wall:.2f} s wall / {decode_cpu:.2f} s cpu, trace {trace_wall:.2f} s wall / "
            f"{trace_cpu:.2f} s cpu, ratio wall {walls[-1]:.2f} cpu {cpus[-1]:.2f}, "
            f"detections {trace.n_detections}/{trace.n_frames}, rebuilds {trace.n_roi_rebuilds}",
            flush=True,
        )
    print(f"median ratio trace/decode: wall {np.median(walls):.2f}, cpu {np.median(cpus):.2f} ({rounds} rounds)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="motion videos")
    parser.add_argument("--still-seeds", type=int, default=3, help="still videos")
    parser.add_argument("--scenarios", nargs="+", default=["motion", "still"], choices=["motion", "still"])
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0, help="master seed")
    parser.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS))
    parser.add_argument("--no-real", action="store_true", help="skip the real clips")
    parser.add_argument("--ubfc", nargs="+", default=["subject3", "subject5"], help="UBFC-rPPG subjects")
    parser.add_argument("--speed", type=int, default=0, metavar="N", help="only the speed check, N rounds")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)

    if args.speed:
        speed(args.speed)
        return 0
    syn = [row for s in args.scenarios for row in synthetic_rows(args, s, args.variants)]
    real = [] if args.no_real else real_rows(args.variants, args.ubfc)
    table = markdown(syn, real, args)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
