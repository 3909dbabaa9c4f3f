"""Accuracy and speed of the fused multi-region estimator (issue 11) on real video.

Accuracy, in one run on the clips of ``../shared/data`` (6 ``ubfc_rppg_dev`` subjects, 2
vitallens clips): every single method on the forehead-and-cheeks ROI, every region on its
own (its methods fused), the fused default (``method="auto"``) and its ablations, next to
vitallens' POS / CHROM (``pip install vitallens``; they decode with the ffmpeg binary) and,
where ``out/peer/FacePhys.rlap/*.json`` exist (``benchmarks/peer_openrppg.py``), open-rppg's
FacePhys. Every estimate and the reference go through the same 10 s / 1 s windows.

Metrics: 10-s windowed HR MAE (primary), whole-video MAE / RMSE / Pearson r. The windowed
reference is the spectral peak of the reference PPG in each window (primary) and, as a
second reading, the mean rate of the reference's beats in the window (``win(beats)``). The
whole-video reference is given three ways: the periodogram peak of the whole reference PPG
(``ref=periodogram``, as the data README lists it), the median of its windowed HR
(``ref=median``, the same definition as the fused estimator's whole-video HR) and the mean
HR over the recording, beats per minute between the reference's first and last detected
beat (``ref=beats``: what "average heart rate" means when HR drifts).

Speed, as a user meets it: ``facepulse predict`` as a process from start to exit, next to
a process that only decodes the clip with PyAV and vitallens' CHROM as a process, in the
same run.

    python benchmarks/bench_fusion.py --out out/bench_fusion [--skip-speed] [--skip-accuracy]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_predict import clips  # noqa: E402  (the real clips and their references)

WINDOW_S = 10.0
STEP_S = 1.0
SPEED_VIDEO = "ubfc_rppg_dev/subject9/vid.mp4"  # 68 s, 640x480


def _windows(result) -> np.ndarray:
    return np.asarray(result.windows.hr_bpm, dtype=float)


def reference(ppg: np.ndarray, t_s: np.ndarray, fps: float) -> dict:
    from facepulse.pipeline import result_from_pulse
    from facepulse.roi.trace import resample_uniform

    ok = np.isfinite(ppg)
    tu, pu = resample_uniform(t_s[ok], ppg[ok, None], fps)
    r = result_from_pulse(tu, pu[:, 0], fps, method="reference", window_s=WINDOW_S, step_s=STEP_S)
    win = _windows(r)
    beats = np.asarray(r.beat_times_s, dtype=float)
    return {"periodogram": float(r.hr_bpm), "median": float(np.nanmedian(win)), "beats": beat_rate_bpm(beats),
            "windows": win,
            "windows_beats": np.array([beat_rate_bpm(beats[(beats >= a) & (beats < b)])
                                       for a, b in zip(r.windows.t_start_s, r.windows.t_end_s, strict=True)])}


def beat_rate_bpm(beat_times_s: np.ndarray) -> float:
    """Mean HR of a run of beats: beats per minute between the first and the last (NaN
    for fewer than 3 beats). Unlike a spectral peak, it does not depend on how the power
    of a varying rhythm spreads over the window."""
    if beat_times_s.size < 3:
        return float("nan")
    return 60.0 * (beat_times_s.size - 1) / float(beat_times_s[-1] - beat_times_s[0])


def peer_result(path: Path, fps: float):
    """A peer's pulse (``peer_openrppg.py``'s JSON) through our HR path, at ``fps``; None
    when the file does not exist."""
    from facepulse.pipeline import result_from_pulse
    from facepulse.roi.trace import resample_uniform

    if not path.exists():
        return None
    data = json.loads(path.read_text())
    t_p, bvp = np.asarray(data["t_s"], float), np.asarray(data["bvp"], float)
    ok = np.isfinite(bvp) & np.isfinite(t_p)
    t_p, bvp = t_p[ok], bvp[ok]
    # the peer forward-fills frames it could not decode: keep strictly increasing times
    increasing = np.r_[True, np.diff(t_p) > 0]
    while not increasing.all():
        t_p, bvp = t_p[increasing], bvp[increasing]
        increasing = np.r_[True, np.diff(t_p) > 0]
    tw, ww = resample_uniform(t_p - t_p[0], bvp[:, None], fps)
    return result_from_pulse(tw, ww[:, 0], fps, method="FacePhys", window_s=WINDOW_S, step_s=STEP_S)


def estimates_for_clip(clip: dict, vitallens: bool) -> dict:
    from facepulse.face.detectors import make_detector
    from facepulse.face.tracker import FaceTracker
    from facepulse.io.video import open_video
    from facepulse.methods import METHODS
    from facepulse.pipeline import predict_from_regions, predict_from_trace
    from facepulse.roi.regions import DEFAULT_REGIONS
    from facepulse.roi.trace import extract_trace, resample_uniform
    from facepulse.signal.fusion import candidate_pulses, fuse_pulses

    trace = extract_trace(open_video(clip["video"]), FaceTracker(make_detector("auto")), regions=DEFAULT_REGIONS)
    ts, fps = trace.timestamps_s, trace.fps
    ref = reference(clip["reference"].ppg_on_frames(ts), ts, fps)
    est: dict[str, dict] = {}

    def keep(name: str, whole: float, windows: np.ndarray, conf: np.ndarray | None = None) -> None:
        est[name] = {"whole": float(whole), "windows": np.asarray(windows, float).tolist(),
                     "confidence": None if conf is None else np.asarray(conf, float).tolist()}

    t0 = time.perf_counter()
    fused = predict_from_regions(ts, trace.region_rgb, fps, region_names=trace.region_names,
                                 window_s=WINDOW_S, step_s=STEP_S)
    fused_s = time.perf_counter() - t0
    keep("facepulse auto (fused)", fused.hr_bpm, _windows(fused), fused.windows.confidence)
    for m in METHODS.names():
        r = predict_from_trace(ts, trace.rgb, fps, method=m, window_s=WINDOW_S, step_s=STEP_S)
        keep(f"facepulse {m} (skin ROI)", r.hr_bpm, _windows(r))
    names = list(trace.region_names)
    # each region alone, its methods fused and tracked
    singles = [n for n in names if not n.startswith("grid_")]
    for n in singles + ["grid (all cells)"]:
        sel = [i for i, x in enumerate(names) if (x.startswith("grid_") if n.startswith("grid") else x == n)]
        r = predict_from_regions(ts, trace.region_rgb[:, sel], fps, region_names=[names[i] for i in sel],
                                 window_s=WINDOW_S, step_s=STEP_S)
        keep(f"region {n}", r.hr_bpm, _windows(r))
    # ablations of the fused estimator
    tu, flat = resample_uniform(ts, trace.region_rgb.reshape(ts.size, -1), fps)
    rgb_u = flat.reshape(tu.size, len(names), 3)
    valid = np.isfinite(rgb_u).all(axis=2).any(axis=1)
    pulses, cands = candidate_pulses(rgb_u, fps, region_names=names)
    for label, kw in {
        "no tracking": {"track": False},
        "no whitening": {"tilt": 0.0},
        "no agreement weight": {"agreement": False},
        "no SNR cap": {"snr_cap_db": 60.0},
        "harmonic support 0.5": {"harmonic_weight": 0.5},
        "whitening fixed at 1/f": {"tilt": 1.0},
        "whitening measured, capped at 1/f (before the sixth session)": {"max_tilt": 1.0},
        "pos+chrom only": None,
        "methods + lgi (6)": {"methods": ("pos", "chrom", "omit", "lgi", "pbv", "green")},
        "grid cells as separate regions": {"group_families": False},
    }.items():
        if kw is None:
            sel = [i for i, c in enumerate(cands) if c.endswith(("/pos", "/chrom"))]
            f = fuse_pulses(pulses[sel], fps, candidates=[cands[i] for i in sel], valid=valid)
        elif "methods" in kw:
            p6, c6 = candidate_pulses(rgb_u, fps, region_names=names, methods=kw["methods"])
            f = fuse_pulses(p6, fps, candidates=c6, valid=valid)
        else:
            f = fuse_pulses(pulses, fps, candidates=cands, valid=valid, **kw)
        keep(f"auto, {label}", np.nanmedian(f.hr_bpm), f.hr_bpm)
    if vitallens:
        from facepulse.pipeline import result_from_pulse
        from vitallens import VitalLens

        frames = np.stack([f for _, f in open_video(clip["video"])])
        for m in ("pos", "chrom"):
            res = VitalLens(method=m, export_to_json=False)(frames, fps=fps)[0]
            wave = np.asarray(res["waveforms"]["ppg_waveform"]["data"], float)
            tw, ww = resample_uniform(ts[: wave.size], wave[:, None], fps)
            r = result_from_pulse(tw, ww[:, 0], fps, method=m, window_s=WINDOW_S, step_s=STEP_S)
            keep(f"vitallens {m}", r.hr_bpm, _windows(r))
        del frames
    peer = peer_result(Path("out/peer/FacePhys.rlap") / f"{clip['name'].replace('/', '_')}.json", fps)
    if peer is not None:
        keep("open-rppg FacePhys.rlap", peer.hr_bpm, _windows(peer))
    return {"clip": clip["name"], "ref": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in ref.items()},
            "est": est, "fused_backend_s": fused_s, "regions": names,
            "fused_quality": fused.quality, "fused_hr_bpm": fused.hr_bpm}


def table(rows: list[dict]) -> dict:
    from facepulse.eval.metrics import summarize

    out = {}
    for name in rows[0]["est"]:
        have = [r for r in rows if name in r["est"]]
        pred = np.array([r["est"][name]["whole"] for r in have])
        entry = {"n_clips": len(have)}
        for ref_kind in ("periodogram", "median", "beats"):
            ref = np.array([r["ref"][ref_kind] for r in have])
            s = summarize(pred, ref)
            entry[f"whole_{ref_kind}"] = {k: s[k] for k in ("mae", "rmse", "pearson_r")}
            entry[f"within3_{ref_kind}"] = int(np.sum(np.abs(pred - ref) <= 3.0))
        for key, n_key, ref_windows in (("window_mae", "n_windows", "windows"),
                                        ("window_mae_beats", "n_windows_beats", "windows_beats")):
            errs = []
            for r in have:
                p = np.asarray(r["est"][name]["windows"], float)
                q = np.asarray(r["ref"][ref_windows], float)
                k = min(p.size, q.size)
                e = np.abs(p[:k] - q[:k])
                errs.append(e[np.isfinite(e)])
            e = np.concatenate(errs)
            entry[key] = float(e.mean())
            entry[n_key] = int(e.size)
        ubfc = [np.abs(np.asarray(r["est"][name]["windows"], float)[: len(r["ref"]["windows"])]
                       - np.asarray(r["ref"]["windows"], float)[: len(r["est"][name]["windows"])])
                for r in have if r["clip"].startswith("ubfc")]
        if ubfc:
            u = np.concatenate(ubfc)
            entry["window_mae_ubfc"] = float(np.nanmean(u))
        out[name] = entry
    return out


def confidence_bins(rows: list[dict]) -> list[dict]:
    """Windowed error of the fused estimator by confidence quartile (is it thresholdable?)."""
    errs, confs = [], []
    for r in rows:
        e = r["est"]["facepulse auto (fused)"]
        p, c = np.asarray(e["windows"], float), np.asarray(e["confidence"], float)
        q = np.asarray(r["ref"]["windows"], float)
        k = min(p.size, q.size)
        errs.append(np.abs(p[:k] - q[:k]))
        confs.append(c[:k])
    err, conf = np.concatenate(errs), np.concatenate(confs)
    ok = np.isfinite(err) & np.isfinite(conf)
    err, conf = err[ok], conf[ok]
    edges = np.quantile(conf, [0, 0.25, 0.5, 0.75, 1.0])
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf >= lo) & (conf <= hi)
        out.append({"confidence": [float(lo), float(hi)], "n": int(m.sum()), "mae": float(err[m].mean()),
                    "share_over_5bpm": float(np.mean(err[m] > 5))})
    return out


def _time_process(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall time and CPU time (user + sys of the process and its threads), seconds."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


DECODE_ONLY = "decode only (PyAV, to RGB)"
DECODE_ONLY_REUSED = "decode only (PyAV, to RGB, one reused converter)"


def decode_command(video: Path) -> list[str]:
    """A process that only decodes ``video`` to RGB frames: the speed baseline (the issue's
    definition, ``frame.to_ndarray(format='rgb24')`` per frame)."""
    return [sys.executable, "-c",
            "import sys, av\nc = av.open(sys.argv[1]); s = c.streams.video[0]; s.thread_type = 'AUTO'\n"
            "n = sum(1 for f in c.decode(s) if f.to_ndarray(format='rgb24') is not None)\nprint(n)", str(video)]


def decode_command_reused(video: Path) -> list[str]:
    """The same decode with one reused swscale converter, as ``facepulse.io.video`` now
    decodes: ``to_ndarray(format=...)`` builds a converter (and its thread pool) per frame,
    which costs CPU and, on a busy machine, much wall time. The stricter baseline."""
    return [sys.executable, "-c",
            "import sys, av\nfrom av.video.reformatter import VideoReformatter\n"
            "c = av.open(sys.argv[1]); s = c.streams.video[0]; s.thread_type = 'AUTO'; r = VideoReformatter()\n"
            "n = sum(1 for f in c.decode(s) if r.reformat(f, format='rgb24', threads=1).to_ndarray() is not None)\n"
            "print(n)", str(video)]


def time_commands(cmds: dict[str, list[str]], repeats: int, env: dict[str, dict] | None = None) -> dict:
    """Best / all wall times and CPU times of each command, interleaved so that load changes
    hit every command alike, and each as a multiple of the decode-only commands' best
    (``x_decode``: the ``DECODE_ONLY`` command; ``x_decode_reused``: ``DECODE_ONLY_REUSED``,
    when run). ``env``: per-command environments."""
    env = env or {}
    times: dict[str, list[float]] = {k: [] for k in cmds}
    cpus: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(repeats):
        for name, cmd in cmds.items():
            wall, cpu = _time_process(cmd, env.get(name))
            times[name].append(wall)
            cpus[name].append(cpu)
    base = min(times[DECODE_ONLY])
    base_cpu = float(np.median(cpus[DECODE_ONLY]))
    out = {}
    for name, t in times.items():
        entry = {"best_s": min(t), "all_s": t, "x_decode": min(t) / base,
                 "cpu_median_s": float(np.median(cpus[name])), "cpu_all_s": cpus[name],
                 "cpu_x_decode": float(np.median(cpus[name])) / base_cpu}
        if DECODE_ONLY_REUSED in times:
            entry["x_decode_reused"] = min(t) / min(times[DECODE_ONLY_REUSED])
            entry["cpu_x_decode_reused"] = float(np.median(cpus[name])) / float(np.median(cpus[DECODE_ONLY_REUSED]))
        out[name] = entry
    return out


def speed(video: Path, repeats: int, vitallens: bool, compare_src: Path | None = None) -> dict:
    """``compare_src``: also time ``facepulse predict`` run from this source tree (e.g. a copy
    of the code before a change), interleaved with the rest: before/after in one run."""
    facepulse = str(Path(sys.executable).with_name("facepulse"))
    cmds = {
        DECODE_ONLY: decode_command(video),
        DECODE_ONLY_REUSED: decode_command_reused(video),
        "facepulse predict (auto)": [facepulse, "predict", str(video), "-q"],
        "facepulse predict --method pos": [facepulse, "predict", str(video), "-q", "--method", "pos"],
    }
    envs: dict[str, dict] = {}
    if compare_src is not None:
        env = dict(os.environ, PYTHONPATH=str(compare_src.resolve()))
        # through main(), which every tree has (the console script's entry point changed)
        via_main = [sys.executable, "-c", "import sys\nfrom facepulse.cli import main\nsys.exit(main())"]
        for name in ("facepulse predict (auto)", "facepulse predict --method pos"):
            cmds[f"{name} [{compare_src}]"] = via_main + cmds[name][1:]
            envs[f"{name} [{compare_src}]"] = env
    if vitallens:
        cmds["vitallens chrom (file)"] = [sys.executable, "-c",
                                          "import sys\nfrom vitallens import VitalLens\n"
                                          "VitalLens(method='chrom', export_to_json=False)(sys.argv[1])", str(video)]
    out = time_commands(cmds, repeats, envs)
    times = {name: e["all_s"] for name, e in out.items()}
    if vitallens:
        out["facepulse predict (auto)"]["x_vitallens_chrom"] = (
            min(times["facepulse predict (auto)"]) / min(times["vitallens chrom (file)"])
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/bench_fusion")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare-src", type=Path, default=None,
                        help="also time `facepulse predict` from this source tree (PYTHONPATH), interleaved")
    parser.add_argument("--speed-video", default=SPEED_VIDEO,
                        help=f"clip to time, relative to the data folder (default {SPEED_VIDEO}; "
                             "vitallens_samples/sample_video_2.mp4 is a clean 12-s clip whose predict reports HRV)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        import vitallens  # noqa: F401

        have_vl = True
    except ImportError:
        have_vl = False
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "load_before": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "vitallens": have_vl}
    report: dict = {"meta": meta}
    if not args.skip_accuracy:
        rows = []
        for clip in clips():
            row = estimates_for_clip(clip, have_vl)
            rows.append(row)
            f = row["est"]["facepulse auto (fused)"]
            print(f"{row['clip']}: ref {row['ref']['periodogram']:.1f} (median {row['ref']['median']:.1f}, "
                  f"beats {row['ref']['beats']:.1f}) | "
                  f"auto {f['whole']:.1f} | pos {row['est']['facepulse pos (skin ROI)']['whole']:.1f}", flush=True)
        report["clips"] = rows
        # how far the reference's two windowed definitions disagree, per clip
        for row in rows:
            a, b = np.asarray(row["ref"]["windows"], float), np.asarray(row["ref"]["windows_beats"], float)
            row["ref"]["windows_spectral_vs_beats_mae"] = float(np.nanmean(np.abs(a - b)))
            print(f"{row['clip']}: reference windows, spectral peak vs beats: "
                  f"{row['ref']['windows_spectral_vs_beats_mae']:.2f} bpm MAE")
        report["table"] = table(rows)
        report["confidence_bins"] = confidence_bins(rows)
        for name, e in report["table"].items():
            print(f"{name:34s} win {e['window_mae']:6.2f}  win(beats) {e['window_mae_beats']:6.2f}  whole(periodogram) {e['whole_periodogram']['mae']:6.2f}"
                  f"  whole(median) {e['whole_median']['mae']:6.2f}  r {e['whole_periodogram']['pearson_r']:.2f}"
                  f"  whole(beats) {e['whole_beats']['mae']:6.2f}"
                  f"  within3 {e['within3_periodogram']}/{e['within3_median']}/{e['within3_beats']} of {e['n_clips']}")
        print(json.dumps(report["confidence_bins"], indent=1))
    if not args.skip_speed:
        report["speed"] = speed(Path(os.environ.get("FACEPULSE_DATA", "../shared/data")) / args.speed_video,
                                args.repeats, have_vl, args.compare_src)
        meta["load_after"] = os.getloadavg()
        meta["speed_video"] = args.speed_video
        print(json.dumps(report["speed"], indent=1))
    (out / "bench_fusion.json").write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
