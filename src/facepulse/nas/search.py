"""Bi-level differentiable architecture search of AutoHR cells (Lightning).

Yu et al., "AutoHR", IEEE SPL 2020 (search with the hybrid loss), optimised as Liu et
al., "DARTS: Differentiable Architecture Search", ICLR 2019 (Sec. 2.3, Alg. 1):

* weight step: network weights ``w`` descend ``L_train(w, alpha)`` on a training batch
  (the optimiser of ``config.optim``);
* architecture step: alphas descend ``L_val(w*, alpha)`` on a validation batch (Adam,
  ``search.alpha_lr``), with ``w*`` either ``w`` (``order: first``) or one virtual SGD
  step ``w' = w - xi grad_w L_train`` (``order: second``, ``xi`` = the current weight
  learning rate), whose Hessian-vector product is approximated by finite differences
  (DARTS eq. 7-8).

The weight step only writes gradients of (and updates) the weights, the architecture
step only those of the alphas; the architecture step also leaves BatchNorm running
statistics as they were. Every step is batch-vectorised.

Outputs in ``config.run_dir``: ``last.ckpt`` (each epoch: weights, alphas,
optimiser and scheduler states, RNG states; a rerun resumes from it), ``alphas.jsonl``
(one line per epoch: alphas, op weights, genotype), ``genotype_epochNN.json``, and at the
end ``genotype.json`` + ``genotype.png``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from facepulse.config import DataConfig, ExperimentConfig, SynthClipsConfig, save_config
from facepulse.errors import ConfigError, InputError
from facepulse.losses import build_loss
from facepulse.losses.spectral import as_batch_values
from facepulse.models.genotype import Genotype
from facepulse.models.normalize import diff_signal, normalize_clip
from facepulse.nas.derive import supernet_genotype
from facepulse.nas.draw import draw_genotype
from facepulse.nas.supernet import Supernet
from facepulse.train.module import VAL_BAND_BPM, build_optimizer, clip_hr_bpm, pulse_from_output

Batch = Mapping[str, Any]
LossFn = Callable[[], torch.Tensor]

LAST_CKPT = "last.ckpt"

#: Finite-difference step of the Hessian-vector product, relative to ||dw|| (DARTS: 0.01).
FD_RADIUS = 0.01


# ============================================================================ data
def _render_clips(seeds: Sequence[int], synth: SynthClipsConfig, data: DataConfig):
    """Render the videos of ``seeds`` and cut them into labelled clips (an ``ArrayClips``)."""
    import cv2

    from facepulse.synth import SynthParams, generate_video, sample_params
    from facepulse.synth.params import CameraParams
    from facepulse.train.data import ArrayClips

    # The renderer's smallest frame is 32 px; the face fills most of it (like a face crop).
    render = max(32, data.size + data.size % 2)
    base = SynthParams(
        duration_s=synth.duration_s,
        camera=CameraParams(width=render, height=render, fps=data.fps, exposure_s=min(0.01, 1 / data.fps),
                            face_height_frac=0.8),
    )
    n_frames = base.n_frames
    if n_frames < data.clip_len:
        raise ConfigError(
            f"search.synth.duration_s {synth.duration_s:g} s gives {n_frames} frames < data.clip_len {data.clip_len}"
        )
    starts = range(0, n_frames - data.clip_len + 1, data.clip_stride)
    clips, ppgs, hrs, vids, firsts = [], [], [], [], []
    for seed in seeds:
        video = generate_video(sample_params(synth.scenario, seed=seed, base=base), seed=seed)
        frames = video.frames
        if render != data.size:
            frames = np.stack([cv2.resize(f, (data.size, data.size), interpolation=cv2.INTER_AREA) for f in frames])
        for s in starts:
            clips.append(frames[s : s + data.clip_len])
            ppgs.append(video.ppg[s : s + data.clip_len])
            hrs.append(float(video.hr_bpm[s : s + data.clip_len].mean()))
            vids.append(f"synth{seed:05d}")
            firsts.append(s)
    return ArrayClips(np.stack(clips), np.stack(ppgs), np.array(hrs), data.fps, video_ids=vids, starts=firsts)


def synthetic_splits(synth: SynthClipsConfig, data: DataConfig) -> dict[str, Dataset]:
    """Train / val / test clips (``ArrayClips``) from disjoint synthetic videos.

    Each video is its own person; video seeds are ``synth.seed + k`` for consecutive
    ``k`` (train first, then val, then test), so the same config gives the same clips.
    Clips are ``data.clip_len`` frames every ``data.clip_stride`` frames, ``data.size``
    pixels square, at ``data.fps``; a clip's ``hr_bpm`` is its mean true HR.
    """
    sizes = {"train": synth.n_train, "val": synth.n_val, "test": synth.n_test}
    out: dict[str, Dataset] = {}
    first = synth.seed
    for split, n in sizes.items():
        if n:
            out[split] = _render_clips(range(first, first + n), synth, data)
        first += n
    return out


def search_datamodule(config: ExperimentConfig) -> L.LightningDataModule:
    """The clips of a search: ``search.synth`` in-memory synthetic clips, else ``config.data``
    (both through :class:`facepulse.train.data.ClipDataModule`)."""
    from facepulse.train.data import ClipDataModule

    if config.search.synth is None:
        return ClipDataModule(config)
    splits = synthetic_splits(config.search.synth.model_copy(update={"n_test": 0}), config.data)
    return ClipDataModule(config, train=splits["train"], val=splits["val"])


# ==================================================================== step maths
def _fps_hr(batch: Batch, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    b = like.shape[0]
    return as_batch_values(batch["fps"], b, like, "fps"), as_batch_values(batch["hr_bpm"], b, like, "hr_bpm")


def pulse_loss(model: nn.Module, batch: Batch, loss_fn: nn.Module, normalize: str = "standardize") -> torch.Tensor:
    """Loss of ``model`` on a batch ``{"clip": (B, 3, T, H, W) 0..255, "ppg": (B, T), "fps",
    "hr_bpm"}``; with ``normalize="diff"`` the target is the PPG's derivative (as training)."""
    pred = model(normalize_clip(batch["clip"], normalize)).float()
    target = batch["ppg"].to(pred)
    if normalize == "diff":
        target = diff_signal(target)
    fps, hr = _fps_hr(batch, pred)
    return loss_fn(pred, target, fps=fps, hr_bpm=hr)


