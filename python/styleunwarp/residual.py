"""How far a registered image still is from its target, measured without ground truth.

If two images show one scene aligned, the agreement of their local structure (MIND-SSC
descriptors, :mod:`styleunwarp.structure`) peaks at zero shift everywhere; where a result is
still misaligned by a few pixels, it peaks at that offset. :func:`residual_shift` finds, in each
tile of a grid, the shift within :data:`RADIUS` that maximises the descriptors' correlation,
keeps the tiles whose peak stands out (:data:`PROMINENCE`), and reports the median peak
offset: an estimate of the residual misalignment in pixels. It is ``None`` where too few
tiles have a clear peak: two modalities whose structures correspond only loosely (a
fluorescence channel against an electron image, an etched LOM's dark lines against the CBS's
grey steps) do not support an estimate.

Measured (``benchmarks/bench_residual.py``, docs/quality.md): on the 24 real shale BSE/SE pairs
deformed by known smooth maps of 0-9 px mean error the estimate follows the true mean error
(within about 0.5 px up to 8 px); on CLEM and on raw LOM renderings against real CBS it stays
``None`` for most cases.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

RADIUS = 8
"""Largest shift searched, in analysis pixels (block-averaged, :func:`styleunwarp.structure.analysis_factor`)."""

TILES = 3
"""The image is cut into ``TILES x TILES`` tiles, each with its own peak."""

PROMINENCE = 3.5
"""A tile's peak counts when it lies this many standard deviations of the correlation surface
above the surface's median: about 4.5-5.5 on shale BSE/SE tiles whatever the misalignment,
about 2-2.5 on CLEM and on raw LOM renderings against CBS (bench_residual.py)."""

MIN_TILES = 5
"""Tiles with a prominent peak needed for an estimate (of ``TILES**2``)."""

MAX_PX = 3.0
"""An estimate above this (image pixels) says the result is still misaligned (:func:`misaligned`)."""

SUPPORT_TILES = 4
"""With at least this many prominent tiles the two images' structures correspond closely enough
that weaker peaks count too (:data:`WEAK_PROMINENCE`)."""

WEAK_PROMINENCE = 2.0
"""Prominence from which a tile's peak counts as a sign of regional misalignment: a misaligned
region's peak is broader (2-2.5 on the shale_0046 elastix results that were 4.1 and 5.2 px off,
whose aligned tiles peaked at 3.6-5.2)."""

OFF_TILE_PX = 4.0
"""A tile peaking further than this (image pixels) from zero shift is off (:func:`misaligned`)."""

OFF_TILES = 2
"""This many off tiles make a result misaligned even when the median of the prominent ones is small."""


def _standardised(d: np.ndarray, m: np.ndarray) -> np.ndarray:
    mean = d[:, m].mean(axis=1)[:, None, None]
    sd = d[:, m].std(axis=1)[:, None, None] + 1e-12
    return np.where(m, (d - mean) / sd, 0.0)


def tile_peaks(da: np.ndarray, db: np.ndarray, m: np.ndarray, radius: int = RADIUS, tiles: int = TILES) -> list[tuple[float, float]]:
    """``(offset, prominence)`` of the correlation peak of descriptor stacks ``da`` and ``db``
    (``(C, h, w)``, same grid) in each tile of a ``tiles x tiles`` grid over ``m``: offset in
    grid pixels (``|shift|`` of the best shift within ``radius``, refined to a fraction of a pixel
    by a parabola through the peak and its neighbours along each axis), prominence as in :data:`PROMINENCE`.
    Tiles with fewer than 400 mask pixels are left out."""
    da, db = _standardised(np.asarray(da, np.float64), m), _standardised(np.asarray(db, np.float64), m)
    h, w = m.shape
    ys, xs = np.linspace(0, h, tiles + 1).astype(int), np.linspace(0, w, tiles + 1).astype(int)
    out = []
    for i in range(tiles):
        for j in range(tiles):
            sl = (slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1]))
            tm = m[sl].astype(np.float64)
            if tm.sum() < 400 or min(tm.shape) <= 2 * radius:
                continue
            ta, tb = da[(slice(None), *sl)], db[(slice(None), *sl)]
            # c(s) = sum_p a(p) b(p + s) / overlap(s), for every shift s at once
            corr = sum(fftconvolve(tb[k], ta[k][::-1, ::-1], mode="full") for k in range(ta.shape[0]))
            overlap = fftconvolve(tm, tm[::-1, ::-1], mode="full")
            cy, cx = tm.shape[0] - 1, tm.shape[1] - 1
            win = (slice(cy - radius, cy + radius + 1), slice(cx - radius, cx + radius + 1))
            c = corr[win] / np.maximum(overlap[win], 1.0)
            ky, kx = np.unravel_index(int(np.argmax(c)), c.shape)
            dy, dx = ky - radius + _vertex(c[ky - 1:ky + 2, kx]), kx - radius + _vertex(c[ky, kx - 1:kx + 2])
            out.append((float(np.hypot(dy, dx)), float((c.max() - np.median(c)) / (c.std() + 1e-12))))
    return out


def _vertex(three: np.ndarray) -> float:
    """Sub-pixel offset (within +-0.5) of the peak of a parabola through three samples around a
    maximum at the middle one; 0 at the window's border (fewer than three samples) or on a flat top."""
    if three.size != 3:
        return 0.0
    a, b, c = (float(v) for v in three)
    curvature = a - 2.0 * b + c
    return 0.0 if curvature >= 0 else float(np.clip(0.5 * (a - c) / curvature, -0.5, 0.5))


