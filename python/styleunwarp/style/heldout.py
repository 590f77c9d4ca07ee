"""Held-out test cases for choosing a chain by registration accuracy.

An aligned pair (source, target on one grid) becomes a test case by deforming the source
with a random smooth known deformation: the first case of each pair near the identity (a
pair acquired almost aligned, which no chain may make worse), the others misaligned as real
acquisitions are (shift up to 8 % of the field, rotation up to 4 deg, smooth elastic part),
so that the coarse alignment step matters as it does in ``register``. The registration of
the deformed source to the target should recover it, and the target registration error
(TRE) against the known deformation scores the chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..synth.deform import Deformation, random_deformation, source_positions
from ..transform import ElasticTransform

#: Deformation ranges of the two kinds of test case: rotation (deg, either sign), shift
#: (``shift_px`` in px, or ``shift_fraction`` of the crop's shorter side), elastic part (RMS px).
NEAR_IDENTITY = {"rotation_deg": (0.0, 0.5), "shift_px": (0.0, 1.5), "elastic_px": (0.0, 0.7)}
MISALIGNED = {"rotation_deg": (0.5, 4.0), "shift_fraction": (0.01, 0.08), "elastic_px": (0.7, 3.0)}
KINDS = {"near-identity": NEAR_IDENTITY, "misaligned": MISALIGNED}


@dataclass
class Case:
    """One held-out registration problem with its ground truth."""

    name: str
    source: np.ndarray  # deformed source, (H, W) or (H, W, 3), original intensities
    target: np.ndarray  # (H, W)
    truth: ElasticTransform  # direct transform: target pixel -> source position
    kind: str  # "near-identity" or "misaligned" (:data:`KINDS`)
    scale_known: bool = False  # both pixel sizes known: the coarse step fixes the scale, as register does

    def start_tre(self) -> float:
        """Mean TRE (px) of the images as given (the identity): where every registration of the case starts."""
        from ..quality import tre
        from ..transform import identity_elastic

        shape = self.target.shape[:2]
        return float(tre(identity_elastic(4, shape), self.truth, shape, self.source.shape[:2]).mean)


def ranges(kind: str, shape: tuple[int, int]) -> dict:
    """The :func:`~styleunwarp.synth.deform.random_deformation` ranges of a case ``kind`` on a ``shape`` crop."""
    r = dict(KINDS[kind])
    if "shift_fraction" in r:
        lo, hi = r.pop("shift_fraction")
        side = min(shape[:2])
        r["shift_px"] = (lo * side, hi * side)
    return r


def deform_source(source: np.ndarray, deformation: Deformation) -> np.ndarray:
    """The source as seen through ``deformation``: pixel ``p`` shows ``source(T^-1(p))``."""
    pos = source_positions(deformation, source.shape[:2])
    coords = np.stack([pos[1], pos[0]])
    if source.ndim == 2:
        return ndimage.map_coordinates(source.astype(np.float32), coords, order=3, mode="reflect").astype(np.float32)
    return np.stack([ndimage.map_coordinates(source[..., c].astype(np.float32), coords, order=3, mode="reflect")
                     for c in range(source.shape[2])], axis=-1).astype(np.float32)


def busiest_window(image: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left ``(y, x)`` of the ``side``-px window, among a 3x3 grid of positions (centre
    first), whose intensities vary most: sparse images (fluorescence) often have empty centres."""
    h, w = image.shape[:2]
    ys = sorted({max(0, (h - side) // 2), 0, max(0, h - side)}, key=lambda v: abs(v - (h - side) // 2))
    xs = sorted({max(0, (w - side) // 2), 0, max(0, w - side)}, key=lambda v: abs(v - (w - side) // 2))
    best, pos = -1.0, (ys[0], xs[0])
    for y in ys:
        for x in xs:
            sd = float(np.std(image[y:y + side, x:x + side]))
            if sd > best * 1.2:  # clearly busier than the one before (the centre wins ties)
                best, pos = sd, (y, x)
    return pos


EVAL_SIDES = (256, 384, 512)
"""Sides (px) of the held-out windows that :func:`eval_side_for` chooses from, smallest (fastest) first."""

STRUCTURE_TILE = 32
"""Side (px) of the tiles :func:`structured_tiles` counts."""

MIN_STRUCTURED_TILES = 48
"""Structured tiles a held-out window must hold (:func:`eval_side_for`): three quarters of a 256 px window.

Measured (docs/representations.md, "Held-out windows large enough for sparse targets"): the busiest
256 px window of every shale SE and openECCI CBS image holds 64 of 64 structured tiles; of the CLEM
chromatin fluorescence images 8-27, at 512 px 52-84."""


def structured_tiles(image: np.ndarray, side: int) -> int:
    """How many :data:`STRUCTURE_TILE` px tiles of ``image``'s busiest ``side`` px window
    (:func:`busiest_window`) vary by more than a quarter of the image's 90th-percentile tile spread:
    how much there is to register in such a window."""
    def spreads(a: np.ndarray) -> np.ndarray:
        t = STRUCTURE_TILE
        h, w = a.shape[0] // t * t, a.shape[1] // t * t
        return a[:h, :w].reshape(h // t, t, w // t, t).std(axis=(1, 3))

    grey = np.asarray(image, np.float64)
    grey = grey.mean(axis=2) if grey.ndim == 3 else grey
    ref = spreads(grey)
    if ref.size == 0:
        return 0
    y, x = busiest_window(grey, side)
    return int((spreads(grey[y:y + side, x:x + side]) > 0.25 * np.percentile(ref, 90)).sum())


def eval_side_for(targets: list[np.ndarray], sides: tuple[int, ...] = EVAL_SIDES,
                  min_tiles: int = MIN_STRUCTURED_TILES) -> int:
    """The smallest of ``sides`` whose busiest windows of the ``targets`` hold at least ``min_tiles``
    structured tiles (:func:`structured_tiles`; the median over the targets), else the largest.

    A dense target (a micrograph textured everywhere) gets the smallest window. A sparse one
    (fluorescence: a few bright nuclei on a dark ground) gets a larger window, or its held-out cases hold
    one structure or none and no chain can show there what it does on a whole field: on CLEM the 256 px
    cases left every chain at its start (a tie the training-free chains win by order); 512 px cases
    told them apart (elastix MI 15.1 -> 2.5 px, the translation 3.8 px, the shared code 11.8 px;
    docs/representations.md, "Held-out windows large enough for sparse targets")."""
    for side in sides:
        if np.median([structured_tiles(t, side) for t in targets]) >= min_tiles:
            return side
    return sides[-1]


def make_cases(pairs: list[tuple[str, np.ndarray, np.ndarray]], per_pair: int, seed: int = 0,
               max_side: int | None = None, scale_known: bool = False) -> list[Case]:
    """``per_pair`` deformed cases for each aligned ``(name, source, target)``; the first of
    each pair is near the identity, the others misaligned (:data:`KINDS`). ``max_side`` crops a window of at
    most this many pixels a side (faster evaluations on large images; :func:`busiest_window`).
    ``scale_known``: the pairs' pixel sizes are known (the coarse step then keeps the scale)."""
    cases = []
    for i, (name, src, tgt) in enumerate(pairs):
        if max_side is not None:
            y0, x0 = busiest_window(tgt, max_side)
            src = src[y0:y0 + max_side, x0:x0 + max_side]
            tgt = tgt[y0:y0 + max_side, x0:x0 + max_side]
        for k in range(per_pair):
            rng = np.random.default_rng([seed, i, k, 11])
            kind = "near-identity" if k == 0 else "misaligned"
            d = random_deformation(rng, tgt.shape[:2], **ranges(kind, tgt.shape[:2]))
            cases.append(Case(f"{name}#{k}", deform_source(src, d), np.asarray(tgt, np.float32), d.truth, kind, scale_known))
    return cases
