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
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..io import Micrograph, atomic_write_text, read_image, to_gray, write_png, write_tiff
from ..quality import HELDOUT_KEY, grade, grade_details, ncc, nmi, transform_stats, tre
from ..registration import PIPELINE_DEFAULTS, BUnwarpJParams, Registration
from ..style.chain import registration_heldout
from ..transform import read_transform, to_dense, warp_image, write_elastic
from .grid import GridMatch, direct_to_original, inverse_to_original, match_pixel_size
from .overlay import overlay_rgb
from .chain import ChainOutcome, check_for, default_coarse_sigma, register_representations
from .adapt import default_adapt_steps
from .consensus import default_consensus_px
from .fine_affine import default_fine_sigmas
from .evidence import EVIDENCE_KEY, structure_evidence

MAX_AREA_RATIO = 16.0
"""LOM and CBS fields of view (in pixels, after pixel-size matching) differing more than this are refused."""

SIZE_WARNING_RATIO = 1.5
"""Without both pixel sizes, LOM and CBS sides differing more than this get a warning (the scale is searched)."""

FIELD_WARNING_RATIO = 3.0
"""With both pixel sizes, fields whose sides differ more than this get a warning (pixel sizes suspect)."""

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
    pixel_sizes: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    reference_target: np.ndarray | None = None  # what the coarse step and the never-worse check use, if not ``target``
    source_gray: np.ndarray | None = None  # the LOM as recorded, grey, on the styled image's grid (pixel sizes matched)
    source: np.ndarray | None = None  # the LOM as read (grey or RGB), on the styled image's grid: what the representation took
    made_with: tuple[PathLikeStr | None, str, str | None] = (None, "model", None)  # (model, style, representation) as :func:`prepare_pair` took them

    @property
    def scale_known(self) -> bool:
        """Whether both pixel sizes are known (then the LOM is on the CBS pixel size)."""
        return bool(self.lom.pixel_size) and bool(self.cbs.pixel_size)


@dataclass(frozen=True)
class DeferredAdaptation:
    """What adapting a pair's result later needs (:func:`register_pair` with ``defer_adapt``,
    :func:`adapt_result`): the chain's outcome, what it registered, and how."""

    prep: PreparedPair
    chain: ChainOutcome
    chain_kwargs: dict
    params: BUnwarpJParams
    representation: object
    steps: int
    write: dict
    """The keyword arguments of :func:`_write_result` other than the chain and the adaptation."""


@dataclass(frozen=True)
class PairResult:
    """What :func:`register_pair` produced."""

    out_dir: Path
    registration: Registration
    registered: np.ndarray
    styled: np.ndarray
    metrics: dict
    deferred: DeferredAdaptation | None = None
    """Set where the model's adaptation was deferred (``defer_adapt``): :func:`adapt_result` does it."""


def _as_micrograph(image: PathLikeStr | Micrograph) -> Micrograph:
    return image if isinstance(image, Micrograph) else read_image(image)


