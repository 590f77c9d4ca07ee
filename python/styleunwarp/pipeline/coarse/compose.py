"""Exact composition of a coarse affine start with the elastic transforms found after it.

The chain reads the elastic step in the moving frame: the source resampled onto the target grid
by the coarse map ``A`` (2x3, target pixel -> source pixel). Transform coefficients are absolute
source coordinates, so the direct transform onto the original source is ``A`` applied to the
coefficients (exact); the inverse is re-expressed on the source grid by one refit. bUnwarpJ itself
starts from ``A`` on the source as it is, and its result is brought into the moving frame the
other way round (``A``'s inverse; :func:`styleunwarp.pipeline.chain.elastic_step`).
"""

from __future__ import annotations

import numpy as np

from ...transform import ElasticTransform, affine_elastic, fit_elastic, warp_image


def warp_source(source: np.ndarray, a: np.ndarray, target_shape: tuple[int, int]) -> np.ndarray:
    """The source resampled onto the target grid by ``A`` (bUnwarpJ's cubic warping)."""
    a = np.asarray(a, np.float64)
    if source.shape[:2] == tuple(target_shape) and np.allclose(a, [[1, 0, 0], [0, 1, 0]]):
        return source
    return warp_image(source, affine_elastic(a, 1, target_shape), target_shape)


def invert_affine(a: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine map, as a 2x3 map."""
    return np.linalg.inv(np.vstack([np.asarray(a, np.float64), [0.0, 0.0, 1.0]]))[:2]


def compose_direct(direct: ElasticTransform, a: np.ndarray) -> ElasticTransform:
    """``A(D(x))``: a direct transform onto the coarsely aligned source, re-expressed onto the source."""
    a = np.asarray(a, np.float64)
    return ElasticTransform(a[0, 0] * direct.cx + a[0, 1] * direct.cy + a[0, 2], a[1, 0] * direct.cx + a[1, 1] * direct.cy + a[1, 2])


def inverse_through(inverse: ElasticTransform, a: np.ndarray, source_shape: tuple[int, int], target_shape: tuple[int, int]) -> ElasticTransform:
    """An inverse transform of the aligned source (on the target grid) re-expressed on the source grid.

    ``I(p) = I'(A^-1 p)``: evaluated exactly where ``A^-1 p`` lies on the target grid and
    continued outside it by the displacement at the nearest grid point (``I'`` is only known
    there), then refitted; the spline grid spans the source, so the number of intervals
    grows with the source's extent in target pixels to keep the resolution.
    """
    a = np.asarray(a, np.float64)
    if source_shape == tuple(target_shape) and np.allclose(a, [[1, 0, 0], [0, 1, 0]]):
        return inverse
    ainv = invert_affine(a)
    h, w = source_shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    qx = ainv[0, 0] * xx + ainv[0, 1] * yy + ainv[0, 2]
    qy = ainv[1, 0] * xx + ainv[1, 1] * yy + ainv[1, 2]
    th, tw = target_shape
    cx, cy = np.clip(qx, 0, tw - 1), np.clip(qy, 0, th - 1)
    dense = inverse.at(target_shape, cx, cy)
    dense[0] += qx - cx
    dense[1] += qy - cy
    extent = max(np.ptp(qx) / max(tw - 1, 1), np.ptp(qy) / max(th - 1, 1))
    intervals = int(min(64, max(inverse.intervals, np.ceil(inverse.intervals * extent))))
    return fit_elastic(dense, intervals)
