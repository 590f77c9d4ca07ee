"""Blind LOM renderer no. 3: light-optical look-alikes of real SEM channeling-contrast images.

Written independently, from first principles of metallography and optics, WITHOUT reading the
registration tool's code, its other benchmarks, tests or design notes. It serves as a held-out
robustness test: the renderer knows nothing about how the registration tool models LOM images.

Pipeline (per render)
---------------------
1. Geometry only is taken from the SEM-CBS image: it is denoised and segmented into grains /
   twin lamellae (watershed on the gradient, then merging of regions whose two sides of the
   shared boundary do not differ). CBS grey levels, noise and texture are discarded; only the
   label map, a sub-pixel distance-to-boundary field and a straight-boundary ("twin-like") flag
   per boundary survive.
2. Every region gets a random crystal orientation; orientation-dependent quantities follow from
   it (film growth rate -> tint colour, etch relief height/tilt, facet roughness, in-plane
   azimuth and film birefringence for polarised light). Nothing is derived from CBS brightness.
3. A specimen model is built: surface height (nm), reflectance multiplier, film thickness,
   light scatter, from the etch plus preparation defects (scratches, smeared layer, stains,
   water marks, dust, oxide inclusions, MnS stringers, etch pits).
4. One contrast mode is imaged through spectral physics (Gaussian camera sensitivities,
   Planck illuminant): thin-film interference on steel (tint etches), Michel-Levy interference
   colours (DIC with/without lambda plate, crossed polars), slope acceptance of the objective
   (bright field) or slope scatter (dark field).
5. Optics: PSF wider than the SEM's, field-dependent defocus (tilted specimen), lateral and
   axial chromatic aberration, vignetting, uneven illumination, veiling glare, dust shadows.
6. Camera at its own (often lower) resolution: exposure and clipping, Bayer mosaic +
   demosaic, shot/read noise, white balance, saturation, gamma, 8-bit quantisation, JPEG;
   then resampled back so that the result is pixel-aligned with the CBS input.

Looks and their probabilities (``render_lom``):
  tint etch 0.26        Beraha I/II, Klemm I, Lichtenegger-Bloech: grains in interference colours,
                        boundaries as bare colour changes (0.5), thin dark lines (0.3) or light halos;
  bright field 0.22     grain-boundary etch: thin grooves 0.3, wide ditches (oxalic) 0.25,
                        step structure 0.2, grain-contrast etch 0.25; twins mostly faint;
  DIC (Nomarski) 0.22   embossed relief of grain steps/tilts/grooves/scratches; grey bias, or a
                        first-order-red bias giving coloured relief;
  polarised 0.18        crossed polars on an anisotropic film, with or without lambda plate;
  dark field 0.12       bright boundaries, scratches and particles on a dark ground.
With ``colour=None`` the colour probability depends on the mode (tint 0.8, DIC and polarised
0.5, bright field 0.35, dark field 0.3; about 0.52 overall). Each preparation defect, optical
and camera effect is drawn independently with its own probability and strength; every choice
is recorded in the returned params.

CLI: ``python benchmarks/blind_lom3.py --out DIR [--n 10] [--seed 7] [--size 512] [--data DIR]``
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image, ImageDraw
from scipy import ndimage as ndi
from scipy.special import erfinv, expit
from skimage import draw, filters, graph, measure, segmentation, transform

BAR_ROWS = 70
DEFAULT_DATA = Path("/work/shared/data/openecci-cbs")

MODES = ("tint", "brightfield", "dic", "polarised", "darkfield")
MODE_P = (0.26, 0.22, 0.22, 0.18, 0.12)
COLOUR_P = {"tint": 0.8, "brightfield": 0.35, "dic": 0.5, "polarised": 0.5, "darkfield": 0.3}


# --------------------------------------------------------------------------------------------
# input
# --------------------------------------------------------------------------------------------
def crop_cbs(path, size: int = 512, rng: np.random.Generator | None = None) -> np.ndarray:
    """Read one CBS file, drop the 70-row data bar, return a size x size float32 crop (random
    position if rng given, else centre). Values are the raw counts scaled to [0, 1]."""
    img = tifffile.imread(str(path))
    if img.ndim == 3:  # tolerate an RGB(A) export
        img = img[..., :3].mean(axis=-1)
    scale = float(np.iinfo(img.dtype).max) if np.issubdtype(img.dtype, np.integer) else 1.0
    img = img[:-BAR_ROWS] if img.shape[0] > BAR_ROWS else img
    h, w = img.shape
    s = min(size, h, w)
    if rng is None:
        y0, x0 = (h - s) // 2, (w - s) // 2
    else:
        y0, x0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    return (img[y0:y0 + s, x0:x0 + s].astype(np.float64) / scale).astype(np.float32)


# --------------------------------------------------------------------------------------------
# geometry: segmentation of the CBS image (only the label map leaves this section)
# --------------------------------------------------------------------------------------------
def _union_find(lab: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Relabel ``lab`` after merging the given label pairs (transitively)."""
    parent = np.arange(int(lab.max()) + 1)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in pairs:
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    root = np.array([find(i) for i in range(len(parent))])
    return root[lab]


