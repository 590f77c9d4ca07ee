"""Several pairs at once in this process, on threads (``--threads N``): one model, no scheduler.

The native engine's heavy work (torch kernels, the numba samplers) releases the GIL, so on a
machine with idle cores N pairs on N threads finish nearly N times sooner than one after the
other, without the start-up cost of worker processes (importing torch and loading the model
again in each: a local dask cluster was slower than one process on 6 pairs). Each thread runs
torch on one CPU thread. bUnwarpJ parallelises one registration itself, so ``--threads auto``
gives it one pair at a time (see :func:`styleunwarp.pipeline.executors.auto_threads`).
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_any
from os import PathLike
from typing import Any, Iterator, Sequence

from . import Finished, Task


def _one_torch_thread() -> None:
    """Pool initialiser: torch on one CPU thread in this worker thread (when torch is loaded)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


class ThreadedExecutor:
    """Runs jobs on ``threads`` threads of this process; :meth:`finished` yields them as they end."""

    def __init__(self, task: Task, threads: int) -> None:
        if threads < 1:
            raise ValueError("threads must be >= 1")
        self._task = task
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[Future, Any] = {}
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        return f"{self._threads} threads in this process"

    def require_paths(self, paths: Sequence[str | PathLike[str]]) -> None:
        """Nothing to check: this process opened them already."""

    def submit(self, job: Any) -> None:
        if self._pool is None:
            raise RuntimeError("use the executor as a context manager")
        with self._lock:
            self._futures[self._pool.submit(self._task, job)] = job

    def finished(self, wait: bool = True) -> Iterator[Finished]:
        while True:
            with self._lock:
                running = list(self._futures)
            if not running:
                return
            done, _ = wait_any(running, timeout=None if wait else 0, return_when=FIRST_COMPLETED)
            if not done:
                return
            for fut in done:
                with self._lock:
                    job = self._futures.pop(fut)
                exc = fut.exception()
                if exc is None:
                    yield Finished(job, fut.result())
                else:  # the task records a pair's own problems; this is a bug or an interrupt
                    yield Finished(job, "failed", lost=f"{type(exc).__name__}: {exc}")

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._futures)

    def __enter__(self) -> "ThreadedExecutor":
        self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="styleunwarp-pair",
                                        initializer=_one_torch_thread)
        return self

    def __exit__(self, *exc: object) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._futures.clear()
