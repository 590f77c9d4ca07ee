"""Representations: what the registration compares, one module per kind behind one interface.

A :class:`Representation` turns a ``(source, target)`` pair (source possibly RGB) into two
grey float32 images of one scale, about 0..255, that an intensity-based registration can
compare; :meth:`Representation.similarity` scores how alike two such images are (higher is
better), so "never worse than the start" checks work on any representation.

Kinds (registered by name in :data:`KINDS`, imported only when used):

* ``none`` — the raw images (:mod:`.raw`), for MI/NMI backends (training-free);
* ``lut`` — the source mapped pixelwise to the target's expected grey level for its grey level
  or colour, a lookup table fitted on aligned pairs in seconds (:mod:`.lut`);
* ``cbs`` / ``edges`` — a U-Net translation of the source into the target's look or into the
  target's boundary map (:mod:`.translation`, the pix2pix code of :mod:`styleunwarp.style`);
* ``shared`` — two small networks, one per modality, trained jointly with InfoNCE so that
  corresponding pixels get the same code (CoMIR-like, :mod:`.shared`).

A trained representation is saved into a model folder (safetensors + a JSON section of the
chain card, nothing unpickled) and loaded from it with :func:`load`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

#: name -> "module:Class" (modules of this package).
KINDS = {"none": "raw:Raw", "lut": "lut:IntensityMap", "cbs": "translation:Translation", "edges": "translation:Translation",
         "shared": "shared:Shared"}


def similarity(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The shared similarity of two represented images: normalised mutual information
    (1 = independent .. 2 = identical), indifferent to each image's grey mapping."""
    from ...quality import nmi

    return nmi(np.asarray(a), np.asarray(b), mask)


class Representation(ABC):
    """Turns a (source, target) pair into the two images the registration compares."""

    kind: ClassVar[str]
    trainable: ClassVar[bool] = False

    @abstractmethod
    def represent(self, source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(source_code, target_code)``: float32 ``(H, W)`` each, about 0..255, one scale."""

    def reference_target(self, target: np.ndarray) -> np.ndarray | None:
        """The target as the coarse alignment and the never-worse check
        (:func:`styleunwarp.pipeline.chain.register_representations`) see it, when that differs
        from the represented target the elastic step fits; ``None``: the represented target.
        (A check on an image the elastic step did not optimise is not biased toward its fit.)"""
        return None

    def similarity(self, a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
        """How alike two represented images are (higher is better); default :func:`similarity`."""
        return similarity(a, b, mask)

    def save(self, folder: Path) -> dict:
        """Write the weights (if any) into ``folder``; return the card section that :func:`load` reads."""
        return {"kind": self.kind}

    @classmethod
    def from_card(cls, folder: Path, section: dict) -> "Representation":
        """The representation a :meth:`save` wrote."""
        return cls()


def representation_class(kind: str) -> type[Representation]:
    """The class of a representation kind (see :data:`KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown representation {kind!r}; choose from {', '.join(KINDS)}")
    module, cls = KINDS[kind].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def load(folder: str | Path, section: dict) -> Representation:
    """Load the representation described by a chain card's ``representation`` section."""
    from ...errors import InputError

    kind = section.get("kind") if isinstance(section, dict) else None
    if kind not in KINDS:
        raise InputError(folder, f"model card names an unknown representation {kind!r} (known: {', '.join(KINDS)})")
    return representation_class(kind).from_card(Path(folder), section)


__all__ = ["KINDS", "Representation", "load", "representation_class", "similarity"]
