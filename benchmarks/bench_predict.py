"""Benchmark of the predict path against a real peer (the `vitallens` package, local methods).

Speed: per stage (decode, face, ROI/trace, method, HR) and end to end on a real 640x480
~30 fps video, as frames/s and real-time factor, plus peak memory; vitallens' POS on the
same file (it decodes with the ffmpeg binary) and on a pre-decoded array.
Accuracy: every facepulse method and vitallens' POS / CHROM / G on ../shared/data
(ubfc_rppg_dev, vitallens_samples): MAE, RMSE, Pearson r of whole-video HR, and MAE over
10 s windows, against the reference PPG's HR computed the same way for all.

    pip install vitallens psutil         # benchmark-only; also `apt-get install ffmpeg`
    python benchmarks/bench_predict.py --out out/bench_predict [--skip-speed] [--skip-accuracy]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

from facepulse.paths import shared_data_dir

SPEED_VIDEO = "ubfc_rppg_dev/subject3/vid.mp4"
WINDOW_S = 10.0
STEP_S = 1.0  # reference and every estimate use the same 10 s windows


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, repeats: int = 3):
    best, value = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


# ----------------------------------------------------------------------------- speed
def speed(video: Path, repeats: int) -> dict:
    from facepulse.face.detectors import make_detector
    from facepulse.face.tracker import FaceTracker
    from facepulse.io.video import open_video
    from facepulse.methods import apply_method
    from facepulse.pipeline import predict, result_from_pulse
    from facepulse.roi.trace import extract_trace, resample_uniform

    info = open_video(video).info
    n = info.n_frames or sum(1 for _ in open_video(video))
    duration_s = n / info.fps

    def decode_only():
        return sum(1 for _ in open_video(video))

    def decode_and_track():
        tracker = FaceTracker(make_detector("auto"))
        for _, frame in open_video(video):
            tracker.update(frame)

    def trace():
        return extract_trace(open_video(video), FaceTracker(make_detector("auto")))

    t_decode, n_dec = timed(decode_only, repeats)
    t_track, _ = timed(decode_and_track, repeats)
    t_trace, tr = timed(trace, repeats)
    t_uniform, rgb_uniform = resample_uniform(tr.timestamps_s, tr.rgb, tr.fps)
    t_method, bvp = timed(lambda: apply_method("pos", rgb_uniform, tr.fps), repeats)
    t_hr, _ = timed(lambda: result_from_pulse(t_uniform, bvp, tr.fps, method="pos"), repeats)
    t_e2e, res = timed(lambda: predict(video, method="pos"), repeats)
    facepulse_peak_rss_mib = peak_rss_mib()  # before vitallens loads the whole video

    stages = {
        "decode": t_decode,
        "face (detect + track)": max(t_track - t_decode, 0.0),
        "ROI + trace": max(t_trace - t_track, 0.0),
        "method (POS)": t_method,
        "HR / SNR / HRV": t_hr,
        "end to end (facepulse.predict)": t_e2e,
    }
    out = {
        "video": str(video),
        "frames": n_dec,
        "duration_s": duration_s,
        "facepulse": {
            k: {"seconds": v, "fps": n_dec / v if v > 0 else None, "realtime_x": duration_s / v if v > 0 else None}
            for k, v in stages.items()
        },
        "facepulse_hr_bpm": res.hr_bpm,
        "e2e_over_decode": t_e2e / t_decode,
    }

    try:
        from vitallens import VitalLens

        def vl_file():
            return VitalLens(method="pos", export_to_json=False)(str(video))

        frames = np.stack([f for _, f in open_video(video)])

        def vl_array():
            return VitalLens(method="pos", export_to_json=False)(frames, fps=info.fps)

        t_vl_file, vr = timed(vl_file, repeats)
        t_vl_arr, _ = timed(vl_array, repeats)
        del frames
        out["vitallens_pos"] = {
            "file end to end": {"seconds": t_vl_file, "fps": n_dec / t_vl_file, "realtime_x": duration_s / t_vl_file},
            "pre-decoded array (excl. decode)": {
                "seconds": t_vl_arr, "fps": n_dec / t_vl_arr, "realtime_x": duration_s / t_vl_arr,
            },
            "hr_bpm": vr[0]["vitals"]["heart_rate"]["value"],
        }
        out["speedup_vs_vitallens_file"] = t_vl_file / t_e2e
    except ImportError as err:  # benchmark-only dependency
        out["vitallens_pos"] = f"not installed ({err})"
    out["facepulse_peak_rss_mib"] = facepulse_peak_rss_mib
    out["peak_rss_mib_with_vitallens"] = peak_rss_mib()
    return out


# -------------------------------------------------------------------------- accuracy
def reference_hr(ppg: np.ndarray, t_s: np.ndarray, fps: float) -> tuple[float, np.ndarray]:
    """Whole-video and 10 s-window HR of the reference PPG, same estimator as predictions."""
    from facepulse.pipeline import result_from_pulse
    from facepulse.roi.trace import resample_uniform

    tu, pu = resample_uniform(t_s, ppg[:, None], fps)
    r = result_from_pulse(tu, pu[:, 0], fps, method="reference", window_s=WINDOW_S, step_s=STEP_S)
    return r.hr_bpm, np.asarray(r.windows.hr_bpm)


def clips() -> list[dict]:
    """(name, video, reference ppg on frame times) for every real clip with a reference."""
    import pandas as pd

    from facepulse.datasets import Reference, get_reader

    data = shared_data_dir()
    out = []
    reader = get_reader("ubfc-rppg", data / "ubfc_rppg_dev")
    for rec in reader.records():
        ref = reader.load_reference(rec)
        out.append({"name": f"ubfc/{rec.subject_id}", "video": rec.video_path, "reference": ref})
    for k in (1, 2):
        vid = data / "vitallens_samples" / f"sample_video_{k}.mp4"
        ppg = pd.read_csv(data / "vitallens_samples" / f"sample_vitals_{k}.csv")["ppg"].to_numpy(float)
        # one row per frame: aligned by frame index, like UBFC DATASET_2
        out.append({"name": f"vitallens/{k}", "video": vid, "reference": Reference(ppg=ppg, per_frame=True)})
    return out


def accuracy(methods: list[str]) -> dict:
    from facepulse.eval.metrics import summarize
    from facepulse.face.detectors import make_detector
    from facepulse.face.tracker import FaceTracker
    from facepulse.io.video import open_video
    from facepulse.pipeline import predict_from_trace, result_from_pulse
    from facepulse.roi.trace import extract_trace, resample_uniform

    try:
        from vitallens import VitalLens
    except ImportError:
        VitalLens = None

    rows = []
    for clip in clips():
        src = open_video(clip["video"])
        trace = extract_trace(src, FaceTracker(make_detector("auto")))
        ts = trace.timestamps_s
        ppg = clip["reference"].ppg_on_frames(ts)
        ok = np.isfinite(ppg)
        ref_hr, ref_win = reference_hr(ppg[ok], ts[ok], trace.fps)
        row = {"clip": clip["name"], "ref_hr_bpm": ref_hr, "ref_windows": ref_win.tolist(), "est": {}}
        for m in methods:
            r = predict_from_trace(ts, trace.rgb, trace.fps, method=m, window_s=WINDOW_S, step_s=STEP_S)
            row["est"][f"facepulse {m}"] = (r.hr_bpm, np.asarray(r.windows.hr_bpm).tolist())
        if VitalLens is not None:
            frames = np.stack([f for _, f in open_video(clip["video"])])
            for m in ("pos", "chrom", "g"):
                res = VitalLens(method=m, export_to_json=False)(frames, fps=trace.fps)[0]
                wave = np.asarray(res["waveforms"]["ppg_waveform"]["data"], float)
                tu, wu = resample_uniform(ts[: wave.size], wave[:, None], trace.fps)
                r = result_from_pulse(tu, wu[:, 0], trace.fps, method=m, window_s=WINDOW_S, step_s=STEP_S)
                row["est"][f"vitallens {m}"] = (r.hr_bpm, np.asarray(r.windows.hr_bpm).tolist())
            del frames
        rows.append(row)
        print(f"{clip['name']}: ref {ref_hr:.1f} | " + ", ".join(f"{k} {v[0]:.1f}" for k, v in row["est"].items()),
              flush=True)

    table = {}
    for name in rows[0]["est"]:
        pred = np.array([r["est"][name][0] for r in rows])
        ref = np.array([r["ref_hr_bpm"] for r in rows])
        whole = summarize(pred, ref)
        wp, wr = [], []
        for r in rows:
            p = np.asarray(r["est"][name][1], float)
            q = np.asarray(r["ref_windows"], float)
            k = min(p.size, q.size)
            ok = np.isfinite(p[:k]) & np.isfinite(q[:k])
            wp.append(p[:k][ok])
            wr.append(q[:k][ok])
        wp, wr = np.concatenate(wp), np.concatenate(wr)
        table[name] = {
            "mae": whole["mae"], "rmse": whole["rmse"], "pearson_r": whole["pearson_r"],
            "window_mae": float(np.mean(np.abs(wp - wr))), "n_windows": int(wp.size),
        }
    return {"clips": rows, "table": table}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench_predict"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from facepulse.methods import METHODS

    result = {"machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores"}
    if not args.skip_speed:
        result["speed"] = speed(shared_data_dir() / SPEED_VIDEO, args.repeats)
        print(json.dumps(result["speed"], indent=1), flush=True)
    if not args.skip_accuracy:
        result["accuracy"] = accuracy(METHODS.names())
        print(f"{'method':18s} {'MAE':>6s} {'RMSE':>6s} {'r':>6s} {'winMAE':>7s}")
        for name, m in result["accuracy"]["table"].items():
            print(f"{name:18s} {m['mae']:6.2f} {m['rmse']:6.2f} {m['pearson_r']:6.2f} {m['window_mae']:7.2f}")
    (args.out / "bench_predict.json").write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
