"""A second opinion on a coarse winner, by local structure.

The coarse search ranks hypotheses by the NCC of the two images, which a false match can win:
on raw images of two detectors (see :mod:`styleunwarp.structure`), and on a representation that
does not fit the modality (the shipped steel model on CLEM). A hypothesis that beat the
identity by NCC replaces it only if the MIND-SSC descriptors of the two images agree too:
better than at the identity, and far above chance (:data:`Z_MIN` standard deviations of the
agreement at large shifts). Measured (docs/coarse.md): on raw images
(``benchmarks/bench_raw_checks.py``) a false match on a CLEM pair reached z = 3.3, one on steel
agreed worse than the identity, three imprecise winners on near-aligned shale pairs agreed
worse than the identity, every right winner on shale reached z >= 7; on the shipped model's
representations, a false match on CLEM (14 px -> 784 px) reached z = 2.2 and agreed worse than
the identity, while the right winners on 8 as-delivered steel pairs (z 12-25) and 4 shale pairs
(z 6.4-12.6) were all confirmed.

The winner's gain over the identity is also measured on the pixels both maps cover, tile by tile
(:func:`styleunwarp.structure.paired_gain`): it must reach :data:`PAIRED_T_MIN` of its standard
errors, so a gain that half the image makes and the other half undoes does not replace the identity.
"""

from __future__ import annotations

import numpy as np

from ...structure import SD_FLOOR, Z_MIN, agreement_and_chance, analysis_factor, descriptors, paired_gain, significance
from .compose import warp_source
from .types import Candidate


LOCAL_GAIN_SDS = 2.0
"""A winner refined locally from the identity (:func:`.similarity.refine_identity`, a few pixels
and degrees away from it) must also agree better than the identity by this many chance spreads:
its MIND agreement differs little from the identity's, so "better" alone can be noise. Measured on
blind/lom3 steel renderings through the shipped model (docs/coarse.md): the refinements that were
right gained 2.7 and 5.4 spreads (7.8 -> 2.4 px, 11.1 -> 1.7 px); the one that moved a pair from
7.1 to 9.3 px gained 0.8."""


PAIRED_T_MIN = 0.5
"""On the pixels both maps cover, the winner's agreement gain over the identity must reach this
many of its standard errors across tiles (:func:`styleunwarp.structure.paired_gain`): a gain
that some parts of the image make and others undo is no evidence that the winner is the better
map. Measured (docs/coarse.md, "A gain the whole image makes"; ``benchmarks/bench_coarse_confirm.py``,
seeds 39-41): the two winners that moved pairs farther from the truth (a raw steel pair 1.53 ->
4.06 px, a raw shale pair 4.07 -> 4.52 px) reached t = 0.1 and 0.0, every winner that moved a pair
more than 0.25 px closer reached at least 0.2 and all but two at least 0.9."""


def decide(facts: dict, min_gain_sds: float = 0.0, paired_t_min: float = PAIRED_T_MIN) -> tuple[bool, bool, bool]:
    """``(better, consistent, confirmed)`` from the numbers :func:`confirm` records: the winner's
    agreement exceeds the identity's by ``min_gain_sds`` chance spreads, its paired gain reaches
    ``paired_t_min`` standard errors (not asked where too few tiles are left), and both hold with
    the agreement :data:`Z_MIN` chance spreads above chance. Benchmarks replay other bounds with it."""
    s_id, s_win, sd, z, t = (facts[k] for k in ("mind_identity", "mind_winner", "mind_chance_sd", "z", "paired_t"))
    need = min_gain_sds * sd if np.isfinite(sd) else 0.0
    better = bool(np.isfinite(s_win) and (not np.isfinite(s_id) or s_win > s_id + need))
    consistent = bool(not np.isfinite(t) or t >= paired_t_min)
    return better, consistent, bool(better and consistent and np.isfinite(z) and z >= Z_MIN)


