"""Frequency contrast (Gideon & Stent, ICCV 2021): loss speed, and what unlabelled training buys.

    python benchmarks/bench_contrastive.py                    # everything (about 10-20 min)
    python benchmarks/bench_contrastive.py --only loss
    python benchmarks/bench_contrastive.py --only synthetic --steps 200 --seeds 0 1
    python benchmarks/bench_contrastive.py --only synthetic --pulses realistic --steps 800 --ablations-realistic \
        --variants contrast supervised memory_bank
    python benchmarks/bench_contrastive.py --only ubfc --ubfc-steps 400

Parts (Markdown tables on stdout, everything also in ``--out`` JSON):

* ``loss``: time of the multi-view triplet loss (forward + backward) at batch 32, 4 views
  of 64 samples, vectorised (facepulse.contrastive) against a per-sample, per-view-pair
  Python loop over the shared loss functions (how the reference implementation loops),
  for each distance, and the largest difference between the two values.
* ``synthetic``: held-out synthetic videos (still heads; face box cut out and shrunk to
  8 x 8 px); every model gets the same budget (optimiser steps x batch) on the same
  training videos: frequency contrast without labels, the same backbone supervised with
  labels (negative Pearson), and POS (no training) on the same crops. Then contrast with
  a memory bank and with the saliency sampler. Two pulse strengths: the generator's
  realistic draw (0.25-0.6 % of the green level) and a strong clean pulse (2 %).
  MAE of the clip HR (128 frames) and of the whole-video HR (overlap-added pulse).
* ``ubfc``: frequency contrast on the six unlabelled ubfc_rppg_dev videos (labels never
  read; checkpoint picked by the validation irrelevant power ratio, on the same videos,
  as the paper does with ``val_on_train``), then evaluated on their PPG labels with
  ``facepulse.eval`` next to POS on the same videos and cache. Trained and evaluated on
  the same videos (transductive, unlabelled): say so when quoting.

Runs on the CPU with 2 threads. Say whether other work shared the CPU when quoting.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FPS = 30.0


# ------------------------------------------------------------------------------ loss
def loop_triplet(name: str, a, p, n, fps: float):
    """Per-sample, per-view-pair triplet loss with Python loops (the reference's way): the
    tests' oracle, tests/_triplet_reference.py, averaged over the batch."""
    sys.path.insert(0, str(REPO / "tests"))
    from _triplet_reference import loop_triplet as per_sample

    return per_sample(name, a, p, n, fps).mean()


def bench_loss(args) -> list[dict]:
    import torch

    from facepulse.contrastive import MultiViewTripletLoss

    g = torch.Generator().manual_seed(0)
    shape = (32, 4, 64)
    rows = []
    for name in ("psd_mse", "l1", "mcc"):
        loss_fn = MultiViewTripletLoss(name)
        timings = {}
        values = {}
        for impl in ("vectorised", "loop"):
            best = float("inf")
            for _ in range(args.repeats):
                a, p, n = (torch.randn(*shape, generator=g).requires_grad_(True) for _ in range(3))
                start = time.perf_counter()
                value = loss_fn(a, p, n, FPS) if impl == "vectorised" else loop_triplet(name, a, p, n, FPS)
                value.backward()
                best = min(best, time.perf_counter() - start)
            timings[impl] = best
            with torch.no_grad():
                same = torch.Generator().manual_seed(1)  # the same three batches for both implementations
                a, p, n = (torch.randn(*shape, generator=same, dtype=torch.float64) for _ in range(3))
                values[impl] = float(loss_fn(a, p, n, FPS) if impl == "vectorised" else loop_triplet(name, a, p, n, FPS))
        rows.append({
            "distance": name,
            "vectorised_ms": 1e3 * timings["vectorised"],
            "loop_ms": 1e3 * timings["loop"],
            "speedup": timings["loop"] / timings["vectorised"],
            "abs_diff": abs(values["vectorised"] - values["loop"]),
        })
        print(f"  loss {name}: {rows[-1]['vectorised_ms']:.2f} ms vs {rows[-1]['loop_ms']:.1f} ms", file=sys.stderr)
    return rows


# ------------------------------------------------------------------------- synthetic
def render_face_videos(seeds, duration_s: float, amplitude: float | None, size: int = 8):
    """(frames (N, T, size, size, 3) uint8 face crops, hr_bpm (N, T), ppg (N, T)) of still
    synthetic videos rendered at 64 x 64, the (static) face box cut out and shrunk."""
    import cv2

    from facepulse.synth import SynthParams, generate_video, sample_params
    from facepulse.synth.params import CameraParams

    base = SynthParams(duration_s=duration_s, camera=CameraParams(width=64, height=64, fps=FPS))
    overrides = None if amplitude is None else {"optics.pulse_amplitude": amplitude}
    frames, hrs, ppgs = [], [], []
    for seed in seeds:
        v = generate_video(sample_params("still", seed=seed, base=base, overrides=overrides), seed)
        x0, y0, x1, y1 = np.round(v.truth.face_boxes_xyxy.mean(axis=0)).astype(int).clip(0, 64)
        frames.append(np.stack([cv2.resize(f[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA) for f in v.frames]))
        hrs.append(v.hr_bpm)
        ppgs.append(v.ppg)
    return np.stack(frames), np.stack(hrs), np.stack(ppgs)


def cut_clips(frames, hrs, ppgs, clip_len: int, stride: int, labels: bool):
    from facepulse.train.data import ArrayClips

    clips, ppg, hr, ids = [], [], [], []
    for v in range(frames.shape[0]):
        for s in range(0, frames.shape[1] - clip_len + 1, stride):
            clips.append(frames[v, s : s + clip_len])
            ppg.append(ppgs[v, s : s + clip_len] if labels else np.zeros(clip_len))
            hr.append(hrs[v, s : s + clip_len].mean() if labels else np.nan)
            ids.append(f"v{v}")
    return ArrayClips(np.stack(clips), np.stack(ppg), np.array(hr), FPS, ids)


def pos_hr(rgb: np.ndarray) -> float:
    from facepulse.methods import METHODS
    from facepulse.signal.hr import estimate_hr_bpm

    return estimate_hr_bpm(METHODS.get("pos")(rgb.astype(np.float64), FPS), FPS, band_bpm=(40.0, 180.0))


def score(predict_clip, predict_video, frames, hrs, clip_len: int) -> dict:
    """Clip-level (128 frames, stride 64) and whole-video MAE in bpm of two predictors."""
    from facepulse.signal.hr import estimate_hr_bpm

    clip_err, video_err = [], []
    for v in range(frames.shape[0]):
        for s in range(0, frames.shape[1] - clip_len + 1, clip_len // 2):
            clip_err.append(abs(predict_clip(frames[v, s : s + clip_len]) - hrs[v, s : s + clip_len].mean()))
        pulse = predict_video(frames[v])
        video_hr = pulse if np.isscalar(pulse) else estimate_hr_bpm(pulse, FPS, band_bpm=(40.0, 180.0))
        video_err.append(abs(video_hr - hrs[v].mean()))
    return {"clip_mae_bpm": float(np.mean(clip_err)), "video_mae_bpm": float(np.mean(video_err))}


def model_predictors(ckpt):
    from facepulse.models.inference import load_model, video_pulse
    from facepulse.signal.hr import estimate_hr_bpm

    runner = load_model(ckpt)

    def clip_hr(clip):
        pulse = runner(clip.transpose(3, 0, 1, 2)[None].astype(np.float32))[0]
        return estimate_hr_bpm(pulse.astype(np.float64), FPS, band_bpm=(40.0, 180.0))

    return clip_hr, lambda video: video_pulse(runner, video)


def train(config, train_set, val_set) -> tuple[Path, float]:
    from facepulse.train.data import ClipDataModule
    from facepulse.train.runner import run_experiment

    start = time.perf_counter()
    result = run_experiment(config, resume=False, datamodule=ClipDataModule(config, train_set, val_set), progress=False)
    return result.best_ckpt, time.perf_counter() - start


def bench_synthetic(args) -> list[dict]:
    from facepulse.config import load_config

    clip_len = 128
    base = [
        "out_dir=runs", f"optim.max_steps={args.steps}", "optim.max_epochs=1000", "trainer.early_stopping_patience=null",
        "data.size=8", f"data.clip_len={clip_len}",
    ]
    rows = []
    pulses = {"realistic": ("realistic (0.25-0.6 %)", None), "strong": ("strong (2 %)", 0.02)}
    for amp_name, amplitude in (pulses[p] for p in args.pulses):
        frames, hrs, ppgs = render_face_videos(range(args.n_train), args.duration_s, amplitude)
        vframes, vhrs, vppgs = render_face_videos(range(500, 500 + args.n_val), args.duration_s, amplitude)
        tframes, thrs, _ = render_face_videos(range(1000, 1000 + args.n_test), args.duration_s, amplitude)
        unlabelled = cut_clips(frames, hrs, ppgs, clip_len, 32, labels=False)
        labelled = cut_clips(frames, hrs, ppgs, clip_len, 32, labels=True)
        val_unlabelled = cut_clips(vframes, vhrs, vppgs, clip_len, 64, labels=False)
        val_labelled = cut_clips(vframes, vhrs, vppgs, clip_len, 64, labels=True)
        pos = score(lambda c: pos_hr(c.mean(axis=(1, 2))), lambda v: pos_hr(v.mean(axis=(1, 2))), tframes, thrs, clip_len)
        rows.append({"pulse": amp_name, "model": "POS (no training)", "seed": None, "train_s": 0.0, **pos})
        print(f"  {amp_name} POS: {pos}", file=sys.stderr)
        variants = {
            "contrast": ("frequency contrast, no labels", "contrastive", []),
            "supervised": ("supervised (neg. Pearson), labels", "supervised", ["loss.name=neg_pearson"]),
            "memory_bank": ("contrast + memory bank (4096)", "contrastive", ["contrastive.memory_bank=4096"]),
            "saliency": ("contrast + saliency sampler", "contrastive",
                         ["contrastive.saliency=true", "contrastive.saliency_params={grid_size: 8, input_size: 8}",
                          "contrastive.saliency_sparsity=0.01", "contrastive.saliency_temporal=0.01"]),
        }
        ablations = amplitude is not None or args.ablations_realistic
        variants = [variants[v] for v in args.variants if ablations or v in ("contrast", "supervised")]
        for label, kind, extra in variants:
            for seed in args.seeds:
                name = f"bench_{len(rows)}"
                cfg = load_config(REPO / "configs" / "contrastive_synthetic.yaml",
                                  base + [f"name={name}", f"kind={kind}", f"seed={seed}"] + extra)
                if kind == "supervised":
                    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"labels": True})})
                    ckpt, train_s = train(cfg, labelled, val_labelled)
                else:
                    ckpt, train_s = train(cfg, unlabelled, val_unlabelled)
                clip_hr, video_pulse_fn = model_predictors(ckpt)
                result = score(clip_hr, video_pulse_fn, tframes, thrs, clip_len)
                rows.append({"pulse": amp_name, "model": label, "seed": seed, "train_s": train_s, **result})
                print(f"  {amp_name} {label} seed {seed}: {result} ({train_s:.0f} s)", file=sys.stderr)
    return rows


