"""Native elastic registration: bUnwarpJ's model and energy, written in PyTorch.

The deformation is bUnwarpJ's cubic B-spline on its coefficient grid (same
:class:`~styleunwarp.transform.ElasticTransform`, same evaluation, so the files it writes are
loaded and applied by the plugin). The energy follows the published method (Sorzano et al.
2005; Arganda-Carreras et al. 2006): image similarity (SSD as bUnwarpJ, or NCC / NMI),
divergence and curl regularisation of the displacement, landmarks, and in ``accurate``/``fast``
modes the consistency of the direct and inverse transforms. It is minimised by
Levenberg-Marquardt (SSD, MIND) or L-BFGS with autograd (NCC, NMI), from
``min_scale_deformation`` to ``max_scale_deformation`` on an image pyramid. The plugin's
divergence/curl weights are multiplied by :data:`REGULARIZATION_SCALE` (measured) for the
SSD and MIND terms.

Entry points: :func:`register` (the backend interface of
:func:`styleunwarp.registration.register`) and :func:`register_batch` (several same-size
pairs optimised together, for a GPU).
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from ...errors import InputError
from ...threads import torch_threads
from ...transform import ElasticTransform, affine_elastic, identity_elastic, jacobian_determinant
from ..params import BUnwarpJParams
from ..result import Points, Registration
from ..validation import check_image
from . import consistency, energy, gauss_newton, mind, optimize, regularization, spline
from .optimize import Settings, Side


# Relative energy decrease below which a Levenberg-Marquardt stage stops (measured, docs/native.md)
LM_TOLERANCE = 1e-3
# The plugin's divergence/curl weights in this engine's units (the integrals of Sorzano et al. in
# pixel units): bUnwarpJ's own normalisation is not published, so the factor was measured, on
# held-out synthetic 512² pairs through the pipeline's defaults (docs/native.md): x1 left
# styled (edge-map) pairs under-regularised (mean TRE 1.01 px vs bUnwarpJ 0.28), x1000 gave
# 0.29 px there and 0.36 px on same-modality pairs (bUnwarpJ 0.27); x3000 over-smoothed (0.50).
REGULARIZATION_SCALE = 1000.0
# LM: the first deformation scale also runs on coarser image levels until one is at most this
# many pixels a side (512² images: one added, 1024²: two, 2048²: three)
COARSEST_LEVEL_PX = 64
# image term on a fixed sub-grid of about this many pixels a side for larger levels: without it
# the native cost grew ~6x from 1024² to 2048² (the full-resolution stages went out of cache);
# with it 2048² costs 2.9x 1024² (CPU 3.96 vs 1.35 s) at 0.121 px TRE (every pixel: 9.92 s,
# 0.146 px); images up to 1024 px are unaffected (docs/native.md, Scaling)
MAX_SAMPLES = 1024
# similarities that are sums of squares, so Levenberg-Marquardt applies
LM_SIMILARITIES = ("ssd", "mind")

__all__ = ["assess", "register", "register_batch", "resolve_device"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ..."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "device 'cuda' requested but torch sees no CUDA device")
    return dev


def _check_image(a: np.ndarray, name: str) -> np.ndarray:
    return check_image(a, name, np.float64)


def _check_mask(m: np.ndarray | None, shape: tuple[int, int], name: str) -> np.ndarray:
    if m is None:
        return np.ones(shape)
    m = np.asarray(m)
    if m.shape != shape:
        raise InputError(None, f"{name} mask is {m.shape}, its image {shape}")
    if not m.any():
        raise InputError(None, f"{name} mask selects no pixel")
    return (m > 0).astype(np.float64)


def _check_points(p: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or not np.isfinite(p).all():
        raise InputError(None, f"{name} landmarks must be a finite (K, 2) array of (x, y), got shape {p.shape}")
    return p


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 affine ``A`` with ``dst ≈ A @ (src, 1)``."""
    a = np.hstack([src, np.ones((len(src), 1))])
    sol, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return sol.T


def _initial(intervals: int, shape, pts_fixed, pts_moving) -> ElasticTransform:
    if pts_fixed is not None and len(pts_fixed) >= 3:
        a = _affine_from_points(pts_fixed, pts_moving)
        if np.all(np.isfinite(a)) and abs(np.linalg.det(a[:, :2])) > 1e-6:
            return affine_elastic(a, intervals, shape)
    return identity_elastic(intervals, shape)


