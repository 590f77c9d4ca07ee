"""The vector-spline regulariser as an exact quadratic form of the coefficients.

Sorzano et al. (2005) regularise the displacement ``d = (u, v)`` with

    E = div_weight * ∫∫ |∇ div d|²  +  curl_weight * ∫∫ |∇ curl d|²

over the image domain (pixel units, so ``E`` is dimensionless and does not change when image
and deformation are scaled together). The identity map has zero second derivatives, so ``E``
is the same for the map as for the displacement, and, the map being linear in its B-spline
coefficients, ``E = c·R·c`` with a constant matrix ``R``. The integrands are polynomials of
degree ≤ 6 on each spline cell, so Gauss-Legendre quadrature with 4 nodes per interval and axis
integrates them exactly.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from . import spline

_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(4)


def _quadrature(length: int, intervals: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights (pixel units) over ``[0, length-1]``, 4 per interval."""
    step = (length - 1) / intervals
    starts = np.arange(intervals) * step
    nodes = (starts[:, None] + (0.5 * (_GAUSS_NODES + 1.0))[None, :] * step).ravel()
    weights = np.tile(0.5 * step * _GAUSS_WEIGHTS, intervals)
    return nodes, weights


@lru_cache(maxsize=32)
def _matrix(intervals: int, shape: tuple[int, int], div_weight: float, curl_weight: float) -> np.ndarray:
    h, w = shape
    qy, wy = _quadrature(h, intervals)
    qx, wx = _quadrature(w, intervals)
    by = [spline.basis(qy, h, intervals, "y", k) for k in range(3)]
    bx = [spline.basis(qx, w, intervals, "x", k) for k in range(3)]
    # ∫∫ (D1 f)(D2 g) with D = ∂^a/∂y^a ∂^b/∂x^b separable: a Kronecker product of 1-D Gram matrices
    gram = lambda d1, d2: np.kron(by[d1[0]].T @ (wy[:, None] * by[d2[0]]), bx[d1[1]].T @ (wx[:, None] * bx[d2[1]]))  # noqa: E731
    xx, xy, yy = (0, 2), (1, 1), (2, 0)  # (order in y, order in x)
    # each squared expression: terms (sign, coordinate 0 = x-map / 1 = y-map, derivative)
    grad_div = [[(1, 0, xx), (1, 1, xy)], [(1, 0, xy), (1, 1, yy)]]
    grad_curl = [[(-1, 0, xy), (1, 1, xx)], [(-1, 0, yy), (1, 1, xy)]]
    n2 = (intervals + 3) ** 2
    r = np.zeros((2 * n2, 2 * n2))
    for weight, expressions in ((div_weight, grad_div), (curl_weight, grad_curl)):
        if weight:
            for terms in expressions:
                for s1, c1, d1 in terms:
                    for s2, c2, d2 in terms:
                        r[c1 * n2:(c1 + 1) * n2, c2 * n2:(c2 + 1) * n2] += weight * s1 * s2 * gram(d1, d2)
    r = 0.5 * (r + r.T)
    r.setflags(write=False)
    return r


def matrix(intervals: int, shape: tuple[int, int], div_weight: float, curl_weight: float) -> np.ndarray:
    """``R`` ``(2n², 2n²)`` with ``E = c·R·c`` for ``c = [cx.ravel(), cy.ravel()]``, ``n = intervals+3``.

    ``shape`` is the ``(H, W)`` grid the transform is defined on (full resolution). Read-only
    and cached: the same level of the same problem reuses it.
    """
    return _matrix(int(intervals), (int(shape[0]), int(shape[1])), float(div_weight), float(curl_weight))


def tensor(intervals: int, shape: tuple[int, int], div_weight: float, curl_weight: float,
           dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
    """:func:`matrix` as a tensor for the optimisers, ``None`` when both weights are 0."""
    if not (div_weight or curl_weight):
        return None
    return torch.tensor(matrix(intervals, shape, div_weight, curl_weight), dtype=dtype, device=device)
