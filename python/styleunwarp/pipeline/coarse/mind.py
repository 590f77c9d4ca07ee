"""Similarity hypotheses scored by local structure (MIND-SSC): raw images sharing shapes, not grey levels.

The last search of a raw chain (``pipeline.chain.coarse_alignment``). The others compare grey
levels (NCC), edge strength (NCC) or grey-level co-occurrence (mutual information). Where two
modalities share the shapes of their structures but no grey-level relation holds across the
field (a fluorescence channel showing only some of what an EM image shows; a texture whose
grey levels vary across the field), the self-similarity of each image's neighbourhoods still
corresponds: MIND-SSC descriptors (Heinrich et al. 2013), the measure every coarse winner is
confirmed by (:mod:`.confirm`). Here it ranks hypotheses: for each rotation the source is
rotated onto a canvas, its descriptors computed there (descriptors do not rotate with the image),
and the masked NCC of each of the six descriptor channels with the target's is computed for
every shift at once (FFT) and averaged. Rotations over the full circle in steps of
:data:`ROTATION_STEP`, then :data:`FINE_STEP` around the best, at one scale (the known one, else 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ...registration.native.mind import mind_ssc
from .mutual import decide_by_ratio, ranked
from .score import MIN_OVERLAP, Level, ShiftCorrelator, ncc
from .similarity import _distinct, _grid, _reduced_source, _refine
from .types import Candidate

SIZE = 128
"""Longer side (px) of the reduced target the search runs on."""

REFINE_SIZE = 2 * SIZE
"""Longer side (px) of the level the winner is refined on (:func:`refine`)."""

ROTATION_STEP = 5.0
"""Rotation step (degrees) over the full circle ..."""

FINE_STEP = 1.25
"""... then around the best :data:`KEEP` (half a step either way)."""

BLUR = 1.0
"""Gaussian blur (working px) of both reduced images before their descriptors."""

ERODE_PX = 3
"""Working pixels dropped inside the border of the rotated source (descriptors there see its edge)."""

GAIN = 1.5
"""The best hypothesis must score this many times the identity ..."""

UNIQUE = 1.35
"""... and this many times every different hypothesis (:data:`DISTINCT`): a unique peak. Chosen between
the two groups on the tuning cases (docs/coarse.md, "Raw images: a search on structure"): every best
hypothesis more than 5 px off led the next different one by at most 1.23x (raw CLEM, steel), every
right one (within 5 px) that was not the identity by at least 1.45x."""

KEEP = 3
"""Distinct hypotheses returned (best first)."""

DISTINCT = 0.15
"""Hypotheses whose maps differ by more than this fraction of the target's size are different peaks."""

AT_IDENTITY_PX = 2.0
"""A hypothesis within this many working pixels of the identity (corners and centre) is the identity."""


