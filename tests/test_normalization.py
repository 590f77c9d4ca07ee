"""The per-image stretch of a model's input (style/data.normalize_input) leaves out an empty border."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from styleunwarp.style.data import BORDER_MAX_FRACTION, empty_border, normalize_input


def _content(size: int = 96, seed: int = 0) -> np.ndarray:
    """A textured grey image whose darkest grey is far above 0 (as an EM or LOM field)."""
    rng = np.random.default_rng(seed)
    return 60.0 + 120.0 * ndimage.gaussian_filter(rng.random((size, size)), 3) / 1.0 + rng.normal(0, 4, (size, size))


def _rotated(img: np.ndarray, deg: float) -> np.ndarray:
    """``img`` rotated about its centre with the corners it leaves empty filled with 0, as warping tools do."""
    return ndimage.rotate(img, deg, reshape=False, order=1, mode="constant", cval=0.0)


def test_the_border_of_a_rotated_image_is_found_and_nothing_else():
    img = _rotated(_content(), 7.0)
    border = empty_border(img[None])
    empty = ndimage.rotate(np.ones_like(img), 7.0, reshape=False, order=1, mode="constant", cval=0.0) == 0
    assert border.sum() > 0 and np.array_equal(border, empty)
    inner = _content()
    inner[40:50, 40:50] = inner.min() - 50  # the darkest pixels, but inside: content
    assert not empty_border(inner[None]).any()
    rgb = np.stack([img, img * 0.5, img * 0.8], 0)  # black in every channel
    assert np.array_equal(empty_border(rgb), border)


def test_the_content_of_a_bordered_image_is_stretched_as_without_the_border():
    img = _content()
    rotated = _rotated(img, 9.0)
    inside = ~empty_border(rotated[None])
    assert 0.05 < 1 - inside.mean() < BORDER_MAX_FRACTION
    # the content's own darkest grey stays the bottom of the stretch: the border does not push it up
    lo, hi = np.percentile(rotated[inside], [1, 99])  # the stretch of the content alone
    bordered = normalize_input(rotated)
    np.testing.assert_allclose(bordered[0][inside], np.clip((rotated[inside] - lo) / (hi - lo) * 2 - 1, -3, 3), atol=1e-4)
    assert bordered[0][~inside].max() < -1.0  # the border itself lies below the content


def test_a_large_dark_background_is_content():
    rng = np.random.default_rng(1)
    fm = np.zeros((96, 96))
    fm[30:60, 20:70] = 50 + 100 * rng.random((30, 50))  # sparse bright signal on a black ground
    assert not empty_border(fm[None]).any()
    lo_stretch = normalize_input(fm)
    assert np.isclose(lo_stretch.min(), -1.0)  # the ground is the bottom of the stretch, as before
