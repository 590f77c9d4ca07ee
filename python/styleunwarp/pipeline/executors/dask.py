"""One task per pair on a ``dask.distributed`` cluster (``--scheduler ADDRESS``, ``--cluster local:N``).

Each worker process keeps its JVM with ImageJ and bUnwarpJ for all its pairs (the JVM is
process-wide: :mod:`styleunwarp.imagej.jvm` starts it once per process), and
:class:`PairWorker`, a worker plugin, sets a local worker's torch/BLAS threads before its
first pair. A pair whose worker process dies (JVM crash, memory limit, node lost) is given to
another worker once (``allowed-failures`` 1 on a local cluster; a running scheduler uses its
own setting, see :attr:`DaskExecutor.description`), then reported as lost. Pair folders
are written by the workers, so the output folder must be on a filesystem they all share;
:meth:`DaskExecutor.require_paths` checks that before any pair is sent.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from concurrent.futures import CancelledError
from os import PathLike
from typing import Any, Iterator, Sequence

import distributed
from distributed import Client, Future, KilledWorker, LocalCluster, WorkerPlugin

from . import ExecutorError, Finished, Task, threads_per_worker

log = logging.getLogger(__name__)

WORKER_WAIT_S = 120.0
"""Seconds to wait for the first worker to join (a job-queue cluster may still be starting)."""

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

LOST = ("its worker process died while registering it, and again on the retry "
        "(JVM crash, out of memory or node lost); rerun to retry")


def limit_threads(threads: int) -> None:
    """Let torch and BLAS in this process use ``threads`` threads (before or after torch is imported)."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


class PairWorker(WorkerPlugin):
    """Worker plugin of a local cluster: sets the worker process's threads once, before its first pair.

    Workers of a running cluster keep their own setting: a dask nanny starts each worker with
    ``OMP_NUM_THREADS=1``, one torch thread per worker thread (dask's rule).
    """

    name = "styleunwarp"

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def setup(self, worker: Any) -> None:
        limit_threads(self.threads)


def _missing(paths: Sequence[str]) -> list[str]:
    """The paths this worker cannot see (runs on each worker)."""
    return [p for p in paths if not os.path.exists(p)]


def _allowed_failures(dask_scheduler: Any) -> int:
    return int(dask_scheduler.allowed_failures)


class DaskExecutor:
    """Pairs as tasks on a running scheduler (``address``) or on a ``LocalCluster`` of ``local_workers`` processes."""

    def __init__(self, task: Task, *, address: str | None = None, local_workers: int | None = None) -> None:
        if (address is None) == (local_workers is None):
            raise ValueError("give either address or local_workers")
        self._task = task
        self._address = address
        self._local = local_workers
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None
        self._futures: dict[Future, Any] = {}
        self._log_level: int | None = None
        self.description = ""

    # ------------------------------------------------------------------ set-up
    def __enter__(self) -> "DaskExecutor":
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        dlog = logging.getLogger("distributed")
        self._log_level = dlog.level
        if not log.isEnabledFor(logging.INFO):  # dask's own chatter only with styleunwarp -v
            dlog.setLevel(logging.ERROR)
        if self._local is not None:
            threads = threads_per_worker(self._local)
            self._cluster = LocalCluster(
                n_workers=self._local, threads_per_worker=1, processes=True, dashboard_address=":0",
                scheduler_kwargs={"allowed_failures": 1}, silence_logs=logging.ERROR,
            )  # fmt: skip
            self._client = Client(self._cluster)
            self._client.register_plugin(PairWorker(threads), name=PairWorker.name)
            self.description = f"a local dask cluster of {self._local} worker processes, {threads} torch thread(s) each"
            return
        try:
            self._client = Client(self._address)  # gives up after dask's distributed.comm.timeouts.connect
        except (OSError, TimeoutError, ValueError) as exc:
            raise ExecutorError(f"cannot reach the dask scheduler at {self._address}: {exc}") from exc
        try:
            self._client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError as exc:
            raise ExecutorError(f"no dask worker joined the scheduler at {self._address} within {WORKER_WAIT_S:g} s") from exc
        retries = self._client.run_on_scheduler(_allowed_failures)
        n = len(self._client.scheduler_info(n_workers=-1)["workers"])
        self.description = (f"the dask scheduler at {self._address} ({n} workers now; a pair whose worker dies "
                            f"is retried {retries} time(s), the scheduler's allowed-failures)")

    def require_paths(self, paths: Sequence[str | PathLike[str]]) -> None:
        """Raise :class:`ExecutorError` unless every worker sees every path (a shared filesystem)."""
        wanted = [os.fspath(p) for p in paths]
        missing = {w: m for w, m in self._require_client().run(_missing, wanted).items() if m}
        if missing:
            path = sorted({p for m in missing.values() for p in m})[0]
            who = ", ".join(sorted(w for w, m in missing.items() if path in m))
            raise ExecutorError(f"{path}: not visible on the dask worker(s) {who}; inputs, the output folder, "
                                "Fiji and the style model must be on a filesystem every worker shares")

    # ------------------------------------------------------------------ work
    def submit(self, job: Any) -> None:
        name = getattr(getattr(job, "spec", None), "name", "pair")
        fut = self._require_client().submit(self._task, job, key=f"styleunwarp-{name}-{uuid.uuid4().hex[:8]}", retries=1)
        self._futures[fut] = job

    def finished(self, wait: bool = True) -> Iterator[Finished]:
        if not wait:
            for fut in [f for f in self._futures if f.done()]:
                yield self._outcome(fut, self._futures.pop(fut))
            return
        while self._futures:  # jobs submitted while iterating are waited for too
            for fut in distributed.as_completed(list(self._futures)):
                yield self._outcome(fut, self._futures.pop(fut))

    @staticmethod
    def _outcome(fut: Future, job: Any) -> Finished:
        try:
            return Finished(job, fut.result())
        except KilledWorker:
            return Finished(job, "failed", LOST)
        except (Exception, CancelledError) as exc:  # noqa: BLE001 - a task that raised is recorded, the batch goes on
            return Finished(job, "failed", f"{type(exc).__name__}: {exc}")
        finally:
            fut.release()

    @property
    def pending(self) -> int:
        return len(self._futures)

    def _require_client(self) -> Client:
        if self._client is None:
            raise RuntimeError("use the executor in a with block")
        return self._client

    def __exit__(self, *exc: object) -> None:
        for fut in self._futures:
            fut.cancel()
        self._futures.clear()
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        if self._log_level is not None:
            logging.getLogger("distributed").setLevel(self._log_level)
            self._log_level = None
