"""Compute cost of search ops, cells and networks, for latency-aware search.

Beyond AutoHR (Yu et al., IEEE SPL 2020): like the latency-aware searches of Wu et al.,
"FBNet", CVPR 2019 (Sec. 3.2) and Cai et al., "ProxylessNAS", ICLR 2019 (Sec. 3.3), the
architecture step can add ``search.cost_weight`` times the *expected* cost of the cells
under the softmax of the alphas. The cost of an op is read from a per-op table:

* ``"flops"`` (default): floating-point operations per output voxel (one frame, one
  pixel) at the cell width, counted from the op's modules (:func:`count_flops`: a
  multiply-add is 2 FLOPs; BatchNorm 2, ReLU 1, a k-voxel pooling k per element);
  deterministic, the same on every machine;
* ``"latency"``: CPU seconds per output voxel of the op alone (median of a few timed
  forward passes, :func:`measure_op_latency`); measured once per search and cached in
  the run folder (``op_costs.json``), so a resumed search uses the same table.

Every stride-1 op preserves the shape, so an edge at block ``b`` costs ``voxels_b *
table[op]`` (``voxels_b`` = frames x pixels at that block's resolution). The expected
cost of a network is ``sum_b voxels_b sum_e sum_k softmax(alpha)[c(b), e, k] table[k]``;
divided by its largest value (every edge on the costliest op) it lies in ``[0, 1]``,
which is what ``cost_weight`` multiplies: the weight does not depend on the unit.

One search also yields a whole set of cells from cheap to costly (:func:`cost_frontier`):
the genotype is derived again with every op's log weight lowered by a penalty times its
relative cost, for a range of penalties (the derivation-time counterpart of the
``cost_weight`` term), so a user picks a cell for a CPU budget without searching again.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facepulse.errors import ConfigError
from facepulse.models.genotype import Genotype
from facepulse.models.ops import build_op

__all__ = [
    "COST_METRICS",
    "FRONTIER_PENALTIES",
    "block_voxels",
    "cost_frontier",
    "count_flops",
    "expected_cell_cost",
    "genotype_cell_cost",
    "measure_latency",
    "measure_op_latency",
    "op_cost_table",
    "op_flops",
]

#: Per-op cost tables (``search.cost_metric``).
COST_METRICS = ("flops", "latency")

_PROBE = (4, 6, 6)  # (T, H, W) of the probe input that per-voxel FLOPs are counted on


def _elements(t: torch.Tensor | Sequence[torch.Tensor]) -> int:
    if isinstance(t, torch.Tensor):
        return t.numel()
    return sum(x.numel() for x in t if isinstance(x, torch.Tensor))


def count_flops(model: nn.Module, shape: Sequence[int]) -> float:
    """FLOPs of one forward pass of ``model`` on zeros of ``shape`` (batch included).

    Counted per leaf module from its output size: convolutions (incl. transposed and
    temporal-difference ones) ``2 * C_in/groups * prod(kernel)`` per output element (the
    folded TDC kernel is one convolution), linear layers ``2 * in_features``, BatchNorm 2,
    ReLU / ELU / sigmoid / tanh 1, pooling ``prod(kernel)`` per output element; additions
    of branches are ignored (one per element, far below the convolutions).
    """
    total = [0.0]

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        n = _elements(output)
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            k = math.prod(module.kernel_size)
            total[0] += 2.0 * n * (module.in_channels // module.groups) * k
        elif isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            k = math.prod(module.kernel_size)
            total[0] += 2.0 * _elements(inputs[0]) * (module.out_channels // module.groups) * k
        elif isinstance(module, nn.Linear):
            total[0] += 2.0 * n * module.in_features
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            total[0] += 2.0 * n
        elif isinstance(module, (nn.ReLU, nn.ELU, nn.Sigmoid, nn.Tanh)):
            total[0] += 1.0 * n
        elif isinstance(module, (nn.MaxPool3d, nn.AvgPool3d, nn.MaxPool2d, nn.AvgPool2d)):
            k = module.kernel_size
            total[0] += float(math.prod(k) if isinstance(k, tuple) else k ** (3 if "3d" in type(module).__name__ else 2)) * n
        elif type(module).__name__ == "AvgPool3x3x3":
            total[0] += 27.0 * n
        elif isinstance(module, (nn.AdaptiveAvgPool3d, nn.AdaptiveAvgPool2d)):
            total[0] += float(_elements(inputs[0]))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if not list(m.children()) or type(m).__name__ == "AvgPool3x3x3"]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(*shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total[0]


def op_flops(name: str, channels: int) -> float:
    """FLOPs per output voxel of op ``name`` at ``channels`` (0 for ``none`` and ``skip``)."""
    if name == "none":
        return 0.0
    op = build_op(name, channels, 1)
    return count_flops(op, (1, channels, *_PROBE)) / math.prod(_PROBE)


def measure_latency(model: nn.Module, shape: Sequence[int], repeats: int = 5, reduce: str = "median") -> float:
    """Wall-clock seconds of ``model``'s forward pass on zeros of ``shape`` (no grad, eval
    mode, the current torch thread count; one untimed warm-up pass): the median of
    ``repeats`` passes, or with ``reduce="min"`` the fastest (less sensitive to other
    work on a shared CPU)."""
    if reduce not in ("median", "min"):
        raise ConfigError(f"measure_latency: reduce {reduce!r} unknown; use median or min")
    x = torch.zeros(*shape)
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.no_grad():
            model(x)
            for _ in range(max(1, repeats)):
                t0 = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    times.sort()
    return times[0] if reduce == "min" else times[len(times) // 2]


def measure_op_latency(name: str, channels: int, shape: Sequence[int] = (32, 16, 16), repeats: int = 5) -> float:
    """CPU seconds per output voxel of op ``name`` at ``channels`` on a ``(T, H, W)`` input
    (0 for ``none``)."""
    if name == "none":
        return 0.0
    return measure_latency(build_op(name, channels, 1), (1, channels, *shape), repeats) / math.prod(shape)


def op_cost_table(
    op_names: Sequence[str],
    channels: int,
    metric: str = "flops",
    cache: str | Path | None = None,
    latency_shape: Sequence[int] = (32, 16, 16),
) -> dict[str, float]:
    """Cost per output voxel of every op (module docstring), ``{op: cost}``.

    ``cache``: a JSON file; a table stored there for the same metric, width and ops is
    reused (so a latency table is measured once per run folder), otherwise the table is
    computed and written there.
    """
    if metric not in COST_METRICS:
        raise ConfigError(f"search.cost_metric {metric!r} unknown; available: {', '.join(COST_METRICS)}")
    key = {"metric": metric, "channels": int(channels), "ops": list(op_names)}
    path = Path(cache) if cache is not None else None
    if path is not None and path.is_file():
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError:
            stored = {}
        if all(stored.get(k) == v for k, v in key.items()) and isinstance(stored.get("table"), dict):
            return {name: float(stored["table"][name]) for name in op_names}
    if metric == "flops":
        table = {name: op_flops(name, channels) for name in op_names}
    else:
        table = {name: measure_op_latency(name, channels, latency_shape) for name in op_names}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        unit = "FLOPs per output voxel" if metric == "flops" else "CPU seconds per output voxel"
        path.write_text(json.dumps({**key, "unit": unit, "table": table}, indent=1) + "\n")
    return table


def block_voxels(n_blocks: int, clip_len: int, size: int) -> list[int]:
    """Output voxels (frames x pixels) of each cell of an AutoHR network on a
    ``clip_len x size x size`` clip: the stem halves the pixels, the pools after the
    first two blocks halve time and space, the later ones space only (ceil mode)."""
    t, h = clip_len, math.ceil(size / 2)
    out = []
    for b in range(n_blocks):
        out.append(t * h * h)
        if b < n_blocks - 1:
            if b < 2:
                t = math.ceil(t / 2)
            h = math.ceil(h / 2)
    return out


def expected_cell_cost(op_weights: torch.Tensor, table: torch.Tensor, voxels: Sequence[int]) -> torch.Tensor:
    """Expected cost of the cells (differentiable in ``op_weights``).

    Parameters
    ----------
    op_weights : ``(n_cells, n_edges, n_ops)`` softmax of the alphas (``n_cells`` 1 when
        shared by all blocks, else one per block).
    table : ``(n_ops,)`` cost per output voxel of each op.
    voxels : output voxels of each block (:func:`block_voxels`).

    Returns the scalar ``sum_b voxels_b sum_e sum_k w[c(b), e, k] table[k]``.
    """
    per_cell = (op_weights * table.to(op_weights)).sum(dim=(-1, -2))  # (n_cells,)
    v = torch.as_tensor(list(voxels), dtype=op_weights.dtype, device=op_weights.device)
    if per_cell.shape[0] == 1:
        return per_cell[0] * v.sum()
    if per_cell.shape[0] != v.shape[0]:
        raise ConfigError(f"cost: {per_cell.shape[0]} cells of alphas for {v.shape[0]} blocks")
    return (per_cell * v).sum()


def genotype_cell_cost(genotype: Genotype, table: dict[str, float], voxels: Sequence[int]) -> float:
    """Cost of the cells of a derived network: ``sum_b voxels_b sum_{edges of b} table[op]``."""
    total = 0.0
    for b, v in enumerate(voxels):
        total += v * sum(table[e.op] for e in genotype.cell_for_block(b))
    return float(total)


#: Penalties of :func:`cost_frontier`: 0 is the search's own genotype; at 8 and above
#: nearly every edge takes its cheapest non-``none`` op.
FRONTIER_PENALTIES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def cost_frontier(
    alphas: Any,
    op_names: Sequence[str],
    n_intermediate: int,
    table: dict[str, float],
    voxels: Sequence[int],
    penalties: Sequence[float] = FRONTIER_PENALTIES,
    *,
    shared: bool | None = None,
    prune: str = "edges",
    edge_weights: Any = None,
) -> list[dict[str, Any]]:
    """Cells that trade the search's preference for cost, all from one search's alphas.

    For each penalty ``mu`` the genotype is derived (:func:`facepulse.nas.derive_genotype`,
    same pruning) from ``log softmax(alphas) - mu * cost / max(cost)``: each op's weight is
    scaled by ``exp(-mu * relative cost)`` before the strongest ops are kept. ``mu = 0``
    gives the search's own genotype; larger ``mu`` swaps costly ops for cheaper ones where
    the search preferred them least.

    Parameters
    ----------
    alphas : (n_cells, n_edges, n_ops) architecture logits.
    op_names : op of each column; ``table`` must give a cost for each.
    n_intermediate : intermediate nodes per cell.
    table : cost per output voxel of each op (:func:`op_cost_table`).
    voxels : output voxels of each block (:func:`block_voxels`).
    penalties : the ``mu`` values, in any order.
    shared, prune, edge_weights : as for :func:`facepulse.nas.derive_genotype`.

    Returns
    -------
    One dict per distinct cell, costliest first: ``penalty`` (the smallest ``mu`` that
    derives it), ``genotype`` (a :class:`Genotype`), ``cells_cost`` (cost of its cells on
    ``voxels``, :func:`genotype_cell_cost`) and ``log_weight`` (sum over its ops of
    ``log softmax(alphas)``: how strongly the search itself preferred it; 0 is the max).
    """
    import numpy as np

    from facepulse.models.genotype import all_edges
    from facepulse.nas.derive import derive_genotype

    logits = np.asarray(alphas, dtype=np.float64)
    if logits.ndim != 3 or logits.shape[-1] != len(op_names):
        raise ConfigError(f"cost_frontier: alphas of shape {logits.shape} for {len(op_names)} ops")
    missing = [n for n in op_names if n not in table]
    if missing:
        raise ConfigError(f"cost_frontier: no cost for ops {missing}")
    cost = np.array([table[n] for n in op_names], dtype=np.float64)
    relative = cost / cost.max() if cost.max() > 0 else cost
    log_w = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    column = {n: k for k, n in enumerate(op_names)}
    row = {edge: i for i, edge in enumerate(all_edges(n_intermediate))}  # (src, dst) -> row of alphas
    out: list[dict[str, Any]] = []
    seen: set[Genotype] = set()
    for mu in sorted(float(m) for m in penalties):
        if not np.isfinite(mu) or mu < 0:
            raise ConfigError(f"cost_frontier: penalties must be finite and >= 0, got {mu}")
        geno = derive_genotype(log_w - mu * relative, op_names, n_intermediate, shared=shared,
                               prune=prune, edge_weights=edge_weights)
        if geno in seen:
            continue
        seen.add(geno)
        score = sum(float(log_w[min(c, log_w.shape[0] - 1), row[(e.src, e.dst)], column[e.op]])
                    for c, cell in enumerate(geno.cells) for e in cell)
        out.append({"penalty": mu, "genotype": geno, "cells_cost": genotype_cell_cost(geno, table, voxels),
                    "log_weight": score})
    return sorted(out, key=lambda d: -d["cells_cost"])
