"""Batches over acquisition folders: every pair styled, registered, re-applied and graded.

Robustness rules:
* each pair is computed into a hidden ``.partial-*`` folder and renamed into place when
  complete, so an interrupted run (even ``kill -9``) leaves no half-written pair folder;
  ``metrics.json`` marks a finished pair, ``error.json`` a failed one;
* a rerun skips finished pairs (``force`` redoes them), retries failed ones, and deletes
  stale partial folders;
* ``results.csv`` is rebuilt from the pair folders after every pair, so it is never ahead
  of or behind what is on disk, and nothing is counted twice;
* one pair's error (bad file, bUnwarpJ failure, even a crashed worker process) is recorded
  with its reason and the batch goes on.

Where the pairs run (this process, a local dask cluster, a running dask scheduler) is the
executor's business (:mod:`.executors`); everything above holds for all of them, given a
filesystem the workers share.
"""

from __future__ import annotations

import csv
import io as _io
import json
import logging
import os
import shutil
import traceback
import uuid
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Callable, Sequence

from ..io import atomic_write_text
from ..quality import grade
from ..registration import PIPELINE_DEFAULTS, BUnwarpJParams
from ..report.html import RESULT_COLUMNS, row_from_metrics
from .executors import check_options, make_executor, resolve_threads
from .pairing import DEFAULT_CBS_PATTERN, DEFAULT_LOM_PATTERN, PairSpec, Unpaired, find_pairs, read_manifest

log = logging.getLogger(__name__)

PARTIAL_PREFIX = ".partial-"


@dataclass(frozen=True)
class PairJob:
    """Everything one worker needs to process one pair (picklable)."""

    spec: PairSpec
    out_dir: Path
    model: str | None
    style: str
    backend: str
    params: BUnwarpJParams
    fiji_dir: str | None
    prealign: bool
    coarse_sigma: float | None = None
    backend_options: dict = field(default_factory=dict)
    coarse: str = "auto"
    lom_pixel_size: float | None = None
    cbs_pixel_size: float | None = None
    alternatives: tuple = ()  # chains (style.chain.Chain) for a second opinion (pipeline/second_opinion.py)
    fine_affine: bool = True  # the fine affine step (pipeline/fine_affine.py)
    adapt_steps: int | None = None  # test-time adaptation of a style model (pipeline/adapt.py); 0: off, None: its default


@dataclass
class BatchSummary:
    """Counts of a batch run."""

    out_dir: Path
    done: int = 0
    skipped: int = 0
    failed: int = 0
    unpaired: int = 0
    tiers: dict = field(default_factory=dict)
    pairs: int = 0
    unpaired_files: list = field(default_factory=list)  # Unpaired (file, reason)
    failures: list = field(default_factory=list)  # (pair name, error)

    @property
    def ok(self) -> bool:
        """True when every pair is registered and no file was left unpaired."""
        return self.failed == 0 and self.unpaired == 0

    def line(self) -> str:
        tiers = ", ".join(f"{k} {v}" for k, v in sorted(self.tiers.items()))
        return (
            f"{self.done} registered, {self.skipped} already done, {self.failed} failed, {self.unpaired} unpaired"
            + (f" (tiers: {tiers})" if tiers else "")
            + f"; results in {self.out_dir / 'results.csv'}"
        )

    def details(self) -> list[str]:
        """One line per unpaired file and per failed pair, with the reason."""
        lines = [f"unpaired: {u.path} ({u.reason})" for u in self.unpaired_files]
        return lines + [f"failed: {name}: {error}" for name, error in self.failures]


def absolute(job: PairJob) -> PairJob:
    """The job with absolute paths, for workers whose working directory is not this process's."""
    spec = job.spec
    spec = replace(spec, lom=spec.lom.absolute(), cbs=spec.cbs.absolute(), truth=None if spec.truth is None else spec.truth.absolute())
    opt = {k: None if getattr(job, k) is None else os.path.abspath(getattr(job, k)) for k in ("model", "fiji_dir")}
    return replace(job, spec=spec, out_dir=job.out_dir.absolute(), **opt)


