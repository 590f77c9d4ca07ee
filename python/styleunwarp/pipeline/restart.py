"""A second elastic pass from the affine part of a first pass that was clearly better but not consistent.

When the coarse step misses a start several pixels off, bUnwarpJ's own coarse-to-fine pyramid
often finds it anyway, but the direct and inverse maps of such a long way disagree by more than
the keep rule accepts (:data:`~styleunwarp.pipeline.chain.ELASTIC_MAX_INCONSISTENCY`), so the
result was undone and the pair left where the coarse step put it. Where that first pass gained
strongly in edge agreement (:data:`RESTART_GAIN_FACTOR` times the keep rule's margin: evidence
that the start was wrong, not a fit of details), its least-squares affine part is taken as a
coarse hypothesis, confirmed by local structure exactly as every coarse winner is
(:func:`styleunwarp.pipeline.coarse.confirm.confirm`: MIND-SSC agreement better than at the
start and far above chance), and the elastic step runs again from it; the keep rule then judges
that second pass against its own start. Measured (docs/coarse.md, "A second pass from an
inconsistent first pass").
"""

from __future__ import annotations

import numpy as np

from ..transform import ElasticTransform, to_dense
from .coarse.confirm import confirm
from .coarse.types import Candidate

RESTART_GAIN_FACTOR = 10.0
"""How many times the keep rule's gradient margin a first pass refused for inconsistency must
gain for its affine part to be tried as a new start. Measured on the shipped model's boundary
maps (``benchmarks/bench_styled_defaults.py`` rows of 100 steel pairs): every refused pass that
gained at least 0.005 (10 x 0.0005) had started 3.8-10 px off; near-aligned pairs whose first
pass was refused gained at most 0.0006."""


def affine_part(direct: ElasticTransform, shape: tuple[int, int]) -> np.ndarray | None:
    """The least-squares affine map (2x3, target pixel -> moving pixel) of ``direct`` over the
    target pixels it maps inside an image of ``shape``; None when fewer than a quarter do."""
    m = to_dense(direct, shape)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (m[0] >= 0) & (m[0] <= w - 1) & (m[1] >= 0) & (m[1] <= h - 1)
    if inside.sum() < 0.25 * h * w:
        return None
    design = np.stack([xx[inside], yy[inside], np.ones(int(inside.sum()))], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, np.stack([m[0][inside], m[1][inside]], 1).astype(np.float64), rcond=None)
    return coef.T


def warrants_restart(facts: dict) -> bool:
    """Whether keep-or-undo facts describe a first pass refused only because its maps disagree,
    while its edges gained at least :data:`RESTART_GAIN_FACTOR` times the margin."""
    if facts.get("kept") != "start" or facts.get("refused") != "inconsistent":
        return False
    before, after, margin = facts.get("gradient_start"), facts.get("gradient_elastic"), facts.get("gradient_margin")
    if before is None or after is None or margin is None or not (np.isfinite(before) and np.isfinite(after)):
        return False
    return after - before >= RESTART_GAIN_FACTOR * margin


def restart_start(reference: np.ndarray, moving: np.ndarray, direct: ElasticTransform) -> tuple[np.ndarray | None, dict]:
    """The confirmed affine part of a first pass (2x3, target pixel -> ``moving`` pixel), or None, and the facts.

    ``reference``: the target image the coarse step and the checks read; ``moving``: the source
    at the first pass's start, on the target grid; ``direct``: the first pass's direct map.
    """
    a = affine_part(direct, reference.shape)
    if a is None:
        return None, {"confirmed": False, "reason": "the first pass maps too little of the target inside the image"}
    winner = Candidate.from_matrix("affine part of the first elastic pass", a, float("nan"))
    ok, facts = confirm(reference, moving, winner)
    return (a if ok else None), {"confirmed": ok, "affine": winner.to_dict(reference.shape), "confirmation": facts,
                                 "reason": facts["reason"]}


__all__ = ["RESTART_GAIN_FACTOR", "affine_part", "restart_start", "warrants_restart"]