def assess(
    direct: ElasticTransform,
    inverse: ElasticTransform | None,
    target_shape: tuple[int, int],
    source_shape: tuple[int, int],
    final_energy: float = 0.0,
    start_energy: float = 0.0,
) -> dict:
    """Failure and folding flags of a result: ``failed``, ``reason``, ``folded``, ``min_jacobian``.

    ``failed`` when the coefficients or the energy are not finite, or the optimisation ended
    above its starting energy (no convergence). ``folded`` when the Jacobian determinant of the
    direct (or inverse) map is ``<= 0`` anywhere on its grid.
    """
    reasons = []
    coeffs = [direct.cx, direct.cy] + ([inverse.cx, inverse.cy] if inverse is not None else [])
    if not all(np.isfinite(c).all() for c in coeffs):
        reasons.append("the optimisation diverged (non-finite coefficients)")
    elif not np.isfinite(final_energy):
        reasons.append("the energy is not finite")
    elif start_energy > 0 and final_energy > start_energy * (1 + 1e-9):
        reasons.append("the optimisation did not lower the energy (no convergence)")
    info: dict = {"failed": bool(reasons), "reason": "; ".join(reasons) or None, "folded": None, "min_jacobian": None}
    if all(np.isfinite(c).all() for c in coeffs):
        jd = jacobian_determinant(direct, target_shape)
        info["min_jacobian"] = float(jd.min())
        folded = bool(jd.min() <= 0)
        if inverse is not None:
            ji = jacobian_determinant(inverse, source_shape)
            info["min_jacobian_inverse"] = float(ji.min())
            folded = folded or bool(ji.min() <= 0)
        info["folded"] = folded
    return info


