"""Supervised training of a pulse model (``kind: supervised``) as a LightningModule.

A batch is a dict (see :class:`facepulse.train.data.ClipDataModule`)::

    clip   (B, 3, T, H, W) float32, pixel values 0..255
    ppg    (B, T) reference pulse on the clip's frames
    fps    (B,) frame rate, Hz
    hr_bpm (B,) reference heart rate of the clip, beats/min

The network (``self.model``, a :data:`facepulse.models.MODELS` entry) sees the clip
normalised as ``config.model.normalize`` says and predicts the pulse ``(B, T)``; the loss
is ``config.loss`` from :data:`facepulse.losses.LOSSES` (e.g. ``hybrid``: lambda * negative
Pearson + frequency cross-entropy, AutoHR). Model selection uses ``val_mae_bpm``: the mean
absolute error between the spectral-peak HR of each predicted validation clip and its
reference HR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import nn

from facepulse.config import ExperimentConfig
from facepulse.errors import ConfigError, InputError
from facepulse.losses import build_loss, rfft_psd
from facepulse.losses.spectral import as_batch_values, band_mask
from facepulse.models import build_model
from facepulse.models.normalize import diff_signal, normalize_clip
from facepulse.train.tasks import TASKS

Batch = Mapping[str, Any]

# HR search band of the validation metric (bpm): the band of the frequency losses.
VAL_BAND_BPM = (40.0, 180.0)


def clip_hr_bpm(
    pulse: torch.Tensor, fps: float | torch.Tensor, min_bpm: float = 40.0, max_bpm: float = 180.0
) -> torch.Tensor:
    """Heart rate at the in-band peak of each pulse's zero-padded, Hann-windowed periodogram.

    de Haan & Jeanne, IEEE TBME 2013 (HR = frequency of the spectral peak in the HR band).

    Parameters
    ----------
    pulse : (B, T) pulses; fps : Hz, scalar or (B,); min_bpm, max_bpm : HR band (bpm).

    Returns
    -------
    (B,) heart rate in beats per minute (no gradient).
    """
    freqs_hz, power = rfft_psd(pulse.detach().float(), fps, window="hann")
    power = torch.where(band_mask(freqs_hz, min_bpm / 60.0, max_bpm / 60.0), power, torch.zeros_like(power))
    return torch.gather(freqs_hz, 1, power.argmax(dim=-1, keepdim=True))[:, 0] * 60.0


def pulse_from_output(pred: torch.Tensor, normalize: str) -> torch.Tensor:
    """The pulse of a model output ``(B, T)``: a ``diff`` model predicts the pulse's
    derivative (DeepPhys, Chen & McDuff ECCV 2018), integrated back by a cumulative sum:
    ``d[t] ~ x[t + 1] - x[t]`` gives ``x[t] = sum(d[:t])``."""
    if normalize != "diff":
        return pred
    return torch.cat([torch.zeros_like(pred[:, :1]), torch.cumsum(pred, dim=1)[:, :-1]], dim=1)


def build_optimizer(params, config: ExperimentConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optim`` over ``params``."""
    o = config.optim
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=0.9, weight_decay=o.weight_decay)
    if o.optimizer == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)



def init_from(model: nn.Module, path: str, name: str) -> None:
    """Load the backbone weights of another facepulse checkpoint into ``model`` (fine-tuning;
    ``model.init_from``); ConfigError naming the first weight that does not fit."""
    from facepulse.models.inference import read_checkpoint

    state = read_checkpoint(path)["state_dict"]
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as err:  # same names, other shapes (e.g. another width)
        first = str(err).strip().splitlines()[1:2] or [str(err)]
        raise ConfigError(f"model.init_from {path}: its weights do not fit model {name!r} ({first[0].strip()})") from None
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise ConfigError(
            f"model.init_from {path}: its weights do not fit model {name!r} "
            f"({'missing' if missing else 'unexpected'} {key!r})"
        )

class SupervisedModule(L.LightningModule):
    """Supervised pulse regression of ``config.model`` with ``config.loss``.

    Attributes
    ----------
    model : the backbone, normalised clips (B, 3, T, H, W) -> (B, T).
    model_output : ``"diff"`` when it predicts the pulse's derivative, else ``"pulse"``.
    loss_fn : a :class:`facepulse.losses.PulseLoss`.
    monitor, monitor_mode : metric for checkpoint selection and early stopping.
    """

    monitor = "val_mae_bpm"
    monitor_mode = "min"

    def __init__(self, config: ExperimentConfig) -> None:
        super().__init__()
        self.config = config
        self.save_hyperparameters({"config": config.model_dump(mode="json")})
        self.model: nn.Module = build_model(config.model.name, **config.model.params)
        # a diff-normalised model learns the PPG's derivative (see _predict)
        self.model_output = "diff" if config.model.normalize == "diff" else "pulse"
        self.loss_fn = build_loss(config.loss.name, **config.loss.params)
        if config.model.init_from:
            init_from(self.model, config.model.init_from, config.model.name)

    # ------------------------------------------------------------------------ steps
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Raw model output (B, T) of pixel-valued clips (B, 3, T, H, W)."""
        return self.model(normalize_clip(clips, self.config.model.normalize))

    def _predict(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        for key in ("clip", "ppg", "fps", "hr_bpm"):
            if key not in batch or batch[key] is None:
                raise InputError(f"supervised training: batch has no {key!r} (needs labelled clips)")
        # float32 for the losses: FFTs have no bf16 kernels (bf16-mixed precision)
        pred = self(batch["clip"]).float()
        b = pred.shape[0]
        target = batch["ppg"].to(pred)
        if self.config.model.normalize == "diff":
            target = diff_signal(target)
        fps = as_batch_values(batch["fps"], b, pred, "fps")
        hr = as_batch_values(batch["hr_bpm"], b, pred, "hr_bpm")
        return pred, target, fps, hr

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        pred, target, fps, hr = self._predict(batch)
        loss = self.loss_fn(pred, target, fps=fps, hr_bpm=hr)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=pred.shape[0])
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        pred, target, fps, hr = self._predict(batch)
        b = pred.shape[0]
        loss = self.loss_fn(pred, target, fps=fps, hr_bpm=hr)
        hr_pred = clip_hr_bpm(pulse_from_output(pred, self.config.model.normalize), fps, *VAL_BAND_BPM)
        self.log("val_loss", loss, prog_bar=True, batch_size=b, sync_dist=True)
        self.log("val_mae_bpm", (hr_pred - hr).abs().mean(), prog_bar=True, batch_size=b, sync_dist=True)

    def configure_optimizers(self):
        return build_optimizer(self.model.parameters(), self.config)


@TASKS.register("supervised")
def build_supervised(config: ExperimentConfig) -> SupervisedModule:
    """Supervised pulse regression with a LOSSES loss (PhysNet, AutoHR...)."""
    return SupervisedModule(config)
