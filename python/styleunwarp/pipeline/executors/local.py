"""Pairs one after the other in this process (``--workers 1``): one JVM, no scheduler."""

from __future__ import annotations

from collections import deque
from os import PathLike
from typing import Any, Iterator, Sequence

from . import Finished, Task


class InProcessExecutor:
    """Runs each job in this process when :meth:`finished` is iterated."""

    description = "in this process"

    def __init__(self, task: Task) -> None:
        self._task = task
        self._queue: deque[Any] = deque()

    def require_paths(self, paths: Sequence[str | PathLike[str]]) -> None:
        """Nothing to check: this process opened them already."""

    def submit(self, job: Any) -> None:
        self._queue.append(job)

    def finished(self, wait: bool = True) -> Iterator[Finished]:  # noqa: ARG002 - the work is done here either way
        while self._queue:
            job = self._queue.popleft()
            yield Finished(job, self._task(job))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def __enter__(self) -> "InProcessExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.clear()
