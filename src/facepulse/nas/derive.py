"""From architecture weights to a discrete AutoHR genotype.

Yu et al., "AutoHR", IEEE SPL 2020 (Sec. II-B: the searched cell keeps the strongest
ops), following the pruning of Liu et al., "DARTS", ICLR 2019 (Sec. 2.4).

Pruning rules, per cell (edges numbered as :func:`facepulse.models.genotype.all_edges`):

* an edge's op is its strongest op other than ``none``; the edge's *strength* is that
  op's softmax weight (``none`` never wins, however strong);
* intermediate node ``j`` keeps its ``min(2, j)`` strongest incoming edges;
* the output node keeps every incoming edge (one per intermediate node), each with its
  strongest op.

Ties are broken deterministically: between ops, the one listed first in ``op_names``
wins; between edges of equal strength, the one from the lower-numbered source node
wins. Values are compared exactly (no tolerance).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import softmax

from facepulse.errors import ConfigError
from facepulse.models.genotype import Edge, Genotype, all_edges


def edge_choice(weights: np.ndarray, op_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strongest non-``none`` op of every edge and its weight.

    Parameters
    ----------
    weights : (..., n_ops) op weights (e.g. ``softmax(alphas)``), columns in ``op_names`` order.
    op_names : the op of each column.

    Returns
    -------
    best : (...,) int, column of the chosen op (first column among equals).
    strength : (...,) float, its weight.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape[-1] != len(op_names):
        raise ConfigError(f"alphas have {weights.shape[-1]} op columns but {len(op_names)} op names were given")
    candidates = np.array([name != "none" for name in op_names])
    if not candidates.any():
        raise ConfigError("search ops: only 'none' is listed; no op can be derived")
    masked = np.where(candidates, weights, -np.inf)
    best = np.argmax(masked, axis=-1)  # argmax returns the first maximum: earlier op wins ties
    strength = np.take_along_axis(masked, best[..., None], axis=-1)[..., 0]
    return best, strength


def derive_cell(weights: np.ndarray, op_names: Sequence[str], n_intermediate: int) -> tuple[Edge, ...]:
    """Prune one cell's op weights ``(n_edges, n_ops)`` to its genotype edges (module rules)."""
    edges = all_edges(n_intermediate)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape[0] != len(edges):
        raise ConfigError(
            f"alphas have {weights.shape[0]} edges per cell; {n_intermediate} intermediate nodes need {len(edges)}"
        )
    best, strength = edge_choice(weights, op_names)
    out_node = n_intermediate + 1
    kept: list[Edge] = []
    for j in range(1, out_node + 1):
        incoming = [e for e, (_, dst) in enumerate(edges) if dst == j]
        # stable sort on -strength: among equal strengths the lower source (listed first) stays first
        ranked = sorted(incoming, key=lambda e: -strength[e])
        keep = ranked if j == out_node else ranked[: min(2, j)]
        kept.extend(Edge(op=op_names[best[e]], src=edges[e][0], dst=j) for e in sorted(keep))
    return tuple(kept)


def derive_genotype(
    alphas: np.ndarray,
    op_names: Sequence[str],
    n_intermediate: int,
    shared: bool | None = None,
) -> Genotype:
    """The discrete genotype of architecture weights (AutoHR / DARTS pruning, module rules).

    Parameters
    ----------
    alphas : (n_cells, n_edges, n_ops) architecture logits; the softmax over the last
        axis gives the op weights that are compared.
    op_names : op of each column.
    n_intermediate : intermediate nodes per cell.
    shared : whether the single cell is shared by all blocks; default ``n_cells == 1``.

    Returns
    -------
    Genotype with one cell per row of ``alphas``.
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 3:
        raise ConfigError(f"alphas must have shape (n_cells, n_edges, n_ops), got {alphas.shape}")
    weights = softmax(alphas, axis=-1)
    shared = alphas.shape[0] == 1 if shared is None else shared
    cells = tuple(derive_cell(w, op_names, n_intermediate) for w in weights)
    return Genotype(cells=cells, n_intermediate=n_intermediate, shared=shared)


def supernet_genotype(model) -> Genotype:
    """The genotype of a :class:`~facepulse.nas.supernet.Supernet`'s current alphas."""
    alphas = model.alphas.detach().cpu().double().numpy()
    return derive_genotype(alphas, model.op_names, model.n_intermediate, shared=model.shared_alphas)
