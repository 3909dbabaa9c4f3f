"""Training and inference speed of the deep models on the CPU.

    python benchmarks/bench_train.py                      # everything, 2 threads
    python benchmarks/bench_train.py --only train --steps 5
    python benchmarks/bench_train.py --only infer --video ../shared/data/ubfc_rppg_dev/subject3/vid.mp4

Training: clips/s of optimiser steps (forward, hybrid loss, backward, AdamW) at input
(batch, 3, T, H, W) = (4, 3, 128, 64, 64), for PhysNet and the AutoHR network, in fp32
and bf16 (``torch.autocast("cpu", torch.bfloat16)``), and the peak resident memory of
the process doing it. Each configuration runs in its own process, so peaks don't mix.

Inference: real-time factor (processing time / video duration; < 1 is faster than real
time) of ``facepulse.predict(video, model=...)`` end to end (decode, face tracking, face
crops, model over the whole video, HR/HRV) on a synthetic 640x480 video, with the
PyTorch checkpoint and with its ONNX export (ONNX Runtime), next to the classic POS path
on the same video (the face stage's share). The model's weights don't matter for speed:
a checkpoint after one training epoch on 4 random clips is used.

Prints a Markdown table per part. Say whether other work shared the CPU when quoting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {
    "physnet": {"name": "physnet", "params": {"base_channels": 16}},
    "autohr": {"name": "autohr", "params": {"channels": 64, "n_blocks": 4}},
}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def train_worker(model: str, precision: str, steps: int, warmup: int, batch: int, shape: tuple[int, int, int]) -> dict:
    """Time ``steps`` optimiser steps after ``warmup`` ones (run in a fresh process)."""
    import torch

    from facepulse.losses import build_loss
    from facepulse.models import build_model
    from facepulse.models.normalize import normalize_clip

    torch.manual_seed(0)
    spec = MODELS[model]
    net = build_model(spec["name"], **spec["params"])
    loss_fn = build_loss("hybrid")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    t, h, w = shape
    clips = torch.rand(batch, 3, t, h, w) * 255
    ppg = torch.sin(torch.arange(t) / 30.0 * 2 * torch.pi * 1.3).expand(batch, t).contiguous()
    hr = torch.full((batch,), 78.0)
    rss_before = _peak_rss_mib()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            pred = net(normalize_clip(clips, "standardize"))
        loss = loss_fn(pred.float(), ppg, fps=30.0, hr_bpm=hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    return {
        "model": model,
        "precision": precision,
        "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
        "s_per_step": elapsed / steps,
        "clips_per_s": batch * steps / elapsed,
        "peak_rss_mib": _peak_rss_mib(),
        "rss_before_mib": rss_before,
    }


def bench_train(args) -> list[dict]:
    rows = []
    for model in args.models:
        for precision in ("fp32", "bf16"):
            cmd = [sys.executable, __file__, "--worker", json.dumps([model, precision, args.steps, args.warmup,
                                                                    args.batch, args.shape])]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  {model} {precision}: {rows[-1]['clips_per_s']:.2f} clips/s", file=sys.stderr)
    return rows


def bench_infer(args) -> list[dict]:
    import torch

    from facepulse.config import load_config
    from facepulse.models.inference import export_onnx
    from facepulse.pipeline import predict
    from facepulse.synth import SynthParams
    from facepulse.synth.params import CameraParams
    from facepulse.synth.writer import write_dataset
    from facepulse.train.data import ArrayClips, ClipDataModule
    from facepulse.train.runner import run_experiment

    import numpy as np

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="facepulse-bench-") as tmp:
        root = Path(tmp)
        if args.video is not None:
            video = args.video.resolve()
        else:
            base = SynthParams(duration_s=args.video_s, camera=CameraParams(width=640, height=480))
            write_dataset(root / "synth", n_videos=1, scenario="still", seed=0, base=base, progress=False)
            video = next((root / "synth").glob("videos/*/video.mkv"))
        os.chdir(root)
        window_s = 10.0 if args.video is not None else min(10.0, args.video_s - 1)
        # the classic path on the same video: the face stage's share of the time
        predict(video, method="pos", window_s=window_s)
        start = time.perf_counter()
        result = predict(video, method="pos", window_s=window_s)
        elapsed = time.perf_counter() - start
        video_s = result.duration_s + 1.0 / result.fps
        rows.append({"model": "(POS, no model)", "backend": "-", "video_s": video_s,
                     "elapsed_s": elapsed, "rtf": elapsed / video_s, "frames": result.n_frames})
        for model in args.models:
            t, s = 128, 64
            cfg = load_config(None, [f"name={model}", "out_dir=runs", f"model.name={MODELS[model]['name']}",
                                     f"model.params={json.dumps(MODELS[model]['params'])}", f"data.clip_len={t}",
                                     f"data.size={s}", "optim.batch_size=2", "optim.max_epochs=1",
                                     "trainer.early_stopping_patience=null"])
            rng = np.random.default_rng(0)
            clips = ArrayClips(rng.integers(0, 255, (4, t, s, s, 3), dtype=np.uint8),
                               np.sin(np.arange(t) / 30 * 8.0)[None].repeat(4, 0), np.full(4, 76.0), 30.0)
            ckpt = run_experiment(cfg, resume=False, datamodule=ClipDataModule(cfg, clips, clips), progress=False).last_ckpt
            onnx_path = export_onnx(ckpt, root / f"{model}.onnx")
            for backend, path in (("pytorch", ckpt), ("onnxruntime", onnx_path)):
                predict(video, model=path, window_s=window_s)  # warm-up (model load, detector)
                start = time.perf_counter()
                result = predict(video, model=path, window_s=window_s)
                elapsed = time.perf_counter() - start
                rows.append({"model": model, "backend": backend, "video_s": video_s,
                             "elapsed_s": elapsed, "rtf": elapsed / video_s, "frames": result.n_frames})
                print(f"  {model} {backend}: RTF {rows[-1]['rtf']:.3f}", file=sys.stderr)
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} logical CPUs, load average {load:.1f} at the start"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["train", "infer"], default=None)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per configuration")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--shape", type=int, nargs=3, default=[128, 64, 64], metavar=("T", "H", "W"))
    p.add_argument("--video", type=Path, default=None,
                   help="inference video (default: a synthetic 640x480 one of --video-s seconds)")
    p.add_argument("--video-s", type=float, default=20.0, help="length of the synthetic inference video")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        import torch

        model, precision, steps, warmup, batch, shape = json.loads(args.worker)
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        print(json.dumps(train_worker(model, precision, steps, warmup, batch, tuple(shape))))
        return
    print(f"machine: {machine()}; torch threads {args.threads}\n")
    if args.only in (None, "train"):
        rows = bench_train(args)
        print(f"training, input ({args.batch}, 3, {args.shape[0]}, {args.shape[1]}, {args.shape[2]}), "
              f"hybrid loss, AdamW, {args.steps} timed steps\n")
        print("| model | precision | params (M) | s/step | clips/s | peak RSS (MiB) |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['model']} | {r['precision']} | {r['params_m']:.2f} | {r['s_per_step']:.2f} | "
                  f"{r['clips_per_s']:.2f} | {r['peak_rss_mib']:.0f} |")
        print()
    if args.only in (None, "infer"):
        rows = bench_infer(args)
        what = args.video if args.video is not None else f"a synthetic 640x480 video of {args.video_s:g} s"
        print(f"inference end to end (facepulse.predict --model): {what}\n")
        print("| model | backend | frames | elapsed (s) | real-time factor |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['model']} | {r['backend']} | {r['frames']} | {r['elapsed_s']:.1f} | {r['rtf']:.3f} |")


if __name__ == "__main__":
    main()
