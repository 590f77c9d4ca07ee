"""The demo and the evaluation it runs, end to end with the real bUnwarpJ (skipped where absent)."""

from __future__ import annotations

import csv

import pytest

from styleunwarp.demo import run_demo
from styleunwarp.evaluation import PERFECT, RAW, summarize

pytestmark = pytest.mark.bunwarpj


def test_demo_reproduces_the_problem_and_the_fix(bunwarpj, tmp_path, monkeypatch):
    """Raw LOM -> CBS is not good (as in the study; the coarse step's edge-strength search can bring it
    to decent); a CBS-like source succeeds and ends nearer; files and table are written."""
    monkeypatch.setenv("STYLEUNWARP_MODELS", str(tmp_path / "no-models-here"))  # no style model: 2 variants
    lines: list[str] = []
    rows = run_demo(tmp_path / "demo", pairs=1, size=256, seed=3, echo=lines.append)
    by_variant = {r["variant"]: r for r in rows}
    assert set(by_variant) == {RAW.name, PERFECT.name}
    assert by_variant[PERFECT.name]["tier"] == "good"
    assert by_variant[RAW.name]["tier"] != "good"
    assert by_variant[RAW.name]["tre_mean_px"] > by_variant[PERFECT.name]["tre_mean_px"]
    with open(tmp_path / "demo" / "summary.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    s = {x["variant"]: x for x in summarize(rows)}
    assert s[PERFECT.name]["good"] == 1
    assert any("perfect CBS-like" in line for line in lines)
    pair_dir = tmp_path / "demo" / "results" / "perfect_CBS_like" / "test_0000"
    assert (pair_dir / "metrics.json").is_file() and (pair_dir / "registered.tif").is_file()
