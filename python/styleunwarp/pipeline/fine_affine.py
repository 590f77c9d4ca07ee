"""A precise affine map between the two representations, from the coarse start.

The coarse step (:mod:`.coarse`) finds a similarity on a reduced grid (192 px) or keeps the
identity when nothing clearly beats it, so its start is typically 0.5-2.5 px off on a 512 px
pair. This step refines that map by a similarity (rotation, one scale, shift:
:data:`FINE_AFFINE_DOF`; ``dof=6`` fits all six affine parameters) at full resolution (images over :data:`FINE_AFFINE_MAX_SIZE` px are reduced), by
maximising the NCC of the two representations over the pixels both cover, coarse to fine over
Gaussian blurs of :data:`FINE_AFFINE_SIGMAS` px (L-BFGS with exact gradients, torch). Four
parameters fitted over the whole image are held by every structure both images show, where
the elastic step's local coefficients follow lines that only one of them draws; shear and
unequal scales are left to the elastic step, as six parameters fitted a representation's own
bias on looks the model was not trained on.

Verified as every step, by something the fit did not optimise: the refined map is kept unless
the *raw* images' structure agreement (MIND-SSC, :func:`styleunwarp.structure.agreement_and_chance`,
the source as recorded moved by each map against the target as recorded) drops by more than
:data:`FINE_AFFINE_MIND_DROP_SDS` of its chance spread. A fit that moves a point of the target by
more than :data:`FINE_AFFINE_MAX_MOVE` of the image's larger side went beyond a local step: it
is a search result, kept only where the raw structure confirms it as the coarse step confirms
its winners (:func:`.coarse.confirm.confirm` against the start, with
:data:`.coarse.confirm.LOCAL_GAIN_SDS`: far above chance, better than the start, consistently
over the image). Why not the representation's gradient agreement, as the
elastic step's rule: at this scale it does not follow the truth (docs/coarse.md, "A fine affine
step"). Raw images of two modalities (``check="structure"``) are not refined: their grey levels
need not be linearly related, so their NCC says nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..structure import structure_drop
from ..threads import torch_threads
from .coarse import warp_source
from .coarse.confirm import LOCAL_GAIN_SDS, confirm
from .coarse.types import Candidate
from .coarse.similarity import _map_points

FINE_AFFINE_SIGMAS = (2.0, 1.0, 0.0)
"""Gaussian blurs (px of the working grid) of the successive fits, coarse to fine, down to the sharp
maps: for representations of the field they were trained on (chains from ``train --target auto``)."""

FINE_AFFINE_SIGMAS_UNSEEN = (4.0, 2.0)
"""The blurs for a style model applied to looks it may not have met (the shipped model;
:func:`styleunwarp.style.chain.applied_to_unseen_looks`): the fit ends on maps blurred by 2 px.

Measured (``benchmarks/bench_fine_affine_blur.py``, docs/coarse.md, "The blur the fine affine fit
ends on"): the step refitted from the recorded coarse starts of as-user runs. On foreign steel
renderings the sharp maps hold the model's bias for looks it was not trained on (a wide groove drawn
as two flanks, dark field): tuning sets (lom4 seeds 80-82, lom3 and blind seed 80; 43 fits) mean TRE at
the fit 0.891 px sharp, 0.757 px ending at 2 px (lom4 alone 1.19 -> 0.88); held out (lom4 seed 83,
9 fits) 2.01 -> 1.09 px, the three fits that moved pairs 1.1-2.6 px away from their start now
0.5-1.1 px closer. The cost: lom3 0.383 -> 0.402 px, blind 0.671 -> 0.708 px. On real shale
(SE -> BSE) the sharp maps are the more precise (a lookup table 0.80 -> 1.40 px, the shipped model's
maps 1.01 -> 1.17 px), hence sharp for models trained on their field."""

FINE_AFFINE_MAX_SIZE = 1024
"""Larger side (px) of the working grid; larger images are reduced for the fit."""

FINE_AFFINE_MIND_DROP_SDS = 2.0
"""Largest drop of the raw images' MIND agreement, in chance spreads, for the refined map to be kept.

