"""Affine hypothesis: the best similarity hypothesis refined with all six affine parameters.

For acquisitions with a little shear or anisotropic scale (a tilted specimen, a scanner
with unequal x/y pixel sizes). The search itself is :mod:`.similarity`'s.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import optimize

from .score import Level, reduce, weighted
from .similarity import REFINE_SIZE, search
from .types import Candidate


def refine_affine(target: np.ndarray, source: np.ndarray, start: Candidate) -> Candidate:
    """Maximise the NCC over the six affine parameters from ``start``'s map."""
    level = Level.of(target, REFINE_SIZE)
    ks = max(1.0, level.k * start.scale)
    src = reduce(source, ks, (max(8, int(round(source.shape[0] / ks))), max(8, int(round(source.shape[1] / ks)))), level.blur)
    h, w = target.shape
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    a0 = start.matrix
    step = level.k * start.scale

    def build(p: np.ndarray) -> np.ndarray:
        lin = a0[:, :2] @ (np.eye(2) + p[:4].reshape(2, 2))
        t = a0 @ np.append(c, 1.0) + p[4:] - lin @ c  # p[4:] moves the image of the target centre
        return np.hstack([lin, t[:, None]])

    def cost(p: np.ndarray) -> float:
        v, frac = level.score(src, build(p), ks)
        return 1.0 - (weighted(v, frac) if np.isfinite(v) else -1.0)

    simplex = np.vstack([np.zeros(6), np.diag([0.03, 0.03, 0.03, 0.03, 2 * step, 2 * step])])
    res = optimize.minimize(cost, np.zeros(6), method="Nelder-Mead", options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-4, "maxfev": 200})
    return Candidate.from_matrix("affine", build(res.x), 1.0 - float(res.fun), mirrored=start.mirrored)


def search_affine(target: np.ndarray, source: np.ndarray, *, scale: float | None = None, mirror: bool = False,
                  similarity: list[Candidate] | None = None) -> list[Candidate]:
    """The similarity hypotheses (``similarity``, else :func:`.similarity.search`'s), plus the best one refined to an affine map."""
    sims = similarity if similarity is not None else search(target, source, scale=scale, mirror=mirror)
    if not sims:
        return []
    # the similarity the affine map was refined from is the same hypothesis, not a rival
    seed = replace(sims[0], extra={**sims[0].extra, "refined_to_affine": True})
    return sorted([seed, *sims[1:], refine_affine(target, source, sims[0])], key=lambda c: -c.score)
