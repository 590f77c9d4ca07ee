"""Blind LOM renderer: light-optical-microscope look-alikes of real SEM-CBS micrographs.

Written independently of the registration tool's own renderer, for held-out robustness tests.
The CBS image is only used for its *geometry*: it is segmented into grains/twins, and a new
image is synthesised from the segmentation (etch tints, boundary grooves, preparation artefacts,
optics and camera), so no CBS channeling grey level or scan noise is copied through.

    python benchmarks/blind_lom.py --out DIR [--n 10] [--seed 7]
"""
from __future__ import annotations

import argparse
import heapq
import io
import json
import time
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageDraw
from scipy import ndimage as ndi
from scipy.signal import fftconvolve
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage import filters, measure, morphology, segmentation

BAR_ROWS = 70  # FEI data bar at the bottom of every CBS file
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "openecci-cbs"


# ----------------------------------------------------------------------------- input
def crop_cbs(path, size: int = 512, rng: np.random.Generator | None = None) -> np.ndarray:
    """Read one CBS file, drop the 70-row data bar, return a size×size crop (random position if rng, else centre), float32."""
    img = tifffile.imread(str(path))[:-BAR_ROWS].astype(np.float32)
    h, w = img.shape
    if rng is None:
        y, x = (h - size) // 2, (w - size) // 2
    else:
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return img[y:y + size, x:x + size]


