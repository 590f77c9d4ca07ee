"""Marks and imaging variants that only the LOM shows, for training a style model to ignore them.

A light micrograph carries lines and dots that have no counterpart in the CBS image: random etch
pits, the shading of oblique light on relief, the bright grooves of dark-field illumination and
the blocks of JPEG compression. A style model that has never seen them draws them as grain
boundaries (docs/study-table.md, the blind steel renderings). :func:`lom_marks` puts a random
selection of them on a LOM frame; the CBS of the pair stays as it is, so the model learns that
they are not structure. Each function works on grey ``(H, W)`` and RGB ``(H, W, 3)`` frames
scaled 0..255.
"""

from __future__ import annotations

import io

import numpy as np
from scipy import ndimage


def _luminance(img: np.ndarray) -> np.ndarray:
    return img.mean(axis=-1) if img.ndim == 3 else img


def _per_channel(img: np.ndarray, factor: np.ndarray) -> np.ndarray:
    return img * (factor[..., None] if img.ndim == 3 else factor)


def etch_pits(img: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` dark etch pits, 1-3 px, denser in some patches (a smooth random density)."""
    h, w = img.shape[:2]
    density = ndimage.gaussian_filter(rng.standard_normal((h, w)), rng.uniform(20, 60), mode="wrap")
    sd = density.std()
    density = np.exp(np.clip(1.5 * density / sd, -50, 50)) if sd > 1e-6 else np.ones((h, w))
    p = density.ravel() / density.sum()
    idx = rng.choice(h * w, size=n, p=p)
    spots = np.zeros(h * w)
    spots[idx] = rng.uniform(0.4, 1.0, n)
    spots = spots.reshape(h, w)
    if rng.random() < 0.5:
        spots = ndimage.grey_dilation(spots, size=(2, 2))
    depth = np.clip(ndimage.gaussian_filter(spots, rng.uniform(0.5, 1.0)) * rng.uniform(2.5, 5.0), 0, 0.9)
    return _per_channel(img, 1.0 - depth)


def oblique_relief(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Oblique light on a relief: one flank of every groove, pit and scratch brighter, the other darker."""
    lum = ndimage.gaussian_filter(_luminance(img), 1.0)
    a = rng.uniform(0, 2 * np.pi)
    slope = np.cos(a) * ndimage.sobel(lum, 1) + np.sin(a) * ndimage.sobel(lum, 0)
    shade = rng.uniform(0.1, 0.35) * slope / 8.0
    return img + (shade[..., None] if img.ndim == 3 else shade)


def dark_field(img: np.ndarray, rng: np.random.Generator, closing: int = 7) -> np.ndarray:
    """Dark-field look of a bright-field frame: grooves, pits and scratches bright on dark grains
    (features narrower than ``closing`` px scatter)."""
    lum = _luminance(img)
    background = ndimage.grey_closing(lum, size=(closing, closing))
    scatter = np.clip(background - lum, 0, None)
    scatter = scatter / (np.percentile(scatter, 99.5) + 1e-9)
    grains = lum / (lum.mean() + 1e-9)
    out = 255.0 * (rng.uniform(0.03, 0.12) * grains + rng.uniform(0.7, 1.0) * scatter)
    return np.repeat(out[..., None], 3, axis=-1) if img.ndim == 3 else out


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """The frame after an 8-bit JPEG round trip at ``quality`` (1-95)."""
    from PIL import Image

    u8 = np.clip(np.round(img), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float64)


def lom_marks(lom: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A random selection of LOM-only marks on a frame (0..255, grey or RGB).

    Etch pits (half the frames, 20-600), oblique relief shading (a quarter), dark field (a
    fifth of the grey frames) and JPEG compression (two fifths, quality 30-85), each drawn
    from ``rng``. Returns the frame (float32, clipped to 0..255) and what was added.
    """
    img = np.asarray(lom, np.float64)
    meta = {"pits": 0, "relief": False, "dark_field": False, "jpeg_quality": 0}
    if rng.random() < 0.5:
        meta["pits"] = int(rng.integers(20, 600))
        img = etch_pits(img, rng, meta["pits"])
    if rng.random() < 0.25:
        meta["relief"] = True
        img = oblique_relief(img, rng)
    if img.ndim == 2 and rng.random() < 0.2:
        meta["dark_field"] = True
        img = dark_field(img, rng)
    if rng.random() < 0.4:
        meta["jpeg_quality"] = int(rng.integers(30, 86))
        img = jpeg(img, meta["jpeg_quality"])
    return np.clip(img, 0, 255).astype(np.float32), meta


__all__ = ["dark_field", "etch_pits", "jpeg", "lom_marks", "oblique_relief"]
