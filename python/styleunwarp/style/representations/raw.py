"""``none``: the raw images (grey), each stretched to 0..255 — for MI/NMI registration."""

from __future__ import annotations

import numpy as np

from . import Representation


class Raw(Representation):
    """The source (RGB converted to luminance) and the target, each percentile-stretched."""

    kind = "none"

    def represent(self, source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from ...io import normalize, to_gray

        return normalize(to_gray(source)), normalize(to_gray(target))
