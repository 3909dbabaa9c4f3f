"""Run one experiment with Lightning: ``facepulse train --config FILE.yaml``.

The run directory ``<out_dir>/<name>/`` holds::

    config.yaml   the full experiment (what was run)
    last.ckpt     the latest state (weights, optimiser, loops), rewritten every epoch
    best.ckpt     the epoch with the best validation metric (val_mae_bpm by default)
    logs/version_N/metrics.csv   metrics of each start of the run (N = 0, 1... on resume)
    tensorboard/  TensorBoard events, when tensorboard is installed

Re-running the same config resumes from ``last.ckpt`` (e.g. after the process was
killed) and continues exactly as the uninterrupted run would have; ``resume=False``
starts over. Multi-GPU / multi-node training goes through ``config.trainer``
(``devices``, ``num_nodes``, ``strategy: ddp``, ``precision: bf16-mixed``): see
docs/training.md.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facepulse.config import ExperimentConfig, save_config

CONFIG_FILE = "config.yaml"
LAST_CKPT = "last.ckpt"
BEST_CKPT = "best.ckpt"
CHECKPOINT_KEY = "facepulse"  # checkpoint entry holding the experiment (for inference)


@dataclass
class RunResult:
    """What :func:`run_experiment` returns.

    run_dir : the run directory; best_ckpt / last_ckpt : checkpoint paths (best may be
    None when no validation ran); best_score : best value of ``monitor``;
    monitor : the metric name; epochs : epochs completed; resumed : whether it resumed;
    metrics_csv : this start's CSV metrics; trainer / module : the Lightning objects.
    """

    run_dir: Path
    best_ckpt: Path | None
    last_ckpt: Path | None
    best_score: float | None
    monitor: str
    epochs: int
    resumed: bool
    metrics_csv: Path | None = None
    trainer: Any = None
    module: Any = None


def _config_callback(config: ExperimentConfig):
    import lightning as L

    class ExperimentInCheckpoint(L.Callback):
        """Stores the experiment and the training kind in every checkpoint, so a checkpoint
        alone is enough to rebuild the model for inference (facepulse.models.inference)."""

        def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
            checkpoint[CHECKPOINT_KEY] = {"config": config.model_dump(mode="json"), "kind": config.kind}

    return ExperimentInCheckpoint()


def _validate_at_end_callback():
    import lightning as L

    class ValidateAtEnd(L.Callback):
        """Make the last training batch of a run a validation point, however short the run.

        A run whose ``max_steps`` ends mid-epoch (or whose ``val_check_interval`` does not
        fall on its last batch) would otherwise end without validating: no monitored
        metric, no ``best.ckpt``, and early stopping asking for a metric that does not
        exist. Asking the trainer to stop on that batch makes Lightning validate there
        (it validates before stopping early); the checkpoints then see the metric. Kind
        agnostic: it serves every training kind whatever its ``monitor``.
        """

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            epoch_loop = trainer.fit_loop.epoch_loop
            last_step = trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step
            last_epoch = trainer.max_epochs is not None and trainer.max_epochs >= 0 and (
                trainer.current_epoch + 1 >= trainer.max_epochs
            )
            if last_step or (last_epoch and epoch_loop.batch_progress.is_last_batch):
                trainer.should_stop = True

    return ValidateAtEnd()


def build_trainer(config: ExperimentConfig, module: Any, callbacks: Sequence[Any] = (), progress: bool | None = None):
    """The ``lightning.Trainer`` of an experiment: checkpoints, early stopping, loggers."""
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    t, o = config.trainer, config.optim
    run_dir = config.run_dir
    monitor = getattr(module, "monitor", "val_mae_bpm")
    mode = getattr(module, "monitor_mode", "min")
    best = ModelCheckpoint(
        dirpath=run_dir,
        filename=Path(BEST_CKPT).stem,
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        enable_version_counter=False,  # best.ckpt, overwritten in place
    )
    # A separate unmonitored checkpoint for last.ckpt: Lightning 2.6 rewrites save_last
    # only in epochs that improved the monitored metric, which would lose resumable work.
    last = ModelCheckpoint(
        dirpath=run_dir, filename=Path(LAST_CKPT).stem, monitor=None, save_top_k=1, enable_version_counter=False
    )
    selects = t.limit_val_batches != 0  # limit_val_batches: 0 = fixed schedule, no best.ckpt
    all_callbacks: list[Any] = [*([best] if selects else []), last, _config_callback(config), _validate_at_end_callback()]
    if t.early_stopping_patience is not None and selects:
        # strict=False: a run without any validation data must not crash on the metric
        all_callbacks.append(
            EarlyStopping(monitor=monitor, mode=mode, patience=t.early_stopping_patience, strict=False)
        )
    all_callbacks.extend(callbacks)
    # one version folder per start (logs/version_N): a resumed run keeps the earlier metrics
    loggers: list[Any] = [CSVLogger(run_dir, name="logs")]
    if importlib.util.find_spec("tensorboard") is not None:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run_dir, name="tensorboard"))
    if progress is None:
        import sys

        progress = sys.stderr.isatty()
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        max_epochs=o.max_epochs,
        max_steps=o.max_steps,
        # manual-optimisation modules (the NAS search) clip their own gradients
        gradient_clip_val=o.gradient_clip if getattr(module, "automatic_optimization", True) else None,
        log_every_n_steps=t.log_every_n_steps,
        val_check_interval=t.val_check_interval,
        limit_val_batches=t.limit_val_batches,
        callbacks=all_callbacks,
        logger=loggers,
        default_root_dir=run_dir,
        enable_progress_bar=progress,
        enable_model_summary=False,  # no table between our messages (issue 17)
        # deterministic kernels are free on CPU; on GPUs some 3D ops have none (warn only)
        deterministic=True if t.accelerator == "cpu" else "warn",
        # the datamodule's SeededSampler shards the clips over DDP ranks itself
        use_distributed_sampler=False,
    )


def run_experiment(
    config: ExperimentConfig,
    resume: bool = True,
    *,
    datamodule: Any = None,
    callbacks: Sequence[Any] = (),
    progress: bool | None = None,
) -> RunResult:
    """Train ``config`` (any registered ``config.kind``) and return where the checkpoints are.

    Parameters
    ----------
    config : the experiment.
    resume : continue from ``<run_dir>/last.ckpt`` when it exists (else start fresh).
    datamodule : a LightningDataModule to use instead of the
        :class:`facepulse.train.data.ClipDataModule` of ``config`` (e.g. in-memory clips).
    callbacks : extra Lightning callbacks.
    progress : show progress bars (default: when stderr is a terminal).
    """
    import lightning as L

    from facepulse.models import inline_model_params
    from facepulse.train.tasks import get_task

    # checkpoints store the config: a genotype goes in as itself, not as a relative path
    params = inline_model_params(config.model.name, config.model.params)
    config = config.model_copy(update={"model": config.model.model_copy(update={"params": params})})
    run_dir = config.run_dir
    last = run_dir / LAST_CKPT
    resumed = bool(resume and last.is_file())
    if not resume:
        # a fresh start must not pick up the old run's files
        for name in (LAST_CKPT, BEST_CKPT):
            (run_dir / name).unlink(missing_ok=True)
    L.seed_everything(config.seed, workers=True, verbose=False)
    builder = get_task(config.kind)
    module = builder(config)
    if datamodule is None:
        datamodule = _default_datamodule(config, module)
    with _quiet_lightning():
        trainer = build_trainer(config, module, callbacks, progress)
        if trainer.is_global_zero:
            save_config(config, run_dir / CONFIG_FILE)
        with warnings.catch_warnings():
            # the run directory holds config.yaml (and last.ckpt when resuming) by design
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resumed else None)

    ckpt_cb = trainer.checkpoint_callback
    has_best = ckpt_cb is not None and bool(ckpt_cb.best_model_path) and (run_dir / BEST_CKPT).is_file()
    best = run_dir / BEST_CKPT if has_best else None
    score = ckpt_cb.best_model_score if ckpt_cb is not None else None
    best_score = float(score) if score is not None and math.isfinite(float(score)) else None
    return RunResult(
        run_dir=run_dir,
        best_ckpt=best,
        last_ckpt=last if last.is_file() else None,
        best_score=best_score,
        monitor=getattr(module, "monitor", "val_mae_bpm"),
        epochs=trainer.current_epoch,
        resumed=resumed,
        metrics_csv=Path(trainer.logger.log_dir) / "metrics.csv" if trainer.logger is not None else None,
        trainer=trainer,
        module=module,
    )


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's start-up banner (GPU/TPU available, tips, "configured so...") and its
    hints about data-loader workers stay out of facepulse's output; its warnings about
    real problems (level WARNING) still show."""
    import logging

    names = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            from lightning.fabric.utilities.warnings import PossibleUserWarning

            warnings.filterwarnings("ignore", category=PossibleUserWarning)
            warnings.filterwarnings("ignore", message=r".*treespec.*deprecated")  # torch/Lightning internals
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _default_datamodule(config: ExperimentConfig, module: Any) -> Any:
    """The module's own data (``module.configure_datamodule()``, see facepulse.train.tasks),
    else the clips of ``config.data``."""
    own = getattr(module, "configure_datamodule", None)
    if callable(own):
        return own()
    from facepulse.train.data import ClipDataModule

    return ClipDataModule(config)
