"""Where a batch's pairs run: one small interface, one module per variant.

* :class:`~.local.InProcessExecutor`: one pair after the other in this process (``--threads 1``;
  with ``--threads auto`` for bUnwarpJ and elastix).
* :class:`~.threads.ThreadedExecutor`: N pairs at once on threads of this process
  (``--threads N``; ``auto``, the default, is :func:`auto_threads`).
* :class:`~.dask.DaskExecutor`: one task per pair on a ``dask.distributed`` cluster, either a
  running scheduler (``--scheduler ADDRESS``) or a ``LocalCluster`` of N worker processes
  started for the run (``--cluster local:N``; ``--workers N`` is the same). Each worker
  process keeps its JVM for all its pairs; a pair whose worker dies is retried once on
  another worker, then reported as lost.

An executor runs a picklable ``task(job) -> status`` on :class:`~styleunwarp.pipeline.batch.PairJob`
objects; :meth:`Executor.finished` yields each job once, as it finishes, with the status
the task returned or, when the executor lost it, the reason.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from os import PathLike
from typing import Any, Callable, Iterator, Protocol, Sequence

from ...errors import StyleunwarpError

Task = Callable[[Any], str]


@dataclass(frozen=True)
class Finished:
    """A job that left the executor: ``status`` from the task, or ``"failed"`` with ``lost`` set.

    ``lost`` says why the executor could not get a status (the worker process died on every
    attempt, the task raised); the batch records it as the pair's error.
    """

    job: Any
    status: str
    lost: str | None = None


class Executor(Protocol):
    """Runs tasks on pair jobs; a context manager that releases its workers on exit."""

    def require_paths(self, paths: Sequence[str | PathLike[str]]) -> None:
        """Raise :class:`ExecutorError` unless every worker can see these paths."""

    def submit(self, job: Any) -> None:
        """Queue one job."""

    def finished(self, wait: bool = True) -> Iterator[Finished]:
        """Jobs as they finish, each once; ``wait=False`` yields only those already finished."""

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet yielded by :meth:`finished`."""

    @property
    def description(self) -> str:
        """Where the jobs run, in words (for logs and the console)."""

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc: object) -> None: ...


class ExecutorError(StyleunwarpError):
    """The executor could not be set up (scheduler unreachable, folders not shared, …)."""


_CLUSTER = re.compile(r"^local:(\d+)$")


def parse_cluster(spec: str) -> int:
    """Number of workers of a ``--cluster`` spec (``local:N``)."""
    m = _CLUSTER.match(spec.strip())
    if not m or int(m.group(1)) < 1:
        raise ExecutorError(f"--cluster {spec!r}: expected local:N with N >= 1 workers (use --scheduler ADDRESS for a running cluster)")
    return int(m.group(1))


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Compute threads (torch, BLAS) for each of ``workers`` processes sharing this machine's cores."""
    return max(1, (cores or available_cores()) // max(1, workers))


def auto_threads(backend: str, cores: int | None = None) -> int:
    """Pairs registered at once in this process by ``--threads auto``.

    The native engine runs one registration on one thread, so it gets a pair per core;
    bUnwarpJ (and elastix) spread one registration over the cores themselves, so they get one
    pair at a time (measured: ``benchmarks/bench_native_cli.py``, docs/native.md).
    """
    return (cores or available_cores()) if backend == "native" else 1


def resolve_threads(threads: int | None, backend: str, *, workers: int = 1, cluster: str | None = None,
                    scheduler: str | None = None) -> int:
    """``threads`` as given; ``None`` (``--threads auto``): :func:`auto_threads` when the pairs run
    in this process, 1 when worker processes (``workers``, ``cluster``, ``scheduler``) run them."""
    if threads is not None:
        return threads
    return 1 if (workers > 1 or cluster or scheduler) else auto_threads(backend)


def check_options(*, workers: int = 1, cluster: str | None = None, scheduler: str | None = None, threads: int = 1) -> None:
    """Raise :class:`ExecutorError` for contradictory or malformed executor options (before any work)."""
    if threads < 1:
        raise ExecutorError(f"--threads {threads}: need at least 1")
    given = [name for name, v in (("--scheduler", scheduler), ("--cluster", cluster), ("--workers", workers > 1), ("--threads", threads > 1)) if v]
    if len(given) > 1:
        raise ExecutorError(f"{' and '.join(given)} exclude each other: give one")
    if cluster:
        parse_cluster(cluster)


def make_executor(task: Task, *, workers: int = 1, cluster: str | None = None, scheduler: str | None = None, jobs: int | None = None,
                  threads: int = 1) -> Executor:
    """The executor the batch options ask for.

    ``scheduler``: a running ``dask.distributed`` scheduler; ``cluster`` (``local:N``) or
    ``workers`` > 1: a ``LocalCluster`` of that many worker processes, at most ``jobs``
    (a single job runs in this process); ``threads`` > 1: that many threads of this process
    (at most ``jobs``); else one pair after the other in this process.
    """
    check_options(workers=workers, cluster=cluster, scheduler=scheduler, threads=threads)
    if scheduler:
        from .dask import DaskExecutor

        return DaskExecutor(task, address=scheduler)
    n = parse_cluster(cluster) if cluster else workers
    if jobs is not None:
        n = min(n, jobs)
    if n > 1:
        from .dask import DaskExecutor

        return DaskExecutor(task, local_workers=n)
    if jobs is not None:
        threads = min(threads, jobs)
    if threads > 1:
        from .threads import ThreadedExecutor

        return ThreadedExecutor(task, threads)
    from .local import InProcessExecutor

    return InProcessExecutor(task)


__all__ = ["Executor", "ExecutorError", "Finished", "auto_threads", "available_cores", "check_options", "make_executor", "parse_cluster", "resolve_threads", "threads_per_worker"]