def is_done(pair_dir: Path) -> bool:
    """Whether a pair folder holds a finished registration."""
    return (pair_dir / "metrics.json").is_file()


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` (both folders); the old one is removed only afterwards."""
    trash = None
    if final.exists():
        trash = final.with_name(f"{PARTIAL_PREFIX}old-{final.name}-{uuid.uuid4().hex[:8]}")
        os.replace(final, trash)
    os.replace(tmp, final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def _make_figures(pair_dir: Path) -> None:
    """The report's pictures of a finished pair, made where the pair ran (in parallel with the
    other pairs, not one after the other when the report is written); a picture that cannot be
    made is noted by the report, never a failure of the pair."""
    from ..report import ensure_figures

    try:
        ensure_figures(pair_dir, json.loads((pair_dir / "metrics.json").read_text()))
    except Exception as exc:  # noqa: BLE001 - the report retries and says what is missing
        log.warning("%s: report pictures not made now (%s); the report makes them", pair_dir.name, exc)


def process_pair(job: PairJob) -> str:
    """Register one pair into ``out_dir/<name>/``; returns ``"done"`` or ``"failed"``.

    Never raises for a problem of the pair itself: the reason goes to ``error.json``.
    """
    from .second_opinion import register_pair_verified

    final = job.out_dir / job.spec.name
    tmp = job.out_dir / f"{PARTIAL_PREFIX}{job.spec.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    status = "done"
    try:
        register_pair_verified(
            job.spec.lom,
            job.spec.cbs,
            tmp,
            alternatives=job.alternatives,
            model=job.model,
            style=job.style,
            backend=job.backend,
            params=job.params,
            fiji_dir=job.fiji_dir,
            truth=job.spec.truth,
            prealign=job.prealign,
            coarse_sigma=job.coarse_sigma,
            backend_options=job.backend_options,
            coarse=job.coarse,
            lom_pixel_size=job.spec.lom_pixel_size or job.lom_pixel_size,
            cbs_pixel_size=job.spec.cbs_pixel_size or job.cbs_pixel_size,
            fine_affine=job.fine_affine,
            adapt_steps=job.adapt_steps,
        )
        _make_figures(tmp)
    except Exception as exc:  # noqa: BLE001 - every failure of one pair is recorded, the batch goes on
        status = "failed"
        (tmp / "metrics.json").unlink(missing_ok=True)
        detail = {"pair": job.spec.name, "lom": str(job.spec.lom), "cbs": str(job.spec.cbs), "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6)}
        atomic_write_text(tmp / "error.json", json.dumps(detail, indent=2) + "\n")
    _swap_into_place(tmp, final)
    return status


def _row_from_folder(spec: PairSpec, pair_dir: Path) -> dict:
    row: dict = {"pair": spec.name, "lom": str(spec.lom), "cbs": str(spec.cbs)}
    if is_done(pair_dir):
        m = json.loads((pair_dir / "metrics.json").read_text())
        tier, source = grade(m)
        row = {**row_from_metrics(spec.name, m, None), **row, "tier": tier, "grade_source": source}
    elif (pair_dir / "error.json").is_file():
        row.update(status="failed", error=json.loads((pair_dir / "error.json").read_text()).get("error", "unknown error"))
    else:
        row.update(status="pending")
    return row


def collect_results(out_dir: Path, pairs: list[PairSpec], unpaired: list[Unpaired]) -> list[dict]:
    """Rows of ``results.csv``, read from the pair folders (the single source of truth)."""
    rows = [_row_from_folder(spec, out_dir / spec.name) for spec in pairs]
    rows += [{"pair": u.path.stem, "status": "unpaired", "lom": str(u.path), "error": u.reason} for u in unpaired]
    return rows


def write_results(out_dir: Path, rows: list[dict]) -> Path:
    """Write ``results.csv`` atomically."""
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return atomic_write_text(out_dir / "results.csv", buf.getvalue())


def discover(source: str | PathLike[str], *, lom_pattern: str = DEFAULT_LOM_PATTERN, cbs_pattern: str = DEFAULT_CBS_PATTERN) -> tuple[list[PairSpec], list[Unpaired]]:
    """Pairs of an acquisition folder, or of a CSV manifest file."""
    p = Path(source)
    if p.is_file():
        return read_manifest(p), []
    return find_pairs(p, lom_pattern=lom_pattern, cbs_pattern=cbs_pattern)


def clean_partials(out_dir: Path) -> None:
    """Remove the partial folders of ``out_dir`` (only while no pair of it is being computed)."""
    for p in out_dir.glob(f"{PARTIAL_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)


def run_batch(
    source: str | PathLike[str],
    out_dir: str | PathLike[str],
    *,
    model: str | PathLike[str] | None = None,
    style: str = "model",
    backend: str = "bunwarpj",
    params: BUnwarpJParams | None = None,
    fiji_dir: str | PathLike[str] | None = None,
    workers: int = 1,
    cluster: str | None = None,
    scheduler: str | None = None,
    threads: int | None = None,
    force: bool = False,
    prealign: bool = False,
    coarse_sigma: float | None = None,
    backend_options: dict | None = None,
    coarse: str = "auto",
    lom_pixel_size: float | None = None,
    cbs_pixel_size: float | None = None,
    lom_pattern: str = DEFAULT_LOM_PATTERN,
    cbs_pattern: str = DEFAULT_CBS_PATTERN,
    progress: bool = True,
    report: bool = True,
    echo: Callable[[str], None] | None = None,
    alternatives: Sequence = (),
    fine_affine: bool = True,
    adapt_steps: int | None = None,
) -> BatchSummary:
    """Register every pair of an acquisition folder (or CSV manifest) into ``out_dir``.

    Parameters
    ----------
    source
        Acquisition folder (pairs by ``lom_pattern`` / ``cbs_pattern``) or a CSV manifest.
    out_dir
        Output folder: one sub-folder per pair, ``results.csv`` and ``report.html``.
    workers
        Parallel worker processes (each with its own JVM): a local dask cluster, as
        ``cluster="local:N"``; 1 runs in this process.
    cluster, scheduler
        ``"local:N"``: a ``dask.distributed`` LocalCluster of N worker processes for this
        run; ``scheduler``: the address of a running dask scheduler whose workers share the
        filesystem (inputs, ``out_dir``, Fiji, the model). One task per pair; a pair whose
        worker dies is retried once elsewhere, then recorded as failed.
    threads
        Pairs registered at once on threads of this process (with ``workers`` 1 and no
        cluster). ``None``: :func:`~styleunwarp.pipeline.executors.auto_threads` (one per
        core for the native backend, 1 for bUnwarpJ and elastix).
    force
        Redo pairs that are already done.
    alternatives
        Chains of the model for a second opinion where the model's chain gives a result that is
        not structure evidence of alignment (:mod:`.second_opinion`); ``()`` for none.
    Other parameters as in :func:`styleunwarp.pipeline.register_pair`.
    """
    from tqdm import tqdm

    threads = resolve_threads(threads, backend, workers=workers, cluster=cluster, scheduler=scheduler)
    check_options(workers=workers, cluster=cluster, scheduler=scheduler, threads=threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean_partials(out)
    pairs, unpaired = discover(source, lom_pattern=lom_pattern, cbs_pattern=cbs_pattern)
    params = params or PIPELINE_DEFAULTS
    todo = [p for p in pairs if force or not is_done(out / p.name)]
    summary = BatchSummary(out, skipped=len(pairs) - len(todo), unpaired=len(unpaired), pairs=len(pairs), unpaired_files=list(unpaired))
    jobs = [PairJob(p, out, None if model is None else str(model), style, backend, params, None if fiji_dir is None else str(fiji_dir), prealign, coarse_sigma, dict(backend_options or {}), coarse, lom_pixel_size, cbs_pixel_size, tuple(alternatives), fine_affine, adapt_steps) for p in todo]
    if scheduler:  # remote workers do not share this process's working directory
        jobs = [absolute(job) for job in jobs]
    write_results(out, collect_results(out, pairs, unpaired))
    bar = tqdm(total=len(jobs), desc="pairs", unit="pair", disable=not progress)

    def finished(job: PairJob, status: str) -> None:
        if status == "done":
            summary.done += 1
        elif echo:
            error_file = out / job.spec.name / "error.json"
            err = json.loads(error_file.read_text())["error"] if error_file.is_file() else status
            echo(f"{job.spec.name}: FAILED: {err}")
        write_results(out, collect_results(out, pairs, unpaired))
        bar.update(1)

    try:
        if jobs:
            with make_executor(process_pair, workers=workers, cluster=cluster, scheduler=scheduler, jobs=None if scheduler else len(jobs), threads=threads) as executor:
                log.info("batch of %d pairs on %s", len(jobs), executor.description)
                executor.require_paths([p.absolute() for p in (Path(source), out, *(Path(q) for q in (model, fiji_dir) if q is not None)) if p.exists()])
                for job in jobs:
                    executor.submit(job)
                for fin in executor.finished():
                    finished(fin.job, fin.status if fin.lost is None else record_lost(fin.job, fin.lost))
            clean_partials(out)  # what attempts on workers that died left behind
    finally:
        bar.close()
        rows = collect_results(out, pairs, unpaired)
        write_results(out, rows)
        for r in rows:
            if r.get("status") == "done" and r.get("tier"):
                summary.tiers[r["tier"]] = summary.tiers.get(r["tier"], 0) + 1
        if report:
            _write_report(out)
    summary.failures = [(r["pair"], r.get("error") or "") for r in rows if r["status"] == "failed"]  # this run's and earlier runs'
    summary.failed = len(summary.failures)
    return summary


def record_lost(job: PairJob, reason: str) -> str:
    """Record a pair the executor lost (its worker died): ``error.json`` unless it is done; returns ``"failed"``."""
    final = job.out_dir / job.spec.name
    if is_done(final):  # an earlier result stays (a --force rerun lost this attempt)
        return "failed"
    final.mkdir(parents=True, exist_ok=True)
    atomic_write_text(final / "error.json", json.dumps({"pair": job.spec.name, "lom": str(job.spec.lom), "cbs": str(job.spec.cbs), "error": reason}, indent=2) + "\n")
    return "failed"


def _write_report(out: Path) -> None:
    try:
        from ..report import write_report
    except ImportError:
        return
    try:
        write_report(out)
    except Exception as exc:  # noqa: BLE001 - a report problem never loses the batch's results
        log.warning("could not write the HTML report: %s", exc)
