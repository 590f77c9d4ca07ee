"""Checks every registration backend applies to its input images."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

MIN_SIZE = 16
"""Smallest image side a backend is given (the pyramids need a few levels)."""


def check_image(image: np.ndarray, role: str, dtype: type = np.float32) -> np.ndarray:
    """A finite, non-constant 2-D copy of ``image`` in ``dtype``, or an :class:`InputError`.

    ``role`` (``"target"`` / ``"source"``) names the image in the message.
    """
    a = np.asarray(image)
    if a.ndim != 2:
        raise InputError(None, f"{role} image must be 2-D grey, got shape {a.shape} (convert RGB with styleunwarp.io.to_gray)")
    if min(a.shape) < MIN_SIZE:
        raise InputError(None, f"{role} image is {a.shape[1]}x{a.shape[0]} px; registration needs at least {MIN_SIZE} px per side")
    a = a.astype(dtype)
    bad = ~np.isfinite(a)
    if bad.any():
        raise InputError(None, f"{role} image has {int(bad.sum())} NaN or infinite pixels")
    if float(a.max() - a.min()) == 0.0:
        raise InputError(None, f"{role} image is constant ({float(a.flat[0])}): nothing to register")
    return a
