"""LOM-like renderings of real CBS images, and test pairs built from them.

No LOM counterpart exists for public CBS images, so the LOM is rendered from the CBS
itself: boundaries are the CBS's step edges (Canny on the smoothed image), drawn as dark
etched lines; the grain tint is a non-monotone function of the local (edge-preserving
smoothed) CBS grey; dark pits of the CBS stay dark; then the optical blur, illumination,
colour and noise of :func:`.render.etched_lom`. Boundaries of two grains with almost equal
CBS grey are not found and not drawn (a real LOM would show them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from ..transform import warp_image
from .deform import random_deformation, source_positions
from .pairs import SyntheticPair
from .render import LOMStyle, etched_lom, scan_noise


def read_cbs(path: str | Path) -> np.ndarray:
    """Read a real CBS micrograph as float32 ``(H, W)``, data bar cropped, scaled to 0..255."""
    from ..io import normalize, read_image

    image = read_image(path, crop_data_bar=True, as_gray=True)
    return normalize(image.data)


def cbs_edges(cbs: np.ndarray, *, sigma: float = 3.5, low: float = 15.0, high: float = 40.0, min_length: int = 25) -> np.ndarray:
    """Boolean map of the CBS's grain and twin boundaries.

    Canny edges (thresholds for images scaled to 0..255) without the short fragments
    (fewer than ``min_length`` connected pixels) that noise and surface marks leave.
    """
    from skimage.feature import canny

    edges = canny(np.asarray(cbs, dtype=np.float64), sigma=sigma, low_threshold=low, high_threshold=high)
    lab, n = ndimage.label(edges, structure=np.ones((3, 3)))
    if n:
        size = np.bincount(lab.ravel(), minlength=n + 1)
        keep = size >= min_length
        keep[0] = False
        edges = keep[lab]
    return edges


def _flat_grey(cbs: np.ndarray, sigma: float = 4.0, flat: float = 8.0) -> np.ndarray:
    """Smoothed CBS grey with sharp steps: pixels on edges take their nearest flat pixel's value."""
    g = ndimage.gaussian_filter(np.asarray(cbs, dtype=np.float64), sigma)
    gm = np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1))
    steep = gm >= flat
    if steep.all() or not steep.any():
        return g
    idx = ndimage.distance_transform_edt(steep, return_distances=False, return_indices=True)
    return g[idx[0], idx[1]]


def _pits(cbs: np.ndarray, depth: float = 60.0, size: int = 9, min_area: int = 4) -> np.ndarray:
    """Small dark spots of the CBS (pits, inclusions): a black top-hat above ``depth``."""
    c = ndimage.gaussian_filter(np.asarray(cbs, dtype=np.float64), 1.0)
    dark = ndimage.grey_closing(c, size=(size, size)) - c > depth
    lab, n = ndimage.label(dark)
    if n:
        keep = np.bincount(lab.ravel(), minlength=n + 1) >= min_area
        keep[0] = False
        dark = keep[lab]
    return dark


def lom_from_cbs(
    cbs: np.ndarray,
    rng: np.random.Generator,
    *,
    rgb: bool = False,
    style: LOMStyle | None = None,
    tint_cycles: float | None = None,
) -> np.ndarray:
    """Render a LOM-like image on the grid of a real CBS image (no deformation).

    Parameters
    ----------
    cbs
        ``(H, W)`` CBS image scaled to about 0..255 (see :func:`read_cbs`).
    rng
        Random generator (style, tint mapping and noise).
    rgb
        Colour output ``(H, W, 3)``.
    style
        LOM parameters (default: :meth:`LOMStyle.random`).
    tint_cycles
        Number of periods of the grey -> tint mapping over 0..255 (default: random in
        1.2..2.2); it is a sine, so the tint is not a monotone function of the CBS grey.

    Returns
    -------
    float32 image, about 0..255, on the CBS grid.
    """
    cbs = np.asarray(cbs, dtype=np.float64)
    style = style or LOMStyle.random(rng)
    cycles = float(rng.uniform(1.2, 2.2)) if tint_cycles is None else tint_cycles
    phase = float(rng.uniform(0, 2 * np.pi))
    grey = _flat_grey(cbs)
    tint = 1.0 + (style.tint / style.base) * 0.5 * np.sin(2 * np.pi * cycles * grey / 255.0 + phase)
    edges = cbs_edges(cbs)
    d = ndimage.distance_transform_edt(~edges) if edges.any() else np.full(cbs.shape, np.inf)
    # Etching depth varies slowly along the boundaries.
    vary = ndimage.gaussian_filter(rng.standard_normal(cbs.shape), 25.0)
    vary = 1.0 + 0.25 * vary / (vary.std() + 1e-12)
    boundary = 1.0 - np.clip(style.grain_depth * vary, 0, 0.95) * np.exp(-((d / style.grain_width) ** 2))
    pits = _pits(cbs)
    if pits.any():
        dp = ndimage.distance_transform_edt(~pits) - style.pit_grow
        boundary = boundary * np.where(dp <= 0, style.pit_factor, 1.0 - (1.0 - style.pit_factor) * np.exp(-(dp**2)))
    shift = None
    if rgb:
        # A slowly varying colour shift stands in for the per-grain colour of etched grains.
        waves = np.stack([np.sin(2 * np.pi * rng.uniform(1, 3) * grey / 255.0 + rng.uniform(0, 2 * np.pi)) for _ in range(3)], axis=-1)
        shift = 1.0 + style.colour_jitter * waves
    return etched_lom(tint, boundary, style, rng, rgb=rgb, colour_shift=shift)


