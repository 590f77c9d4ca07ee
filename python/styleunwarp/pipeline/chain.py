"""The registration chain after the representation: coarse alignment -> elastic -> never worse.

:func:`register_representations` is the one place this sequence lives: ``register`` /
``batch`` (:func:`~styleunwarp.pipeline.pair.register_pair`) run it on the two represented
images, and ``train --target auto`` (:func:`styleunwarp.style.auto.evaluate`) scores every
candidate chain by running it on deformed held-out pairs, so the chain chosen is measured as
``register --model M`` runs it: coarse alignment (:mod:`.coarse`, the identity kept unless
beaten), the elastic backend (optionally with a blurred first pass), the keep-or-undo rule
(:func:`keep_or_undo`), and the composition of the elastic result with the coarse map.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..quality import ncc, transform_stats
from ..registration import BUnwarpJParams, Registration, register
from ..transform import ElasticTransform, identity_elastic, warp_image
from .coarse import CoarseResult, compose_direct, inverse_through, warp_source
from .coarse import align as coarse_align

COARSE_SIGMA_FOR_EDGES = 0.0
"""Blur (px) of a first pass when registering boundary maps; 0 = one pass on the sharp maps.

Measured (docs/study-table.md, ``benchmarks/bench_styled_defaults.py``): behind the coarse
alignment step, one pass is more accurate than a 3 px blurred pass first, on the tuning sets
(varied LOM looks) and held out (real-CBS renderings), and twice as fast. The two-pass
registration (``--coarse-sigma``) was needed before the coarse step existed."""

ELASTIC_MARGIN = 0.06
"""NCC the elastic result must gain over its start to be kept. Measured (docs/quality.md) on
9 as-delivered steel renderings, where the coarse start was already 0.2-0.8 px from the
truth and bUnwarpJ gained 0.007-0.056 NCC while making every one worse (0.55-4.95 px), and
3 near-aligned ones with 1.5-2 px of residual elastic deformation, where it gained
0.055-0.068 and improved two of them."""

ELASTIC_MAX_INCONSISTENCY = 0.75
"""Direct/inverse disagreement (px) above which an elastic result is not trusted (Accurate mode).
Elastic results that helped measured 0.37-0.64 px; two that made pairs worse 1.05 px."""


@dataclass(frozen=True)
class ChainOutcome:
    """What the chain found, on the representation grids (before any pixel-size matching is undone)."""

    direct: ElasticTransform
    """Target pixel -> source (representation) pixel, the coarse map composed in."""
    inverse: ElasticTransform | None
    """Source pixel -> target pixel (``None`` in Mono mode)."""
    moved: np.ndarray
    """The source representation on the target grid as finally compared (coarse + kept elastic)."""
    coarse: CoarseResult
    registration: Registration
    """The backend's raw result (on the coarsely aligned source), whether kept or not."""
    elastic: dict
    """The keep-or-undo facts (:func:`keep_or_undo`)."""
    coarse_seconds: float


def default_coarse_sigma(kind: str | None) -> float:
    """The blurred first pass a representation gets when nobody chose one: :data:`COARSE_SIGMA_FOR_EDGES` for boundary maps, else off."""
    return COARSE_SIGMA_FOR_EDGES if kind == "edges" else 0.0


