"""Which chain registers a set of pairs best, without ground truth: a round robin on structure evidence.

Each registration carries structure evidence (:mod:`styleunwarp.pipeline.evidence`): how well
the original source, moved by the saved transform, agrees with the original target by MIND
descriptors, and how far above chance. Those numbers compare results of *different* chains on
one pair, since they read the raw images whatever the chains registered. Two results duel
(:func:`duel`): a result below :data:`EVIDENCE_Z` standard deviations above chance is no
evidence; of two that are evidence, the higher agreement wins (within :data:`MIND_TIE`, a draw).
Chains meet on the pairs both registered, and a chain beats another when it wins more of
those duels than it loses (:func:`tournament`); the ranking is by chains beaten, then by the
sum of duel results.

Measured on the registrations of the ``train --unaligned`` runs of docs/unaligned.md (shale and
as-delivered steel, 4 runs, truth used only for scoring; ``benchmarks/bench_tournament.py``): of
the pairs of results of one pair whose true mean TREs differ by more than 0.25 px, the duel
named the better one 106 times and the worse one 3 times (two results 6.1 vs 9.35 px off, both
failures; 1.59 vs 2.29 px, both within 5 px), and called 3 a draw or no contest; on CLEM,
where every chain failed (13-820 px), all 5 were no contest. The ranking put first the chain
with the lowest median TRE on the training pairs in all four runs: on shale elastix MI
(1.02 px), where the agreement count the loop delivered by before picked the shipped model
(2.97 px); on steel the shipped model through native (0.60 px).
These are the runs the two constants were chosen on; the held-out check is in docs/unaligned.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Protocol

EVIDENCE_Z = 3.0
"""A result whose MIND agreement lies less than this many chance spreads above chance is no
evidence in a duel: it keeps chance-level results (most failures: 13-200 px off at z <= 2.5)
out. It does not separate by itself (on these runs, results within 5 px reached z >= 3.1, but a
CLEM result 18 px off reached 4.0); :data:`styleunwarp.structure.Z_MIN`, the bar for calling a
single result aligned, is stricter."""

MIND_TIE = 0.002
"""Two agreements closer than this are a draw (results a fraction of a pixel apart)."""


class HasEvidence(Protocol):
    evidence: dict | None


def _value(evidence: dict | None) -> float | None:
    """The agreement of a result that counts as evidence, else ``None``."""
    if not evidence:
        return None
    z, mind = evidence.get("z"), evidence.get("mind")
    if z is None or mind is None or not (math.isfinite(z) and math.isfinite(mind)) or z < EVIDENCE_Z:
        return None
    return float(mind)


def is_evidence(evidence: dict | None) -> bool:
    """Whether a result's structure evidence counts in a duel (at least :data:`EVIDENCE_Z` above chance)."""
    return _value(evidence) is not None


def duel(a: dict | None, b: dict | None) -> int:
    """``1`` when result ``a`` agrees better with the target by structure, ``-1`` when ``b``
    does, ``0`` for a draw or when neither is evidence (arguments: structure evidence dicts)."""
    va, vb = _value(a), _value(b)
    if va is None and vb is None:
        return 0
    if vb is None:
        return 1
    if va is None:
        return -1
    if abs(va - vb) <= MIND_TIE:
        return 0
    return 1 if va > vb else -1


@dataclass
class Standing:
    """A chain's results in the round robin."""

    beaten: int = 0  # chains it beat on their common pairs
    margin: int = 0  # duels won minus duels lost, over every opponent
    pairs: int = 0  # pairs it registered
    against: dict[str, int] = field(default_factory=dict)  # opponent -> duels won minus lost

    def key(self) -> tuple[int, int]:
        return self.beaten, self.margin


def tournament(results: Mapping[str, Mapping[str, HasEvidence]]) -> dict[str, Standing]:
    """The round robin of ``results`` (chain label -> pair name -> outcome with ``evidence``)."""
    table = {label: Standing(pairs=len(per_pair)) for label, per_pair in results.items()}
    for a, b in combinations(results, 2):
        common = set(results[a]) & set(results[b])
        m = sum(duel(results[a][p].evidence, results[b][p].evidence) for p in sorted(common))
        table[a].against[b], table[b].against[a] = m, -m
        table[a].margin += m
        table[b].margin -= m
        if m > 0:
            table[a].beaten += 1
        elif m < 0:
            table[b].beaten += 1
    return table


def any_evidence(results: Mapping[str, Mapping[str, HasEvidence]]) -> bool:
    """Whether any result counts as evidence (else the round robin decides nothing)."""
    return any(_value(o.evidence) is not None for per_pair in results.values() for o in per_pair.values())


__all__ = ["EVIDENCE_Z", "MIND_TIE", "Standing", "any_evidence", "duel", "is_evidence", "tournament"]
