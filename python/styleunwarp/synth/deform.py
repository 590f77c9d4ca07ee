"""Known smooth deformations between the LOM (source) and CBS (target) frames.

The ground truth is a bUnwarpJ elastic transform ``T`` (the *direct* transform: target
pixel -> absolute source position), built directly on the coefficient grid: the identity
grid moved by a rotation about the image centre and a shift (cubic B-splines reproduce
affine maps exactly), plus a random perturbation of the coefficients (the smooth elastic
part). The LOM source pixel ``p`` shows the structure at ``T^-1(p)``:
:func:`source_positions` computes it for every source pixel, including the source
pixels that no target pixel reaches (outside the CBS field of view).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..transform import ElasticTransform, affine_elastic, beta3, evaluate_elastic


@dataclass
class Deformation:
    """A ground-truth deformation: the elastic transform and how it was built.

    ``affine`` is the 2x3 matrix of the rotation + shift part (target -> source);
    ``perturbation`` the elastic coefficient grids added to it (``truth = affine +
    perturbation`` coefficient-wise); ``target_shape`` the ``(H, W)`` it is defined on.
    """

    truth: ElasticTransform
    affine: np.ndarray
    perturbation: ElasticTransform
    target_shape: tuple[int, int]
    params: dict = field(default_factory=dict)

    def dense(self) -> np.ndarray:
        """The direct map ``(2, H, W)`` on the target grid."""
        return evaluate_elastic(self.truth, self.target_shape)


def random_deformation(
    rng: np.random.Generator,
    target_shape: tuple[int, int],
    *,
    intervals: int = 4,
    rotation_deg: tuple[float, float] = (1.5, 4.0),
    shift_px: tuple[float, float] = (3.0, 8.0),
    elastic_px: tuple[float, float] = (1.0, 3.0),
    max_strain: float = 0.06,
) -> Deformation:
    """Draw a smooth random deformation of a ``(H, W)`` target frame.

    Parameters
    ----------
    rng
        Random generator.
    target_shape
        ``(H, W)`` of the target (CBS) grid.
    intervals
        B-spline intervals of the ground-truth transform (4 = bUnwarpJ's "Fine").
    rotation_deg, shift_px, elastic_px
        Ranges of the rotation magnitude (either sign), the shift length (any direction)
        and the RMS displacement of the elastic part.
    max_strain
        Upper bound of the elastic part's strain (Frobenius norm of its Jacobian); the
        RMS displacement is reduced where small images or many intervals would exceed it.
    """
    h, w = target_shape
    angle = float(rng.uniform(*rotation_deg)) * float(rng.choice([-1.0, 1.0]))
    shift_len = float(rng.uniform(*shift_px))
    shift_dir = float(rng.uniform(0, 2 * np.pi))
    shift = shift_len * np.array([np.cos(shift_dir), np.sin(shift_dir)])
    th = np.deg2rad(angle)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    affine = np.column_stack([rot, centre + shift - rot @ centre])
    base = affine_elastic(affine, intervals, target_shape)

    rms = float(rng.uniform(*elastic_px))
    px, py = rng.standard_normal((2, intervals + 3, intervals + 3))
    pert = evaluate_elastic(ElasticTransform(px, py), target_shape)
    scale = rms / max(np.sqrt(np.mean(pert[0] ** 2 + pert[1] ** 2)), 1e-12)
    # Keep it smooth: cap the strain (Frobenius norm of the perturbation's Jacobian).
    gxy, gxx = np.gradient(pert[0])
    gyy, gyx = np.gradient(pert[1])
    strain = float(np.sqrt(gxx**2 + gxy**2 + gyx**2 + gyy**2).max()) * scale
    if strain > max_strain:
        scale *= max_strain / strain
        rms = float(rms * max_strain / strain)
    perturbation = ElasticTransform(px * scale, py * scale)
    truth = ElasticTransform(base.cx + perturbation.cx, base.cy + perturbation.cy)

    # Statistics for the record: dense map = affine part + scaled perturbation (no second
    # spline evaluation); Jacobian by central differences (smooth map: exact to ~1e-5).
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dense = np.stack([affine[0, 0] * xx + affine[0, 1] * yy + affine[0, 2], affine[1, 0] * xx + affine[1, 1] * yy + affine[1, 2]])
    dense += scale * pert
    dxy, dxx = np.gradient(dense[0])
    dyy, dyx = np.gradient(dense[1])
    jac = dxx * dyy - dxy * dyx
    disp = np.hypot(dense[0] - xx, dense[1] - yy)
    params = {
        "intervals": intervals,
        "rotation_deg": angle,
        "shift_px": [float(shift[0]), float(shift[1])],
        "elastic_rms_px": rms,
        "mean_displacement_px": float(disp.mean()),
        "max_displacement_px": float(disp.max()),
        "jacobian_min": float(jac.min()),
        "jacobian_max": float(jac.max()),
    }
    return Deformation(truth, affine, perturbation, (int(h), int(w)), params)


def _extended(coeffs: np.ndarray, pad: int) -> np.ndarray:
    """Coefficient grid padded by linear extrapolation: the same spline inside, a smooth
    (C2) continuation outside the target grid."""
    out = coeffs
    for axis in (0, 1):
        first = np.take(out, [0], axis=axis)
        step0 = first - np.take(out, [1], axis=axis)
        last = np.take(out, [-1], axis=axis)
        step1 = last - np.take(out, [-2], axis=axis)
        before = [first + k * step0 for k in range(pad, 0, -1)]
        after = [last + k * step1 for k in range(1, pad + 1)]
        out = np.concatenate(before + [out] + after, axis=axis)
    return out


def _spline_at(coeffs: np.ndarray, pad: int, tu: np.ndarray, tv: np.ndarray) -> np.ndarray:
    """Evaluate a padded coefficient grid at spline coordinates ``(tu, tv)`` of the unpadded grid."""
    tu = tu + pad
    tv = tv + pad
    n = coeffs.shape[0]
    bu = np.floor(tu).astype(np.int64)
    bv = np.floor(tv).astype(np.int64)
    out = np.zeros(tu.shape)
    for di in range(-1, 3):
        i = np.clip(bv + di, 0, n - 1)
        wy = beta3(tv - (bv + di))
        for dj in range(-1, 3):
            j = np.clip(bu + dj, 0, n - 1)
            out += coeffs[i, j] * wy * beta3(tu - (bu + dj))
    return out


def source_positions(
    deformation: Deformation,
    source_shape: tuple[int, int] | None = None,
    *,
    step: int = 4,
    tolerance: float = 1e-6,
    max_iterations: int = 50,
) -> np.ndarray:
    """Target-frame position ``T^-1(p)`` seen by every source pixel ``p``: ``(2, Hs, Ws)``, x first.

    Solves ``A x + P(x) = p`` (``A`` the affine part, ``P`` the elastic perturbation) by
    the contraction ``x <- A^-1 (p - P(x))`` on a grid of every ``step``-th source pixel,
    then interpolates (cubic) to all pixels: the inverse is smooth, so this is accurate to
    about 1e-4 px. ``P`` is continued smoothly beyond the target grid (linear extrapolation
    of its coefficient grid), so source pixels outside the CBS field of view get a
    smooth extension of the same map. Inside, the result agrees with
    :func:`styleunwarp.transform.invert_map` of the direct map and is much faster.
    """
    h, w = deformation.target_shape
    hs, ws = source_shape or deformation.target_shape
    n = deformation.perturbation.intervals
    pad = 8
    cx = _extended(deformation.perturbation.cx, pad)
    cy = _extended(deformation.perturbation.cy, pad)
    m = deformation.affine[:, :2]
    b = deformation.affine[:, 2]
    minv = np.linalg.inv(m)
    # Coarse grid of source positions covering the source frame with nodes to spare.
    margin = 4
    gy = np.arange(-margin, int(np.ceil((hs - 1) / step)) + margin + 1) * float(step)
    gx = np.arange(-margin, int(np.ceil((ws - 1) / step)) + margin + 1) * float(step)
    py, px = np.meshgrid(gy, gx, indexing="ij")
    q = np.stack([px - b[0], py - b[1]])
    x = np.einsum("ij,jhw->ihw", minv, q)
    su, sv = n / (w - 1), n / (h - 1)
    for _ in range(max_iterations):
        tu, tv = x[0] * su + 1.0, x[1] * sv + 1.0
        d = np.stack([_spline_at(cx, pad, tu, tv), _spline_at(cy, pad, tu, tv)])
        new = np.einsum("ij,jhw->ihw", minv, q - d)
        delta = np.max(np.abs(new - x))
        x = new
        if delta < tolerance:
            break
    # Interpolate only the small, smooth non-affine part (exact affine part added back).
    residual = x - np.einsum("ij,jhw->ihw", minv, q)
    yy, xx = np.mgrid[0:hs, 0:ws].astype(np.float64)
    coords = np.stack([yy / step + margin, xx / step + margin])
    full = np.einsum("ij,jhw->ihw", minv, np.stack([xx - b[0], yy - b[1]]))
    return full + np.stack([ndimage.map_coordinates(c, coords, order=3, mode="nearest") for c in residual])
