"""Which registrations of an unaligned pair to trust, without ground truth.

``train --unaligned`` learns only from pairs whose registration is *verified*. The rule
(:func:`verdict`): a pair is trusted when two independent chains give direct maps whose mean
displacement difference over the target pixels both map into the source is at most
:data:`AGREE_PX`, and at least one of the two moved away from the start (a coarse
hypothesis other than the identity, or a kept elastic result: two chains that both kept the
identity "agree" without evidence). Independent means different representations (each
searched its own coarse alignment); one representation through two backends shares the
coarse step, so that agreement counts only when the grader calls both at least ``decent``.
The grader is not required otherwise: it reads the NCC of the two compared images, which is
meaningless for raw images of two modalities that MI/MIND aligned well.
``rule="agree-or-good"`` also trusts a single chain the grader
(:func:`styleunwarp.quality.grade_without_truth`) calls ``good``. How often trusted pairs are
really within 5 px is measured in ``benchmarks/bench_unaligned.py`` (docs/unaligned.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..quality import TIERS, grade_without_truth
from ..transform import read_transform
from ..transform.ops import displacement_error
from ..transform.warp import inside_source
from ..transform.model import to_dense
from .tournament import duel

AGREE_PX = 3.0
"""Two direct maps agree when their mean displacement difference is at most this (px, target grid)."""

RULES = ("agree", "agree-or-good")
WEAK_TIERS = ("good", "decent")
"""Two backends on one representation share the coarse step: their agreement counts only when
the grader calls both at least decent (measured: raw MI and raw MIND shared a wrong 172-degree
coarse alignment on an as-delivered steel pair and agreed; docs/unaligned.md)."""


@dataclass(frozen=True)
class Outcome:
    """One chain's registration of one pair, as read back from its output folder."""

    chain: str  # chain label
    representation: str
    backend: str
    folder: Path
    tier: str  # the grader's tier (never from ground truth)
    ncc: float | None  # styled_ncc_after
    target_shape: tuple[int, int]
    source_shape: tuple[int, int]
    seconds: float | None = None
    moved: bool = True  # the coarse step chose more than the identity, the elastic result was kept, or a second pass started elsewhere

    @classmethod
    def read(cls, chain: str, representation: str, backend: str, folder: Path) -> "Outcome | None":
        """The outcome in ``folder`` (``None`` when the registration did not finish there)."""
        try:
            m = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return cls.from_metrics(chain, representation, backend, folder, m)

    @classmethod
    def from_metrics(cls, chain: str, representation: str, backend: str, folder: Path, metrics: dict) -> "Outcome":
        """The outcome of the registration in ``folder`` whose ``metrics.json`` content is ``metrics``
        (its ground-truth TRE, if any, is ignored)."""
        m = {k: v for k, v in metrics.items() if k != "tre"}  # never the truth: trust is judged without it
        ncc = m.get("styled_ncc_after")
        return cls(chain, representation, backend, folder, grade_without_truth(m),
                   None if ncc is None or not np.isfinite(ncc) else float(ncc),
                   tuple(m["cbs_shape"][:2]), tuple(m["lom_shape"][:2]), (m.get("seconds") or {}).get("total"),
                   _moved(m))

    @cached_property
    def direct(self):
        """The registration's direct transform, read once from ``direct_transf.txt`` (every pairwise
        comparison of :func:`disagreement_px` reads it)."""
        return read_transform(self.folder / "direct_transf.txt")

    @cached_property
    def evidence(self) -> dict | None:
        """The registration's structure evidence (:mod:`styleunwarp.pipeline.evidence`; raw
        source against raw target, read from ``metrics.json`` or computed from the files)."""
        from ..pipeline.evidence import evidence_of

        return evidence_of(self.folder)


def _moved(metrics: dict) -> bool:
    coarse = ((metrics.get("coarse") or {}).get("chosen") or {}).get("method", "identity")
    elastic = metrics.get("elastic") or {}
    return coarse != "identity" or elastic.get("kept") != "start" or bool((elastic.get("restart") or {}).get("confirmed"))


