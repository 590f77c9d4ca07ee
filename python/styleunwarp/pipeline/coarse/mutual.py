"""Similarity hypotheses scored by mutual information: raw images whose grey levels do not correlate.

The other searches (:mod:`.similarity`) rank hypotheses by NCC, which needs a linear relation
between the two images' grey levels (or their edge strengths). Raw images of two modalities
often have none: a BSE and an SE image of one rock, a fluorescence channel and an EM image.
Mutual information only asks that one image's grey level predict the other's. Here it is
computed for every integer shift at once: each image is quantised into :data:`BINS` grey-level
classes (quantiles), and the joint histogram at every shift is the cross-correlation of the two
images' class indicators (``BINS**2`` FFT products), from which the normalised mutual
information ``(H(a) + H(b)) / H(a, b) - 1`` follows (0: independent). Rotations over the full
circle in steps of :data:`ROTATION_STEP` at one scale (the known one, else 1): mutual information
of fine textures peaks within a few degrees of the right rotation, so the NCC search's 10-degree
grid would miss it.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy.special import xlogy

from .score import MIN_OVERLAP, Level
from .similarity import _distinct, _grid, _map_points, _reduced_source
from .types import Candidate

SIZE = 96
"""Longer side (px) of the reduced target the search runs on."""

ROTATION_STEP = 2.5
"""Rotation step (degrees) over the full circle."""

BINS = 8
"""Grey-level classes (quantiles of each image) of the joint histogram."""

GAIN = 1.5
"""The best hypothesis must carry this many times the identity's mutual information ..."""

UNIQUE = 1.5
"""... and this many times that of every different hypothesis (:data:`DISTINCT`): a unique peak."""

KEEP = 3
"""Distinct hypotheses returned (best first)."""

AT_IDENTITY_PX = 2.0
"""A hypothesis whose map lies within this many working pixels (of the :data:`SIZE` level) of the
identity's, at the target's corners and centre, is the identity (the peak of mutual information
of a pair aligned to 0.3 px lay 1.4 working px from it, shale_0098; one 7.7 px off, 2.8 px)."""

DISTINCT = 0.15
"""Hypotheses whose maps differ by more than this fraction of the target's size (at its corners or
centre) are different peaks; closer ones (the neighbouring rotations of one peak) are one."""


