"""Held-out test cases for choosing a chain by registration accuracy.

An aligned pair (source, target on one grid) becomes a test case by deforming the source
with a random smooth known deformation (rotation, shift, elastic part; some cases near the
identity): the registration of the deformed source to the target should recover it, and
the target registration error (TRE) against the known deformation scores the chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..synth.deform import Deformation, random_deformation, source_positions
from ..transform import ElasticTransform

#: Deformation ranges (rotation deg, shift px, elastic RMS px) of the two kinds of test case.
NEAR_IDENTITY = {"rotation_deg": (0.0, 0.5), "shift_px": (0.0, 1.5), "elastic_px": (0.0, 0.7)}
MODERATE = {"rotation_deg": (0.5, 3.0), "shift_px": (1.5, 8.0), "elastic_px": (0.7, 3.0)}


@dataclass
class Case:
    """One held-out registration problem with its ground truth."""

    name: str
    source: np.ndarray  # deformed source, (H, W) or (H, W, 3), original intensities
    target: np.ndarray  # (H, W)
    truth: ElasticTransform  # direct transform: target pixel -> source position
    kind: str  # "near-identity" or "moderate"


def deform_source(source: np.ndarray, deformation: Deformation) -> np.ndarray:
    """The source as seen through ``deformation``: pixel ``p`` shows ``source(T^-1(p))``."""
    pos = source_positions(deformation, source.shape[:2])
    coords = np.stack([pos[1], pos[0]])
    if source.ndim == 2:
        return ndimage.map_coordinates(source.astype(np.float32), coords, order=3, mode="reflect").astype(np.float32)
    return np.stack([ndimage.map_coordinates(source[..., c].astype(np.float32), coords, order=3, mode="reflect")
                     for c in range(source.shape[2])], axis=-1).astype(np.float32)


def make_cases(pairs: list[tuple[str, np.ndarray, np.ndarray]], per_pair: int, seed: int = 0,
               max_side: int | None = None) -> list[Case]:
    """``per_pair`` deformed cases for each aligned ``(name, source, target)``; the first of
    each pair is near the identity, the others moderate. ``max_side`` crops a centred
    window of at most this many pixels a side (faster evaluations on large images)."""
    cases = []
    for i, (name, src, tgt) in enumerate(pairs):
        if max_side is not None:
            h, w = tgt.shape[:2]
            y0, x0 = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
            src = src[y0:y0 + max_side, x0:x0 + max_side]
            tgt = tgt[y0:y0 + max_side, x0:x0 + max_side]
        for k in range(per_pair):
            rng = np.random.default_rng([seed, i, k, 11])
            kind = "near-identity" if k == 0 else "moderate"
            d = random_deformation(rng, tgt.shape[:2], **(NEAR_IDENTITY if k == 0 else MODERATE))
            cases.append(Case(f"{name}#{k}", deform_source(src, d), np.asarray(tgt, np.float32), d.truth, kind))
    return cases