def disagreement_px(a: Outcome, b: Outcome) -> float:
    """Mean distance (px, in the source) between the positions two direct maps give each target pixel,
    over the target pixels both map inside the source (``inf`` when they share none)."""
    ma, mb = to_dense(a.direct, a.target_shape), to_dense(b.direct, b.target_shape)
    mask = inside_source(ma, a.source_shape) & inside_source(mb, a.source_shape)
    if mask.sum() < 0.1 * mask.size:
        return float("inf")
    return float(displacement_error(ma, mb, a.target_shape, mask).mean())


def independence(a: Outcome, b: Outcome) -> str | None:
    """``"strong"``: different representations (each chain searched its own coarse alignment);
    ``"weak"``: one representation through two backends (they share the coarse step, so a wrong
    coarse alignment is shared too); ``None``: the same chain."""
    if a.representation != b.representation:
        return "strong"
    return "weak" if a.backend != b.backend else None


def closest_independent(outcomes: list[Outcome], weak: bool = True) -> tuple[float, Outcome, Outcome] | None:
    """The two independent outcomes (:func:`independence`) whose direct maps differ least
    (:func:`disagreement_px`), at least one of which moved from the start, with that difference;
    ``weak``: also one representation through two backends, where the grader calls both at least
    decent (:data:`WEAK_TIERS`); ``None`` where no two qualify."""
    best: tuple[float, Outcome, Outcome] | None = None
    for i, a in enumerate(outcomes):
        for b in outcomes[i + 1:]:
            kind = independence(a, b)
            if kind is None or not (a.moved or b.moved):
                continue
            if kind == "weak" and not (weak and a.tier in WEAK_TIERS and b.tier in WEAK_TIERS):
                continue
            d = disagreement_px(a, b)
            if best is None or d < best[0]:
                best = (d, a, b)
    return best


@dataclass(frozen=True)
class Verdict:
    """Whether a pair is trusted, the outcome whose transform is used, and why."""

    trusted: bool
    chosen: Outcome | None
    reason: str
    disagreement_px: float | None = None
    agreeing: tuple[str, ...] = ()  # the chains whose agreement (or good grade) made it trusted


def verdict(outcomes: list[Outcome], rule: str = "agree", agree_px: float = AGREE_PX) -> Verdict:
    """Apply the trust rule to the outcomes of one pair. Of the two agreeing outcomes, the
    transform used is the one whose source agrees better with the target by structure
    (:func:`.tournament.duel`), else the better graded, else the earlier (list the newest chain first)."""
    if rule not in RULES:
        raise ValueError(f"unknown trust rule {rule!r} (one of {RULES})")
    best = closest_independent(outcomes)
    if best is not None and best[0] <= agree_px:
        d, a, b = best
        by_structure = duel(a.evidence, b.evidence)  # the one whose source agrees better with the target
        chosen = a if by_structure > 0 or (by_structure == 0 and TIERS.index(a.tier) >= TIERS.index(b.tier)) else b
        return Verdict(True, chosen, f"{a.chain} and {b.chain} agree within {d:.2f} px", d, (a.chain, b.chain))
    if rule == "agree-or-good":
        for o in outcomes:
            if o.tier == "good":
                return Verdict(True, o, f"{o.chain} graded good", None if best is None else best[0], (o.chain,))
    if best is None:
        why = "no two independent chains that moved from the start (and graded decent where they share a representation)" if len(outcomes) > 1 else "only one chain"
        return Verdict(False, None, why)
    return Verdict(False, None, f"closest chains disagree by {best[0]:.2f} px (> {agree_px:g})", best[0])


__all__ = ["AGREE_PX", "Outcome", "RULES", "Verdict", "closest_independent", "disagreement_px", "independence", "verdict"]