def _normalise(img: np.ndarray, p: float = 0.2) -> np.ndarray:
    lo, hi = np.percentile(img, [p, 100 - p])
    return np.clip((img.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)


# ----------------------------------------------------------------------------- segmentation
def _links(lab: np.ndarray):
    """All 4-neighbour pixel links crossing a label change: (label_lo, label_hi, flat_p, flat_q)."""
    idx = np.arange(lab.size).reshape(lab.shape)
    a = np.concatenate([lab[:, :-1].ravel(), lab[:-1, :].ravel()])
    b = np.concatenate([lab[:, 1:].ravel(), lab[1:, :].ravel()])
    p = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    q = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    k = a != b
    return np.minimum(a[k], b[k]), np.maximum(a[k], b[k]), p[k], q[k]


def _merge_regions(lab: np.ndarray, img: np.ndarray, step: np.ndarray, thr: float, min_size: int) -> np.ndarray:
    """Greedy hierarchical merge of adjacent regions whose mean cross-boundary step, or whose difference of
    mean grey, is < thr (tiny regions first)."""
    n = int(lab.max()) + 1
    size = np.bincount(lab.ravel(), minlength=n).astype(float)
    tot = np.bincount(lab.ravel(), img.ravel(), minlength=n)
    lo, hi, p, q = _links(lab)
    v = np.maximum(step.flat[p], step.flat[q])
    uk, inv = np.unique(lo.astype(np.int64) * n + hi, return_inverse=True)
    s, c = np.bincount(inv, v), np.bincount(inv).astype(float)
    nb: dict[int, dict[int, list]] = {i: {} for i in range(n)}
    for a, b, si, ci in zip((uk // n).tolist(), (uk % n).tolist(), s, c):
        nb[a][b] = nb[b][a] = [si, ci]

    def key(a, b):
        st = nb[a][b]
        return min(st[0] / st[1], 3 * abs(tot[a] / size[a] - tot[b] / size[b])) - (1e3 if min(size[a], size[b]) < min_size else 0.0)

    heap = [(key(a, b), a, b) for a in nb for b in nb[a] if a < b]
    heapq.heapify(heap)
    parent = np.arange(n)
    while heap:
        k, a, b = heapq.heappop(heap)
        if k >= thr:
            break
        if parent[a] != a or parent[b] != b or b not in nb[a] or key(a, b) != k:
            continue
        parent[b] = a
        size[a] += size[b]
        tot[a] += tot[b]
        del nb[a][b], nb[b][a]
        for w, st in nb.pop(b).items():
            del nb[w][b]
            if w in nb[a]:
                nb[a][w][0] += st[0]
                nb[a][w][1] += st[1]
            else:
                nb[a][w] = nb[w][a] = st
        for w in nb[a]:
            heapq.heappush(heap, (key(a, w), min(a, w), max(a, w)))
    while np.any(parent[parent] != parent):
        parent = parent[parent]
    return measure.label(parent[lab], connectivity=1, background=-1) - 1


def segment_grains(cbs: np.ndarray):
    """Segment a CBS image into grains/twins. Returns (labels 0..n-1, denoised normalised CBS,
    cross-boundary step map, gradient angle) — the last two feed the boundary table of render_lom."""
    c = _normalise(cbs)
    med = ndi.median_filter(c, size=(3, 7))  # scan lines run along x
    d = ndi.gaussian_filter(med, (2.0, 3.0))
    grad = filters.sobel(d)
    markers = measure.label(morphology.opening(grad < np.percentile(grad, 50), morphology.disk(2)))
    lab = segmentation.watershed(grad, markers)
    # cross-boundary step: |d(x + r n) - d(x - r n)| along the local gradient normal n (robust to shading)
    gy, gx = ndi.sobel(d, 0), ndi.sobel(d, 1)
    mag = np.hypot(gx, gy) + 1e-9
    yy, xx = np.mgrid[0:d.shape[0], 0:d.shape[1]].astype(np.float32)
    r = 4.0
    fwd = ndi.map_coordinates(d, [yy + r * gy / mag, xx + r * gx / mag], order=1, mode="nearest")
    bwd = ndi.map_coordinates(d, [yy - r * gy / mag, xx - r * gx / mag], order=1, mode="nearest")
    step = np.abs(fwd - bwd)
    lab = _merge_regions(lab, d, step, thr=0.10, min_size=300) + 1
    # refine: re-flood a 3-px band around each boundary on a smoother gradient, then a majority filter
    band = ndi.binary_dilation(segmentation.find_boundaries(lab), iterations=3)
    lab = segmentation.watershed(filters.sobel(ndi.gaussian_filter(med, (3.0, 4.0))), np.where(band, 0, lab))
    lab = filters.rank.majority(lab.astype(np.uint16), morphology.disk(4))
    return measure.label(lab, connectivity=1, background=-1) - 1, d, step, np.arctan2(gy, gx)


# ----------------------------------------------------------------------------- random fields
def _smooth_field(rng, shape, scale: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field with correlation length ~scale px."""
    s = max(2, int(scale))
    small = rng.standard_normal((shape[0] // s + 4, shape[1] // s + 4))
    f = ndi.zoom(small, s, order=3)[s:s + shape[0], s:s + shape[1]]
    return ((f - f.mean()) / (f.std() + 1e-9)).astype(np.float32)


def _scratches(rng, shape, n: int):
    """Polishing scratches: (dark, bright) maps of long thin straight/slightly curved lines."""
    dark, bright = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    theta0 = rng.uniform(0, np.pi)  # one dominant polishing direction
    for _ in range(n):
        th = theta0 + rng.normal(0, 0.06) if rng.random() < 0.7 else rng.uniform(0, np.pi)
        length = rng.uniform(0.3, 1.6) * max(shape)
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        t = np.arange(-length / 2, length / 2, 0.5)
        u = t / (length / 2)
        bend = rng.normal(0, 0.015) * length * (1 - u ** 2)
        y = cy + t * np.sin(th) + bend * np.cos(th)
        x = cx + t * np.cos(th) - bend * np.sin(th)
        amp = np.clip(1 + 0.5 * np.interp(t, np.linspace(t[0], t[-1], 8), rng.standard_normal(8)), 0, 1.6)
        yi, xi = np.round(y).astype(int), np.round(x).astype(int)
        ok = (yi >= 0) & (yi < shape[0]) & (xi >= 0) & (xi < shape[1])
        line = np.zeros(shape, np.float32)
        np.maximum.at(line, (yi[ok], xi[ok]), amp[ok])
        w = rng.uniform(0.35, 1.0)
        line = ndi.gaussian_filter(line, w) * np.sqrt(2 * np.pi) * max(w, 0.4)
        if rng.random() < 0.8:
            dark += rng.uniform(0.08, 0.45) * line
        else:
            bright += rng.uniform(0.05, 0.2) * line
    return dark, bright


def _blobs(rng, shape, n: int) -> np.ndarray:
    """Dust specks: blurry, slightly irregular elliptical blobs (attenuation map)."""
    out = np.zeros(shape, np.float32)
    for _ in range(n):
        s = rng.uniform(1.5, 9.0)
        ar, ang = rng.uniform(1, 2.5), rng.uniform(0, np.pi)
        cy, cx, rad = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), int(3.5 * s * ar) + 2
        y0, y1 = max(0, int(cy) - rad), min(shape[0], int(cy) + rad)
        x0, x1 = max(0, int(cx) - rad), min(shape[1], int(cx) + rad)
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dy, dx = yy - cy, xx - cx
        a = (dx * np.cos(ang) + dy * np.sin(ang)) / (s * ar)
        b = (-dx * np.sin(ang) + dy * np.cos(ang)) / s
        blob = np.exp(-0.5 * (a ** 2 + b ** 2)) * (1 + 0.35 * rng.standard_normal(yy.shape))
        out[y0:y1, x0:x1] += rng.uniform(0.15, 0.6) * ndi.gaussian_filter(np.clip(blob, 0, None), 1.0)
    return np.clip(out, 0, 0.9)


def _film_rgb(t_nm: np.ndarray, n_film: float, contrast: float) -> np.ndarray:
    """Interference colour of a thin tint-etch film (t in nm) on steel: yellow→brown→purple→blue→…"""
    lam = np.array([[580, 610, 650], [505, 540, 575], [430, 460, 490]], np.float32)  # R, G, B bands
    ph = 4 * np.pi * n_film * t_nm[..., None, None] / lam
    refl = 1 - contrast * 0.5 * (1 - np.cos(ph))
    return refl.mean(-1) * np.exp(-t_nm / 600.0)[..., None]


# ----------------------------------------------------------------------------- renderer
def render_lom(cbs: np.ndarray, rng: np.random.Generator, *, colour: bool | None = None) -> tuple[np.ndarray, dict]:
    """LOM-like rendering of the same surface, pixel-aligned to `cbs` (2-D, any dtype).
    Returns (image, params): image float32 in [0, 1], shape (H, W) for a grey etch or (H, W, 3) for a colour etch;
    params: a JSON-serialisable dict of the random choices made. colour=None: choose at random (about half colour)."""
    lab, d, step, theta = segment_grains(cbs)
    shape, n = lab.shape, int(lab.max()) + 1
    colour = bool(rng.random() < 0.5) if colour is None else bool(colour)
    dark_field = (not colour) and bool(rng.random() < 0.15)
    P: dict = {"etch": "colour" if colour else "grey", "dark_field": dark_field, "n_regions": n}

    # --- boundary table: contrast, length, straightness (twin-likeness) per adjacent region pair
    lo, hi, p, q = _links(lab)
    uk, inv = np.unique(lo.astype(np.int64) * n + hi, return_inverse=True)
    pa, pb, cnt = uk // n, uk % n, np.bincount(inv).astype(float)
    contrast = np.bincount(inv, np.maximum(step.flat[p], step.flat[q])) / cnt
    coh = np.abs(np.bincount(inv, np.cos(2 * theta.flat[p])) + 1j * np.bincount(inv, np.sin(2 * theta.flat[p]))) / cnt
    twin = (coh > 0.9) & (cnt > 40)
    low = np.exp(-contrast / 0.08)  # ~1 for faint boundaries
    # small enclosed, non-straight islands are mostly beam-contamination rings of the SEM, not grains
    area, deg = np.bincount(lab.ravel(), minlength=n), np.bincount(np.r_[pa, pb], minlength=n)
    edge = np.zeros(n, bool)
    edge[np.unique(np.r_[lab[0], lab[-1], lab[:, 0], lab[:, -1]])] = True
    island = (deg == 1) & (area < 2500) & ~edge
    ghost = (island[pa] | island[pb]) & (coh < 0.7)
    # state per boundary: 0 invisible (regions merged), 1 tint step only, 2 etched groove
    u = rng.random(len(uk))
    if colour:
        p_inv = np.clip(rng.uniform(0.0, 0.1) + 0.25 * low, 0, 0.6)
        p_groove = np.where(twin, rng.uniform(0.0, 0.3), rng.uniform(0.6, 1.0))
    else:
        p_inv = np.clip(rng.uniform(0.02, 0.12) + 0.25 * low + twin * rng.uniform(0.2, 0.7), 0, 0.95)
        p_groove = np.where(twin, 0.3, 0.9)
    state = np.where((u < p_inv) | ghost, 0, np.where(rng.random(len(uk)) < p_groove, 2, 1))
    m0 = state == 0
    _, group = connected_components(coo_matrix((np.ones(m0.sum()), (pa[m0], pb[m0])), shape=(n, n)), directed=False)
    P.update(n_boundaries=int(len(uk)), n_twin_like=int(twin.sum()), n_ghost=int(ghost.sum()), n_invisible=int(m0.sum()),
             n_groove=int((state == 2).sum()), n_groups=int(group.max()) + 1)

    # --- per-group etch response, weakly (or not) correlated with the CBS grey of the grain
    g_lab = group[lab]
    ng = int(group.max()) + 1
    gm = np.bincount(g_lab.ravel(), d.ravel(), ng) / np.maximum(np.bincount(g_lab.ravel(), minlength=ng), 1)
    zc = (gm - gm.mean()) / (gm.std() + 1e-6)
    rho = rng.uniform(-0.35, 0.35)
    z = rho * zc + np.sqrt(1 - rho ** 2) * rng.standard_normal(ng)
    P["cbs_corr"] = round(float(rho), 3)
    if colour:
        t0, spread, n_film = rng.uniform(30, 120), rng.uniform(12, 35), rng.uniform(1.9, 2.6)
        film = (np.clip(t0 + spread * z, 5, None)[g_lab] + rng.uniform(0.5, 3) * _smooth_field(rng, shape, rng.uniform(30, 90))
                + rng.uniform(0.2, 1.0) * _smooth_field(rng, shape, rng.uniform(3, 8)))  # film mottling
        tint = _film_rgb(film, n_film, rng.uniform(0.55, 0.85)).astype(np.float32)
        sat = rng.uniform(0.5, 1.0)
        tint = sat * tint + (1 - sat) * tint.mean(-1, keepdims=True)
        P.update(film_nm=round(t0, 1), film_spread=round(spread, 1), n_film=round(n_film, 2), saturation=round(sat, 2))
    else:
        base, var = rng.uniform(0.65, 0.88), rng.uniform(0.01, 0.06)
        tint = (base + var * z)[g_lab] * (1 + rng.uniform(0.003, 0.02) * _smooth_field(rng, shape, rng.uniform(20, 80)))
        P.update(grain_level=round(base, 3), grain_var=round(var, 3))

    # --- etched boundary grooves: soft Gaussian profile, per-boundary depth/width, varying along the boundary
    sigma = rng.uniform(0.7, 2.5)  # optical blur, drawn here as groove contrast is set for the blurred image
    w0 = rng.uniform(0.45, 1.5) * (0.7 if colour else 1.0)
    d0 = (rng.uniform(0.15, 0.5) if colour else rng.uniform(0.35, 0.8)) * min(3.0, np.hypot(w0, sigma) / w0) ** 0.8
    wid = w0 * np.exp(rng.normal(0, 0.25, len(uk))) * np.where(twin, 0.6, 1.0)
    dep = d0 * rng.uniform(0.6, 1.1, len(uk)) * np.where(twin, 0.5, 1.0) * (0.7 + 0.3 * (1 - low))
    sel = state[inv] == 2
    seed_w, seed_d = np.zeros(lab.size, np.float32), np.zeros(lab.size, np.float32)
    for pix in (p[sel], q[sel]):
        seed_w[pix], seed_d[pix] = wid[inv[sel]], dep[inv[sel]]
    seed_d *= np.clip(1 + 0.3 * _smooth_field(rng, shape, 25).ravel(), 0.3, 1.5)
    F = np.zeros(shape, np.float32)
    if sel.any():
        dist, (iy, ix) = ndi.distance_transform_edt(seed_d.reshape(shape) == 0, return_indices=True)
        near = iy * shape[1] + ix
        F = seed_d[near] * np.exp(-0.5 * ((dist + 0.5) / seed_w[near]) ** 2)
    P.update(groove_sigma=round(w0, 2), groove_depth=round(d0, 2))
    relief = rng.random() < 0.25  # oblique light / slight relief: one flank of each groove brighter
    if relief:
        a = rng.uniform(0, 2 * np.pi)
        F = F + rng.uniform(0.5, 1.5) * (np.cos(a) * ndi.sobel(F, 1) + np.sin(a) * ndi.sobel(F, 0)) / 8
    P["relief_shading"] = bool(relief)

    # --- etch pits (some grains pit more), scratches, dust
    n_pits = int(rng.poisson(rng.uniform(5, 150))) if rng.random() < (0.2 if colour else 0.5) else 0
    if n_pits:
        rate = rng.lognormal(0, 1.0, ng)[g_lab]
        ys, xs = rng.integers(0, shape[0], 4 * n_pits), rng.integers(0, shape[1], 4 * n_pits)
        keep = rng.random(4 * n_pits) < rate[ys, xs] / rate.max()
        pits = np.zeros(shape, np.float32)
        pits[ys[keep][:n_pits], xs[keep][:n_pits]] = rng.uniform(0.4, 0.9, min(n_pits, int(keep.sum())))
        pits = ndi.grey_dilation(pits, size=(2, 2)) if rng.random() < 0.5 else pits
        F = F + np.clip(ndi.gaussian_filter(pits, 0.7) * 4, 0, 0.9)
    n_scr = int(rng.poisson(rng.uniform(0, 5)))
    scr_dark, scr_bright = _scratches(rng, shape, n_scr)
    n_dust = int(rng.poisson(rng.uniform(0, 8)))
    dust = _blobs(rng, shape, n_dust)
    F = np.clip(F + scr_dark + dust, -0.3, 0.97)
    P.update(n_pits=n_pits, n_scratches=n_scr, n_dust=n_dust)

    if colour:
        img = tint * (1 - F)[..., None] + scr_bright[..., None]
    elif dark_field:
        img = rng.uniform(0.03, 0.1) * tint / tint.mean() + rng.uniform(0.7, 1.2) * np.clip(F + scr_bright, 0, None)
    else:
        img = tint * (1 - F) + scr_bright

    # --- stains (soft irregular patches) and an occasional smear (streaky haze band)
    if rng.random() < 0.35:
        s = 1 / (1 + np.exp(-(_smooth_field(rng, shape, rng.uniform(40, 120)) - rng.uniform(0.8, 1.8)) / 0.25))
        amp = rng.uniform(0.03, 0.15)
        img = img * (1 - amp * (s[..., None] * np.array([0.7, 0.9, 1.2]) if colour else s))
        P["stain"] = round(amp, 3)
    if rng.random() < 0.2:
        a, width = rng.uniform(0, np.pi), rng.uniform(15, 70)
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
        dist = (xx - shape[1] / 2) * np.sin(a) - (yy - shape[0] / 2) * np.cos(a) - rng.uniform(-0.3, 0.3) * shape[0]
        prof = ndi.gaussian_filter1d(rng.standard_normal(4 * max(shape)), 1.5)  # fine streaks along the smear
        streak = np.interp(dist, np.arange(len(prof)) - 2 * max(shape), prof / prof.std())
        m = np.clip(rng.uniform(0.1, 0.35) * np.exp(-(dist / width) ** 2) * (1 + 0.5 * streak), 0, 0.6)
        m = m[..., None] if colour else m
        img = img * (1 - m) + m * img.mean()
        P["smear"] = True

    # --- optics: defocus blur (Gaussian or disk, slight chromatic difference), uneven illumination
    disk = rng.random() < 0.35
    chans = [img] if not colour else [img[..., c] for c in range(3)]
    out = []
    for c, ch in enumerate(chans):
        sc = sigma * (1.0 if not colour else (1.0, 0.95, 1.12)[c] * rng.uniform(0.97, 1.03))
        if disk:
            r = 2 * sc
            k = int(np.ceil(r)) + 1
            yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
            ker = np.clip(r + 0.5 - np.hypot(yy, xx), 0, 1)
            out.append(fftconvolve(np.pad(ch, k, mode="reflect"), ker / ker.sum(), mode="valid"))
        else:
            out.append(ndi.gaussian_filter(ch, sc, mode="reflect"))
    img = np.stack(out, -1) if colour else out[0]
    yy, xx = np.mgrid[-1:1:shape[0] * 1j, -1:1:shape[1] * 1j]
    a, cy, cx = rng.uniform(0, 2 * np.pi), rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6)
    field = rng.uniform(0, 1) * (np.cos(a) * xx + np.sin(a) * yy) - rng.uniform(0, 1.5) * ((yy - cy) ** 2 + (xx - cx) ** 2)
    illum = rng.uniform(0.1, 0.3)
    field = 1 + illum * (2 * (field - field.min()) / (np.ptp(field) + 1e-9) - 1)
    img = img * (field[..., None] if colour else field)
    P.update(blur_sigma=round(sigma, 2), blur_kind="disk" if disk else "gauss", illum_amp=round(illum, 3))

    # --- camera: exposure, Poisson + read noise (linear), gamma, 8-bit / JPEG
    img = img * rng.uniform(0.8, 0.97) / max(np.percentile(img, 99.5), 1e-6) + rng.uniform(0, 0.04)
    photons = float(np.exp(rng.uniform(np.log(400), np.log(4000))))
    read = rng.uniform(0.002, 0.01)
    img = rng.poisson(np.clip(img, 0, None) * photons) / photons + rng.normal(0, read, img.shape)
    gamma = rng.uniform(0.7, 1.4)
    img = np.clip(img, 0, 1) ** gamma
    u8 = np.round(img * 255).astype(np.uint8)
    jpeg_q = int(rng.integers(30, 86)) if rng.random() < 0.4 else 0
    if jpeg_q:
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="JPEG", quality=jpeg_q)
        u8 = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    P.update(photons=round(photons), read_noise=round(read, 4), gamma=round(gamma, 3), jpeg_quality=jpeg_q)
    return (u8.astype(np.float32) / 255.0), P


# ----------------------------------------------------------------------------- CLI
def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--data", type=Path, default=DATA_DIR, help="folder with steel_SEM_*.tif")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    files = sorted(args.data.glob("steel_SEM_*.tif"))[: args.n]
    tiles, allp = [], {}
    for f in files:
        cbs = crop_cbs(f, args.size, rng)
        t = time.perf_counter()
        lom, prm = render_lom(cbs, rng)
        prm["seconds"] = round(time.perf_counter() - t, 3)
        allp[f.stem] = prm
        print(f.stem, json.dumps(prm))
        cu8 = _to_u8(_normalise(cbs))
        Image.fromarray(cu8).save(args.out / f"{f.stem}_cbs.png")
        Image.fromarray(_to_u8(lom)).save(args.out / f"{f.stem}_lom.png")
        pair = Image.new("RGB", (512, 256))
        pair.paste(Image.fromarray(cu8).convert("RGB").resize((256, 256), Image.LANCZOS), (0, 0))
        pair.paste(Image.fromarray(_to_u8(lom)).convert("RGB").resize((256, 256), Image.LANCZOS), (256, 0))
        ImageDraw.Draw(pair).text((260, 4), f"{f.stem[-3:]} {prm['etch']}{' DF' if prm['dark_field'] else ''}", fill=(255, 0, 0))
        tiles.append(pair)
    gal = Image.new("RGB", (2 * 516, (len(tiles) + 1) // 2 * 260), (255, 255, 255))
    for i, tile in enumerate(tiles):
        gal.paste(tile, ((i % 2) * 516, (i // 2) * 260))
    gal.save(args.out / "gallery.png")
    (args.out / "params.json").write_text(json.dumps(allp, indent=1))


if __name__ == "__main__":
    main()
