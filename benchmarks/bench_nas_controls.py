"""AutoHR search: controls and ablations, leave-one-subject-out on ubfc_rppg_dev (issue 13).

    # three nested searches (each leaves two subjects out), then the controls:
    for s in a b c; do facepulse search --config configs/search_ubfc.yaml name=search_ubfc_$s \
        data.split_file=configs/splits/search_ubfc_$s.yaml; done
    python benchmarks/bench_nas_controls.py --work out/bench_nas_controls --val none \
        --genotype searched=runs/search_ubfc_a/genotype.json@subject5,subject8 \
        --genotype searched=runs/search_ubfc_b/genotype.json@subject3,subject9 \
        --genotype searched=runs/search_ubfc_c/genotype.json@subject4,subject10 \
        --folds subject3 subject4 subject5 subject8 subject9 subject10
    python benchmarks/bench_nas_controls.py ... --ablations loss theta conv augment --seeds 0

Every arm is trained with the SAME budget (``--steps`` optimiser steps of batch
``--batch``, clips of ``--clip-len`` frames, ``--size`` px face crops; the data pipeline,
normalisation, loss and augmentations of ``--base-config``, default
configs/search_ubfc.yaml, i.e. those the search used) for every seed in ``--seeds`` and
every held-out subject in ``--folds`` (leave-one-subject-out: train on the other
subjects but ``--val``, which picks the checkpoint; ``--val none``: no selection, the
final weights, every other subject trains), then scored with
:func:`facepulse.eval.evaluate.evaluate_dataset` on the held-out subject and, as a
cross-dataset test, on the two vitallens clips: 10-s windows every 1 s (primary) and
whole-video HR MAE. Params, FLOPs (:func:`facepulse.nas.cost.count_flops`) and CPU
latency (fastest of 9 forward passes, 2 threads, batch 1) are per second of video at
the budget's clip size (the mean over an arm's cells where it has one per fold group).

Arms. Controls (always): every ``--genotype NAME=PATH`` (searched cells; ``PATH@S1,S2``
uses that cell only for held-out subjects S1, S2, the ones its search never read: give
one per search to cover every fold), ``--n-random`` cells drawn from the same op space
with the search's derivation rules (random alphas -> :func:`facepulse.nas.derive_genotype`),
PhysNet, and the hand-designed TDC cell (``DEFAULT_GENOTYPE`` of the ``autohr`` model).
Ablations (``--ablations``): ``loss`` (the searched cells with negative Pearson only /
frequency cross-entropy only / hybrid at each ``--lambdas``), ``theta`` (hand TDC cell
with every TDC at each ``--thetas``; 0 = plain convolution), ``conv`` (searched cells
with TDC replaced by plain convolutions), ``augment`` (searched cells with each
augmentation toggled against the base recipe: ``AUGMENTS``). The op-space ablation
(with / without TDC) and shared vs per-block alphas are searches of their own: pass
their genotypes with ``--genotype`` (``search.ops=[...]``, ``search.shared_alphas=false``).

A searched cell given without ``@`` is used on every fold: it must not have seen the
held-out subjects (configs/splits/search_ubfc_a.yaml leaves subjects 5 and 8 out).

Results are appended to ``WORK/results.jsonl`` (one line per trained run; a rerun skips
runs already there), the table goes to ``WORK/table.md``. Runs on the CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SUBJECTS = ["subject3", "subject4", "subject5", "subject8", "subject9", "subject10"]
AUGMENTS = {  # ablation label -> overrides (space-separated) that toggle it against configs/search_ubfc.yaml
    "+erase": "augment.erase_p=0.5",  # AutoHR spatio-temporal erasing (off in the base recipe)
    # AutoHR HR balancing instead of the random playback speed (both resample time)
    "+hr_resample": "augment.hr_resample=true augment.speed_p=0",
    "+codec": "augment.codec.p=0.5",  # camera / codec re-encoding (issue 12)
    "-speed": "augment.speed_p=0",
    "-flip": "augment.flip_p=0",
    "-color_jitter": "augment.color_jitter=0",
}


@dataclass
class Arm:
    label: str
    group: str  # searched / random / physnet / tdc_hand / ablation:<kind>
    model: str
    params: dict[str, Any]
    overrides: list[str] = field(default_factory=list)
    folds: tuple[str, ...] | None = None  # held-out subjects this arm runs on (None: all)

    @property
    def key(self) -> str:
        """Label plus folds: one arm label can hold one searched cell per fold group."""
        return self.label if self.folds is None else f"{self.label}@{','.join(self.folds)}"


# ----------------------------------------------------------------------------- arms
def random_genotypes(n: int, ops: tuple[str, ...], n_intermediate: int, seed: int = 1234):
    """``n`` cells from the op space, derived from random alphas by the search's own rules."""
    from facepulse.models.genotype import all_edges
    from facepulse.nas import derive_genotype

    rng = np.random.default_rng(seed)
    n_edges = len(all_edges(n_intermediate))
    return [derive_genotype(rng.normal(size=(1, n_edges, len(ops))), ops, n_intermediate) for _ in range(n)]


