"""Accuracy on degraded copies of the real clips: stronger compression and smaller faces.

The real clips of ``../shared/data`` (6 UBFC subjects, 2 vitallens clips) are re-encoded
with the ffmpeg binary (``apt-get install ffmpeg``) at lower quality, so that every copy
keeps its subject's true pulse and reference PPG: a synthetic video only has the damage
its generator models, these have the real face, light and motion.

Variants (H.264, libx264 defaults otherwise): ``original`` (the file as it is), ``crf30``
and ``crf35`` (the whole clip re-encoded at that quality; the UBFC files are already
~140 kbit/s, CRF 35 gives ~30 kbit/s), ``half`` (scaled to half width and height, CRF 28:
a face of ~60-80 pixels, like a video call's thumbnail or a face far from the camera).

Estimators: ``facepulse.predict`` with the fused default (``auto``), ``--method pos`` on
the forehead-and-cheeks ROI and the packaged model (``--model default``), and, where
``OUT/peer/FacePhys.rlap/<variant>_<clip>.json`` exist, open-rppg's FacePhys::

    python benchmarks/bench_degraded.py --out out/bench_degraded         # encodes, then scores
    .venv-peer/bin/python benchmarks/peer_openrppg.py out/bench_degraded/peer --model FacePhys.rlap \\
        --video crf35_ubfc_subject3=out/bench_degraded/videos/crf35_ubfc_subject3.mp4 ...
    python benchmarks/bench_degraded.py --out out/bench_degraded         # again: adds the peer

Metrics: 10-s windowed HR MAE against the reference PPG's spectral peak per window (the
primary metric), whole-video MAE against the mean rate of the reference's beats, clips
within 5 bpm of it, and how many of each estimator's results say ``reliable``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_fusion import STEP_S, WINDOW_S, peer_result, reference  # noqa: E402
from bench_predict import clips  # noqa: E402

#: variant -> ffmpeg output options (None: the original file).
VARIANTS: dict[str, list[str] | None] = {
    "original": None,
    "crf30": ["-c:v", "libx264", "-crf", "30"],
    "crf35": ["-c:v", "libx264", "-crf", "35"],
    "half": ["-vf", "scale=trunc(iw/4)*2:trunc(ih/4)*2", "-c:v", "libx264", "-crf", "28"],
}
ESTIMATORS = {"auto": {"method": "auto"}, "pos": {"method": "pos"}, "model default": {"model": "default"}}


def encode(src: Path, dst: Path, options: list[str]) -> None:
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".part.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *options, "-an", str(tmp)], check=True)
    tmp.rename(dst)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/bench_degraded"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=list(ESTIMATORS))
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        print("bench_degraded: the ffmpeg binary is needed (apt-get install ffmpeg)", file=sys.stderr)
        return 2
    import facepulse
    from facepulse.errors import FacepulseError
    from facepulse.io.video import open_video

    rows = []
    for clip in clips():
        stem_clip = clip["name"].replace("/", "_")
        for variant in args.variants:
            video = Path(clip["video"])
            if VARIANTS[variant] is not None:
                video = args.out / "videos" / f"{variant}_{stem_clip}.mp4"
                encode(Path(clip["video"]), video, VARIANTS[variant])
            row = {"clip": clip["name"], "variant": variant, "est": {}}
            results = {}
            for name, kw in ((n, ESTIMATORS[n]) for n in args.estimators):
                t0 = time.perf_counter()
                try:
                    results[name] = facepulse.predict(video, window_s=WINDOW_S, step_s=STEP_S, **kw)
                except FacepulseError as err:
                    row["est"][name] = {"error": str(err)}
                    continue
                row["est"][name] = {"seconds": time.perf_counter() - t0}
            any_result = next(iter(results.values()), None)
            if any_result is None:
                rows.append(row)
                continue
            # frame times are the video's whatever the estimator; the rate is the video's too
            # (a model's result carries the model's rate)
            ts = any_result.timestamps_s
            fps = float(open_video(video).info.fps)
            row["kbit_s"] = 8e-3 * video.stat().st_size / float(ts[-1] - ts[0] + 1.0 / fps)
            ref = reference(clip["reference"].ppg_on_frames(ts), ts, fps)
            peer = peer_result(args.out / "peer" / "FacePhys.rlap" / f"{variant}_{stem_clip}.json", fps)
            if peer is not None:
                results["FacePhys (peer)"] = peer
                row["est"]["FacePhys (peer)"] = {}
            for name, r in results.items():
                p = np.asarray(r.windows.hr_bpm, float)
                k = min(p.size, ref["windows"].size)
                err = np.abs(p[:k] - ref["windows"][:k])
                row["est"][name].update({
                    "hr_bpm": float(r.hr_bpm), "whole_err_beats": abs(float(r.hr_bpm) - ref["beats"]),
                    "window_abs_err": err[np.isfinite(err)].tolist(),
                    "reliable": bool((r.quality or {}).get("reliable", True)),
                })
            row["ref_beats_bpm"] = ref["beats"]
            rows.append(row)
            print(f"{clip['name']:15s} {variant:8s} {row['kbit_s']:6.0f} kbit/s ref {ref['beats']:6.1f} | "
                  + " | ".join(f"{n} {e['hr_bpm']:.1f}" if "hr_bpm" in e else f"{n} error"
                               for n, e in row["est"].items()), flush=True)
    summary = summarize(rows, args.variants)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_degraded.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    print("| variant | estimator | clips | 10-s windowed MAE | whole MAE vs beats | within 5 bpm | flagged reliable |")
    print("|---|---|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['variant']} | {s['estimator']} | {s['n']} | {s['window_mae']:.2f} | {s['whole_mae']:.2f} | "
              f"{s['within5']}/{s['n']} | {s['reliable']}/{s['n']} |")
    return 0


def summarize(rows: list[dict], variants: list[str]) -> list[dict]:
    out = []
    names = list(dict.fromkeys(n for r in rows for n in r["est"]))
    for variant in variants:
        for name in names:
            have = [r["est"][name] for r in rows if r["variant"] == variant and "hr_bpm" in r["est"].get(name, {})]
            failed = sum(1 for r in rows if r["variant"] == variant and "error" in r["est"].get(name, {}))
            if not have:
                continue
            whole = np.array([e["whole_err_beats"] for e in have])
            windows = np.concatenate([e["window_abs_err"] for e in have])
            out.append({"variant": variant, "estimator": name, "n": len(have), "failed": failed,
                        "window_mae": float(windows.mean()), "whole_mae": float(whole.mean()),
                        "within5": int((whole <= 5.0).sum()), "reliable": sum(e["reliable"] for e in have)})
    return out


if __name__ == "__main__":
    sys.exit(main())