Measured on the tuning pairs (docs/coarse.md, "A fine affine step"): fits that brought foreign
steel renderings up to 1.3 px closer to the truth lowered it by at most 1.6 spreads; of the 10
fits that moved shale pairs (the steel model's boundary maps of a BSE image) 0.25-1.3 px away, 7
lowered it by 2.5-6.6 spreads, and no fit that improved a shale pair lowered it by more than 0.05."""

FINE_AFFINE_MAX_MOVE = 0.03
"""Largest move of any target corner or the centre, as a fraction of the larger side, of a local
step; a fit that moves further is kept only where the raw structure confirms it as a coarse winner.

Measured (docs/coarse.md, "Beyond a local step"; ``benchmarks/bench_fine_affine_move.py``): fits
from starts shifted 5 % of the side (seed 49) and 8 % (seed 50, held out) on shale, CLEM and two
foreign steel renderers moved up to 23 % of the side; all 45 fits the structure confirmed ended
within 3.4 px of the truth, none of the 41 it did not confirm within 12 px. Before,
every such fit was refused (a 15 px shale start that the fit brought to 2.1 px stayed at 15 px)."""

FINE_AFFINE_MIN_NCC = 0.20
"""Least NCC of the two representations at the fit for the refined map to be kept.

Below it the representations share too little structure to locate a map at full resolution:
the coarse step's bar for a credible map (:data:`.coarse.MIN_SCORE`, 0.15, on a 192 px grid) let
fits through that moved near-aligned steel renderings away from the truth. Measured
(``benchmarks/bench_fine_affine_floor.py``, the shipped model, the fit replayed with every floor;
docs/coarse.md, "A floor for the fine affine fit"): on the tuning seeds (lom3 and blind 55, lom3
56) fits ending at NCC 0.154 and 0.186 moved pairs 1.65 and 1.96 px away (0.69 -> 2.65 px), and one
at 0.195 (an as-user run, blind 57) 0.21 px; the lowest fits that helped ended at 0.211-0.217. On the held-out
seeds (lom3 and blind 59-61, 24 shale pairs of seed 59) the floor refused only fits that changed
nothing by more than 0.05 px; 0.22 would have refused fits that helped by 0.56-2.26 px there."""

MAX_ITER = 50
"""L-BFGS iterations per blur level."""

FINE_AFFINE_DOF = 4
"""Degrees of freedom of the fine affine step's change to the coarse map (:data:`DOF_BASES`): a similarity.

Measured (docs/coarse.md, "Four parameters instead of six"; ``benchmarks/bench_fine_affine.py``,
``benchmarks/bench_styled_defaults.py --configs fine_dof6,fine_dof4``): on renderings by the lom3
renderer, whose true maps have no shear, six parameters fitted the representations' own bias
(halves of the image agree on it), moving 11 of 30 near-aligned starts more than 0.25 px away
from the truth, a similarity 5; end to end on held-out sets (seed 39) the chain's mean TRE went
1.52 -> 1.31 px (lom3, 6 -> 8 of 10 good) and 0.81 -> 0.79 px (blind). Where the truth has shear
(our own renderer's sets) the elastic step fits it: real:1000 0.72 -> 0.74 px, 10 of 10 good both."""

DOF_BASES: dict[int, list[list[float]]] = {
    6: np.eye(6).tolist(),
    4: [[1, 0, 0, 0], [0, -1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
    2: [[0, 0], [0, 0], [0, 0], [0, 0], [1, 0], [0, 1]],
}
"""The six parameters (linear part row by row, in % of the scale; shift in px) as combinations of
the free ones: 6 = affine, 4 = similarity (rotation and one scale: linear part [[1+s, -r], [r, 1+s]]), 2 = shift."""

DOF_NAMES = {6: "all six affine parameters", 4: "a similarity (rotation, scale, shift)", 2: "a shift"}
"""How the console names each fit."""


@dataclass(frozen=True)
class FineAffine:
    """The map finally used (2x3, target pixel -> source pixel) and what the step did (``facts``)."""

    matrix: np.ndarray
    facts: dict


def fit_affine(target: np.ndarray, source: np.ndarray, start: np.ndarray, *,
               sigmas: tuple[float, ...] = FINE_AFFINE_SIGMAS, max_size: int = FINE_AFFINE_MAX_SIZE,
               max_iter: int = MAX_ITER, mask: np.ndarray | None = None, dof: int = 6) -> tuple[np.ndarray, float, float]:
    """The affine map near ``start`` that maximises the NCC of ``target`` and ``source(A x)``.

    Parameters
    ----------
    target, source
        Grey images ``(H, W)`` (representations made to look alike); the source may have another size.
    start
        2x3 map from target pixel ``(x, y, 1)`` to source pixel position, where the fit starts.
    sigmas
        Gaussian blurs (px of the working grid) of the successive fits.
    max_size
        Larger side of the working grid; both images are reduced by the same factor beyond it.
    mask
        Optional boolean ``(H, W)`` on the target's grid: only these target pixels enter the NCC
        (the fit and both returned values); default all that both images cover.
    dof
        Degrees of freedom of the change to ``start``: 6 (affine), 4 (rotation, one scale, shift)
        or 2 (shift).

    Returns ``(matrix, ncc_start, ncc_fit)``: the fitted 2x3 map (full-resolution pixels) and the
    NCC (on the finest level, over the pixels both cover) at the start and at the fit.
    """
    import torch
    import torch.nn.functional as F

    a0 = np.asarray(start, np.float64)[:2]
    k = max(1.0, max(target.shape) / float(max_size))
    tgt = np.asarray(target, np.float32)
    src = np.asarray(source, np.float32)
    full_t, full_s = tgt.shape, src.shape
    if k > 1.0:  # both reduced by the same factor (anti-aliased), in float32 to bound the memory of large images
        tgt = ndimage.zoom(ndimage.gaussian_filter(tgt, 0.5 * k), 1.0 / k, order=1)
        src = ndimage.zoom(ndimage.gaussian_filter(src, 0.5 * k), 1.0 / k, order=1)
    tgt, src = tgt.astype(np.float64), src.astype(np.float64)
    h, w = tgt.shape
    weight = None
    if mask is not None:
        if np.shape(mask) != full_t:
            raise ValueError(f"mask has shape {np.shape(mask)}, the target {full_t}")
        m = np.asarray(mask, np.float64)
        weight = torch.from_numpy(ndimage.zoom(m, (h / full_t[0], w / full_t[1]), order=0) if m.shape != (h, w) else m)
    hs, ws = src.shape
    # exact grid factors of ndimage.zoom (corners aligned): full-resolution pixel = working pixel * f
    ft = ((full_t[1] - 1) / max(w - 1, 1), (full_t[0] - 1) / max(h - 1, 1))
    fs = ((full_s[1] - 1) / max(ws - 1, 1), (full_s[0] - 1) / max(hs - 1, 1))
    # the parameters act around the target's centre: source = a0 @ [c + (I + P)(x - c) + t, 1]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    xx, yy = xx * ft[0], yy * ft[1]
    c = np.array([(full_t[1] - 1) / 2.0, (full_t[0] - 1) / 2.0])
    xs, ys = torch.from_numpy(xx), torch.from_numpy(yy)
    a0_t = torch.from_numpy(a0)

    if dof not in DOF_BASES:
        raise ValueError(f"dof must be one of {sorted(DOF_BASES)}, got {dof}")
    basis = torch.tensor(DOF_BASES[dof], dtype=torch.float64)  # (6, dof): the free parameters -> the six

    def build(q: torch.Tensor) -> torch.Tensor:
        p = basis @ q
        lin = torch.eye(2, dtype=torch.float64) + p[:4].reshape(2, 2) / 100.0  # 1 unit = 1 % of scale or shear
        t = torch.from_numpy(c) + p[4:]
        inner = lin @ -torch.from_numpy(c) + t  # x -> lin x + inner, in target pixels
        return torch.cat([a0_t[:, :2] @ lin, (a0_t[:, :2] @ inner + a0_t[:, 2])[:, None]], 1)

    def ncc_at(p: torch.Tensor, t_img: torch.Tensor, s_img: torch.Tensor) -> torch.Tensor:
        a = build(p)
        sx = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
        sy = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
        inside = ((sx >= 0) & (sx <= full_s[1] - 1) & (sy >= 0) & (sy <= full_s[0] - 1)).to(torch.float64)
        if weight is not None:
            inside = inside * weight
        grid = torch.stack([2.0 * (sx / fs[0]) / max(ws - 1, 1) - 1.0, 2.0 * (sy / fs[1]) / max(hs - 1, 1) - 1.0], -1)[None]
        moved = F.grid_sample(s_img[None, None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0, 0]
        n = inside.sum().clamp(min=1.0)
        ta = t_img - (t_img * inside).sum() / n
        mb = moved - (moved * inside).sum() / n
        return (ta * mb * inside).sum() / torch.sqrt((ta * ta * inside).sum() * (mb * mb * inside).sum() + 1e-12)

    p = torch.zeros(dof, dtype=torch.float64, requires_grad=True)
    with torch_threads(1):
        for s in sigmas:
            t_img = torch.from_numpy(ndimage.gaussian_filter(tgt, s) if s > 0 else tgt)
            s_img = torch.from_numpy(ndimage.gaussian_filter(src, s) if s > 0 else src)
            opt = torch.optim.LBFGS([p], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-10,
                                    line_search_fn="strong_wolfe")

            def closure() -> torch.Tensor:
                opt.zero_grad()
                loss = 1.0 - ncc_at(p, t_img, s_img)
                loss.backward()
                return loss

            opt.step(closure)
        with torch.no_grad():
            ncc_fit = float(ncc_at(p, t_img, s_img))
            ncc_start = float(ncc_at(torch.zeros(dof, dtype=torch.float64), t_img, s_img))
            fitted = build(p).numpy().copy()
    if not (np.isfinite(fitted).all() and np.isfinite(ncc_fit)):
        return a0.copy(), ncc_start, float("nan")
    return fitted, ncc_start, ncc_fit


def largest_move(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> float:
    """Largest distance (source px) between where ``a`` and ``b`` map the target's corners and centre."""
    return float(np.max(np.hypot(*((np.asarray(a)[:2] - np.asarray(b)[:2]) @ _map_points(shape)))))


def default_fine_sigmas(model, style: str, representation: str | None = None) -> tuple[float, ...]:
    """The blur schedule of the fit for a pair registered with ``model``/``style``/``representation``
    (as :func:`styleunwarp.pipeline.pair.register_pair` takes them): :data:`FINE_AFFINE_SIGMAS_UNSEEN`
    for a style model without a chain card; for a model from ``train --target auto``, the blurs its
    card's chain sets (``fine_sigmas``, chosen there on held-out pairs; they belong to the maps of its
    representation, so every backend on that representation uses them); else :data:`FINE_AFFINE_SIGMAS`."""
    from ..style.chain import applied_to_unseen_looks, load_chain

    if applied_to_unseen_looks(model, style, representation):
        return FINE_AFFINE_SIGMAS_UNSEEN
    chain = load_chain(model) if style == "model" else None
    if chain is not None and chain.fine_sigmas is not None and representation in (None, chain.representation):
        return chain.fine_sigmas
    return FINE_AFFINE_SIGMAS


def fine_affine(target: np.ndarray, source: np.ndarray, start: np.ndarray, *, check: str = "alike",
                raw: tuple[np.ndarray, np.ndarray] | None = None, dof: int = FINE_AFFINE_DOF,
                sigmas: tuple[float, ...] = FINE_AFFINE_SIGMAS) -> FineAffine:
    """Refine the coarse map ``start`` (2x3, target pixel -> source pixel) to a precise affine map, verified.

    ``target`` and ``source`` are the two representations (the source on its own grid).
    ``raw``: ``(target, source)`` as recorded (grey, on the same grids as the representations),
    which the check reads; without it the check reads the representations. ``check="structure"``
    (raw images of two modalities) leaves the start as it is. Returns the map to start the elastic
    step from, and the facts ``metrics.json`` records under ``fine_affine``: ``kept`` (``"refined"``
    or ``"start"``), ``reason``, the NCC of the representations and the structure agreement of the
    raw images at the start and at the fit, ``moved_px`` (largest move of a target corner or the
    centre), the fitted ``matrix``, ``dof``, ``seconds``. ``dof``: the fit's degrees of freedom
    (:data:`DOF_BASES`; default :data:`FINE_AFFINE_DOF`, a similarity). ``sigmas``: the blurs it fits
    on, coarse to fine (:data:`FINE_AFFINE_SIGMAS`; :func:`default_fine_sigmas`); the fit must gain
    NCC on the last of them, and the NCC floor reads the sharp maps (``ncc_start``, ``ncc_refined``).
    """
    import time

    a0 = np.asarray(start, np.float64)[:2]
    if check == "structure":
        return FineAffine(a0, {"kept": "start", "reason": "not run: raw images of two modalities (their grey levels need not be linearly related)"})
    t0 = time.perf_counter()
    fitted, fit0, fit1 = fit_affine(target, source, a0, dof=dof, sigmas=sigmas)
    # the floor reads the sharp maps, where it was measured; the fit's own gain, the blur it fitted
    ncc0, ncc1 = fit0, fit1
    if sigmas[-1] > 0:  # the fit ended on blurred maps: their NCC measured again on the sharp ones
        ncc0 = fit_affine(target, source, a0, sigmas=(0.0,), max_iter=0)[1]
        ncc1 = fit_affine(target, source, fitted, sigmas=(0.0,), max_iter=0)[1] if np.isfinite(fitted).all() else float("nan")
    if raw is not None and (np.shape(raw[0])[:2] != target.shape[:2] or np.shape(raw[1])[:2] != source.shape[:2]):
        raw = None  # not on the representations' grids: check on the representations
    raw_target, raw_source = (target, source) if raw is None else raw
    raw_target, raw_source = np.asarray(raw_target, np.float32), np.asarray(raw_source, np.float32)
    before_img = warp_source(raw_source, a0, target.shape)
    after_img = warp_source(raw_source, fitted, target.shape)
    drop = structure_drop(raw_target, before_img, after_img)
    m0, m1, chance, sd, drop_sds = (drop[k] for k in ("mind_start", "mind_after", "mind_chance", "mind_chance_sd", "mind_drop_sds"))
    moved = largest_move(a0, fitted, target.shape)
    limit = FINE_AFFINE_MAX_MOVE * max(target.shape)
    facts = {"ncc_start": ncc0, "ncc_refined": ncc1, "fit_sigmas": list(sigmas), "fit_ncc_start": fit0, "fit_ncc_refined": fit1,
             "checked_on": "representations" if raw is None else "raw images",
             "mind_start": m0, "mind_refined": m1, "mind_chance": chance, "mind_chance_sd": sd, "mind_drop_sds": drop_sds,
             "mind_drop_max_sds": FINE_AFFINE_MIND_DROP_SDS, "dof": dof, "moved_px": moved, "max_move_px": limit, "matrix": fitted.tolist()}
    far_ok = False
    if moved > limit and np.isfinite(ncc1):  # beyond a local step: a search result, confirmed as the coarse step's winners
        far_ok, far = confirm(raw_target, raw_source, Candidate.from_matrix("fine affine fit", fitted, ncc1), LOCAL_GAIN_SDS, start=a0)
        facts["far_move"] = {k: v for k, v in far.items() if k != "full_resolution"}
    blurred = f" (blurred by {sigmas[-1]:g} px as fitted: {fit0:.3f} -> {fit1:.3f})" if sigmas[-1] > 0 else ""
    label = (f"NCC {ncc0:.3f} -> {ncc1:.3f}{blurred}; structure agreement {m0:.4f} -> {m1:.4f}, "
             f"{-drop_sds:+.1f} chance spreads; largest move {moved:.2f} px")
    if not (np.isfinite(ncc1) and np.isfinite(fit1) and np.isfinite(drop_sds)):
        kept, why = "start", f"the fit could not be measured ({label})"
    elif moved > limit and not far_ok:
        kept, why = "start", (f"the fit moved the image by {moved:.1f} px (> {limit:.1f} px) and the structure does not confirm "
                              f"so far a move as it confirms a coarse winner: {facts['far_move']['reason']} ({label})")
    elif drop_sds > FINE_AFFINE_MIND_DROP_SDS:
        kept, why = "start", f"the structure of the images agrees worse with it ({label}; at most {FINE_AFFINE_MIND_DROP_SDS:g} spreads lower)"
    elif fit1 <= fit0:
        kept, why = "start", f"the fit found nothing better than the start ({label})"
    elif ncc1 < FINE_AFFINE_MIN_NCC:
        # below it the representations share too little structure to fit (a CLEM pair's fit at 0.012 moved
        # it from 2.0 to 5.1 px with the raw structure unchanged; steel fits at 0.154-0.195 moved near-aligned
        # pairs up to 1.96 px away)
        kept, why = "start", f"the two representations do not correlate enough to fit (NCC below {FINE_AFFINE_MIN_NCC:g}) ({label})"
    else:
        far_note = f"; a move beyond {limit:.1f} px, confirmed by structure: {facts['far_move']['reason']}" if moved > limit else ""
        kept, why = "refined", f"refined by {DOF_NAMES[dof]} at full resolution ({label}{far_note})"
    facts.update(kept=kept, reason=why, seconds=time.perf_counter() - t0)
    return FineAffine(fitted if kept == "refined" else a0, facts)


__all__ = ["DOF_BASES", "FINE_AFFINE_DOF", "FINE_AFFINE_SIGMAS_UNSEEN", "default_fine_sigmas", "FINE_AFFINE_MIND_DROP_SDS", "FINE_AFFINE_MIN_NCC", "FINE_AFFINE_MAX_MOVE", "FINE_AFFINE_MAX_SIZE", "FINE_AFFINE_SIGMAS", "FineAffine", "fine_affine",
           "fit_affine", "largest_move"]