def with_theta(genotype, theta: float):
    """Every TDC op of ``genotype`` at ``theta`` (0 -> the plain convolution)."""
    from facepulse.models.ops import OPS, conv_equivalent, is_tdc

    def swap(op: str) -> str:
        if not is_tdc(op):
            return op
        if theta == 0:
            return conv_equivalent(op)
        name = f"{'dil_' if op.startswith('dil_') else ''}tdc_3x3x3_t{theta:g}"
        if name not in OPS:  # e.g. theta 1.0: registered here for the benchmark only
            from facepulse.models.ops import _register_tdc

            _register_tdc(name, float(theta), 2 if op.startswith("dil_") else 1)
        return name

    return genotype.map_ops(swap)


def build_arms(args) -> list[Arm]:
    from facepulse.models.genotype import DEFAULT_GENOTYPE, as_genotype, without_tdc
    from facepulse.models.ops import SEARCH_SPACE

    c, nb = args.channels, args.n_blocks
    searched = []
    for spec in args.genotype:
        if "=" not in spec:
            raise SystemExit(f"--genotype {spec!r}: expected NAME=PATH or NAME=PATH@SUBJECT,SUBJECT")
        name, path = spec.split("=", 1)
        folds = None
        if "@" in path:  # nested search: this cell is used for the subjects its search left out
            path, subjects = path.rsplit("@", 1)
            folds = tuple(subjects.split(","))
        searched.append((name, as_genotype(Path(path)), folds))

    def autohr(label, group, geno, overrides=(), folds=None):
        return Arm(label, group, "autohr", {"genotype": geno.to_dict(), "channels": c, "n_blocks": nb},
                   list(overrides), folds)

    arms = [autohr(f"searched:{n}", "searched", g, folds=f) for n, g, f in searched]
    for k, g in enumerate(random_genotypes(args.n_random, SEARCH_SPACE, 3)):
        arms.append(autohr(f"random:{k}", "random", g))
    arms.append(Arm("physnet", "physnet", "physnet", {"base_channels": args.physnet_channels}))
    arms.append(autohr("tdc_hand", "tdc_hand", DEFAULT_GENOTYPE))
    first_name = searched[0][0] if searched else None
    firsts = [(g, f) for n, g, f in searched if n == first_name]  # its cell per fold group
    for kind in args.ablations:
        if kind == "theta":
            for th in args.thetas:
                arms.append(autohr(f"tdc_hand theta={th:g}", "ablation:theta", with_theta(DEFAULT_GENOTYPE, th)))
            continue
        if not firsts:
            raise SystemExit(f"--ablations {kind} needs a searched cell (--genotype)")
        name = first_name
        for first, folds in firsts:
            if kind == "loss":
                arms.append(autohr(f"{name} loss=time", "ablation:loss", first,
                                   ["loss.name=neg_pearson", "loss.params={}"], folds))
                arms.append(autohr(f"{name} loss=freq", "ablation:loss", first,
                                   ["loss.name=freq_ce", "loss.params={}"], folds))
                for lam in args.lambdas:
                    arms.append(autohr(f"{name} loss=hybrid lambda={lam:g}", "ablation:loss", first,
                                       ["loss.name=hybrid", f"loss.params={{lambda_time: {lam}}}"], folds))
            elif kind == "conv":
                arms.append(autohr(f"{name} TDC->conv", "ablation:conv", without_tdc(first), folds=folds))
            elif kind == "augment":
                for aug, override in AUGMENTS.items():
                    arms.append(autohr(f"{name} {aug}", "ablation:augment", first,
                                       override.split(), folds))
        if kind not in ("loss", "conv", "augment"):
            raise SystemExit(f"--ablations {kind!r} unknown; choose from loss theta conv augment")
    if args.only:
        arms = [a for a in arms if any(a.label.startswith(p) or a.group == p for p in args.only)]
    return arms


