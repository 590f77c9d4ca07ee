"""The fine affine halves benchmark's checkerboard and rule summary (``benchmarks/bench_fine_affine_halves.py``)."""

from conftest import load_benchmark


def test_checkerboard_halves_cover_the_grid_alike_and_alternate():
    board = load_benchmark("bench_fine_affine_halves").checkerboard((100, 120), 4)
    assert board.shape == (100, 120)
    assert abs(board.mean() - 0.5) < 0.01
    assert board[0, 0] and not board[0, 40] and not board[30, 0] and board[30, 40]


def test_summary_counts_what_each_rule_refuses_among_fits_that_helped_and_hurt():
    summary = load_benchmark("bench_fine_affine_halves").summary

    def row(start, fit, ga, gb, apart, moved, cells):
        return {"start_px": start, "fit_px": fit, "gain_on_b_of_a": ga, "gain_on_a_of_b": gb, "halves_apart_px": apart, "moved_px": moved,
                "from_coarse_optimum_cells": cells}

    rows = [row(2.0, 0.5, 0.02, 0.03, 0.5, 4.0, 0.5),   # helped, halves agree, in the coarse cell
            row(1.5, 0.9, -0.01, 0.02, 3.0, 1.0, 0.9),  # helped, one held-out loss, halves apart
            row(0.4, 0.8, -0.01, -0.01, 2.0, 1.5, 1.6),  # hurt, both held-out losses, out of the cell
            row(0.8, 0.85, 0.01, 0.01, 0.2, 0.5, 3.0)]   # within the tolerance
    lines = summary(rows)
    assert lines[0].startswith("4 fits: 2 brought") and "1 moved it" in lines[0]
    assert "refuses 1/1 that hurt (0.40 px avoided) and 1/2 that helped (0.60 px lost)" in lines[1]
    assert "refuses 1/1 that hurt (0.40 px avoided) and 1/2 that helped (0.60 px lost)" in lines[2]
    assert "refuses 1/1 that hurt (0.40 px avoided) and 0/2 that helped (0.00 px lost)" in lines[3]
    assert len(lines) == 4
