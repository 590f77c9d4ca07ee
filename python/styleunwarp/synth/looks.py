"""LOM imaging modes that change how a grain boundary looks, for training a style model on them.

A boundary is a thin dark groove only in bright field on a lightly etched surface. Etched
longer, the groove is several pixels wide; in dark field it is a bright band on dark grains;
in Nomarski differential interference contrast (DIC) it is a relief, bright on one flank and
dark on the other, and the grains differ by the relief of their polishing steps rather than by
their tint. A model trained on thin grooves draws each flank of a wide groove as a boundary of
its own: two lines a groove's width apart, which the registration then fits one at a time (a
shift of half that width; benchmarks/blind_lom3.py's dark-field and DIC renderings, docs/style.md).
:func:`lom_looks` changes a bright-field frame into one of these modes; the CBS of the pair stays
as it is, so the model learns where the boundary is (the groove's centre) whatever its look.
Each function works on grey ``(H, W)`` and RGB ``(H, W, 3)`` frames scaled 0..255.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .marks import _luminance, dark_field


def disk(radius: int) -> np.ndarray:
    """A disk-shaped footprint of ``radius`` px for grey morphology."""
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return (yy**2 + xx**2) <= radius**2 + 0.5


def widen_grooves(img: np.ndarray, radius: int) -> np.ndarray:
    """Over-etching: every dark groove and pit widened by ``radius`` px on each side (grey erosion
    with a disk; grain interiors, much wider than the grooves, keep their tint)."""
    fp = disk(int(radius))
    if img.ndim == 3:
        return np.stack([ndimage.grey_erosion(img[..., c], footprint=fp) for c in range(img.shape[-1])], -1)
    return ndimage.grey_erosion(img, footprint=fp)


def dic(img: np.ndarray, rng: np.random.Generator, groove_px: int = 5) -> np.ndarray:
    """Nomarski DIC look of a bright-field frame: intensity follows the slope of the surface along
    the shear direction, so grooves show a bright and a dark flank and grains their polishing
    relief; little of the bright-field tint remains. ``groove_px`` bounds the groove width (the
    closing that separates grooves from grain levels)."""
    lum = _luminance(img)
    lum = lum / (np.percentile(lum, 99.5) + 1e-9)
    grain_level = ndimage.grey_closing(lum, size=(groove_px + 2,) * 2)
    groove = np.clip(grain_level - lum, 0, None)
    relief = ndimage.gaussian_filter(grain_level, 2.0)
    relief = (relief - relief.mean()) / (relief.std() + 1e-9)
    height = rng.uniform(0.2, 1.0) * relief - rng.uniform(2.0, 5.0) * groove
    height = ndimage.gaussian_filter(height, rng.uniform(0.6, 1.2))
    a = rng.uniform(0, 2 * np.pi)
    slope = np.cos(a) * ndimage.sobel(height, 1) + np.sin(a) * ndimage.sobel(height, 0)
    slope /= np.percentile(np.abs(slope), 99.5) + 1e-9
    bias = rng.uniform(0.35, 0.6)
    out = 255.0 * (bias + rng.uniform(0.25, 0.45) * slope + rng.uniform(0.0, 0.15) * (lum - lum.mean()))
    if img.ndim == 3:  # a sensitive-tint (colour) bias: slopes one way bluish, the other yellowish
        cast = rng.uniform(0.75, 1.0, 3)
        tilt = rng.uniform(-0.25, 0.25, 3)
        out = out[..., None] * cast + 255.0 * tilt * slope[..., None]
    return out


def lom_looks(lom: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A random imaging mode for a bright-field frame (0..255, grey or RGB), drawn from ``rng``.

    Half the frames get wider grooves (over-etching: 1-3 px more on each side); then a third
    are turned into dark field (grey frames; the bright band as wide as the groove), a third
    into DIC relief, the rest stay bright field. Returns the frame (float32, clipped to
    0..255) and what was done.
    """
    img = np.asarray(lom, np.float64)
    meta = {"widen_px": 0, "mode": "bright field"}
    if rng.random() < 0.5:
        meta["widen_px"] = int(rng.integers(1, 4))
        img = widen_grooves(img, meta["widen_px"])
    u = rng.random()
    groove = 5 + 2 * meta["widen_px"]
    if u < 1 / 3:
        meta["mode"] = "dark field"
        img = dark_field(_luminance(img), rng, closing=groove + 2)  # a grey frame
    elif u < 2 / 3:
        meta["mode"] = "DIC"
        img = dic(img, rng, groove_px=groove)
    return np.clip(img, 0, 255).astype(np.float32), meta


__all__ = ["dic", "disk", "lom_looks", "widen_grooves"]
