"""The AutoHR search supernet: mixed ops, mixed cells and the stacked network.

Yu et al., "AutoHR: A Strong End-to-end Baseline for Remote Heart Rate Measurement with
Neural Searching", IEEE SPL 2020 (search space, Sec. II-B); relaxation of Liu et al.,
"DARTS: Differentiable Architecture Search", ICLR 2019; partial channels of Xu et al.,
"PC-DARTS", ICLR 2020.

Every edge of a cell carries all candidate ops; its output is the ``softmax(alpha)``
weighted sum of them. Node and edge conventions are those of
:mod:`facepulse.models.genotype`: node 0 is the cell input, intermediate node ``j``
receives an edge from every node ``i < j``, the output node ``N + 1`` receives one edge
from every intermediate node and sums them. The edges of a cell are numbered as
:func:`facepulse.models.genotype.all_edges` lists them, which is the row order of the
architecture weights ``alphas`` (shape ``(n_cells, n_edges, n_ops)``; ``n_cells`` is 1
when the alphas are shared by all blocks, else ``n_blocks``).

Outside the cells the supernet *is* the ``autohr`` network: it builds an
:class:`~facepulse.models.autohr.AutoHR` and swaps its ``cells`` for mixed cells, so the
stem, pooling and head of a derived network are identical to those searched with.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from facepulse.errors import ConfigError
from facepulse.models.autohr import AutoHR
from facepulse.models.genotype import all_edges
from facepulse.models.ops import OPS, SEARCH_SPACE, build_op
from facepulse.models.physnet import check_clip

#: Initial scale of the architecture weights (DARTS: 1e-3 * N(0, 1)).
ALPHA_INIT_SCALE = 1e-3


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` channel groups: ``(B, C, T, H, W) -> (B, C, T, H, W)``.

    Zhang et al., "ShuffleNet", CVPR 2018 (channel shuffle), as PC-DARTS uses it so that
    another slice of channels goes through the ops in the next cell.
    """
    if groups == 1:
        return x
    b, c = x.shape[:2]
    return x.reshape(b, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


def _fusable(op: nn.Module) -> bool:
    """Whether ``op`` is a stride-1 ``conv -> BatchNorm3d -> ReLU`` with same-size padding."""
    if not (isinstance(op, nn.Sequential) and len(op) == 3):
        return False
    conv, bn, act = op
    return (
        isinstance(conv, nn.Conv3d)
        and conv.stride == (1, 1, 1)
        and conv.groups == 1
        and conv.bias is None
        and conv.padding_mode == "zeros"
        and all(k % 2 == 1 for k in conv.kernel_size)
        and conv.padding == tuple(d * (k // 2) for d, k in zip(conv.dilation, conv.kernel_size))
        and isinstance(bn, nn.BatchNorm3d)
        and bn.track_running_stats
        and bn.momentum is not None
        and type(act) is nn.ReLU
    )


def fused_conv_bn_relu(
    x: torch.Tensor, ops: Sequence[nn.Sequential], scales: torch.Tensor | None = None
) -> torch.Tensor:
    """Run several same-dilation ``conv -> BN -> ReLU`` ops as one convolution.

    Same values, gradients and BatchNorm running statistics as running each op alone:
    every kernel (a TDC one as its folded :meth:`TDConv3d.effective_weight`) is
    zero-padded around its centre to the largest kernel, the kernels are stacked along
    the output channels and convolved once; BatchNorm is per channel, so the stacked
    channels are normalised in one call and each op's running statistics written back.
    One big convolution is several times faster on a CPU than many small ones.
    ``scales`` ``(K,)`` (>= 0, e.g. softmax op weights) multiply each op's output; they
    are folded into the BatchNorm scale and shift, exact because
    ``s * relu(z) = relu(s * z)`` for ``s >= 0``.

    Shapes: ``x`` ``(B, C, T, H, W)`` -> ``(B, K, C_out, T, H, W)`` for ``K`` ops.
    """
    convs = [op[0] for op in ops]
    size = [max(c.kernel_size[d] for c in convs) for d in range(3)]
    kernels = []
    for conv in convs:
        w = conv.effective_weight() if hasattr(conv, "effective_weight") else conv.weight
        pad = []
        for d in (2, 1, 0):  # F.pad order: last dimension first
            extra = (size[d] - conv.kernel_size[d]) // 2
            pad += [extra, extra]
        kernels.append(F.pad(w, pad))
    dilation = convs[0].dilation
    padding = tuple(dl * (k // 2) for dl, k in zip(dilation, size))
    y = F.conv3d(x, torch.cat(kernels), padding=padding, dilation=dilation)
    bns = [op[1] for op in ops]
    training = bns[0].training
    mean = torch.cat([bn.running_mean for bn in bns])
    var = torch.cat([bn.running_var for bn in bns])
    weight = torch.cat([bn.weight for bn in bns]) if bns[0].affine else None
    bias = torch.cat([bn.bias for bn in bns]) if bns[0].affine else None
    if scales is not None:
        per_channel = scales.repeat_interleave(y.shape[1] // len(ops))
        weight = per_channel if weight is None else weight * per_channel
        bias = None if bias is None else bias * per_channel
    y = F.batch_norm(y, mean, var, weight, bias, training, bns[0].momentum, bns[0].eps)
    if training:
        with torch.no_grad():
            for bn, m, v in zip(bns, mean.chunk(len(bns)), var.chunk(len(bns)), strict=True):
                bn.running_mean.copy_(m)
                bn.running_var.copy_(v)
                bn.num_batches_tracked.add_(1)
    y = F.relu(y)
    return y.reshape(y.shape[0], len(ops), -1, *y.shape[2:])


class MixedOp(nn.Module):
    """One supernet edge: ``sum_k w_k op_k(x)`` over the candidate ops.

    Liu et al., DARTS, ICLR 2019 (continuous relaxation, eq. 2); with ``partial > 1``
    only the first ``C / partial`` channels go through the ops and the rest bypass them,
    followed by a channel shuffle (Xu et al., PC-DARTS, ICLR 2020, eq. 3).

    Shapes: ``x`` ``(B, C, T, H, W)``, ``weights`` ``(n_ops,)`` (summing to 1) ->
    ``(B, C, T, H, W)``. The ``none`` op is not run: it adds ``w * 0``, which changes
    neither the value nor any gradient (its weight still enters the softmax). With
    ``fuse`` (default), the ``conv -> BN -> ReLU`` ops of equal dilation run as one
    convolution (:func:`fused_conv_bn_relu`, same result); parameters stay in ``ops``.
    """

    def __init__(
        self, channels: int, op_names: Sequence[str], partial: int = 1, affine: bool = False, fuse: bool = True
    ) -> None:
        super().__init__()
        if partial < 1 or channels % partial:
            raise ConfigError(f"partial_channels {partial} must divide the channel count {channels}")
        self.op_names = tuple(op_names)
        self.partial = partial
        width = channels // partial
        self.ops = nn.ModuleList(build_op(name, width, 1, affine=affine) for name in self.op_names)
        active = [k for k, name in enumerate(self.op_names) if name != "none"]
        groups: dict[tuple[int, ...], list[int]] = {}
        if fuse:
            for k in active:
                if _fusable(self.ops[k]):
                    groups.setdefault(self.ops[k][0].dilation, []).append(k)
        self._groups = [ks for ks in groups.values() if len(ks) > 1]
        fused = {k for ks in self._groups for k in ks}
        self._single = [k for k in active if k not in fused]

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.partial > 1:
            width = x.shape[1] // self.partial
            x_in, x_by = x[:, :width], x[:, width:]
        else:
            x_in = x
        out = x_in * 0.0 if not (self._single or self._groups) else None  # every op is "none"
        for k in self._single:
            y = weights[k] * self.ops[k](x_in)
            out = y if out is None else out + y
        for ks in self._groups:
            y = fused_conv_bn_relu(x_in, [self.ops[k] for k in ks], weights[ks]).sum(dim=1)
            out = y if out is None else out + y
        if self.partial > 1:
            out = channel_shuffle(torch.cat([out, x_by], dim=1), self.partial)
        return out


class MixedCell(nn.Module):
    """A supernet cell: every candidate edge of the AutoHR DAG is a :class:`MixedOp`.

    Shapes: ``x`` ``(B, C, T, H, W)``, ``weights`` ``(n_edges, n_ops)``, optional
    ``edge_weights`` ``(n_edges,)`` (PC-DARTS: each edge into an intermediate node is scaled
    by its weight; edges into the output node are not) -> ``(B, C, T, H, W)``.
    """

    def __init__(
        self, channels: int, n_intermediate: int, op_names: Sequence[str], partial: int = 1, affine: bool = False
    ) -> None:
        super().__init__()
        self.n_intermediate = n_intermediate
        self.edges = tuple(all_edges(n_intermediate))  # topological: by destination
        self.mixed = nn.ModuleList(MixedOp(channels, op_names, partial, affine) for _ in self.edges)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, edge_weights: torch.Tensor | None = None) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x] + [None] * (self.n_intermediate + 1)
        for e, ((src, dst), mixed) in enumerate(zip(self.edges, self.mixed, strict=True)):
            y = mixed(nodes[src], weights[e])
            if edge_weights is not None and dst <= self.n_intermediate:
                y = edge_weights[e] * y  # PC-DARTS edge normalisation
            nodes[dst] = y if nodes[dst] is None else nodes[dst] + y
        out = nodes[-1]
        assert out is not None
        return out


class Supernet(nn.Module):
    """AutoHR supernet: clip ``(B, 3, T, H, W)`` float -> pulse ``(B, T)``.

    Yu et al., AutoHR, IEEE SPL 2020 (searched backbone), relaxed as DARTS (Liu et al.,
    ICLR 2019).

    Parameters
    ----------
    channels : width C of every cell (the derived network should use the same).
    n_blocks : number of stacked cells (AutoHR: 4).
    n_intermediate : intermediate nodes per cell (AutoHR: 3, B1-B3).
    op_names : candidate ops (names in ``OPS``), the column order of ``alphas``;
        default :data:`~facepulse.models.ops.SEARCH_SPACE`.
    shared_alphas : one set of architecture weights for all blocks (True) or one per block.
    partial_channels : PC-DARTS ``k``: ``C / k`` channels go through the mixed ops.
    edge_normalization : PC-DARTS edge normalisation (Xu et al., ICLR 2020, Sec. 3.3):
        learnable edge weights ``betas``; node ``j`` sums its incoming edges weighted by
        ``softmax(betas)`` over those edges, which steadies the architecture that partial
        channels would otherwise make noisy. Default: on when ``partial_channels > 1``.
    upsample, in_channels : as :class:`~facepulse.models.autohr.AutoHR`.

    Attributes
    ----------
    alphas : ``nn.Parameter`` ``(n_cells, n_edges, n_ops)``, the architecture weights.
    betas : ``nn.Parameter`` ``(n_cells, n_edges)`` edge weights (logits), or None
        without edge normalisation (entries of edges into the output node are unused).
    backbone : the ``AutoHR`` network whose ``cells`` are :class:`MixedCell` s.
    """

    def __init__(
        self,
        channels: int = 16,
        n_blocks: int = 4,
        n_intermediate: int = 3,
        op_names: Sequence[str] | None = None,
        shared_alphas: bool = True,
        partial_channels: int = 1,
        upsample: str = "transpose",
        in_channels: int = 3,
        edge_normalization: bool | None = None,
    ) -> None:
        super().__init__()
        names = tuple(SEARCH_SPACE if op_names is None else op_names)
        if not names:
            raise ConfigError("search ops: empty; need at least one candidate op")
        for name in names:
            OPS.get(name)  # ConfigError naming an unknown op
        if len(set(names)) != len(names):
            raise ConfigError(f"search ops: duplicate names in {list(names)}")
        if n_intermediate < 1:
            raise ConfigError(f"search n_intermediate must be >= 1, got {n_intermediate}")
        self.op_names = names
        self.n_blocks = n_blocks
        self.n_intermediate = n_intermediate
        self.shared_alphas = shared_alphas
        self.partial_channels = partial_channels
        self.channels = channels
        self.in_channels = in_channels
        self.backbone = AutoHR(channels=channels, n_blocks=n_blocks, upsample=upsample, in_channels=in_channels)
        self.backbone.cells = nn.ModuleList(
            MixedCell(channels, n_intermediate, names, partial_channels) for _ in range(n_blocks)
        )
        n_cells = 1 if shared_alphas else n_blocks
        n_edges = len(all_edges(n_intermediate))
        self.alphas = nn.Parameter(ALPHA_INIT_SCALE * torch.randn(n_cells, n_edges, len(names)))
        self.edge_normalization = partial_channels > 1 if edge_normalization is None else bool(edge_normalization)
        self.betas = (
            nn.Parameter(ALPHA_INIT_SCALE * torch.randn(n_cells, n_edges)) if self.edge_normalization else None
        )
        edges = all_edges(n_intermediate)
        # (n_edges, n_edges) bool: same[e, f] when edges e and f end in the same intermediate node
        dst = torch.tensor([d for _, d in edges])
        self.register_buffer("_same_node", (dst[:, None] == dst[None, :]) & (dst[:, None] <= n_intermediate),
                             persistent=False)

    # ------------------------------------------------------------ parameter groups
    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture weights (optimised on the validation split): alphas (and betas)."""
        return [self.alphas] if self.betas is None else [self.alphas, self.betas]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every network weight except the alphas and betas (optimised on the training split)."""
        return [p for name, p in self.named_parameters() if name not in ("alphas", "betas")]

    def edge_weights(self) -> torch.Tensor | None:
        """``(n_cells, n_edges)`` PC-DARTS edge weights: softmax of ``betas`` over the edges
        into each intermediate node (they sum to 1 per node), 1 for edges into the output
        node; None without edge normalisation."""
        if self.betas is None:
            return None
        same = self._same_node
        # row e: the betas of the edges into e's node (others masked; finite, so rows of
        # output edges stay finite too and pass no NaN into the gradient)
        logits = self.betas[:, None, :].masked_fill(~same, -1e9)  # (n_cells, n_edges, n_edges)
        w = torch.softmax(logits, dim=-1)
        own = torch.diagonal(w, dim1=-2, dim2=-1)  # weight of edge e among its node's edges
        into_output = ~same.any(dim=-1)
        return torch.where(into_output, torch.ones_like(own), own)

    def op_weights(self) -> torch.Tensor:
        """``softmax(alphas)`` over the ops: ``(n_cells, n_edges, n_ops)``, rows sum to 1."""
        return torch.softmax(self.alphas, dim=-1)

    # --------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same data flow as AutoHR.forward, with the cell weights passed in.
        check_clip(x, self.in_channels, "supernet")
        net = self.backbone
        weights = self.op_weights()
        edge_weights = self.edge_weights()
        t0 = x.shape[2]
        t1 = (t0 + 1) // 2
        x = net.stem(x)
        for b, cell in enumerate(net.cells):
            c = 0 if self.shared_alphas else b
            x = cell(x, weights[c], None if edge_weights is None else edge_weights[c])
            if b < len(net.pools):
                x = net.pools[b](x)
        x = net.up2(net.up1(x, t1), t0)
        return net.head(x)
