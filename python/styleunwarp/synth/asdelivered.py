"""Pairs as two microscopes deliver them: own pixel sizes, a larger rotated LOM field, scratches, dust.

From an *aligned* CBS/LOM pair on one large grid (a real CBS image with its LOM-like
rendering, :func:`.fromcbs.lom_from_cbs`, or a synthetic microstructure), this cuts:

* the CBS: a crop of the large grid (the CBS pixel size);
* the LOM: its own grid, pixel ``f`` times the CBS's (``f`` in ``pixel_ratio``), a field
  ``field`` times the CBS's per side that contains the CBS field, rotated by up to
  ``rotation_deg``, shifted, with a smooth elastic distortion; anti-aliased to the coarser
  pixel, then polishing scratches, dust and camera noise on top;
* the ground truth: the direct transform on the CBS grid mapping each CBS pixel to its
  position in the LOM (a bUnwarpJ elastic file, refitted from the exact dense map).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..transform import ElasticTransform, fit_elastic

TRUTH_INTERVALS = 16
"""Intervals of the ground-truth elastic file (the refit error is recorded in ``meta``)."""


@dataclass
class AsDeliveredPair:
    """One as-delivered pair: LOM (RGB, own grid), CBS crop, pixel sizes and the truth CBS -> LOM."""

    lom: np.ndarray
    cbs: np.ndarray
    lom_pixel_um: float
    cbs_pixel_um: float
    truth: ElasticTransform
    name: str
    meta: dict = field(default_factory=dict)


def _rot(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], amplitude: float, nodes: int = 5) -> np.ndarray:
    """A smooth ``(2, H, W)`` displacement whose largest magnitude is ``amplitude`` px."""
    g = rng.standard_normal((2, nodes, nodes))
    f = np.stack([ndimage.zoom(c, (shape[0] / nodes, shape[1] / nodes), order=3, mode="nearest", grid_mode=True) for c in g])
    f = f[:, : shape[0], : shape[1]]
    m = np.hypot(f[0], f[1]).max()
    return f * (amplitude / m) if m > 0 else f


def scratches(rng: np.random.Generator, shape: tuple[int, int], n: int, contrast: tuple[float, float] = (8.0, 35.0)) -> np.ndarray:
    """Additive image of ``n`` polishing scratches: long thin straight lines, mostly one direction."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros(shape)
    main = rng.uniform(0, np.pi)
    for _ in range(n):
        ang = main + rng.normal(0, 0.25)
        nx, ny = -np.sin(ang), np.cos(ang)
        c = rng.uniform(0, 1, 2) * [w, h]
        d = (xx - c[0]) * nx + (yy - c[1]) * ny
        along = (xx - c[0]) * np.cos(ang) + (yy - c[1]) * np.sin(ang)
        length = rng.uniform(0.3, 1.5) * max(h, w)
        fade = np.clip(1.0 - np.abs(along) / (length / 2), 0, 1) ** 0.3
        width = rng.uniform(0.5, 1.6)
        sign = 1.0 if rng.random() < 0.6 else -1.0
        out += sign * rng.uniform(*contrast) * np.exp(-((d / width) ** 2)) * fade
    return out


def dust(rng: np.random.Generator, shape: tuple[int, int], n: int) -> np.ndarray:
    """Multiplicative factor (<= 1) of ``n`` dark dust specks, 1-6 px, some with a soft halo."""
    h, w = shape
    spots = np.zeros(shape)
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    spots[ys, xs] = rng.uniform(0.5, 1.0, n)
    out = np.ones(shape)
    for r in (1.0, 2.5, 5.0):
        pick = np.zeros(shape)
        sel = rng.random(n) < 0.4
        pick[ys[sel], xs[sel]] = spots[ys[sel], xs[sel]]
        blob = ndimage.gaussian_filter(pick, r) * (2 * np.pi * r * r)
        out *= 1.0 - np.clip(blob, 0, 0.85)
    return out


