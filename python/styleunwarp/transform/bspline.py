"""Cubic B-spline deformation model of bUnwarpJ, evaluated in closed form.

bUnwarpJ represents a deformation of an ``W x H`` target grid by two ``(N+3, N+3)``
coefficient grids ``cx`` and ``cy`` (``N`` = number of intervals). At target pixel
``(u, v)`` the spline coordinates are ``tu = u*N/(W-1) + 1`` and ``tv = v*N/(H-1) + 1`` and::

    X(u, v) = sum_ij cx[i, j] * beta3(tv - i) * beta3(tu - j)

with ``beta3`` the centred cubic B-spline and no mirroring of the coefficient grid.
bUnwarpJ writes the constant 2/3 of ``beta3`` as the Java float expression ``2.0F / 3.0F``
(0.6666666865...), so its weights sum to ``1 + 2e-8`` rather than 1; :data:`TWO_THIRDS`
reproduces that, which makes dense maps agree with the plugin's to about 1e-12 px
instead of 1e-5 px.
Because ``tu`` depends on ``u`` only and ``tv`` on ``v`` only, a whole map is the matrix
product ``By @ cx @ Bx.T``, which is how everything here is computed.
"""

from __future__ import annotations

import numpy as np


TWO_THIRDS = float(np.float32(2.0) / np.float32(3.0))
"""The constant 2/3 as bUnwarpJ evaluates it (single-precision division widened to double)."""


def beta3(t: np.ndarray) -> np.ndarray:
    """Centred cubic B-spline ``beta3(t)``, support ``(-2, 2)``, with bUnwarpJ's :data:`TWO_THIRDS`."""
    a = np.abs(np.asarray(t, dtype=np.float64))
    out = np.zeros_like(a)
    inner = a < 1.0
    outer = (a >= 1.0) & (a < 2.0)
    out[inner] = 0.5 * a[inner] ** 2 * (a[inner] - 2.0) + TWO_THIRDS
    out[outer] = (2.0 - a[outer]) ** 3 / 6.0
    return out


def beta3_derivative(t: np.ndarray) -> np.ndarray:
    """Derivative of :func:`beta3` with respect to ``t``."""
    t = np.asarray(t, dtype=np.float64)
    a = np.abs(t)
    s = np.sign(t)
    out = np.zeros_like(a)
    inner = a < 1.0
    outer = (a >= 1.0) & (a < 2.0)
    out[inner] = s[inner] * (-2.0 * a[inner] + 1.5 * a[inner] ** 2)
    out[outer] = -s[outer] * 0.5 * (2.0 - a[outer]) ** 2
    return out


def spline_coordinate(pos: np.ndarray, length: int, intervals: int) -> np.ndarray:
    """Spline coordinate ``t = pos * N / (length - 1) + 1`` of pixel positions on one axis."""
    if length < 2:
        raise ValueError(f"an image axis needs at least 2 pixels, got {length}")
    return np.asarray(pos, dtype=np.float64) * intervals / (length - 1) + 1.0


def knot_weights(t: np.ndarray, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices and weights of the four coefficients that contribute at spline coordinates ``t``.

    Returns ``(base, weights)``: coefficient ``base + 2 - k`` has weight ``weights[k]``,
    ``k = 0..3``. The weights are written as bUnwarpJ's ``BSplineModel`` writes them, which
    differ from :func:`beta3` by rounding only: at integer ``t`` the y axis gives the
    neighbour at distance 1 the weight ``2/3 - 1/2`` (in float arithmetic) where the x
    axis gives ``1/6``. ``axis`` is ``"x"`` or ``"y"``.
    """
    t = np.asarray(t, dtype=np.float64)
    base = np.floor(t)
    e = t - base
    s = 1.0 - e
    d0 = 0.5 * e * e
    w0 = e * d0 / 3.0
    d3 = -0.5 * s * s
    w3 = s * d3 / -3.0
    if axis == "x":
        a = np.abs(e - 1.0)
        w1 = np.where(a < 1.0, 0.5 * a * a * (a - 2.0) + TWO_THIRDS, (2.0 - a) ** 3 / 6.0)
    elif axis == "y":
        w1 = TWO_THIRDS + (1.0 + e) * d3
    else:
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    w2 = TWO_THIRDS - (2.0 - e) * d0
    return base.astype(np.int64), np.stack([w0, w1, w2, w3])


def basis_matrix(pos: np.ndarray, length: int, intervals: int, axis: str = "x", derivative: bool = False) -> np.ndarray:
    """Matrix ``B[k, j]``: weight of coefficient ``j`` at positions ``pos`` on an axis of ``length`` pixels.

    With ``derivative=True`` the entries are ``d beta3(t_k - j) / d pos`` (exact cubic
    B-spline derivative).
    """
    t = spline_coordinate(pos, length, intervals)
    n = intervals + 3
    if derivative:
        j = np.arange(n, dtype=np.float64)
        return beta3_derivative(t[:, None] - j[None, :]) * (intervals / (length - 1))
    base, w = knot_weights(t, axis)
    out = np.zeros((t.size, n), dtype=np.float64)
    rows = np.arange(t.size)
    for k in range(4):
        idx = base + 2 - k
        ok = (idx >= 0) & (idx < n)
        out[rows[ok], idx[ok]] = w[k][ok]
    return out


def evaluate_grid(coeffs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Evaluate one coefficient grid at every pixel of a ``(H, W)`` target grid."""
    h, w = shape
    n = coeffs.shape[0] - 3
    by = basis_matrix(np.arange(h), h, n, "y")
    bx = basis_matrix(np.arange(w), w, n, "x")
    return by @ coeffs @ bx.T


def evaluate_points(coeffs: np.ndarray, shape: tuple[int, int], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Evaluate one coefficient grid at arbitrary (continuous) target positions ``(x, y)``.

    ``shape`` is the ``(H, W)`` of the target grid that defines the spline coordinates.
    """
    h, w = shape
    n = coeffs.shape[0] - 3
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    bu, wu = knot_weights(spline_coordinate(x, w, n), "x")
    bv, wv = knot_weights(spline_coordinate(y, h, n), "y")
    # coefficients outside the grid weigh 0: a 4-wide zero border, and indices clipped into it
    m = n + 3
    flat = np.pad(np.asarray(coeffs, np.float64), 4).ravel()
    bi = np.clip(bv + 6, 3, m + 7)  # padded row of the coefficient with weight wv[0]
    bj = np.clip(bu + 6, 3, m + 7)
    out = np.zeros(x.shape, dtype=np.float64)
    for ky in range(4):
        rows = (bi - ky) * (m + 8)
        row = np.zeros(x.shape, dtype=np.float64)
        for kx in range(4):
            row += wu[kx] * flat[rows + (bj - kx)]
        out += wv[ky] * row
    return out


def fit_grid(values: np.ndarray, intervals: int) -> np.ndarray:
    """Least-squares coefficient grid whose spline best matches ``values`` on its ``(H, W)`` grid.

    The system is separable (``By @ C @ Bx.T``), so the solution is
    ``pinv(By) @ values @ pinv(Bx).T``.
    """
    h, w = values.shape
    by = basis_matrix(np.arange(h), h, intervals, "y")
    bx = basis_matrix(np.arange(w), w, intervals, "x")
    return np.linalg.pinv(by) @ values @ np.linalg.pinv(bx).T
