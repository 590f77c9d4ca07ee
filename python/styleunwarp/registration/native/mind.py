"""MIND-SSC: modality-independent neighbourhood descriptors (Heinrich et al. 2012, 2013).

Each pixel gets a vector of patch distances within a small neighbourhood of itself, turned
into similarities: ``exp(-D(x, a, b) / V(x))``, ``D`` the Gaussian-weighted squared
difference of the patches around ``x + a`` and ``x + b``, ``V`` a local noise estimate (the
mean of ``D`` over the channels). The descriptor depends on the local structure, not on the
intensities, so two modalities that show the same structures with different (even inverted)
contrast give similar descriptor images, which plain SSD can then compare.

Self-similarity context (SSC) in 2-D: the four neighbours at ``±radius`` along each axis form
a diamond; the channels are the six pairs among them (four at ``√2·radius``, two at
``2·radius``), never the centre pixel itself (noise at the centre affects no channel twice).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy import ndimage

SCALE = 255.0  # descriptors in 0..SCALE: the image term keeps the magnitude of 0..255 intensities


def _shifted(im: np.ndarray, dy: int, dx: int, r: int) -> np.ndarray:
    """``im(y + dy, x + dx)`` with mirrored borders, for a ``(..., H, W)`` stack padded by ``r``."""
    pad = [(0, 0)] * (im.ndim - 2) + [(r, r), (r, r)]
    p = np.pad(im, pad, mode="symmetric")
    h, w = im.shape[-2:]
    return p[..., r + dy:r + dy + h, r + dx:r + dx + w]


def mind_ssc(images: np.ndarray, radius: int = 2, sigma: float = 0.8) -> np.ndarray:
    """MIND-SSC descriptors ``(B, 6, H, W)`` float32 in ``0..255`` of images ``(B, H, W)``."""
    a = np.asarray(images, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    r = max(1, min(int(radius), min(a.shape[-2:]) // 2 - 1)) if min(a.shape[-2:]) > 3 else 1
    neighbours = [(-r, 0), (0, -r), (r, 0), (0, r)]
    shifted = {n: _shifted(a, n[0], n[1], 2 * r) for n in neighbours}
    d = []
    for p, q in combinations(neighbours, 2):
        diff = (shifted[p] - shifted[q]) ** 2
        d.append(ndimage.gaussian_filter(diff, sigma=(0, sigma, sigma), mode="mirror") if sigma > 0 else diff)
    dist = np.stack(d, axis=1)  # (B, 6, H, W)
    v = dist.mean(axis=1, keepdims=True)
    mean_v = v.mean(axis=(1, 2, 3), keepdims=True)
    v = np.clip(v, 1e-3 * mean_v + 1e-12, 1e3 * mean_v + 1e-12)
    desc = np.exp(-dist / v)
    desc /= desc.max(axis=1, keepdims=True)
    return (desc * SCALE).astype(np.float32)
