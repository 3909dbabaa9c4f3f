"""Benchmark of the preprocessing cache (`facepulse preprocess`) on real video.

Measures, on the UBFC-rPPG videos in ../shared/data/ubfc_rppg_dev (640x480, ~30 fps):

- decoding alone (frames/s, one process): the floor the preprocessing cannot beat;
- per stage on one video with warm imports: decoding, decoding + face + ROI trace, and
  the whole preprocessing (trace + face crops + compressed HDF5);
- preprocessing throughput (frames/s) with 1 and 2 worker processes, face crops on, and
  with 1 worker and crops off (traces only), and each run's peak resident memory per
  worker process (each run in a fresh process; with 1 worker the video is processed in
  that process itself);
- cache size per minute of video, against the same 72x72 crops stored as float32 .npy
  (what rPPG-Toolbox writes), measured by writing one video's crops both ways;
- the HDF5 compression options on the cached crops (size, write and random-clip read
  speed): gzip levels 1-4, lzf, none.

    python benchmarks/bench_preprocess.py --out out/bench_preprocess.json

Note the load average it prints: on a shared machine the throughput figures are only as
good as the CPU time the other jobs leave.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from facepulse.datasets import get_reader
from facepulse.datasets.cache import PreprocessConfig, open_cached, preprocess_dataset
from facepulse.paths import shared_data_dir


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def decode_only(reader) -> dict:
    frames, t0 = 0, time.perf_counter()
    duration_s = 0.0
    for rec in reader.records():
        last_t = 0.0
        source = reader.open_video(rec)
        for t_s, _ in source:
            frames += 1
            last_t = t_s
        duration_s += last_t + 1.0 / source.info.fps
    elapsed = time.perf_counter() - t0
    return {"frames": frames, "video_s": duration_s, "elapsed_s": elapsed, "frames_per_s": frames / elapsed}


def stages(reader, video_id: str, repeats: int = 2) -> dict:
    """One video, imports warm: decoding alone, the trace (face + ROI) alone, and the
    whole preprocessing of the video (trace + crops + HDF5), in frames/s (best of runs)."""
    from facepulse.datasets.cache import preprocess_record
    from facepulse.face.detectors import make_detector
    from facepulse.face.tracker import FaceTracker
    from facepulse.roi.trace import extract_trace

    rec = next(r for r in reader.records() if r.video_id == video_id)
    best = {"decode": 0.0, "trace": 0.0, "preprocess": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        preprocess_record(reader, rec, Path(tmp) / "warm.h5")
        for i in range(repeats):
            t0 = time.perf_counter()
            n = sum(1 for _ in reader.open_video(rec))
            best["decode"] = max(best["decode"], n / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            extract_trace(reader.open_video(rec), FaceTracker(make_detector("auto")))
            best["trace"] = max(best["trace"], n / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            preprocess_record(reader, rec, Path(tmp) / f"{i}.h5")
            best["preprocess"] = max(best["preprocess"], n / (time.perf_counter() - t0))
    return {"video": video_id, "frames": n, **{f"{k}_frames_per_s": round(v, 1) for k, v in best.items()}}


def preprocess_run(data: Path, dataset: str, size: int, clips: bool, workers: int, cache: Path) -> dict:
    """One preprocessing run in a fresh Python process, so that its peak memory is its own."""
    cmd = [sys.executable, __file__, "--data", str(data), "--dataset", dataset, "--size", str(size),
           "--run-one", str(workers), "1" if clips else "0", str(cache)]
    before = load()
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"run failed: {result.stderr[-2000:]}")
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row.update(load_before=before, load_after=load())
    return row


def run_one(reader, size: int, clips: bool, workers: int, cache: Path) -> None:
    from facepulse.executors.base import peak_rss_mb as _peak_rss_mb

    summary = preprocess_dataset(reader, cache, PreprocessConfig(size=size, clips=clips), workers=workers,
                                 progress=False)
    if summary.failed:
        raise SystemExit(f"preprocessing failed: {summary.failure_lines()}")
    print(json.dumps({
        "workers": workers,
        "clips": clips,
        "frames": summary.frames,
        "elapsed_s": round(summary.elapsed_s, 2),
        "frames_per_s": round(summary.frames_per_s, 1),
        "peak_rss_mib_per_worker": round(summary.peak_rss_mb, 1),
        "peak_rss_mib_main": round(_peak_rss_mb(), 1),
        "cache_bytes": sum(p.stat().st_size for p in summary.paths.values()),
        "cache_root": str(summary.root),
    }))


def npy_comparison(summary, video_s: float, total_cache_bytes: int) -> dict:
    """Write the first video's crops as float32 .npy and compare sizes per minute."""
    vid, path = next(iter(summary.paths.items()))
    with open_cached(path) as video:
        crops = video.clips()
        n = video.n_frames
        h5_bytes = path.stat().st_size
        duration_s = float(video.timestamps_s[-1] + 1.0 / video.fps)
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "clips.npy"
        np.save(npy, crops.astype(np.float32))
        npy_bytes = npy.stat().st_size
    per_min = 60.0 / duration_s
    return {
        "video": vid,
        "frames": n,
        "h5_mib_per_min": round(h5_bytes * per_min / 2**20, 2),
        "npy_float32_mib_per_min": round(npy_bytes * per_min / 2**20, 2),
        "ratio_h5_over_npy": round(h5_bytes / npy_bytes, 3),
        "dataset_h5_mib_per_min": round(total_cache_bytes * 60.0 / video_s / 2**20, 2),
    }


