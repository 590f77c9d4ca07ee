"""Energy terms of the elastic registration (Sorzano et al. 2005; Arganda-Carreras et al. 2006).

All functions work on a batch: images ``(B, h, w)``, weights/masks ``(B, h, w)`` (1 where a
pixel counts), coefficient grids ``(B, n, n)``. Each returns a ``(B,)`` tensor, so the pairs of a
batch stay independent (the total energy is their sum).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import spline

SIMILARITIES = ("ssd", "ncc", "nmi", "mind")


def soft_inside(x: torch.Tensor, y: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Weight 1 inside ``[0, w-1] x [0, h-1]``, falling linearly to 0 one pixel outside."""
    wx = (torch.minimum(x, (w - 1) - x) + 1.0).clamp(0.0, 1.0)
    wy = (torch.minimum(y, (h - 1) - y) + 1.0).clamp(0.0, 1.0)
    return wx * wy


def _wmean(v: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return (v * m).sum(dim=(-2, -1)) / m.sum(dim=(-2, -1)).clamp(min=1.0)


def ssd(fixed: torch.Tensor, moved: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared intensity difference over the masked pixels (bUnwarpJ's image term).

    Images ``(B, C, h, w)`` (descriptors): the mean over channels.
    """
    if fixed.dim() == 4:
        return _wmean(((fixed - moved) ** 2).mean(1), mask)
    return _wmean((fixed - moved) ** 2, mask)


def ncc(fixed: torch.Tensor, moved: torch.Tensor, mask: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """``1 - NCC^2``: global, or averaged over ``window x window`` neighbourhoods.

    The square makes the measure indifferent to contrast polarity (an inverted LOM aligns).
    An even ``window`` is widened by one pixel, so that every neighbourhood is centred on its pixel.
    """
    if window is None:
        mf, mm = _wmean(fixed, mask), _wmean(moved, mask)
        a = fixed - mf[:, None, None]
        b = moved - mm[:, None, None]
        cov = _wmean(a * b, mask)
        va, vb = _wmean(a * a, mask), _wmean(b * b, mask)
        return 1.0 - cov * cov / (va * vb + 1e-12)
    k = int(window) | 1  # odd: a centred window keeps the pooled map the image's size
    pool = lambda t: F.avg_pool2d(t[:, None], k, stride=1, padding=k // 2, count_include_pad=False)[:, 0]  # noqa: E731
    m = pool(mask) + 1e-12
    f, g = fixed * mask, moved * mask
    mf, mg = pool(f) / m, pool(g) / m
    cov = pool(f * g) / m - mf * mg
    vf = (pool(f * fixed) / m - mf * mf).clamp(min=0)
    vg = (pool(g * moved) / m - mg * mg).clamp(min=0)
    eps = 1e-3 * (vf.mean(dim=(-2, -1), keepdim=True) + 1e-12)
    cc2 = cov * cov / ((vf + eps) * (vg + eps))
    inner = (m > 0.5).to(fixed.dtype) * mask
    return 1.0 - _wmean(cc2, inner)


def parzen_weights(values: torch.Tensor, bins: int) -> torch.Tensor:
    """Cubic B-spline Parzen weights ``(..., bins)`` of values already scaled to ``[0, bins-1]``."""
    centres = torch.arange(bins, dtype=values.dtype, device=values.device)
    return spline.beta3_torch(values[..., None] - centres)


def nmi(fixed_w: torch.Tensor, moved: torch.Tensor, mask: torch.Tensor, bins: int) -> torch.Tensor:
    """``2 - NMI`` with ``NMI = (H(A) + H(B)) / H(A, B)`` from a differentiable Parzen histogram.

    ``fixed_w`` are the fixed image's Parzen weights ``(B, P, bins)`` (constant, precomputed);
    ``moved`` is ``(B, h, w)`` scaled to ``[0, bins-1]``.
    """
    b = moved.shape[0]
    wm = parzen_weights(moved.reshape(b, -1).clamp(0, bins - 1), bins) * mask.reshape(b, -1, 1)
    joint = fixed_w.transpose(1, 2) @ wm  # (B, bins, bins)
    joint = joint / joint.sum(dim=(1, 2), keepdim=True).clamp(min=1e-12)
    pa, pb = joint.sum(2), joint.sum(1)
    ent = lambda p: -(p * torch.log(p.clamp(min=1e-12))).sum(dim=tuple(range(1, p.dim())))  # noqa: E731
    return 2.0 - (ent(pa) + ent(pb)) / ent(joint).clamp(min=1e-12)


def vector_spline_regularization(c: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``div_weight ∫∫|∇ div d|² + curl_weight ∫∫|∇ curl d|²`` of grids ``c`` ``(B, 2, n, n)``.

    ``matrix`` is the exact quadratic form of :func:`.regularization.matrix` (weights included).
    """
    flat = c.reshape(c.shape[0], -1)
    return torch.einsum("bi,ij,bj->b", flat, matrix, flat)


def landmarks(c: torch.Tensor, shape: tuple[int, int], fixed_pts: torch.Tensor, moving_pts: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between the mapped fixed landmarks and the moving ones.

    ``fixed_pts``/``moving_pts`` are ``(B, K, 2)`` of ``(x, y)``; ``shape`` is the fixed grid.
    """
    x = spline.evaluate_points(c[:, 0], shape, fixed_pts[..., 0], fixed_pts[..., 1])
    y = spline.evaluate_points(c[:, 1], shape, fixed_pts[..., 0], fixed_pts[..., 1])
    return ((x - moving_pts[..., 0]) ** 2 + (y - moving_pts[..., 1]) ** 2).mean(dim=1)


def consistency(
    c_a: torch.Tensor,
    by: torch.Tensor,
    bx: torch.Tensor,
    gy: torch.Tensor,
    gx: torch.Tensor,
    c_b: torch.Tensor,
    shape_b: tuple[int, int],
) -> torch.Tensor:
    """Mean ``|g_b(g_a(p)) - p|^2`` over the points ``p`` of a regular sub-grid of grid ``a``.

    ``g_a`` (coefficients ``c_a``) maps grid ``a`` into grid ``b`` and ``g_b`` back; ``by, bx``
    are the basis matrices of the sub-grid (positions ``gy``, ``gx``), so ``g_a(p)`` is a cheap
    separable product. Points that ``g_a`` sends outside grid ``b`` do not count
    (Arganda-Carreras et al. 2006).
    """
    b = c_a.shape[0]
    px = dense(c_a[:, 0], by, bx).reshape(b, -1)
    py = dense(c_a[:, 1], by, bx).reshape(b, -1)
    hb, wb = shape_b
    inside = soft_inside(px.detach(), py.detach(), hb, wb)
    qx = spline.evaluate_points(c_b[:, 0], shape_b, px, py)
    qy = spline.evaluate_points(c_b[:, 1], shape_b, px, py)
    xa = gx[None, :].expand(len(gy), -1).reshape(1, -1)
    ya = gy[:, None].expand(-1, len(gx)).reshape(1, -1)
    r = (qx - xa) ** 2 + (qy - ya) ** 2
    return (r * inside).sum(1) / inside.sum(1).clamp(min=1.0)


def dense(c: torch.Tensor, by: torch.Tensor, bx: torch.Tensor) -> torch.Tensor:
    return spline.dense(c, by, bx)
