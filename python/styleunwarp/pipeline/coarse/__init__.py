"""Coarse alignment before the elastic registration: scored hypotheses, identity kept unless beaten.

Each method is one module returning :class:`Candidate` hypotheses (2x3 maps from target
pixels to source pixels) scored by the NCC of the two representations, weighted
by the overlap (:mod:`.score`): ``similarity`` (rotation over the full circle, scale when the pixel sizes
do not give it, translation by FFT), ``affine`` (the best similarity refined to six
parameters). :func:`align` adds the identity (the images as delivered, after pixel-size
matching) and keeps it unless another hypothesis beats it by :data:`MARGIN`, reaches
:data:`MIN_SCORE` and leads every different hypothesis by :data:`DISTINCT_MARGIN`.
:mod:`.compose` re-expresses transforms found after the coarse step on the original source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .compose import compose_direct, inverse_through, warp_source
from .score import Level, reduce, weighted
from .similarity import REFINE_SIZE
from .types import Candidate

METHODS = ("auto", "none", "similarity", "affine")

MARGIN = 0.05
"""NCC a hypothesis must gain over the identity to replace it (absolute)."""

MARGIN_RELATIVE = 0.25
"""... and relative to the identity's NCC (the larger of the two applies)."""

DISTINCT_MARGIN = 0.06
"""Score by which the winner must beat every *different* hypothesis (one whose map differs by
more than 2 % of the target's size somewhere): a unique peak. Measured: every right winner
on as-delivered steel and shale led by 0.11 or more; a false match on a near-aligned CLEM
pair (rotated 154 deg, scaled 0.33x) led three unrelated hypotheses by 0.03."""

MIN_SCORE = 0.15
"""Score below which no hypothesis is credible (the best of thousands of unrelated ones reaches about 0.1)."""


@dataclass(frozen=True)
class CoarseResult:
    """The chosen start of the elastic registration, every candidate, and why."""

    method: str
    chosen: Candidate
    identity: Candidate
    candidates: list[Candidate] = field(default_factory=list)
    reason: str = ""

    @property
    def is_identity(self) -> bool:
        return self.chosen is self.identity

    def to_dict(self, target_shape: tuple[int, int] | None = None) -> dict:
        return {
            "method": self.method,
            "kept": "identity" if self.is_identity else self.chosen.method,
            "reason": self.reason,
            "chosen": self.chosen.to_dict(target_shape),
            "candidates": [self.identity.to_dict(target_shape)] + [c.to_dict(target_shape) for c in self.candidates],
        }


def _runner_up(best: Candidate, cands: list[Candidate], shape: tuple[int, int]) -> Candidate | None:
    """The best candidate whose map differs from ``best``'s by more than 2 % of the target's size."""
    h, w = shape
    pts = np.array([[0, w - 1, 0, w - 1], [0, 0, h - 1, h - 1], [1, 1, 1, 1]], np.float64)
    # an affine winner is the same hypothesis as the similarity it was refined from (and its duplicates)
    same = [best] + ([c for c in cands if c.extra.get("refined_to_affine")] if best.method == "affine" else [])
    others = [c for c in cands if all(np.abs(c.matrix @ pts - s.matrix @ pts).max() > 0.02 * max(shape) for s in same)]
    return max(others, key=lambda c: c.score, default=None)


def _beats(c: Candidate, identity: Candidate) -> bool:
    base = identity.score if np.isfinite(identity.score) else -1.0
    return bool(np.isfinite(c.score) and c.score >= MIN_SCORE and c.score - base >= max(MARGIN, MARGIN_RELATIVE * abs(base)))


def align(method: str, target: np.ndarray, source: np.ndarray, *, scale: float | None = None, mirror: bool = False) -> CoarseResult:
    """Coarse alignment of ``source`` (representation, any size) to ``target`` (representation).

    ``method``: ``"auto"`` (= ``"similarity"``), ``"none"``, ``"similarity"`` or ``"affine"``.
    ``scale`` is the known source/target pixel-size ratio (1 after pixel-size matching),
    ``None`` to search it. ``mirror`` adds mirrored hypotheses (samples mounted flipped).
    """
    if method not in METHODS:
        raise ValueError(f"coarse method must be one of {', '.join(METHODS)}, got {method!r}")
    level = Level.of(target, REFINE_SIZE)
    eye = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    ks = max(1.0, level.k)
    src = reduce(source, ks, (max(8, int(round(source.shape[0] / ks))), max(8, int(round(source.shape[1] / ks)))), level.blur)
    id_ncc, id_overlap = level.score(src, eye, ks)
    id_score = weighted(id_ncc, id_overlap)
    identity = Candidate.from_matrix("identity", eye, id_score)
    if method == "none":
        return CoarseResult("none", identity, identity, [], "coarse alignment off")
    if method == "affine":
        from .affine import search_affine

        cands = search_affine(target, source, scale=scale, mirror=mirror)
    else:
        from .similarity import search

        cands = search(target, source, scale=scale, mirror=mirror)
    best = cands[0] if cands else None
    if best is None:
        return CoarseResult(method, identity, identity, cands, "no hypothesis could be scored")
    second = _runner_up(best, cands, target.shape)
    gap = best.score - (second.score if second is not None else -np.inf)
    if not _beats(best, identity):
        reason = f"no hypothesis beats the identity by the margin (best {best.score:.3f} vs {id_score:.3f})"
    elif gap < DISTINCT_MARGIN:
        reason = f"no unique winner: the best hypothesis ({best.score:.3f}) leads a different one by only {gap:.3f}"
    else:
        reason = f"{best.method} NCC {best.score:.3f} beats the identity's {id_score:.3f} and every different hypothesis by the margins"
        return CoarseResult(method, best, identity, cands, reason)
    return CoarseResult(method, identity, identity, cands, reason)


__all__ = ["METHODS", "Candidate", "CoarseResult", "align", "compose_direct", "inverse_through", "warp_source"]