def register_batch(
    targets: Sequence[np.ndarray],
    sources: Sequence[np.ndarray],
    params: BUnwarpJParams | None = None,
    *,
    target_masks: Sequence[np.ndarray | None] | None = None,
    source_masks: Sequence[np.ndarray | None] | None = None,
    landmarks: Sequence[tuple[Points, Points] | None] | None = None,
    similarity: str = "ssd",
    ncc_window: int | None = None,
    nmi_bins: int = 32,
    mind_radius: int = 2,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = None,
    max_iter: int | None = None,
    tolerance: float | None = None,
    normalize: bool = True,
    affine_init: bool = True,
    max_samples: int | None = MAX_SAMPLES,
    optimizer: str = "auto",
    threads: int | None = 1,
    seed: int = 0,
) -> list[Registration]:
    """Register several pairs at once (all targets one shape, all sources one shape).

    The pairs are independent (the batched energy is a sum of per-pair energies, each
    normalised by its own starting value); on a GPU one batch costs little more than one pair.

    Options (also accepted by :func:`register`)
    ------------------------------------------
    similarity
        ``"ssd"`` (bUnwarpJ's image term), ``"ncc"`` (``1 - NCC**2``, global or over
        ``ncc_window``-pixel windows: indifferent to contrast polarity) or ``"nmi"``
        (normalised mutual information from a ``nmi_bins`` Parzen histogram) or ``"mind"``
        (SSD of MIND-SSC descriptor images, :mod:`.mind`, computed at every pyramid level with
        neighbours ``mind_radius`` pixels away: modality-independent, any contrast).
    device, dtype
        ``"auto"`` picks CUDA when present. ``dtype`` defaults to float64 on CPU, float32 on CUDA.
    max_iter, tolerance
        Iterations per deformation scale, and when a stage stops. ``lm``: at most ``max_iter``
        steps (default 20, 10 in ``fast`` mode); a stage ends when a step lowers the energy by less than the relative
        ``tolerance`` (default 1e-3: with bUnwarpJ's ``stop_threshold`` of 0.01 the finest scale of
        a noisy 512² pair often takes no step, with 1e-4 the map starts to fit the noise; see
        ``docs/native.md``).
        ``lbfgs``: default 60 iterations (30 in ``fast`` mode), stop on a change of the
        normalised energy below ``tolerance`` (default 1e-6).
    normalize
        Rescale both images by one common linear map to 0..255 (keeps SSD's meaning and the
        balance with the other weights independent of the input's intensity unit).
    max_samples
        The image term of a level larger than this (pixels a side) uses a regular sub-grid of
        the fixed image's pixels of about this size, sampling the moving image at full
        resolution. Default :data:`MAX_SAMPLES` (1024: images up to 1024 px use every pixel,
        as bUnwarpJ; larger ones stay linear in cost); ``None``: every pixel at any size.
    optimizer
        ``"lm"``: Levenberg-Marquardt with the exact Gauss-Newton matrices of the SSD (or MIND)
        term and of the consistency term (:mod:`.gauss_newton`, :mod:`.consistency`; fast, every
        mode); ``"lbfgs"``: L-BFGS with autograd (any similarity). ``"auto"``: ``"lm"`` for
        ``ssd`` and ``mind``, ``"lbfgs"`` for ``ncc`` and ``nmi``.
    affine_init
        Start from the least-squares affine map of the landmarks (when there are 3 or more).
    threads
        CPU threads torch uses during the registration (restored afterwards). Default 1:
        results are then bit-identical whatever the caller's ``torch.set_num_threads``, and on a
        loaded machine one thread per registration is fastest; ``None`` keeps torch's setting.
    seed
        Seeds torch (the method itself has no randomness; results are deterministic).
    """
    t_start = time.perf_counter()
    p = params or BUnwarpJParams()
    if similarity not in energy.SIMILARITIES:
        raise InputError(None, f"unknown similarity {similarity!r}; choose from {', '.join(energy.SIMILARITIES)}")
    if len(targets) != len(sources) or len(targets) == 0:
        raise InputError(None, f"need as many targets as sources (and at least one), got {len(targets)} and {len(sources)}")
    tgt = [_check_image(t, "target") for t in targets]
    src = [_check_image(s, "source") for s in sources]
    if len({t.shape for t in tgt}) > 1 or len({s.shape for s in src}) > 1:
        raise InputError(None, "a batch needs all targets of one shape and all sources of one shape")
    tshape, sshape = tgt[0].shape, src[0].shape
    b = len(tgt)
    tm = [_check_mask(m, tshape, "target") for m in (target_masks or [None] * b)]
    sm = [_check_mask(m, sshape, "source") for m in (source_masks or [None] * b)]
    lms = list(landmarks) if landmarks is not None else [None] * b
    if any(lm is not None for lm in lms):
        if any(lm is None for lm in lms):
            raise InputError(None, "give landmarks for every pair of a batch or for none")
        lms = [(_check_points(a, "target"), _check_points(c, "source")) for a, c in lms]
        if len({(len(a), len(c)) for a, c in lms}) > 1 or any(len(a) != len(c) for a, c in lms):
            raise InputError(None, "target and source landmark lists must have the same length (and, in a batch, the same for all pairs)")
    use_lm = lms[0] is not None and len(lms[0][0]) > 0
    if p.image_weight == 0 and not (use_lm and p.landmark_weight > 0):
        raise InputError(None, "image_weight is 0 and there are no landmarks to use: nothing to register")
    if optimizer not in ("auto", "lm", "lbfgs"):
        raise InputError(None, f"unknown optimizer {optimizer!r}; choose from auto, lm, lbfgs")
    both = p.mode in ("accurate", "fast")
    levenberg = optimizer == "lm" or (optimizer == "auto" and similarity in LM_SIMILARITIES)
    if levenberg and similarity not in LM_SIMILARITIES:
        raise InputError(None, f"optimizer 'lm' needs similarity {' or '.join(map(repr, LM_SIMILARITIES))}")
    if normalize:
        for i in range(b):
            lo, hi = min(tgt[i].min(), src[i].min()), max(tgt[i].max(), src[i].max())
            tgt[i] = (tgt[i] - lo) * (255.0 / (hi - lo))
            src[i] = (src[i] - lo) * (255.0 / (hi - lo))

    dev = resolve_device(device)
    if dtype is None:
        dt = torch.float64 if dev.type == "cpu" else torch.float32
    else:
        dt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    torch.manual_seed(seed)
    iters = max_iter or ((10 if p.mode == "fast" else 20) if levenberg else 30 if p.mode == "fast" else 60)
    if tolerance is None:
        tolerance = LM_TOLERANCE if levenberg else 1e-6
    settings = Settings(similarity=similarity, ncc_window=ncc_window, nmi_bins=nmi_bins, mind_radius=mind_radius, max_iter=iters,
                        tolerance=tolerance, device=dev, dtype=dt, max_samples=max_samples)
    tside = Side(np.stack(tgt), np.stack(tm))
    sside = Side(np.stack(src), np.stack(sm))

    n0 = 2 ** int(p.min_scale_deformation)
    grids = []
    for i in range(b):
        tp, sp = (lms[i] if use_lm and affine_init else (None, None))
        d0 = _initial(n0, tshape, tp, sp)
        g = [np.stack([d0.cx, d0.cy])]
        if both:
            i0 = _initial(n0, sshape, sp, tp)
            g.append(np.stack([i0.cx, i0.cy]))
        grids.append(np.stack(g))
    coeffs = torch.as_tensor(np.stack(grids), dtype=dt, device=dev)  # (B, D, 2, n, n)
    lm_t = None
    if use_lm:
        tp = torch.as_tensor(np.stack([a for a, _ in lms]), dtype=dt, device=dev)
        sp = torch.as_tensor(np.stack([c for _, c in lms]), dtype=dt, device=dev)
        lm_t = [(tp, sp), (sp, tp)]
    # the scale was measured for the SSD-type terms (intensities / descriptors in 0..255); NCC
    # and NMI are dimensionless (order 1) and keep the plugin's numbers
    reg_scale = REGULARIZATION_SCALE if similarity in LM_SIMILARITIES else 1.0
    weights = {"image": p.image_weight, "divergence": p.divergence_weight * reg_scale,
               "curl": p.curl_weight * reg_scale,
               "landmark": p.landmark_weight, "consistency": p.consistency_weight}

    stages = []
    with torch_threads(threads if dev.type == "cpu" else None):
        if levenberg:
            coeffs = _run_stages_lm(coeffs, tside, sside, p, settings, weights, lm_t, both, stages)
        else:
            coeffs = _run_stages(coeffs, tside, sside, p, settings, weights, lm_t, both, stages, dev)
    seconds = (time.perf_counter() - t_start) / b
    out_c = coeffs.cpu().numpy().astype(np.float64)
    return _results(out_c, stages, tshape, sshape, p, seconds, similarity, dev, dt, seed, b, both)


