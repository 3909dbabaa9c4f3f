"""Training kinds: ``config.kind`` -> a builder of the LightningModule that trains it.

Builder signature::

    builder(config: ExperimentConfig) -> lightning.LightningModule

The module's ``validation_step`` must ``self.log("val_mae_bpm", ...)`` (the metric used for
checkpoint selection and early stopping, lower is better) unless the module sets the class
attribute ``monitor`` (str) and ``monitor_mode`` ("min"/"max") to something else.
The returned module is trained by :func:`facepulse.train.runner.run_experiment` on the
:class:`facepulse.train.data.ClipDataModule` built from ``config.data``, unless the module
defines ``configure_datamodule(self) -> lightning.LightningDataModule`` (its own data).
For inference (``facepulse predict --model``) the checkpoint is loaded back into the
module the builder returns and ``module.model`` is used: normalised clips
``(B, 3, T, H, W)`` -> pulse ``(B, T)`` (a tuple output is read as ``(pulse, ...)``). With
``model.normalize: diff`` the output is taken as the pulse's derivative and integrated
(:func:`facepulse.train.module.pulse_from_output`); a module can say otherwise with a
``model_output`` attribute (``"pulse"`` or ``"diff"``).

Register a new kind in your own module, without editing this file::

    from facepulse.train.tasks import TASKS

    @TASKS.register("contrastive")
    def build_contrastive(config: ExperimentConfig) -> lightning.LightningModule: ...

:func:`get_task` imports the package's own kind modules (:data:`TASK_MODULES`:
``facepulse.train.module`` for ``supervised``, ``facepulse.contrastive.task``,
``facepulse.nas.task``); a kind defined outside them must be imported before
``run_experiment`` runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from facepulse.registry import Registry

if TYPE_CHECKING:
    from facepulse.config import ExperimentConfig

TaskBuilder = Callable[["ExperimentConfig"], Any]  # -> lightning.LightningModule

TASKS: Registry[TaskBuilder] = Registry("training kind")

# Modules that register training kinds; imported lazily by get_task (heavy: torch).
# Missing optional modules (a kind still being written) are ignored.
TASK_MODULES = [
    "facepulse.train.module",
    "facepulse.contrastive.task",
    "facepulse.nas.task",
]


def load_task_modules() -> None:
    """Import every module in TASK_MODULES that exists, so their kinds are registered."""
    for name in TASK_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            # only a missing module itself is skipped; a broken import inside it is raised
            if err.name != name:
                raise


def get_task(kind: str) -> TaskBuilder:
    """The builder registered for ``kind`` (ConfigError listing the known kinds if none)."""
    load_task_modules()
    return TASKS.get(kind)
