"""Multi-view triplet loss of the frequency contrast, vectorised over batch and views.

Gideon & Stent, ICCV 2021 (eq. 1): with N views ``a_i``, ``p_j``, ``n_j`` (length W) of
the anchor, positive and negative branches of each sample,

``L = mean_{i,j} d(a_i, p_j) - mean_{i,j} d(a_i, n_j)``

and, with a memory bank (:mod:`facepulse.contrastive.memory_bank`), an extra
``- bank_weight * mean_{i,k} d(a_i, q_k)`` over queued spectra ``q_k`` of earlier batches.

A distance is two steps, so that views are transformed once and then compared in all
N x M pairs by broadcasting: ``embed(views, fps) -> features`` and
``pairwise(fa (B, N, F), fb (B, M, F)) -> (B, N, M)``. Registered distances (``DISTANCES``):

* ``psd_mse`` : mean squared difference of band-normalised power spectra (the paper's choice).
* ``l1`` : mean absolute difference of the same spectra.
* ``mcc`` : negative maximum cross-correlation of the views (time domain, band-passed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facepulse.errors import ConfigError, InputError
from facepulse.losses.frequency import SSL_MAX_BPM, SSL_MIN_BPM, band_psd, max_cross_correlation
from facepulse.losses.spectral import as_batch_values, band_mask, check_band, default_n_fft, rfft_freqs_hz
from facepulse.registry import Registry


class ViewDistance:
    """Base class: ``embed`` views once, then ``pairwise`` distances (lower = more alike)."""

    #: True when ``embed`` returns power spectra that a memory bank can hold.
    spectral: bool = True

    def __init__(
        self,
        min_bpm: float = SSL_MIN_BPM,
        max_bpm: float = SSL_MAX_BPM,
        n_fft: int | None = None,
        window: str | None = None,
    ) -> None:
        check_band(min_bpm, max_bpm, "contrastive distance")
        self.min_bpm, self.max_bpm, self.n_fft, self.window = min_bpm, max_bpm, n_fft, window

    def embed(self, views: torch.Tensor, fps: torch.Tensor) -> torch.Tensor:
        """(B, N, W) views at ``fps`` (B,) -> (B, N, F) features."""
        b, n, w = views.shape
        fps_views = fps.repeat_interleave(n)
        _, psd, _ = band_psd(views.reshape(b * n, w), fps_views, self.min_bpm, self.max_bpm, self.n_fft, self.window)
        return psd.reshape(b, n, -1)

    def band_bins(self, views: torch.Tensor, fps: torch.Tensor) -> torch.Tensor:
        """(B,) number of FFT bins inside the HR band for views of this length."""
        n_fft = default_n_fft(views.shape[2]) if self.n_fft is None else int(self.n_fft)
        mask = band_mask(rfft_freqs_hz(n_fft, fps.to(views.dtype)), self.min_bpm / 60.0, self.max_bpm / 60.0)
        return mask.sum(dim=-1).clamp(min=1).to(views.dtype)

    def pairwise(self, fa: torch.Tensor, fb: torch.Tensor, fps: torch.Tensor, n_bins: torch.Tensor) -> torch.Tensor:
        """(B, N, F), (B, M, F) -> (B, N, M) distances."""
        raise NotImplementedError


DISTANCES: Registry[type[ViewDistance]] = Registry("contrastive distance")


@DISTANCES.register("psd_mse")
class PSDMSEDistance(ViewDistance):
    """Mean over the band bins of the squared difference of band-normalised PSDs.

    Gideon & Stent, ICCV 2021 (PSD-MSE). Pairwise form of
    :func:`facepulse.losses.psd_mse`; unit (fraction of band power)^2.
    """

    def pairwise(self, fa, fb, fps, n_bins):
        # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b : all N x M pairs by one batched matmul
        sq = (fa * fa).sum(-1)[:, :, None] + (fb * fb).sum(-1)[:, None, :] - 2 * fa @ fb.transpose(1, 2)
        return sq.clamp(min=0) / n_bins[:, None, None]


@DISTANCES.register("l1")
class L1Distance(ViewDistance):
    """Mean over the band bins of the absolute difference of band-normalised PSDs.

    Gideon & Stent, ICCV 2021 (L1 variant of the triplet distance); unit: fraction of band power.
    """

    def pairwise(self, fa, fb, fps, n_bins):
        return torch.cdist(fa, fb, p=1) / n_bins[:, None, None]


@DISTANCES.register("mcc")
class NegMCCDistance(ViewDistance):
    """Negative maximum cross-correlation of two views, in [-1, 1].

    Gideon & Stent, ICCV 2021 (MCC, see :func:`facepulse.losses.max_cross_correlation`).
    Works on the signals, so a memory bank (of spectra) cannot be used with it.
    """

    spectral = False

    def embed(self, views, fps):
        return views

    def pairwise(self, fa, fb, fps, n_bins):
        b, n, w = fa.shape
        m = fb.shape[1]
        xa = fa[:, :, None, :].expand(b, n, m, w).reshape(-1, w)
        xb = fb[:, None, :, :].expand(b, n, m, w).reshape(-1, w)
        fps_pairs = fps.repeat_interleave(n * m)
        mcc = max_cross_correlation(xa, xb, fps_pairs, self.min_bpm, self.max_bpm, self.n_fft)
        return -mcc.reshape(b, n, m)


def build_distance(name: str, **options) -> ViewDistance:
    """The registered view distance ``name`` (ConfigError for an unknown name)."""
    return DISTANCES.get(name)(**options)


@dataclass
class TripletTerms:
    """Per-sample terms of the triplet loss, each (B,).

    positive : mean anchor-positive distance; negative : mean anchor-negative distance;
    bank : mean anchor-to-memory-bank distance (zeros without a bank); loss : the total.
    """

    loss: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    bank: torch.Tensor


class MultiViewTripletLoss(nn.Module):
    """Multi-view triplet loss (Gideon & Stent, ICCV 2021, eq. 1), see the module docstring.

    Parameters
    ----------
    distance : a ``DISTANCES`` name (``psd_mse``, ``l1``, ``mcc``).
    min_bpm, max_bpm : HR band of the spectra (bpm).
    n_fft : FFT length of the spectra (default: 4x zero padding of the views).
    window : taper of the views before their spectra (None, as the paper, or ``"hann"``).
    bank_weight : weight of the memory-bank negatives.
    reduction : ``"mean"`` (scalar) or ``"none"`` ((B,) values).

    Call ``loss(anchor, positive, negative, fps, bank=None)`` with views (B, N, W),
    fps scalar or (B,), and optionally queued spectra (K, F) from :meth:`spectra`.
    """

    def __init__(
        self,
        distance: str = "psd_mse",
        min_bpm: float = SSL_MIN_BPM,
        max_bpm: float = SSL_MAX_BPM,
        n_fft: int | None = None,
        bank_weight: float = 1.0,
        reduction: str = "mean",
        window: str | None = None,
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "none"):
            raise ConfigError(f"triplet loss: reduction {reduction!r} unknown; available: mean, none")
        self.distance = build_distance(distance, min_bpm=min_bpm, max_bpm=max_bpm, n_fft=n_fft, window=window)
        self.bank_weight = bank_weight
        self.reduction = reduction

    def terms(
        self,
        anchor: torch.Tensor,
        positive: torch.Tensor,
        negative: torch.Tensor,
        fps: float | torch.Tensor,
        bank: torch.Tensor | None = None,
        bank_keep: torch.Tensor | None = None,
    ) -> TripletTerms:
        """All (B,) terms; see :class:`TripletTerms`. ``bank_keep`` (B, K) bool: which
        queued spectra may be negatives of each sample (e.g. not from its own video);
        a sample with none kept gets a bank term of 0."""
        for name, v in (("anchor", anchor), ("positive", positive), ("negative", negative)):
            if v.ndim != 3 or not v.is_floating_point():
                raise InputError(f"triplet loss {name}: expected float views (B, N, W), got {v.dtype} {tuple(v.shape)}")
        if positive.shape[0::2] != anchor.shape[0::2] or negative.shape[0::2] != anchor.shape[0::2]:
            raise InputError(
                f"triplet loss: views differ in batch or length: anchor {tuple(anchor.shape)}, "
                f"positive {tuple(positive.shape)}, negative {tuple(negative.shape)}"
            )
        fps_b = as_batch_values(fps, anchor.shape[0], anchor, "fps")
        d = self.distance
        n_bins = d.band_bins(anchor, fps_b)
        fa, fp, fn = d.embed(anchor, fps_b), d.embed(positive, fps_b), d.embed(negative, fps_b)
        pos = d.pairwise(fa, fp, fps_b, n_bins).mean(dim=(1, 2))
        neg = d.pairwise(fa, fn, fps_b, n_bins).mean(dim=(1, 2))
        loss = pos - neg
        far = torch.zeros_like(pos)
        if bank is not None and bank.shape[0] > 0:
            if not d.spectral:
                raise ConfigError("contrastive memory_bank needs a spectral distance (psd_mse or l1), not mcc")
            if bank.ndim != 2 or bank.shape[1] != fa.shape[2]:
                raise InputError(f"memory bank spectra {tuple(bank.shape)} do not match the views' {fa.shape[2]} bins")
            queued = bank.to(fa)[None].expand(fa.shape[0], -1, -1)
            dist = d.pairwise(fa, queued, fps_b, n_bins)  # (B, N, K)
            if bank_keep is None:
                far = dist.mean(dim=(1, 2))
            else:
                if bank_keep.shape != (fa.shape[0], bank.shape[0]):
                    raise InputError(f"memory bank mask {tuple(bank_keep.shape)} does not match "
                                     f"{fa.shape[0]} samples x {bank.shape[0]} queued spectra")
                keep = bank_keep.to(dist.dtype)[:, None, :]
                far = (dist * keep).sum(dim=(1, 2)) / (keep.sum(dim=2).squeeze(1) * dist.shape[1]).clamp(min=1)
            loss = loss - self.bank_weight * far
        return TripletTerms(loss=loss, positive=pos, negative=neg, bank=far)

    def spectra(self, views: torch.Tensor, fps: float | torch.Tensor) -> torch.Tensor:
        """(B, N, W) views -> (B * N, F) detached normalised spectra, for a memory bank."""
        fps_b = as_batch_values(fps, views.shape[0], views, "fps")
        if not self.distance.spectral:
            raise ConfigError("contrastive memory_bank needs a spectral distance (psd_mse or l1), not mcc")
        return self.distance.embed(views.detach(), fps_b).flatten(0, 1)

    def forward(
        self,
        anchor: torch.Tensor,
        positive: torch.Tensor,
        negative: torch.Tensor,
        fps: float | torch.Tensor,
        bank: torch.Tensor | None = None,
    ) -> torch.Tensor:
        loss = self.terms(anchor, positive, negative, fps, bank).loss
        return loss.mean() if self.reduction == "mean" else loss