@contextmanager
def frozen_buffers(model: nn.Module) -> Iterator[None]:
    """Restore every buffer (BatchNorm running statistics) on exit."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)


def _flat_grads(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


def second_order_alpha_grads(
    weights: Sequence[nn.Parameter],
    alphas: Sequence[nn.Parameter],
    train_loss: LossFn,
    val_loss: LossFn,
    xi: float,
    weight_decay: float = 0.0,
    radius: float = FD_RADIUS,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Gradient of the unrolled validation loss w.r.t. the alphas (DARTS eq. 7-8).

    Liu et al., DARTS, ICLR 2019: ``grad_a L_val(w', a) - xi * H dw`` with
    ``w' = w - xi (grad_w L_train(w, a) + weight_decay w)``, ``dw = grad_w' L_val(w', a)``
    and ``H dw ~ (grad_a L_train(w+, a) - grad_a L_train(w-, a)) / (2 eps)``,
    ``w+- = w +- eps dw``, ``eps = radius / ||dw||`` (DARTS: ``radius = 0.01``).

    The weights are modified in place during the computation and restored bit-exactly;
    no ``.grad`` is written. Returns the alpha gradients and the validation loss at ``w'``.
    """
    weights, alphas = list(weights), list(alphas)
    backup = [w.detach().clone() for w in weights]
    try:
        g_train = _flat_grads(torch.autograd.grad(train_loss(), weights, allow_unused=True), weights)
        with torch.no_grad():
            for w, g in zip(weights, g_train, strict=True):
                w.sub_(xi * (g + weight_decay * w))
        loss_val = val_loss()
        grads = _flat_grads(torch.autograd.grad(loss_val, alphas + weights, allow_unused=True), alphas + weights)
        g_alpha, dw = grads[: len(alphas)], grads[len(alphas) :]
        norm = torch.sqrt(sum((d * d).sum() for d in dw))
        eps = radius / (norm + 1e-12)

        def alpha_grads_at(sign: float) -> list[torch.Tensor]:
            with torch.no_grad():
                for w, w0, d in zip(weights, backup, dw, strict=True):
                    w.copy_(w0 + sign * eps * d)
            return _flat_grads(torch.autograd.grad(train_loss(), alphas, allow_unused=True), alphas)

        g_plus, g_minus = alpha_grads_at(1.0), alpha_grads_at(-1.0)
        out = [ga - xi * (gp - gm) / (2 * eps) for ga, gp, gm in zip(g_alpha, g_plus, g_minus, strict=True)]
        return out, loss_val.detach()
    finally:
        with torch.no_grad():
            for w, w0 in zip(weights, backup, strict=True):
                w.copy_(w0)


