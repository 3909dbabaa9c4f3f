"""Discrete AutoHR cell architectures ("genotypes") and their JSON format.

Yu et al., "AutoHR", IEEE SPL 2020 (cell = DAG of searched ops, Sec. II-B).

JSON format (written by the NAS search, read by :class:`facepulse.models.autohr.AutoHR`)::

    {"format": "facepulse-genotype/1", "n_intermediate": 3, "shared": true,
     "cells": [[{"op": "tdc_3x3x3_t0.6", "src": 0, "dst": 1}, ...], ...]}

Nodes of a cell: ``0`` is the cell input, ``1..N`` the intermediate nodes
(``N = n_intermediate``), ``N + 1`` the output node.

* Intermediate node ``j`` sums ``op(h_i)`` over its incoming edges. With
  ``"node_inputs": "edges"`` (the default, and the field is then left out of the JSON)
  they come from distinct source nodes ``i < j``: exactly ``min(2, j)`` of them (node 1
  has only the input as a possible source, so it has one edge; every later node keeps
  two, as DARTS pruning). With ``"node_inputs": "ops"`` the node keeps its two strongest
  *ops* (one or two of them; two may read the same source with different ops), the
  other reading of AutoHR's "each node keeps the two strongest operations".
* The output node has exactly one edge from each intermediate node ``1..N`` and
  **sums** them (rather than concatenating + 1x1x1 conv: the channel count stays
  ``C`` and no extra parameters are added).
* ``cells`` holds one cell if ``shared`` (used by every block) else one per block.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from facepulse.errors import ConfigError, InputError
from facepulse.models.ops import OPS, conv_equivalent

FORMAT = "facepulse-genotype/1"

#: How intermediate nodes pick their inputs (see the module docstring).
NODE_INPUTS = ("edges", "ops")


@dataclass(frozen=True)
class Edge:
    """One op of a cell: ``dst`` receives ``op(h_src)``."""

    op: str
    src: int
    dst: int


@dataclass(frozen=True)
class Genotype:
    """A discrete AutoHR architecture: one cell (shared) or one cell per block.

    Attributes
    ----------
    cells : per cell, its edges (any order; they are run in topological order).
    n_intermediate : number of intermediate nodes ``N`` per cell.
    shared : whether the single cell in ``cells`` is used by every block.
    """

    cells: tuple[tuple[Edge, ...], ...]
    n_intermediate: int = 3
    shared: bool = True
    format: str = field(default=FORMAT)
    node_inputs: str = "edges"

    def __post_init__(self) -> None:
        # Accept lists too; store tuples so a genotype is immutable and hashable.
        object.__setattr__(self, "cells", tuple(tuple(cell) for cell in self.cells))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first problem found."""
        if self.format != FORMAT:
            raise ConfigError(f"genotype format {self.format!r} not supported; expected {FORMAT!r}")
        n = self.n_intermediate
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"genotype n_intermediate must be an integer >= 1, got {n!r}")
        if self.node_inputs not in NODE_INPUTS:
            raise ConfigError(f"genotype node_inputs {self.node_inputs!r} unknown; available: {', '.join(NODE_INPUTS)}")
        if len(self.cells) == 0:
            raise ConfigError("genotype cells: empty; need at least one cell")
        if self.shared and len(self.cells) != 1:
            raise ConfigError(f"genotype cells: shared genotype must have 1 cell, got {len(self.cells)}")
        for c, cell in enumerate(self.cells):
            _validate_cell(cell, n, where=f"genotype cells[{c}]", node_inputs=self.node_inputs)

    def cell_for_block(self, block: int) -> tuple[Edge, ...]:
        """The edges block ``block`` (0-based) is built from."""
        return self.cells[0] if self.shared else self.cells[block]

    def check_blocks(self, n_blocks: int) -> None:
        """ConfigError unless the genotype describes ``n_blocks`` blocks."""
        if not self.shared and len(self.cells) != n_blocks:
            raise ConfigError(
                f"genotype cells: {len(self.cells)} cells for {n_blocks} blocks (not shared: need one per block)"
            )

    # --------------------------------------------------------------- transforms
    def map_ops(self, fn: Callable[[str], str]) -> Genotype:
        """A copy with every op name replaced by ``fn(name)`` (validated)."""
        cells = tuple(tuple(replace(e, op=fn(e.op)) for e in cell) for cell in self.cells)
        return replace(self, cells=cells)

    # ------------------------------------------------------------------- (de)ser
    def to_dict(self) -> dict[str, Any]:
        out = {
            "format": self.format,
            "n_intermediate": self.n_intermediate,
            "shared": self.shared,
            "cells": [[{"op": e.op, "src": e.src, "dst": e.dst} for e in cell] for cell in self.cells],
        }
        if self.node_inputs != "edges":
            out["node_inputs"] = self.node_inputs
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Genotype:
        """Parse the JSON-like dict (ConfigError naming a bad field)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"genotype must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"format", "n_intermediate", "shared", "cells", "node_inputs"}
        if unknown:
            raise ConfigError(f"genotype: unknown field(s) {sorted(unknown)}")
        for key in ("format", "n_intermediate", "shared", "cells"):
            if key not in data:
                raise ConfigError(f"genotype: missing field {key!r}")
        if not isinstance(data["shared"], bool):
            raise ConfigError(f"genotype shared must be true or false, got {data['shared']!r}")
        raw_cells = data["cells"]
        if not isinstance(raw_cells, list):
            raise ConfigError("genotype cells must be a list of cells (lists of edges)")
        cells = []
        for c, raw_cell in enumerate(raw_cells):
            if not isinstance(raw_cell, list):
                raise ConfigError(f"genotype cells[{c}] must be a list of edges")
            cells.append(tuple(_parse_edge(e, f"genotype cells[{c}][{k}]") for k, e in enumerate(raw_cell)))
        return cls(
            cells=tuple(cells),
            n_intermediate=data["n_intermediate"],
            shared=data["shared"],
            format=data["format"],
            node_inputs=data.get("node_inputs", "edges"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"genotype: invalid JSON ({err.msg} at line {err.lineno})") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write the genotype as JSON to ``path``; returns the path."""
        path = Path(path)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Genotype:
        """Read a genotype JSON file (InputError if unreadable, ConfigError if invalid)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise InputError(f"{path}: cannot read genotype ({err.strerror or err})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None


def as_genotype(value: Genotype | str | Path | Mapping[str, Any]) -> Genotype:
    """A :class:`Genotype` from itself, a JSON file path or a dict."""
    if isinstance(value, Genotype):
        return value
    if isinstance(value, (str, Path)):
        return Genotype.load(value)
    if isinstance(value, Mapping):
        return Genotype.from_dict(value)
    raise ConfigError(f"genotype must be a Genotype, a JSON path or a dict, got {type(value).__name__}")


def without_tdc(genotype: Genotype) -> Genotype:
    """The same architecture with every TDC op replaced by its plain convolution.

    ``tdc_3x3x3_t* -> conv_3x3x3``, ``dil_tdc_3x3x3_t* -> dil_conv_3x3x3`` (the AutoHR
    ablation "conv instead of TDC").
    """
    return genotype.map_ops(conv_equivalent)


def all_edges(n_intermediate: int) -> list[tuple[int, int]]:
    """Every candidate ``(src, dst)`` edge of an unpruned cell, in topological order.

    Intermediate node ``j`` may read any ``i < j``; the output node ``N + 1`` reads each
    intermediate node. This is the edge set of a supernet cell.
    """
    n = n_intermediate
    edges = [(i, j) for j in range(1, n + 1) for i in range(j)]
    edges += [(j, n + 1) for j in range(1, n + 1)]
    return edges


def _parse_edge(raw: Any, where: str) -> Edge:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: an edge must be an object with op, src, dst")
    missing = [k for k in ("op", "src", "dst") if k not in raw]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {missing}")
    extra = sorted(set(raw) - {"op", "src", "dst"})
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {extra}")
    for key in ("src", "dst"):
        if not isinstance(raw[key], int) or isinstance(raw[key], bool):
            raise ConfigError(f"{where}: {key} must be an integer, got {raw[key]!r}")
    if not isinstance(raw["op"], str):
        raise ConfigError(f"{where}: op must be a string, got {raw['op']!r}")
    return Edge(op=raw["op"], src=raw["src"], dst=raw["dst"])


def _validate_cell(cell: tuple[Edge, ...], n: int, where: str, node_inputs: str = "edges") -> None:
    out = n + 1
    incoming: dict[int, list[int]] = {j: [] for j in range(1, out + 1)}
    for k, e in enumerate(cell):
        at = f"{where}[{k}]"
        if e.op not in OPS:
            raise ConfigError(f"{at}: unknown op {e.op!r}; available: {', '.join(OPS.names())}")
        if not 1 <= e.dst <= out:
            raise ConfigError(f"{at}: dst {e.dst} is not a node in 1..{out}")
        if e.dst == out:
            if not 1 <= e.src <= n:
                raise ConfigError(f"{at}: output node {out} reads intermediate nodes 1..{n}, got src {e.src}")
        elif not 0 <= e.src < e.dst:
            raise ConfigError(f"{at}: src {e.src} must be a node in 0..{e.dst - 1} (edges go forward)")
        incoming[e.dst].append(e.src)
    for j in range(1, n + 1):
        srcs = incoming[j]
        if node_inputs == "ops":
            pairs = [(e.src, e.op) for e in cell if e.dst == j]
            if not 1 <= len(pairs) <= 2:
                raise ConfigError(f"{where}: node {j} has {len(pairs)} incoming ops; needs 1 or 2")
            if len(set(pairs)) != len(pairs):
                raise ConfigError(f"{where}: node {j} has the op {pairs[0][1]!r} from node {pairs[0][0]} twice")
            continue
        need = min(2, j)
        if len(srcs) != need:
            raise ConfigError(f"{where}: node {j} has {len(srcs)} incoming edges; needs exactly {need}")
        if len(set(srcs)) != len(srcs):
            dup = next(s for s in srcs if srcs.count(s) > 1)
            raise ConfigError(f"{where}: node {j} has two edges from node {dup}; sources must differ")
    srcs = sorted(incoming[out])
    if srcs != list(range(1, n + 1)):
        raise ConfigError(f"{where}: output node {out} needs one edge from each node 1..{n}, got sources {srcs}")


def _cell(*edges: tuple[str, int, int]) -> tuple[Edge, ...]:
    return tuple(Edge(op, src, dst) for op, src, dst in edges)


#: Hand-written TDC-heavy default (not a search result): the ``autohr`` model's cell.
DEFAULT_GENOTYPE = Genotype(
    cells=(
        _cell(
            ("tdc_3x3x3_t0.6", 0, 1),
            ("tdc_3x3x3_t0.4", 0, 2),
            ("skip", 1, 2),
            ("tdc_3x3x3_t0.8", 1, 3),
            ("conv_1x3x3", 2, 3),
            ("skip", 1, 4),
            ("skip", 2, 4),
            ("skip", 3, 4),
        ),
    ),
    n_intermediate=3,
    shared=True,
)