def classes(image: np.ndarray, mask: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Grey-level class (0 .. n-1) of every pixel of ``image`` inside ``mask`` by quantiles, -1 outside.

    Tied quantiles merge (an image that is mostly 0 has fewer classes); one class carries no information."""
    values = np.asarray(image, np.float64)[mask]
    if values.size == 0:
        return np.full(image.shape, -1, np.int16)
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    out = np.searchsorted(edges, image, side="right").astype(np.int16)
    out[~mask] = -1
    return out


def _nmi(counts: np.ndarray) -> np.ndarray:
    """Normalised mutual information minus 1 of joint histograms ``counts`` (classes a, classes b, ...)."""
    n = counts.sum(axis=(0, 1))
    # entropies from counts: H = log N - sum(c log c) / N
    s_ab = xlogy(counts, counts).sum(axis=(0, 1))
    a, b = counts.sum(axis=1), counts.sum(axis=0)
    s_a, s_b = xlogy(a, a).sum(axis=0), xlogy(b, b).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_n = np.log(np.where(n > 0, n, 1.0))
        n_safe = np.where(n > 0, n, 1.0)
        h_ab = log_n - s_ab / n_safe
        h_a, h_b = log_n - s_a / n_safe, log_n - s_b / n_safe
        return np.where(h_ab > 1e-9, (h_a + h_b) / np.where(h_ab > 1e-9, h_ab, 1.0) - 1.0, 0.0)


class MutualInformationCorrelator:
    """Normalised mutual information of a fixed image against a moving one, for every integer shift.

    Same contract as :class:`.score.ShiftCorrelator`: ``(map, origin)``, shift ``d``: fixed pixel
    ``x`` meets moving pixel ``x + d``; shifts whose overlap is below ``MIN_OVERLAP`` of the largest
    possible one score ``-inf``; values are weighted by the square root of the covered fraction
    of the fixed image, so that small overlaps win no ties.
    """

    def __init__(self, fixed: np.ndarray, bins: int = BINS) -> None:
        self.bins = bins
        self.shape = fixed.shape
        self.fixed = classes(fixed, np.ones(fixed.shape, bool), bins)
        self.n_fixed = int(self.fixed.max()) + 1
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def _fixed_ffts(self, size: tuple[int, int]) -> np.ndarray:
        """The conjugate FFTs of the fixed image's class indicators, stacked (one per class), at ``size``."""
        if size not in self._cache:
            indicators = (self.fixed[None] == np.arange(self.n_fixed)[:, None, None]).astype(np.float32)
            self._cache[size] = np.conj(sfft.rfft2(indicators, size, axes=(-2, -1)))
        return self._cache[size]

    def __call__(self, moving: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        h, w = self.shape
        hm, wm = moving.shape
        origin = (h - 1, w - 1)
        full = (hm + h - 1, wm + w - 1)
        labels = classes(moving, mask, self.bins)
        n_moving = int(labels.max()) + 1
        if self.n_fixed < 2 or n_moving < 2:
            return np.full(full, -np.inf), origin
        size = (sfft.next_fast_len(full[0], real=True), sfft.next_fast_len(full[1], real=True))
        ff = self._fixed_ffts(size)
        fm = sfft.rfft2((labels[None] == np.arange(n_moving)[:, None, None]).astype(np.float32), size, axes=(-2, -1))
        # every pair of classes at once: counts[i, j] at shift d = #{x: fixed class i at x, moving class j at x + d}
        counts = np.maximum(np.round(sfft.irfft2(ff[:, None] * fm[None], size, axes=(-2, -1))), 0.0)
        n = counts.sum(axis=(0, 1))
        out = _nmi(counts) * np.sqrt(np.clip(n / (h * w), 0.0, 1.0))
        out[n < MIN_OVERLAP * min(h * w, float(mask.sum()))] = -np.inf
        out = np.roll(out, origin, axis=(0, 1))[: full[0], : full[1]]
        return out, origin

    def at(self, moving: np.ndarray, mask: np.ndarray) -> float:
        """The (weighted) value for ``moving`` as it lies on the fixed image's grid (``mask``: where it is)."""
        return class_information(self.fixed, classes(moving, mask, self.bins))


def class_information(fixed: np.ndarray, moving: np.ndarray) -> float:
    """Normalised mutual information minus 1 of two class images (:func:`classes`, -1 outside) over the
    pixels where both are inside, weighted by the square root of that fraction of the grid."""
    inside = (fixed >= 0) & (moving >= 0)
    if inside.sum() < MIN_OVERLAP * inside.size:
        return float("-inf")
    counts = np.zeros((int(fixed.max()) + 1, int(moving.max()) + 1, 1))
    np.add.at(counts[:, :, 0], (fixed[inside], moving[inside]), 1.0)
    return float(_nmi(counts)[0] * np.sqrt(inside.mean()))


def search(target: np.ndarray, source: np.ndarray, *, scale: float | None = None) -> tuple[list[Candidate], Candidate]:
    """The best :data:`KEEP` distinct hypotheses by mutual information (best first), and the identity scored alike.

    ``scale``: the known source/target pixel-size ratio; ``None`` searches scale 1 only (the
    scale of two modalities of unknown pixel sizes is left to the NCC searches). The images as
    given come first (rotated by one step either way): where their information over all shifts
    peaks at the identity, the pair is taken as delivered aligned and the other rotations are not
    searched (48 times cheaper; the pairs that reach this search are mostly near-aligned ones whose
    grey levels and edges kept the identity)."""
    level = Level.of(target, SIZE, blur=0.5)
    corr = MutualInformationCorrelator(level.image)
    s = float(scale) if scale else 1.0
    given = (0.0, ROTATION_STEP, 360.0 - ROTATION_STEP)
    found = sorted(_grid(corr, level, source, [(r, s, False) for r in given]), key=lambda f: -f[0])
    if not (found and _near_identity(found[0][1], target.shape)):
        # the information of the images as given (one rotation step either way) does not peak at the identity: every other rotation
        rest = [float(r) for r in np.arange(0.0, 360.0, ROTATION_STEP) if min(abs(r - g) for g in given) > 1e-6]
        found += _grid(corr, level, source, [(r, s, False) for r in rest])
    return ranked(found, corr, level, target.shape, source, keep=KEEP, distinct=DISTINCT, measure="mutual information")


def ranked(found: list, corr, level: Level, target_shape: tuple[int, int], source: np.ndarray, *, keep: int, distinct: float,
           measure: str) -> tuple[list[Candidate], Candidate]:
    """The best ``keep`` of a grid search's ``found`` hypotheses whose maps differ by more than ``distinct`` of the
    target's size (best first), and the identity scored by ``corr`` (a correlator with ``at``) on ``level``."""
    best = _distinct(found, target_shape, keep, min_px=distinct * max(target_shape))
    cands = [Candidate.from_matrix("similarity", a, v, measure=measure, search_score=v) for v, a, _, _, _ in best]
    src, ks = _reduced_source(source, level, 1.0)
    eye = np.eye(2, 3)
    return cands, Candidate.from_matrix("identity", eye, corr.at(*level.moved(src, eye, ks)), measure=measure)


def _near_identity(a: np.ndarray, shape: tuple[int, int], size: int = SIZE, at_identity_px: float = AT_IDENTITY_PX) -> bool:
    """Whether the map ``a`` lies within ``at_identity_px`` working pixels (of the ``size`` level) of the
    identity (at the target's corners and centre)."""
    k = Level.factor(shape, size)
    pts = _map_points(shape)
    return bool(np.abs(a @ pts - pts[:2]).max() <= at_identity_px * k + 0.5)


def decide(cands: list[Candidate], identity: Candidate, shape: tuple[int, int]) -> tuple[Candidate | None, str]:
    """The winner among ``cands`` (best first, from :func:`search`) by :data:`GAIN` over the identity
    and :data:`UNIQUE` over every different hypothesis, or ``None`` and why not."""
    return decide_by_ratio(cands, identity, shape, measure="mutual information", size=SIZE, gain=GAIN, unique=UNIQUE,
                           at_identity_px=AT_IDENTITY_PX)


def decide_by_ratio(cands: list[Candidate], identity: Candidate, shape: tuple[int, int], *, measure: str, size: int,
                    gain: float, unique: float, at_identity_px: float) -> tuple[Candidate | None, str]:
    """The winner among ``cands`` (best first; scores positive where the images agree) if it is not the
    identity itself (within ``at_identity_px`` working px of the ``size`` level), scores ``gain`` times
    the identity and ``unique`` times the next different hypothesis; else ``None`` and why not."""
    if not cands or not np.isfinite(cands[0].score) or cands[0].score <= 0:
        return None, f"{measure}: no hypothesis could be scored"
    best = cands[0]
    if _near_identity(best.matrix, shape, size, at_identity_px):
        return None, f"{measure} peaks at the identity ({best.score:.4f})"
    base = identity.score if np.isfinite(identity.score) else 0.0
    if best.score < gain * base:
        return None, f"{measure}: no hypothesis beats the identity {gain:g}x ({best.score:.4f} vs {base:.4f})"
    second = cands[1].score if len(cands) > 1 and np.isfinite(cands[1].score) else 0.0
    if best.score < unique * second:
        return None, f"{measure}: no unique winner ({best.score:.4f} vs a different hypothesis's {second:.4f}, needs {unique:g}x)"
    return best, (f"{measure} {best.score:.4f} beats the identity's {base:.4f} {gain:g}x and every different "
                  f"hypothesis {unique:g}x")


__all__ = ["BINS", "GAIN", "MutualInformationCorrelator", "class_information", "ROTATION_STEP", "SIZE", "UNIQUE", "classes", "decide",
           "decide_by_ratio", "ranked", "search"]
