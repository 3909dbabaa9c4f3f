"""AutoHR: a PhysNet-like backbone whose blocks are searched cells.

Yu et al., "AutoHR: A Strong End-to-end Baseline for Remote Heart Rate Measurement with
Neural Searching", IEEE SPL 2020.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facepulse.errors import ConfigError
from facepulse.models.genotype import DEFAULT_GENOTYPE, Edge, Genotype, as_genotype
from facepulse.models.ops import build_op
from facepulse.models.physnet import PulseHead, TemporalUpsample, check_clip, conv_block

GenotypeLike = Genotype | str | Path | Mapping[str, Any]


class Cell(nn.Module):
    """One AutoHR cell built from a genotype cell: ``(B, C, T, H, W) -> (B, C, T, H, W)``.

    Node 0 is the input; intermediate node ``j`` is the sum of its edges' ops applied to
    their source nodes; the output is the sum of the ops on the edges into node N + 1
    (see :mod:`facepulse.models.genotype`).
    """

    def __init__(self, edges: tuple[Edge, ...], n_intermediate: int, channels: int) -> None:
        super().__init__()
        self.n_intermediate = n_intermediate
        # topological order: by destination node, so every source is ready when read
        self.edges = tuple(sorted(edges, key=lambda e: (e.dst, e.src, e.op)))
        self.ops = nn.ModuleList(build_op(e.op, channels, 1) for e in self.edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x] + [None] * (self.n_intermediate + 1)
        for edge, op in zip(self.edges, self.ops, strict=True):
            y = op(nodes[edge.src])
            current = nodes[edge.dst]
            nodes[edge.dst] = y if current is None else current + y
        out = nodes[-1]
        assert out is not None  # guaranteed by Genotype validation
        return out


class AutoHR(nn.Module):
    """AutoHR backbone: clip ``(B, 3, T, H, W)`` float -> pulse ``(B, T)``.

    Yu et al., IEEE SPL 2020. Stem: conv 1x5x5 (C/2) -> spatial max-pool -> conv 3x3x3
    (C); then ``n_blocks`` cells with max-pooling between them as PhysNet (spatio-temporal
    2x2x2 after the first two blocks, spatial 1x2x2 after the others); head: two x2
    temporal upsamplings back to T, spatial average, 1x1x1 conv. Pooling uses
    ``ceil_mode`` and upsamplings are cropped, so any T, H, W works.

    Parameters
    ----------
    genotype : a :class:`Genotype`, a path to its JSON file, or its dict; default
        :data:`~facepulse.models.genotype.DEFAULT_GENOTYPE`.
    channels : width C of every cell.
    n_blocks : number of cells (>= 2, since two of the pools are temporal).
    upsample : ``"transpose"`` or ``"interp"`` (see :class:`TemporalUpsample`).
    in_channels : colour channels of the clip.

    ``cells`` is a ``ModuleList`` of shape-preserving ``(B, C, T, H, W)`` modules; a NAS
    supernet can reuse the stem, pooling and head by swapping it for its mixed cells.
    """

    def __init__(
        self,
        genotype: GenotypeLike | None = None,
        channels: int = 64,
        n_blocks: int = 4,
        upsample: str = "transpose",
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if channels < 2:
            raise ConfigError(f"autohr channels must be >= 2, got {channels}")
        if n_blocks < 2:
            raise ConfigError(f"autohr n_blocks must be >= 2 (two temporal poolings), got {n_blocks}")
        self.genotype = DEFAULT_GENOTYPE if genotype is None else as_genotype(genotype)
        self.genotype.check_blocks(n_blocks)
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            conv_block(in_channels, channels // 2, (1, 5, 5)),
            nn.MaxPool3d((1, 2, 2), ceil_mode=True),
            conv_block(channels // 2, channels, (3, 3, 3)),
        )
        n = self.genotype.n_intermediate
        self.cells = nn.ModuleList(Cell(self.genotype.cell_for_block(b), n, channels) for b in range(n_blocks))
        # pooling after every block but the last: the first two also halve time
        self.pools = nn.ModuleList(
            nn.MaxPool3d((2, 2, 2) if b < 2 else (1, 2, 2), ceil_mode=True) for b in range(n_blocks - 1)
        )
        self.up1 = TemporalUpsample(channels, upsample)
        self.up2 = TemporalUpsample(channels, upsample)
        self.head = PulseHead(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_clip(x, self.in_channels, "autohr")
        t0 = x.shape[2]
        t1 = (t0 + 1) // 2
        x = self.stem(x)
        for b, cell in enumerate(self.cells):
            x = cell(x)
            if b < len(self.pools):
                x = self.pools[b](x)
        x = self.up2(self.up1(x, t1), t0)
        return self.head(x)
