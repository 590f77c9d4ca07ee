"""Watch mode: process pairs as the microscope writes them.

A file counts once it stops growing: its size and modification time are unchanged over
``settle`` seconds (and it is not empty). Each scan hands the complete, not yet processed
pairs to the batch's executor (this process, a local dask cluster or a running dask
scheduler) and runs :func:`run_batch`'s pair logic on them, so all of the batch's guarantees
hold; with a cluster, new pairs are sent while earlier ones are still running. After each
pair the console gets its tier and time, and ``results.csv`` and ``report.html`` are updated.
"""

from __future__ import annotations

import logging
import time
from os import PathLike
from pathlib import Path
from typing import Callable

from .batch import PairJob, _row_from_folder, _write_report, absolute, clean_partials, collect_results, is_done, process_pair, record_lost, write_results
from .executors import check_options, make_executor, resolve_threads
from .pairing import DEFAULT_CBS_PATTERN, DEFAULT_LOM_PATTERN, PairSpec, find_pairs

log = logging.getLogger(__name__)


def _signature(path: Path) -> tuple[int, float] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime)


def pair_line(row: dict, seconds: float) -> str:
    """One console line per processed pair: its tier (and how it was graded) and time, or its error."""
    if row.get("status") != "done":
        return f"{row['pair']}: FAILED after {seconds:.1f} s: {row.get('error') or 'unknown error'}"
    tier = row.get("tier") or "ungraded"
    how = {"tre": "from TRE", "grader": "estimated"}.get(str(row.get("grade_source") or ""), "")
    tre = row.get("tre_mean_px")
    extra = f", TRE {float(tre):.2f} px" if tre not in (None, "") else ""
    return f"{row['pair']}: {tier}" + (f" ({how}{extra})" if how else "") + f", {seconds:.1f} s"


def watch(
    folder: str | PathLike[str],
    out_dir: str | PathLike[str],
    *,
    interval: float = 5.0,
    settle: float = 10.0,
    max_idle: float | None = None,
    lom_pattern: str = DEFAULT_LOM_PATTERN,
    cbs_pattern: str = DEFAULT_CBS_PATTERN,
    echo: Callable[[str], None] = print,
    workers: int = 1,
    cluster: str | None = None,
    scheduler: str | None = None,
    threads: int | None = None,
    **pair_options,
) -> int:
    """Process complete new pairs of ``folder`` until interrupted (or idle for ``max_idle`` s).

    ``workers`` / ``cluster`` / ``scheduler`` / ``threads`` choose where pairs run, as in :func:`run_batch`.
    ``pair_options`` are :class:`PairJob` fields (model, style, backend, params, fiji_dir,
    prealign, coarse_sigma, coarse, lom_pixel_size, cbs_pixel_size, fine_affine). Returns the number of pairs processed.
    """
    from ..registration import PIPELINE_DEFAULTS

    opts = {"model": None, "style": "model", "backend": "bunwarpj", "params": PIPELINE_DEFAULTS, "fiji_dir": None, "prealign": False, "coarse_sigma": None}
    opts.update(pair_options)
    threads = resolve_threads(threads, opts["backend"], workers=workers, cluster=cluster, scheduler=scheduler)
    check_options(workers=workers, cluster=cluster, scheduler=scheduler, threads=threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seen: dict[Path, tuple[tuple[int, float], float]] = {}
    running: set[str] = set()
    started: dict[str, float] = {}
    processed, last_work = 0, time.monotonic()
    echo(f"watching {folder} (every {interval:g} s, files settle after {settle:g} s); Ctrl-C stops")
    clean_partials(out)
    try:
        with make_executor(process_pair, workers=workers, cluster=cluster, scheduler=scheduler, threads=threads) as executor:
            executor.require_paths([Path(folder).absolute(), out.absolute()])
            last_work = time.monotonic()  # idle time counts from when the workers are ready
            while True:
                now = time.monotonic()
                pairs, unpaired = find_pairs(folder, lom_pattern=lom_pattern, cbs_pattern=cbs_pattern)
                for spec in pairs:
                    if spec.name in running or is_done(out / spec.name) or (out / spec.name / "error.json").is_file():
                        continue
                    if _settled(spec, seen, now, settle):
                        job = PairJob(spec, out, **opts)
                        executor.submit(absolute(job) if scheduler else job)
                        running.add(spec.name)
                        started[spec.name] = time.monotonic()
                for fin in executor.finished(wait=False):  # in this process: runs the pairs now
                    if fin.lost is not None:
                        record_lost(fin.job, fin.lost)
                    running.discard(fin.job.spec.name)
                    processed += 1
                    last_work = time.monotonic()
                    name = fin.job.spec.name
                    echo(pair_line(_row_from_folder(fin.job.spec, out / name), last_work - started.pop(name, last_work)))
                    write_results(out, collect_results(out, pairs, unpaired))
                    _write_report(out)
                    if not executor.pending:
                        clean_partials(out)  # what attempts on workers that died left behind
                if max_idle is not None and not executor.pending and time.monotonic() - last_work > max_idle:
                    break
                time.sleep(interval)
    except KeyboardInterrupt:
        echo("stopped")
    return processed


def _settled(spec: PairSpec, seen: dict[Path, tuple[tuple[int, float], float]], now: float, settle: float) -> bool:
    """Whether both files of a pair exist, are not empty and have not changed for ``settle`` s (updates ``seen``)."""
    stable = True
    for f in (spec.lom, spec.cbs):
        sig = _signature(f)
        if sig is None or sig[0] == 0:
            stable = False
            continue
        prev = seen.get(f)
        if prev is None or prev[0] != sig:
            seen[f] = (sig, now)
            stable = False
        elif now - prev[1] < settle:
            stable = False
    return stable
