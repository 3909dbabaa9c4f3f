"""Self-supervised rPPG from unlabelled video: frequency contrast (Gideon & Stent, ICCV 2021).

* :mod:`~facepulse.contrastive.resample` : per-sample temporal resampling and random views.
* :mod:`~facepulse.contrastive.triplet` : multi-view triplet loss (PSD-MSE, L1, MCC distances).
* :mod:`~facepulse.contrastive.memory_bank` : FIFO queue of earlier spectra as extra negatives.
* :mod:`~facepulse.contrastive.saliency` : learned saliency sampler (Recasens et al. 2018),
  registered as the model ``saliency`` (any backbone behind it).
* :mod:`~facepulse.contrastive.module` : the LightningModule, ``kind: contrastive``
  (registered by :mod:`~facepulse.contrastive.task`).

Train with ``facepulse train --config configs/contrastive_synthetic.yaml``; the checkpoint
then predicts and evaluates like any supervised one.
"""

from facepulse.contrastive.memory_bank import MemoryBank
from facepulse.contrastive.resample import (
    max_view_len,
    resample_clips,
    resample_signals,
    sample_factors,
    sample_views,
    valid_length,
)
from facepulse.contrastive.saliency import (
    SaliencyModel,
    SaliencyNet,
    SaliencySampler,
    gaussian_kernel,
    saliency_grid,
    saliency_sparsity,
    saliency_temporal,
)
from facepulse.contrastive.triplet import DISTANCES, MultiViewTripletLoss, TripletTerms, build_distance

__all__ = [
    "DISTANCES",
    "MemoryBank",
    "MultiViewTripletLoss",
    "SaliencyModel",
    "SaliencyNet",
    "SaliencySampler",
    "TripletTerms",
    "build_distance",
    "gaussian_kernel",
    "max_view_len",
    "resample_clips",
    "resample_signals",
    "sample_factors",
    "sample_views",
    "saliency_grid",
    "saliency_sparsity",
    "saliency_temporal",
    "valid_length",
]
