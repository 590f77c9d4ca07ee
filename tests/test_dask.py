"""Batches on dask.distributed: a real scheduler and real `dask worker` processes on loopback.

No mock: the scheduler and the workers are the `dask` command's own processes; one worker is
killed with SIGKILL while it registers a pair, and every pair must still be done exactly once.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'dask[distributed]')")

from distributed import Client  # noqa: E402

import styleunwarp  # noqa: E402
from styleunwarp.io import write_tiff  # noqa: E402
from styleunwarp.pipeline.executors import ExecutorError, make_executor, parse_cluster, threads_per_worker  # noqa: E402
from styleunwarp.pipeline.executors.dask import LOST  # noqa: E402
from styleunwarp.synth import make_pair  # noqa: E402

NATIVE = ["--backend", "native", "--style", "none", "--mode", "mono", "--no-progress"]
START_TIMEOUT_S = 90


def _env() -> dict[str, str]:
    """This checkout's package first on the path of every process; one torch thread each; one retry."""
    env = dict(os.environ)
    pkg = str(Path(styleunwarp.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg, env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = "1"
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "1"  # as the README says to start a scheduler
    return env


def _pairs(folder: Path, n: int, size: int = 192) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        p = make_pair((size, size), seed=200 + i)
        write_tiff(folder / f"s{i}_LOM.tif", p.cbs_like_lom)
        write_tiff(folder / f"s{i}_CBS.tif", p.cbs)
    return folder


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = [r["pair"] for r in rows]
    assert len(names) == len(set(names)), f"duplicated rows: {names}"
    return {r["pair"]: r for r in rows}


def _stamps(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/metrics.json")}


def _batch(folder: Path, out: Path, *options: str, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "styleunwarp", "batch", str(folder), "--out", str(out), *NATIVE, *options]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


@dataclass
class DaskCluster:
    address: str
    client: Client
    workers: dict[str, subprocess.Popen]  # worker address -> its process (no nanny: the worker itself)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """`dask scheduler` and two `dask worker --nthreads 1 --no-nanny` processes on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("dask")
    env, procs, client = _env(), [], None
    dask_cmd = [sys.executable, "-m", "dask"]
    logs = [open(tmp / f"{n}.log", "w") for n in ("scheduler", "w0", "w1")]  # noqa: SIM115 - closed below
    try:
        sched_file = tmp / "scheduler.json"
        procs.append(subprocess.Popen(dask_cmd + ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
                                      env=env, stdout=logs[0], stderr=subprocess.STDOUT))
        deadline = time.time() + START_TIMEOUT_S
        while not sched_file.is_file() and time.time() < deadline and procs[0].poll() is None:
            time.sleep(0.1)
        assert sched_file.is_file(), f"the scheduler did not start: {(tmp / 'scheduler.log').read_text()[-2000:]}"
        time.sleep(0.2)  # the file is written in one go, but let it land
        address = json.loads(sched_file.read_text())["address"]
        for i in (0, 1):
            procs.append(subprocess.Popen(dask_cmd + ["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}", "--host", "127.0.0.1", "--death-timeout", "60"],
                                          env=env, stdout=logs[1 + i], stderr=subprocess.STDOUT))
        client = Client(address, timeout=30)
        client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        pids = client.run(os.getpid)
        by_pid = {p.pid: p for p in procs[1:]}
        assert set(pids.values()) == set(by_pid), "a worker runs in another process than the one started"
        yield DaskCluster(address, client, {addr: by_pid[pid] for addr, pid in pids.items()})
    finally:
        if client is not None:
            client.close()
        _stop(procs[1:])
        _stop(procs[:1])
        for f in logs:
            f.close()


def test_cluster_option_parsing_and_thread_split():
    assert parse_cluster("local:3") == 3
    for bad in ("local:0", "local", "slurm:2", "local:x"):
        with pytest.raises(ExecutorError, match="local:N"):
            parse_cluster(bad)
    with pytest.raises(ExecutorError, match="exclude each other"):
        make_executor(abs, workers=2, scheduler="tcp://127.0.0.1:1")
    assert threads_per_worker(2, cores=2) == 1 and threads_per_worker(2, cores=16) == 8 and threads_per_worker(4, cores=2) == 1


def test_workers_must_see_the_folders(dask_cluster, tmp_path):
    with make_executor(abs, scheduler=dask_cluster.address) as ex:
        assert "retried 1 time(s)" in ex.description  # the scheduler's allowed-failures, as started
        ex.require_paths([tmp_path])
        with pytest.raises(ExecutorError, match=r"not-there: not visible on the dask worker\(s\) tcp://127\.0\.0\.1"):
            ex.require_paths([tmp_path, tmp_path / "not-there"])


@pytest.mark.slow
def test_watch_submits_to_the_scheduler(dask_cluster, tmp_path):
    from styleunwarp.pipeline.watch import watch
    from styleunwarp.registration import BUnwarpJParams

    folder, out = _pairs(tmp_path / "incoming", 2, size=128), tmp_path / "out"
    lines: list = []
    t = threading.Thread(target=lambda: lines.append(watch(
        folder, out, interval=0.2, settle=0.3, max_idle=2.0, echo=lines.append, scheduler=dask_cluster.address,
        backend="native", style="none", params=BUnwarpJParams(mode="mono"),
    )))  # fmt: skip
    t.start()
    t.join(timeout=180)
    assert not t.is_alive()
    assert lines[-1] == 2, lines
    assert sorted(_stamps(out)) == ["s0", "s1"]
    assert all(r["status"] == "done" for r in _rows(out).values())


@pytest.mark.slow
@pytest.mark.bunwarpj
def test_bunwarpj_on_dask_workers_one_jvm_each(dask_cluster, tmp_path):
    from styleunwarp.errors import ImageJNotFoundError
    from styleunwarp.imagej import find_imagej

    try:
        find_imagej(require_bunwarpj=True)
    except ImageJNotFoundError as exc:
        pytest.skip(f"real bUnwarpJ not available: {exc}")
    client = dask_cluster.client
    folder, out = _pairs(tmp_path / "acq", 4, size=128), tmp_path / "out"
    cmd = [sys.executable, "-m", "styleunwarp", "batch", str(folder), "--out", str(out), "--style", "none", "--mode", "mono",
           "--no-progress", "--scheduler", dask_cluster.address]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0 and "4 registered" in res.stdout, res.stdout + res.stderr
    assert {json.loads((out / f"s{i}" / "metrics.json").read_text())["backend"] for i in range(4)} == {"bunwarpj"}
    # the JVM each worker started stays up for its next pairs (one per worker process)
    from styleunwarp.imagej.jvm import jvm_install

    jvms = client.run(lambda: None if jvm_install() is None else str(jvm_install().bunwarpj_jar))
    assert any(jvms.values()) and all(j is None or "bUnwarpJ" in j for j in jvms.values()), jvms


@pytest.mark.slow
def test_scheduler_batch_survives_a_killed_worker(dask_cluster, tmp_path):
    client = dask_cluster.client
    client.wait_for_workers(2, timeout=START_TIMEOUT_S)
    folder, out = _pairs(tmp_path / "acq", 6), tmp_path / "out"
    cmd = [sys.executable, "-m", "styleunwarp", "batch", str(folder), "--out", str(out), *NATIVE, "--scheduler", dask_cluster.address]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed: tuple[str, str] | None = None
    try:
        deadline = time.time() + 180
        while killed is None and proc.poll() is None and time.time() < deadline:
            running = client.run(lambda dask_worker: [str(ts.key) for ts in dask_worker.state.executing])
            for addr, keys in running.items():
                pair_keys = [k for k in keys if k.startswith("styleunwarp-")]
                if pair_keys and addr in dask_cluster.workers:
                    dask_cluster.workers[addr].send_signal(signal.SIGKILL)  # dies in the middle of a pair
                    killed = (addr, pair_keys[0])
                    break
            time.sleep(0.05)
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, "no worker was seen processing a pair"
    assert dask_cluster.workers[killed[0]].wait(timeout=10) == -signal.SIGKILL
    assert proc.returncode == 0, output
    assert "6 registered, 0 already done, 0 failed" in output, output
    victim = killed[1][len("styleunwarp-"): killed[1].rindex("-")]
    rows = _rows(out)
    assert sorted(rows) == [f"s{i}" for i in range(6)] and all(r["status"] == "done" for r in rows.values()), rows
    assert (out / victim / "metrics.json").is_file() and not (out / victim / "error.json").exists()
    assert not list(out.glob(".partial-*")), "the killed attempt's partial folder was left behind"

    stamps = _stamps(out)
    again = _batch(folder, out, "--scheduler", dask_cluster.address)
    assert again.returncode == 0 and "0 registered, 6 already done" in again.stdout, again.stdout + again.stderr
    assert _stamps(out) == stamps


@pytest.mark.slow
def test_local_cluster_batch_and_rerun(tmp_path):
    from styleunwarp.pipeline.batch import run_batch
    from styleunwarp.registration import BUnwarpJParams

    folder, out = _pairs(tmp_path / "acq", 4, size=128), tmp_path / "out"
    opts = {"cluster": "local:2", "backend": "native", "style": "none", "params": BUnwarpJParams(mode="mono"), "progress": False}
    first = run_batch(folder, out, **opts)
    assert first.done == 4 and first.ok, first.line()
    rows = _rows(out)
    assert sorted(rows) == [f"s{i}" for i in range(4)] and all(r["status"] == "done" for r in rows.values())
    assert (out / "report.html").is_file() and not list(out.glob(".partial-*"))
    stamps = _stamps(out)
    again = run_batch(folder, out, **opts)
    assert again.done == 0 and again.skipped == 4, again.line()
    assert _stamps(out) == stamps


@pytest.mark.slow
def test_a_pair_that_kills_every_worker_is_retried_once_then_lost():
    """A task that ends its worker process (as a JVM crash would): retried once, then reported lost."""
    with make_executor(os._exit, cluster="local:2") as ex:
        ex.submit(3)
        (fin,) = list(ex.finished())
    assert fin.status == "failed" and fin.lost == LOST


def test_unreachable_scheduler_is_one_clear_error(tmp_path):
    folder = _pairs(tmp_path / "acq", 1, size=64)
    env = {**_env(), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    cmd = [sys.executable, "-m", "styleunwarp", "batch", str(folder), "--out", str(tmp_path / "out"), *NATIVE, "--scheduler", "tcp://127.0.0.1:9"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:9" in res.stderr and "Traceback" not in res.stderr, res.stderr
