"""Per-sample, per-view-pair reference of the multi-view triplet loss (the reference
implementation's loops), from the shared loss functions: the test's oracle and the
benchmark's baseline."""

from __future__ import annotations

import torch

from facepulse.losses import band_psd, max_cross_correlation, psd_mse


def loop_triplet(name: str, a, p, n, fps: float) -> torch.Tensor:
    """(B,) triplet loss of views a, p, n (B, N, W) with distance ``name`` (psd_mse, l1, mcc)."""

    def dist(x, y):
        if name == "psd_mse":
            return psd_mse(x, y, fps)
        if name == "mcc":
            return -max_cross_correlation(x, y, fps)
        _, px, mask = band_psd(x, fps)
        _, py, _ = band_psd(y, fps)
        return (px - py).abs().sum(-1) / mask.sum(-1)

    out = []
    for s in range(a.shape[0]):
        pos = [dist(a[s, i][None], p[s, j][None]) for i in range(a.shape[1]) for j in range(p.shape[1])]
        neg = [dist(a[s, i][None], n[s, j][None]) for i in range(a.shape[1]) for j in range(n.shape[1])]
        out.append(torch.stack(pos).mean() - torch.stack(neg).mean())
    return torch.stack(out)
