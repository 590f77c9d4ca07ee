"""Batches over acquisition folders: bad files, resume, kill -9, force, watch (real bUnwarpJ; skipped where absent)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from styleunwarp.io import write_tiff
from styleunwarp.pipeline.batch import run_batch
from styleunwarp.registration import BUnwarpJParams
from styleunwarp.synth import make_pair
from styleunwarp.transform import write_elastic

pytestmark = pytest.mark.bunwarpj

FAST = BUnwarpJParams(mode="mono", max_scale_deformation="fine")


def _good_pair(folder: Path, stem: str, seed: int, size: int = 192, suffix: str = "CBS", truth: bool = False) -> None:
    p = make_pair((size, size), seed=seed)
    write_tiff(folder / f"{stem}_LOM.tif", p.cbs_like_lom)
    write_tiff(folder / f"{stem}_{suffix}.tif", p.cbs)
    if truth:
        write_elastic(p.truth, folder / f"{stem}_truth.txt")


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = [r["pair"] for r in rows]
    assert len(names) == len(set(names)), f"duplicated rows: {names}"
    return {r["pair"]: r for r in rows}


@pytest.fixture()
def acquisition(tmp_path):
    """Good pairs (grey, RGB 8-bit, 16-bit), and every kind of bad input."""
    f = tmp_path / "acquisition [day 1]"
    f.mkdir()
    _good_pair(f, "grey 1", 1)
    p = make_pair((192, 192), seed=2)
    rgb = np.clip(np.stack([p.cbs_like_lom, p.cbs_like_lom * 0.9, p.cbs_like_lom * 0.7], -1), 0, 255).astype(np.uint8)
    tifffile.imwrite(f / "rgb_LOM.tif", rgb, photometric="rgb")
    tifffile.imwrite(f / "rgb_SEM.tif", (p.cbs * 200).astype(np.uint16))  # 16-bit CBS
    write_tiff(f / "unpaired_LOM.tif", p.cbs)
    (f / "corrupt_LOM.tif").write_bytes(b"II*\x00" + os.urandom(200))
    write_tiff(f / "corrupt_CBS.tif", p.cbs)
    full = f / "truncated_LOM.tif"
    write_tiff(full, p.cbs_like_lom)
    full.write_bytes(full.read_bytes()[:3000])
    write_tiff(f / "truncated_CBS.tif", p.cbs)
    (f / "empty_LOM.tif").write_bytes(b"")
    write_tiff(f / "empty_CBS.tif", p.cbs)
    nan = p.cbs_like_lom.copy()
    nan[10:20, 10:20] = np.nan
    write_tiff(f / "nan_LOM.tif", nan)
    write_tiff(f / "nan_CBS.tif", p.cbs)
    write_tiff(f / "mismatch_LOM.tif", np.random.default_rng(0).uniform(0, 255, (2000, 2000)).astype(np.float32))
    write_tiff(f / "mismatch_CBS.tif", p.cbs[:100, :100])
    return f


def test_batch_records_bad_files_and_finishes_good_pairs(bunwarpj, acquisition, tmp_path):
    from click.testing import CliRunner

    from styleunwarp.cli import main

    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["batch", str(acquisition), "--out", str(out), "--style", "none", "--mode", "mono", "--no-progress"])
    assert res.exit_code == 1, res.output  # some pairs failed
    rows = _rows(out)
    assert rows["grey 1"]["status"] == "done" and rows["grey 1"]["tier"] == "good"
    assert float(rows["grey 1"]["structure_z"]) >= 5 and rows["grey 1"]["structure_aligned"] == "True"  # structure evidence
    residual = rows["grey 1"]["structure_residual_px"]  # empty where the modalities support no estimate
    assert residual == "" or float(residual) <= 3.0, residual
    assert rows["rgb"]["status"] == "done"
    assert rows["unpaired_LOM"]["status"] == "unpaired"
    reasons = {name: rows[name]["error"] for name in ("corrupt", "truncated", "empty", "nan", "mismatch")}
    assert all(rows[n]["status"] == "failed" for n in reasons)
    for name, reason in reasons.items():
        assert f"{name}_LOM.tif" in reason or f"{name}_CBS.tif" in reason, reason
    assert "empty" in reasons["empty"] and "NaN" in reasons["nan"] and "size does not match" in reasons["mismatch"]
    assert (out / "rgb" / "registered.tif").is_file()
    assert tifffile.imread(out / "rgb" / "registered.tif").shape == (192, 192, 3)
    assert not list(out.glob(".partial-*"))
    assert "2 registered" in res.output and "5 failed, 1 unpaired" in res.output

    # a rerun redoes nothing that is done, retries the failed ones, and duplicates nothing
    stamp = (out / "grey 1" / "metrics.json").stat().st_mtime_ns
    summary = run_batch(acquisition, out, style="none", params=FAST, progress=False)
    assert summary.done == 0 and summary.skipped == 2 and summary.failed == 5
    assert (out / "grey 1" / "metrics.json").stat().st_mtime_ns == stamp
    assert len(_rows(out)) == 8
    # --force redoes
    again = run_batch(acquisition, out, style="none", params=FAST, progress=False, force=True)
    assert again.done == 2 and (out / "grey 1" / "metrics.json").stat().st_mtime_ns != stamp


def test_kill_9_loses_nothing_and_resumes(bunwarpj, tmp_path):
    folder = tmp_path / "acq"
    folder.mkdir()
    for i in range(4):
        _good_pair(folder, f"p{i}", 10 + i, size=256)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "styleunwarp", "batch", str(folder), "--out", str(out), "--style", "none", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not any((out / f"p{i}" / "metrics.json").is_file() for i in range(4)):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {i for i in range(4) if (out / f"p{i}" / "metrics.json").is_file()}
    assert finished, "no pair finished before the kill"
    stamps = {i: (out / f"p{i}" / "metrics.json").stat().st_mtime_ns for i in finished}
    for i in range(4):  # every pair folder present is complete: partial work is only in .partial-*
        d = out / f"p{i}"
        assert not d.exists() or (d / "metrics.json").is_file() or (d / "error.json").is_file()
    summary = run_batch(folder, out, style="none", progress=False)
    assert summary.failed == 0 and summary.done + summary.skipped == 4 and summary.skipped >= len(finished)
    assert {i: (out / f"p{i}" / "metrics.json").stat().st_mtime_ns for i in finished} == stamps
    rows = _rows(out)
    assert sorted(rows) == ["p0", "p1", "p2", "p3"] and all(r["status"] == "done" for r in rows.values())
    assert not list(out.glob(".partial-*"))


def test_manifest_with_truth_grades_by_tre(bunwarpj, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    _good_pair(folder, "a", 30, truth=True)
    (folder / "list.csv").write_text("name,lom,cbs,truth\nfirst,a_LOM.tif,a_CBS.tif,a_truth.txt\n")
    summary = run_batch(folder / "list.csv", tmp_path / "out", style="none", progress=False)
    assert summary.ok
    row = _rows(tmp_path / "out")["first"]
    from styleunwarp.quality import tier_from_tre

    assert row["grade_source"] == "tre" and float(row["tre_mean_px"]) < 3.0
    assert row["tier"] == tier_from_tre(float(row["tre_mean_px"]), float(row["tre_p95_px"]))


def test_watch_processes_complete_pairs_only(bunwarpj, tmp_path):
    from styleunwarp.pipeline.watch import watch

    folder, out = tmp_path / "incoming", tmp_path / "out"
    folder.mkdir()
    _good_pair(folder, "ready", 40)
    (folder / "growing_LOM.tif").write_bytes(b"")  # still being written (empty): must wait
    write_tiff(folder / "growing_CBS.tif", np.ones((64, 64), np.float32))
    lines: list[str] = []
    t = threading.Thread(target=lambda: lines.append(watch(folder, out, interval=0.2, settle=0.5, max_idle=4.0, echo=lines.append, style="none", params=FAST)))
    t.start()
    t.join(timeout=300)
    assert not t.is_alive()
    assert (out / "ready" / "metrics.json").is_file()
    assert not (out / "growing").exists()
    assert lines[-1] == 1  # one pair processed


def test_parallel_workers_each_with_their_own_jvm(bunwarpj, tmp_path):
    folder = tmp_path / "acq"
    folder.mkdir()
    for i in range(3):
        _good_pair(folder, f"w{i}", 50 + i)
    summary = run_batch(folder, tmp_path / "out", style="none", params=FAST, progress=False, workers=2)
    assert summary.done == 3 and summary.ok
    rows = _rows(tmp_path / "out")
    assert all(r["status"] == "done" for r in rows.values()) and len(rows) == 3
