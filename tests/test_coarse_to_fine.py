"""Two-pass (blurred, then sharp) registration and the composition of its transforms."""

from __future__ import annotations

import numpy as np
import pytest

from styleunwarp.quality import tre
from styleunwarp.registration import BUnwarpJParams, register
from styleunwarp.registration.coarse_to_fine import compose_direct, compose_inverse
from styleunwarp.synth import make_pair
from styleunwarp.transform import affine_elastic, evaluate_elastic


def test_composition_of_affine_maps_is_exact():
    shape = (120, 160)
    a1 = np.array([[1.01, 0.02, 3.0], [-0.02, 0.99, -2.0]])
    a2 = np.array([[0.98, 0.0, 1.5], [0.01, 1.02, 0.5]])
    d, fit = compose_direct(affine_elastic(a1, 4, shape), affine_elastic(a2, 4, shape), shape, 8)
    yy, xx = np.mgrid[0:120, 0:160].astype(float)
    x2 = a2[0, 0] * xx + a2[0, 1] * yy + a2[0, 2]
    y2 = a2[1, 0] * xx + a2[1, 1] * yy + a2[1, 2]
    expect_x = a1[0, 0] * x2 + a1[0, 1] * y2 + a1[0, 2]
    m = evaluate_elastic(d, shape)
    inner = (slice(5, -5), slice(5, -5))  # the first map is a spline only inside its grid
    assert np.abs(m[0] - expect_x)[inner].max() < 0.02 and fit < 0.05  # the outer map is evaluated slightly outside its grid at the bottom
    # inverse of the composition: second_inv(first_inv(p))
    inv = compose_inverse(affine_elastic(np.array([[1, 0, -3.0], [0, 1, 2.0]]), 4, shape), affine_elastic(np.array([[1, 0, -1.5], [0, 1, -0.5]]), 4, shape), shape, shape, 8)
    mi = evaluate_elastic(inv, shape)
    assert np.abs(mi[0] - (xx - 4.5)).max() < 0.01 and np.abs(mi[1] - (yy + 1.5)).max() < 0.01  # shifted out of the grid at the edges


@pytest.mark.bunwarpj
def test_two_pass_registration_with_bunwarpj(bunwarpj):
    p = make_pair((256, 256), seed=8)
    reg = register(p.cbs, p.cbs_like_lom, BUnwarpJParams(mode="accurate"), coarse_sigma=3.0)
    assert reg.info["coarse_sigma"] == 3.0 and reg.info["compose_fit_px"] < 0.05
    assert reg.direct.intervals == 8 and reg.inverse is not None
    assert tre(reg.direct, p.truth, (256, 256)).mean < 1.0
    d = reg.direct.to_dense((256, 256))
    back = reg.inverse.at((256, 256), d[0][64:192, 64:192], d[1][64:192, 64:192])
    yy, xx = np.mgrid[64:192, 64:192]
    assert np.hypot(back[0] - xx, back[1] - yy).mean() < 1.0


@pytest.mark.slow
def test_boundary_maps_register_in_one_pass_by_default(tmp_path):
    """The shipped boundary-map model registers in one sharp pass unless --coarse-sigma asks for two
    (COARSE_SIGMA_FOR_EDGES, measured: benchmarks/bench_styled_defaults.py, docs/study-table.md)."""
    pytest.importorskip("torch")
    from styleunwarp.io import write_tiff
    from styleunwarp.pipeline import register_pair
    from styleunwarp.pipeline.chain import COARSE_SIGMA_FOR_EDGES
    from styleunwarp.pipeline.consensus import CONSENSUS_PX_FOR_EDGES

    p = make_pair((96, 96), seed=3, deform=True)
    write_tiff(tmp_path / "lom.tif", p.lom)
    write_tiff(tmp_path / "cbs.tif", p.cbs)
    params = BUnwarpJParams(mode="mono", max_scale_deformation="coarse")
    one = register_pair(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "one", backend="native", params=params, coarse="none").metrics
    assert one["style_target"] == "edges" and COARSE_SIGMA_FOR_EDGES == 0.0
    # the consensus fit (default 2 px for boundary maps) needs a start the fine affine step refined: none here
    assert CONSENSUS_PX_FOR_EDGES == 2 and one["elastic"]["consensus_px"] == 0 and "fine affine" in one["elastic"]["consensus_note"]
    assert "coarse_sigma" not in one["registration_info"]
    two = register_pair(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "two", backend="native", params=params, coarse="none",
                        coarse_sigma=3.0).metrics
    assert two["registration_info"]["coarse_sigma"] == 3.0 and "fine" in two["registration_info"]
