"""The blur-schedule benchmark's own arithmetic (the fits themselves are tested in test_fine_affine.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_fine_affine_blur import SCHEDULES, mean_distance, start_near, summary  # noqa: E402


def test_mean_distance_of_a_shift_and_of_the_identity():
    assert mean_distance(np.eye(2, 3), (64, 48)) == 0.0
    assert abs(mean_distance(np.array([[1.0, 0, 3.0], [0, 1.0, 4.0]]), (64, 48)) - 5.0) < 1e-12


def test_starts_stay_within_their_bounds():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = start_near(rng, (400, 400))
        scale = np.sqrt(abs(np.linalg.det(a[:, :2])))
        assert abs(scale - 1) <= 0.005 + 1e-12
        assert abs(np.degrees(np.arctan2(a[1, 0], a[0, 0]))) <= 0.5 + 1e-9
        # the centre moves by the shift alone, at most 2 px on each axis
        c = np.array([199.5, 199.5, 1.0])
        assert np.all(np.abs(a @ c - c[:2]) <= 2.0 + 1e-9)


def test_summary_counts_fits_that_ended_further_from_the_truth():
    rows = [dict({"set": "a", "pair": "p1", "rep": "edges", "start": 1.0}, **{s: 0.5 for s in SCHEDULES}),
            dict({"set": "a", "pair": "p2", "rep": "edges", "start": 0.4}, **{s: 0.4 for s in SCHEDULES})]
    rows[1]["sharp"] = 1.0  # 0.6 px further than its start
    lines = summary(rows)
    assert lines[2].startswith("| a | 2 | 0.700 | 0.750 | 0.450")
    assert any(line.startswith("sharp: 1 of 2 fits") and "p2 edges 0.40->1.00" in line for line in lines)
    assert any(line.startswith("s42: 0 of 2 fits") for line in lines)
