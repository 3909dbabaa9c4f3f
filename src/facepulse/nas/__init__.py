"""AutoHR neural architecture search: supernet, bi-level search, genotype derivation.

Yu et al., "AutoHR", IEEE SPL 2020; Liu et al., "DARTS", ICLR 2019; Xu et al.,
"PC-DARTS", ICLR 2020.

>>> from facepulse.config import load_config
>>> from facepulse.nas import run_search
>>> result = run_search(load_config("configs/search_synthetic.yaml"))  # doctest: +SKIP
>>> result.genotype_path                                               # doctest: +SKIP
PosixPath('runs/search_synthetic/genotype.json')

The genotype JSON is what ``model.params.genotype`` of an ``autohr`` training config
points to.
"""

from __future__ import annotations

from facepulse.nas.cost import (
    COST_METRICS,
    block_voxels,
    count_flops,
    expected_cell_cost,
    genotype_cell_cost,
    measure_latency,
    op_cost_table,
)
from facepulse.nas.derive import derive_cell, derive_genotype, edge_choice, supernet_genotype
from facepulse.nas.draw import draw_genotype
from facepulse.nas.search import (
    AlphaLogger,
    architecture_step,
    SearchModule,
    SearchResult,
    pulse_loss,
    read_alpha_history,
    run_search,
    search_datamodule,
    second_order_alpha_grads,
    synthetic_splits,
    weight_step,
    write_genotype,
)
from facepulse.nas.supernet import MixedCell, MixedOp, Supernet, channel_shuffle

__all__ = [
    "COST_METRICS",
    "block_voxels",
    "count_flops",
    "expected_cell_cost",
    "genotype_cell_cost",
    "measure_latency",
    "op_cost_table",
    "AlphaLogger",
    "MixedCell",
    "MixedOp",
    "SearchModule",
    "SearchResult",
    "Supernet",
    "architecture_step",
    "channel_shuffle",
    "derive_cell",
    "derive_genotype",
    "draw_genotype",
    "edge_choice",
    "pulse_loss",
    "read_alpha_history",
    "run_search",
    "search_datamodule",
    "second_order_alpha_grads",
    "supernet_genotype",
    "synthetic_splits",
    "weight_step",
    "write_genotype",
]