def as_delivered(
    cbs_full: np.ndarray,
    lom_full: np.ndarray,
    rng: np.random.Generator,
    *,
    cbs_pixel_um: float,
    target_shape: tuple[int, int] = (384, 384),
    pixel_ratio: tuple[float, float] = (1.3, 2.0),
    field: tuple[float, float] = (1.3, 1.6),
    rotation_deg: float = 8.0,
    elastic_px: tuple[float, float] = (1.0, 4.0),
    n_scratches: tuple[int, int] = (3, 12),
    n_dust: tuple[int, int] = (10, 60),
    noise: float = 3.0,
    name: str = "asdelivered",
) -> AsDeliveredPair:
    """Cut an as-delivered pair out of an aligned pair on one large grid (see the module docstring)."""
    cbs_full = np.asarray(cbs_full, np.float64)
    lom_full = np.asarray(lom_full, np.float64)
    if lom_full.ndim == 2:
        lom_full = lom_full[..., None]
    H, W = cbs_full.shape
    h, w = target_shape
    for _ in range(200):
        f = float(rng.uniform(*pixel_ratio))
        m = float(rng.uniform(*field))
        rot = float(rng.uniform(-rotation_deg, rotation_deg))
        amp = float(rng.uniform(*elastic_px))
        lw, lh = int(round(w * m / f)), int(round(h * m / f))  # LOM pixels
        R = _rot(rot)
        # LOM field half-extent in full-grid px along its own axes, and its footprint
        half = np.array([lw * f / 2, lh * f / 2])
        corners = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]) * half
        foot = np.abs(corners @ R.T).max(axis=0) + amp + 2
        if 2 * foot[0] >= W or 2 * foot[1] >= H:
            continue
        cx = float(rng.uniform(foot[0], W - foot[0]))
        cy = float(rng.uniform(foot[1], H - foot[1]))
        # the CBS crop lies inside the LOM field (with room for the rotation and the elastic part)
        tc = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [-w / 2, h / 2], [w / 2, h / 2]])
        rotated = np.abs(tc @ R).max(axis=0)  # crop extent in LOM axes
        slack = half - rotated - amp - 2
        if (slack <= 0).any():
            continue
        off_l = rng.uniform(-1, 1, 2) * slack * 0.8  # crop centre in LOM axes, relative to the LOM centre
        tcx, tcy = np.array([cx, cy]) + R @ off_l
        ox, oy = int(round(tcx - w / 2)), int(round(tcy - h / 2))
        if 0 <= ox and ox + w <= W and 0 <= oy and oy + h <= H:
            break
    else:
        raise ValueError(f"a {W}x{H} aligned pair is too small for a {w}x{h} CBS crop as delivered; use a smaller target_shape")
    centre_u = np.array([(lw - 1) / 2, (lh - 1) / 2])
    centre_f = np.array([cx, cy])
    elastic = _smooth_field(rng, (lh, lw), amp)
    # LOM pixel u -> full-grid position G(u) = c + f R (u - u_c) + e(u)
    vv, uu = np.mgrid[0:lh, 0:lw].astype(np.float64)
    du = np.stack([uu - centre_u[0], vv - centre_u[1]])
    gx = centre_f[0] + f * (R[0, 0] * du[0] + R[0, 1] * du[1]) + elastic[0]
    gy = centre_f[1] + f * (R[1, 0] * du[0] + R[1, 1] * du[1]) + elastic[1]
    sigma = np.sqrt(max(f * f - 1.0, 0.0)) / 2  # anti-aliasing to the coarser LOM pixel
    chans = []
    for c in range(lom_full.shape[2]):
        src = ndimage.gaussian_filter(lom_full[..., c], sigma) if sigma > 0.2 else lom_full[..., c]
        chans.append(ndimage.map_coordinates(src, [gy, gx], order=3, mode="mirror"))
    lom = np.stack(chans, axis=-1)
    k_s, k_d = int(rng.integers(n_scratches[0], n_scratches[1] + 1)), int(rng.integers(n_dust[0], n_dust[1] + 1))
    scr = scratches(rng, (lh, lw), k_s)
    dst = dust(rng, (lh, lw), k_d)
    lom = (lom + scr[..., None]) * dst[..., None] + noise * rng.standard_normal(lom.shape)
    lom = np.clip(lom, 0, 255).astype(np.float32)
    if lom.shape[2] == 1:
        lom = lom[..., 0]
    cbs = cbs_full[oy : oy + h, ox : ox + w].astype(np.float32)
    # truth: CBS pixel x -> u with G(u) = x + o (fixed-point iteration through the smooth elastic part)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    px, py = xx + ox, yy + oy
    rinv = R.T / f
    ux = centre_u[0] + rinv[0, 0] * (px - centre_f[0]) + rinv[0, 1] * (py - centre_f[1])
    uy = centre_u[1] + rinv[1, 0] * (px - centre_f[0]) + rinv[1, 1] * (py - centre_f[1])
    for _ in range(30):
        ex = ndimage.map_coordinates(elastic[0], [uy, ux], order=1, mode="nearest")
        ey = ndimage.map_coordinates(elastic[1], [uy, ux], order=1, mode="nearest")
        qx, qy = px - centre_f[0] - ex, py - centre_f[1] - ey
        nx = centre_u[0] + rinv[0, 0] * qx + rinv[0, 1] * qy
        ny = centre_u[1] + rinv[1, 0] * qx + rinv[1, 1] * qy
        step = max(np.abs(nx - ux).max(), np.abs(ny - uy).max())
        ux, uy = nx, ny
        if step < 1e-4:
            break
    dense = np.stack([ux, uy])
    truth = fit_elastic(dense, TRUTH_INTERVALS)
    fit_err = float(np.hypot(*(truth.at((h, w), xx, yy) - dense)).mean())
    meta = {
        "pixel_ratio": f,
        "field_ratio": m,
        "rotation_deg": rot,
        "elastic_px": amp,
        "lom_centre_full_px": [cx, cy],
        "cbs_crop_xy": [ox, oy],
        "lom_shape": list(lom.shape),
        "cbs_shape": [h, w],
        "scratches": k_s,
        "dust": k_d,
        "truth_fit_error_px": fit_err,
    }
    return AsDeliveredPair(lom, cbs, cbs_pixel_um * f, cbs_pixel_um, truth, name, meta)


