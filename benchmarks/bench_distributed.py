"""Benchmark of the executors of `facepulse preprocess`: local pool vs Ray (issue 16).

On the UBFC-rPPG videos of ../shared/data/ubfc_rppg_dev (640x480, ~30 fps), in one run:

- Ray's fixed start-up cost: ``ray.init`` of a local instance, the first (empty) task
  (a worker process starting), and ``ray.shutdown``;
- preprocessing throughput (videos/s, frames/s) and peak resident memory per worker for
  the local executor and Ray, each with 1 and 2 workers, each run in a fresh process and
  a fresh cache folder; every run's cache files are compared byte for byte with the first;
- a projection, from the measured seconds per video of one worker, of the time to
  preprocess VIPL-HR (2,378 videos) on N nodes.

    python benchmarks/bench_distributed.py --out out/bench_distributed.json

On a shared machine the figures are only as good as the CPU time the other jobs leave:
the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VIPL_HR_VIDEOS = 2378
CONFIGS = [("local", 1), ("local", 2), ("ray", 1), ("ray", 2)]


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def ray_startup() -> dict:
    """Fixed cost of a local Ray instance (run in a fresh process)."""
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    t_init = time.perf_counter() - t0

    @ray.remote(num_cpus=1)
    def nothing() -> int:
        return os.getpid()

    t0 = time.perf_counter()
    ray.get(nothing.remote())
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.get([nothing.remote() for _ in range(20)])
    t_warm = (time.perf_counter() - t0) / 20
    t0 = time.perf_counter()
    ray.shutdown()
    t_down = time.perf_counter() - t0
    return {"init_s": t_init, "first_task_s": t_first, "warm_task_s": t_warm, "shutdown_s": t_down,
            "total_s": t_init + t_first + t_down}


def run_one(executor: str, workers: int, data: str, cache: str, videos: int | None) -> dict:
    """One preprocessing run (in a fresh process)."""
    from facepulse.datasets import get_reader
    from facepulse.datasets.cache import PreprocessConfig, preprocess_dataset
    from facepulse.executors import make_executor

    reader = get_reader("ubfc-rppg", data)
    records = reader.records()[:videos] if videos else reader.records()
    runner = make_executor(executor, workers=workers)
    t0 = time.perf_counter()
    summary = preprocess_dataset(reader, cache, PreprocessConfig(), progress=False, records=records, executor=runner)
    wall = time.perf_counter() - t0
    startup = getattr(runner, "startup_s", 0.0)
    digest = hashlib.sha256()
    for path in sorted(summary.root.glob("*.h5")):
        digest.update(path.name.encode() + path.read_bytes())
    return {
        "executor": summary.executor,
        "videos": len(summary.written),
        "failed": summary.failed,
        "frames": summary.frames,
        "wall_s": wall,
        "startup_s": startup,
        "videos_per_s": len(summary.written) / wall,
        "frames_per_s": summary.frames / wall,
        "frames_per_s_after_startup": summary.frames / max(1e-9, wall - startup),
        "peak_rss_mb_per_worker": summary.peak_rss_mb,
        "seconds_per_video": summary.video_seconds,
        "sha256": digest.hexdigest(),
    }


def _child(func: str, *args: str) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_distributed as b; "
            f"print('RESULT' + json.dumps(b.{func}(*json.loads(sys.argv[1]))))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(list(args))], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{func} failed: {proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def projection(seconds_per_video: float, startup_s: float, cores_per_node: int, efficiency: float) -> list[dict]:
    rows = []
    for nodes in (1, 2, 4, 8, 16, 32):
        slots = nodes * cores_per_node
        rounds = math.ceil(VIPL_HR_VIDEOS / slots)
        hours = (startup_s + rounds * seconds_per_video / efficiency) / 3600
        rows.append({"nodes": nodes, "cores_per_node": cores_per_node, "hours": hours})
    return rows


def main() -> None:
    from facepulse.paths import shared_data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench_distributed.json"))
    parser.add_argument("--videos", type=int, default=None, help="first N videos only (default: all 6)")
    args = parser.parse_args()
    data = shared_data_dir() / "ubfc_rppg_dev"

    result: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "load_before": load(),
        "data": str(data),
    }
    print(f"load average before: {result['load_before']}", flush=True)
    result["ray_startup"] = _child("ray_startup")
    print(f"ray start-up: {result['ray_startup']}", flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        for executor, workers in CONFIGS:
            run = _child("run_one", executor, workers, str(data), str(Path(tmp) / f"{executor}{workers}"), args.videos)
            runs.append(run)
            print(f"{run['executor']}: {run['videos']} videos, {run['frames']} frames in {run['wall_s']:.1f} s "
                  f"({run['videos_per_s']:.3f} videos/s, {run['frames_per_s']:.0f} frames/s, start-up "
                  f"{run['startup_s']:.1f} s), peak {run['peak_rss_mb_per_worker']:.0f} MiB/worker", flush=True)
    for run in runs:
        run["same_bytes_as_first"] = run["sha256"] == runs[0]["sha256"]
    result["runs"] = runs
    result["load_after"] = load()

    # Projection from Ray with one worker: seconds of one worker per video (mean), and
    # the parallel efficiency measured with 2 workers on this machine.
    ray1, ray2 = runs[2], runs[3]
    per_video = sum(ray1["seconds_per_video"].values()) / len(ray1["seconds_per_video"])
    efficiency = min(1.0, (ray2["frames_per_s_after_startup"] / ray1["frames_per_s_after_startup"]) / 2)
    result["projection"] = {
        "seconds_per_video": per_video,
        "efficiency_2_workers": efficiency,
        "startup_s": result["ray_startup"]["total_s"],
        "rows": projection(per_video, result["ray_startup"]["total_s"], 16, 1.0)
        + projection(per_video, result["ray_startup"]["total_s"], 2, efficiency),
    }
    print(f"projection for VIPL-HR ({VIPL_HR_VIDEOS} videos), {per_video:.1f} s per video per core:")
    for row in result["projection"]["rows"]:
        print(f"  {row['nodes']:>3} nodes x {row['cores_per_node']:>2} cores: {row['hours']:.2f} h")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}; load average after: {result['load_after']}")


if __name__ == "__main__":
    main()
