"""Operations on transforms: composition, inversion, Jacobian, warping index."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import bspline
from .model import ElasticTransform, Shape, Transform, to_dense
from .warp import inside_source


def _sample_map(dense_map: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of a dense map at continuous positions, extrapolated at edges."""
    coords = np.stack([np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)])
    return np.stack([ndimage.map_coordinates(c, coords, order=1, mode="nearest") for c in dense_map])


def compose(first: Transform | np.ndarray, second: Transform | np.ndarray, target_shape: Shape, middle_shape: Shape) -> np.ndarray:
    """Dense map of ``second(first(x))``.

    ``first`` maps the target grid (``target_shape``) to positions on an intermediate
    grid (``middle_shape``); ``second`` maps that grid to the final source. An elastic
    ``second`` is evaluated exactly at the continuous positions; a dense one bilinearly.
    """
    inner = to_dense(first, target_shape)
    if isinstance(second, ElasticTransform):
        return second.at(middle_shape, inner[0], inner[1])
    outer = to_dense(second, middle_shape)
    return _sample_map(outer, inner[0], inner[1])


def invert_map(
    transform: Transform | np.ndarray,
    source_shape: Shape,
    *,
    target_shape: Shape | None = None,
    iterations: int = 60,
    tolerance: float = 1e-4,
) -> np.ndarray:
    """Numerical inverse of a direct transform.

    ``transform`` maps each target pixel to a source position (an elastic transform, which
    then needs ``target_shape``, or a dense ``(2, H, W)`` map). The result maps each pixel
    of a ``source_shape`` grid to the target position it came from (``(2, Hs, Ws)``), found
    by fixed-point iteration ``x <- x + (p - T(x))``; ``T`` is evaluated exactly for
    elastic transforms and bilinearly for dense maps. Pixels where the iteration does not
    converge to ``tolerance`` (folded maps, or points no target pixel reaches) are NaN.
    """
    if isinstance(transform, ElasticTransform):
        if target_shape is None:
            raise ValueError("target_shape is needed to invert an elastic transform")
        def forward(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return transform.at(target_shape, x, y)
    else:
        dense = to_dense(transform, target_shape) if target_shape is not None else np.asarray(transform)
        def forward(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return _sample_map(dense, x, y)
    hs, ws = source_shape
    py, px = np.mgrid[0:hs, 0:ws].astype(np.float64)
    # Initial guess: undo the displacement found at the same position.
    d = forward(px, py)
    x = px - (d[0] - px)
    y = py - (d[1] - py)
    err = np.full(px.shape, np.inf)
    for _ in range(iterations):
        t = forward(x, y)
        rx, ry = px - t[0], py - t[1]
        x += rx
        y += ry
        err = np.hypot(rx, ry)
        if np.nanmax(err) < tolerance:
            break
    out = np.stack([x, y])
    out[:, ~(err < 10 * tolerance)] = np.nan
    return out


def jacobian_determinant(transform: Transform | np.ndarray, target_shape: Shape) -> np.ndarray:
    """Jacobian determinant of a direct transform at every target pixel.

    Exact (analytic B-spline derivatives) for elastic transforms, central differences for
    dense maps. Values ``<= 0`` mean the map folds there.
    """
    if isinstance(transform, ElasticTransform):
        h, w = target_shape
        n = transform.intervals
        by = bspline.basis_matrix(np.arange(h), h, n, "y")
        bx = bspline.basis_matrix(np.arange(w), w, n, "x")
        dby = bspline.basis_matrix(np.arange(h), h, n, "y", derivative=True)
        dbx = bspline.basis_matrix(np.arange(w), w, n, "x", derivative=True)
        xx = by @ transform.cx @ dbx.T
        xy = dby @ transform.cx @ bx.T
        yx = by @ transform.cy @ dbx.T
        yy = dby @ transform.cy @ bx.T
    else:
        m = to_dense(transform, target_shape)
        xy, xx = np.gradient(m[0])
        yy, yx = np.gradient(m[1])
    return xx * yy - xy * yx


def warping_index(
    a: Transform | np.ndarray,
    b: Transform | np.ndarray,
    target_shape: Shape,
    source_shape: Shape | None = None,
) -> float:
    """bUnwarpJ's warping index between two direct transforms (pixels).

    The root mean square distance between the source positions given by ``a`` and ``b``,
    over the target pixels that ``a`` maps inside the source (``source_shape``, the target
    size if omitted). Returns ``-1`` if no pixel qualifies, as bUnwarpJ does.
    """
    ma = to_dense(a, target_shape)
    mb = to_dense(b, target_shape)
    inside = inside_source(ma, source_shape or target_shape)
    if not inside.any():
        return -1.0
    d2 = (ma[0] - mb[0]) ** 2 + (ma[1] - mb[1]) ** 2
    return float(np.sqrt(d2[inside].mean()))


def displacement_error(
    a: Transform | np.ndarray,
    b: Transform | np.ndarray,
    target_shape: Shape,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Euclidean distance between the source positions of two maps at each target pixel."""
    ma = to_dense(a, target_shape)
    mb = to_dense(b, target_shape)
    d = np.hypot(ma[0] - mb[0], ma[1] - mb[1])
    return d if mask is None else d[mask]