def architecture_step(
    model: Supernet,
    alpha_optimizer: torch.optim.Optimizer,
    val_loss: LossFn,
    train_loss: LossFn | None = None,
    *,
    order: str = "first",
    xi: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.Tensor:
    """One DARTS architecture step: alphas descend the validation loss; returns that loss.

    Liu et al., DARTS, ICLR 2019 (Alg. 1, step 1). ``order="first"``: gradient of
    ``val_loss()`` at the current weights; ``"second"``: the unrolled gradient of
    :func:`second_order_alpha_grads` (needs ``train_loss``, ``xi``). Only the alphas get
    a gradient and change; weights and BatchNorm statistics are left as they were.
    """
    alphas = model.arch_parameters()
    alpha_optimizer.zero_grad(set_to_none=True)
    with frozen_buffers(model):
        if order == "first":
            loss = val_loss()
            loss.backward(inputs=alphas)
        elif order == "second":
            if train_loss is None:
                raise ConfigError("search.order=second needs the training loss for the unrolled step")
            grads, loss = second_order_alpha_grads(
                model.weight_parameters(), alphas, train_loss, val_loss, xi=xi, weight_decay=weight_decay
            )
            for a, g in zip(alphas, grads, strict=True):
                a.grad = g
        else:
            raise ConfigError(f"search.order {order!r} unknown; available: first, second")
    alpha_optimizer.step()
    alpha_optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def weight_step(
    model: Supernet,
    optimizer: torch.optim.Optimizer,
    train_loss: LossFn,
    backward: Callable[..., None] | None = None,
    clip: Callable[[], None] | None = None,
) -> torch.Tensor:
    """One weight step on the training loss; returns that loss.

    Liu et al., DARTS, ICLR 2019 (Alg. 1, step 2). Gradients flow only into the weights
    (``backward(loss, inputs=weights)``), so the alphas get no ``.grad`` and keep their
    values. ``backward`` defaults to ``Tensor.backward`` (Lightning passes
    ``manual_backward``); ``clip`` is called between backward and step.
    """
    weights = model.weight_parameters()
    optimizer.zero_grad(set_to_none=True)
    loss = train_loss()
    if backward is None:
        loss.backward(inputs=weights)
    else:
        backward(loss, inputs=weights)
    if clip is not None:
        clip()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


# ================================================================ lightning module
def _to_device(batch: Batch, device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class SearchModule(L.LightningModule):
    """The search as a LightningModule (manual optimisation, two optimisers).

    Each training step takes a training batch and draws the next batch of the
    datamodule's validation loader (cycling) for the architecture step; from epoch
    ``search.warmup_epochs`` on it does the architecture step, then always the weight
    step. ``validation_step`` logs the supernet's ``val_loss`` and ``val_mae_bpm``.
    """

    monitor = "val_mae_bpm"
    monitor_mode = "min"

    def __init__(self, config: ExperimentConfig) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.config = config
        s = config.search
        torch.manual_seed(config.seed)  # same config -> same initial weights and alphas
        self.model = Supernet(
            channels=s.channels,
            n_blocks=s.n_blocks,
            n_intermediate=s.n_intermediate,
            op_names=s.ops,
            shared_alphas=s.shared_alphas,
            partial_channels=s.partial_channels,
        )
        self.loss_fn = build_loss(config.loss.name, **config.loss.params)
        self._val_iter: Iterator[Batch] | None = None
        self.start_epoch: int | None = None  # first epoch this process trained (> 0 if resumed)

    # ------------------------------------------------------------------- optimisers
    def configure_optimizers(self):
        o, s = self.config.optim, self.config.search
        w_opt = build_optimizer(self.model.weight_parameters(), self.config)
        # DARTS: Adam with beta1 = 0.5 for the architecture weights
        a_opt = torch.optim.Adam(self.model.arch_parameters(), lr=s.alpha_lr, betas=(0.5, 0.999),
                                 weight_decay=s.alpha_weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=o.max_epochs, eta_min=o.lr * 1e-2)
        return [w_opt, a_opt], [sched]

    # ------------------------------------------------------------------------ data
    def _shrink(self, batch: Batch) -> dict[str, Any]:
        """Search-time clip length / frame size (``search.clip_len`` / ``search.size``)."""
        s = self.config.search
        out = dict(batch)
        clip = out["clip"]
        if s.clip_len is not None and s.clip_len < clip.shape[2]:
            out["clip"] = clip = clip[:, :, : s.clip_len]
            out["ppg"] = out["ppg"][:, : s.clip_len]
        if s.size is not None and (clip.shape[3], clip.shape[4]) != (s.size, s.size):
            b, c, t, h, w = clip.shape
            frames = clip.float().transpose(1, 2).reshape(b * t, c, h, w)
            frames = F.interpolate(frames, size=(s.size, s.size), mode="area")
            out["clip"] = frames.reshape(b, t, c, s.size, s.size).transpose(1, 2)
        return out

    def configure_datamodule(self) -> L.LightningDataModule:
        """The search's clips (used by :func:`facepulse.train.runner.run_experiment`)."""
        return search_datamodule(self.config)

    def _next_val_batch(self) -> dict[str, Any]:
        """The next validation batch for the architecture step (cycling through the split)."""
        dm = self.trainer.datamodule
        if dm is None:
            raise ConfigError("search: needs a datamodule with a val_dataloader for the architecture step")
        for _ in range(2):
            if self._val_iter is None:
                self._val_iter = iter(dm.val_dataloader())
            try:
                return self._shrink(_to_device(next(self._val_iter), self.device))
            except StopIteration:
                self._val_iter = None  # epoch of the validation split done: start it again
        raise InputError("search: the validation split has no clips for the architecture step")

    # ----------------------------------------------------------------------- steps
    def _loss(self, batch: Batch) -> torch.Tensor:
        return pulse_loss(self.model, batch, self.loss_fn, self.config.model.normalize)

    def architecture_step(self, train_batch: Batch, val_batch: Batch) -> torch.Tensor:
        """One alpha update on ``val_batch`` (see :func:`architecture_step`)."""
        w_opt, a_opt = self.optimizers()
        group = w_opt.optimizer.param_groups[0]
        return architecture_step(
            self.model,
            a_opt.optimizer,  # the raw optimiser: alpha steps must not count as trainer steps
            val_loss=lambda: self._loss(val_batch),
            train_loss=lambda: self._loss(train_batch),
            order=self.config.search.order,
            xi=group["lr"],
            weight_decay=group.get("weight_decay", 0.0),
        )

    def weight_step(self, batch: Batch) -> torch.Tensor:
        """One weight update on ``batch`` (see :func:`weight_step`)."""
        w_opt, _ = self.optimizers()
        clip_value = self.config.optim.gradient_clip

        def clip() -> None:
            self.clip_gradients(w_opt, gradient_clip_val=clip_value, gradient_clip_algorithm="norm")

        return weight_step(
            self.model, w_opt, lambda: self._loss(batch),
            backward=self.manual_backward, clip=clip if clip_value else None,
        )

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        batch = self._shrink(batch)
        if self.current_epoch >= self.config.search.warmup_epochs:
            loss_a = self.architecture_step(batch, self._next_val_batch())
            self.log("loss_arch", loss_a, prog_bar=True, on_step=True, on_epoch=True,
                     batch_size=batch["clip"].shape[0])
        loss_w = self.weight_step(batch)
        self.log("loss_weights", loss_w, prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=batch["clip"].shape[0])

    def on_train_start(self) -> None:
        self.start_epoch = self.current_epoch

    def on_train_epoch_end(self) -> None:
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        batch = self._shrink(batch)
        normalize = self.config.model.normalize
        pred = self.model(normalize_clip(batch["clip"], normalize)).float()
        target = batch["ppg"].to(pred)
        if normalize == "diff":
            target = diff_signal(target)
        fps, hr = _fps_hr(batch, pred)
        loss = self.loss_fn(pred, target, fps=fps, hr_bpm=hr)
        mae = (clip_hr_bpm(pulse_from_output(pred, normalize), fps, *VAL_BAND_BPM) - hr).abs().mean()
        b = pred.shape[0]
        self.log("val_loss", loss, prog_bar=True, batch_size=b)
        self.log("val_mae_bpm", mae, prog_bar=True, batch_size=b)

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # RNG states as tensors / plain types: checkpoints load with weights_only=True
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, py_state, py_gauss = random.getstate()
        checkpoint["facepulse_rng"] = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": [version, list(py_state), py_gauss],
        }
        checkpoint["facepulse_search"] = {"op_names": list(self.model.op_names)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("facepulse_search", {}).get("op_names")
        if saved is not None and list(saved) != list(self.model.op_names):
            raise ConfigError(f"search checkpoint was made with ops {saved}, config has {list(self.model.op_names)}")
        rng = checkpoint.get("facepulse_rng")
        if rng is not None:
            torch.set_rng_state(rng["torch"])
            kind, keys, pos, has_gauss, gauss = rng["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
            version, py_state, py_gauss = rng["python"]
            random.setstate((version, tuple(py_state), py_gauss))

    def configure_callbacks(self):
        return [AlphaLogger(self.config.run_dir)]

    def genotype(self) -> Genotype:
        """The genotype of the current alphas (see :mod:`facepulse.nas.derive`)."""
        return supernet_genotype(self.model)


# ===================================================================== callbacks
class AlphaLogger(L.Callback):
    """Per epoch: one line of ``alphas.jsonl`` + ``genotype_epochNN.json``; at the end
    ``genotype.json`` and ``genotype.png``. Lines of epochs that a resumed run redoes
    are dropped first, so the history has each epoch once."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    @property
    def history_path(self) -> Path:
        return self.run_dir / "alphas.jsonl"

    def on_train_start(self, trainer: L.Trainer, pl_module: SearchModule) -> None:
        if not trainer.is_global_zero:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lines = read_alpha_history(self.history_path) if self.history_path.is_file() else []
        keep = [rec for rec in lines if rec["epoch"] < trainer.current_epoch]
        self.history_path.write_text("".join(json.dumps(rec) + "\n" for rec in keep))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: SearchModule) -> None:
        if not trainer.is_global_zero:
            return
        model = pl_module.model
        geno = pl_module.genotype()
        epoch = trainer.current_epoch
        record = {
            "epoch": epoch,
            "op_names": list(model.op_names),
            "alphas": model.alphas.detach().cpu().tolist(),
            "weights": model.op_weights().detach().cpu().tolist(),
            "genotype": geno.to_dict(),
        }
        with self.history_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        geno.save(self.run_dir / f"genotype_epoch{epoch:02d}.json")

    def on_train_end(self, trainer: L.Trainer, pl_module: SearchModule) -> None:
        if trainer.is_global_zero:
            write_genotype(pl_module.genotype(), self.run_dir)


def read_alpha_history(path: str | Path) -> list[dict[str, Any]]:
    """The records of an ``alphas.jsonl`` file (InputError naming a bad line)."""
    path = Path(path)
    records = []
    for k, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise InputError(f"{path}: line {k} is not valid JSON") from None
    return records


def write_genotype(genotype: Genotype, run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``genotype.json`` and ``genotype.png`` into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return genotype.save(run_dir / "genotype.json"), draw_genotype(genotype, run_dir / "genotype.png")


# ========================================================================= runner
@dataclass
class SearchResult:
    """What :func:`run_search` produced."""

    genotype: Genotype
    run_dir: Path
    genotype_path: Path
    png_path: Path
    checkpoint: Path
    resumed_from_epoch: int | None


def run_search(
    config: ExperimentConfig,
    progress: bool | None = None,
    resume: bool = True,
    *,
    datamodule: L.LightningDataModule | None = None,
    callbacks: Sequence[L.Callback] = (),
) -> SearchResult:
    """Run (or resume) the architecture search of ``config``; see the module docstring.

    ``config.optim.max_epochs`` search epochs of :class:`SearchModule` on ``datamodule``
    (default :func:`search_datamodule`; it needs ``val_dataloader``). With ``resume``
    and ``run_dir/last.ckpt`` present, the search continues from it (a finished search
    just rewrites its outputs); without ``resume`` an old checkpoint is deleted first.
    ``progress``: progress bar (default: when stderr is a terminal); ``callbacks``:
    extra Lightning callbacks.
    """
    import sys

    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    if config.trainer.devices not in (1, "1") or config.trainer.num_nodes != 1:
        # the alpha step would need its own gradient all-reduce; not implemented
        raise ConfigError(f"trainer.devices={config.trainer.devices!r}: the search runs on one device (devices: 1)")
    run_dir = config.run_dir
    last = run_dir / LAST_CKPT
    if not resume:
        last.unlink(missing_ok=True)
    ckpt_path = last if last.is_file() else None
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")

    L.seed_everything(config.seed, workers=True, verbose=False)
    module = SearchModule(config)
    t = config.trainer
    trainer = L.Trainer(
        max_epochs=config.optim.max_epochs,
        max_steps=config.optim.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        precision=t.precision,
        limit_val_batches=t.limit_val_batches,
        log_every_n_steps=t.log_every_n_steps,
        default_root_dir=run_dir,
        # a new logs/version_N per (re)run: CSVLogger would overwrite a resumed run's metrics
        logger=CSVLogger(run_dir, name="logs"),
        # saved after the epoch's alpha log and scheduler step (monitoring callbacks run last)
        callbacks=[
            ModelCheckpoint(dirpath=run_dir, save_last=True, save_top_k=0, every_n_epochs=1,
                            save_on_train_epoch_end=True, enable_version_counter=False),
            *callbacks,
        ],
        enable_progress_bar=sys.stderr.isatty() if progress is None else progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True if t.accelerator == "cpu" else "warn",
        use_distributed_sampler=False,  # ClipDataModule's sampler shards clips itself
    )
    data = module.configure_datamodule() if datamodule is None else datamodule
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    geno = module.genotype()
    json_path, png_path = write_genotype(geno, run_dir)
    resumed = None
    if ckpt_path is not None:  # start_epoch stays None when the search had already finished
        resumed = module.start_epoch if module.start_epoch is not None else trainer.current_epoch
    return SearchResult(geno, run_dir, json_path, png_path, last, resumed)
