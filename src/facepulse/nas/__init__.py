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

from facepulse.nas.derive import derive_cell, derive_genotype, edge_choice, supernet_genotype
from facepulse.nas.draw import draw_genotype
from facepulse.nas.search import (
    AlphaLogger,
    SearchData,
    SearchModule,
    SearchResult,
    SynthClips,
    pulse_loss,
    read_alpha_history,
    run_search,
    second_order_alpha_grads,
    synthetic_splits,
    write_genotype,
)
from facepulse.nas.supernet import MixedCell, MixedOp, Supernet, channel_shuffle

__all__ = [
    "AlphaLogger",
    "MixedCell",
    "MixedOp",
    "SearchData",
    "SearchModule",
    "SearchResult",
    "Supernet",
    "SynthClips",
    "channel_shuffle",
    "derive_cell",
    "derive_genotype",
    "draw_genotype",
    "edge_choice",
    "pulse_loss",
    "read_alpha_history",
    "run_search",
    "second_order_alpha_grads",
    "supernet_genotype",
    "synthetic_splits",
    "write_genotype",
]
