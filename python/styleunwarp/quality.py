"""Registration quality: metrics with and without ground truth, and the four tiers.

Tiers follow DESIGN.md: with ground truth, TRE in pixels on the target grid — *good* ≤ 1.5
mean and ≤ 3 at the 95th percentile, *decent* ≤ 3 mean, *bad* ≤ 8 mean, *poor* otherwise
or whenever the map folds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from skimage.metrics import normalized_mutual_information

from .transform import ElasticTransform, Transform, displacement_error, inside_source, jacobian_determinant, to_dense

TIERS = ("poor", "bad", "decent", "good")


def tier_from_tre(mean: float, p95: float, folded: bool = False) -> str:
    """The tier of a registration from its target registration error (pixels)."""
    if folded or not np.isfinite(mean):
        return "poor"
    if mean <= 1.5 and p95 <= 3.0:
        return "good"
    if mean <= 3.0:
        return "decent"
    if mean <= 8.0:
        return "bad"
    return "poor"


def nmi(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, bins: int = 64) -> float:
    """Normalised mutual information ``(H(A) + H(B)) / H(A, B)`` (1 = independent, 2 = identical)."""
    if mask is not None:
        a, b = a[mask], b[mask]
    if a.size < 16:
        return float("nan")
    return float(normalized_mutual_information(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel(), bins=bins))


@dataclass(frozen=True)
class TransformStats:
    """Properties of a direct transform that need no ground truth."""

    displacement_mean: float
    displacement_max: float
    jacobian_min: float
    jacobian_max: float
    folded_fraction: float
    roughness: float
    inside_fraction: float
    consistency_error: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def transform_stats(
    direct: Transform,
    target_shape: tuple[int, int],
    source_shape: tuple[int, int],
    inverse: ElasticTransform | None = None,
) -> TransformStats:
    """Displacement, Jacobian (folding, roughness = std of the determinant) and direct/inverse consistency.

    ``consistency_error`` is the mean distance between a target pixel and where
    ``inverse(direct(x))`` brings it back, over pixels mapped inside the source (``None``
    without an inverse, e.g. bUnwarpJ's Mono mode).
    """
    m = to_dense(direct, target_shape)
    h, w = target_shape
    yy, xx = np.mgrid[0:h, 0:w]
    disp = np.hypot(m[0] - xx, m[1] - yy)
    det = jacobian_determinant(direct, target_shape)
    inside = inside_source(m, source_shape)
    consistency = None
    if inverse is not None and inside.any():
        back = inverse.at(source_shape, m[0][inside], m[1][inside])
        consistency = float(np.hypot(back[0] - xx[inside], back[1] - yy[inside]).mean())
    return TransformStats(
        displacement_mean=float(disp.mean()),
        displacement_max=float(disp.max()),
        jacobian_min=float(det.min()),
        jacobian_max=float(det.max()),
        folded_fraction=float((det <= 0).mean()),
        roughness=float(det.std()),
        inside_fraction=float(inside.mean()),
        consistency_error=consistency,
    )


@dataclass(frozen=True)
class TRE:
    """Target registration error against a ground-truth direct transform (pixels)."""

    mean: float
    median: float
    p95: float
    max: float

    def to_dict(self) -> dict:
        return asdict(self)


def tre(estimate: Transform, truth: Transform, target_shape: tuple[int, int], source_shape: tuple[int, int] | None = None) -> TRE:
    """TRE over the target pixels that the true transform maps inside the source."""
    mask = inside_source(to_dense(truth, target_shape), source_shape or target_shape)
    d = displacement_error(estimate, truth, target_shape, mask)
    if d.size == 0:
        return TRE(float("nan"), float("nan"), float("nan"), float("nan"))
    return TRE(float(d.mean()), float(np.median(d)), float(np.percentile(d, 95)), float(d.max()))
