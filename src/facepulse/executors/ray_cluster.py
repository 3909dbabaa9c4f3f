"""Ray executor: one Ray task per job, on a local Ray instance or an existing cluster.

Each task declares its CPU cores and memory (:class:`~facepulse.executors.base.Resources`),
so Ray's scheduler never puts more tasks on a node than it has room for. Results are
written by the tasks themselves (atomically, to a filesystem all nodes share); only a
small :class:`JobResult` comes back to the driver, which keeps the progress bar.

Needs the optional extra: ``pip install 'facepulse[ray]'`` (on every node of a cluster,
same facepulse version as the driver).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from facepulse.errors import ConfigError
from facepulse.executors.base import (
    EXECUTORS,
    Executor,
    Job,
    JobResult,
    Resources,
    RunProgress,
    TaskContext,
    error_line,
    execute,
)

#: Object store of a local instance started by the executor (MiB): only small results travel.
LOCAL_OBJECT_STORE_MB = 256


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'facepulse[ray]'") from None
    return ray


@EXECUTORS.register("ray", help="a Ray cluster (--address) or a local Ray instance: one task per video")
class RayExecutor(Executor):
    """Jobs as Ray tasks.

    ``address``: an existing cluster (``"head-node:6379"``, or ``"auto"`` on a node of
    it); None starts a local Ray instance for the run (with ``workers`` CPUs when given)
    and stops it afterwards. If Ray is already initialised in this process, that
    instance is used as it is. ``workers`` also caps the tasks in flight.
    ``startup_s`` holds the time ``ray.init`` took (0 when Ray was already up).
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        _import_ray()
        if workers is not None and int(workers) < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers = None if workers is None else int(workers)
        self.address = address
        self.startup_s = 0.0

    def describe(self) -> str:
        where = f"cluster {self.address}" if self.address else "local instance"
        return f"ray, {where}" + (f", {self.workers} workers" if self.workers else "")

    def _init(self) -> bool:
        """Start or join Ray; True when this call started it (and must shut it down)."""
        ray = _import_ray()
        if ray.is_initialized():
            return False
        t0 = time.monotonic()
        common: dict[str, Any] = {"log_to_driver": False, "logging_level": "warning"}
        if self.address:
            ray.init(address=self.address, **common)
        else:
            ray.init(
                num_cpus=self.workers, include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_MB * 2**20, **common,
            )
        self.startup_s = time.monotonic() - t0
        return True

    def run(self, jobs: Sequence[Job], resources: Resources, progress: RunProgress) -> list[JobResult]:
        if not jobs:
            return []
        ray = _import_ray()
        started = self._init()
        try:
            remote = ray.remote(_ray_task).options(
                num_cpus=resources.cpus, memory=int(resources.memory_mb) * 2**20,
                max_retries=1,  # a lost node or killed worker: retried once elsewhere
            )
            queued = deque(jobs)
            limit = self.workers or len(jobs)
            pending: dict[Any, Job] = {}
            results: list[JobResult] = []
            try:
                while queued or pending:
                    while queued and len(pending) < limit:
                        job = queued.popleft()
                        pending[remote.remote(job)] = job
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                    for ref in ready:
                        result = _collect(ray, ref, pending.pop(ref))
                        progress.job_done(result, frames_reported=False)
                        results.append(result)
            except BaseException:
                # Cancelled tasks get KeyboardInterrupt and delete their partial files.
                for ref in pending:
                    ray.cancel(ref)
                if pending:
                    ray.wait(list(pending), num_returns=len(pending), timeout=30)
                raise
            return results
        finally:
            if started:
                ray.shutdown()


def _ray_task(job: Job) -> JobResult:
    import cv2

    cv2.setNumThreads(1)  # Ray gives the task its declared cores (OMP_NUM_THREADS too)
    return execute(job, TaskContext())


def _collect(ray, ref, job: Job) -> JobResult:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        return JobResult(job.key, error=error_line(err.cause if err.cause is not None else err))
    except ray.exceptions.RayError as err:  # worker or node died, out of memory, cancelled...
        text = str(err).strip().splitlines()
        return JobResult(job.key, error=f"Ray: {type(err).__name__}" + (f": {text[0]}" if text else ""))