def pair_from_cbs(
    cbs: np.ndarray,
    *,
    seed: int | np.random.SeedSequence,
    shape: tuple[int, int] | None = (512, 512),
    deform: bool = True,
    rgb: bool = False,
    intervals: int = 4,
    rotation_deg: tuple[float, float] = (1.5, 4.0),
    shift_px: tuple[float, float] = (3.0, 8.0),
    elastic_px: tuple[float, float] = (1.0, 3.0),
    extra_noise: float = 4.0,
    name: str | None = None,
) -> SyntheticPair:
    """A test pair from a real CBS image: a crop of it (target) and a deformed LOM rendering.

    The LOM is rendered on the whole image, so the deformed source has no empty border;
    the target is a random crop of ``shape`` (``None``: the largest crop that leaves room
    for the deformation). ``cbs_like_lom`` is the real CBS moved by the same deformation
    plus ``extra_noise`` (SD) of fresh scan noise: a perfect style transfer.
    """
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
    r_lom, r_deform, r_crop, r_noise = (np.random.default_rng(s) for s in seq.spawn(4))
    cbs = np.asarray(cbs, dtype=np.float32)
    if cbs.ndim != 2:
        raise ValueError(f"the CBS image must be (H, W), got {cbs.shape}")
    full_h, full_w = cbs.shape
    lom_full = lom_from_cbs(cbs, r_lom, rgb=rgb)
    if shape is None:  # largest crop leaving room for the largest deformation drawn
        margin = int(np.ceil(np.hypot(full_h, full_w) / 2 * np.sin(np.deg2rad(rotation_deg[1])) + shift_px[1] + 4 * elastic_px[1])) if deform else 0
        shape = (full_h - 2 * margin, full_w - 2 * margin)
    h, w = min(int(shape[0]), full_h), min(int(shape[1]), full_w)
    seed_id = seq.entropy if not seq.spawn_key else f"{seq.entropy}/{'/'.join(map(str, seq.spawn_key))}"
    meta: dict = {"seed": seed_id, "shape": [h, w], "rgb": rgb, "source_image_shape": [full_h, full_w], "deformation": None}
    if not deform:
        oy = int(r_crop.integers(0, full_h - h + 1))
        ox = int(r_crop.integers(0, full_w - w + 1))
        meta["crop_xy"] = [ox, oy]
        target = cbs[oy : oy + h, ox : ox + w].copy()
        lom = lom_full[oy : oy + h, ox : ox + w].copy()
        return SyntheticPair(lom=lom, cbs=target, cbs_like_lom=target.copy(), truth=None, name=name or f"cbs_{seed_id}".replace("/", "_"), meta=meta)
    deformation = random_deformation(r_deform, (h, w), intervals=intervals, rotation_deg=rotation_deg, shift_px=shift_px, elastic_px=elastic_px)
    pos = source_positions(deformation, (h, w))
    # Crop offsets that keep the target crop and every source position inside the image.
    x0, x1 = max(0.0, -pos[0].min()), min(full_w - w, full_w - 1 - pos[0].max())
    y0, y1 = max(0.0, -pos[1].min()), min(full_h - h, full_h - 1 - pos[1].max())
    if x1 < x0 or y1 < y0:
        raise ValueError(f"CBS image {full_w}x{full_h} is too small for a {w}x{h} crop with this deformation; use a smaller shape")
    ox = int(r_crop.integers(int(np.ceil(x0)), int(np.floor(x1)) + 1))
    oy = int(r_crop.integers(int(np.ceil(y0)), int(np.floor(y1)) + 1))
    meta["crop_xy"] = [ox, oy]
    target = cbs[oy : oy + h, ox : ox + w].copy()
    pos[0] += ox
    pos[1] += oy
    lom = warp_image(lom_full, pos)
    cbs_like = warp_image(cbs, pos) + scan_noise(r_noise, (h, w), extra_noise)
    meta["deformation"] = deformation.params
    return SyntheticPair(
        lom=lom.astype(np.float32),
        cbs=target,
        cbs_like_lom=np.clip(cbs_like, 0, 255).astype(np.float32),
        truth=deformation.truth,
        name=name or f"cbs_{seed_id}".replace("/", "_"),
        meta=meta,
    )
