"""What the elastic step fits on boundary maps: the structure both maps show.

A boundary map of the source (the style model's rendering of a LOM) draws lines the target's
map does not have — polishing scratches, etch pits, dust, a groove drawn as two lines — and the
target's map shows boundaries the source rendering missed. An intensity-based elastic step
(bUnwarpJ's SSD) pulls the spline toward such unmatched lines as hard as toward the shared ones.
:func:`consensus` keeps each map only where the other shows structure within ``radius`` pixels
(its grey dilation, a weight from 0 to 1), so that lines without a partner nearby stop pulling.
The step runs after the coarse start, where the remaining offsets are a few pixels (a start
further off than the radius loses its true partners: measured, a 6 px start then ended 4.4 px off
where the whole maps gave 1.6 px); the maps are cleaned for fitting only: the never-worse check
and the saved images read the maps as made.

Measured on steel renderings by two renderers that are not ours and on our own renderings of the
real CBS images (docs/study-table.md, "Fitting what both maps show").
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..synth.looks import disk

CONSENSUS_PX_FOR_EDGES = 2
"""Radius (px) of :func:`consensus` for boundary-map representations (``edges``) when nobody chose
one: **2**, used only from a start the fine affine step refined
(:func:`styleunwarp.pipeline.chain.consensus_radius`; elsewhere the whole maps are fitted). Off (0)
until the fine affine step existed: from coarse starts several pixels off it lost (as a user runs
it, blind seed 6: 2.45 -> 3.85 px). From refined starts (docs/study-table.md, "The floor of the
representation at the truth"), bUnwarpJ moves exactly aligned foreign renderings 0.62-0.77 px with
it against 0.96-1.62 px without, and the chain gained on the foreign renderings. ``consensus_px=0``
(``register_pair``) turns it off."""

SUPPORT_LEVEL = 0.5
"""A map's structure counts fully (weight 1) from this fraction of its 99th percentile up."""


def support(image: np.ndarray, radius: int) -> np.ndarray:
    """Weight in [0, 1] of every pixel by the strongest structure of ``image`` within ``radius``
    pixels: its grey dilation divided by :data:`SUPPORT_LEVEL` times its 99th percentile, clipped."""
    img = np.asarray(image, np.float32)
    level = SUPPORT_LEVEL * float(np.percentile(img, 99))
    if not np.isfinite(level) or level <= 0:
        return np.ones(img.shape, np.float32)
    near = ndimage.grey_dilation(img, footprint=disk(int(radius)))
    return np.clip(near / level, 0.0, 1.0).astype(np.float32)


def consensus(target: np.ndarray, moving: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """``(target, moving)`` each weighted by :func:`support` of the other (same shape, float32);
    ``radius`` 0 returns them unchanged."""
    if radius <= 0:
        return target, moving
    t, m = np.asarray(target, np.float32), np.asarray(moving, np.float32)
    return t * support(m, radius), m * support(t, radius)


def consensus_on_source(target: np.ndarray, source: np.ndarray, moving: np.ndarray, a: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`consensus` for a source on its own grid, ``a`` (2 x 3, target pixel -> source pixel)
    its start and ``moving`` the source warped by ``a`` onto the target grid: the target weighted by
    the support of ``moving``, the source by the target's support carried onto the source grid;
    ``radius`` 0 returns them unchanged. With ``a`` the identity on equal grids it is :func:`consensus`."""
    if radius <= 0:
        return target, source
    from .coarse import invert_affine, warp_source

    t, s = np.asarray(target, np.float32), np.asarray(source, np.float32)
    target_support = warp_source(support(t, radius), invert_affine(a), s.shape[:2])
    return t * support(moving, radius), s * target_support


def default_consensus_px(kind: str | None) -> int:
    """The radius a representation gets when nobody chose one: :data:`CONSENSUS_PX_FOR_EDGES` for
    boundary maps, else 0 (intensities and raw images are compared as they are)."""
    return CONSENSUS_PX_FOR_EDGES if kind == "edges" else 0


__all__ = ["CONSENSUS_PX_FOR_EDGES", "SUPPORT_LEVEL", "consensus", "consensus_on_source", "default_consensus_px", "support"]
