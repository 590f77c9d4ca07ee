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

from dataclasses import dataclass, field, replace

import numpy as np

from .compose import compose_direct, invert_affine, inverse_through, warp_source
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

LOCAL_BASIN_PX = 3.0
"""The identity refined locally (:func:`.similarity.refine_identity`) is a candidate only where
refinements started 4 px away in each direction end within this many px of it
(:func:`.similarity.basin_px`, recorded as the candidate's ``basin_px``). Measured (docs/coarse.md): right refinements on foreign steel renderings met within
0.2-2.0 px; two that moved pairs away from the truth (7.1 -> 9.3 px, 8.7 -> 14.4 px) scattered
11-22 px along a flat ridge of the score."""

MIN_SCORE = 0.15
"""Score below which no hypothesis is credible (the best of thousands of unrelated ones reaches about 0.1)."""

UNBEATABLE = 1.0 / (1.0 + MARGIN_RELATIVE)
"""Identity score above which no hypothesis can beat it by the margins (scores are at most 1):
the search is skipped, with the same result it would have had."""

NEAR_CLEAR = 0.5
"""Score from which the best near-identity hypothesis (:func:`.similarity.search_near`: rotation
within 10 deg, the known scale or about 1) stands for the global search over the full circle
and every scale (5-8x cheaper), provided the identity itself is credible (scores at least
:data:`MIN_SCORE`: the pair is roughly aligned as delivered). Without that proviso a false
near-identity match on a texture seen rotated by 170 deg scored 0.55 (the truth 0.999);
right near-identity winners on synthetic pairs scored 0.67-0.98 (docs/coarse.md,
`benchmarks/bench_coarse.py`)."""


