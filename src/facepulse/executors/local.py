"""The default executor: jobs in this process (1 worker) or in a local process pool."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from facepulse.errors import ConfigError
from facepulse.executors.base import (
    EXECUTORS,
    Executor,
    Job,
    JobResult,
    JobStopped,
    Resources,
    RunProgress,
    TaskContext,
    error_line,
    execute,
)


@EXECUTORS.register("local", help="this machine: in this process (1 worker) or a pool of worker processes")
class LocalExecutor(Executor):
    """``workers`` jobs at once on this machine: 1 runs them in this process, more in
    spawned worker processes (one-thread BLAS/OpenCV each, frames reported live)."""

    name = "local"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        if address is not None:
            raise ConfigError("--address is for --executor ray (an existing Ray cluster)")
        workers = 1 if workers is None else int(workers)
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers = workers

    def describe(self) -> str:
        return f"local, {self.workers} worker{'s' if self.workers > 1 else ''}"

    def run(self, jobs: Sequence[Job], resources: Resources, progress: RunProgress) -> list[JobResult]:
        if not jobs:
            return []
        if self.workers == 1 or len(jobs) == 1:
            results = []
            for job in jobs:
                result = execute(job, TaskContext(on_frames=progress.add_frames))
                progress.job_done(result, frames_reported=True)
                results.append(result)
            return results
        return self._run_pool(jobs, progress)

    def _run_pool(self, jobs: Sequence[Job], progress: RunProgress) -> list[JobResult]:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads / HDF5 handles
        stop = ctx.Event()
        queue = ctx.Queue()
        results: list[JobResult] = []
        with _single_threaded_children():
            pool = ProcessPoolExecutor(
                max_workers=min(self.workers, len(jobs)), mp_context=ctx,
                initializer=_init_worker, initargs=(stop, queue, os.getpid()),
            )
            futures: dict[Future, Job] = {}
            try:
                futures = {pool.submit(_worker_job, job): job for job in jobs}
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(queue, progress)
                    for fut in done:
                        result = _collect(fut, futures[fut])
                        progress.job_done(result, frames_reported=True)
                        results.append(result)
                _drain(queue, progress)
            except BaseException:
                stop.set()  # workers abandon their job at the next frame and delete partial output
                for fut in futures:
                    fut.cancel()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
        queue.close()
        return results


# Worker-process state, set by _init_worker.
_WORKER: dict[str, Any] = {}


def _init_worker(stop_event, progress_queue, parent_pid: int) -> None:
    # Ctrl-C reaches the whole process group: the parent alone decides to stop (via
    # stop_event), so workers can delete their temporary files in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(1)
    _WORKER.update(stop=stop_event, queue=progress_queue, parent=parent_pid)


def _worker_should_stop() -> bool:
    # An orphaned worker (parent killed) stops too, rather than finishing unseen.
    return _WORKER["stop"].is_set() or os.getppid() != _WORKER["parent"]


def _worker_job(job: Job) -> JobResult:
    return execute(job, TaskContext(on_frames=_WORKER["queue"].put, should_stop=_worker_should_stop))


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Children spawned inside inherit one-thread BLAS/OpenMP settings (workers share the CPU)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({n: "1" for n in names})
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def _collect(fut: Future, job: Job) -> JobResult:
    try:
        return fut.result()
    except BrokenProcessPool:
        return JobResult(job.key, error="the worker process died (killed, or out of memory)")
    except JobStopped:
        return JobResult(job.key, error="stopped")
    except Exception as err:  # noqa: BLE001  (e.g. the job could not be pickled)
        return JobResult(job.key, error=error_line(err))


def _drain(queue, progress: RunProgress) -> None:
    import queue as queue_module

    while True:
        try:
            progress.add_frames(queue.get_nowait())
        except queue_module.Empty:
            return
        except (OSError, ValueError):  # queue closed
            return