# ------------------------------------------------------------------------- cost
def model_cost(arm: Arm, args) -> dict[str, float]:
    import torch

    from facepulse.models import build_model
    from facepulse.nas.cost import count_flops, measure_latency

    torch.set_num_threads(2)
    model = build_model(arm.model, **arm.params)
    shape = (1, 3, args.clip_len, args.size, args.size)
    per_s = args.fps / args.clip_len
    return {
        "params": int(sum(p.numel() for p in model.parameters())),
        "mflops_per_s": count_flops(model, shape) * per_s * 1e-6,
        "cpu_ms_per_s": measure_latency(model, shape, repeats=9, reduce="min") * per_s * 1e3,
    }


# ------------------------------------------------------------------- train + score
def train_config(arm: Arm, seed: int, test: str, args, work: Path):
    from facepulse.config import load_config

    split = work / "splits" / f"loso_{test}.yaml"
    split.parent.mkdir(parents=True, exist_ok=True)
    val = [] if args.val == "none" else [args.val]
    train = [s for s in SUBJECTS if s != test and s not in val]
    split.write_text(json.dumps({"train": train, "val": val, "test": [test]}))
    no_val = ["trainer.limit_val_batches=0"] if not val else []
    safe = "".join(ch if ch.isalnum() else "_" for ch in arm.label)
    overrides = [
        "kind=supervised", f"name={safe}_s{seed}_{test}", f"out_dir={work / 'runs'}", f"seed={seed}",
        f"data.root={args.ubfc}", f"data.cache_dir={args.cache}", f"data.split_file={split}",
        f"data.size={args.size}", f"data.clip_len={args.clip_len}", f"data.clip_stride={args.clip_stride}",
        f"model.name={arm.model}", f"model.params={json.dumps(arm.params)}",
        f"optim.batch_size={args.batch}", f"optim.max_steps={args.steps}", "optim.max_epochs=1000",
        f"optim.lr={args.lr}", "trainer.early_stopping_patience=null", "trainer.log_every_n_steps=5",
        *no_val, *args.override, *arm.overrides,
    ]
    return load_config(args.base_config, overrides)


def score(ckpt: Path, test: str, args, vitallens: Path) -> dict[str, Any]:
    import facepulse.models.inference  # noqa: F401  (registers the "model" estimator)
    from facepulse.datasets import get_reader
    from facepulse.datasets.cache import PreprocessConfig
    from facepulse.eval.evaluate import evaluate_dataset, make_estimator

    est = make_estimator("model", str(ckpt))
    pre = PreprocessConfig.create(size=args.size)
    ubfc = get_reader("ubfc-rppg", Path(args.ubfc))
    records = [r for r in ubfc.records() if r.subject_id == test or r.video_id == test]
    out: dict[str, Any] = {}
    for name, reader, recs in (("ubfc", ubfc, records), ("vitallens", get_reader("generic", vitallens), None)):
        rep = evaluate_dataset(reader, est, records=recs, cache_dir=args.cache, config=pre)
        out[name] = {
            "win_abs_err": [float(abs(p - r)) for v in rep.videos
                            for p, r in zip(v.window_hr_pred_bpm[v.window_scored], v.window_hr_ref_bpm[v.window_scored])],
            "whole_abs_err": [float(abs(v.error_bpm)) for v in rep.videos if np.isfinite(v.error_bpm)],
            "failed": dict(rep.failed),
        }
    return out


def run_one(arm: Arm, seed: int, test: str, args, work: Path, vitallens: Path) -> dict[str, Any]:
    from facepulse.train.runner import run_experiment

    cfg = train_config(arm, seed, test, args, work)
    t0 = time.time()
    result = run_experiment(cfg, resume=False, progress=False)
    train_s = time.time() - t0
    ckpt = (result.best_ckpt if args.val != "none" else None) or result.last_ckpt  # no val: final weights
    t0 = time.time()
    scores = score(ckpt, test, args, vitallens)
    return {"arm": arm.label, "cell": arm.key, "group": arm.group, "seed": seed, "test": test, "train_s": round(train_s, 1),
            "score_s": round(time.time() - t0, 1), **scores}


# -------------------------------------------------------------------------- table
def _mean(x) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def _sd(x) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")


def per_seed(rows: list[dict], key: str, dataset: str) -> dict[int, float]:
    """MAE per seed, windows (or videos) of all folds of that seed pooled."""
    out: dict[int, list[float]] = {}
    for r in rows:
        out.setdefault(r["seed"], []).extend(r[dataset][key])
    return {s: _mean(v) for s, v in sorted(out.items())}


