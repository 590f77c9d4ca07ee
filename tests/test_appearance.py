"""Random appearance changes of training sources (style/appearance.py)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from styleunwarp.style.appearance import vary_appearance
from styleunwarp.style.data import LoadedPair, normalize_input, sample_batch


def _scene(seed: int = 0, size: int = 64) -> np.ndarray:
    """A colour image of a few flat regions with thin dark lines between them (a grain map)."""
    rng = np.random.default_rng(seed)
    labels = ndimage.zoom(rng.integers(0, 5, (6, 6)), size / 6, order=0)[:size, :size]
    colours = rng.uniform(60, 200, (5, 3))
    img = colours[labels]
    lines = ndimage.morphological_gradient(labels, size=2) > 0
    img[lines] = 20.0
    return img


def _edge_ncc(a: np.ndarray, b: np.ndarray) -> float:
    ga = ndimage.gaussian_gradient_magnitude(a.mean(0), 1.5).ravel()
    gb = ndimage.gaussian_gradient_magnitude(b.mean(0), 1.5).ravel()
    return float(np.corrcoef(ga, gb)[0, 1])


def test_a_varied_look_keeps_the_structure_and_the_normalisation():
    x = normalize_input(_scene(), 3)
    rng = np.random.default_rng(3)
    looks = [vary_appearance(x, rng) for _ in range(40)]
    for v in looks:
        assert v.shape == x.shape and v.dtype == np.float32 and np.isfinite(v).all()
        assert v.min() >= -1.0 and v.max() <= 1.0
    changed = [float(np.abs(v - x).mean()) for v in looks]
    assert np.median(changed) > 0.1  # the look really changes
    # the boundaries stay where they were: the edge maps still agree for most looks
    assert np.median([_edge_ncc(x, v) for v in looks]) > 0.6
    # and the same generator state gives the same look
    np.testing.assert_array_equal(vary_appearance(x, np.random.default_rng(9)), vary_appearance(x, np.random.default_rng(9)))


def test_grey_sources_and_flat_crops_are_handled():
    g = normalize_input(_scene()[..., 0], 1)
    v = vary_appearance(g, np.random.default_rng(1))
    assert v.shape == g.shape and np.isfinite(v).all()
    flat = np.zeros((3, 16, 16), np.float32)
    for seed in range(20):  # a flat crop stays flat but for noise: nothing stretches it into texture
        assert vary_appearance(flat, np.random.default_rng(seed)).std(axis=(1, 2)).max() < 0.15


def test_sample_batch_varies_only_the_source_and_only_when_asked():
    x = normalize_input(_scene(), 3)
    y = x[:1] * 0.5
    pair = LoadedPair("a", x, y)
    plain_x, plain_y = sample_batch([pair], np.random.default_rng(5), 8, 32)
    again_x, _ = sample_batch([pair], np.random.default_rng(5), 8, 32, appearance=0.0)
    np.testing.assert_array_equal(plain_x, again_x)  # off: the same crops as before the option existed
    vx, vy = sample_batch([pair], np.random.default_rng(5), 8, 32, appearance=1.0)
    # the targets are the same crops of the target as without appearance changes ...
    np.testing.assert_array_equal(vy[0], plain_y[0])
    # ... and each target still equals half the first channel of the unvaried source crop, where the source changed
    assert not np.allclose(vx[0], plain_x[0])
    np.testing.assert_allclose(vy[0], plain_x[0][:1] * 0.5)
