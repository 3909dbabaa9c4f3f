"""The executor interface: run one job per video, somewhere, and report each outcome.

A :class:`Job` is a picklable call ``fn(*args, ctx=TaskContext)`` keyed by a video id. An
:class:`Executor` runs a list of jobs (in this process, a local process pool, a Ray
cluster...) and returns one :class:`JobResult` per job. A job that raises an ordinary
exception becomes a failed result with a one-line reason; the other jobs go on.
Interrupting the driver (Ctrl-C) stops every job, and jobs clean up after themselves
(their outputs are written atomically), so a rerun resumes.

Adding an executor = one subclass of :class:`Executor` registered in ``EXECUTORS``.
"""

from __future__ import annotations

import resource
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facepulse.errors import ConfigError, FacepulseError
from facepulse.registry import Registry

__all__ = [
    "EXECUTORS",
    "Executor",
    "Job",
    "JobResult",
    "Resources",
    "RunProgress",
    "TaskContext",
    "error_line",
    "peak_rss_mb",
]


@dataclass(frozen=True)
class Resources:
    """What one job needs on a node: CPU cores and memory (MiB).

    A cluster scheduler (Ray) places a job only on a node with this much left, so a node
    never runs more jobs than it has cores or memory for.
    """

    cpus: float = 1.0
    memory_mb: int = 1024

    def __post_init__(self) -> None:
        if self.cpus <= 0 or self.memory_mb <= 0:
            raise ConfigError(f"job resources must be > 0 (cpus={self.cpus}, memory_mb={self.memory_mb})")


@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn(*args, ctx=ctx)``, picklable (``fn`` a module-level function)."""

    key: str
    fn: Callable[..., Any]
    args: tuple = ()


class TaskContext:
    """Handed to a running job: report progress, and ask whether to stop.

    ``frames(n)`` counts ``n`` more frames done; ``should_stop()`` is True when the job
    should give up (the driver is stopping); a job may also be interrupted by
    KeyboardInterrupt, and must then remove its partial output.
    """

    def __init__(self, on_frames: Callable[[int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> None:
        self._on_frames = on_frames
        self._should_stop = should_stop
        self.n_frames = 0

    def frames(self, n: int) -> None:
        self.n_frames += n
        if self._on_frames is not None:
            self._on_frames(n)

    def should_stop(self) -> bool:
        return self._should_stop is not None and self._should_stop()


@dataclass
class JobResult:
    """What became of one job: ``value`` (what ``fn`` returned) or ``error`` (one line)."""

    key: str
    value: Any = None
    error: str | None = None
    frames: int = 0
    elapsed_s: float = 0.0
    peak_rss_mb: float = 0.0
    host: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


class JobStopped(Exception):
    """Raised inside a job when the run is being interrupted (see TaskContext.should_stop)."""


def error_line(err: BaseException) -> str:
    """A one-line reason: the message of a user error, type and message of anything else."""
    if isinstance(err, FacepulseError):
        text = str(err)
    else:  # not a user error: keep the type, it points at the bug
        text = f"{type(err).__name__}: {err}"
    return text.splitlines()[0] if text else type(err).__name__


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MiB).

    Linux's VmHWM restarts at exec, whereas ``ru_maxrss`` of a spawned worker keeps the
    size of the parent it was forked from; elsewhere ru_maxrss is all there is.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def execute(job: Job, ctx: TaskContext) -> JobResult:
    """Run one job where it stands (any executor's worker calls this)."""
    t0 = time.monotonic()
    try:
        value = job.fn(*job.args, ctx=ctx)
        error = None
    except (JobStopped, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001  (one bad video must not stop the others)
        value, error = None, error_line(err)
    return JobResult(job.key, value=value, error=error, frames=ctx.n_frames, elapsed_s=time.monotonic() - t0,
                     peak_rss_mb=peak_rss_mb(), host=socket.gethostname())


class RunProgress:
    """The driver's view of a run: videos done / failed / remaining, frames, throughput.

    Executors call :meth:`add_frames` while jobs run (when they can report live) and
    :meth:`job_done` once per job. With ``enabled`` a Rich progress bar is drawn on
    stderr, and each failure is printed above it with its reason as it happens.
    """

    def __init__(self, total: int, label: str, enabled: bool = True, unit: str = "videos") -> None:
        self.total = total
        self.unit = unit
        self.done = 0
        self.failed = 0
        self.frames = 0
        self.t0 = time.monotonic()
        self.bar = None
        if not enabled or total == 0:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.bar.start()
        self.task = self.bar.add_task(label, total=total, status=self.status())

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.t0

    def status(self) -> str:
        dt = max(1e-9, self.elapsed_s)
        finished = self.done + self.failed
        return (f"{self.unit}: {self.done} done, {self.failed} failed, {self.remaining} left  "
                f"{self.frames} frames  {finished / dt:.2f} {self.unit}/s  {self.frames / dt:.0f} frames/s")

    def add_frames(self, n: int) -> None:
        self.frames += n
        if self.bar is not None:
            self.bar.update(self.task, status=self.status())

    def job_done(self, result: JobResult, frames_reported: bool) -> None:
        """Count one finished job; ``frames_reported``: its frames already went to add_frames."""
        if not frames_reported:
            self.frames += result.frames
        if result.ok:
            self.done += 1
        else:
            self.failed += 1
            if self.bar is not None:
                from rich.markup import escape

                self.bar.console.print(f"[red]FAILED[/red] {escape(result.key)}: {escape(str(result.error))}",
                                       highlight=False)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done + self.failed, status=self.status())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class Executor(ABC):
    """Runs jobs. Subclasses: :class:`facepulse.executors.local.LocalExecutor`,
    :class:`facepulse.executors.ray_cluster.RayExecutor`."""

    name: str = ""

    @abstractmethod
    def run(self, jobs: Sequence[Job], resources: Resources, progress: RunProgress) -> list[JobResult]:
        """Run every job; one result per job, in completion order.

        Raises KeyboardInterrupt after the running jobs were stopped (they remove their
        partial outputs).
        """

    def describe(self) -> str:
        return self.name


#: Executor classes by name: ``EXECUTORS.get(name)(workers=..., address=...)``.
EXECUTORS: Registry[type[Executor]] = Registry("executor")

