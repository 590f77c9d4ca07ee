"""The residual-misalignment estimate of the structure evidence (styleunwarp.residual), on arrays and real pairs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from styleunwarp.io import read_image, to_gray
from styleunwarp.residual import MAX_PX, OFF_TILES, PROMINENCE, describe, misaligned, residual_shift, tile_peaks
from styleunwarp.structure import Z_MIN, mind_verdict

from conftest import data_skip_reason, needs_data, real_data

SHALE = real_data("petrography-bse-se", "se/*.png")
CLEM = real_data("deepclem-em-fm", "em/*.png")


def _texture(shape: tuple[int, int], seed: int) -> np.ndarray:
    return ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((6, *shape)), (0, 2, 2))


def test_tile_peaks_find_a_known_shift_of_descriptor_stacks():
    a = _texture((240, 240), 0)
    b = np.roll(a, (3, -4), axis=(1, 2))  # b(p) = a(p - s): the correlation peaks at |s| = 5
    m = np.ones((240, 240), bool)
    peaks = tile_peaks(a, b, m)
    assert len(peaks) == 9
    assert all(abs(off - 5.0) < 0.05 and prom > PROMINENCE for off, prom in peaks), peaks
    assert residual_shift(a, b, m, factor=2)["residual_px"] == pytest.approx(10.0, abs=0.1)  # analysis grid -> image pixels
    assert residual_shift(a, a, m)["residual_px"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("shift", [(0.5, 0.0), (1.3, -0.6), (0.0, 2.5)])
def test_tile_peaks_resolve_a_fraction_of_a_pixel(shift):
    """The estimate reads sub-pixel misalignments: the grader's good/decent boundary lies at 0.9 px,
    between the whole-pixel steps the peak search alone could report."""
    a = _texture((240, 240), 5)
    b = ndimage.shift(a, (0, *shift), order=3, mode="wrap")
    truth = float(np.hypot(*shift))
    peaks = tile_peaks(a, b, np.ones((240, 240), bool))
    assert all(abs(off - truth) < 0.25 for off, _ in peaks), (truth, peaks)
    assert abs(residual_shift(a, b, np.ones((240, 240), bool))["residual_px"] - truth) < 0.2


def test_a_region_left_misaligned_is_caught_though_the_median_tile_is_aligned():
    a = _texture((240, 240), 3)
    b = a.copy()
    b[:, :80] = np.roll(a, (0, 6), axis=(1, 2))[:, :80]  # the top row of tiles 6 px off, the rest aligned
    out = residual_shift(a, b, np.ones((240, 240), bool))
    assert out["residual_px"] == pytest.approx(0.0, abs=1e-9) and out["tiles_off"] == 3 >= OFF_TILES
    assert misaligned(out)
    assert not misaligned(residual_shift(a, a, np.ones((240, 240), bool)))
    assert misaligned({"residual_px": 3.5, "tiles_off": 0}) and not misaligned({"residual_px": None, "tiles_off": None})
    # four prominent tiles: no estimate, but the tiles off still speak (no invented "0.0 px")
    assert misaligned({"residual_px": None, "tiles_off": 2})
    assert describe({"residual_px": None, "tiles_off": 2}) == "2 of its tiles peak more than 4 px off"
    assert describe({"residual_px": None, "tiles_off": None}) == ""


def test_unrelated_stacks_give_no_estimate():
    m = np.ones((240, 240), bool)
    out = residual_shift(_texture((240, 240), 1), _texture((240, 240), 2), m)
    assert out["residual_px"] is None and out["tiles"] == 9 and out["residual_tiles"] < 5


@needs_data("petrography-bse-se", "se/*.png")
def test_real_shale_pair_residual_follows_a_known_shift():
    se = SHALE[3]
    source = to_gray(read_image(se).data)
    bse = to_gray(read_image(se.parent.parent / "bse" / se.name).data)
    aligned = mind_verdict(source, bse)
    assert aligned["aligned"] and aligned["residual_px"] is not None and aligned["residual_px"] <= 1.5, aligned
    moved = mind_verdict(ndimage.shift(source, (3.6, 4.8), order=1), bse)  # 6 px off, still far above chance
    assert moved["z"] >= Z_MIN, moved
    assert moved["residual_px"] == pytest.approx(6.0, abs=1.0) and moved["residual_px"] > MAX_PX
    assert not moved["aligned"]


@pytest.mark.skipif(not CLEM, reason=data_skip_reason("deepclem-em-fm", "em/*.png"))
def test_real_clem_pair_supports_no_estimate():
    em_file = CLEM[0]
    em = to_gray(read_image(em_file).data)
    fm = to_gray(read_image(em_file.parent.parent / "fm" / em_file.name).data)
    v = mind_verdict(fm, em)
    assert v["residual_px"] is None, v  # chromatin fluorescence against EM: no tile peak stands out
