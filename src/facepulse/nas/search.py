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
(one line per epoch: alphas, op weights, genotype, its cost), ``genotype_epochNN.json``,
``op_costs.json`` (the per-op cost table), and at the end ``genotype.json`` +
``genotype.png`` + ``cost.json`` + the cost frontier (``frontier.json``,
``frontier/cell_K.json``: cells from costly to cheap, all from this one search).

Latency-aware search (beyond AutoHR; :mod:`facepulse.nas.cost`): ``search.cost_weight``
> 0 adds the expected cost of the cells under the softmax of the alphas (FLOPs or
measured CPU latency per op, ``search.cost_metric``) to the architecture loss. Searching
at several weights gives cells that trade accuracy for speed; each run's ``cost.json``
says what its derived cell costs per second of video. Every search, whatever its weight,
also derives a frontier of cheaper cells from its final alphas
(:func:`facepulse.nas.cost.cost_frontier`), so one search already offers a choice.

Split by responsibility: :mod:`facepulse.nas.search_data` (the clips),
:mod:`facepulse.nas.bilevel` (the two steps), :mod:`facepulse.nas.search_module` (the
LightningModule), :mod:`facepulse.nas.search_log` (alpha history, genotypes); this module
runs a search (:func:`run_search`) and gathers their public names.
"""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L

from facepulse.config import ExperimentConfig, save_config
from facepulse.models.genotype import Genotype
from facepulse.nas.bilevel import (
    FD_RADIUS,
    architecture_step,
    frozen_buffers,
    pulse_loss,
    second_order_alpha_grads,
    weight_step,
)
from facepulse.nas.search_data import search_datamodule, synthetic_splits
from facepulse.nas.search_log import AlphaLogger, read_alpha_history, write_cost, write_frontier, write_genotype
from facepulse.nas.search_module import SINGLE_DEVICE_WHY, SearchModule, check_single_device

__all__ = [
    "FD_RADIUS",
    "LAST_CKPT",
    "SINGLE_DEVICE_WHY",
    "AlphaLogger",
    "SearchModule",
    "SearchResult",
    "architecture_step",
    "check_single_device",
    "frozen_buffers",
    "pulse_loss",
    "read_alpha_history",
    "run_search",
    "search_datamodule",
    "second_order_alpha_grads",
    "synthetic_splits",
    "weight_step",
    "write_cost",
    "write_genotype",
]

LAST_CKPT = "last.ckpt"


@dataclass
class SearchResult:
    """What :func:`run_search` produced."""

    genotype: Genotype
    run_dir: Path
    genotype_path: Path
    png_path: Path
    checkpoint: Path
    resumed_from_epoch: int | None
    cost: dict[str, Any] = field(default_factory=dict)  # SearchModule.cost_summary of the genotype
    frontier: list[dict[str, Any]] = field(default_factory=list)  # SearchModule.frontier, costliest first
    frontier_path: Path | None = None


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

    check_single_device(config)
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
    cost = module.cost_summary(geno)
    write_cost(cost, run_dir)
    frontier = module.frontier()
    frontier_path = write_frontier(frontier, run_dir, config.search.cost_metric)
    resumed = None
    if ckpt_path is not None:  # start_epoch stays None when the search had already finished
        resumed = module.start_epoch if module.start_epoch is not None else trainer.current_epoch
    return SearchResult(geno, run_dir, json_path, png_path, last, resumed, cost, frontier, frontier_path)