def _run_stages(coeffs, tside, sside, p, settings, weights, lm_t, both, stages, dev):
    lo_s, hi_s = int(p.min_scale_deformation), int(p.max_scale_deformation)
    with torch.random.fork_rng(devices=[] if dev.type == "cpu" else [dev]):
        for scale in range(lo_s, hi_s + 1):
            if scale > lo_s:
                bd = coeffs.shape[:3]
                n = coeffs.shape[-1]
                coeffs = spline.refine(coeffs.reshape(-1, n, n)).reshape(*bd, 2 * n - 3, 2 * n - 3)
            factor = 2 ** (hi_s - scale + int(p.img_subsamp_fact))
            nint = 2**scale
            dirs = [optimize.Direction(tside, sside, factor, settings, nint)]
            if both:
                dirs.append(optimize.Direction(sside, tside, factor, settings, nint))
            t0 = time.perf_counter()
            coeffs, info = optimize.run_stage(coeffs, dirs, weights, lm_t, settings)
            info.update(scale=scale, intervals=nint, image_factor=factor, seconds=time.perf_counter() - t0,
                        level_shape=tuple(dirs[0].fixed.shape[1:]))
            stages.append(info)
    return coeffs


def _run_stages_lm(coeffs, tside, sside, p, settings, weights, lm_t, both, stages):
    """Levenberg-Marquardt stages (SSD on intensities or descriptors): see :mod:`.gauss_newton`.

    ``both``: optimise the direct and the inverse map together with the consistency term
    (:mod:`.consistency`), as bUnwarpJ's accurate/fast modes.
    """
    lo_s, hi_s = int(p.min_scale_deformation), int(p.max_scale_deformation)
    top = hi_s - lo_s + int(p.img_subsamp_fact)  # pyramid level of the first deformation scale
    # coarse-to-fine in the images too: large images get extra stages of the first deformation
    # scale on coarser levels, until the coarsest is at most COARSEST_LEVEL_PX a side
    extra = 0
    while max(tside.shape) / 2 ** (top + extra) > COARSEST_LEVEL_PX:
        extra += 1
    depth = top + extra
    # images and sampling in float32 on the CPU (2x faster; per-point, so thread-count independent);
    # every reduction in float64
    dt = settings.dtype if settings.device.type != "cpu" else torch.float32
    sides = [(tside, sside), (sside, tside)][: 2 if both else 1]
    pyr = {id(sd): gauss_newton.pyramid(sd.image, depth) for sd in (tside, sside)}
    # masks: pyramids only where some pixel is masked out (None: every pixel counts)
    mpyr = {id(sd): None if bool((sd.mask > 0.5).all()) else gauss_newton.pyramid(sd.mask, depth) for sd in (tside, sside)}
    level_mask = lambda sd, lv: None if mpyr[id(sd)] is None else (mpyr[id(sd)][lv].image > 0.5).astype(np.float32)  # noqa: E731
    describe = _level_representation(settings)
    c = coeffs
    schedule = [(lo_s, min(top + k, len(pyr[id(tside)]) - 1)) for k in range(extra, 0, -1)]
    schedule += [(s, gauss_newton.level_for_scale(len(pyr[id(tside)]), s, hi_s, int(p.img_subsamp_fact)))
                 for s in range(lo_s, hi_s + 1)]
    prev = lo_s
    for scale, lv in schedule:
        if scale > prev:
            b, d, _, n, _ = c.shape
            c = spline.refine(c.reshape(-1, n, n)).reshape(b, d, 2, 2 * n - 3, 2 * n - 3)
            prev = scale
        nint = 2**scale
        t0 = time.perf_counter()
        terms = []
        for d, (fixed, moving) in enumerate(sides):
            if weights["image"]:
                lf, lmv = min(lv, len(pyr[id(fixed)]) - 1), min(lv, len(pyr[id(moving)]) - 1)  # a smaller image has fewer levels
                level = gauss_newton.SSDLevel(
                    describe(pyr[id(fixed)][lf]), level_mask(fixed, lf), describe(pyr[id(moving)][lmv]),
                    level_mask(moving, lmv), fixed.shape, nint, settings.max_samples, dt, settings.device, moving.shape)
                terms.append(gauss_newton.ImageTerm(level, weights["image"], d))
            reg = regularization.tensor(nint, fixed.shape, weights["divergence"], weights["curl"], torch.float64,
                                        settings.device)
            if reg is not None:
                terms.append(gauss_newton.QuadraticTerm(reg, d))
            if lm_t is not None and weights["landmark"]:
                terms.append(gauss_newton.LandmarkTerm(
                    gauss_newton.Landmarks(lm_t[d][0], lm_t[d][1], fixed.shape, nint, weights["landmark"]), d))
        if both and weights["consistency"]:
            pts = min(settings.consistency_points, 4 * nint + 1)
            terms.append(consistency.Consistency(0, 1, tside.shape, sside.shape, nint, pts, weights["consistency"],
                                                 settings.device))
            terms.append(consistency.Consistency(1, 0, sside.shape, tside.shape, nint, pts, weights["consistency"],
                                                 settings.device))
        c, info = gauss_newton.minimise(c.to(torch.float64), terms, settings.max_iter, settings.tolerance)
        info.update(scale=scale, intervals=nint, image_factor=2**lv, seconds=time.perf_counter() - t0,
                    level_shape=tuple(pyr[id(tside)][lv].image.shape[-2:]))
        stages.append(info)
    return c.to(coeffs.dtype)


