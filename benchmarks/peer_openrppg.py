"""Run open-rppg's pretrained models on videos; write each raw pulse for bench_accuracy.py.

Runs in its own environment (open-rppg needs JAX, Keras and the full opencv-python, which
would clash with facepulse's opencv-python-headless), so it imports nothing of facepulse:

    python3.11 -m venv .venv-peer && .venv-peer/bin/pip install open-rppg==0.1.1
    .venv-peer/bin/python benchmarks/peer_openrppg.py OUT_DIR --model PhysNet.pure \
        --video subject3=../shared/data/ubfc_rppg_dev/subject3/vid.mp4 ...

For every model and video, ``OUT_DIR/<model>/<video_id>.json`` holds the peer's raw pulse
(``bvp``, its model output before the peer's own filtering), its timestamps ``t_s``, the
peer's own whole-video HR (``hr_bpm``, from its filtered pulse) and the wall time. Files
already there are kept, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def run_one(model_name: str, video_path: str) -> dict:
    import numpy as np
    import rppg

    model = rppg.Model(model_name)
    start = time.perf_counter()
    result = model.process_video(video_path)
    wall_s = time.perf_counter() - start
    bvp, t_s = model.bvp(raw=True)
    return {
        "model": model_name,
        "video": video_path,
        "hr_bpm": None if not result or result.get("hr") is None else float(result["hr"]),
        "sqi": None if not result or result.get("SQI") is None else float(result["SQI"]),
        "bvp": np.asarray(bvp, dtype=float).tolist(),
        "t_s": np.asarray(t_s, dtype=float).tolist(),
        "model_fps": float(model.fps),
        "wall_s": wall_s,
        "statistic": {k: int(v) for k, v in model.statistic.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--model", nargs="+", required=True, help="open-rppg model names, e.g. PhysNet.pure")
    parser.add_argument("--video", nargs="+", required=True, metavar="ID=PATH")
    args = parser.parse_args()
    videos = [v.split("=", 1) for v in args.video]
    for model_name in args.model:
        folder = args.out_dir / model_name
        folder.mkdir(parents=True, exist_ok=True)
        for video_id, path in videos:
            out = folder / f"{video_id}.json"
            if out.exists():
                continue
            try:
                record = run_one(model_name, path)
            except Exception as err:  # noqa: BLE001 - a peer failure is a result to report
                record = {"model": model_name, "video": path, "error": f"{type(err).__name__}: {err}"}
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(record))
            os.replace(tmp, out)  # a killed run leaves no half-written result
            print(f"{model_name} {video_id}: hr {record.get('hr_bpm')} ({record.get('wall_s', 0):.0f} s)", flush=True)


if __name__ == "__main__":
    main()
