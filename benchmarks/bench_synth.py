"""Speed of the synthetic-video generator (frames per second, one CPU core).

    python benchmarks/bench_synth.py                      # 128x128 and 640x480
    python benchmarks/bench_synth.py --sizes 320x240 --duration-s 20 --repeats 5

For each frame size and scenario it reports, best of ``--repeats`` runs:

- ``render``: frames/s of the renderer alone (scene, optics, sensor; frames in memory),
- ``write``: frames/s of writing the video to disk (render + per-frame truth + encoding),
- ``setup_s``: one-off preparation per video (physiology, sprite, background).

OpenCV, NumPy and the encoders are limited to one thread. MediaPipe's one-off analysis
of the face photo happens before timing starts (it is cached per process).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _bench(params, seed: int, repeats: int) -> dict[str, float]:
    from facepulse.synth.generator import Renderer
    from facepulse.synth.writer import write_video

    best_render = best_write = 0.0
    best_setup = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        renderer = Renderer(params, seed)
        t1 = time.perf_counter()
        n = sum(1 for _ in renderer.frames())
        t2 = time.perf_counter()
        best_setup = min(best_setup, t1 - t0)
        best_render = max(best_render, n / (t2 - t1))
        with tempfile.TemporaryDirectory() as tmp:
            t3 = time.perf_counter()
            result = write_video(Path(tmp) / "v", params, seed)
            t4 = time.perf_counter()
        best_write = max(best_write, result.n_frames / (t4 - t3))
    return {"frames": params.n_frames, "setup_s": best_setup, "render_fps": best_render, "write_fps": best_write}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["128x128", "640x480"], help="WIDTHxHEIGHT")
    parser.add_argument("--scenarios", nargs="+", default=["still", "hard"])
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import cv2

    cv2.setNumThreads(1)
    from facepulse.synth.params import CameraParams, SynthParams
    from facepulse.synth.scenarios import sample_params
    from facepulse.synth.scene import face_asset

    face_asset()  # one-off MediaPipe analysis, not part of the per-video cost
    print(f"duration {args.duration_s:g} s at {args.fps:g} fps, best of {args.repeats}, 1 thread")
    print(f"{'size':>9} {'scenario':>10} {'frames':>6} {'setup_s':>8} {'render fps':>11} {'write fps':>10}")
    for size in args.sizes:
        width, height = (int(v) for v in size.lower().split("x"))
        base = SynthParams(duration_s=args.duration_s, camera=CameraParams(width=width, height=height, fps=args.fps))
        for scenario in args.scenarios:
            params = sample_params(scenario, args.seed, base)
            r = _bench(params, args.seed, args.repeats)
            print(
                f"{size:>9} {scenario:>10} {r['frames']:>6d} {r['setup_s']:>8.3f} "
                f"{r['render_fps']:>11.1f} {r['write_fps']:>10.1f}"
            )


if __name__ == "__main__":
    main()
