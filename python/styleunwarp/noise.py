"""Image noise: how much there is, and removing it before a boundary map is taken.

A boundary map (Gaussian gradient magnitude) of a noisy micrograph is dominated by the noise
inside grains: real SEM-CBS images of ../shared/data/openecci-cbs carry about three times the
noise of styleunwarp's CBS renderings (:func:`noise_sigma` 0.12-0.19 against 0.03-0.07 on the
percentile-stretched [-1, 1] scale), and that texture pulls the elastic registration. Total
variation denoising with a weight proportional to the measured noise keeps the steps (grain
and twin boundaries) and flattens the texture; on clean images it changes almost nothing.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Immerkær's noise-estimation kernel: the difference of two Laplacians, blind to linear ramps.
_KERNEL = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of additive white noise in a grey ``image`` (Immerkær 1996).

    Fast and robust to structure: the mean absolute response to a kernel that cancels
    constant and linear intensity, scaled so Gaussian noise of sd s gives s.
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2 or min(x.shape) < 3:
        raise ValueError(f"noise_sigma needs a 2-D image of at least 3x3 pixels, got shape {x.shape}")
    response = ndimage.convolve(x, _KERNEL, mode="reflect")[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2.0) / 6.0 * np.mean(np.abs(response)))


def denoise(image: np.ndarray, strength: float) -> np.ndarray:
    """``image`` after total-variation denoising (Chambolle) with weight ``strength`` x its
    :func:`noise_sigma`; ``strength`` 0 returns it unchanged (as float64)."""
    x = np.asarray(image, dtype=np.float64)
    if strength < 0 or not np.isfinite(strength):
        raise ValueError(f"denoising strength must be >= 0, got {strength}")
    if strength == 0:
        return x
    weight = strength * noise_sigma(x)
    if weight <= 0:
        return x
    from skimage.restoration import denoise_tv_chambolle

    return np.asarray(denoise_tv_chambolle(x.astype(np.float32), weight=weight), dtype=np.float64)


__all__ = ["denoise", "noise_sigma"]