def compression_study(summary, clip_len: int = 128, reads: int = 50) -> list[dict]:
    """Rewrite every video's crops with each compression: size, write and read speed."""
    crops = []
    fps = []
    for path in summary.paths.values():
        with open_cached(path) as video:
            crops.append(video.clips())
            fps.append(video.fps)
    n_frames = sum(c.shape[0] for c in crops)
    options = [("gzip", 1), ("gzip", 2), ("gzip", 3), ("gzip", 4), ("lzf", None), ("none", None)]
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, level in options:
            kw = {"compression": "gzip", "compression_opts": level} if name == "gzip" else (
                {"compression": "lzf"} if name == "lzf" else {})
            paths, t0 = [], time.perf_counter()
            for i, (c, f) in enumerate(zip(crops, fps)):
                p = Path(tmp) / f"{name}{level}_{i}.h5"
                chunk = max(1, int(round(f)))
                with h5py.File(p, "w") as h5:
                    d = h5.create_dataset("clips", shape=(0, *c.shape[1:]), maxshape=(None, *c.shape[1:]),
                                          dtype=np.uint8, chunks=(chunk, *c.shape[1:]), **kw)
                    for a in range(0, c.shape[0], chunk):  # chunk by chunk, as the cache writes
                        block = c[a : a + chunk]
                        d.resize(a + block.shape[0], axis=0)
                        d[a : a + block.shape[0]] = block
                paths.append(p)
            write_s = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in paths)
            t0 = time.perf_counter()
            for _ in range(reads):
                i = int(rng.integers(len(paths)))
                with h5py.File(paths[i], "r") as h5:
                    d = h5["clips"]
                    s = int(rng.integers(0, d.shape[0] - clip_len))
                    _ = d[s : s + clip_len]
            read_s = time.perf_counter() - t0
            rows.append({
                "compression": name if level is None else f"{name}-{level}",
                "mib": round(size / 2**20, 1),
                "ratio_to_raw_uint8": round(size / sum(c.nbytes for c in crops), 3),
                "write_frames_per_s": round(n_frames / write_s, 0),
                "read_ms_per_128_frame_clip": round(1000 * read_s / reads, 2),
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "ubfc_rppg_dev")
    parser.add_argument("--dataset", default="ubfc-rppg")
    parser.add_argument("--size", type=int, default=72)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--skip-traces-only", action="store_true", help="skip the clips=False run")
    parser.add_argument("--run-one", nargs=3, metavar=("WORKERS", "CLIPS", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    reader = get_reader(args.dataset, args.data)
    if args.run_one:
        workers, clips, cache = args.run_one
        run_one(reader, args.size, clips == "1", int(workers), Path(cache))
        return
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                     "videos": len(reader.records())}
    print(f"load average {load()}; decoding only ...", flush=True)
    results["decode_only"] = dec = decode_only(reader)
    print(f"  {dec['frames']} frames ({dec['video_s'] / 60:.2f} min) at {dec['frames_per_s']:.0f} frames/s", flush=True)

    results["stages"] = st = stages(reader, reader.records()[0].video_id)
    print(f"  stages (one video, warm): {st}", flush=True)

    runs, keep = [], None
    plans = [(1, True), (2, True)] + ([] if args.skip_traces_only else [(1, False)])
    for workers, clips in plans:
        print(f"load average {load()}; preprocess workers={workers} clips={clips} ...", flush=True)
        cache = Path(tempfile.mkdtemp(prefix="bench-pre-"))
        row = preprocess_run(args.data, args.dataset, args.size, clips, workers, cache)
        runs.append(row)
        print(f"  {row}", flush=True)
        if keep is None and clips:
            keep = cache
        else:
            shutil.rmtree(cache, ignore_errors=True)
    results["preprocess"] = runs
    summary = preprocess_dataset(reader, keep, PreprocessConfig(size=args.size), progress=False)  # all cached
    cache = keep
    try:
        results["size"] = npy_comparison(summary, dec["video_s"], runs[0]["cache_bytes"])
        print(f"  size: {results['size']}", flush=True)
        results["compression"] = compression_study(summary)
        for row in results["compression"]:
            print(f"  {row}", flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
