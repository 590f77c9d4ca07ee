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
"""

from __future__ import annotations

import numpy as np

from ...structure import SD_FLOOR, Z_MIN, agreement_and_chance, analysis_factor, descriptors, significance
from .compose import warp_source
from .types import Candidate


def confirm(target: np.ndarray, source: np.ndarray, winner: Candidate) -> tuple[bool, dict]:
    """Whether ``winner`` (a map from target to source pixels) is confirmed by structure, and the numbers."""
    eye = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    f = analysis_factor(target.shape)
    at_identity = warp_source(source, eye, target.shape)
    moved = warp_source(source, winner.matrix, target.shape)
    dt = descriptors(target, f)  # once, for both comparisons
    s_id = agreement_and_chance(at_identity, target, at_identity != 0, f, with_chance=False, b_descriptors=dt)[0]
    s_win, mu, sd = agreement_and_chance(moved, target, moved != 0, f, b_descriptors=dt)
    z = significance(s_win, mu, sd)
    facts = {"mind_identity": s_id, "mind_winner": s_win, "mind_chance": mu, "mind_chance_sd": sd, "z": z}
    better = np.isfinite(s_win) and (not np.isfinite(s_id) or s_win > s_id)
    ok = bool(better and np.isfinite(z) and z >= Z_MIN)
    if ok:
        facts["reason"] = f"structure agrees: MIND {s_id:.3f} -> {s_win:.3f}, {z:.1f} sd above chance"
    elif not better:
        facts["reason"] = f"structure disagrees: MIND agreement {s_win:.3f} at the winner vs {s_id:.3f} at the identity"
    else:
        facts["reason"] = f"structure barely above chance: MIND {s_win:.3f}, {z:.1f} sd above chance ({mu:.3f}), needs {Z_MIN:g}"
    return ok, facts


__all__ = ["SD_FLOOR", "Z_MIN", "confirm"]