def style_images(lom: np.ndarray, cbs_gray: np.ndarray, model: PathLikeStr | None, style: str,
                 representation: str | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The two images the registration compares: ``(source, target, info)``, both about 0..255.

    A thin call into :mod:`styleunwarp.style.representations`: ``style="none"`` gives the raw
    images (the study's baseline); ``style="model"`` the representation of ``model`` — a
    folder written by ``train --target auto`` (its ``chain.json`` names the representation:
    ``none``, ``shared``, ``cbs`` or ``edges``), or a style model folder/file (``None`` = the
    shipped default: the LOM rendered by it and the CBS prepared likewise). The source may be
    grey or RGB (a 3-channel model then sees the colour). ``representation``: another of the
    representations a ``train --target auto`` model lists in its card (default: its chain's).
    """
    if style not in ("model", "none"):
        raise ValueError(f"style must be 'model' or 'none', got {style!r}")
    from ..style.cache import cached_representation
    from ..style.chain import chain_file

    rep = cached_representation(model, style, representation)  # loaded once per process while its files are unchanged
    styled, target = rep.represent(lom, cbs_gray)
    if style == "none" or representation == "none":
        return styled, target, {"style": "none", "representation": "none"}
    source = chain_file(model) or getattr(getattr(rep, "model", None), "source", None) or model or "default"
    info = {"style": "model", "model": str(source), "style_target": rep.kind, "representation": rep.kind}
    if representation is not None:
        info["representation_key"] = representation
    return styled, target, info


def with_pixel_size(image: Micrograph, pixel_size: float | None) -> tuple[Micrograph, dict]:
    """The image with ``pixel_size`` (um) given by hand, if any, and where its pixel size came from."""
    if pixel_size is not None:
        if not pixel_size > 0 or not np.isfinite(pixel_size):
            raise InputError(image.path, f"pixel size must be a positive number of micrometres, got {pixel_size}")
        return replace(image, pixel_size=float(pixel_size)), {"um": float(pixel_size), "source": "given"}
    if image.pixel_size:
        return image, {"um": image.pixel_size, "source": f"metadata ({image.metadata.get('pixel_size_source') or 'file'})"}
    return image, {"um": None, "source": "unknown"}


def size_warnings(lom: Micrograph, cbs: Micrograph, lom_shape: tuple[int, int], cbs_shape: tuple[int, int]) -> list[str]:
    """Warnings about a LOM/CBS size ratio the pixel sizes do not explain."""
    ratio = float(np.sqrt((lom_shape[0] * lom_shape[1]) / (cbs_shape[0] * cbs_shape[1])))
    if lom.pixel_size and cbs.pixel_size:
        if not 1 / FIELD_WARNING_RATIO <= ratio <= FIELD_WARNING_RATIO:
            return [
                f"after pixel-size matching the LOM field is {ratio:.2g}x the CBS field per side "
                f"(LOM {lom.pixel_size:.4g} um/px, CBS {cbs.pixel_size:.4g} um/px): check the pixel sizes"
            ]
        return []
    if not 1 / SIZE_WARNING_RATIO <= ratio <= SIZE_WARNING_RATIO:
        missing = "LOM and CBS" if not lom.pixel_size and not cbs.pixel_size else "LOM" if not lom.pixel_size else "CBS"
        return [
            f"the LOM ({lom_shape[1]}x{lom_shape[0]} px) is {ratio:.2g}x the CBS ({cbs_shape[1]}x{cbs_shape[0]} px) per side "
            f"and the {missing} pixel size is unknown: the scale is searched; give --lom-pixel-size/--cbs-pixel-size if known"
        ]
    return []


def require_content(image: Micrograph) -> None:
    """Raise :class:`~styleunwarp.errors.InputError` naming ``image``'s file when every pixel of it
    holds one value: no representation, coarse search or registration can use such an image."""
    data = image.data
    lo = float(data.min())
    if float(data.max()) == lo:
        raise InputError(image.path, f"constant image (every pixel is {lo:g}): nothing to register")


def prepare_pair(
    lom: PathLikeStr | Micrograph,
    cbs: PathLikeStr | Micrograph,
    out_dir: PathLikeStr,
    *,
    model: PathLikeStr | None = None,
    style: str = "model",
    lom_pixel_size: float | None = None,
    cbs_pixel_size: float | None = None,
    representation: str | None = None,
) -> PreparedPair:
    """Read a pair and make the two images bUnwarpJ compares: ``styled.tif`` and ``target.tif``.

    This is everything before registration; the Fiji macro and script call it (through
    ``styleunwarp prepare``) and run bUnwarpJ themselves on the two files.
    ``lom_pixel_size`` / ``cbs_pixel_size`` (um) override the files' metadata;
    ``representation`` as in :func:`style_images`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lom_m, lom_px = with_pixel_size(_as_micrograph(lom), lom_pixel_size)
    cbs_m, cbs_px = with_pixel_size(_as_micrograph(cbs), cbs_pixel_size)
    for image in (lom_m, cbs_m):
        require_content(image)
    cbs_gray = to_gray(cbs_m.data)
    target = cbs_gray
    try:  # on the LOM as read (colour stays colour): the representation takes what its model expects
        lom_matched, grid = match_pixel_size(lom_m.data, lom_m.pixel_size, cbs_m.pixel_size)
    except InputError as exc:
        raise InputError(lom_m.path, exc.problem) from None
    lom_shape = lom_matched.shape[:2]
    ratio = (lom_shape[0] * lom_shape[1]) / (target.shape[0] * target.shape[1])
    if not 1 / MAX_AREA_RATIO <= ratio <= MAX_AREA_RATIO:
        raise InputError(
            lom_m.path,
            f"size does not match its CBS image {cbs_m.path}: {lom_shape[1]}x{lom_shape[0]} px ({grid.reason}) "
            f"vs {target.shape[1]}x{target.shape[0]} px; check the pairing and the pixel sizes",
        )
    warnings = size_warnings(lom_m, cbs_m, lom_shape, target.shape)
    t0 = time.perf_counter()
    styled, target, style_info = style_images(lom_matched, cbs_gray, model, style, representation)
    from ..style.cache import cached_representation

    reference_target = cached_representation(model, style, representation).reference_target(cbs_gray)
    style_seconds = time.perf_counter() - t0
    write_tiff(out / "styled.tif", styled, pixel_size=cbs_m.pixel_size if grid.factor != 1.0 else lom_m.pixel_size)
    write_tiff(out / "target.tif", target, pixel_size=cbs_m.pixel_size)
    return PreparedPair(lom_m, cbs_m, target, styled, style_info, style_seconds, grid, {"lom": lom_px, "cbs": cbs_px}, tuple(warnings),
                        reference_target, to_gray(lom_matched).astype(np.float32), lom_matched, (model, style, representation))


def chain_options(prep: PreparedPair, *, backend: str = "bunwarpj", backend_options: dict | None = None,
                  fiji_dir: PathLikeStr | None = None, coarse_sigma: float | None = None, consensus_px: int | None = None,
                  fine_affine: bool = True, fine_sigmas: tuple[float, ...] | None = None) -> dict:
    """The keyword arguments of :func:`.chain.register_representations` with which :func:`register_pair`
    registers ``prep`` (``None``: the representation's defaults, as in :func:`register_pair`; the fine
    affine fit's blurs: :func:`.fine_affine.default_fine_sigmas` of the model ``prep`` was made with)."""
    if fine_sigmas is None:
        fine_sigmas = default_fine_sigmas(*prep.made_with)
    options = {"fiji_dir": fiji_dir} if backend == "bunwarpj" else {}
    options.update(backend_options or {})
    kind = prep.style_info.get("style_target")
    return dict(backend=backend, backend_options=options,
                coarse_sigma=default_coarse_sigma(kind) if coarse_sigma is None else coarse_sigma, scale_known=prep.scale_known,
                check=check_for(prep.style_info.get("representation")), reference_target=prep.reference_target,
                consensus_px=default_consensus_px(kind) if consensus_px is None else consensus_px, fine_affine=fine_affine,
                fine_sigmas=tuple(fine_sigmas),
                raw=(to_gray(prep.cbs.data), prep.source_gray))


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
    coarse: str = "auto",
    lom_pixel_size: float | None = None,
    cbs_pixel_size: float | None = None,
    prealign: bool = False,
    coarse_sigma: float | None = None,
    backend_options: dict | None = None,
    representation: str | None = None,
    consensus_px: int | None = None,
    fine_affine: bool = True,
    adapt_steps: int | None = None,
    defer_adapt: bool = False,
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
        Optional ground-truth direct transform file; adds TRE and the tier from it.
    coarse
        Coarse alignment before the elastic step (:mod:`.coarse`): ``"auto"`` (default,
        the similarity search), ``"similarity"``, ``"affine"`` or ``"none"``. The identity
        is always a candidate and is kept unless another hypothesis clearly wins.
    lom_pixel_size, cbs_pixel_size
        Pixel sizes in micrometres, overriding the files' metadata.
    prealign
        Deprecated alias of ``coarse="similarity"``.
    coarse_sigma
        Register blurred images first (Gaussian sigma in px), then the sharp ones. ``None``
        chooses: :data:`COARSE_SIGMA_FOR_EDGES` for boundary-map style models (one pass,
        measured), off otherwise; 0 turns it off.
    backend_options
        Extra keyword arguments of the backend (e.g. ``{"similarity": "nmi"}`` for native).
    representation
        With a ``train --target auto`` model: another representation its card lists (a key of
        its ``representations``, e.g. ``"none"``, ``"shipped"``); default the chain's own.
    consensus_px
        The elastic step fits the two images each kept only where the other shows structure
        within this radius (px; :mod:`.consensus`). ``None`` chooses:
        :data:`~.consensus.CONSENSUS_PX_FOR_EDGES` for boundary-map style models, off otherwise; 0 turns it off.
    fine_affine
        Refine the coarse map by a similarity (rotation, scale, shift) at full resolution before the elastic
        step (:mod:`.fine_affine`, verified on the raw images' structure; default on). It fits down to the sharp
        maps, or only down to maps blurred by 2 px for a style model without a chain card, whose maps of looks
        it has not met are biased at the finest scale (:func:`.fine_affine.default_fine_sigmas`).
    adapt_steps
        With a translation model (``edges``/``cbs``): fine-tune a copy of it for this many steps on the
        LOM as the chain registered it, register again from the same start with its map, and keep the
        mean of the two results (:mod:`.adapt`; ``metrics["adapt"]``). 0: off. ``None`` (default):
        :func:`.adapt.default_adapt_steps`, 150 for a style model without a chain card (the shipped
        one), 0 for raw images and for models from ``train``.
    defer_adapt
        Write the chain's result without adapting and return what adapting needs in
        ``PairResult.deferred`` (:func:`adapt_result`), so that a caller comparing the result with
        other chains' (:mod:`.second_opinion`) adapts only a result whose adaptation could matter.

    The LOM is brought to the CBS pixel size when both pixel sizes are known (else the
    coarse step searches the scale); the saved transforms always refer to the original
    LOM file. If the elastic result agrees worse with the target than its start, the start
    is kept. ``metrics.json`` records every coarse candidate, the choice, the pixel sizes'
    origin and the tier (from TRE with ``truth``, else estimated by the grader).
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    if prealign:
        coarse = "similarity"
    prep = prepare_pair(lom, cbs, out, model=model, style=style, lom_pixel_size=lom_pixel_size, cbs_pixel_size=cbs_pixel_size,
                        representation=representation)
    target, styled = prep.target, prep.styled
    params = params or PIPELINE_DEFAULTS

    chain_kwargs = chain_options(prep, backend=backend, backend_options=backend_options, fiji_dir=fiji_dir, coarse_sigma=coarse_sigma,
                                 consensus_px=consensus_px, fine_affine=fine_affine)
    chain = register_representations(target, styled, params, coarse=coarse, **chain_kwargs)
    if adapt_steps is None:
        adapt_steps = default_adapt_steps(model, style, representation)
    heldout = registration_heldout(model, style, representation, backend, backend_options)
    write = dict(out=out, backend=backend, backend_options=backend_options, fiji_dir=fiji_dir, truth=truth, heldout=heldout)
    deferred = None
    if adapt_steps > 0:
        from ..style.cache import cached_representation

        deferred = DeferredAdaptation(prep, chain, chain_kwargs, params, cached_representation(model, style, representation),
                                      int(adapt_steps), dict(write, seconds_before=time.perf_counter() - t_start))
        if not defer_adapt:
            return _adapted(deferred)
    result = _write_result(prep, chain, params, seconds_before=time.perf_counter() - t_start, **write)
    return replace(result, deferred=deferred) if defer_adapt else result


def adapt_result(result: PairResult) -> PairResult:
    """The pair of ``result`` (registered with ``defer_adapt``) with the model adapted to it: a copy
    fine-tuned on the source as the chain registered it, the chain run again from the same start on
    its map, and the mean of the two results kept (:func:`.adapt.adapt_and_register`); its folder's
    files are rewritten (each atomically, ``metrics.json`` last). ``result`` itself where nothing was deferred."""
    return result if result.deferred is None else _adapted(result.deferred)


def _adapted(d: DeferredAdaptation) -> PairResult:
    """Adapt the model of ``d`` to its pair, register again, and write the combined result (:func:`adapt_result`)."""
    from .adapt import adapt_and_register

    t0 = time.perf_counter()
    chain, facts = adapt_and_register(d.chain, d.representation, d.prep.source, to_gray(d.prep.cbs.data), d.prep.target,
                                      d.prep.styled, d.params, steps=d.steps, **d.chain_kwargs)
    return _write_result(d.prep, chain, d.params, adapt=(facts, time.perf_counter() - t0), **d.write)


def _write_result(prep: PreparedPair, chain: ChainOutcome, params: BUnwarpJParams, *, out: Path, backend: str,
                  backend_options: dict | None, fiji_dir: PathLikeStr | None, truth: PathLikeStr | None, seconds_before: float,
                  adapt: tuple[dict, float] | None = None, heldout: dict | None = None) -> PairResult:
    """Write a pair's outputs for the chain's outcome: transforms, the registered original LOM,
    the overlay and ``metrics.json`` (last); ``adapt``: the adaptation's facts and seconds; ``heldout``:
    what ``train`` measured for this chain on its held-out cases (:data:`~styleunwarp.quality.HELDOUT_KEY`)."""
    t_write = time.perf_counter()
    lom_m, cbs_m, target, styled = prep.lom, prep.cbs, prep.target, prep.styled
    lom_gray, cbs_gray = to_gray(lom_m.data), to_gray(cbs_m.data)
    adapt_facts, adapt_seconds = adapt if adapt is not None else (None, 0.0)
    reg, moved, elastic, coarse_res = chain.registration, chain.moved, chain.elastic, chain.coarse
    direct = direct_to_original(chain.direct, prep.grid)
    inverse = None if chain.inverse is None else inverse_to_original(chain.inverse, prep.grid)
    write_elastic(direct, out / "direct_transf.txt")
    if inverse is not None:
        write_elastic(inverse, out / "inverse_transf.txt")
    else:
        (out / "inverse_transf.txt").unlink(missing_ok=True)

    t0 = time.perf_counter()
    dense = to_dense(direct, target.shape)  # evaluated once: the warp, the structure evidence and the TRE share it
    if backend == "bunwarpj":
        from ..registration.bunwarpj import apply_transform

        registered = apply_transform(lom_m.data, direct, target.shape, fiji_dir=fiji_dir)
    else:
        registered = warp_image(lom_m.data, dense, target.shape)
    apply_seconds = time.perf_counter() - t0
    write_tiff(out / "registered.tif", registered, pixel_size=cbs_m.pixel_size, dtype=lom_m.metadata.get("dtype"))

    reg_gray = to_gray(registered)
    inside = reg_gray != 0
    common = tuple(min(a_, b_) for a_, b_ in zip(lom_gray.shape, target.shape))
    metrics: dict = {
        "styleunwarp_version": __version__,
        "lom": str(lom_m.path) if lom_m.path else None,
        "cbs": str(cbs_m.path) if cbs_m.path else None,
        "lom_shape": list(lom_m.data.shape),
        "cbs_shape": list(target.shape),
        "lom_pixel_size_um": lom_m.pixel_size,
        "cbs_pixel_size_um": cbs_m.pixel_size,
        "pixel_size_source": {k: v["source"] for k, v in prep.pixel_sizes.items()},
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
        "coarse": coarse_res.to_dict(target.shape),
        "fine_affine": chain.fine_affine,
        "elastic": elastic,
        **({"adapt": adapt_facts} if adapt_facts is not None else {}),
        EVIDENCE_KEY: structure_evidence(reg_gray, cbs_gray, dense, lom_gray.shape,
                                         coarse_factor=(coarse_res.confirmation or {}).get("factor") if not coarse_res.is_identity else None),
        "transform": transform_stats(direct, target.shape, lom_gray.shape, inverse).to_dict(),
        **({HELDOUT_KEY: heldout} if heldout else {}),
        "warnings": list(prep.warnings),
        "seconds": {
            "style": prep.style_seconds,
            "coarse": chain.coarse_seconds,
            "registration": reg.seconds,
            **({"adapt": adapt_seconds} if adapt_facts is not None else {}),
            "apply": apply_seconds,
            "total": seconds_before + adapt_seconds + time.perf_counter() - t_write,
        },
        "registration_info": reg.info,
    }
    if truth is not None:
        true_t = read_transform(truth)
        err = tre(dense, true_t, target.shape, lom_gray.shape)
        metrics["tre"] = err.to_dict()
    tier, source = grade(metrics)
    metrics["tier"] = tier
    metrics["grade_source"] = source
    metrics["grade_details"] = grade_details(metrics)
    write_png(out / "overlay.png", overlay_rgb(reg_gray, cbs_gray))
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=float) + "\n")
    return PairResult(out, reg, registered, styled, metrics)
