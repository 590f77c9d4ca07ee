"""One LOM/CBS pair end to end: style the LOM, register it to the CBS, re-apply to the original.

Outputs in the pair's folder (each written atomically; ``metrics.json`` last, so its
presence means the pair is complete): ``styled.tif`` and ``target.tif`` (the two images
bUnwarpJ registers, both about 0..255), ``direct_transf.txt``,
``inverse_transf.txt`` (not in Mono mode), ``registered.tif`` (the original LOM on the CBS
grid, with the CBS pixel size and the LOM file's 8/16-bit pixel type), ``metrics.json`` and ``overlay.png``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..io import Micrograph, atomic_write_text, normalize, read_image, to_gray, write_png, write_tiff
from ..quality import ncc, nmi, tier_from_tre, transform_stats, tre
from ..registration import PIPELINE_DEFAULTS, BUnwarpJParams, Registration, register
from ..transform import read_transform, warp_image, write_elastic
from .grid import GridMatch, direct_to_original, inverse_to_original, match_pixel_size
from .overlay import overlay_rgb
from .prealign import compose_with_prealignment, estimate_similarity, inverse_through_prealignment, prealigned_source

COARSE_SIGMA_FOR_EDGES = 3.0
"""Blur (px) of the first pass when registering boundary maps (measured: docs/style.md)."""

MAX_AREA_RATIO = 16.0
"""LOM and CBS fields of view (in pixels, after pixel-size matching) differing more than this are refused."""

log = logging.getLogger(__name__)

PathLikeStr = str | PathLike[str]


@dataclass(frozen=True)
class PreparedPair:
    """The two images bUnwarpJ registers, and where they came from."""

    lom: Micrograph
    cbs: Micrograph
    target: np.ndarray
    styled: np.ndarray
    style_info: dict
    style_seconds: float
    grid: GridMatch


@dataclass(frozen=True)
class PairResult:
    """What :func:`register_pair` produced."""

    out_dir: Path
    registration: Registration
    registered: np.ndarray
    styled: np.ndarray
    metrics: dict


def _as_micrograph(image: PathLikeStr | Micrograph) -> Micrograph:
    return image if isinstance(image, Micrograph) else read_image(image)


def style_images(lom_gray: np.ndarray, cbs_gray: np.ndarray, model: PathLikeStr | None, style: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """The two images the registration compares: ``(source, target, info)``, both about 0..255.

    A thin call into :mod:`styleunwarp.style.representations`: ``style="none"`` gives the raw
    images (the study's baseline); ``style="model"`` the representation of ``model`` — a
    folder written by ``train --target auto`` (its ``chain.json`` names the representation:
    ``none``, ``shared``, ``cbs`` or ``edges``), or a style model folder/file (``None`` = the
    shipped default: the LOM rendered by it and the CBS prepared likewise). The source may be
    grey or RGB (a 3-channel model then sees the colour).
    """
    if style not in ("model", "none"):
        raise ValueError(f"style must be 'model' or 'none', got {style!r}")
    from ..style.chain import chain_file, load_representation

    rep = load_representation(model, style)
    styled, target = rep.represent(lom_gray, cbs_gray)
    if style == "none":
        return styled, target, {"style": "none", "representation": "none"}
    source = chain_file(model) or getattr(getattr(rep, "model", None), "source", None) or model or "default"
    info = {"style": "model", "model": str(source), "style_target": rep.kind, "representation": rep.kind}
    return styled, target, info


def prepare_pair(
    lom: PathLikeStr | Micrograph,
    cbs: PathLikeStr | Micrograph,
    out_dir: PathLikeStr,
    *,
    model: PathLikeStr | None = None,
    style: str = "model",
) -> PreparedPair:
    """Read a pair and make the two images bUnwarpJ compares: ``styled.tif`` and ``target.tif``.

    This is everything before registration; the Fiji macro and script call it (through
    ``styleunwarp prepare``) and run bUnwarpJ themselves on the two files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lom_m, cbs_m = _as_micrograph(lom), _as_micrograph(cbs)
    cbs_gray = to_gray(cbs_m.data)
    target = cbs_gray
    lom_gray, grid = match_pixel_size(to_gray(lom_m.data), lom_m.pixel_size, cbs_m.pixel_size)
    ratio = (lom_gray.shape[0] * lom_gray.shape[1]) / (target.shape[0] * target.shape[1])
    if not 1 / MAX_AREA_RATIO <= ratio <= MAX_AREA_RATIO:
        raise InputError(
            lom_m.path,
            f"size does not match its CBS image {cbs_m.path}: {lom_gray.shape[1]}x{lom_gray.shape[0]} px ({grid.reason}) "
            f"vs {target.shape[1]}x{target.shape[0]} px; check the pairing and the pixel sizes",
        )
    t0 = time.perf_counter()
    styled, target, style_info = style_images(lom_gray, cbs_gray, model, style)
    style_seconds = time.perf_counter() - t0
    write_tiff(out / "styled.tif", styled, pixel_size=cbs_m.pixel_size if grid.factor != 1.0 else lom_m.pixel_size)
    write_tiff(out / "target.tif", target, pixel_size=cbs_m.pixel_size)
    return PreparedPair(lom_m, cbs_m, target, styled, style_info, style_seconds, grid)


def register_pair(
    lom: PathLikeStr | Micrograph,
    cbs: PathLikeStr | Micrograph,
    out_dir: PathLikeStr,
    *,
    model: PathLikeStr | None = None,
    style: str = "model",
    backend: str = "bunwarpj",
    params: BUnwarpJParams | None = None,
    fiji_dir: PathLikeStr | None = None,
    truth: PathLikeStr | None = None,
    prealign: bool = False,
    coarse_sigma: float | None = None,
    backend_options: dict | None = None,
) -> PairResult:
    """Register one LOM image to its CBS image and write the results into ``out_dir``.

    Parameters
    ----------
    lom, cbs
        Files (or already read :class:`~styleunwarp.io.Micrograph`) of the source (LOM, may
        be RGB) and the target (CBS; an SEM data bar is cropped automatically).
    model, style
        Style model (folder or weights file; ``None`` = the shipped default) and
        ``"model"`` or ``"none"`` (register the raw LOM).
    backend, params, fiji_dir
        Registration backend, bUnwarpJ parameters (default
        :data:`~styleunwarp.registration.PIPELINE_DEFAULTS`), and the Fiji/ImageJ folder.
    truth
        Optional ground-truth direct transform file; adds TRE and a tier to the metrics.
    prealign
        Estimate a similarity transform (rotation, scale, shift) first, for pairs that
        are not pre-aligned; it is composed into the saved transforms.
    coarse_sigma
        Register blurred images first (Gaussian sigma in px), then the sharp ones. ``None``
        chooses: 3 px for boundary-map style models (thin lines give SSD a narrow capture
        range), off otherwise; 0 turns it off.
    backend_options
        Extra keyword arguments of the backend (e.g. ``{"similarity": "nmi"}`` for native).

    The LOM is brought to the CBS pixel size when both files carry one; the saved
    transforms always refer to the original LOM file.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    prep = prepare_pair(lom, cbs, out, model=model, style=style)
    lom_m, cbs_m, target, styled = prep.lom, prep.cbs, prep.target, prep.styled
    lom_gray, cbs_gray = to_gray(lom_m.data), to_gray(cbs_m.data)
    params = params or PIPELINE_DEFAULTS

    options = {"fiji_dir": fiji_dir} if backend == "bunwarpj" else {}
    options.update(backend_options or {})
    similarity = None
    moving = styled
    if prealign:
        similarity = estimate_similarity(target, styled)
        moving = prealigned_source(styled, similarity, target.shape)
    if coarse_sigma is None:
        coarse_sigma = COARSE_SIGMA_FOR_EDGES if prep.style_info.get("style_target") == "edges" else 0.0
    reg = register(target, moving, params, backend=backend, coarse_sigma=coarse_sigma, **options)
    direct, inverse = reg.direct, reg.inverse
    moved = warp_image(moving, reg.direct, target.shape)  # what bUnwarpJ's image term compared
    if similarity is not None:
        direct = compose_with_prealignment(direct, similarity)
        if inverse is not None:
            inverse = inverse_through_prealignment(inverse, similarity, styled.shape, target.shape)
    direct = direct_to_original(direct, prep.grid)
    inverse = None if inverse is None else inverse_to_original(inverse, prep.grid)
    write_elastic(direct, out / "direct_transf.txt")
    if inverse is not None:
        write_elastic(inverse, out / "inverse_transf.txt")

    t0 = time.perf_counter()
    if backend == "bunwarpj":
        from ..registration.bunwarpj import apply_transform

        registered = apply_transform(lom_m.data, direct, target.shape, fiji_dir=fiji_dir)
    else:
        registered = warp_image(lom_m.data, direct, target.shape)
    apply_seconds = time.perf_counter() - t0
    write_tiff(out / "registered.tif", registered, pixel_size=cbs_m.pixel_size, dtype=lom_m.metadata.get("dtype"))

    reg_gray = to_gray(registered)
    inside = reg_gray != 0
    common = tuple(min(a, b) for a, b in zip(lom_gray.shape, target.shape))
    metrics: dict = {
        "styleunwarp_version": __version__,
        "lom": str(lom_m.path) if lom_m.path else None,
        "cbs": str(cbs_m.path) if cbs_m.path else None,
        "lom_shape": list(lom_m.data.shape),
        "cbs_shape": list(target.shape),
        "lom_pixel_size_um": lom_m.pixel_size,
        "cbs_pixel_size_um": cbs_m.pixel_size,
        "cbs_data_bar_rows": cbs_m.metadata.get("data_bar_rows", 0),
        **prep.style_info,
        "backend": reg.backend,
        "backend_options": dict(backend_options or {}),
        "params": params.to_dict(),
        "nmi_before": nmi(lom_gray[: common[0], : common[1]], cbs_gray[: common[0], : common[1]]),
        "nmi_after": nmi(reg_gray, cbs_gray, inside),
        "styled_nmi_after": nmi(moved, target, moved != 0),
        "styled_ncc_after": ncc(moved, target, moved != 0),
        "pixel_grid": prep.grid.to_dict(),
        "prealignment": None if similarity is None else similarity.to_dict(),
        "transform": transform_stats(direct, target.shape, lom_gray.shape, inverse).to_dict(),
        "seconds": {
            "style": prep.style_seconds,
            "registration": reg.seconds,
            "apply": apply_seconds,
            "total": time.perf_counter() - t_start,
        },
        "registration_info": reg.info,
    }
    if truth is not None:
        true_t = read_transform(truth)
        err = tre(direct, true_t, target.shape, lom_gray.shape)
        folded = metrics["transform"]["folded_fraction"] > 0
        metrics["tre"] = err.to_dict()
        metrics["tier"] = tier_from_tre(err.mean, err.p95, folded)
    write_png(out / "overlay.png", overlay_rgb(reg_gray, cbs_gray))
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=float) + "\n")
    return PairResult(out, reg, registered, styled, metrics)
