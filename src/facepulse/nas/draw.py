"""Draw a genotype's cells as graphs (matplotlib only; no graphviz)."""

from __future__ import annotations

from pathlib import Path

from facepulse.models.genotype import Genotype


def _node_label(node: int, n_intermediate: int) -> str:
    if node == 0:
        return "in"
    if node == n_intermediate + 1:
        return "out"
    return f"B{node}"


def draw_genotype(genotype: Genotype, path: str | Path, dpi: int = 120) -> Path:
    """Write a PNG of every cell of ``genotype``: nodes left to right, op names on the edges.

    Nodes are placed on a line (``in``, ``B1``..``BN``, ``out``); edges into intermediate
    nodes arc above the line, edges into the output node below it, so labels do not
    collide. One panel per cell (one for a shared genotype). Returns ``path``.
    """
    # A bare Figure (no pyplot): no global backend state, safe in any process.
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, FancyArrowPatch

    n = genotype.n_intermediate
    n_cells = len(genotype.cells)
    width = 1.6 * (n + 2)
    fig = Figure(figsize=(width, 0.45 * width * n_cells))
    axes = fig.subplots(n_cells, 1, squeeze=False)
    for c, (ax, cell) in enumerate(zip(axes[:, 0], genotype.cells, strict=True)):
        xs = {node: 2.0 * node for node in range(n + 2)}
        drawn: dict[tuple[int, int], int] = {}
        for edge in sorted(cell, key=lambda e: (e.dst, e.src, e.op)):
            x1, x2 = xs[edge.src], xs[edge.dst]
            span = x2 - x1
            above = edge.dst <= n
            # a second op between the same nodes ("node_inputs: ops") gets a flatter arc
            k = drawn[(edge.src, edge.dst)] = drawn.get((edge.src, edge.dst), -1) + 1
            # arc3: the control point sits rad * span off the chord; the curve's midpoint half that
            rad = (-0.6 if above else 0.6) / (1 + k)
            arrow = FancyArrowPatch(
                (x1, 0.0), (x2, 0.0), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                mutation_scale=14, shrinkA=16, shrinkB=16, lw=1.3,
                color="tab:blue" if above else "tab:green",
            )
            ax.add_patch(arrow)
            y_mid = -0.5 * rad * span
            ax.text(
                (x1 + x2) / 2, y_mid, edge.op, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.7", "lw": 0.5},
            )
        for node, x in xs.items():
            ax.add_patch(Circle((x, 0.0), 0.42, fc="0.92", ec="0.2", zorder=3))
            ax.text(x, 0.0, _node_label(node, n), ha="center", va="center", fontsize=10, zorder=4)
        reach = 0.5 * 0.6 * 2.0 * (n + 1) + 0.6  # highest arc: input -> output span
        ax.set_xlim(-0.8, xs[n + 1] + 0.8)
        ax.set_ylim(-reach, reach)
        ax.set_aspect("equal")
        ax.axis("off")
        title = "shared cell (all blocks)" if genotype.shared else f"block {c + 1}"
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path
