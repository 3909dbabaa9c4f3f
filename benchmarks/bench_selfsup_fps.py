"""Self-supervised learning success against the input frame rate (issue 14, item 5).

The seed's review argues that the frequency-contrast proxy task breaks at low frame rates:
a clip sped up by r carries its pulse at f * r, which at 8 or 4 fps soon passes the
Nyquist frequency, so positives and negatives stop differing from the anchor as they
should. This script measures it on synthetic video: for each frame rate, unlabelled
training videos (facepulse.synth, ``still``, face crops shrunk to 8 x 8 px) rendered at
that rate, a model trained without labels by each objective for the same number of steps,
then six test videos at a constant 60, 78, ..., 150 bpm: the HR of each whole video
(overlap-added clips, spectral peak) against the truth (Pearson r, MAE, videos within
10 bpm). The mean green of the same crops is reported as the signal that is there to find.

The backbone is configs/selfsup_synthetic.yaml's (a frame-local TSNet) unless ``--model
physnet_interp``. Clips last the same time at every rate (``--clip-s``), so a 4 fps clip has few frames.
Bands stop below the Nyquist frequency (0.95 x fps / 2) at low rates. Everything runs in
one process with a hand loop over ``ContrastiveModule.step_losses`` (what
``training_step`` computes).

    nice -n 15 python benchmarks/bench_selfsup_fps.py --steps 150 --out out/bench_selfsup_fps
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

TEST_HR = (60.0, 78.0, 96.0, 114.0, 132.0, 150.0)


def face_frames(video, size: int) -> np.ndarray:
    """(N, size, size, 3) crops of the video's mean face box."""
    import cv2

    x0, y0, x1, y1 = np.round(video.truth.face_boxes_xyxy.mean(axis=0)).astype(int).clip(0, video.frames.shape[1])
    return np.stack([cv2.resize(f[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA) for f in video.frames])


def render(seeds, fps: float, render_px: int, duration_s: float, amp: float | None, hr: float | None = None):
    from facepulse.synth import SynthParams, generate_video, sample_params
    from facepulse.synth.params import CameraParams

    base = SynthParams(
        duration_s=duration_s,
        camera=CameraParams(width=render_px, height=render_px, fps=fps, exposure_s=min(0.01, 1 / fps)),
    )
    over: dict = {}
    if amp is not None:
        over["optics.pulse_amplitude"] = amp
    if hr is not None:
        over.update({"physiology.hr_bpm": hr, "physiology.hr_trajectory": "constant"})
    return [generate_video(sample_params("still", seed=s, base=base, overrides=over or None), seed=s) for s in seeds]


def video_hr(pulse: np.ndarray, fps: float, lo: float, hi: float) -> float:
    """HR (bpm) at the in-band peak of a whole video's pulse (Hann, 8x zero padding)."""
    x = (pulse - pulse.mean()) * np.hanning(len(pulse))
    n_fft = 8 * len(x)
    spec = np.abs(np.fft.rfft(x, n_fft)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1 / fps) * 60
    spec[(freqs < lo) | (freqs > hi)] = 0
    return float(freqs[spec.argmax()])


def score(pred: list[float]) -> dict:
    pred_a, true = np.asarray(pred), np.asarray(TEST_HR)
    r = float(np.corrcoef(pred_a, true)[0, 1]) if pred_a.std() > 0 else float("nan")
    return {"pred_bpm": [round(p, 1) for p in pred], "r": r, "mae_bpm": float(np.abs(pred_a - true).mean()),
            "within_10": int((np.abs(pred_a - true) <= 10).sum())}


def run_one(objective: str, fps: float, args, train_clips: torch.Tensor, tests: list[np.ndarray]) -> dict:
    from facepulse.config import load_config
    from facepulse.contrastive.module import ContrastiveModule, step_generator
    from facepulse.contrastive.resample import max_view_len
    from facepulse.models.inference import ModelInfo, PulseModel, video_pulse

    clip = train_clips.shape[2]
    hi = min(180.0, 0.95 * fps / 2 * 60)
    common = [
        "kind=contrastive", f"data.clip_len={clip}", f"data.size={args.size}", f"data.fps={fps}",
        f"optim.lr={args.lr}", f"contrastive.objective={objective}", f"seed={args.seed}",
    ]
    if args.model == "physnet_interp":  # the backbone of the paper (and of this script before issue 14's fix)
        common += ["model.name=physnet_interp", f"model.params={{base_channels: {args.base_channels}}}"]
    if objective == "spectral_prior":
        view = int(np.floor((clip - 1) / 1.4 + 1e-9)) + 1
        extra = [f"contrastive.view_len={view}", f"contrastive.prior_params={{max_bpm: {hi}}}"]
    else:
        view = max_view_len(clip, 1.5)
        extra = [f"contrastive.view_len={view}", "contrastive.n_views=16", "contrastive.ipr_weight=0.01",
                 f"contrastive.band_bpm=[40.0, {min(250.0, 0.95 * fps / 2 * 60)}]"]
    # the model of configs/selfsup_synthetic.yaml (frame-local TSNet) unless --model physnet_interp
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "selfsup_synthetic.yaml",
                         common + extra + list(args.override))
    module = ContrastiveModule(config)
    opt = torch.optim.AdamW(module.model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for step in range(args.steps):
        idx = torch.randint(0, train_clips.shape[0], (args.batch_size,), generator=gen)
        out = module.step_losses({"clip": train_clips[idx], "fps": fps}, generator=step_generator(args.seed, 0, step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    train_s = time.perf_counter() - t0
    norm = config.model.normalize
    runner = PulseModel(module.model.eval(), norm).eval()
    info = ModelInfo(config.model.name, "contrastive", clip, args.size, fps, norm, "diff" if norm == "diff" else "pulse")
    with torch.no_grad():
        preds = [video_hr(video_pulse(lambda c: runner(torch.from_numpy(c)).numpy(), f, info=info), fps, 40, hi)
                 for f in tests]
    return {"objective": objective, "model": config.model.name, "fps": fps, "clip_frames": clip, "view_len": view, "steps": args.steps,
            "train_s": round(train_s, 1), "final_loss": float(out["loss"].detach()), **score(preds)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fps", type=float, nargs="+", default=[30.0, 15.0, 8.0, 4.0])
    p.add_argument("--objectives", nargs="+", default=["spectral_prior", "frequency_contrast"])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--n-train", type=int, default=8)
    p.add_argument("--duration-s", type=float, default=12.0)
    p.add_argument("--clip-s", type=float, default=128 / 30)
    p.add_argument("--amp", type=float, default=None, help="pulse amplitude; default: the generator's 0.25-0.6 %%")
    p.add_argument("--render-px", type=int, default=64)
    p.add_argument("--size", type=int, default=8)
    p.add_argument("--model", choices=["config", "physnet_interp"], default="config",
                   help="config: configs/selfsup_synthetic.yaml's backbone; physnet_interp: the paper's")
    p.add_argument("--base-channels", type=int, default=4, help="physnet_interp only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--override", nargs="*", default=[], help="extra config overrides (contrastive.x=...)")
    p.add_argument("--out", type=Path, default=Path("out/bench_selfsup_fps"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for fps in args.fps:
        clip = int(round(args.clip_s * fps))
        stride = max(1, clip // 8)
        train = [face_frames(v, args.size) for v in render(range(args.n_train), fps, args.render_px, args.duration_s, args.amp)]
        clips = np.stack([f[s : s + clip] for f in train for s in range(0, len(f) - clip + 1, stride)])
        train_clips = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float()
        tests = [face_frames(render([500 + i], fps, args.render_px, args.duration_s, args.amp, hr)[0], args.size)
                 for i, hr in enumerate(TEST_HR)]
        hi = min(180.0, 0.95 * fps / 2 * 60)
        green = score([video_hr(-t[..., 1].mean(axis=(1, 2)).astype(float), fps, 40, hi) for t in tests])
        rows.append({"objective": "mean green (no training)", "fps": fps, "clip_frames": clip, **green})
        print(json.dumps(rows[-1]), flush=True)
        for objective in args.objectives:
            rows.append(run_one(objective, fps, args, train_clips, tests))
            print(json.dumps(rows[-1]), flush=True)
    (args.out / "results.json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows},
                                                      indent=1, default=str))
    lines = ["| fps | clip frames | objective | r | MAE (bpm) | within 10 bpm | predicted (bpm) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['fps']:g} | {r['clip_frames']} | {r['objective']} | {r['r']:.2f} | {r['mae_bpm']:.1f} | "
                     f"{r['within_10']}/6 | {' '.join(f'{x:.0f}' for x in r['pred_bpm'])} |")
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
