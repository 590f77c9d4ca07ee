"""What every registration backend returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..transform import ElasticTransform
from .params import BUnwarpJParams

Points = np.ndarray
"""Landmark coordinates, ``(K, 2)`` float array of ``(x, y)``."""


@dataclass(frozen=True)
class Registration:
    """Result of registering a source image to a target image.

    Attributes
    ----------
    direct
        Target pixel → source position (what re-applies the registration to the LOM).
    inverse
        Source pixel → target position, or ``None`` (bUnwarpJ's Mono mode computes none).
    target_shape, source_shape
        ``(H, W)`` of the images the transforms refer to.
    backend
        ``"bunwarpj"`` or ``"native"``.
    params
        The parameters used.
    seconds
        Wall time of the registration itself.
    info
        Backend-specific extras (plugin version, iterations, energy, ...).
    """

    direct: ElasticTransform
    inverse: ElasticTransform | None
    target_shape: tuple[int, int]
    source_shape: tuple[int, int]
    backend: str
    params: BUnwarpJParams
    seconds: float
    info: dict = field(default_factory=dict)

    def __iter__(self) -> Iterator[ElasticTransform | None]:
        """Unpack as ``direct, inverse = register(...)``."""
        return iter((self.direct, self.inverse))
