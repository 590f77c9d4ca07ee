"""The elastic step can fit boundary maps only where both show structure (pipeline/consensus.py; off by default)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from styleunwarp.pipeline.consensus import CONSENSUS_PX_FOR_EDGES, consensus, default_consensus_px, support

SHAPE = (160, 160)


def _line_map(rows=(), cols=(), shape=SHAPE, width: float = 1.2) -> np.ndarray:
    """A boundary map: blurred lines along the given rows and columns, 0..255."""
    img = np.zeros(shape, np.float32)
    for r in rows:
        img[r, :] = 1.0
    for c in cols:
        img[:, c] = 1.0
    img = ndimage.gaussian_filter(img, width)
    return (255 * img / img.max()).astype(np.float32)


def test_support_is_full_near_structure_and_zero_far_from_it():
    m = _line_map(rows=[80])
    w = support(m, 2)
    assert w[78:83, 20:140].min() == pytest.approx(1.0)  # within 2 px of the line
    assert w[:70].max() == 0.0 and w[91:].max() == 0.0  # far from it: nothing
    assert np.array_equal(support(np.zeros(SHAPE, np.float32), 2), np.ones(SHAPE, np.float32))  # an empty map supports everything


def test_a_line_only_one_map_draws_is_dropped_and_shared_lines_stay():
    target = _line_map(rows=[40, 120], cols=[60])
    moving = _line_map(rows=[41, 121], cols=[61, 100])  # the same boundaries 1 px off, and a scratch at column 100
    t2, m2 = consensus(target, moving, 2)
    off_rows = np.ones(SHAPE[0], bool)
    off_rows[[*range(33, 49), *range(113, 129)]] = False
    assert m2[off_rows][:, 98:103].max() < 0.02 * moving[:, 98:103].max()  # the scratch is gone away from the shared boundaries
    assert m2[:, 59:64].max() == pytest.approx(moving[:, 59:64].max())  # the shared column stays
    assert t2[:, 59:62].max() == pytest.approx(target[:, 59:62].max())
    assert consensus(target, moving, 0) == (target, moving)
    assert default_consensus_px("edges") == CONSENSUS_PX_FOR_EDGES and default_consensus_px("cbs") == 0 and default_consensus_px(None) == 0


def test_consensus_on_the_source_grid_carries_the_weights_through_the_start():
    """consensus_on_source: the identity start on equal grids is consensus itself; a shifted start
    weights each source pixel by the target's support where that pixel lands on the target."""
    from styleunwarp.pipeline.coarse import warp_source
    from styleunwarp.pipeline.consensus import consensus, consensus_on_source, support

    rng = np.random.default_rng(0)
    target = np.zeros((64, 64), np.float32)
    target[20:22, 10:50] = 200.0  # a horizontal line
    source = (rng.random((64, 64)) > 0.97).astype(np.float32) * 150.0
    same = consensus(target, source, 2)
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    on_source = consensus_on_source(target, source, warp_source(source, identity, target.shape), identity, 2)
    np.testing.assert_allclose(on_source[0], same[0], atol=1e-5)
    np.testing.assert_allclose(on_source[1], same[1], atol=1e-5)
    shift = np.array([[1.0, 0, 0], [0, 1.0, 10.0]])  # target row y -> source row y + 10
    moved = warp_source(source, shift, target.shape)
    _, weighted = consensus_on_source(target, source, moved, shift, 2)
    expected = support(target, 2)[np.clip(np.arange(64) - 10, 0, 63)][:, :] * source
    np.testing.assert_allclose(weighted[12:-2], expected[12:-2], atol=1e-3)  # (cubic resampling ripples ~2e-4)
    assert consensus_on_source(target, source, moved, shift, 0)[1] is source
