"""Registers the ``search`` training kind (``kind: search``) for the training runner."""

from __future__ import annotations

from typing import TYPE_CHECKING

from facepulse.train.tasks import TASKS

if TYPE_CHECKING:
    from facepulse.config import ExperimentConfig
    from facepulse.nas.search import SearchModule


@TASKS.register("search")
def build_search(config: ExperimentConfig) -> SearchModule:
    """AutoHR bi-level architecture search (DARTS); writes alphas and genotypes to run_dir."""
    from facepulse.nas.search import SearchModule

    return SearchModule(config)
