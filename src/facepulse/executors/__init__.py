"""Where per-video jobs run: this process / a local pool (``local``, the default) or Ray.

>>> from facepulse.executors import make_executor
>>> make_executor("local", workers=2).describe()
'local, 2 workers'

See :mod:`facepulse.executors.base` for the interface. The Ray executor is registered
always, but needs the optional extra (``pip install 'facepulse[ray]'``) when used.
"""

from facepulse.executors.base import (
    EXECUTORS,
    Executor,
    Job,
    JobResult,
    Resources,
    RunProgress,
    TaskContext,
)
from facepulse.executors.local import LocalExecutor
from facepulse.executors.ray_cluster import RayExecutor

__all__ = [
    "EXECUTORS",
    "Executor",
    "Job",
    "JobResult",
    "LocalExecutor",
    "RayExecutor",
    "Resources",
    "RunProgress",
    "TaskContext",
    "make_executor",
]


def make_executor(name: str = "local", *, workers: int | None = None, address: str | None = None) -> Executor:
    """Build a registered executor: ``make_executor("ray", address="head-node:6379")``.

    ``workers``: jobs at once (local: worker processes, default 1; Ray: CPUs of a local
    instance and at most this many tasks in flight, default what the cluster's resources
    allow). ``address``: an existing Ray cluster (the local executor rejects it).
    """
    return EXECUTORS.get(name)(workers=workers, address=address)
