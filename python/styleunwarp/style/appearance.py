"""Random appearance changes of a training source crop, so that a model serves looks it was not shown.

The renderings a model is trained on show a few ways of imaging a surface; a user's microscope shows
others (another etch colour, dark field where we rendered bright field, another camera curve). The
structure does not change with the look, so the training target stays as it is and only the source
(:func:`vary_appearance`) is changed: channel order and colour cast, a grey camera, a tone curve,
inverted or folded contrast (dark field turns dark grooves bright; folding makes both extremes of a
grey range alike), blur and noise. The changes act on the crop as normalised by
:func:`styleunwarp.style.data.normalize_input` (mapped to 0..1), so the model meets a changed range
as a different microscope's image would give it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


CHANGES = {
    "permute": 0.3,  # colour channels in another order (RGB only)
    "grey": 0.2,  # one grey for all channels (RGB only)
    "cast": 0.5,  # per-channel gain and offset: another etch colour, white balance (RGB only)
    "curve": 0.4,  # a power tone curve, exponent 0.5-2
    "fold": 0.12,  # |u - median|: both ends of the grey range look alike
    "invert": 0.25,  # dark <-> bright (bright-field grooves as dark field shows them)
    "blur": 0.3,  # Gaussian blur, sigma 0.5-1.5 px
    "noise": 0.3,  # Gaussian noise, sd 1-6 % of the range
}
"""Each change's probability, independently, for a crop that gets its appearance varied."""


def vary_appearance(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of the normalised source crop ``x`` (``(C, H, W)``, C 1 or 3, about [-1, 1]) with a
    random look (:data:`CHANGES`), in [-1, 1]. The crop is not stretched again: a crop of a whole
    image spans only part of the image's range, and stretching a flat crop would turn its noise
    into texture."""
    x = np.array(x, dtype=np.float32, copy=True)
    colour = x.shape[0] == 3
    u = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
    if colour and rng.random() < CHANGES["permute"]:
        u = u[rng.permutation(3)]
    if colour and rng.random() < CHANGES["grey"]:
        u = np.repeat(u.mean(axis=0, keepdims=True), 3, axis=0)
    if colour and rng.random() < CHANGES["cast"]:
        u = np.clip(u * rng.uniform(0.6, 1.4, (3, 1, 1)) + rng.uniform(-0.2, 0.2, (3, 1, 1)), 0.0, 1.0)
    if rng.random() < CHANGES["curve"]:
        u = u ** float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    if rng.random() < CHANGES["fold"]:
        u = np.minimum(2.0 * np.abs(u - np.median(u)), 1.0)
    if rng.random() < CHANGES["invert"]:
        u = 1.0 - u
    if rng.random() < CHANGES["blur"]:
        s = float(rng.uniform(0.5, 1.5))
        u = np.stack([ndimage.gaussian_filter(ch, s) for ch in u])
    if rng.random() < CHANGES["noise"]:
        u = u + rng.normal(0.0, float(rng.uniform(0.01, 0.06)), u.shape)
    return (np.clip(u, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


__all__ = ["CHANGES", "vary_appearance"]
