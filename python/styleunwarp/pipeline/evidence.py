"""Structure evidence of a finished registration: does the registered source show the target's scene?

Every registration's ``metrics.json`` carries ``structure``: the MIND agreement of the
**original** source, moved by the saved direct transform, with the **original** target over
the pixels the source covers, judged against chance (:func:`styleunwarp.structure.mind_verdict`).
It reads raw images, whatever representation and backend produced the transform, so results
of different chains on one pair can be compared with each other (``style/tournament.py``), and
a result in a modality pair the grader was never calibrated on still gets a verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import StyleunwarpError
from ..io import read_image, to_gray
from ..structure import analysis_factor, mind_verdict
from ..transform import ElasticTransform, read_transform
from ..transform.model import to_dense
from ..transform.warp import inside_source

EVIDENCE_KEY = "structure"
"""The ``metrics.json`` key of the evidence."""


def structure_evidence(registered: np.ndarray, target: np.ndarray, direct: ElasticTransform | np.ndarray,
                       source_shape: tuple[int, int], coarse_factor: int | None = None) -> dict:
    """:func:`~styleunwarp.structure.mind_verdict` of ``registered`` (the source on the target
    grid, grey or RGB) against ``target`` over the target pixels ``direct`` (a transform, or its
    dense ``(2, H, W)`` map when the caller has it) maps inside a source of ``source_shape``;
    values rounded for ``metrics.json``.

    ``coarse_factor``: the block size at which the coarse step confirmed the structure both images
    share (``coarse.confirmation.factor``, where it fell back from full resolution: chromatin patches
    against an EM image's fine texture). Where the result is not shown aligned at full resolution,
    the verdict at that scale is added under ``coarse`` (``factor``, ``mind``, ``z``, ``residual_px``,
    ``aligned``). It says the result is aligned to about that many pixels, no closer; ``aligned``
    stays the full-resolution verdict, which every decision and the grader read."""
    covered = inside_source(to_dense(direct, target.shape[:2]), source_shape[:2])
    a, b = to_gray(registered), to_gray(target)
    v = mind_verdict(a, b, covered)
    if coarse_factor and int(coarse_factor) > analysis_factor(target.shape) and not v["aligned"]:
        c = mind_verdict(a, b, covered, factor=int(coarse_factor))
        v["coarse"] = {"factor": int(coarse_factor), **{k: _rounded(c[k]) for k in ("mind", "z", "residual_px", "aligned")}}
    return {k: _rounded(x) for k, x in v.items()}


def _rounded(x):
    return round(float(x), 5) if isinstance(x, float) and np.isfinite(x) else x


def evidence_of(folder: Path, metrics: dict | None = None) -> dict | None:
    """The evidence of the registration in ``folder``: from its ``metrics.json`` when recorded,
    else computed from its files (``registered.tif``, ``direct_transf.txt`` and the target file
    named in ``metrics.json``; for folders written before the evidence existed). ``None`` when
    it cannot be had."""
    folder = Path(folder)
    if metrics is None:
        try:
            metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    if isinstance(metrics.get(EVIDENCE_KEY), dict):
        return metrics[EVIDENCE_KEY]
    try:
        h, w = metrics["cbs_shape"][:2]
        target = read_image(metrics["cbs"]).data[:h, :w]
        registered = read_image(folder / "registered.tif").data
        direct = read_transform(folder / "direct_transf.txt")
        source_shape = tuple(metrics["lom_shape"][:2])
    except (OSError, KeyError, TypeError, ValueError, StyleunwarpError):
        return None
    if registered.shape[:2] != target.shape[:2]:
        return None
    return structure_evidence(registered, target, direct, source_shape)


__all__ = ["EVIDENCE_KEY", "evidence_of", "structure_evidence"]