class MindCorrelator:
    """Mean masked NCC of the MIND-SSC descriptors of a fixed image and a moving one, for every integer shift.

    Same contract as :class:`.score.ShiftCorrelator` (``(map, origin)``; shift ``d``: fixed pixel ``x``
    meets moving pixel ``x + d``; small overlaps score ``-inf`` or are weighted down). The moving
    image's descriptors are computed on it as given (outside ``mask`` filled with its mean) and used
    :data:`ERODE_PX` inside the mask's border.
    """

    def __init__(self, fixed: np.ndarray) -> None:
        self.shape = fixed.shape
        self._channels = [ShiftCorrelator(c) for c in mind_ssc(np.asarray(fixed, np.float64)[None])[0]]

    def __call__(self, moving: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        inside = np.asarray(mask, bool)
        fill = float(moving[inside].mean()) if inside.any() else 0.0
        desc = mind_ssc(np.where(inside, moving, fill).astype(np.float64)[None])[0]
        core = ndimage.binary_erosion(inside, iterations=ERODE_PX)
        total, origin = None, (self.shape[0] - 1, self.shape[1] - 1)
        for corr, channel in zip(self._channels, desc):
            nmap, origin = corr(channel, core)
            total = nmap if total is None else total + nmap
        return total / len(self._channels), origin

    def at(self, moving: np.ndarray, mask: np.ndarray) -> float:
        """The value for ``moving`` as it lies on the fixed image's grid (``mask``: where it is)."""
        nmap, origin = self(moving, mask)
        return float(nmap[origin])


@dataclass(frozen=True)
class StructureLevel(Level):
    """A :class:`.score.Level` whose :meth:`score` is the mean NCC of the six MIND-SSC channels (the
    search's measure at one map, for a local refinement), the moved source's descriptors taken
    :data:`ERODE_PX` inside where it lies."""

    fixed: tuple = ()

    @classmethod
    def of(cls, target: np.ndarray, size: int, blur: float = BLUR) -> "StructureLevel":
        base = Level.of(target, size, blur)
        return cls(base.k, base.image, base.blur, tuple(mind_ssc(np.asarray(base.image, np.float64)[None])[0]))

    def score(self, source: np.ndarray, a: np.ndarray, source_scale: float = 1.0) -> tuple[float, float]:
        moved, inside = self.moved(source, a, source_scale)
        core = ndimage.binary_erosion(inside, iterations=ERODE_PX)
        frac = float(core.mean())
        if frac < MIN_OVERLAP:
            return float("nan"), frac
        desc = mind_ssc(np.where(inside, moved, float(moved[inside].mean())).astype(np.float64)[None])[0]
        values = [ncc(f, d, core) for f, d in zip(self.fixed, desc)]
        return float(np.mean(values)), frac


def refine(target: np.ndarray, source: np.ndarray, winner: Candidate, *, scale: float | None = None,
           size: int = REFINE_SIZE) -> Candidate:
    """``winner`` refined locally (rotation and shift, Nelder-Mead from it) by the same measure on a
    level of about ``size`` px: the search places maps to one of its working pixels and :data:`FINE_STEP`.
    Chosen on the tuning cases (docs/coarse.md, "The structure winner refined"): refined on the search's
    own level, rigid shale cases ended 0.3-2.1 px from the truth, on twice its side 0.1-1.5 px."""
    level = StructureLevel.of(target, size)
    src, ks = _reduced_source(source, level, float(scale) if scale else 1.0)
    score, a = _refine(level, src, ks, winner.matrix, False, scale_fixed=True)
    return Candidate.from_matrix("similarity", a, score, search_score=winner.score, refined_on=size)


def search_factor(shape: tuple[int, int]) -> int:
    """The block size (integer, at least 1) that brings ``shape`` to about the :data:`SIZE` level the search runs on."""
    return max(1, int(round(Level.factor(shape, SIZE))))


def search(target: np.ndarray, source: np.ndarray, *, scale: float | None = None) -> tuple[list[Candidate], Candidate]:
    """The best :data:`KEEP` distinct hypotheses by structure (best first), and the identity scored alike.

    ``scale``: the known source/target pixel-size ratio; ``None`` searches scale 1 only (as
    :func:`.mutual.search`)."""
    level = Level.of(target, SIZE, blur=BLUR)
    corr = MindCorrelator(level.image)
    s = float(scale) if scale else 1.0
    found = _grid(corr, level, source, [(float(r), s, False) for r in np.arange(0.0, 360.0, ROTATION_STEP)])
    top = _distinct(found, target.shape, KEEP, min_px=DISTINCT * max(target.shape))
    fine = sorted({round(float(rot + d), 4) % 360.0 for _, _, rot, _, _ in top
                   for d in np.arange(-ROTATION_STEP / 2, ROTATION_STEP / 2 + 1e-9, FINE_STEP) if abs(d) > 1e-9})
    found += _grid(corr, level, source, [(r, s, False) for r in fine])
    return ranked(found, corr, level, target.shape, source, keep=KEEP, distinct=DISTINCT, measure="structure (MIND-SSC)")


def decide(cands: list[Candidate], identity: Candidate, shape: tuple[int, int]) -> tuple[Candidate | None, str]:
    """The winner among ``cands`` (best first, from :func:`search`) by :data:`GAIN` over the identity
    and :data:`UNIQUE` over every different hypothesis, or ``None`` and why not."""
    return decide_by_ratio(cands, identity, shape, measure="structure (MIND-SSC)", size=SIZE, gain=GAIN, unique=UNIQUE,
                           at_identity_px=AT_IDENTITY_PX)


__all__ = ["FINE_STEP", "GAIN", "MindCorrelator", "REFINE_SIZE", "ROTATION_STEP", "SIZE", "UNIQUE", "StructureLevel", "decide", "refine", "search", "search_factor"]