def write_asdelivered(out: str | Path, n: int, *, from_cbs: str | Path | None = None, seed: int = 0, target_size: int = 384) -> dict:
    """Write ``n`` as-delivered pairs to ``out``.

    ``out/with_pixel_size/NAME_LOM.tif`` + ``NAME_CBS.tif`` (both TIFFs carry their pixel
    size), ``out/without_pixel_size/`` (the same pairs, the LOM without one),
    ``out/truth/NAME_direct_transf.txt`` (CBS grid -> LOM pixels) and ``out/asdelivered.json``.
    From the real CBS images of ``from_cbs`` (one pair per image, cycling) with LOM
    renderings of them, else from synthetic microstructures.
    """
    from ..io import read_image, write_tiff
    from ..transform import write_elastic
    from .dataset import cbs_images
    from .fromcbs import lom_from_cbs, read_cbs
    from .pairs import make_pair

    root = Path(out)
    dirs = {k: root / k for k in ("with_pixel_size", "without_pixel_size", "truth")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    files = cbs_images(from_cbs) if from_cbs is not None else []
    desc: dict = {"seed": seed, "from_cbs": None if from_cbs is None else str(from_cbs), "pairs": []}
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 13, i]))
        if files:
            path = files[i % len(files)]
            cbs_full = read_cbs(path)
            px = read_image(path).pixel_size or 0.01
            lom_full = lom_from_cbs(cbs_full, rng, rgb=True)
            name, origin = f"ad{i:02d}_{Path(path).stem}", str(Path(path).name)
        else:
            p = make_pair((2 * target_size + 64, 2 * target_size + 64), seed=int(rng.integers(1 << 31)), deform=False, rgb=True)
            cbs_full, lom_full, px = p.cbs, p.lom, 0.05
            name, origin = f"ad{i:02d}_synth", "synthetic"
        pair = as_delivered(cbs_full, lom_full, rng, cbs_pixel_um=px, target_shape=(target_size, target_size), name=name)
        for d, lom_px in ((dirs["with_pixel_size"], pair.lom_pixel_um), (dirs["without_pixel_size"], None)):
            write_tiff(d / f"{name}_LOM.tif", pair.lom, pixel_size=lom_px)
            write_tiff(d / f"{name}_CBS.tif", pair.cbs, pixel_size=pair.cbs_pixel_um)
        write_elastic(pair.truth, dirs["truth"] / f"{name}_direct_transf.txt")
        desc["pairs"].append({"name": name, "origin": origin, "lom_pixel_um": pair.lom_pixel_um, "cbs_pixel_um": pair.cbs_pixel_um, **pair.meta})
    (root / "asdelivered.json").write_text(json.dumps(desc, indent=2) + "\n")
    return desc
