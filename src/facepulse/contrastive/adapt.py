"""Test-time adaptation: fine-tune a pulse model on one unlabelled video, then predict.

Speth et al., CVPR 2023 (SiNC spectral priors as a label-free objective; the paper also
adapts to new data with it). The model is trained for a bounded number of steps on
random clips of the video itself, augmented as in training
(:func:`facepulse.contrastive.prior.prior_augment`) and scored by
:class:`facepulse.losses.SpectralPriorLoss`; no label is read. The caller's model is
never changed: a copy is adapted. ``facepulse predict VIDEO --model M --adapt`` uses it.

BatchNorm layers keep their trained statistics (the model runs in eval mode while its
weights move): a handful of clips of one video is too little to re-estimate them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from facepulse.contrastive.prior import prior_augment
from facepulse.errors import ConfigError, InputError, SignalTooShortError
from facepulse.losses import SpectralPriorLoss
from facepulse.models.inference import PulseModel, TorchRunner

#: Default number of optimisation steps of ``--adapt``.
DEFAULT_ADAPT_STEPS = 40


@dataclass
class AdaptResult:
    """An adapted copy of a model and how its loss went (one value per step)."""

    model: PulseModel
    losses: list[float] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.losses)


def adapt_model(
    model: PulseModel,
    frames: np.ndarray,
    fps: float,
    clip_len: int,
    *,
    steps: int = DEFAULT_ADAPT_STEPS,
    batch_size: int = 4,
    lr: float = 1e-4,
    factor_range: tuple[float, float] = (1.0, 1.25),
    prior: SpectralPriorLoss | None = None,
    seed: int = 0,
    progress: bool = False,
) -> AdaptResult:
    """Fine-tune a copy of ``model`` on the face crops of one video without labels.

    Parameters
    ----------
    model : the trained :class:`PulseModel` (raw clips in, pulse out); not modified.
    frames : (N, S, S, 3) face crops at ``fps`` (the model's frame rate and size).
    clip_len : frames per training clip (the model's); views are the longest window that
        fits after resampling by ``factor_range[1]``.
    steps : optimisation steps (the time bound); batch_size : clips per step.
    lr : Adam learning rate; factor_range : frequency-resampling range (>= 1: whole frames).
    prior : the loss (default: :class:`SpectralPriorLoss` with its defaults).
    seed : the clips and augmentations are drawn from it (reproducible).
    progress : a progress bar on stderr.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"adapt: expected face crops (N, S, S, 3), got {frames.shape}")
    if steps < 1 or batch_size < 1:
        raise ConfigError(f"adapt: steps and batch_size must be >= 1, got {steps}, {batch_size}")
    n = frames.shape[0]
    if n < clip_len:
        raise SignalTooShortError(f"adapt: the video has {n} frames, fewer than the model's clip of {clip_len}")
    view_len = int(np.floor((clip_len - 1) / factor_range[1] + 1e-9)) + 1
    prior = prior if prior is not None else SpectralPriorLoss()
    adapted = copy.deepcopy(model).eval()  # eval: BatchNorm keeps its statistics
    params = [p for p in adapted.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(int(seed))
    video = torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2))).float()  # (3, N, S, S)
    bar = _progress(progress, steps)
    losses: list[float] = []
    try:
        for _ in range(steps):
            starts = torch.randint(0, n - clip_len + 1, (batch_size,), generator=gen)
            clips = torch.stack([video[:, s : s + clip_len] for s in starts.tolist()])
            views, _ = prior_augment(clips, view_len, factor_range, 0.5, 0.5, gen)
            loss = prior(adapted(views).float(), fps=float(fps))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if bar is not None:
                bar[0].advance(bar[1])
    finally:
        if bar is not None:
            bar[0].stop()
    return AdaptResult(adapted.eval(), losses)


def adapt_runner(
    runner: object, frames: np.ndarray, *, steps: int = DEFAULT_ADAPT_STEPS, progress: bool = False, seed: int = 0
) -> TorchRunner:
    """A :class:`TorchRunner` of ``runner``'s model adapted to ``frames`` (see :func:`adapt_model`).

    ``runner`` must be a PyTorch runner (a ``.ckpt`` model); ONNX models cannot be trained.
    """
    if not isinstance(runner, TorchRunner):
        raise ConfigError("--adapt needs a trained checkpoint (.ckpt); an ONNX model cannot be fine-tuned")
    info = runner.info
    result = adapt_model(
        runner.model.cpu(), frames, info.fps, info.clip_len, steps=steps, progress=progress, seed=seed
    )
    return TorchRunner(result.model, info, runner.device)


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]adapting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    bar.start()
    return bar, bar.add_task("adapt", total=total)
