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