def _adjacency(lab: np.ndarray) -> dict[tuple[int, int], int]:
    """4-neighbour adjacency: (u, v) with u < v -> number of touching pixel pairs."""
    m = int(lab.max()) + 1
    a = np.concatenate([np.stack([lab[:, :-1].ravel(), lab[:, 1:].ravel()]),
                        np.stack([lab[:-1].ravel(), lab[1:].ravel()])], axis=1)
    a = np.sort(a[:, a[0] != a[1]], axis=0).astype(np.int64)
    keys, counts = np.unique(a[0] * m + a[1], return_counts=True)
    return {(int(k // m), int(k % m)): int(c) for k, c in zip(keys, counts)}


def _merge_small(lab: np.ndarray, min_area: int, min_width: float = 2.5) -> np.ndarray:
    """Merge regions smaller than min_area, or thinner than 2*min_width px (SEM scratches,
    transition slivers), into the neighbour they share most boundary with."""
    for _ in range(4):
        areas = np.bincount(lab.ravel())
        inner = ndi.distance_transform_edt(~segmentation.find_boundaries(lab, mode="inner"))
        width = np.zeros(len(areas))
        present = np.unique(lab)
        width[present] = ndi.maximum(inner, lab, present)
        bad = (areas < min_area) | (width < min_width)
        best: dict[int, tuple[int, int]] = {}
        for (u, v), c in _adjacency(lab).items():
            for s, o in ((u, v), (v, u)):
                if bad[s] and (s not in best or c > best[s][1]):
                    best[s] = (o, c)
        if not best:
            break
        lab = _union_find(lab, [(s, o) for s, (o, _) in best.items()])
    return lab


def _merge_low_contrast(lab: np.ndarray, den: np.ndarray, band: int = 5, max_area: int = 1500,
                        thresh: float = 0.04) -> np.ndarray:
    """Merge small regions into a neighbour whose grey level next to the shared boundary matches."""
    lab = measure.label(lab, connectivity=1, background=-1)
    areas = np.bincount(lab.ravel())
    h, w = lab.shape
    side: dict[tuple[int, int], float] = {}
    for v, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        y0, y1 = max(sl[0].start - band, 0), min(sl[0].stop + band, h)
        x0, x1 = max(sl[1].start - band, 0), min(sl[1].stop + band, w)
        sub, dsub = lab[y0:y1, x0:x1], den[y0:y1, x0:x1]
        dist = ndi.distance_transform_edt(sub != v)
        near = (dist > 0) & (dist <= band)
        ln, dn = sub[near], dsub[near]
        for u in np.unique(ln):
            side[(v, int(u))] = float(np.median(dn[ln == u]))  # u's grey level next to v
    pairs = []
    for (u, v) in _adjacency(lab):
        if (u, v) in side and (v, u) in side and min(areas[u], areas[v]) < max_area:
            if abs(side[(u, v)] - side[(v, u)]) < thresh:
                pairs.append((u, v))
    return _union_find(lab, pairs)


def _oriented_edges(img: np.ndarray, across: float = 1.5, along: float = 10.0, n: int = 12) -> np.ndarray:
    """Max over orientations of an elongated derivative-of-Gaussian step-edge response.

    Long support along the edge averages out the SEM scan noise while straight or gently
    curved grain / twin boundaries add up coherently."""
    h, w = img.shape
    best = np.zeros_like(img)
    for th in np.arange(0.0, 180.0, 180.0 / n):
        r = ndi.rotate(img, th, reshape=True, order=1, mode="nearest")
        e = np.abs(ndi.gaussian_filter(r, (across, along), order=(1, 0)))
        e = ndi.rotate(e, -th, reshape=True, order=1)
        y0, x0 = (e.shape[0] - h) // 2, (e.shape[1] - w) // 2
        np.maximum(best, e[y0:y0 + h, x0:x0 + w], out=best)
    return best


def segment_grains(cbs: np.ndarray, merge_k: float = 2.3) -> np.ndarray:
    """Label map (int32, 0..n-1) of grains and twin lamellae seen in a CBS image."""
    a = np.asarray(cbs, dtype=np.float32)
    lo, hi = np.percentile(a, [1, 99])
    if hi - lo < 1e-12:
        return np.zeros(a.shape, np.int32)
    a = np.clip((a - lo) / (hi - lo), 0, 1)
    den = ndi.median_filter(a, size=(5, 3))  # scan noise is streaky along x
    edge = _oriented_edges(den)
    markers = measure.label(filters.gaussian(edge, 1.0) < np.percentile(edge, 40))
    small = np.bincount(markers.ravel()) < 20
    small[0] = True
    markers[small[markers]] = 0
    ws = segmentation.watershed(edge, markers)

    def weight_fn(g, src, dst, n):  # mean edge strength along the merged boundary
        e1 = g[src].get(n, {"count": 0, "weight": 0.0})
        e2 = g[dst].get(n, {"count": 0, "weight": 0.0})
        c = e1["count"] + e2["count"]
        return {"count": c, "weight": (e1["count"] * e1["weight"] + e2["count"] * e2["weight"]) / max(c, 1)}

    rag = graph.rag_boundary(ws, edge)
    lab = graph.merge_hierarchical(ws, rag, thresh=merge_k * float(np.median(edge)), rag_copy=False,
                                   in_place_merge=True, merge_func=lambda g, s, d: None, weight_func=weight_fn)
    lab = _merge_small(lab + 1, 120)
    lab = _merge_low_contrast(lab, ndi.gaussian_filter(den, 1.5))
    lab = _merge_small(lab, 120)
    _, inv = np.unique(lab, return_inverse=True)
    return inv.reshape(lab.shape).astype(np.int32)


@dataclass
class Geometry:
    """Specimen geometry derived from the CBS image (nothing else of the CBS is kept)."""

    labels: np.ndarray      # (H, W) int32, 0..n-1, boundaries smoothed
    n: int
    dist: np.ndarray        # (H, W) float32 distance to the nearest interface, px (sub-pixel near it)
    pair_of: np.ndarray     # (H, W) int32 index of the nearest boundary (grain pair)
    pairs: list[tuple[int, int]]
    twin: np.ndarray        # (npairs,) bool: straight, parallel-partnered boundary (twin-like)


def _smooth_labels(labels: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-vote relabelling (removes pixel staircase); also returns best-minus-second vote."""
    h, w = labels.shape
    best = np.full((h, w), -1.0, np.float32)
    second = np.zeros((h, w), np.float32)
    out = labels.copy()
    pad = int(3 * sigma) + 2
    for k, sl in enumerate(ndi.find_objects(labels + 1)):
        if sl is None:
            continue
        ys = slice(max(sl[0].start - pad, 0), min(sl[0].stop + pad, h))
        xs = slice(max(sl[1].start - pad, 0), min(sl[1].stop + pad, w))
        g = ndi.gaussian_filter((labels[ys, xs] == k).astype(np.float32), sigma, mode="nearest")
        b, s2, o = best[ys, xs], second[ys, xs], out[ys, xs]
        upd = g > b
        s2[...] = np.where(upd, b, np.maximum(s2, g))
        b[upd] = g[upd]
        o[upd] = k
    return out, np.clip(best - second, 0, 1)


def _twin_flags(labels: np.ndarray, pair_img: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Flag boundaries that mostly consist of long straight segments with a nearby, overlapping
    parallel partner: the signature of annealing-twin lamellae (coherent {111} twin planes)."""
    edges = segmentation.find_boundaries(labels, mode="inner")
    lines = transform.probabilistic_hough_line(edges, threshold=15, line_length=30, line_gap=2, rng=0)
    segs = []  # (pair index, angle, p0, p1)
    for (x0, y0), (x1, y1) in lines:
        t = np.linspace(0, 1, 12)
        ids = pair_img[np.round(y0 + t * (y1 - y0)).astype(int), np.round(x0 + t * (x1 - x0)).astype(int)]
        ids = ids[ids >= 0]
        if len(ids) >= 8:
            k = int(np.bincount(ids).argmax())
            if np.mean(ids == k) > 0.75:
                segs.append((k, math.atan2(y1 - y0, x1 - x0) % math.pi,
                             np.array([x0, y0], float), np.array([x1, y1], float)))
    hit = np.zeros(labels.shape, bool)
    for i, (k, ang, a0, a1) in enumerate(segs):
        u = np.array([math.cos(ang), math.sin(ang)])
        nrm = np.array([-u[1], u[0]])
        for j, (k2, ang2, b0, b1) in enumerate(segs):
            d = abs(ang - ang2) % math.pi
            if i == j or min(d, math.pi - d) > math.radians(4) or not set(pairs[k]) & set(pairs[k2]):
                continue
            offset = abs(float((0.5 * (b0 + b1) - 0.5 * (a0 + a1)) @ nrm))
            ia, ib = sorted([a0 @ u, a1 @ u]), sorted([b0 @ u, b1 @ u])
            overlap = min(ia[1], ib[1]) - max(ia[0], ib[0])
            if 3 < offset < 80 and overlap > 0.3 * min(ia[1] - ia[0], ib[1] - ib[0]):
                for p0, p1 in ((a0, a1), (b0, b1)):
                    rr, cc = draw.line(int(p0[1]), int(p0[0]), int(p1[1]), int(p1[0]))
                    hit[rr, cc] = True
    if not hit.any():
        return np.zeros(len(pairs), bool)
    hit = ndi.binary_dilation(hit, iterations=2)
    total = np.bincount(pair_img[pair_img >= 0], minlength=len(pairs))
    covered = np.bincount(pair_img[hit & (pair_img >= 0)], minlength=len(pairs))
    return covered > 0.5 * np.maximum(total, 1)


def build_geometry(cbs: np.ndarray, sigma: float = 1.5) -> Geometry:
    """Segment the CBS image and derive boundary fields (distance, nearest boundary, twin flag)."""
    raw = segment_grains(cbs)
    labels, margin = _smooth_labels(raw, sigma)
    _, inv = np.unique(labels, return_inverse=True)
    labels = inv.reshape(labels.shape).astype(np.int32)
    n = int(labels.max()) + 1
    h, w = labels.shape
    pad = np.pad(labels, 1, mode="edge")
    other = np.full((h, w), -1, np.int64)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        nb = pad[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        sel = (nb != labels) & (other < 0)
        other[sel] = nb[sel]
    bmask = other >= 0
    pair_img = np.full((h, w), -1, np.int32)
    pairs: list[tuple[int, int]] = []
    if bmask.any():
        lo = np.minimum(labels, other)[bmask]
        hi = np.maximum(labels, other)[bmask]
        keys, pinv = np.unique(lo * n + hi, return_inverse=True)
        pair_img[bmask] = pinv
        pairs = [(int(k // n), int(k % n)) for k in keys]
        edt, (iy, ix) = ndi.distance_transform_edt(~bmask, return_indices=True)
        pair_of = pair_img[iy, ix]
        # sub-pixel distance from the vote margin near the interface (margin = erf(d / (s*sqrt2)))
        near = sigma * math.sqrt(2) * erfinv(np.clip(margin, 0, 0.95))
        far = np.maximum(ndi.gaussian_filter(edt + 0.5, 1.5), near)  # smooth away the pixel staircase
        wgt = np.clip((margin - 0.75) / 0.2, 0, 1)
        dist = (1 - wgt) * near + wgt * far
        twin = _twin_flags(labels, pair_img, pairs)
    else:
        pair_of = np.zeros((h, w), np.int32)
        dist = np.full((h, w), 1e3)
        twin = np.zeros(0, bool)
    return Geometry(labels, n, dist.astype(np.float32), pair_of.astype(np.int32), pairs, twin)


# --------------------------------------------------------------------------------------------
# random fields and small helpers
# --------------------------------------------------------------------------------------------
def _r(x: Any, nd: int = 4) -> Any:
    """Round / convert to plain Python for JSON."""
    if isinstance(x, (list, tuple)):
        return [_r(v, nd) for v in x]
    if isinstance(x, (np.floating, float)):
        return round(float(x), nd)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-std random field with correlation length ~scale px."""
    h, w = shape
    f = max(scale / 2.0, 1.0)
    gh, gw = int(math.ceil(h / f)) + 3, int(math.ceil(w / f)) + 3
    z = ndi.gaussian_filter(rng.standard_normal((gh, gw)), 1.0, mode="wrap")
    z = transform.resize(z, (int(round(gh * f)), int(round(gw * f))), order=1, mode="edge")[:h, :w]
    return ((z - z.mean()) / (z.std() + 1e-12)).astype(np.float32)


def _directional_noise(rng: np.random.Generator, shape: tuple[int, int], angle: float,
                       length: int, width: float) -> np.ndarray:
    """Random field of streaks along ``angle`` (rad): fine polishing-scratch texture."""
    h, w = shape
    d = int(math.ceil(math.hypot(h, w))) + 4
    z = ndi.uniform_filter1d(rng.standard_normal((d, d)).astype(np.float32), max(length, 1), axis=1)
    z = ndi.gaussian_filter1d(z, width, axis=0)
    z = ndi.rotate(z, math.degrees(angle), reshape=False, order=1, mode="wrap")
    y0, x0 = (d - h) // 2, (d - w) // 2
    z = z[y0:y0 + h, x0:x0 + w]
    return (z - z.mean()) / (z.std() + 1e-12)


def _seg_dist(yy: np.ndarray, xx: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of pixels to the segment p0-p1 (x, y) and the position parameter t in [0, 1]."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    l2 = dx * dx + dy * dy + 1e-9
    t = np.clip(((xx - p0[0]) * dx + (yy - p0[1]) * dy) / l2, 0, 1)
    return np.hypot(xx - p0[0] - t * dx, yy - p0[1] - t * dy), t


def _paint_points(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, vals: np.ndarray,
                  sigma: float) -> np.ndarray:
    """Splat weighted points and blur them into soft blobs/lines."""
    acc = np.zeros(shape, np.float32)
    iy = np.clip(np.round(ys).astype(int), 0, shape[0] - 1)
    ix = np.clip(np.round(xs).astype(int), 0, shape[1] - 1)
    np.add.at(acc, (iy, ix), vals)
    return ndi.gaussian_filter(acc, sigma) * (2 * math.pi * sigma * sigma)


# --------------------------------------------------------------------------------------------
# crystal orientation -> per-grain optical / etching properties
# --------------------------------------------------------------------------------------------
def _grain_properties(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Random cubic orientations and derived orientation-dependent scalars (per grain)."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    rot = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], 1)
    nc = rot[:, 2, :]                                   # specimen normal in crystal axes
    u = (np.sum(nc ** 4, 1) - 1 / 3) / (2 / 3)          # 1 at {100}, 0.25 at {110}, 0 at {111}
    v = 27 * np.prod(nc ** 2, 1)                        # 1 at {111}
    azim = np.arctan2(rot[:, 1, 0], rot[:, 0, 0])       # in-plane direction of crystal [100]

    def spread(a: np.ndarray, jitter: float) -> np.ndarray:  # rank-normalise to [0, 1]
        a = a + jitter * rng.standard_normal(n)
        return (np.argsort(np.argsort(a)) + rng.uniform(0.1, 0.9, n)) / max(n, 1)

    return {
        "film": spread(0.8 * u - 0.6 * v, 0.15),       # tint-film growth rate
        "relief": spread(-0.7 * u + 0.5 * v, 0.3),      # polishing / etch height
        "rough": spread(0.5 * v - 0.4 * u, 0.3),        # etch-facet roughness
        "azim": azim,
        "biref": 0.3 + 0.7 * np.abs(np.sin(2 * np.arccos(np.clip(np.abs(nc[:, 2]), 0, 1)))),
        "tilt": rng.standard_normal((n, 2)),
        "dome": rng.standard_normal(n),
    }


# --------------------------------------------------------------------------------------------
# spectral optics
# --------------------------------------------------------------------------------------------
_WL = np.arange(400.0, 701.0, 10.0)


def _illuminant(temp: float) -> np.ndarray:
    """Planck spectrum on _WL, normalised to max 1."""
    lam = _WL * 1e-9
    b = 1.0 / (lam ** 5 * (np.exp(1.4388e-2 / (lam * temp)) - 1))
    return b / b.max()


def _cam_matrix(temp: float) -> np.ndarray:
    """(3, nwl) camera response to reflectance spectra, white-balanced to a perfect reflector."""
    sens = np.stack([np.exp(-0.5 * ((_WL - c) / s) ** 2) for c, s in ((605, 38), (540, 36), (460, 30))])
    m = sens * _illuminant(temp)
    return m / m.sum(1, keepdims=True)


def _film_lut(thick: np.ndarray, n_film: float, k_film: float, temp: float) -> np.ndarray:
    """RGB reflectance of a transparent/absorbing film of given thickness (nm) on steel."""
    lam = _WL[None, :]
    n1 = (n_film + 0.03 * (550 - lam) / 150) - 1j * k_film
    n2 = (2.4 + 0.0015 * (lam - 400)) - 1j * (2.9 + 0.0015 * (lam - 400))
    r01 = (1 - n1) / (1 + n1)
    r12 = (n1 - n2) / (n1 + n2)
    ph = np.exp(-2j * (2 * np.pi * n1 * thick[:, None] / lam))
    r = (r01 + r12 * ph) / (1 + r01 * r12 * ph)
    return (np.abs(r) ** 2) @ _cam_matrix(temp).T


def _michel_levy_lut(delta: np.ndarray, temp: float) -> np.ndarray:
    """RGB of sin^2(pi*delta/lambda): interference colour between crossed polars."""
    return np.sin(np.pi * delta[:, None] / _WL[None, :]) ** 2 @ _cam_matrix(temp).T


def _apply_lut(field: np.ndarray, grid: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Per-pixel RGB by linear interpolation of a 1-D LUT."""
    f = field.ravel()
    out = np.stack([np.interp(f, grid, lut[:, c]) for c in range(3)], -1)
    return out.reshape(field.shape + (3,)).astype(np.float32)


def _slope(h: np.ndarray, pix_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Surface slope components (dimensionless) of a height map in nm."""
    gy, gx = np.gradient(h)
    return gx / pix_nm, gy / pix_nm


# --------------------------------------------------------------------------------------------
# specimen: etch relief and preparation defects
# --------------------------------------------------------------------------------------------
@dataclass
class Surface:
    """Physical layers of the specimen; modes read what they need."""

    height: np.ndarray   # nm, added to the etch relief
    refl: np.ndarray     # (H, W, 3) reflectance multiplier
    scatter: np.ndarray  # diffuse scatter strength (dark field, haze)
    film_dt: np.ndarray  # additive tint-film thickness (nm)
    film_k: np.ndarray   # multiplicative tint-film factor (0 = no film, e.g. on inclusions)
    smear: np.ndarray    # 0..1, smeared (deformed) surface layer hiding the structure


def _boundary_weight(geom: Geometry, rng: np.random.Generator, p_missing: float, twin_vis: float,
                     surf: Surface) -> tuple[np.ndarray, dict]:
    """Per-pixel etch attack of the nearest boundary: per-boundary strength, gaps along it."""
    npair = max(len(geom.pairs), 1)
    wpair = rng.uniform(0.35, 1.0, npair)
    wpair[rng.random(npair) < p_missing] = 0.0
    if len(geom.twin):
        wpair[: len(geom.twin)][geom.twin] *= twin_vis
    gap_scale = float(rng.uniform(15, 60))
    gaps = np.clip(0.75 + 0.6 * _smooth_noise(rng, geom.labels.shape, gap_scale), 0, 1)
    bw = wpair[geom.pair_of] * gaps * (1 - 0.9 * surf.smear)
    return bw.astype(np.float32), {"p_missing": _r(p_missing), "twin_visibility": _r(twin_vis),
                                   "missing_boundaries": int((wpair == 0).sum()), "gap_scale": _r(gap_scale)}


def _surface(geom: Geometry, rng: np.random.Generator, props: dict) -> tuple[Surface, dict]:
    """Draw preparation defects independently, each with its own probability and strength."""
    shape = geom.labels.shape
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = Surface(np.zeros(shape, np.float32), np.ones(shape + (3,), np.float32), np.zeros(shape, np.float32),
                np.zeros(shape, np.float32), np.ones(shape, np.float32), np.zeros(shape, np.float32))
    p: dict[str, Any] = {}

    if rng.random() < 0.55:  # polishing scratches
        kind = str(rng.choice(["straight", "curved", "mixed"], p=[0.55, 0.25, 0.2]))
        coarse = bool(rng.random() < 0.4)
        nsc = int(rng.integers(1, 8 if coarse else 30))
        main_dir = rng.uniform(0, math.pi)
        drawn = []
        for _ in range(nsc):
            width = rng.uniform(1.0, 3.0) if coarse else rng.uniform(0.4, 1.0)
            depth = rng.uniform(20, 120) if coarse else rng.uniform(4, 30)
            curved = kind == "curved" or (kind == "mixed" and rng.random() < 0.5)
            if curved:
                rad = rng.uniform(250, 2500)
                a0 = rng.uniform(0, 2 * math.pi)
                cx = rng.uniform(0, w) - rad * math.cos(a0)
                cy = rng.uniform(0, h) - rad * math.sin(a0)
                span = min(rng.uniform(80, 900) / rad, 2 * math.pi)
                ang = (np.arctan2(yy - cy, xx - cx) - a0 + span / 2 + math.pi) % (2 * math.pi) - math.pi
                t = ang / span
                d = np.abs(np.hypot(yy - cy, xx - cx) - rad)
                inside = (t >= 0) & (t <= 1)
                t = np.clip(t, 0, 1)
            else:
                ang = main_dir + rng.normal(0, 0.12 if kind != "mixed" else 0.6)
                ln = rng.uniform(60, 1.5 * max(h, w))
                c = np.array([rng.uniform(0, w), rng.uniform(0, h)])
                e = np.array([math.cos(ang), math.sin(ang)]) * ln / 2
                d, t = _seg_dist(yy, xx, c - e, c + e)
                inside = np.ones(shape, bool)
            taper = np.clip(np.sin(np.pi * t), 0, 1) ** 0.4 * inside
            prof = np.exp(-(d / width) ** 2) * taper
            s.height -= depth * prof
            s.scatter += 0.6 * (depth / 60) * prof
            s.film_dt += 0.3 * depth * prof
            if coarse:
                s.refl *= (1 - 0.25 * prof)[..., None]
            drawn.append([_r(width, 2), _r(depth, 1), curved])
        p["scratches"] = {"kind": kind, "coarse": coarse, "n": nsc, "main_dir_deg": _r(math.degrees(main_dir), 1),
                          "width_depth_curved": drawn}
        if rng.random() < 0.5:  # dense fine-scratch texture from the last polishing step
            amp = rng.uniform(1, 6)
            tex = np.maximum(_directional_noise(rng, shape, main_dir + rng.normal(0, 0.05),
                                                int(rng.integers(20, 120)), 0.6) - rng.uniform(1.3, 2.3), 0)
            s.height -= amp * tex
            s.scatter += 0.05 * amp * tex
            p["scratches"]["fine_texture_nm"] = _r(amp, 2)

    if rng.random() < 0.18:  # smeared / deformed layer from polishing
        m = _smooth_noise(rng, shape, rng.uniform(60, 200))
        thr = rng.uniform(0.6, 1.5)
        s.smear = np.clip((m - thr) / 0.5, 0, 1) * rng.uniform(0.5, 1.0)
        flow = _directional_noise(rng, shape, rng.uniform(0, math.pi), int(rng.integers(15, 60)), 1.5)
        s.height += rng.uniform(1, 4) * s.smear * flow
        s.scatter += 0.03 * s.smear
        p["smeared_layer"] = {"area_frac": _r((s.smear > 0.05).mean(), 3), "threshold": _r(thr, 2)}

    if rng.random() < 0.25:  # stains (etchant residue, tarnish)
        m = _smooth_noise(rng, shape, rng.uniform(30, 150))
        thr = rng.uniform(1.0, 2.0)
        mask = np.clip((m - thr) / rng.uniform(0.1, 0.5), 0, 1)
        tint = np.array(rng.choice([[0.9, 0.72, 0.5], [0.72, 0.78, 0.95], [0.7, 0.7, 0.7], [0.95, 0.85, 0.6]]))
        strength = rng.uniform(0.2, 0.6)
        s.refl *= 1 - strength * mask[..., None] * (1 - tint)
        s.film_dt += rng.uniform(-25, 25) * mask
        s.scatter += 0.1 * mask
        p["stains"] = {"area_frac": _r((mask > 0.1).mean(), 3), "tint": _r(list(tint)), "strength": _r(strength, 2)}

    if rng.random() < 0.15:  # dried water / alcohol marks: rings with a dark rim
        rings = []
        for _ in range(int(rng.integers(1, 4))):
            cx, cy, rad = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(25, 220)
            th = np.arctan2(yy - cy, xx - cx)
            rr = rad * (1 + 0.06 * np.sin(3 * th + rng.uniform(0, 6)) + 0.03 * np.sin(7 * th + rng.uniform(0, 6)))
            r = np.hypot(yy - cy, xx - cx)
            wid = rng.uniform(1.0, 3.5)
            rim = np.exp(-((r - rr) / wid) ** 2)
            inside = expit((rr - r) / 2)
            a = rng.uniform(0.15, 0.45)
            s.refl *= (1 - a * rim - 0.06 * a * inside)[..., None]
            s.film_dt += 15 * inside * a
            s.scatter += 0.4 * a * rim
            rings.append(_r([cx, cy, rad, wid, a], 1))
        p["water_marks"] = rings

    if rng.random() < 0.35:  # dust / lint on the specimen
        nspeck = int(rng.integers(3, 40))
        v = rng.uniform(0.3, 1.0, nspeck) * rng.choice([1, 4], nspeck, p=[0.8, 0.2])
        specks = np.clip(_paint_points(shape, rng.uniform(0, h, nspeck), rng.uniform(0, w, nspeck), v, 1.0), 0, 1)
        nfib = int(rng.integers(0, 3))
        for _ in range(nfib):
            k = int(rng.integers(40, 250))
            ang = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.08, k))
            fy = rng.uniform(0, h) + np.cumsum(np.sin(ang))
            fx = rng.uniform(0, w) + np.cumsum(np.cos(ang))
            specks = np.maximum(specks, np.clip(_paint_points(shape, fy, fx, np.full(k, 0.7), 0.8), 0, 1))
        s.refl *= (1 - 0.85 * specks)[..., None]
        s.scatter += 1.5 * specks
        s.height += 50 * specks
        p["dust"] = {"specks": nspeck, "fibres": nfib}

    if rng.random() < 0.6:  # non-metallic inclusions
        nox = int(rng.integers(0, 25))
        oxd = np.zeros(shape, np.float32)
        for _ in range(nox):
            cx, cy, rad = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.8, 4.5)
            oxd = np.maximum(oxd, np.clip(rad - np.hypot(xx - cx, yy - cy) + 0.5, 0, 1))
        dark = rng.uniform(0.05, 0.3)
        s.refl *= (1 - (1 - dark) * oxd)[..., None]
        s.height += rng.choice([-1, 1]) * rng.uniform(20, 80) * ndi.gaussian_filter(oxd, 0.8)
        s.scatter += 1.2 * np.abs(ndi.sobel(oxd)) / 4
        s.film_k *= 1 - oxd
        nmns = int(rng.integers(0, 7)) if rng.random() < 0.45 else 0
        roll = rng.uniform(0, math.pi)
        mns = np.zeros(shape, np.float32)
        for _ in range(nmns):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            a, b = rng.uniform(5, 35), rng.uniform(0.8, 2.2)
            ang = roll + rng.normal(0, 0.05)
            u = ((xx - cx) * math.cos(ang) + (yy - cy) * math.sin(ang)) / a
            v = (-(xx - cx) * math.sin(ang) + (yy - cy) * math.cos(ang)) / b
            mns = np.maximum(mns, np.clip((1 - np.hypot(u, v)) * b + 0.5, 0, 1))
        grey = np.array([0.45, 0.47, 0.52]) * rng.uniform(0.8, 1.2)
        s.refl *= 1 - mns[..., None] * (1 - grey)
        s.height -= rng.uniform(10, 40) * ndi.gaussian_filter(mns, 0.8)
        s.scatter += 0.8 * np.abs(ndi.sobel(mns)) / 4
        s.film_k *= 1 - mns
        p["inclusions"] = {"oxides": nox, "oxide_reflectance": _r(dark, 2), "mns_stringers": nmns,
                           "rolling_dir_deg": _r(math.degrees(roll), 1)}

    if rng.random() < 0.25 and geom.n > 0:  # etch pits, orientation dependent density
        dens = props["rough"] ** rng.uniform(1, 4)
        npit = int(rng.integers(200, 3000))
        py, px = rng.uniform(0, h, npit), rng.uniform(0, w, npit)
        keep = rng.random(npit) < dens[geom.labels[py.astype(int), px.astype(int)]]
        pits = np.clip(_paint_points(shape, py[keep], px[keep], rng.uniform(0.4, 1.0, keep.sum()),
                                     rng.uniform(0.5, 1.0)), 0, 1)
        a = rng.uniform(0.3, 0.8)
        s.refl *= (1 - a * pits)[..., None]
        s.height -= 30 * pits
        s.scatter += 0.8 * pits
        p["etch_pits"] = {"n": int(keep.sum()), "darkness": _r(a, 2)}
    return s, p


def _relief(geom: Geometry, props: dict, rng: np.random.Generator, step_nm: float, tilt: float,
            dome_nm: float) -> np.ndarray:
    """Etch/polish relief (nm): grain heights, small grain tilts and rounded grain edges."""
    lab = geom.labels
    h, w = lab.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    com = np.array(ndi.center_of_mass(np.ones_like(lab), lab, range(geom.n))).reshape(-1, 2)
    base = step_nm * (props["relief"] - 0.5)
    hmap = base[lab]
    hmap += tilt * (props["tilt"][lab, 0] * (xx - com[lab, 1]) + props["tilt"][lab, 1] * (yy - com[lab, 0]))
    hmap += dome_nm * props["dome"][lab] * (1 - np.exp(-geom.dist / 12.0))
    return ndi.gaussian_filter(hmap.astype(np.float32), 0.7)


# --------------------------------------------------------------------------------------------
# contrast modes -> linear RGB radiance
# --------------------------------------------------------------------------------------------
def _mode_tint(geom: Geometry, props: dict, surf: Surface, rng: np.random.Generator,
               colour: bool) -> tuple[np.ndarray, dict]:
    """Colour (tint) etch: interference colour of an orientation-dependent film on the steel."""
    etchant = str(rng.choice(["Beraha I", "Beraha II", "Klemm I", "Lichtenegger-Bloech"]))
    t_lo = rng.uniform(20, 90)
    t_hi = t_lo + rng.uniform(60, 220)
    n_film, k_film = rng.uniform(2.0, 2.6), rng.uniform(0.02, 0.35)
    temp = rng.uniform(2900, 5500)
    tg = t_lo + (t_hi - t_lo) * props["film"]
    t = ndi.gaussian_filter(tg[geom.labels].astype(np.float32), 0.8)
    var = rng.uniform(0.5, 6.0)  # nm, uneven film growth
    t = t + var * _smooth_noise(rng, t.shape, rng.uniform(30, 200))
    t = t * surf.film_k + surf.film_dt
    smear_t = 0.5 * (t_lo + t_hi)
    t = t * (1 - surf.smear) + smear_t * surf.smear
    bstyle = str(rng.choice(["none", "thin_dark", "light_halo"], p=[0.5, 0.3, 0.2]))
    bw, bp = _boundary_weight(geom, rng, rng.uniform(0.0, 0.4), rng.uniform(0.0, 0.5), surf)
    if bstyle == "light_halo":  # film thinner next to the boundary (depletion zone)
        t = t - rng.uniform(10, 40) * bw * np.exp(-(geom.dist / rng.uniform(1.5, 4)) ** 2)
    grid = np.linspace(0, 700, 701)
    img = _apply_lut(np.clip(t, 0, 700), grid, _film_lut(grid, n_film, k_film, temp))
    if bstyle == "thin_dark":
        img *= (1 - rng.uniform(0.3, 0.8) * bw * np.exp(-(geom.dist / rng.uniform(0.6, 1.2)) ** 2))[..., None]
    img *= surf.refl
    return img, {"etchant": etchant, "film_nm": _r([t_lo, t_hi], 1), "film_n": _r(n_film, 3),
                 "film_k": _r(k_film, 3), "lamp_K": _r(temp, 0), "film_variation_nm": _r(var, 2),
                 "boundary_style": bstyle, "boundaries": bp}


def _mode_brightfield(geom: Geometry, props: dict, surf: Surface, rng: np.random.Generator,
                     colour: bool) -> tuple[np.ndarray, dict]:
    """Bright field: light reflected off sloped surface (grooves, steps) misses the objective."""
    style = str(rng.choice(["thin_grooves", "ditches", "steps", "grain_contrast"], p=[0.3, 0.25, 0.2, 0.25]))
    pix_nm = rng.uniform(60, 120)
    gw = {"thin_grooves": rng.uniform(0.6, 1.3), "ditches": rng.uniform(1.5, 3.5),
          "steps": rng.uniform(0.6, 1.0), "grain_contrast": rng.uniform(0.6, 1.2)}[style]
    depth = {"thin_grooves": rng.uniform(40, 150), "ditches": rng.uniform(120, 450),
             "steps": rng.uniform(0, 30), "grain_contrast": rng.uniform(0, 60)}[style]
    step = rng.uniform(40, 160) if style == "steps" else rng.uniform(0, 40)
    gc = rng.uniform(0.25, 0.6) if style == "grain_contrast" else rng.uniform(0.0, 0.12)
    twin_vis = rng.uniform(0.0, 0.4) if style != "steps" else rng.uniform(0.4, 1.0)
    bw, bp = _boundary_weight(geom, rng, rng.uniform(0.0, 0.3), twin_vis, surf)
    hmap = _relief(geom, props, rng, step, rng.uniform(0, 0.3), rng.uniform(0, 10))
    hmap = hmap * (1 - 0.8 * surf.smear) + surf.height
    hmap -= depth * bw * np.exp(-(geom.dist / gw) ** 2)
    sx, sy = _slope(hmap, pix_nm)
    theta0 = rng.uniform(0.06, 0.3)  # acceptance half-angle scale set by aperture / NA
    accept = np.exp(-(np.hypot(sx, sy) / theta0) ** 2)
    rough = props["rough"][geom.labels]
    refl = 0.6 * (1 - gc * rough) * (1 - 0.9 * surf.smear) + 0.6 * 0.9 * surf.smear * (1 - gc * 0.5)
    refl = ndi.gaussian_filter(refl.astype(np.float32), 0.7)
    img = (refl * accept)[..., None] * surf.refl
    haze = rng.uniform(0, 0.05)
    img += haze * surf.scatter[..., None]
    return img.astype(np.float32), {"style": style, "groove_width_px": _r(gw, 2), "groove_depth_nm": _r(depth, 1),
                                    "step_nm": _r(step, 1), "grain_contrast": _r(gc, 3), "pixel_nm": _r(pix_nm, 1),
                                    "acceptance_rad": _r(theta0, 3), "boundaries": bp}


def _mode_dic(geom: Geometry, props: dict, surf: Surface, rng: np.random.Generator,
              colour: bool) -> tuple[np.ndarray, dict]:
    """Nomarski DIC: optical path difference = bias + gain * (height derivative along the shear)."""
    colour_bias = bool(rng.random() < (0.6 if colour else 0.1))
    # grey DIC works near the linear part of sin^2 (about lambda/4); colour DIC near first-order red
    bias = rng.uniform(420, 650) if colour_bias else rng.uniform(70, 180)
    shear_dir = rng.uniform(0, 2 * math.pi)
    contrast = rng.uniform(50, 200)  # OPD swing (nm) produced by the etched structure
    step = rng.uniform(20, 80)
    bw, bp = _boundary_weight(geom, rng, rng.uniform(0.0, 0.3), rng.uniform(0.2, 1.0), surf)
    gw, gd = rng.uniform(0.8, 2.5), rng.uniform(0, 40)
    peel = rng.uniform(0, 2.5)
    relief = _relief(geom, props, rng, step, rng.uniform(0.0, 0.8), rng.uniform(0, 15))
    relief += peel * _smooth_noise(rng, relief.shape, rng.uniform(3, 10))  # polishing orange peel
    relief = relief * (1 - 0.8 * surf.smear) - gd * bw * np.exp(-(geom.dist / gw) ** 2)
    blur = rng.uniform(0.6, 1.8)
    c, s_ = math.cos(shear_dir), math.sin(shear_dir)

    def deriv(hm: np.ndarray) -> np.ndarray:
        gy, gx = np.gradient(ndi.gaussian_filter(hm, blur))
        return gx * c + gy * s_

    gain = contrast / max(float(np.percentile(np.abs(deriv(relief)), 99)), 1e-6)
    opd = bias + gain * deriv(relief + surf.height)
    temp = rng.uniform(3000, 5500)
    grid = np.linspace(-600, 1800, 1201)
    leak = rng.uniform(0.0, 0.12)
    img = 0.6 * (leak + (1 - leak) * _apply_lut(np.clip(opd, -600, 1800), grid, _michel_levy_lut(grid, temp)))
    img *= surf.refl
    return img, {"colour_bias": colour_bias, "bias_nm": _r(bias, 1), "shear_dir_deg": _r(math.degrees(shear_dir), 1),
                 "opd_contrast_nm": _r(contrast, 1), "step_nm": _r(step, 1), "groove_nm": _r(gd, 1),
                 "orange_peel_nm": _r(peel, 2), "relief_blur_px": _r(blur, 2), "lamp_K": _r(temp, 0),
                 "leak": _r(leak, 3), "boundaries": bp}


def _mode_polarised(geom: Geometry, props: dict, surf: Surface, rng: np.random.Generator,
                    colour: bool) -> tuple[np.ndarray, dict]:
    """Crossed (or slightly uncrossed) polars on an anisotropic etch film; optional lambda plate."""
    plate = bool(rng.random() < (0.5 if colour else 0.1))
    pol = rng.uniform(0, math.pi)
    delta_max = rng.uniform(150, 600)
    leak = rng.uniform(0.01, 0.15)
    temp = rng.uniform(3000, 5500)
    lab = geom.labels
    az = props["azim"] + rng.uniform(-0.1, 0.1, geom.n)
    delta_g = delta_max * props["biref"] * (0.5 + props["film"])
    vari = 1 + rng.uniform(0.02, 0.1) * _smooth_noise(rng, lab.shape, rng.uniform(20, 100))
    delta = ndi.gaussian_filter(delta_g[lab].astype(np.float32), 0.8) * vari * surf.film_k * (1 - 0.4 * surf.smear)
    grid = np.linspace(-1500, 2500, 1601)
    lut = _michel_levy_lut(grid, temp)
    if plate:
        cos2 = ndi.gaussian_filter(np.cos(2 * (az - pol))[lab].astype(np.float32), 0.8)
        img = _apply_lut(np.clip(530 + delta * cos2, -1500, 2500), grid, lut)
    else:
        amp = ndi.gaussian_filter((np.sin(2 * (az - pol)) ** 2)[lab].astype(np.float32), 0.8)
        img = amp[..., None] * _apply_lut(np.clip(delta, 0, 2500), grid, lut)
    img = (leak + (1 - leak) * img) * surf.refl
    bw, bp = _boundary_weight(geom, rng, rng.uniform(0.2, 0.7), rng.uniform(0.0, 0.3), surf)
    img *= (1 - rng.uniform(0.0, 0.6) * bw * np.exp(-(geom.dist / rng.uniform(0.6, 1.5)) ** 2))[..., None]
    img += 0.03 * surf.scatter[..., None]
    return img.astype(np.float32), {"lambda_plate": plate, "polariser_deg": _r(math.degrees(pol), 1),
                                    "retardation_max_nm": _r(delta_max, 1), "leak": _r(leak, 3),
                                    "lamp_K": _r(temp, 0), "boundaries": bp}


def _mode_darkfield(geom: Geometry, props: dict, surf: Surface, rng: np.random.Generator,
                    colour: bool) -> tuple[np.ndarray, dict]:
    """Dark field: only light scattered by slopes, edges and rough facets reaches the objective."""
    pix_nm = rng.uniform(60, 120)
    gw, gd = rng.uniform(1.0, 3.0), rng.uniform(40, 250)
    bw, bp = _boundary_weight(geom, rng, rng.uniform(0.0, 0.3), rng.uniform(0.0, 0.6), surf)
    hmap = _relief(geom, props, rng, rng.uniform(0, 60), 0, 0) * (1 - 0.8 * surf.smear) + surf.height
    hmap -= gd * bw * np.exp(-(geom.dist / gw) ** 2)
    sx, sy = _slope(hmap, pix_nm)
    slope2 = sx * sx + sy * sy
    rough = rng.uniform(0.0, 0.06) * props["rough"][geom.labels]
    k = rng.uniform(2, 12)
    etched = rng.uniform(0.5, 3.0)  # rough etched boundary bands scatter by themselves
    s = k * slope2 + rough + surf.scatter * rng.uniform(0.1, 0.5) + etched * bw * np.exp(-(geom.dist / gw) ** 2)
    img = (rng.uniform(0.01, 0.05) + 0.9 * (1 - np.exp(-s)))[..., None] * np.ones(3, np.float32)
    bluish = rng.uniform(0.0, 0.15)
    img *= np.array([1 - bluish, 1.0, 1 + bluish], np.float32)
    return img.astype(np.float32), {"pixel_nm": _r(pix_nm, 1), "groove_width_px": _r(gw, 2),
                                    "groove_depth_nm": _r(gd, 1), "scatter_gain": _r(k, 2),
                                    "boundary_scatter": _r(etched, 2),
                                    "bluish": _r(bluish, 3), "boundaries": bp}


_MODE_FN = {"tint": _mode_tint, "brightfield": _mode_brightfield, "dic": _mode_dic,
            "polarised": _mode_polarised, "darkfield": _mode_darkfield}


# --------------------------------------------------------------------------------------------
# microscope optics and camera
# --------------------------------------------------------------------------------------------
def _optics(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """PSF blur with field-dependent defocus, chromatic aberration, vignetting, illumination."""
    h, w, _ = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    p: dict[str, Any] = {}
    s0 = rng.uniform(0.6, 2.0)
    tilt = rng.uniform(0, 1.8) if rng.random() < 0.5 else 0.0
    tdir = rng.uniform(0, 2 * math.pi)
    ramp = ((xx - w / 2) * math.cos(tdir) + (yy - h / 2) * math.sin(tdir)) / (0.5 * max(h, w))
    sig = np.sqrt(s0 ** 2 + (tilt * np.clip(0.5 + 0.5 * ramp, 0, None)) ** 2) if tilt else np.full((h, w), s0)
    ca = rng.uniform(0, 0.6) if rng.random() < 0.5 else 0.0  # axial chromatic: extra blur in blue/red
    out = np.empty_like(img)
    levels = np.linspace(float(sig.min()), float(sig.max()) + ca + 1e-3, 4)
    for c, extra in enumerate((0.5 * ca, 0.0, ca)):
        stack = np.stack([ndi.gaussian_filter(img[..., c], l) for l in levels])
        pos = np.interp(np.sqrt(sig ** 2 + extra ** 2), levels, np.arange(len(levels)))
        i0 = np.clip(np.floor(pos).astype(int), 0, len(levels) - 2)
        f = pos - i0
        lo_, hi_ = np.take_along_axis(stack, i0[None], 0)[0], np.take_along_axis(stack, i0[None] + 1, 0)[0]
        out[..., c] = lo_ * (1 - f) + hi_ * f
    p["psf_sigma_px"] = _r(s0, 3)
    p["defocus_tilt"] = {"extra_sigma_px": _r(tilt, 3), "dir_deg": _r(math.degrees(tdir), 1)}
    p["axial_chromatic_px"] = _r(ca, 3)
    if rng.random() < 0.4:  # lateral chromatic aberration: R and B magnified differently
        eps = rng.uniform(0.001, 0.004)
        cy, cx = h / 2 + rng.normal(0, h / 10), w / 2 + rng.normal(0, w / 10)
        for c, sgn in ((0, 1), (2, -1)):
            m = 1 + sgn * eps
            out[..., c] = ndi.map_coordinates(out[..., c], [cy + (yy - cy) / m, cx + (xx - cx) / m],
                                              order=1, mode="nearest")
        p["lateral_chromatic"] = _r(eps, 4)
    illum = np.ones((h, w), np.float32)
    if rng.random() < 0.6:
        v = rng.uniform(0.05, 0.45)
        cy, cx = h / 2 + rng.normal(0, h / 6), w / 2 + rng.normal(0, w / 6)
        illum *= 1 - v * (np.hypot(yy - cy, xx - cx) / (0.72 * math.hypot(h, w))) ** 2
        p["vignetting"] = _r(v, 3)
    if rng.random() < 0.6:
        g = rng.uniform(0.0, 0.35)
        gd = rng.uniform(0, 2 * math.pi)
        lf = rng.uniform(0.0, 0.12)
        illum *= 1 + g * ((xx - w / 2) * math.cos(gd) + (yy - h / 2) * math.sin(gd)) / max(h, w) \
            + lf * _smooth_noise(rng, (h, w), rng.uniform(100, 300))
        p["uneven_illumination"] = {"gradient": _r(g, 3), "dir_deg": _r(math.degrees(gd), 1), "lowfreq": _r(lf, 3)}
    out *= np.clip(illum, 0.2, None)[..., None]
    if rng.random() < 0.25:  # out-of-focus dust on optics / sensor window
        nd = int(rng.integers(1, 6))
        for _ in range(nd):
            cy, cx, rad = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(6, 35)
            out *= (1 - rng.uniform(0.04, 0.2) * np.exp(-((np.hypot(yy - cy, xx - cx)) / rad) ** 4))[..., None]
        p["optics_dust"] = nd
    if rng.random() < 0.3:
        glare = rng.uniform(0.02, 0.15)
        out += glare * out.mean()
        p["veiling_glare"] = _r(glare, 3)
    return out, p


def _bayer(img: np.ndarray) -> np.ndarray:
    """RGGB mosaic followed by bilinear demosaicing."""
    h, w, _ = img.shape
    m = np.zeros((h, w, 3), np.float32)
    m[0::2, 0::2, 0] = 1
    m[0::2, 1::2, 1] = 1
    m[1::2, 0::2, 1] = 1
    m[1::2, 1::2, 2] = 1
    raw = (img * m).sum(-1)
    k_rb = np.array([[0.25, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 0.25]], np.float32)
    k_g = np.array([[0, 0.25, 0], [0.25, 1, 0.25], [0, 0.25, 0]], np.float32)
    return np.stack([ndi.convolve(raw * m[..., c], k_g if c == 1 else k_rb, mode="mirror") for c in range(3)], -1)


def _camera(img: np.ndarray, rng: np.random.Generator, colour: bool,
            vivid_ok: bool = True) -> tuple[np.ndarray, dict]:
    """Sensor and processing: exposure, noise, Bayer, white balance, saturation, gamma, 8 bit, JPEG."""
    p: dict[str, Any] = {}
    if not colour:
        img = (img @ np.array([0.3, 0.59, 0.11], np.float32))[..., None]
    overexposed = bool(rng.random() < 0.12)
    target = rng.uniform(1.05, 1.25) if overexposed else rng.uniform(0.7, 1.0)
    expo = target / max(float(np.percentile(img, 99.5)), 1e-6)
    img = img * expo
    p["exposure_p99.5"] = _r(target, 3)
    p["overexposed"] = overexposed
    bayer = colour and rng.random() < 0.2
    if bayer:
        img = _bayer(img)
    shot, read = rng.uniform(0.0, 0.02), rng.uniform(0.002, 0.02)
    sd = np.sqrt(np.clip(img, 0, None) * shot ** 2 + read ** 2)
    img = img + sd * rng.standard_normal(img.shape).astype(np.float32)
    p.update(bayer_demosaic=bayer, shot_noise=_r(shot, 4), read_noise=_r(read, 4))
    if colour:
        wb = np.array([rng.uniform(0.8, 1.25), 1.0, rng.uniform(0.8, 1.25)], np.float32)
        img = img * wb
        sat = rng.uniform(0.6, 1.7) if vivid_ok else rng.uniform(0.6, 1.2)
        lum = img.mean(-1, keepdims=True)
        img = lum + sat * (img - lum)
        p.update(white_balance=_r(list(wb), 3), saturation=_r(sat, 3))
    black = rng.uniform(0.0, 0.05)
    img = np.clip((img - black) / (1 - black), 0, 1)
    gamma = float(rng.choice([1.0, 1.8, 2.2, 2.4])) * rng.uniform(0.9, 1.1)
    img = img ** (1 / gamma)
    if rng.random() < 0.3:  # mild S-curve ("contrast" slider)
        c = rng.uniform(0.1, 0.5)
        img = np.clip(img + c * img * (1 - img) * (img - 0.5) * 4, 0, 1)
        p["s_curve"] = _r(c, 3)
    p.update(black_level=_r(black, 3), gamma=_r(gamma, 3))
    img = np.round(img * 255) / 255 if rng.random() < 0.85 else img
    if rng.random() < 0.5:
        q = int(rng.integers(35, 96))
        buf = io.BytesIO()
        arr = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
        pil = Image.fromarray(arr if colour else arr[..., 0])
        sub = int(rng.choice([0, 2])) if colour else 0
        pil.save(buf, format="JPEG", quality=q, subsampling=sub)
        img = np.asarray(Image.open(io.BytesIO(buf.getvalue())), np.float32) / 255
        img = img if colour else img[..., None]
        p["jpeg"] = {"quality": q, "chroma_subsampling": sub}
    return img.astype(np.float32), p


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------
def render_lom(cbs: np.ndarray, rng: np.random.Generator, *, colour: bool | None = None) -> tuple[np.ndarray, dict]:
    """LOM-like rendering of the same surface, pixel-aligned to `cbs` (2-D, any dtype).
    Returns (image, params): image float32 in [0, 1], shape (H, W) grey or (H, W, 3) colour;
    params: JSON-serialisable dict of the random choices. colour=None: choose at random (about half colour)."""
    cbs = np.asarray(cbs)
    if cbs.ndim != 2:
        raise ValueError("cbs must be a 2-D image")
    h, w = cbs.shape
    geom = build_geometry(cbs)
    mode = str(rng.choice(MODES, p=MODE_P))
    if colour is None:
        colour = bool(rng.random() < COLOUR_P[mode])
    props = _grain_properties(rng, geom.n)
    surf, sp = _surface(geom, rng, props)
    img, mp = _MODE_FN[mode](geom, props, surf, rng, colour)
    img = np.clip(img, 0, None)
    img, op = _optics(img, rng)
    # camera at its own pixel pitch: often coarser than the SEM scan
    down = 1.0 if rng.random() < 0.35 else float(rng.uniform(1.2, 2.5))
    if down > 1:
        small = (max(int(round(h / down)), 8), max(int(round(w / down)), 8))
        img = transform.resize(img, small + (3,), order=1, anti_aliasing=True).astype(np.float32)
    img, cp = _camera(img, rng, colour, vivid_ok=mode not in ("tint", "polarised"))
    if down > 1:
        img = transform.resize(img, (h, w, img.shape[2]), order=3, mode="reflect").astype(np.float32)
    img = np.clip(img, 0, 1).astype(np.float32)
    img = img if colour else img[..., 0]
    params = {
        "mode": mode, "colour": colour,
        "geometry": {"grains": geom.n, "boundaries": len(geom.pairs), "twin_like": int(geom.twin.sum())},
        "mode_params": mp, "surface": sp, "optics": op,
        "camera": {"downsample": _r(down, 3), **cp},
    }
    return img, params


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def _to_u8(a: np.ndarray, stretch: bool = False) -> np.ndarray:
    a = a.astype(np.float32)
    if stretch:
        lo, hi = np.percentile(a, [0.5, 99.5])
        a = (a - lo) / max(hi - lo, 1e-9)
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def main(argv: list[str] | None = None) -> None:
    """Render CBS/LOM pairs for the first n data files and write PNGs, a gallery and params."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    files = sorted(args.data.glob("*.tif"))[: args.n]
    allp: dict[str, Any] = {}
    tiles = []
    for i, f in enumerate(files):
        rng = np.random.default_rng([args.seed, i])
        cbs = crop_cbs(f, args.size, rng)
        t0 = time.perf_counter()
        lom, p = render_lom(cbs, rng)
        dt = time.perf_counter() - t0
        c8, l8 = _to_u8(cbs, stretch=True), _to_u8(lom)
        Image.fromarray(c8).save(args.out / f"{f.stem}_cbs.png")
        Image.fromarray(l8).save(args.out / f"{f.stem}_lom.png")
        allp[f.stem] = p
        print(f"{f.stem}: {p['mode']:<11} colour={p['colour']!s:<5} grains={p['geometry']['grains']:<3} {dt:.2f} s",
              flush=True)
        c_rgb = np.repeat(c8[..., None], 3, -1)
        l_rgb = l8 if l8.ndim == 3 else np.repeat(l8[..., None], 3, -1)
        tile = Image.fromarray(np.hstack([c_rgb, np.full((c8.shape[0], 4, 3), 255, np.uint8), l_rgb]))
        ImageDraw.Draw(tile).text((6, 4), f"{f.stem} {p['mode']}{' colour' if p['colour'] else ''}", fill=(255, 0, 0))
        tiles.append(tile)
    (args.out / "params.json").write_text(json.dumps(allp, indent=1))
    if tiles:
        tw, th = tiles[0].size
        cols = 2
        rows = math.ceil(len(tiles) / cols)
        gal = Image.new("RGB", (cols * tw + (cols - 1) * 8, rows * th + (rows - 1) * 8), (255, 255, 255))
        for k, t in enumerate(tiles):
            gal.paste(t, ((k % cols) * (tw + 8), (k // cols) * (th + 8)))
        gal.save(args.out / "gallery.png")


if __name__ == "__main__":
    main()
