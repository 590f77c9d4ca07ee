"""Which registrations of an unaligned pair to trust, without ground truth.

``train --unaligned`` learns only from pairs whose registration is *verified*. The rule
(:func:`verdict`): a pair is trusted when two independent chains (different representation
or different backend) give direct maps whose mean displacement difference over the target
pixels both map into the source is at most :data:`AGREE_PX`, and at least one of the two
moved away from the start (a coarse hypothesis other than the identity was chosen, or the
elastic result was kept): two chains that both kept the identity "agree" without evidence.
The grader's tier is not required: it reads the NCC of the two representations, which is
meaningless (often negative) for raw images of two modalities that a MI/MIND chain aligned
well. ``rule="agree-or-good"`` also trusts a single chain the grader
(:func:`styleunwarp.quality.grade_without_truth`) calls ``good``. How often trusted pairs are really within 5 px is measured in
``benchmarks/bench_unaligned.py`` (docs/unaligned.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..quality import TIERS, grade_without_truth
from ..transform import read_transform
from ..transform.ops import displacement_error
from ..transform.warp import inside_source
from ..transform.model import to_dense

AGREE_PX = 3.0
"""Two direct maps agree when their mean displacement difference is at most this (px, target grid)."""

RULES = ("agree", "agree-or-good")


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
    moved: bool = True  # the coarse step chose more than the identity, or the elastic result was kept

    @classmethod
    def read(cls, chain: str, representation: str, backend: str, folder: Path) -> "Outcome | None":
        """The outcome in ``folder`` (``None`` when the registration did not finish there)."""
        try:
            m = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        m = {k: v for k, v in m.items() if k != "tre"}  # never the truth: trust is judged without it
        ncc = m.get("styled_ncc_after")
        return cls(chain, representation, backend, folder, grade_without_truth(m),
                   None if ncc is None or not np.isfinite(ncc) else float(ncc),
                   tuple(m["cbs_shape"][:2]), tuple(m["lom_shape"][:2]), (m.get("seconds") or {}).get("total"),
                   _moved(m))

    @property
    def direct(self):
        return read_transform(self.folder / "direct_transf.txt")


def _moved(metrics: dict) -> bool:
    coarse = ((metrics.get("coarse") or {}).get("chosen") or {}).get("method", "identity")
    return coarse != "identity" or (metrics.get("elastic") or {}).get("kept") != "start"


def disagreement_px(a: Outcome, b: Outcome) -> float:
    """Mean distance (px, in the source) between the positions two direct maps give each target pixel,
    over the target pixels both map inside the source (``inf`` when they share none)."""
    ma, mb = to_dense(a.direct, a.target_shape), to_dense(b.direct, b.target_shape)
    mask = inside_source(ma, a.source_shape) & inside_source(mb, a.source_shape)
    if mask.sum() < 0.1 * mask.size:
        return float("inf")
    return float(displacement_error(ma, mb, a.target_shape, mask).mean())


def independent(a: Outcome, b: Outcome) -> bool:
    """Chains that differ in representation or backend (two options of one backend are not independent)."""
    return a.representation != b.representation or a.backend != b.backend


@dataclass(frozen=True)
class Verdict:
    """Whether a pair is trusted, the outcome whose transform is used, and why."""

    trusted: bool
    chosen: Outcome | None
    reason: str
    disagreement_px: float | None = None
    agreeing: tuple[str, ...] = ()  # the chains whose agreement (or good grade) made it trusted


def verdict(outcomes: list[Outcome], rule: str = "agree", agree_px: float = AGREE_PX) -> Verdict:
    """Apply the trust rule to the outcomes of one pair (earlier outcomes are preferred as the
    transform to use, so list the newest chain first)."""
    if rule not in RULES:
        raise ValueError(f"unknown trust rule {rule!r} (one of {RULES})")
    best: tuple[float, Outcome, Outcome] | None = None
    for i, a in enumerate(outcomes):
        for b in outcomes[i + 1:]:
            if not independent(a, b) or not (a.moved or b.moved):
                continue
            d = disagreement_px(a, b)
            if best is None or d < best[0]:
                best = (d, a, b)
    if best is not None and best[0] <= agree_px:
        d, a, b = best
        chosen = a if TIERS.index(a.tier) >= TIERS.index(b.tier) else b
        return Verdict(True, chosen, f"{a.chain} and {b.chain} agree within {d:.2f} px", d, (a.chain, b.chain))
    if rule == "agree-or-good":
        for o in outcomes:
            if o.tier == "good":
                return Verdict(True, o, f"{o.chain} graded good", None if best is None else best[0], (o.chain,))
    if best is None:
        why = "no two independent chains that moved from the start" if len(outcomes) > 1 else "only one chain"
        return Verdict(False, None, why)
    return Verdict(False, None, f"closest chains disagree by {best[0]:.2f} px (> {agree_px:g})", best[0])


__all__ = ["AGREE_PX", "Outcome", "RULES", "Verdict", "disagreement_px", "independent", "verdict"]