def confirm(target: np.ndarray, source: np.ndarray, winner: Candidate, min_gain_sds: float = 0.0,
            coarse_factor: int | None = None, start: np.ndarray | None = None) -> tuple[bool, dict]:
    """Whether ``winner`` (a map from target to source pixels) is confirmed by structure, and the numbers.

    ``start``: the 2x3 map the winner must beat (default the identity; the facts call it
    ``identity`` either way).
    ``min_gain_sds``: how many chance spreads its agreement must exceed the identity's by
    (:data:`LOCAL_GAIN_SDS` for a local refinement of the identity; 0: merely higher).
    ``coarse_factor``: where the winner is not confirmed at full resolution
    (:func:`styleunwarp.structure.analysis_factor`), it may be with descriptors block-averaged by this
    factor (a search that saw the shared structure at that scale); the facts then say so, with the
    full-resolution numbers under ``full_resolution``."""
    eye = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) if start is None else np.asarray(start, np.float64)[:2]
    at_identity = warp_source(source, eye, target.shape)
    moved = warp_source(source, winner.matrix, target.shape)
    full = analysis_factor(target.shape)
    ok, facts = _confirm_at(target, at_identity, moved, full, min_gain_sds)
    if ok or not coarse_factor or coarse_factor <= full:
        return ok, facts
    ok_coarse, coarse = _confirm_at(target, at_identity, moved, coarse_factor, min_gain_sds)
    if not ok_coarse:
        return ok, facts
    return True, {**coarse, "reason": f"{coarse['reason']} with descriptors at 1/{coarse_factor} resolution (at full resolution: {facts['reason']})",
                  "full_resolution": facts}


def confirm_placements(target: np.ndarray, at_start: np.ndarray, moved: np.ndarray, min_gain_sds: float = 0.0) -> tuple[bool, dict]:
    """:func:`confirm` for a source already placed on ``target``'s grid two ways, by any map (an
    elastic result against its start, 0 outside the source): whether the ``moved`` placement is
    confirmed by structure against ``at_start``, at full analysis resolution, and the numbers."""
    return _confirm_at(np.asarray(target, np.float32), np.asarray(at_start, np.float32), np.asarray(moved, np.float32),
                       analysis_factor(np.shape(target)), min_gain_sds)


def _confirm_at(target: np.ndarray, at_identity: np.ndarray, moved: np.ndarray, f: int, min_gain_sds: float) -> tuple[bool, dict]:
    """:func:`confirm` with descriptors block-averaged by ``f``, the source already placed at the identity and at the winner."""
    dt, di, dm = (descriptors(x, f) for x in (target, at_identity, moved))  # once, for every comparison
    s_id = agreement_and_chance(at_identity, target, at_identity != 0, f, with_chance=False, a_descriptors=di, b_descriptors=dt)[0]
    s_win, mu, sd = agreement_and_chance(moved, target, moved != 0, f, a_descriptors=dm, b_descriptors=dt)
    z = significance(s_win, mu, sd)
    paired = paired_gain(target, at_identity, moved, (at_identity != 0) & (moved != 0), descriptors_of=(dt, di, dm), factor=f)
    facts = {"mind_identity": s_id, "mind_winner": s_win, "mind_chance": mu, "mind_chance_sd": sd, "z": z,
             "paired_gain": paired["gain"], "paired_t": paired["t"], "paired_tiles": paired["tiles"], "factor": f}
    better, consistent, ok = decide(facts, min_gain_sds)
    if ok:
        facts["reason"] = f"structure agrees: MIND {s_id:.3f} -> {s_win:.3f}, {z:.1f} sd above chance"
    elif not better and min_gain_sds > 0 and np.isfinite(s_id) and s_win > s_id:
        facts["reason"] = (f"structure gains too little: MIND {s_id:.3f} -> {s_win:.3f}, {(s_win - s_id) / sd:.1f} chance spreads, "
                           f"needs {min_gain_sds:g} for a local refinement")
    elif better and not consistent:
        facts["reason"] = (f"structure gains inconsistently: MIND {paired['gain']:+.4f} on the pixels both maps cover, "
                           f"{paired['t']:.1f} standard errors across {paired['tiles']} tiles, needs {PAIRED_T_MIN:g}")
    elif not better:
        facts["reason"] = f"structure disagrees: MIND agreement {s_win:.3f} at the winner vs {s_id:.3f} at the identity"
    else:
        facts["reason"] = f"structure barely above chance: MIND {s_win:.3f}, {z:.1f} sd above chance ({mu:.3f}), needs {Z_MIN:g}"
    return ok, facts


__all__ = ["LOCAL_GAIN_SDS", "PAIRED_T_MIN", "SD_FLOOR", "Z_MIN", "confirm", "confirm_placements", "decide"]