def residual_shift(da: np.ndarray, db: np.ndarray, m: np.ndarray, factor: int = 1) -> dict:
    """The residual misalignment of two images from their descriptor stacks on the analysis
    grid (``factor``: its block size in image pixels; ``m``: the pixels both cover).

    ``{"residual_px": median peak offset of the prominent tiles in image pixels, or None,
    "residual_tiles": how many tiles had a prominent peak, "tiles": how many were measured,
    "tiles_off": how many tiles with at least a weak peak lie more than OFF_TILE_PX off, where
    SUPPORT_TILES tiles are prominent (else None)}``.
    """
    peaks = tile_peaks(da, db, m)
    prominent = [off for off, prom in peaks if prom >= PROMINENCE]
    value = float(np.median(prominent)) * factor if len(prominent) >= MIN_TILES else None
    off = sum(1 for o, prom in peaks if prom >= WEAK_PROMINENCE and o * factor > OFF_TILE_PX) if len(prominent) >= SUPPORT_TILES else None
    return {"residual_px": value, "residual_tiles": len(prominent), "tiles": len(peaks), "tiles_off": off}


def misaligned(residual: dict) -> bool:
    """Whether a :func:`residual_shift` result says the images are still misaligned: its estimate
    exceeds :data:`MAX_PX`, or, where the structures support it (:data:`SUPPORT_TILES`),
    :data:`OFF_TILES` tiles peak more than :data:`OFF_TILE_PX` away (a region left misaligned:
    its tiles' peaks are weaker, so the median of the prominent ones misses it)."""
    value, off = residual.get("residual_px"), residual.get("tiles_off")
    return (value is not None and value > MAX_PX) or (off is not None and off >= OFF_TILES)


def describe(residual: dict) -> str:
    """What a :func:`residual_shift` result (or structure evidence holding its keys) says, in words;
    ``""`` when it says nothing (no estimate, no tile off)."""
    value, off = residual.get("residual_px"), residual.get("tiles_off")
    parts = [] if value is None else [f"its local structure peaks {value:.1f} px from where it lies"]
    if off:
        parts.append(f"{off} of its tiles peak more than {OFF_TILE_PX:g} px off")
    return ", ".join(parts)


__all__ = ["MAX_PX", "MIN_TILES", "OFF_TILES", "OFF_TILE_PX", "PROMINENCE", "RADIUS", "SUPPORT_TILES", "TILES", "WEAK_PROMINENCE",
           "describe", "misaligned", "residual_shift", "tile_peaks"]
