"""The architecture search as a LightningModule (manual optimisation, two optimisers)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from facepulse.config import ExperimentConfig
from facepulse.errors import ConfigError, InputError
from facepulse.losses import build_loss
from facepulse.models.genotype import Genotype
from facepulse.models.normalize import diff_signal, normalize_clip
from facepulse.nas.bilevel import Batch, _fps_hr, architecture_step, pulse_loss, weight_step
from facepulse.nas.cost import (
    block_voxels,
    cost_frontier,
    count_flops,
    expected_cell_cost,
    genotype_cell_cost,
    op_cost_table,
)
from facepulse.nas.derive import supernet_genotype
from facepulse.nas.search_data import search_datamodule
from facepulse.nas.search_log import AlphaLogger
from facepulse.nas.supernet import Supernet
from facepulse.train.module import VAL_BAND_BPM, build_optimizer, clip_hr_bpm, pulse_from_output

__all__ = ["SINGLE_DEVICE_WHY", "SearchModule", "check_single_device"]


#: Why the search refuses several processes (one line, in the error).
SINGLE_DEVICE_WHY = (
    "the search runs on one device (trainer.devices: 1, num_nodes: 1, strategy: auto): its "
    "architecture step updates the alphas by hand, outside the gradient all-reduce of DDP, so "
    "processes would search different architectures"
)


def check_single_device(config: ExperimentConfig, world_size: int | None = None) -> None:
    """ConfigError unless the search runs in one process on one device (see SINGLE_DEVICE_WHY)."""
    t = config.trainer
    devices = t.devices
    one = devices in (1, "1") or (isinstance(devices, list) and len(devices) == 1)
    if devices == "auto" and t.accelerator == "cpu":
        one = True  # Lightning's "auto" on CPU is one process
    if not one or t.num_nodes != 1 or (world_size is not None and world_size > 1):
        got = f"world size {world_size}" if world_size and world_size > 1 else (
            f"trainer.devices={devices!r}, num_nodes={t.num_nodes}")
        raise ConfigError(f"search: {got}; {SINGLE_DEVICE_WHY}")


def _to_device(batch: Batch, device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class SearchModule(L.LightningModule):
    """The search as a LightningModule (manual optimisation, two optimisers).

    Each training step takes a training batch and draws the next batch of the
    datamodule's validation loader (cycling) for the architecture step; from epoch
    ``search.warmup_epochs`` on it does the architecture step, then always the weight
    step. ``validation_step`` logs the supernet's ``val_loss`` and ``val_mae_bpm``.

    Latency-aware search (:mod:`facepulse.nas.cost`): with ``search.cost_weight > 0`` the
    architecture step descends ``L_val + cost_weight * relative_cost`` (:meth:`relative_cost`,
    the expected cost of the cells as a fraction of the costliest cells).
    """

    monitor = "val_mae_bpm"
    monitor_mode = "min"

    def __init__(self, config: ExperimentConfig) -> None:
        super().__init__()
        check_single_device(config)
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
            edge_normalization=s.edge_normalization,
        )
        self.loss_fn = build_loss(config.loss.name, **config.loss.params)
        self._val_iter: Iterator[Batch] | None = None
        self.start_epoch: int | None = None  # first epoch this process trained (> 0 if resumed)
        self._cost_table: dict[str, float] | None = None

    # ------------------------------------------------------------------------ cost
    @property
    def search_shape(self) -> tuple[int, int]:
        """``(clip_len, size)`` of the clips the search sees (after :meth:`_shrink`)."""
        s, d = self.config.search, self.config.data
        return (s.clip_len or d.clip_len, s.size or d.size)

    def cost_table(self) -> dict[str, float]:
        """Cost per output voxel of every op (``search.cost_metric``; cached in the run folder
        as ``op_costs.json``, so a latency table is measured once per run)."""
        if self._cost_table is None:
            s = self.config.search
            self._cost_table = op_cost_table(self.model.op_names, s.channels, s.cost_metric,
                                             cache=self.config.run_dir / "op_costs.json")
        return self._cost_table

    def _voxels(self) -> list[int]:
        t, size = self.search_shape
        return block_voxels(self.config.search.n_blocks, t, size)

    def expected_cost(self) -> torch.Tensor:
        """Expected cost of the cells under ``softmax(alphas)`` (per search clip; differentiable)."""
        table = torch.tensor([self.cost_table()[n] for n in self.model.op_names], dtype=torch.float32)
        return expected_cell_cost(self.model.op_weights(), table.to(self.model.alphas.device), self._voxels())

    def relative_cost(self) -> torch.Tensor:
        """:meth:`expected_cost` over its largest value (every edge on the costliest op): in [0, 1]."""
        n_edges = self.model.alphas.shape[1]
        top = max(self.cost_table().values()) * n_edges * sum(self._voxels())
        return self.expected_cost() / top if top > 0 else self.expected_cost() * 0.0

    def cost_summary(self, genotype: Genotype | None = None) -> dict[str, Any]:
        """Costs of the current search state, per second of video at ``data.fps``:
        ``expected_cells`` (under the alphas), ``derived_cells`` (the genotype's cells) and,
        with ``cost_metric: flops``, ``derived_network_flops`` (stem, cells, head of the
        derived network at ``search.channels``), all on the search's clips."""
        geno = self.genotype() if genotype is None else genotype
        s = self.config.search
        t, size = self.search_shape
        per_s = self.config.data.fps / t
        table = self.cost_table()
        out: dict[str, Any] = {
            "metric": s.cost_metric,
            "unit": ("FLOPs" if s.cost_metric == "flops" else "CPU seconds") + " per second of video",
            "clip": [t, size, size],
            "cost_weight": s.cost_weight,
            "relative_expected_cost": float(self.relative_cost().detach()),
            "expected_cells": float(self.expected_cost().detach()) * per_s,
            "derived_cells": genotype_cell_cost(geno, table, self._voxels()) * per_s,
        }
        if s.cost_metric == "flops":
            out["derived_network_flops"] = self._network_flops(geno) * per_s
        return out

    def _network_flops(self, genotype: Genotype) -> float:
        """FLOPs of one search clip through the derived network (stem, cells, head) at
        ``search.channels``."""
        from facepulse.models.autohr import AutoHR

        s = self.config.search
        t, size = self.search_shape
        return count_flops(AutoHR(genotype, channels=s.channels, n_blocks=s.n_blocks), (1, 3, t, size, size))

    def frontier(self) -> list[dict[str, Any]]:
        """Cells from costly to cheap derived from the current alphas (:func:`cost_frontier`),
        each with its cells' cost per second of video (``cells_cost``, as in
        :meth:`cost_summary`) and, with ``cost_metric: flops``, its whole network's FLOPs."""
        s = self.config.search
        per_s = self.config.data.fps / self.search_shape[0]
        edge_weights = self.model.edge_weights()
        out = cost_frontier(
            self.model.alphas.detach().cpu().double().numpy(), self.model.op_names, self.model.n_intermediate,
            self.cost_table(), self._voxels(), shared=self.model.shared_alphas, prune=s.prune,
            edge_weights=None if edge_weights is None else edge_weights.detach().cpu().double().numpy(),
        )
        for cell in out:
            cell["cells_cost"] *= per_s
            if s.cost_metric == "flops":
                cell["network_flops"] = self._network_flops(cell["genotype"]) * per_s
        return out

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
        weight = self.config.search.cost_weight

        def val_loss() -> torch.Tensor:
            loss = self._loss(val_batch)
            return loss + weight * self.relative_cost() if weight > 0 else loss

        return architecture_step(
            self.model,
            a_opt.optimizer,  # the raw optimiser: alpha steps must not count as trainer steps
            val_loss=val_loss,
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
            if self.config.search.cost_weight > 0:
                self.log("arch_cost", self.relative_cost().detach(), on_step=False, on_epoch=True,
                         batch_size=batch["clip"].shape[0])
        loss_w = self.weight_step(batch)
        self.log("loss_weights", loss_w, prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=batch["clip"].shape[0])

    def setup(self, stage: str) -> None:
        check_single_device(self.config, self.trainer.world_size)  # e.g. devices: auto on several GPUs

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
        return supernet_genotype(self.model, self.config.search.prune)
