"""Pairs on threads of one process (``--threads``): same results as one after the other, bad pairs recorded."""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from styleunwarp.cli import main
from styleunwarp.io import write_tiff
from styleunwarp.pipeline.executors import ExecutorError, auto_threads, check_options, make_executor, resolve_threads
from styleunwarp.pipeline.executors.threads import ThreadedExecutor
from styleunwarp.synth import make_pair
from styleunwarp.transform import write_elastic

ARGS = ["--backend", "native", "--mode", "mono", "--final-deformation", "coarse", "--style", "none", "--no-progress"]


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "results.csv", newline="") as fh:
        return {r["pair"]: r for r in csv.DictReader(fh)}


def test_threaded_executor_runs_jobs_concurrently_and_reports_crashes():
    started, release = threading.Barrier(2, timeout=10), threading.Event()

    def task(job):
        if job == "boom":
            raise RuntimeError("task bug")
        started.wait()  # both jobs must be running at once to pass the barrier
        release.set()
        return f"done {job}"

    with make_executor(task, threads=2, jobs=3) as ex:
        assert isinstance(ex, ThreadedExecutor) and ex.description == "2 threads in this process"
        for job in ("a", "b", "boom"):
            ex.submit(job)
        got = {f.job: (f.status, f.lost) for f in ex.finished()}
        assert ex.pending == 0
    assert release.is_set()
    assert got == {"a": ("done a", None), "b": ("done b", None), "boom": ("failed", "RuntimeError: task bug")}


def test_finished_without_waiting_yields_only_what_is_done():
    gate = threading.Event()
    with ThreadedExecutor(lambda job: (gate.wait(10), "done")[1], 2) as ex:
        ex.submit(1)
        assert list(ex.finished(wait=False)) == []
        gate.set()
        deadline = time.monotonic() + 10
        seen = []
        while not seen and time.monotonic() < deadline:
            seen = list(ex.finished(wait=False))
        assert [f.status for f in seen] == ["done"]


def test_thread_options_checked_before_any_work():
    assert auto_threads("native", cores=4) == 4 and auto_threads("bunwarpj", cores=4) == 1 and auto_threads("elastix", cores=4) == 1
    assert resolve_threads(3, "bunwarpj") == 3 and resolve_threads(None, "bunwarpj") == 1
    assert resolve_threads(None, "native") == auto_threads("native")
    assert resolve_threads(None, "native", workers=2) == resolve_threads(None, "native", cluster="local:2") == resolve_threads(None, "native", scheduler="tcp://x:1") == 1
    with pytest.raises(ExecutorError, match="--workers and --threads exclude each other"):
        check_options(workers=2, threads=2)
    with pytest.raises(ExecutorError, match="at least 1"):
        check_options(threads=0)
    with make_executor(lambda j: "done", threads=4, jobs=1) as ex:  # one job: no pool
        assert ex.description == "in this process"


def test_batch_on_threads_equals_one_after_the_other(tmp_path):
    src = tmp_path / "run"
    src.mkdir()
    for i in range(3):
        p = make_pair((96, 96), seed=40 + i)
        write_tiff(src / f"p{i}_LOM.tif", p.cbs_like_lom)
        write_tiff(src / f"p{i}_CBS.tif", p.cbs)
        write_elastic(p.truth, src / f"p{i}_truth.txt")
    (src / "bad_LOM.tif").write_bytes(b"II*\x00garbage")
    write_tiff(src / "bad_CBS.tif", p.cbs)
    manifest = src / "pairs.csv"
    manifest.write_text("name,lom,cbs,truth\n" + "".join(f"p{i},p{i}_LOM.tif,p{i}_CBS.tif,p{i}_truth.txt\n" for i in range(3))
                        + "bad,bad_LOM.tif,bad_CBS.tif,\n")
    outs = {}
    for threads in ("1", "3"):
        out = tmp_path / f"out{threads}"
        res = CliRunner().invoke(main, ["batch", str(manifest), "--out", str(out), "--threads", threads, *ARGS])
        assert res.exit_code == 1, res.output  # the bad pair fails, the others are done
        assert "3 registered, 0 already done, 1 failed" in res.output and "bad: FAILED" in res.output
        outs[threads] = out
    one, many = _rows(outs["1"]), _rows(outs["3"])
    for i in range(3):
        name = f"p{i}"
        assert one[name]["status"] == many[name]["status"] == "done"
        assert one[name]["tre_mean_px"] == many[name]["tre_mean_px"]  # bit-identical registrations
        assert (outs["1"] / name / "direct_transf.txt").read_text() == (outs["3"] / name / "direct_transf.txt").read_text()
        assert (outs["3"] / name / "thumbs" / "overlay.png").is_file()  # pictures made where the pair ran
    assert many["bad"]["status"] == "failed" and "bad_LOM.tif" in many["bad"]["error"]
    assert (outs["3"] / "report.html").is_file()
    res = CliRunner().invoke(main, ["batch", str(manifest), "--out", str(tmp_path / "x"), "--threads", "0", *ARGS])
    assert res.exit_code == 2 and "give a number of threads >= 1, or auto" in res.output
