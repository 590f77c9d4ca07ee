"""bUnwarpJ's cubic B-spline deformation model in torch (differentiable).

The convention is :mod:`styleunwarp.transform.bspline`'s (and bUnwarpJ's): a transform of a
``W x H`` grid with ``N`` intervals has ``(N+3, N+3)`` coefficient grids of absolute
coordinates, and at pixel ``(u, v)`` the spline coordinates are ``tu = u*N/(W-1) + 1``,
``tv = v*N/(H-1) + 1``. Dense maps on (sub)grids are ``By @ C @ Bx.T`` with the basis matrices
of :func:`styleunwarp.transform.bspline.basis_matrix` (bUnwarpJ's exact weights, float 2/3
quirk included), so a coefficient grid optimised here evaluates to the same map in
:func:`styleunwarp.transform.evaluate_elastic` and in the plugin.
"""

from __future__ import annotations

import numpy as np
import torch

from ...transform import bspline

TWO_THIRDS = bspline.TWO_THIRDS


def beta3_second(t: np.ndarray) -> np.ndarray:
    """Second derivative of the centred cubic B-spline."""
    a = np.abs(np.asarray(t, dtype=np.float64))
    return np.where(a < 1.0, 3.0 * a - 2.0, np.where(a < 2.0, 2.0 - a, 0.0))


def basis(pos: np.ndarray, length: int, intervals: int, axis: str, derivative: int = 0) -> np.ndarray:
    """``(len(pos), N+3)`` matrix of the ``derivative``-th derivative (per pixel) of the basis."""
    if derivative == 0:
        return bspline.basis_matrix(pos, length, intervals, axis)
    if derivative == 1:
        return bspline.basis_matrix(pos, length, intervals, axis, derivative=True)
    if derivative == 2:
        t = bspline.spline_coordinate(pos, length, intervals)
        j = np.arange(intervals + 3, dtype=np.float64)
        return beta3_second(t[:, None] - j[None, :]) * (intervals / (length - 1)) ** 2
    raise ValueError(f"derivative must be 0, 1 or 2, got {derivative}")


def dense(c: torch.Tensor, by: torch.Tensor, bx: torch.Tensor) -> torch.Tensor:
    """Map ``(B, h, w)`` of coefficient grids ``c`` ``(B, N+3, N+3)`` on a separable grid."""
    return by @ c @ bx.transpose(0, 1)


def beta3_torch(t: torch.Tensor) -> torch.Tensor:
    """Centred cubic B-spline (bUnwarpJ's 2/3 constant), differentiable in ``t``."""
    a = t.abs()
    inner = 0.5 * a * a * (a - 2.0) + TWO_THIRDS
    outer = (2.0 - a).clamp(min=0.0) ** 3 / 6.0
    return torch.where(a < 1.0, inner, outer)


def evaluate_points(c: torch.Tensor, shape: tuple[int, int], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spline ``c`` ``(B, n, n)`` of a ``(H, W)`` grid at points ``x, y`` ``(B, P)`` → ``(B, P)``.

    Differentiable in both the coefficients and the positions; coefficients outside the grid
    count as zero (bUnwarpJ does not mirror the grid).
    """
    h, w = shape
    b, n = c.shape[0], c.shape[-1]
    nint = n - 3
    tu = x * (nint / (w - 1)) + 1.0
    tv = y * (nint / (h - 1)) + 1.0
    offs = torch.arange(-1, 3, dtype=tu.dtype, device=tu.device)
    j = torch.floor(tu.detach())[..., None] + offs  # (B, P, 4)
    i = torch.floor(tv.detach())[..., None] + offs
    wx = beta3_torch(tu[..., None] - j) * ((j >= 0) & (j < n))
    wy = beta3_torch(tv[..., None] - i) * ((i >= 0) & (i < n))
    idx = i.clamp(0, n - 1).long()[..., :, None] * n + j.clamp(0, n - 1).long()[..., None, :]  # (B, P, 4, 4)
    vals = torch.gather(c.reshape(b, n * n), 1, idx.reshape(b, -1)).reshape(idx.shape)
    return ((vals * wx[..., None, :]).sum(-1) * wy).sum(-1)


def subdivision_matrix(intervals: int) -> np.ndarray:
    """``S`` with ``C2 = S @ C @ S.T`` the exact ``2N``-interval grid of an ``N``-interval spline.

    Cubic B-spline two-scale relation: new knot ``2m`` gets ``(c[m-1] + 6 c[m] + c[m+1]) / 8``,
    new knot ``2m+1`` gets ``(c[m] + c[m+1]) / 2`` (knot ``k`` is coefficient index ``k+1``).
    """
    n_old, n_new = intervals + 3, 2 * intervals + 3
    s = np.zeros((n_new, n_old))
    for r in range(n_new):
        knot = r - 1
        if knot % 2 == 0:
            m = knot // 2
            s[r, m] += 1 / 8
            s[r, m + 1] += 6 / 8
            s[r, m + 2] += 1 / 8
        else:
            m = (knot - 1) // 2
            s[r, m + 1] += 0.5
            s[r, m + 2] += 0.5
    return s


def refine(c: torch.Tensor) -> torch.Tensor:
    """Coefficient grids ``(B, n, n)`` with twice the intervals, same spline."""
    s = torch.as_tensor(subdivision_matrix(c.shape[-1] - 3), dtype=c.dtype, device=c.device)
    return s @ c @ s.transpose(0, 1)


def row_kron(a, b):
    """Row-wise Kronecker product ``(..., m, p), (..., m, q) -> (..., m, p*q)``."""
    return (a[..., :, None] * b[..., None, :]).reshape(*a.shape[:-1], -1)


def separable_gram(ky: torch.Tensor, kx: torch.Tensor, v: torch.Tensor, n: int) -> torch.Tensor:
    """``Σ_p v[p] B(p) B(p)ᵀ`` ``(B, n², n²)`` for points ``p`` of a separable grid.

    ``ky = row_kron(by, by)``, ``kx = row_kron(bx, bx)``; ``v`` is ``(B, len(by), len(bx))``.
    """
    b = v.shape[0]
    m = ky.T @ v @ kx  # (B, n²[y i,j], n²[x k,l])
    return m.reshape(b, n, n, n, n).permute(0, 1, 3, 2, 4).reshape(b, n * n, n * n)
