"""AutoHR architecture search: cost, derived network, and a small accuracy comparison.

    python benchmarks/bench_nas.py                         # about 10-15 min on 2 CPU cores
    python benchmarks/bench_nas.py --search-epochs 2 --warmup-epochs 1 --train-epochs 4   # quicker look

Everything runs on the CPU with 2 threads, on fixed in-memory synthetic videos
(``facepulse.synth``, scenario ``still``; train / val / test are disjoint videos, each
its own person). It reports:

1. search cost: seconds per search epoch and peak resident memory of the search
   process (the default 13-op space; first-order DARTS; partial channels), measured in a
   child process that holds only the clips and the search;
2. the derived genotype, its size (parameters) and forward speed next to PhysNet, at
   the training width of this benchmark and at the papers' widths;
3. the searched network vs PhysNet vs the same AutoHR cell with plain convolutions
   instead of TDC, each trained with the same small budget (epochs, batch, optimiser,
   hybrid loss), scored on the test clips: MAE / RMSE (bpm, +- SE) of the spectral-peak
   HR of each clip.

The budget is tiny (minutes of CPU), so absolute errors are far from what the models
reach with real training; the numbers show that the pipeline runs end to end and what
it costs, not which architecture is best.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

THREADS = 2


def _rss_mib() -> float:
    """Current resident set size of this process (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _config(args: argparse.Namespace, out_dir: str):
    from facepulse.config import load_config

    return load_config(
        None,
        [
            "name=bench_nas_search", "kind=search", "seed=0", f"out_dir={out_dir}",
            f"data.clip_len={args.clip_len}", f"data.clip_stride={args.clip_len}", "data.fps=30", f"data.size={args.size}",
            "optim.optimizer=adam", "optim.lr=1e-3", f"optim.batch_size={args.batch_size}",
            f"optim.max_epochs={args.search_epochs}", "optim.gradient_clip=5.0",
            f"search.channels={args.channels}", "search.n_blocks=4", "search.n_intermediate=3",
            f"search.partial_channels={args.partial}", f"search.warmup_epochs={args.warmup_epochs}", "search.alpha_lr=3e-3",
            f"search.synth={{scenario: still, n_train: {args.n_train}, n_val: {args.n_val}, n_test: {args.n_test}, "
            f"duration_s: {args.duration_s}, seed: 100}}",
            "trainer.early_stopping_patience=null", "trainer.log_every_n_steps=1",
        ],
    )


def _save_split(ds, path: Path) -> None:
    import numpy as np

    np.savez(path, clips=ds.clips, ppg=ds.ppg.numpy(), hr=ds.hr_bpm, video=np.array(ds.video_ids), fps=ds.fps)


def _load_split(path: Path):
    import numpy as np

    from facepulse.train.data import ArrayClips

    z = np.load(path)
    return ArrayClips(z["clips"], z["ppg"], z["hr"], float(z["fps"]), video_ids=[str(v) for v in z["video"]])


# ------------------------------------------------------------------ search (child)
def _search_child(config_json: str, data_dir: str, out_json: str) -> None:
    """Runs in its own process so that its peak memory is the search's."""
    import lightning as L
    import torch

    torch.set_num_threads(THREADS)
    from facepulse.config import ExperimentConfig
    from facepulse.nas.search import run_search
    from facepulse.train.data import ClipDataModule

    config = ExperimentConfig.model_validate_json(Path(config_json).read_text())
    train, val = _load_split(Path(data_dir) / "train.npz"), _load_split(Path(data_dir) / "val.npz")
    rss_before = _rss_mib()

    class EpochTimer(L.Callback):
        """Wall and CPU seconds (all threads of the process) of each training epoch."""

        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.cpu_seconds: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._t0, self._c0 = time.perf_counter(), time.process_time()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.seconds.append(time.perf_counter() - self._t0)
            self.cpu_seconds.append(time.process_time() - self._c0)

    timer = EpochTimer()
    t0 = time.perf_counter()
    result = run_search(
        config, progress=False, resume=False,
        datamodule=ClipDataModule(config, train=train, val=val), callbacks=[timer],
    )
    total = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    Path(out_json).write_text(json.dumps({
        "epoch_s": timer.seconds, "epoch_cpu_s": timer.cpu_seconds, "total_s": total, "rss_before_mib": rss_before, "peak_rss_mib": peak,
        "genotype": str(result.genotype_path), "train_clips": len(train), "val_clips": len(val),
    }))


# -------------------------------------------------------------------- comparison
def _forward_ms(model, shape: tuple[int, ...], repeats: int = 3) -> float:
    import torch

    model.eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return 1000 * sorted(times)[len(times) // 2]


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _evaluate(model, dataset, normalize: str) -> tuple:
    import numpy as np
    import torch

    from facepulse.eval.metrics import mae, rmse
    from facepulse.models.normalize import normalize_clip
    from facepulse.train.module import VAL_BAND_BPM, clip_hr_bpm

    model.eval()
    items = [dataset[i] for i in range(len(dataset))]
    clips = torch.stack([it["clip"] for it in items])
    ref = np.array([it["hr_bpm"] for it in items])
    with torch.no_grad():
        pred = model(normalize_clip(clips, normalize))
    hr = clip_hr_bpm(pred, items[0]["fps"], *VAL_BAND_BPM).numpy()
    return mae(hr, ref), rmse(hr, ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search-epochs", type=int, default=4)
    parser.add_argument("--warmup-epochs", type=int, default=2, help="weights-only epochs before alphas move")
    parser.add_argument("--train-epochs", type=int, default=8)
    parser.add_argument("--channels", type=int, default=16, help="search and AutoHR width")
    parser.add_argument("--partial", type=int, default=4, help="PC-DARTS k")
    parser.add_argument("--clip-len", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--n-train", type=int, default=6)
    parser.add_argument("--n-val", type=int, default=2)
    parser.add_argument("--n-test", type=int, default=3)
    parser.add_argument("--duration-s", type=float, default=8.0)
    parser.add_argument("--out", default=None, help="keep the runs in this relative folder (default: temporary)")
    parser.add_argument("--search-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.search_child:
        _search_child(*args.search_child)
        return

    import torch

    torch.set_num_threads(THREADS)
    tmp = tempfile.TemporaryDirectory()
    script = str(Path(__file__).resolve())
    if args.out is None:
        os.chdir(tmp.name)  # configs take relative paths only
    out_dir = args.out or "runs"
    load = os.getloadavg()
    print(f"CPU: {THREADS} torch threads; load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          f"(1/5/15 min, {os.cpu_count()} cores visible)")

    # ---------------------------------------------------------------- data
    from facepulse.nas.search import synthetic_splits

    config = _config(args, out_dir)
    t0 = time.perf_counter()
    splits = synthetic_splits(config.search.synth, config.data)
    data_dir = Path(tmp.name) / "data"
    data_dir.mkdir()
    for name, ds in splits.items():
        _save_split(ds, data_dir / f"{name}.npz")
    print(f"data: {', '.join(f'{k} {len(v)} clips' for k, v in splits.items())} of {args.clip_len} frames "
          f"{args.size}x{args.size} px ({time.perf_counter() - t0:.0f} s to render)")

    # -------------------------------------------------------------- search
    config_json = Path(tmp.name) / "search.json"
    config_json.write_text(config.model_dump_json())
    result_json = Path(tmp.name) / "search_result.json"
    subprocess.run(
        [sys.executable, script, "--search-child", str(config_json), str(data_dir), str(result_json)], check=True
    )
    res = json.loads(result_json.read_text())
    epochs = res["epoch_s"]
    print(f"\nsearch: default space (13 ops), {config.search.n_blocks} blocks x {config.search.n_intermediate} nodes, "
          f"C={args.channels}, partial channels 1/{args.partial}, first order, batch {args.batch_size}, "
          f"{res['train_clips']} train / {res['val_clips']} val clips")
    print(f"  epoch wall s (CPU s): {', '.join(f'{w:.0f} ({c:.0f})' for w, c in zip(epochs, res['epoch_cpu_s']))} "
          f"(the first {args.warmup_epochs} are weights-only warm-up; CPU s counts both threads)")
    print(f"  total {res['total_s']:.0f} s; peak RSS {res['peak_rss_mib']:.0f} MiB "
          f"(process before the search: {res['rss_before_mib']:.0f} MiB)")

    from facepulse.models import AutoHR, Genotype, PhysNet, is_tdc

    geno = Genotype.load(res["genotype"])
    cell = sorted(geno.cells[0], key=lambda e: (e.dst, e.src))
    print("  genotype: " + "; ".join(f"{e.src}->{e.dst} {e.op}" for e in cell))

    # --------------------------------------------------- size and speed
    print("\nsize and forward speed (eval, batch 1, median of 3):")
    print(f"  {'model':<34} {'params':>9} {'ms 64x32x32':>12} {'ms 128x64x64':>13}")
    rows = [
        (f"searched AutoHR C={args.channels}", AutoHR(geno, channels=args.channels)),
        (f"PhysNet base {args.channels // 4} (C={args.channels})", PhysNet(base_channels=args.channels // 4)),
        ("searched AutoHR C=64 (paper width)", AutoHR(geno, channels=64)),
        ("PhysNet base 16 (paper width)", PhysNet(base_channels=16)),
    ]
    for name, model in rows:
        small = _forward_ms(model, (1, 3, 64, 32, 32))
        large = _forward_ms(model, (1, 3, 128, 64, 64))
        print(f"  {name:<34} {_n_params(model):>9,d} {small:>12.0f} {large:>13.0f}")

    # -------------------------------------------------------- accuracy
    from facepulse.train.data import ClipDataModule
    from facepulse.train.runner import run_experiment

    geno_path = str(Path(res["genotype"]).resolve())
    candidates = [
        ("searched AutoHR (TDC)", "autohr", {"genotype": geno_path, "channels": args.channels}),
        ("same cell, plain conv", "autohr_conv", {"genotype": geno_path, "channels": args.channels}),
        ("PhysNet", "physnet", {"base_channels": args.channels // 4}),
    ]
    n_tdc = sum(is_tdc(e.op) for cell in geno.cells for e in cell)
    print(f"\naccuracy: {args.train_epochs} epochs each, AdamW lr 1e-3, batch {args.batch_size}, hybrid loss, "
          f"final weights; {len(splits['test'])} test clips (the searched cell has {n_tdc} TDC ops)")
    print(f"  {'model':<24} {'params':>8} {'wall s':>8} {'CPU s':>6} {'MAE bpm':>14} {'RMSE bpm':>14}")
    for name, model_name, params in candidates:
        cfg = config.model_validate({
            **config.model_dump(mode="json"),
            "name": f"bench_nas_{model_name}", "kind": "supervised",
            "model": {"name": model_name, "params": params, "normalize": "standardize"},
            "optim": {**config.optim.model_dump(mode="json"), "optimizer": "adamw", "max_epochs": args.train_epochs},
        })
        t0, c0 = time.perf_counter(), time.process_time()
        run = run_experiment(
            cfg, resume=False, progress=False,
            datamodule=ClipDataModule(cfg, train=splits["train"], val=splits["val"]),
        )
        train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        (m, m_se), (r, r_se) = _evaluate(run.module.model, splits["test"], "standardize")
        print(f"  {name:<24} {_n_params(run.module.model):>8,d} {train_s:>8.0f} {train_cpu_s:>6.0f} "
              f"{m:>7.1f} +- {m_se:<4.1f} {r:>7.1f} +- {r_se:<4.1f}")
    import numpy as np

    from facepulse.eval.metrics import mae, rmse

    train_mean = float(np.mean(splits["train"].hr_bpm))
    ref = np.asarray(splits["test"].hr_bpm, dtype=np.float64)
    (m, m_se), (r, r_se) = mae(np.full_like(ref, train_mean), ref), rmse(np.full_like(ref, train_mean), ref)
    print(f"  {'constant (train mean HR)':<24} {0:>8,d} {0:>8.0f} {0:>6.0f} {m:>7.1f} +- {m_se:<4.1f} {r:>7.1f} +- {r_se:<4.1f}")
    load = os.getloadavg()
    print(f"\nload average at end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