def _level_representation(settings):
    """What the LM image term compares at a pyramid level: the intensities, or MIND descriptors."""
    if settings.similarity != "mind":
        return lambda level: level
    return lambda level: gauss_newton.Level(mind.mind_ssc(level.image, settings.mind_radius), level.py, level.px)


def _results(out_c, stages, tshape, sshape, p, seconds, similarity, dev, dt, seed, b, both):
    results = []
    for i in range(b):
        direct = ElasticTransform(out_c[i, 0, 0], out_c[i, 0, 1])
        inverse = ElasticTransform(out_c[i, 1, 0], out_c[i, 1, 1]) if both else None
        final_e = stages[-1]["energy"]["total"][i]
        start_e = stages[-1]["initial_energy"][i]
        info = assess(direct, inverse, tshape, sshape, final_e, start_e)
        info.update(
            similarity=similarity, device=str(dev), dtype=str(dt).replace("torch.", ""), seed=seed, batch_size=b,
            stages=[
                {k: (v[i] if isinstance(v, list) else ({kk: vv[i] for kk, vv in v.items()} if isinstance(v, dict) else v))
                 for k, v in st.items()} for st in stages
            ],
        )
        results.append(
            Registration(direct=direct, inverse=inverse, target_shape=tshape, source_shape=sshape, backend="native",
                         params=p, seconds=seconds, info=info)
        )
    return results


def register(
    target: np.ndarray,
    source: np.ndarray,
    params: BUnwarpJParams | None = None,
    *,
    target_mask: np.ndarray | None = None,
    source_mask: np.ndarray | None = None,
    landmarks: tuple[Points, Points] | None = None,
    **options,
) -> Registration:
    """Register ``source`` (moved) to ``target`` (fixed); options as :func:`register_batch`."""
    return register_batch(
        [target], [source], params, target_masks=[target_mask], source_masks=[source_mask],
        landmarks=None if landmarks is None else [landmarks], **options,
    )[0]
