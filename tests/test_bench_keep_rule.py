"""The keep-rule benchmark's per-tile gain (``benchmarks/bench_keep_rule.tile_gain``) on images with a known answer."""

import numpy as np
from scipy import ndimage

from conftest import load_benchmark


def _bench():
    return load_benchmark("bench_keep_rule")


def test_tile_gain_sees_a_correction_everywhere_and_no_change_as_none():
    rng = np.random.default_rng(5)
    target = ndimage.gaussian_filter(rng.random((256, 256)), 2.0).astype(np.float32)
    start = ndimage.shift(target, (1.5, -1.0), order=1, mode="nearest")  # off by 1.8 px everywhere
    mask = np.ones(target.shape, bool)
    tile_gain = _bench().tile_gain

    corrected = tile_gain(start, target, target, mask)
    assert corrected["tile_n"] == 16
    assert corrected["tile_frac"] == 1.0 and corrected["tile_t"] > 5

    worse = tile_gain(target, start, target, mask)
    assert worse["tile_frac"] == 0.0 and worse["tile_t"] < -5

    half = start.copy()
    half[:, :128] = target[:, :128]  # corrected on the left half only
    partial = tile_gain(start, half, target, mask)
    assert 0.5 <= partial["tile_frac"] <= 0.75  # the 8 corrected tiles, and at most the 4 touching the seam


def test_a_part_of_the_elastic_correction_moves_every_pixel_that_part_of_the_way():
    from styleunwarp.transform import ElasticTransform, identity_elastic, to_dense

    shape = (96, 128)
    rng = np.random.default_rng(3)
    ident = identity_elastic(4, shape)
    direct = ElasticTransform(ident.cx + rng.normal(0, 2, ident.cx.shape), ident.cy + rng.normal(0, 2, ident.cy.shape))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    full = to_dense(direct, shape) - np.stack([xx, yy])
    part = _bench().partial_correction
    for fraction in (0.0, 0.25, 0.5, 1.0):
        moved = to_dense(part(direct, fraction, shape), shape) - np.stack([xx, yy])
        np.testing.assert_allclose(moved, fraction * full, atol=1e-4)  # evaluated in float32


def test_every_independent_renderer_names_a_set_and_other_names_do_not():
    bench = _bench()
    assert bench.renderer_set("lom4") == ("lom4", 1)
    assert bench.renderer_set("lom4-80") == ("lom4", 80)
    assert bench.renderer_set("lom3-5") == ("lom3", 5)
    assert bench.renderer_set("blind7") == ("blind", 7)
    for name in ("lom4x", "real-near", "shale", "synth-ad", "lom3-x"):
        assert bench.renderer_set(name) is None