def summarize_arms(results: list[dict], costs: dict[str, dict]) -> list[dict]:
    table = []
    for label in dict.fromkeys(r["arm"] for r in results):
        rows = [r for r in results if r["arm"] == label]
        cells = [costs[k] for k in dict.fromkeys(r.get("cell", label) for r in rows) if k in costs]
        mean_cost = {k: _mean([c[k] for c in cells]) for k in (cells[0] if cells else {})}  # over its cells
        line = {"arm": label, "group": rows[0]["group"], "runs": len(rows), "cells": len(cells),
                "folds": sorted({r["test"] for r in rows}), "seeds": sorted({r["seed"] for r in rows}), **mean_cost}
        for ds in ("ubfc", "vitallens"):
            for key, short in (("win_abs_err", "win"), ("whole_abs_err", "whole")):
                by_seed = per_seed(rows, key, ds)
                vals = list(by_seed.values())
                line[f"{ds}_{short}_mae"], line[f"{ds}_{short}_sd"] = _mean(vals), _sd(vals)
                line[f"{ds}_{short}_seed0"] = by_seed.get(0, float("nan"))
        table.append(line)
    return table


def random_summary(table: list[dict]) -> dict[str, float]:
    """Random cells: mean and sd over cells of each cell's seed-mean."""
    cells = [t for t in table if t["group"] == "random"]
    out = {"cells": len(cells)}
    for k in ("ubfc_win_mae", "ubfc_whole_mae", "vitallens_win_mae", "cpu_ms_per_s", "mflops_per_s"):
        vals = [t[k] for t in cells if k in t]
        out[k], out[k + "_sd_cells"] = _mean(vals), _sd(vals)
    return out


def _f(x, d=1) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{d}f}"


