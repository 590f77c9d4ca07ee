"""Elastic registration behind one interface: ``register(target, source, params)``.

Backends: ``"bunwarpj"`` (the real Fiji plugin through :mod:`styleunwarp.imagej`),
``"native"`` (the same model in PyTorch) and ``"elastix"`` (itk-elastix, mutual
information, the classic multi-modal alternative; optional). Each backend is a module of this package with a
``register`` function of the signature below; it is imported only when used.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np

from ..errors import InputError
from .params import MODES, PIPELINE_DEFAULTS, SCALES, BUnwarpJParams
from .result import Points, Registration

BACKENDS = ("bunwarpj", "native", "elastix")


def register(
    target: np.ndarray,
    source: np.ndarray,
    params: BUnwarpJParams | None = None,
    *,
    backend: str = "bunwarpj",
    target_mask: np.ndarray | None = None,
    source_mask: np.ndarray | None = None,
    landmarks: tuple[Points, Points] | None = None,
    coarse_sigma: float = 0.0,
    **options,
) -> Registration:
    """Register ``source`` (moved) to ``target`` (fixed).

    Parameters
    ----------
    target, source
        Grey images ``(H, W)``, intensities roughly 0..255 (bUnwarpJ's SSD term returns the
        identity silently for images scaled to [0, 1]: use :func:`styleunwarp.io.normalize`).
    params
        bUnwarpJ's parameters (defaults: the plugin dialog's).
    backend
        ``"bunwarpj"``, ``"native"`` or ``"elastix"``.
    target_mask, source_mask
        Optional boolean masks of the pixels to use.
    landmarks
        Optional ``(target_points, source_points)``, each ``(K, 2)`` of ``(x, y)``.
    coarse_sigma
        If > 0, register twice: first both images blurred by this Gaussian sigma (px), then
        the sharp images starting from that result (see :mod:`.coarse_to_fine`).
    options
        Backend-specific keyword arguments (e.g. ``fiji_dir`` for bUnwarpJ).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown registration backend {backend!r}; choose from {', '.join(BACKENDS)}")
    module = importlib.import_module(f"{__name__}.{backend}")
    accepted = inspect.signature(module.register).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
    unknown = [] if takes_any else sorted(k for k in options if k not in accepted)
    if unknown:
        known = ", ".join(k for k, p in accepted.items() if p.kind == p.KEYWORD_ONLY and k not in ("target_mask", "source_mask", "landmarks"))
        raise InputError(None, f"the {backend} backend has no option {', '.join(map(repr, unknown))}; it takes: {known or 'none'}")
    kwargs = dict(target_mask=target_mask, source_mask=source_mask, landmarks=landmarks, **options)
    try:
        if coarse_sigma > 0:
            from .coarse_to_fine import register_coarse_to_fine

            return register_coarse_to_fine(module.register, target, source, params or BUnwarpJParams(), coarse_sigma, **kwargs)
        return module.register(target, source, params or BUnwarpJParams(), **kwargs)
    except TypeError as exc:  # a backend taking **options found one it does not know
        if "unexpected keyword argument" in str(exc):
            raise InputError(None, f"the {backend} backend: {exc}") from exc
        raise


__all__ = ["BACKENDS", "MODES", "PIPELINE_DEFAULTS", "SCALES", "BUnwarpJParams", "Points", "Registration", "register"]