# ------------------------------------------------------------------------------ ubfc
def bench_ubfc(args) -> list[dict]:
    import facepulse.models.inference  # noqa: F401  (registers the "model" estimator)
    from facepulse.config import load_config, resolve_data_root
    from facepulse.datasets import get_reader
    from facepulse.datasets.cache import PreprocessConfig
    from facepulse.datasets.clips import ClipDataset
    from facepulse.eval.evaluate import MethodEstimator, evaluate_dataset, make_estimator

    cfg = load_config(REPO / "configs" / "contrastive_ubfc.yaml", [
        "out_dir=runs", "name=bench_contrastive_ubfc", f"optim.max_steps={args.ubfc_steps}", "optim.max_epochs=1000",
        f"data.cache_dir={args.cache_dir}", "trainer.early_stopping_patience=null",
    ])
    reader = get_reader(cfg.data.dataset, resolve_data_root(cfg.data.root))
    records = reader.records()
    start = time.perf_counter()
    train_set = ClipDataset.from_config(cfg.data, records)  # labels=False: the PPG is not even loaded
    val_set = ClipDataset.from_config(cfg.data.model_copy(update={"clip_stride": 128}), records)
    prep_s = time.perf_counter() - start
    ckpt, train_s = train(cfg, train_set, val_set)
    rows = []
    for label, estimator in (("POS", MethodEstimator("pos")),
                             ("frequency contrast (no labels)", make_estimator("model", str(ckpt)))):
        report = evaluate_dataset(reader, estimator, cache_dir=args.cache_dir,
                                  config=PreprocessConfig.create(size=cfg.data.size), records=records)
        whole, windowed = report.whole_video or {}, report.windowed or {}
        rows.append({
            "method": label,
            "videos": len(report.videos),
            "failed": len(report.failed),
            "whole_video_mae_bpm": whole.get("mae"),
            "windowed_mae_bpm": windowed.get("mae"),
            "windowed_rmse_bpm": windowed.get("rmse"),
            "windowed_r": windowed.get("pearson_r"),
            "per_video": {v.video_id: [round(v.hr_pred_bpm, 1), round(v.hr_ref_bpm, 1)] for v in report.videos},
            "train_s": train_s if "contrast" in label else 0.0,
            "preprocess_s": prep_s,
        })
        print(f"  ubfc {label}: whole {whole.get('mae')}, windowed {windowed.get('mae')}, failed {report.failed}",
              file=sys.stderr)
    return rows