def markdown(table: list[dict], rnd: dict, args) -> str:
    lines = [
        f"Budget: {args.steps} steps x batch {args.batch}, clips {args.clip_len} frames at {args.size} px, "
        f"channels {args.channels} (PhysNet base {args.physnet_channels}), lr {args.lr}, seeds "
        f"{'as listed' if args.table_all else args.seeds}, held-out subjects "
        f"{'as listed' if args.table_all else args.folds} (val {args.val}); MAE in bpm, mean +- sd over seeds "
        "(windows / videos of all folds of a seed pooled); seed 0: the same for seed 0 alone (compare ablations, "
        "run at seed 0, with it).",
        "",
        "| arm | folds | seeds | params | MFLOPs/s | CPU ms/s | UBFC win MAE | UBFC win, seed 0 | UBFC whole MAE "
        "| vitallens win MAE | vitallens whole MAE |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in table:
        lines.append(
            f"| {t['arm']} | {len(t['folds'])} | {len(t['seeds'])} | {_f(t.get('params'), 0)} | "
            f"{_f(t.get('mflops_per_s'))} | {_f(t.get('cpu_ms_per_s'))} | "
            f"{_f(t['ubfc_win_mae'])} +- {_f(t['ubfc_win_sd'])} | {_f(t['ubfc_win_seed0'])} | "
            f"{_f(t['ubfc_whole_mae'])} +- {_f(t['ubfc_whole_sd'])} | "
            f"{_f(t['vitallens_win_mae'])} +- {_f(t['vitallens_win_sd'])} | "
            f"{_f(t['vitallens_whole_mae'])} +- {_f(t['vitallens_whole_sd'])} |"
        )
    if rnd.get("cells"):
        lines.append(
            f"| random cells (mean +- sd over {rnd['cells']} cells) | | | | {_f(rnd['mflops_per_s'])} | "
            f"{_f(rnd['cpu_ms_per_s'])} | {_f(rnd['ubfc_win_mae'])} +- {_f(rnd['ubfc_win_mae_sd_cells'])} | | "
            f"{_f(rnd['ubfc_whole_mae'])} +- {_f(rnd['ubfc_whole_mae_sd_cells'])} | "
            f"{_f(rnd['vitallens_win_mae'])} +- {_f(rnd['vitallens_win_mae_sd_cells'])} | |"
        )
    lines.append("")
    phys = next((t for t in table if t["group"] == "physnet"), None)
    for t in (t for t in table if t["group"] == "searched"):
        verdicts = []
        if rnd.get("cells", 0) > 1:
            margin = rnd["ubfc_win_mae"] - rnd["ubfc_win_mae_sd_cells"]
            verdicts.append(
                f"beats the random mean by > 1 sd: {'YES' if t['ubfc_win_mae'] < margin else 'NO'} "
                f"({_f(t['ubfc_win_mae'])} vs random {_f(rnd['ubfc_win_mae'])} - sd {_f(rnd['ubfc_win_mae_sd_cells'])} "
                f"= {_f(margin)})")
        if phys is not None:
            better = t["ubfc_win_mae"] < phys["ubfc_win_mae"]
            faster = t.get("cpu_ms_per_s", math.inf) <= phys.get("cpu_ms_per_s", -math.inf)
            verdicts.append(
                f"beats PhysNet at no more CPU latency: {'YES' if better and faster else 'NO'} "
                f"(MAE {_f(t['ubfc_win_mae'])} vs {_f(phys['ubfc_win_mae'])}; "
                f"{_f(t.get('cpu_ms_per_s'))} vs {_f(phys.get('cpu_ms_per_s'))} CPU ms per s of video)")
        lines.append(f"- {t['arm']}: " + "; ".join(verdicts))
    return "\n".join(lines) + "\n"


def vitallens_dir(work: Path) -> Path:
    from facepulse.paths import shared_data_dir

    root = work / "vitallens"
    root.mkdir(parents=True, exist_ok=True)
    src = shared_data_dir().resolve() / "vitallens_samples"
    for k in (1, 2):
        for a, b in ((f"sample_video_{k}.mp4", f"vitallens_{k}.mp4"), (f"sample_vitals_{k}.csv", f"vitallens_{k}.csv")):
            if not (root / b).exists():
                (root / b).symlink_to(src / a)
    return root


def main() -> None:
    from facepulse.paths import shared_data_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, default=Path("out/bench_nas_controls"))
    p.add_argument("--base-config", default=str(REPO / "configs" / "search_ubfc.yaml"))
    p.add_argument("--ubfc", default=str(shared_data_dir() / "ubfc_rppg_dev"))
    p.add_argument("--cache", default=".cache/facepulse")
    p.add_argument("--genotype", action="append", default=[], help="NAME=PATH of a searched genotype (repeatable)")
    p.add_argument("--n-random", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--folds", nargs="+", default=SUBJECTS, help="held-out subjects")
    p.add_argument("--val", default="none", help='subject that picks the checkpoint; "none": no '
                   "validation, final weights, every other subject trains")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--clip-len", type=int, default=128)
    p.add_argument("--clip-stride", type=int, default=32)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--n-blocks", type=int, default=4)
    p.add_argument("--physnet-channels", type=int, default=8)
    p.add_argument("--ablations", nargs="*", default=[], choices=["loss", "theta", "conv", "augment"])
    p.add_argument("--thetas", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    p.add_argument("--only", nargs="*", default=[], help="run only arms whose label starts with / group is one of these")
    p.add_argument("--override", nargs="*", default=[], help="extra config overrides for every run")
    p.add_argument("--table-only", action="store_true", help="write the table from results.jsonl, train nothing")
    p.add_argument("--table-all", action="store_true",
                   help="table of every run in results.jsonl (all arms, seeds and folds), train nothing")
    args = p.parse_args()

    import torch

    torch.set_num_threads(2)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    vitallens = vitallens_dir(work)
    results_path = work / "results.jsonl"
    results = [json.loads(x) for x in results_path.read_text().splitlines() if x.strip()] if results_path.is_file() else []
    done = {(r["arm"], r["seed"], r["test"]) for r in results}
    costs_path = work / "costs.json"
    costs = json.loads(costs_path.read_text()) if costs_path.is_file() else {}
    if args.table_all:
        table = summarize_arms(results, costs)
        md = markdown(table, random_summary(table), args)
        (work / "table_all.md").write_text(md)
        (work / "table_all.json").write_text(json.dumps(table, indent=1))
        print(md)
        return
    arms = build_arms(args)
    for arm in arms:
        if arm.key not in costs:
            costs[arm.key] = model_cost(arm, args)
            costs_path.write_text(json.dumps(costs, indent=1))
    if not args.table_only:
        for seed in args.seeds:
            for test in args.folds:
                for arm in arms:
                    if (arm.label, seed, test) in done or (arm.folds is not None and test not in arm.folds):
                        continue
                    row = run_one(arm, seed, test, args, work, vitallens)
                    results.append(row)
                    with results_path.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(f"  {arm.label} seed {seed} test {test}: ubfc win MAE {_mean(row['ubfc']['win_abs_err']):.1f}, "
                          f"train {row['train_s']:.0f} s, score {row['score_s']:.0f} s", file=sys.stderr, flush=True)
    labels = {a.label for a in arms}
    table = summarize_arms([r for r in results if r["arm"] in labels and r["seed"] in args.seeds
                            and r["test"] in args.folds], costs)
    md = markdown(table, random_summary(table), args)
    (work / "table.md").write_text(md)
    (work / "table.json").write_text(json.dumps(table, indent=1))
    print(md)


if __name__ == "__main__":
    main()
