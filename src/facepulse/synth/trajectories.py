"""Shapes of the mean heart rate over a synthetic video, by name (registry ``HR_TRAJECTORIES``).

Below :mod:`facepulse.synth.params` (which checks a trajectory name against this
registry) and :mod:`facepulse.synth.physiology` (which draws the HR from it). Each entry
is ``f(t_s, params, duration_s) -> (N,)``: the fraction of the way from ``hr_bpm`` to
``hr_end_bpm`` at each time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from facepulse.registry import Registry

if TYPE_CHECKING:  # annotations only: params imports this module at run time
    from facepulse.synth.params import PhysiologyParams

__all__ = ["HR_TRAJECTORIES"]

#: Shapes of the mean HR over time, by name: ``f(t_s, params, duration_s) -> (N,)`` the
#: fraction of the way from ``params.hr_bpm`` to ``params.hr_end_bpm`` at each time.
HR_TRAJECTORIES: Registry[Callable[[np.ndarray, PhysiologyParams, float], np.ndarray]] = Registry(
    "hr trajectory"
)


@HR_TRAJECTORIES.register("constant")
def _constant(t_s: np.ndarray, params: PhysiologyParams, duration_s: float) -> np.ndarray:
    """hr_bpm throughout."""
    return np.zeros_like(t_s)


@HR_TRAJECTORIES.register("drift")
def _drift(t_s: np.ndarray, params: PhysiologyParams, duration_s: float) -> np.ndarray:
    """Linear drift from hr_bpm at the start to hr_end_bpm at the end."""
    return np.clip(t_s / duration_s, 0.0, 1.0)


@HR_TRAJECTORIES.register("step")
def _step(t_s: np.ndarray, params: PhysiologyParams, duration_s: float) -> np.ndarray:
    """hr_bpm, then a raised-cosine change to hr_end_bpm lasting hr_change_duration_s."""
    centre = duration_s / 2 if params.hr_change_time_s is None else params.hr_change_time_s
    half = max(params.hr_change_duration_s, 1e-6) / 2
    x = np.clip((t_s - (centre - half)) / (2 * half), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)  # Hann-window edge: smooth start and end