def keep_or_undo(target: np.ndarray, moving: np.ndarray, reg: Registration) -> tuple[ElasticTransform, ElasticTransform | None, np.ndarray, dict]:
    """Never worse than the start: keep the elastic result only if the representations agree clearly better.

    Compares the NCC of the target representation with the coarse start and with the
    elastic result over the pixels both cover (its magnitude when both are negative: a
    contrast-inverted pair, ``facts["polarity"] = "inverted"``); the elastic result must gain
    :data:`ELASTIC_MARGIN` (bUnwarpJ fits mismatched details of two representations too,
    which raises the NCC a little while moving the image away from the truth) and, when it
    has an inverse, its direct and inverse maps must agree within :data:`ELASTIC_MAX_INCONSISTENCY`. Returns ``(direct, inverse, moved, facts)``;
    when the elastic result is worse, the identity on the start replaces it.
    """
    moved = warp_image(moving, reg.direct, target.shape)
    start_inside = moving != 0
    common = start_inside & (moved != 0)
    before = ncc(moving, target, common)
    after = ncc(moved, target, common)
    if np.isfinite(before) and np.isfinite(after) and before < 0 and after < 0:
        # contrast inverted between the two images (raw images of two detectors): better alignment
        # makes the correlation more negative, so the rule compares its magnitude
        before, after = -before, -after
        polarity, label = "inverted", "|NCC|"
    else:
        polarity, label = "same", "NCC"
    consistency = None if reg.inverse is None else transform_stats(reg.direct, target.shape, target.shape, reg.inverse).consistency_error
    facts = {"ncc_start": before, "ncc_elastic": after, "consistency_px": consistency, "polarity": polarity}
    consistent = consistency is None or consistency <= ELASTIC_MAX_INCONSISTENCY
    if np.isfinite(after) and consistent and (not np.isfinite(before) or after >= before + ELASTIC_MARGIN):
        facts.update(kept="elastic", reason=f"the elastic result agrees better with the target than its start ({label} {before:.3f} -> {after:.3f})")
        return reg.direct, reg.inverse, moved, facts
    n = reg.direct.intervals
    why = (
        f"its direct and inverse transforms disagree by {consistency:.2f} px (> {ELASTIC_MAX_INCONSISTENCY})"
        if not consistent
        else f"it does not agree clearly better with the target than its start ({label} {before:.3f} -> {after:.3f}, needs +{ELASTIC_MARGIN})"
    )
    facts.update(kept="start", reason=f"elastic result not trusted: {why}; kept the start")
    inverse = None if reg.inverse is None else identity_elastic(reg.inverse.intervals, target.shape)
    return identity_elastic(n, target.shape), inverse, moving, facts


def register_representations(
    target: np.ndarray,
    source: np.ndarray,
    params: BUnwarpJParams,
    *,
    backend: str = "bunwarpj",
    backend_options: dict | None = None,
    coarse: str = "auto",
    coarse_sigma: float = 0.0,
    scale_known: bool = False,
    coarse_result: CoarseResult | None = None,
) -> ChainOutcome:
    """Register the source representation to the target representation as ``register`` does.

    ``coarse`` is the coarse-alignment method (:data:`.coarse.METHODS`); ``scale_known``
    (both pixel sizes known, the source already on the target's pixel size) fixes its scale
    at 1, else the scale is searched. ``coarse_sigma`` (px) is the backend's blurred first
    pass (0: off). ``backend_options`` are the backend's keyword arguments (e.g.
    ``fiji_dir``, ``similarity``). ``coarse_result``: the coarse alignment of these same two
    images, already computed (it does not depend on the backend: ``train --target auto``
    reuses it across the backends of one representation). The result's transforms refer to
    ``source``'s grid.
    """
    t0 = time.perf_counter()
    if coarse_result is None:
        coarse_result = coarse_align(coarse, target, source, scale=1.0 if scale_known else None)
    coarse_seconds = time.perf_counter() - t0
    a = coarse_result.chosen.matrix
    moving = warp_source(source, a, target.shape)
    reg = register(target, moving, params, backend=backend, coarse_sigma=coarse_sigma, **(backend_options or {}))
    direct, inverse, moved, elastic = keep_or_undo(target, moving, reg)
    direct = compose_direct(direct, a)
    if inverse is not None:
        inverse = inverse_through(inverse, a, source.shape[:2], target.shape)
    return ChainOutcome(direct, inverse, moved, coarse_result, reg, elastic, coarse_seconds)


__all__ = [
    "COARSE_SIGMA_FOR_EDGES",
    "ELASTIC_MARGIN",
    "ELASTIC_MAX_INCONSISTENCY",
    "ChainOutcome",
    "default_coarse_sigma",
    "keep_or_undo",
    "register_representations",
]