@dataclass(frozen=True)
class CoarseResult:
    """The chosen start of the elastic registration, every candidate, and why."""

    method: str
    chosen: Candidate
    identity: Candidate
    candidates: list[Candidate] = field(default_factory=list)
    reason: str = ""
    search: str = "global"
    """``"near"`` (the near-identity search found a clear peak), ``"global"`` (full circle and
    scales), ``"near-fallback"`` (the global search found no unique winner; the near-identity
    search's best won by the same margins), ``"unit-scale-fallback"`` (the scale was searched and the
    global search found no winner; its hypotheses at scale 1 alone gave one by the same margins),
    ``"local"`` (no search found a winner; the identity
    refined locally won by the margins), ``"mutual information"`` (:func:`align_by_mutual_information`),
    ``"structure"`` (:func:`align_by_structure`), ``"skipped"`` (the identity could not be beaten) or ``"off"``."""
    confirmation: dict | None = None
    """The structure check of the winner (:func:`.confirm.confirm`), when one ran."""

    @property
    def is_identity(self) -> bool:
        return self.chosen is self.identity

    def to_dict(self, target_shape: tuple[int, int] | None = None) -> dict:
        return {
            "method": self.method,
            "kept": "identity" if self.is_identity else self.chosen.method,
            "reason": self.reason,
            "search": self.search,
            **({"confirmation": self.confirmation} if self.confirmation else {}),
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


def inverted(image: np.ndarray) -> np.ndarray:
    """``image`` with its grey scale reversed (same range): the other polarity of a detector."""
    a = np.asarray(image, np.float32)
    return (float(a.max()) + float(a.min()) - a).astype(np.float32)


def _hypotheses(method: str, target: np.ndarray, source: np.ndarray, scale: float | None, mirror: bool,
                near_first: bool) -> tuple[list[Candidate], str, list[Candidate]]:
    """The method's hypotheses, best first, which search gave them (``"near"`` or ``"global"``),
    and the near-identity hypotheses that did not stand for the global search (else ``[]``)."""
    near: list[Candidate] = []
    if near_first:
        from .similarity import search_near

        near = search_near(target, source, scale=scale)
    clear = bool(near) and near[0].score >= NEAR_CLEAR
    if method == "affine":
        from .affine import search_affine

        return (search_affine(target, source, scale=scale, mirror=mirror, similarity=near if clear else None),
                "near" if clear else "global", [] if clear else near)
    if clear:
        return near, "near", []
    from .similarity import search

    return search(target, source, scale=scale, mirror=mirror), "global", near


def _unit_scale_hypotheses(method: str, target: np.ndarray, sources: list[tuple[np.ndarray, bool]], mirror: bool,
                           order) -> list[Candidate]:
    """The global search's hypotheses with the scale fixed at 1 (every rotation and shift), for each
    polarity searched, best first: what :func:`align` judges when the search over every scale found no
    winner (``search = "unit-scale-fallback"``)."""
    out: list[Candidate] = []
    for img, inv in sources:
        out += _marked(_hypotheses(method, target, img, 1.0, mirror, False)[0], inv)
    return sorted(out, key=order)


def _marked(cands: list[Candidate], inverted: bool) -> list[Candidate]:
    """``cands``, each saying ``inverted`` when they were found on the source's reversed grey scale."""
    return [replace(c, extra={**c.extra, "inverted": True}) for c in cands] if inverted else cands


def _decide(cands: list[Candidate], identity: Candidate, shape: tuple[int, int]) -> tuple[Candidate | None, str]:
    """The winner among ``cands`` (best first) by the margins over the identity and every different
    hypothesis, or ``None`` and why not."""
    best = cands[0]
    second = _runner_up(best, cands, shape)
    gap = best.score - (second.score if second is not None else -np.inf)
    if not _beats(best, identity):
        return None, f"no hypothesis beats the identity by the margin (best {best.score:.3f} vs {identity.score:.3f})"
    if gap < DISTINCT_MARGIN:
        return None, f"no unique winner: the best hypothesis ({best.score:.3f}) leads a different one by only {gap:.3f}"
    if best.extra.get("inverted"):
        return best, f"{best.method} NCC {best.score:.3f} with the source's grey scale reversed beats the identity's {identity.score:.3f} and every different hypothesis by the margins"
    return best, f"{best.method} NCC {best.score:.3f} beats the identity's {identity.score:.3f} and every different hypothesis by the margins"


def align(method: str, target: np.ndarray, source: np.ndarray, *, scale: float | None = None, mirror: bool = False,
          shortcut: bool = True, confirm_structure: bool = True, polarity: str = "same",
          search_on: tuple[np.ndarray, np.ndarray] | None = None, refine_local: bool = True,
          unit_scale: bool = True) -> CoarseResult:
    """Coarse alignment of ``source`` (representation, any size) to ``target`` (representation).

    ``method``: ``"auto"`` (= ``"similarity"``), ``"none"``, ``"similarity"`` or ``"affine"``.
    ``scale`` is the known source/target pixel-size ratio (1 after pixel-size matching),
    ``None`` to search it. ``mirror`` adds mirrored hypotheses (samples mounted flipped).
    With ``shortcut`` (default) the search is skipped when the identity scores above
    :data:`UNBEATABLE`; when the identity is credible (at least :data:`MIN_SCORE`) a
    near-identity search runs first and, when its best scores at least :data:`NEAR_CLEAR`,
    stands for the global one (``shortcut=False``: always the global search, the behaviour
    before the shortcut). With ``confirm_structure`` (default) a winner must also be confirmed
    by local structure (:mod:`.confirm`: MIND-SSC agreement above the identity's and far above
    chance); ``False`` gives the NCC-only choice of earlier versions. ``polarity="either"``
    (raw images of two detectors, whose contrast may be reversed) also searches the source with
    its grey scale reversed (:func:`inverted`; such candidates say ``inverted``), the identity
    scoring its better polarity. ``search_on``: the ``(target, source)`` images the hypotheses
    are searched and scored on, if not these two (e.g. their edge strength,
    :func:`styleunwarp.structure.edge_strength`, for raw images of two modalities whose grey
    levels gave nothing); the structure confirmation always compares ``target`` and ``source``
    themselves. With ``refine_local`` (default), when no hypothesis wins, the identity refined
    locally (:func:`.similarity.refine_identity`: rotation and shift), where refinements from starts
    4 px away meet it within :data:`LOCAL_BASIN_PX`, is judged by the same margins
    over the identity and confirmed by structure, gaining at least :data:`.confirm.LOCAL_GAIN_SDS` chance
    spreads of agreement over the identity (``search = "local"``); ``False``: the behaviour before.
    With ``unit_scale`` (default), where the scale was searched (``scale=None``) and the global search
    found no winner, its hypotheses at scale 1 alone are judged by the same margins and confirmed by
    structure before the local refinement (``search = "unit-scale-fallback"``).
    """
    if polarity not in ("same", "either"):
        raise ValueError(f"polarity must be 'same' or 'either', got {polarity!r}")
    if method not in METHODS:
        raise ValueError(f"coarse method must be one of {', '.join(METHODS)}, got {method!r}")
    confirm_target, confirm_source = target, source
    if search_on is not None:
        target, source = search_on
    level = Level.of(target, REFINE_SIZE)
    eye = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    ks = max(1.0, level.k)
    sources = [(source, False)] + ([(inverted(source), True)] if polarity == "either" else [])
    id_scores = []
    for img, _ in sources:
        src = reduce(img, ks, (max(8, int(round(img.shape[0] / ks))), max(8, int(round(img.shape[1] / ks)))), level.blur)
        id_scores.append(weighted(*level.score(src, eye, ks)))
    id_score = max(id_scores, key=lambda v: v if np.isfinite(v) else -np.inf)
    identity = Candidate.from_matrix("identity", eye, id_score)
    if method == "none":
        return CoarseResult("none", identity, identity, [], "coarse alignment off", "off")
    if shortcut and id_score > UNBEATABLE:
        return CoarseResult(method, identity, identity, [], f"the identity scores {id_score:.3f}: no hypothesis can beat it by the margins (search skipped)", "skipped")
    cands, searches, near = [], [], []
    for (img, inv), own_id_score in zip(sources, id_scores):
        found, how, unclear = _hypotheses(method, target, img, scale, mirror, shortcut and own_id_score >= MIN_SCORE)
        cands += _marked(found, inv)
        near += _marked(unclear, inv)
        searches.append(how)
    order = (lambda c: -c.score if np.isfinite(c.score) else np.inf)
    cands.sort(key=order)
    near.sort(key=order)
    searched = "near" if all(h == "near" for h in searches) else "global"
    if not cands:
        return CoarseResult(method, identity, identity, cands, "no hypothesis could be scored", searched)
    best, reason = _decide(cands, identity, target.shape)
    if best is None and near:
        # A global search over every rotation and scale that finds no unique winner does not cancel
        # what the near-identity search found: its best is judged by the same margins among the
        # near hypotheses (and confirmed by structure below).
        near_best, near_reason = _decide(near, identity, target.shape)
        if near_best is not None:
            best, searched = near_best, "near-fallback"
            cands = sorted(cands + near, key=order)
            reason = f"{near_reason} (the global search: {reason})"
        else:
            reason = f"{reason}; near the identity: {near_reason}"
    if best is None and unit_scale and scale is None and "global" in searches:
        # Without pixel sizes the global search fits the scale too; a source magnified a few times
        # is smooth, and junk hypotheses there can outscore and crowd the map at scale 1 (seen on
        # shale patches rotated 18 deg: three junk maps at 0.22-0.29x led one another by 0.009,
        # where the search at scale 1 alone found a unique winner 2.1 px from the truth).
        # As for the near-identity search, an ambiguous search over every scale does not
        # cancel a clear finding at the unit scale: judged by the same margins among the unit-scale
        # hypotheses and confirmed by structure; one that structure refuses leaves the identity to
        # be refined locally, as if no search had found anything.
        unit = _unit_scale_hypotheses(method, target, sources, mirror, order)
        unit_best, unit_reason = _decide(unit, identity, target.shape) if unit else (None, "no hypothesis could be scored")
        unit_ok = unit_best is not None
        if unit_ok and confirm_structure:
            from .confirm import confirm

            unit_ok, unit_facts = confirm(confirm_target, confirm_source, unit_best)
            if not unit_ok:
                unit_reason = f"{unit_reason}, but {unit_facts['reason']}"
        if unit_ok:
            best, searched = unit_best, "unit-scale-fallback"
            cands = sorted(cands + unit, key=order)
            reason = f"{unit_reason} (at scale 1; the search over every scale: {reason})"
        else:
            reason = f"{reason}; at scale 1: {unit_reason}"
    if best is None and refine_local:
        # No hypothesis stands out among distant ones; the images as delivered may still be a few
        # pixels and degrees off: the identity refined locally, by the same margins (no unique-peak
        # test: it is reached continuously from the identity, not chosen among distant maps).
        from .similarity import basin_px, refine_identity

        local = refine_identity(target, source)
        spread = basin_px(target, source, local) if _beats(local, identity) else None  # four more refinements only where it could win
        if spread is None:
            reason = f"{reason}; refined locally, the identity reaches only {local.score:.3f}"
        elif spread > LOCAL_BASIN_PX:
            reason = (f"{reason}; refined locally, the identity reaches {local.score:.3f} on a flat ridge (starts 4 px "
                      f"apart end {spread:.1f} px apart)")
        else:
            local = replace(local, extra={**local.extra, "basin_px": spread})
            best, searched = local, "local"
            cands = sorted(cands + [local], key=order)
            reason = (f"{reason}; the identity refined locally (rotation and shift): NCC {local.score:.3f} beats the "
                      f"identity's {identity.score:.3f} by the margins")
    if best is None:
        return CoarseResult(method, identity, identity, cands, reason + _searched(searched), searched)
    if confirm_structure:
        from .confirm import LOCAL_GAIN_SDS, confirm

        if searched == "unit-scale-fallback":  # confirmed above
            ok, facts = True, unit_facts
        else:
            ok, facts = confirm(confirm_target, confirm_source, best, LOCAL_GAIN_SDS if searched == "local" else 0.0)
        if not ok:
            return CoarseResult(method, identity, identity, cands, f"{reason}, but {facts['reason']}: identity kept" + _searched(searched),
                                searched, facts)
        return CoarseResult(method, best, identity, cands, f"{reason}; {facts['reason']}" + _searched(searched), searched, facts)
    return CoarseResult(method, best, identity, cands, reason + _searched(searched), searched)


def align_by_mutual_information(target: np.ndarray, source: np.ndarray, *, scale: float | None = None) -> CoarseResult:
    """Coarse alignment of raw images of two modalities by mutual information (:mod:`.mutual`).

    Hypotheses over the full circle at the known ``scale`` (else 1), ranked by normalised mutual
    information over every shift; the best replaces the identity only if it carries
    :data:`.mutual.GAIN` times the identity's information and :data:`.mutual.UNIQUE` times every
    different hypothesis's, and is confirmed by structure (MIND-SSC, :mod:`.confirm`) as every
    coarse winner. For the third stage of a raw chain's search (``pipeline.chain.coarse_alignment``)."""
    from . import mutual

    return _align_by(mutual, "mutual information", target, source, scale)


def align_by_structure(target: np.ndarray, source: np.ndarray, *, scale: float | None = None) -> CoarseResult:
    """Coarse alignment of raw images of two modalities by their local structure (:mod:`.mind`).

    Hypotheses over the full circle at the known ``scale`` (else 1), ranked by the NCC of MIND-SSC
    descriptors over every shift; the best replaces the identity only if it scores
    :data:`.mind.GAIN` times the identity and :data:`.mind.UNIQUE` times every different
    hypothesis; it is then refined locally by the same measure on a finer level
    (:func:`.mind.refine`: the search places maps only to a working pixel and 1.25 deg), and
    confirmed by structure (:mod:`.confirm`) as every coarse winner: at full
    resolution or, where the shared structure is coarse (chromatin patches against an EM image's
    fine texture), with descriptors at the resolution the search ran at
    (:func:`.mind.search_factor`). Whether it replaces the identity is decided on the search's map;
    the refined map is used where it is confirmed too. For the last stage of a raw chain's search (``pipeline.chain.coarse_alignment``)."""
    from . import mind

    return _align_by(mind, "structure", target, source, scale, confirm_factor=mind.search_factor(target.shape),
                     refine=mind.refine)


def _align_by(module, search_name: str, target: np.ndarray, source: np.ndarray, scale: float | None,
              confirm_factor: int | None = None, refine=None) -> CoarseResult:
    """A search ``module`` (``search`` and ``decide``) as a coarse step: its winner confirmed by structure
    (:func:`.confirm.confirm`; with ``confirm_factor``, the scale the search saw the structure at, as its
    ``coarse_factor``). ``refine(target, source, winner, scale=)``: a local refinement of a confirmed
    winner, used where it is confirmed too."""
    from .confirm import confirm

    cands, identity = module.search(target, source, scale=scale)
    best, reason = module.decide(cands, identity, target.shape)
    if best is None:
        return CoarseResult("similarity", identity, identity, cands, reason, search_name)
    ok, facts = confirm(target, source, best, coarse_factor=confirm_factor)
    if not ok:
        return CoarseResult("similarity", identity, identity, cands, f"{reason}, but {facts['reason']}: identity kept", search_name, facts)
    reason = f"{reason}; {facts['reason']}"
    if refine is not None:
        # whether the search's map replaces the identity is decided above; the refinement only places it
        refined = refine(target, source, best, scale=scale)
        ok, refined_facts = confirm(target, source, refined, coarse_factor=confirm_factor)
        moved = _map_distance(best.matrix, refined.matrix, target.shape)
        if not ok:
            return CoarseResult("similarity", best, identity, cands, f"{reason}; its local refinement (moved up to {moved:.1f} px) "
                                f"not confirmed: {refined_facts['reason']}", search_name, facts)
        return CoarseResult("similarity", refined, identity, [refined] + cands,
                            f"{reason}; refined locally (moved up to {moved:.1f} px): {refined_facts['reason']}", search_name, refined_facts)
    return CoarseResult("similarity", best, identity, cands, reason, search_name, facts)


def _map_distance(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> float:
    """Largest distance (px) between the maps ``a`` and ``b`` at the target's corners and centre."""
    from .similarity import _map_points

    pts = _map_points(shape)
    return float(np.hypot(*((a - b) @ pts)).max())


def _searched(searched: str) -> str:
    if searched == "near":
        return f" (near-identity search: clear peak >= {NEAR_CLEAR}, global search skipped)"
    if searched == "near-fallback":
        return " (near-identity search, after a global search without a unique winner)"
    if searched == "unit-scale-fallback":
        return " (the global search at scale 1 alone, after a search over every scale without a unique winner)"
    if searched == "local":
        return " (the identity refined locally, after searches without a unique winner)"
    return ""


__all__ = ["METHODS", "Candidate", "CoarseResult", "align", "align_by_mutual_information", "align_by_structure", "inverted", "compose_direct", "invert_affine", "inverse_through", "warp_source"]