# ---------------------------------------------------------------------------- report
def _fmt(x, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(results: dict) -> str:
    out = []
    if "loss" in results:
        out += ["| distance | vectorised (ms) | per-sample loop (ms) | speedup | abs. difference |", "|---|---|---|---|---|"]
        out += [f"| {r['distance']} | {r['vectorised_ms']:.2f} | {r['loop_ms']:.1f} | {r['speedup']:.0f}x | {r['abs_diff']:.1e} |"
                for r in results["loss"]]
        out.append("")
    if "synthetic" in results:
        out += ["| pulse | model | seed | train (s) | clip MAE (bpm) | video MAE (bpm) |", "|---|---|---|---|---|---|"]
        out += [f"| {r['pulse']} | {r['model']} | {'-' if r['seed'] is None else r['seed']} | {r['train_s']:.0f} | "
                f"{r['clip_mae_bpm']:.1f} | {r['video_mae_bpm']:.1f} |" for r in results["synthetic"]]
        out.append("")
    if "ubfc" in results:
        out += ["| method | videos | whole-video MAE (bpm) | windowed MAE (bpm) | windowed RMSE | windowed r | train (s) |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| {r['method']} | {r['videos']} | {_fmt(r['whole_video_mae_bpm'])} | {_fmt(r['windowed_mae_bpm'])} | "
                f"{_fmt(r['windowed_rmse_bpm'])} | {_fmt(r['windowed_r'], 2)} | {r['train_s']:.0f} |" for r in results["ubfc"]]
        out += ["", "per video (pred, ref bpm): " + json.dumps({r["method"]: r["per_video"] for r in results["ubfc"]})]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=["loss", "synthetic", "ubfc"], default=["loss", "synthetic", "ubfc"])
    parser.add_argument("--repeats", type=int, default=5, help="loss timing: best of N")
    parser.add_argument("--steps", type=int, default=200, help="synthetic: optimiser steps per model (batch 16)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--n-train", type=int, default=16)
    parser.add_argument("--n-val", type=int, default=2)
    parser.add_argument("--n-test", type=int, default=8)
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--pulses", nargs="+", choices=["realistic", "strong"], default=["realistic", "strong"])
    parser.add_argument("--ablations-realistic", action="store_true", help="also run the ablations on realistic pulses")
    parser.add_argument("--variants", nargs="+", choices=["contrast", "supervised", "memory_bank", "saliency"],
                        default=["contrast", "supervised", "memory_bank", "saliency"])
    parser.add_argument("--ubfc-steps", type=int, default=400)
    parser.add_argument("--cache-dir", default=".cache/facepulse")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="JSON file for all figures")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    results: dict = {"load_avg_start": os.getloadavg()}
    out_path = Path(args.out).resolve() if args.out else None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="facepulse-bench-contrastive-") as tmp:
        cache = Path(args.cache_dir).resolve()
        os.chdir(tmp)  # runs/ of the training runs go to the temporary folder
        args.cache_dir = os.path.relpath(cache, tmp)  # configs take relative paths only
        for part in args.only:
            start = time.perf_counter()
            results[part] = {"loss": bench_loss, "synthetic": bench_synthetic, "ubfc": bench_ubfc}[part](args)
            results[f"{part}_s"] = time.perf_counter() - start
    results["total_s"] = time.perf_counter() - t0
    results["load_avg_end"] = os.getloadavg()
    print(markdown(results))
    print(f"\ntotal {results['total_s']:.0f} s; load average {results['load_avg_start']} -> {results['load_avg_end']}")
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
