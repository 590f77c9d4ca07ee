"""Modality-independent agreement of two images: how steps on raw images of two modalities are verified.

Between two detectors (backscatter vs secondary electrons, electron vs fluorescence, light vs
channelling contrast) the NCC of raw intensities says little about alignment: measured on
deformed held-out crops (``benchmarks/bench_raw_checks.py``), elastix results that moved CLEM
and steel pairs 3-20 px *away* from the truth raised |NCC| by 0.07-0.12, as much as
correct results on shale did, and a false coarse match raised the NCC of a steel pair from
-0.26 to 0.74. Two measures of local structure instead:

* :func:`mind_agreement` — NCC of MIND-SSC descriptor stacks (Heinrich et al. 2012, the
  descriptors of :mod:`styleunwarp.registration.native.mind`), judged against its
  :func:`chance` level: the same comparison at large shifts, where nothing corresponds.
  It confirms coarse alignment hypotheses (it rejected both false matches above, kept every
  right one).
* :func:`gradient_agreement` — normalised gradient fields (Haber & Modersitzki 2006): the
  mean squared cosine between the two images' gradient directions, blind to polarity and
  to each image's grey mapping. The never-worse rule of elastic results uses its gain, on raw
  images judged against its :func:`gradient_chance` spread too (correct elastic results on
  shale gained 2-5 times that spread; CLEM results that moved pairs 12-13 px away, 0.1-0.3 times).

:func:`mind_verdict` also asks where the descriptors' correlation peaks, tile by tile
(:mod:`styleunwarp.residual`): a result whose structure would agree better moved by more than
3 px, or with a region peaking over 4 px off, is not called aligned however high its agreement.

Plain functions on arrays; masks select the pixels both images cover.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as scipy_fft
from scipy import ndimage

from .quality import ncc
from .residual import misaligned, residual_shift

ANALYSIS_SIDE = 512
"""Images are block-averaged to at most this many pixels a side before MIND descriptors are
computed (every measurement of docs/coarse.md was on images of at most 512 px, unreduced; a
coarse winner needs no finer check, and 1024 px would cost 3-4 s per check on 2 cores)."""

CHANCE_SHIFTS = (0.25, 0.4)
"""Shifts (fractions of the image side, in 8 directions each) at which :func:`chance` compares the images."""

Z_MIN = 5.0
"""Standard deviations above chance at which a MIND agreement counts as evidence of alignment
(coarse winners, :func:`mind_verdict`). Measured (docs/coarse.md, docs/unaligned.md): false
matches and results 13-800 px off reached at most z = 3.5; correct results on shale 6-40,
on as-delivered steel (the shipped model's results, raw LOM against raw CBS) 3.7-8.9."""

SD_FLOOR = 0.002
"""Smallest chance spread used (a spread estimated as ~0 would make any excess look significant)."""


def _reduce(image: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return np.asarray(image, np.float32)
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    return np.asarray(image[:h, :w], np.float32).reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def analysis_factor(shape: tuple[int, int]) -> int:
    """The block size that brings ``shape`` to at most :data:`ANALYSIS_SIDE` a side."""
    return max(1, int(np.ceil(max(shape[:2]) / ANALYSIS_SIDE)))


def descriptors(image: np.ndarray, factor: int = 1) -> np.ndarray:
    """MIND-SSC descriptors ``(6, h, w)`` of ``image`` block-averaged by ``factor``."""
    from .registration.native.mind import mind_ssc

    return mind_ssc(_reduce(image, factor)[None])[0]


def _inner(mask: np.ndarray, factor: int, margin: int = 4) -> np.ndarray:
    """``mask`` reduced by ``factor`` (a block counts when all its pixels do), eroded by ``margin`` px."""
    m = _reduce(mask.astype(np.float32), factor) > 0.999
    return ndimage.binary_erosion(m, iterations=margin) if margin > 0 else m


def mind_agreement(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, factor: int | None = None) -> float:
    """NCC of the MIND-SSC descriptors of ``a`` and ``b`` (same shape) over ``mask`` (eroded 4 px).

    About 0 where the two show unrelated structures, up to 1 for identical ones; NaN when
    fewer than 16 pixels are left or either image is constant. ``factor``: block averaging
    first (default :func:`analysis_factor`).
    """
    return agreement_and_chance(a, b, mask, factor, with_chance=False)[0]


def chance(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, factor: int | None = None) -> tuple[float, float]:
    """Mean and standard deviation of :func:`mind_agreement` between ``a`` and ``b`` shifted
    against each other by :data:`CHANCE_SHIFTS` of their size in 8 directions: the agreement
    two unrelated views of these images reach (texture statistics alone). NaN when fewer
    than 4 shifts leave enough pixels."""
    return agreement_and_chance(a, b, mask, factor)[1:]


def agreement_and_chance(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, factor: int | None = None,
                         with_chance: bool = True, b_descriptors: np.ndarray | None = None,
                         a_descriptors: np.ndarray | None = None) -> tuple[float, float, float]:
    """``(mind_agreement, chance mean, chance sd)`` from one computation of the descriptors;
    ``a_descriptors``/``b_descriptors``: ``descriptors(a or b, factor)`` when the caller already has them."""
    f = analysis_factor(a.shape) if factor is None else factor
    m = _inner(np.ones(a.shape[:2], bool) if mask is None else mask, f)
    if m.sum() < 16:
        return float("nan"), float("nan"), float("nan")
    da = descriptors(a, f) if a_descriptors is None else a_descriptors
    db = descriptors(b, f) if b_descriptors is None else b_descriptors
    value = ncc(da[:, m], db[:, m])
    if not with_chance:
        return value, float("nan"), float("nan")
    return (value, *_chance(m, lambda sa, sb, both: ncc(da[(slice(None), *sa)][:, both], db[(slice(None), *sb)][:, both])))


def structure_drop(target: np.ndarray, before: np.ndarray, after: np.ndarray) -> dict:
    """How much less the raw structure of ``after`` than of ``before`` agrees with ``target``.

    ``before`` and ``after``: one source image (as recorded) moved onto ``target``'s grid by two
    maps, 0 outside. Compared over the pixels both cover, by :func:`mind_agreement` (any two
    modalities), in units of its chance spread: ``{"mind_start", "mind_after", "mind_chance",
    "mind_chance_sd", "mind_drop_sds"}`` (NaN where it cannot be measured). The check that the
    fine affine step and the elastic step share: neither optimises it.
    """
    target = np.asarray(target, np.float32)
    common = (before != 0) & (after != 0)
    m0, chance, sd = agreement_and_chance(before, target, common)
    m1 = mind_agreement(after, target, common)
    drop = (m0 - m1) / max(sd, SD_FLOOR) if np.isfinite(m0) and np.isfinite(m1) and np.isfinite(sd) else float("nan")
    return {"mind_start": m0, "mind_after": m1, "mind_chance": chance, "mind_chance_sd": sd, "mind_drop_sds": drop}


def significance(value: float, mean: float, sd: float) -> float:
    """How many chance spreads ``value`` lies above the chance ``mean`` (``sd`` at least
    :data:`SD_FLOOR`); NaN when either is unknown."""
    if not (np.isfinite(value) and np.isfinite(mean)):
        return float("nan")
    return float((value - mean) / max(sd if np.isfinite(sd) else 0.0, SD_FLOOR))


def mind_verdict(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, factor: int | None = None) -> dict:
    """The structure evidence that ``a`` and ``b`` show the same scene aligned, in any two modalities.

    ``{"mind", "chance", "chance_sd", "z", "residual_px", "residual_tiles", "tiles_off", "aligned"}``:
    :func:`mind_agreement`, its :func:`chance` mean and spread, the :func:`significance` of the
    agreement, the residual misalignment the descriptors' correlation peaks point to
    (:func:`styleunwarp.residual.residual_shift`; ``None`` where the structures do not support
    an estimate) with the count of tiles left off, and whether the agreement reaches
    :data:`Z_MIN` and the peaks do not say the result is still misaligned
    (:func:`styleunwarp.residual.misaligned`). Of two results of one pair, the one whose source agrees better with
    the target is nearly always the closer to the truth (:mod:`styleunwarp.style.tournament`).
    ``factor``: the block size the descriptors are averaged by (default :func:`analysis_factor`).
    """
    f = analysis_factor(a.shape) if factor is None else int(factor)
    m = _inner(np.ones(a.shape[:2], bool) if mask is None else mask, f)
    da, db = descriptors(a, f), descriptors(b, f)
    value, mu, sd = agreement_and_chance(a, b, mask, f, a_descriptors=da, b_descriptors=db)
    z = significance(value, mu, sd)
    rest = residual_shift(da, db, m, f) if m.sum() >= 16 else {"residual_px": None, "residual_tiles": 0, "tiles": 0, "tiles_off": None}
    aligned = bool(np.isfinite(z) and z >= Z_MIN and not misaligned(rest))
    return {"mind": value, "chance": mu, "chance_sd": sd, "z": z, "residual_px": rest["residual_px"],
            "residual_tiles": rest["residual_tiles"], "tiles_off": rest["tiles_off"], "aligned": aligned}


PAIRED_TILE_PX = 64
"""Side (px of the images as given) of the tiles :func:`paired_gain` splits an agreement gain into."""


def paired_gain(target: np.ndarray, first: np.ndarray, second: np.ndarray, mask: np.ndarray | None = None,
                tile: int = PAIRED_TILE_PX, descriptors_of: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                factor: int | None = None) -> dict:
    """How much better ``second`` than ``first`` (one source placed on ``target``'s grid two ways)
    agrees with ``target`` by structure, on the same pixels, and how consistently across the image.

    ``{"gain", "gain_se", "t", "tiles"}``: ``gain`` is :func:`mind_agreement` of ``second`` minus
    that of ``first``, both over ``mask`` (the pixels both placements cover; eroded 4 px). It is
    split exactly into the contributions of square tiles of ``tile`` px; ``gain_se`` is the
    standard error of that sum estimated from the tiles' spread, ``t`` the gain in standard
    errors: a gain made by a few tiles, or by tiles that disagree, has a small ``t`` however large
    it is. NaN where fewer than 4 tiles or 16 pixels are left. ``factor``: the block size the
    descriptors are computed at (default :func:`analysis_factor`); ``descriptors_of``:
    ``descriptors(x, factor)`` of ``(target, first, second)`` when the caller already has them."""
    f = analysis_factor(target.shape) if factor is None else factor
    m = _inner(np.ones(target.shape[:2], bool) if mask is None else mask, f)
    nan = {"gain": float("nan"), "gain_se": float("nan"), "t": float("nan"), "tiles": 0}
    if m.sum() < 16:
        return nan
    stacks = descriptors_of or tuple(descriptors(x, f) for x in (target, first, second))
    dt, d1, d2 = (d[:, m].astype(np.float64) for d in stacks)
    z = []
    for d in (dt, d1, d2):
        sd = d.std()
        if sd == 0:
            return nan
        z.append((d - d.mean()) / sd)
    per_pixel = ((z[0] * z[2]).sum(axis=0) - (z[0] * z[1]).sum(axis=0)) / z[0].size  # sums to the NCC difference
    yy, xx = np.nonzero(m)
    side = max(4, int(round(tile / f)))
    tile_id = (yy // side) * (m.shape[1] // side + 1) + xx // side
    contrib = np.bincount(np.unique(tile_id, return_inverse=True)[1], weights=per_pixel)
    k = contrib.size
    gain = float(per_pixel.sum())
    if k < 4:
        return {**nan, "gain": gain, "tiles": int(k)}
    se = float(contrib.std(ddof=1) * np.sqrt(k))
    return {"gain": gain, "gain_se": se, "t": gain / se if se > 0 else float("inf") * np.sign(gain), "tiles": int(k)}


def _chance(m: np.ndarray, score) -> tuple[float, float]:
    """Mean and standard deviation of ``score(slices of a, slices of b, mask)`` over the
    :data:`CHANCE_SHIFTS` that leave at least 16 pixels of ``m`` in both (NaN with fewer than 4)."""
    values = []
    for sa, sb in _shifts(m.shape):
        both = m[sa] & m[sb]
        if both.sum() >= 16:
            values.append(score(sa, sb, both))
    v = np.asarray([x for x in values if np.isfinite(x)])
    if v.size < 4:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std())


EDGE_SIGMA_PX = 2.0
"""Gaussian scale (px) of :func:`edge_strength`. Chosen on shale BSE/SE (docs/coarse.md): on 8 cases
moved 19-26 px, 2 px brought the coarse start within 5 px on 7, 4 px on none."""


def edge_strength(image: np.ndarray, sigma: float = EDGE_SIGMA_PX) -> np.ndarray:
    """Gaussian gradient magnitude of the standardised ``image``: where it has edges, whatever its
    grey mapping or polarity. Two modalities of one specimen share these where their
    intensities share nothing (the coarse step searches raw image pairs on them where their grey
    levels find nothing)."""
    f = np.asarray(image, np.float64)
    f = (f - f.mean()) / (f.std() + 1e-12)
    return ndimage.gaussian_gradient_magnitude(f, sigma).astype(np.float32)


def _gradients(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(image, np.float64)
    f = ndimage.gaussian_filter(f, sigma) if sigma > 0 else f
    gy, gx = np.gradient(f)
    return gx, gy


def _ngf_map(ga: tuple[np.ndarray, np.ndarray], gb: tuple[np.ndarray, np.ndarray], m: np.ndarray) -> np.ndarray:
    """Per pixel, the squared cosine of the two gradient fields with each image's noise floor
    (1 % of its mean squared gradient over ``m``): the terms :func:`gradient_agreement` averages."""
    (ax, ay), (bx, by) = ga, gb
    na, nb = ax * ax + ay * ay, bx * bx + by * by
    ea, eb = 0.01 * float(na[m].mean()) + 1e-12, 0.01 * float(nb[m].mean()) + 1e-12
    return (ax * bx + ay * by) ** 2 / ((na + ea) * (nb + eb))


def _ngf(ga: tuple[np.ndarray, np.ndarray], gb: tuple[np.ndarray, np.ndarray], m: np.ndarray) -> float:
    return float(_ngf_map(ga, gb, m)[m].mean())


def _shifts(shape: tuple[int, int]):
    """``(slices of a, slices of b)`` for :data:`CHANCE_SHIFTS` in 8 directions."""
    h, w = shape
    for frac in CHANCE_SHIFTS:
        for sy, sx in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)):
            dy, dx = int(round(sy * frac * h)), int(round(sx * frac * w))
            yield ((slice(max(0, dy), h + min(0, dy)), slice(max(0, dx), w + min(0, dx))),
                   (slice(max(0, -dy), h + min(0, -dy)), slice(max(0, -dx), w + min(0, -dx))))


def _inner_gradient_mask(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    return ndimage.binary_erosion(np.ones(shape[:2], bool) if mask is None else mask, iterations=3)


def gradient_agreement(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, sigma: float = 1.0) -> float:
    """Normalised gradient field agreement of ``a`` and ``b`` over ``mask`` (eroded 3 px).

    The mean of ``(grad a . grad b)^2 / ((|grad a|^2 + e_a)(|grad b|^2 + e_b))`` after a Gaussian
    blur of ``sigma`` px, ``e`` 1 % of each image's mean squared gradient (flat noise counts
    little): 0..1, 1 where the two images' edges run parallel everywhere, whatever their
    polarity or grey mapping; unrelated images score about half their weights (random
    directions: mean squared cosine 1/2), so gains, not levels, carry the information. NaN when
    fewer than 16 pixels are left.
    """
    m = _inner_gradient_mask(mask, a.shape)
    if m.sum() < 16:
        return float("nan")
    return _ngf(_gradients(a, sigma), _gradients(b, sigma), m)


def gradient_chance(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, sigma: float = 1.0) -> tuple[float, float]:
    """Mean and standard deviation of :func:`gradient_agreement` between ``a`` and ``b`` shifted
    against each other by :data:`CHANCE_SHIFTS` of their size in 8 directions: how much the
    measure varies between unrelated views of these two images. Images with few edges (a
    fluorescence channel) vary much more than busy ones, so a gain must be judged against it."""
    return _gradient_chance(_gradients(a, sigma), _gradients(b, sigma), _inner_gradient_mask(mask, a.shape))


def _gradient_chance(ga, gb, m: np.ndarray) -> tuple[float, float]:
    return _chance(m, lambda sa, sb, both: _ngf((ga[0][sa], ga[1][sa]), (gb[0][sb], gb[1][sb]), both))


PEAK_SHIFT_PX = 2.0
"""Shift (px) at which :func:`gradient_peak_drop` reads how sharply two images' agreement peaks."""


def gradient_peak_drop(image: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None, shift: float = PEAK_SHIFT_PX,
                       sigma: float = 1.0) -> float:
    """How much :func:`gradient_agreement` of ``image`` with ``target`` falls when ``image`` is
    shifted by ``shift`` px, averaged over 8 directions (a sub-pixel Fourier shift: no
    interpolation blur; pixels the shift wraps or moves out of ``mask`` are left out).

    The sharpness of the agreement peak at the current alignment: large where the two images
    share many crisp edges, near 0 where they agree only weakly, so that a shift of a few pixels
    barely matters to the measure, and an optimum found on it is not a reliable location. NaN
    when fewer than 16 pixels are left."""
    a = np.asarray(image, np.float32)  # single precision halves the spectra's memory on large images
    inside = np.ones(a.shape, bool) if mask is None else np.asarray(mask, bool)
    spectrum = scipy_fft.fft2(a)
    gt = _gradients(target, sigma)
    ga = _gradients(a, sigma)
    drops = []
    for angle in np.arange(8) * np.pi / 4:
        dy, dx = shift * np.sin(angle), shift * np.cos(angle)
        moved = scipy_fft.ifft2(ndimage.fourier_shift(spectrum, (dy, dx))).real
        both = inside & (ndimage.shift(inside.astype(np.float32), (dy, dx), order=1, cval=0.0) > 0.99)
        m = _inner_gradient_mask(both, a.shape)
        if m.sum() < 16:
            return float("nan")
        drops.append(_ngf(ga, gt, m) - _ngf(_gradients(moved, sigma), gt, m))
    return float(np.mean(drops))


def gradient_gain(start: np.ndarray, result: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None,
                  sigma: float = 1.0, with_spread: bool = False) -> tuple[float, float, float]:
    """``(gradient_agreement(start, target), gradient_agreement(result, target), spread)`` with
    each image's gradients computed once; ``spread`` is :func:`gradient_chance`'s standard
    deviation of ``start`` against ``target`` (NaN unless ``with_spread``)."""
    m = _inner_gradient_mask(mask, target.shape)
    if m.sum() < 16:
        return float("nan"), float("nan"), float("nan")
    gs, gt = _gradients(start, sigma), _gradients(target, sigma)
    before, after = _ngf(gs, gt, m), _ngf(_gradients(result, sigma), gt, m)
    return before, after, _gradient_chance(gs, gt, m)[1] if with_spread else float("nan")


__all__ = ["ANALYSIS_SIDE", "CHANCE_SHIFTS", "SD_FLOOR", "Z_MIN", "agreement_and_chance", "analysis_factor", "chance", "descriptors",
           "gradient_agreement", "gradient_chance", "gradient_gain", "gradient_peak_drop", "PEAK_SHIFT_PX", "mind_agreement", "mind_verdict", "significance",
           "structure_drop"]
