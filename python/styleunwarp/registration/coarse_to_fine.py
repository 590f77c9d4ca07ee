"""Two-pass registration: first on blurred images (wide capture range), then on the sharp ones.

Thin structures such as boundary maps give SSD a narrow capture range: a registration can
lock onto the wrong boundary and diverge silently. Blurring both images by ``sigma``
widens the basin; the second pass, on the sharp images with the source pre-warped by the
first result, restores the accuracy. The two direct transforms are composed exactly at
every target pixel (``D(x) = D1(D2(x))``) and fitted with a B-spline grid twice as fine as
the second pass's; the inverses likewise on the source grid. ``info["compose_fit_px"]``
records the fitting error.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..transform import ElasticTransform, fit_elastic, warp_image
from .params import BUnwarpJParams
from .result import Registration


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    b = ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), sigma)
    lo, hi = float(b.min()), float(b.max())
    return (b - lo) * (255.0 / (hi - lo)) if hi > lo else b


def compose_direct(first: ElasticTransform, second: ElasticTransform, target_shape: tuple[int, int], intervals: int) -> tuple[ElasticTransform, float]:
    """``first(second(x))`` on the target grid, fitted with ``intervals``; returns it and the RMS fit error."""
    d2 = second.to_dense(target_shape)
    dense = first.at(target_shape, d2[0], d2[1])
    fitted = fit_elastic(dense, intervals)
    return fitted, float(np.sqrt(((fitted.to_dense(target_shape) - dense) ** 2).sum(axis=0).mean()))


def compose_inverse(first_inv: ElasticTransform, second_inv: ElasticTransform, source_shape: tuple[int, int], target_shape: tuple[int, int], intervals: int) -> ElasticTransform:
    """``second_inv(first_inv(p))`` on the source grid: source pixel → pre-warped grid → target."""
    d1 = first_inv.to_dense(source_shape)
    return fit_elastic(second_inv.at(target_shape, d1[0], d1[1]), intervals)


def register_coarse_to_fine(register_once, target: np.ndarray, source: np.ndarray, params: BUnwarpJParams, sigma: float, **kwargs) -> Registration:
    """Run ``register_once`` (a backend's ``register``) on blurred images, then on sharp ones."""
    coarse = register_once(_blur(target, sigma), _blur(source, sigma), params, **kwargs)
    # clamp to the source so that no zero-filled border enters the image term as a false edge
    dense = coarse.direct.to_dense(target.shape)
    dense[0] = np.clip(dense[0], 0.0, source.shape[1] - 1.0)
    dense[1] = np.clip(dense[1], 0.0, source.shape[0] - 1.0)
    moved = warp_image(np.asarray(source, dtype=np.float32), dense)
    fine = register_once(target, moved, params, **kwargs)
    intervals = 2 * fine.direct.intervals
    direct, fit_px = compose_direct(coarse.direct, fine.direct, target.shape, intervals)
    inverse = None
    if coarse.inverse is not None and fine.inverse is not None:
        inverse = compose_inverse(coarse.inverse, fine.inverse, source.shape, target.shape, intervals)
    info = {"coarse_sigma": sigma, "compose_fit_px": fit_px, "coarse": coarse.info, "fine": fine.info}
    return Registration(direct, inverse, target.shape, source.shape, fine.backend, params, coarse.seconds + fine.seconds, info)
