"""Pictures that show how well two images are aligned."""

from __future__ import annotations

import numpy as np


def _unit(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(a, [0.5, 99.5])
    return np.clip((a - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def overlay_rgb(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Magenta/green overlay (uint8 RGB): moving in magenta, fixed in green; grey where they agree."""
    m, f = _unit(moving), _unit(fixed)
    return (np.stack([m, f, m], axis=-1) * 255).astype(np.uint8)


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Checkerboard of two grey images of the same shape (float32, each contrast-stretched)."""
    ua, ub = _unit(a), _unit(b)
    h, w = ua.shape
    yy, xx = np.mgrid[0:h, 0:w]
    board = ((yy * tiles // h) + (xx * tiles // w)) % 2 == 0
    return np.where(board, ua, ub).astype(np.float32)
