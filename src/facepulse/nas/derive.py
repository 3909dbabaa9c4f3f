"""From architecture weights to a discrete AutoHR genotype.

Yu et al., "AutoHR", IEEE SPL 2020 (Sec. II-B: the searched cell keeps the strongest
ops), following the pruning of Liu et al., "DARTS", ICLR 2019 (Sec. 2.4).

Pruning rules, per cell (edges numbered as :func:`facepulse.models.genotype.all_edges`).
AutoHR says each intermediate node keeps "the two strongest operations" of its inputs;
both readings are supported (``search.prune``):

* ``"edges"`` (default, DARTS): an edge's op is its strongest op other than ``none``; the
  edge's *strength* is that op's softmax weight (``none`` never wins, however strong);
  intermediate node ``j`` keeps its ``min(2, j)`` strongest incoming edges, one op each;
* ``"ops"``: node ``j`` keeps the two strongest (edge, op) pairs among all non-``none``
  ops of all its incoming edges (two ops may share an edge; node 1, with the input as its
  only source, then also gets two ops); the genotype says ``node_inputs: "ops"``;
* in both, the output node keeps every incoming edge (one per intermediate node), each
  with its strongest op.

With PC-DARTS edge normalisation (Xu et al., ICLR 2020, Sec. 3.3) the supernet also has
edge weights ``beta`` (softmax over the edges into each intermediate node); an op's
strength is then its op weight times its edge's weight.

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


#: The pruning readings (``search.prune``), see the module docstring.
PRUNE_MODES = ("edges", "ops")


def derive_cell(
    weights: np.ndarray,
    op_names: Sequence[str],
    n_intermediate: int,
    prune: str = "edges",
    edge_weights: np.ndarray | None = None,
) -> tuple[Edge, ...]:
    """Prune one cell's op weights ``(n_edges, n_ops)`` to its genotype edges (module rules).

    ``edge_weights`` ``(n_edges,)``: PC-DARTS edge weights multiplying each edge's op
    weights (default: all 1).
    """
    if prune not in PRUNE_MODES:
        raise ConfigError(f"search.prune {prune!r} unknown; available: {', '.join(PRUNE_MODES)}")
    edges = all_edges(n_intermediate)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape[0] != len(edges):
        raise ConfigError(
            f"alphas have {weights.shape[0]} edges per cell; {n_intermediate} intermediate nodes need {len(edges)}"
        )
    if edge_weights is not None:
        edge_weights = np.asarray(edge_weights, dtype=np.float64).reshape(-1)
        if edge_weights.shape[0] != len(edges):
            raise ConfigError(f"edge weights have {edge_weights.shape[0]} edges per cell, the alphas {len(edges)}")
        weights = weights * edge_weights[:, None]
    best, strength = edge_choice(weights, op_names)
    out_node = n_intermediate + 1
    kept: list[Edge] = []
    for j in range(1, out_node + 1):
        incoming = [e for e, (_, dst) in enumerate(edges) if dst == j]
        if prune == "ops" and j != out_node:
            pairs = [(e, k) for e in incoming for k, name in enumerate(op_names) if name != "none"]
            # stable sort: among equal strengths the lower source, then the earlier op, stays first
            ranked_pairs = sorted(pairs, key=lambda ek: -weights[ek])[:2]
            kept.extend(Edge(op=op_names[k], src=edges[e][0], dst=j) for e, k in sorted(ranked_pairs))
            continue
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
    prune: str = "edges",
    edge_weights: np.ndarray | None = None,
) -> Genotype:
    """The discrete genotype of architecture weights (AutoHR / DARTS pruning, module rules).

    Parameters
    ----------
    alphas : (n_cells, n_edges, n_ops) architecture logits; the softmax over the last
        axis gives the op weights that are compared.
    op_names : op of each column.
    n_intermediate : intermediate nodes per cell.
    shared : whether the single cell is shared by all blocks; default ``n_cells == 1``.
    prune : ``"edges"`` or ``"ops"`` (the two readings of AutoHR's pruning, see above).
    edge_weights : (n_cells, n_edges) PC-DARTS edge weights (already normalised), or None.

    Returns
    -------
    Genotype with one cell per row of ``alphas``.
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 3:
        raise ConfigError(f"alphas must have shape (n_cells, n_edges, n_ops), got {alphas.shape}")
    weights = softmax(alphas, axis=-1)
    shared = alphas.shape[0] == 1 if shared is None else shared
    if edge_weights is None:
        cells = tuple(derive_cell(w, op_names, n_intermediate, prune) for w in weights)
    else:
        edge_weights = np.asarray(edge_weights, dtype=np.float64).reshape(alphas.shape[0], -1)
        cells = tuple(derive_cell(w, op_names, n_intermediate, prune, b) for w, b in zip(weights, edge_weights))
    return Genotype(cells=cells, n_intermediate=n_intermediate, shared=shared,
                    node_inputs="ops" if prune == "ops" else "edges")


def supernet_genotype(model, prune: str = "edges") -> Genotype:
    """The genotype of a :class:`~facepulse.nas.supernet.Supernet`'s current alphas (and
    edge weights, with PC-DARTS edge normalisation)."""
    alphas = model.alphas.detach().cpu().double().numpy()
    edge_weights = model.edge_weights()
    if edge_weights is not None:
        edge_weights = edge_weights.detach().cpu().double().numpy()
    return derive_genotype(alphas, model.op_names, model.n_intermediate, shared=model.shared_alphas,
                           prune=prune, edge_weights=edge_weights)
