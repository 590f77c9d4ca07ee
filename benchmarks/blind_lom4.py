"""blind_lom4 -- an independent SEM-CBS -> light-optical-micrograph (LOM) renderer.

Provenance: this file was written from scratch, from general knowledge of metallography
and microscope optics, WITHOUT reading styleunwarp's ``synth/`` package or the other blind
renderers (``blind_lom.py``, ``blind_lom3.py``).  Its only inputs were the openECCI CBS README
and the CBS images themselves.  It imports only numpy and scipy (tifffile lazily, for reading).

What it does
------------
1. Microstructure from the CBS crop (no randomness): median + Gaussian + two-pass
   (intensity-binned) bilateral denoising of the scan-line noise, a marker-controlled watershed (``scipy.ndimage.watershed_ift``) on the
   gradient magnitude, greedy region merging of neighbours with near-equal channeling grey
   (over-segmentation, low-angle boundaries), boundary pixels split into connected segments,
   each segment classed as straight (twin-like) or not by a PCA fit; compact dark blobs in the
   CBS (pits, inclusions) are detected with a black top-hat.
2. A specimen model: per-grain "orientation" value (partially correlated, partially random
   w.r.t. the CBS grey), per-segment etch strength (some boundaries faint or missing, twins
   often weak/invisible, strength modulated along the boundary), a height map (grain relief,
   etched grooves, pits, polishing scratches, etch pits) and a reflectance map (grain tint,
   stains, dust).
3. An imaging model, one "look" drawn per call:
   - ``bf_boundary``  bright field after a boundary etch: light grains, dark groove lines.
   - ``tint_color``   colour tint etch (Beraha/Klemm-like): thin-film interference colours per
                      grain from a random film thickness, dark boundaries.
   - ``grain_contrast`` grey (or sepia) grain-contrast etch: strong per-grain brightness that is
                      non-monotonic in the CBS grey.
   - ``darkfield``    dark field: dark grains, bright boundaries / pits / scratches.
   - ``dic``          Nomarski DIC: relief rendered as a directional-derivative shading with a
                      bias-retardation background colour (grey, gold, magenta...).
   - ``overetched``   thick grooves, crystallographic etch pits, stains, grain contrast.
   - ``underetched``  faint, patchy boundaries, many missing, polishing scratches dominant.
   optionally with oblique illumination.  Then optics: wavelength-dependent Gaussian/defocus
   PSF that grows toward the field edge, lateral chromatic aberration (< 0.4 px), vignetting /
   off-centre illumination, lamp/white-balance cast; camera: shot + read noise, Bayer mosaic
   and bilinear demosaic (colour) or mono sensor, gamma, optional sharpening, optional JPEG-like
   8x8 DCT quantisation.  Nothing shifts, rotates or rescales the content: the output is on the
   CBS pixel grid.

Interface
---------
``BAR_ROWS = 70``
``crop_cbs(path, side, rng) -> float32 (side, side) in [0, 1]``
``render_lom(cbs, rng) -> (lom, params)``; ``lom`` float32 in [0, 1], HxW (grey) or HxWx3
(RGB); ``params`` a JSON-serialisable dict of the random choices.  All randomness comes from
``rng``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy import fft as sfft
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

BAR_ROWS: int = 70

LOOKS = ("bf_boundary", "tint_color", "grain_contrast", "darkfield", "dic",
         "overetched", "underetched")
LOOK_P = (0.20, 0.20, 0.13, 0.10, 0.12, 0.13, 0.12)
WAVELENGTHS = (610.0, 540.0, 465.0)  # nm, effective R, G, B


# --------------------------------------------------------------------------- input
def crop_cbs(path, side: int, rng: np.random.Generator) -> np.ndarray:
    """Read a CBS TIFF, drop the data bar, return a random side x side crop, float32 in [0,1]."""
    import tifffile
    im = np.asarray(tifffile.imread(str(path)))
    if im.ndim == 3:  # defensive: grey stored as RGB(A)
        im = im[..., 0] if im.shape[-1] in (3, 4) else im[0]
    if np.issubdtype(im.dtype, np.integer):
        scale = float(np.iinfo(im.dtype).max)
    else:
        scale = 1.0
    im = im[: im.shape[0] - BAR_ROWS]
    h, w = im.shape
    side = int(side)
    if side > h or side > w:
        raise ValueError(f"crop side {side} larger than the field {h}x{w}")
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    out = im[y0:y0 + side, x0:x0 + side].astype(np.float32) / np.float32(scale)
    return np.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------- helpers
def _smooth_noise(shape, scale, rng):
    """Smooth random field, zero mean, unit std, correlation length ~scale px."""
    h, w = shape
    scale = max(float(scale), 2.0)
    gh, gw = int(np.ceil(h / scale)) + 4, int(np.ceil(w / scale)) + 4
    g = rng.standard_normal((gh, gw))
    z = ndi.zoom(g, scale, order=3, mode="nearest", prefilter=True)
    o = int(scale)
    z = z[o:o + h, o:o + w]
    if z.shape != (h, w):  # safety for rounding
        z = np.pad(z, ((0, max(0, h - z.shape[0])), (0, max(0, w - z.shape[1]))), mode="edge")[:h, :w]
    z = z - z.mean()
    sd = z.std()
    return (z / sd if sd > 0 else z).astype(np.float32)


def _splat(shape, ys, xs, wts):
    """Bilinear accumulation of weighted points into an image."""
    h, w = shape
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    fy = ys - y0
    fx = xs - x0
    out = np.zeros(h * w, np.float64)
    for dy, dx, ww in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                       (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy = y0 + dy
        xx = x0 + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        out += np.bincount((yy[ok] * w + xx[ok]), weights=(wts * ww)[ok], minlength=h * w)
    return out.reshape(h, w).astype(np.float32)


def _fft_blur(img, sig, disc_r=0.0):
    """Convolve a 2-D image with a Gaussian (sigma sig) optionally convolved with a
    uniform disc (defocus, radius disc_r) via FFT with reflective padding."""
    h, w = img.shape
    pad = int(np.ceil(3 * sig + disc_r + 2))
    p = np.pad(img, pad, mode="reflect")
    ph, pw = p.shape
    fy = sfft.fftfreq(ph)[:, None]
    fx = sfft.rfftfreq(pw)[None, :]
    f2 = fy * fy + fx * fx
    otf = np.exp(-2.0 * (np.pi ** 2) * (sig ** 2) * f2)
    if disc_r > 0.3:
        from scipy.special import j1
        k = 2 * np.pi * np.sqrt(f2) * disc_r
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(k > 1e-6, 2 * j1(k) / k, 1.0)
        otf = otf * a
    out = sfft.irfft2(sfft.rfft2(p, workers=1) * otf, s=p.shape, workers=1)
    return out[pad:pad + h, pad:pad + w].astype(np.float32)


def _u(rng, a, b):
    return float(rng.uniform(a, b))


# --------------------------------------------------------------------------- microstructure
def _bilateral(img, sig_s, sig_r, nlev=None):
    """Piecewise-linear (intensity-binned) bilateral filter."""
    lo, hi = float(img.min()), float(img.max())
    if nlev is None:
        nlev = int(np.clip(np.ceil((hi - lo) / (1.4 * sig_r)) + 1, 2, 32))
    levels = np.linspace(lo, hi, nlev)
    step = (hi - lo) / max(nlev - 1, 1) + 1e-9
    out = np.zeros_like(img)
    pos = (img - lo) / step
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, nlev - 2 if nlev > 1 else 0)
    f = np.clip(pos - i0, 0, 1).astype(np.float32)
    prev = None
    for k, L in enumerate(levels):
        wgt = np.exp(-0.5 * ((img - L) / sig_r) ** 2).astype(np.float32)
        num = ndi.gaussian_filter(wgt * img, sig_s, truncate=3.0)
        den = ndi.gaussian_filter(wgt, sig_s, truncate=3.0)
        val = num / np.maximum(den, 1e-6)
        m0 = i0 == k
        out[m0] += ((1 - f) * val)[m0]
        m1 = i0 == k - 1
        out[m1] += (f * val)[m1]
    return out.astype(np.float32)


def _merge_regions(lab, s, g, thr, amin):
    import heapq
    h, w = lab.shape
    u, lab = np.unique(lab, return_inverse=True)
    lab = lab.reshape(h, w).astype(np.int64)
    nl = len(u)
    cnt = np.bincount(lab.ravel(), minlength=nl).astype(np.float64)
    tot = np.bincount(lab.ravel(), weights=s.ravel().astype(np.float64), minlength=nl)
    a = np.concatenate([lab[:, :-1].ravel(), lab[:-1, :].ravel()])
    b = np.concatenate([lab[:, 1:].ravel(), lab[1:, :].ravel()])
    ga = np.concatenate([np.maximum(g[:, :-1], g[:, 1:]).ravel(),
                         np.maximum(g[:-1, :], g[1:, :]).ravel()])
    d = a != b
    key, inv, kc = np.unique(np.minimum(a[d], b[d]) * nl + np.maximum(a[d], b[d]),
                             return_inverse=True, return_counts=True)
    ks = np.bincount(inv.ravel(), weights=ga[d], minlength=key.size)
    pa, pb = (key // nl).tolist(), (key % nl).tolist()
    gref = 2.5 * float(np.median(g))
    nbr = [dict() for _ in range(nl)]  # neighbour -> [sum of edge strength, count]
    for x, y, e, n_ in zip(pa, pb, ks.tolist(), kc.tolist()):
        nbr[x][y] = [e, n_]
        nbr[y][x] = [e, n_]
    parent = list(range(nl))
    cnt = cnt.tolist()
    tot = tot.tolist()

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def cost(x, y):
        dd = abs(tot[x] / cnt[x] - tot[y] / cnt[y])
        e, n_ = nbr[x][y]
        dd *= min(max(e / n_ / gref, 0.3), 3.0)
        if min(cnt[x], cnt[y]) < amin:
            dd -= 10.0
        return dd

    heap = [(cost(x, y), x, y) for x, y in zip(pa, pb)]
    heapq.heapify(heap)
    while heap:
        c, x, y = heapq.heappop(heap)
        if parent[x] != x or parent[y] != y or x == y or y not in nbr[x]:
            continue
        c2 = cost(x, y)
        if abs(c2 - c) > 1e-9:
            heapq.heappush(heap, (c2, x, y))
            continue
        if c >= thr:
            break
        if cnt[x] < cnt[y]:
            x, y = y, x
        parent[y] = x
        cnt[x] += cnt[y]
        tot[x] += tot[y]
        del nbr[x][y]
        for z, (e, n_) in nbr[y].items():
            if z == x:
                continue
            del nbr[z][y]
            if z in nbr[x]:
                nbr[x][z][0] += e
                nbr[x][z][1] += n_
            else:
                nbr[x][z] = [e, n_]
                nbr[z][x] = nbr[x][z]
            # keep the two directions sharing one list
            nbr[z][x] = nbr[x][z]
        nbr[y] = {}
        for z in nbr[x]:
            heapq.heappush(heap, (cost(x, z), x, z))
    roots = np.array([find(i) for i in range(nl)], np.int64)
    return roots[lab].astype(np.int32)



def _segment(cbs):
    """Deterministic microstructure analysis of the CBS image."""
    h, w = cbs.shape
    m = ndi.median_filter(cbs, size=5)
    s = ndi.gaussian_filter(m, (2.0, 1.5))
    lo, hi = np.percentile(s, [1, 99])
    s = (s - lo) / max(hi - lo, 1e-6)
    s3 = _bilateral(_bilateral(s, 5.0, 0.07), 3.0, 0.05)
    g = ndi.gaussian_gradient_magnitude(s3, 1.2)

    # markers: low-gradient plateaus
    t = max(2.0 * float(np.median(g)), 0.006)
    low = g < t
    # cores of the plateaus, cut into cells: a leak through a gap in a weak ridge then
    # stays local, and region merging rebuilds the grains
    low = ndi.distance_transform_edt(low) > 3.0
    mk, n = ndi.label(low)
    if n == 0:
        mk = np.ones((h, w), np.int32)
        n = 1
    area = np.bincount(mk.ravel())
    keep = area >= 20
    keep[0] = False
    remap = np.zeros(n + 1, np.int32)
    remap[keep] = np.arange(1, keep.sum() + 1, dtype=np.int32)
    mk = remap[mk]
    if mk.max() == 0:
        mk[h // 2, w // 2] = 1
    gi = np.clip(g / max(np.percentile(g, 99.9), 1e-6) * 65000, 0, 65000).astype(np.uint16)
    lab = ndi.watershed_ift(gi, mk.astype(np.int32))
    lab[lab <= 0] = 1

    # sequential region merging (priority queue on the grey difference of the current
    # region means); tiny regions join their closest neighbour whatever the contrast
    lab = _merge_regions(lab, s, g, thr=0.04, amin=150)
    # coarser partition (looser threshold) used only for grain colour/brightness, so that
    # residual over-segmentation inside a grain does not show as colour patches
    lab_col = _merge_regions(lab, s, g, thr=0.09, amin=400)
    u, lab = np.unique(lab, return_inverse=True)
    lab = lab.reshape(h, w).astype(np.int32)
    nl = len(u)
    cnt = np.bincount(lab.ravel(), minlength=nl).astype(np.float64)
    mean = np.bincount(lab.ravel(), weights=s.ravel(), minlength=nl) / np.maximum(cnt, 1)

    # boundary pixels, marked on both sides of each label change (centred double line)
    other = np.full((h, w), -1, np.int32)
    dr = lab[:, :-1] != lab[:, 1:]
    dd = lab[:-1, :] != lab[1:, :]
    other[:, :-1][dr] = lab[:, 1:][dr]
    other[:, 1:][dr & (other[:, 1:] < 0)] = lab[:, :-1][dr & (other[:, 1:] < 0)]
    o2 = other[:-1, :]
    sel = dd & (o2 < 0)
    o2[sel] = lab[1:, :][sel]
    o3 = other[1:, :]
    sel = dd & (o3 < 0)
    o3[sel] = lab[:-1, :][sel]
    bmask = other >= 0
    by, bx = np.nonzero(bmask)
    la = lab[by, bx].astype(np.int64)
    lb = other[by, bx].astype(np.int64)
    pkey = np.minimum(la, lb) * nl + np.maximum(la, lb)
    nb = by.size

    # connected segments: adjacent boundary pixels of the same pair
    if nb > 0:
        idx = np.full((h, w), -1, np.int64)
        idx[by, bx] = np.arange(nb)
        pk_img = np.full((h, w), -1, np.int64)
        pk_img[by, bx] = pkey
        rows, cols = [], []
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            ys0, ys1 = max(0, -dy), h - max(0, dy)
            xs0, xs1 = max(0, -dx), w - max(0, dx)
            A = pk_img[ys0:ys1, xs0:xs1]
            B = pk_img[ys0 + dy:ys1 + dy, xs0 + dx:xs1 + dx]
            ok = (A >= 0) & (A == B)
            rows.append(idx[ys0:ys1, xs0:xs1][ok])
            cols.append(idx[ys0 + dy:ys1 + dy, xs0 + dx:xs1 + dx][ok])
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        graph = coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(nb, nb))
        nseg, seg = connected_components(graph, directed=False)
        sc = np.bincount(seg, minlength=nseg).astype(np.float64)
        mx = np.bincount(seg, bx, nseg) / sc
        my = np.bincount(seg, by, nseg) / sc
        cxx = np.bincount(seg, (bx - mx[seg]) ** 2, nseg) / sc
        cyy = np.bincount(seg, (by - my[seg]) ** 2, nseg) / sc
        cxy = np.bincount(seg, (bx - mx[seg]) * (by - my[seg]), nseg) / sc
        tr = cxx + cyy
        det = cxx * cyy - cxy ** 2
        disc = np.sqrt(np.maximum(tr * tr / 4 - det, 0))
        lmin = np.maximum(tr / 2 - disc, 0)
        lmax = tr / 2 + disc
        length = np.sqrt(12 * lmax)
        perp = np.sqrt(lmin)
        straight = (sc >= 40) & (length >= 25) & (perp < np.maximum(0.9, 0.012 * length))
        seg_pair = np.zeros(nseg, np.int64)
        seg_pair[seg] = pkey
        sdiff = np.abs(mean[seg_pair // nl] - mean[seg_pair % nl])
        # edge evidence: mean CBS gradient along the segment vs. the typical in-grain level
        ge = np.bincount(seg, g[by, bx], nseg) / sc
        evid = np.clip((ge / max(float(np.median(g)), 1e-6) - 1.8) / 2.0, 0.0, 1.0)
    else:
        evid = np.zeros(0)
        nseg = 0
        seg = np.zeros(0, np.int64)
        straight = np.zeros(0, bool)
        length = np.zeros(0)
        sdiff = np.zeros(0)

    # compact dark blobs (pits / inclusions) in the CBS
    th = ndi.black_tophat(m, size=11)
    noise = float(np.std(s - ndi.gaussian_filter(s, 3))) * max(hi - lo, 1e-6)
    pm = th > max(0.08, 6.0 * noise)
    pm = ndi.binary_opening(pm, iterations=1)
    pm = ndi.binary_propagation(pm, mask=th > max(0.05, 3.5 * noise))
    pl, npit = ndi.label(pm)
    pits = np.zeros((h, w), np.float32)
    if npit:
        objs = ndi.find_objects(pl)
        for i, sl in enumerate(objs):
            if sl is None:
                continue
            ey = sl[0].stop - sl[0].start
            ex = sl[1].stop - sl[1].start
            if max(ey, ex) <= 18 and min(ey, ex) >= 3 and max(ey, ex) <= 3 * min(ey, ex):
                sub = pl[sl] == (i + 1)
                pits[sl][sub] = 1.0
        pits = ndi.gaussian_filter(np.maximum(pits, 0), 0.8) * 1.2
        pits = np.clip(pits, 0, 1)

    _, lab_col = np.unique(lab_col, return_inverse=True)
    lab_col = lab_col.reshape(h, w).astype(np.int32)
    return dict(lab=lab, lab_col=lab_col, nl_col=int(lab_col.max()) + 1, evid=evid, nl=nl, mean=mean, cnt=cnt, by=by, bx=bx, seg=seg, nseg=nseg,
                straight=straight, length=length, sdiff=sdiff, pits=pits, smooth=s)


# --------------------------------------------------------------------------- specimen
def _scratches(shape, rng, n, width, amp, dominant):
    h, w = shape
    ys_all, xs_all, ws_all = [], [], []
    diag = float(np.hypot(h, w))
    base_ang = float(rng.uniform(0, np.pi))
    for _ in range(int(n)):
        if dominant and rng.random() < 0.75:
            ang = base_ang + rng.normal(0, 0.06)
        else:
            ang = rng.uniform(0, np.pi)
        L = diag * float(rng.uniform(0.05, 1.0)) ** 1.5 + 10
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        curv = rng.normal(0, 1.0 / max(diag * 3, 1)) if rng.random() < 0.4 else 0.0
        npt = int(L * 2) + 2
        t = np.linspace(-L / 2, L / 2, npt)
        a = ang + curv * t
        dx, dy = np.cos(a), np.sin(a)
        xs = cx + np.cumsum(dx) * (L / npt) - L / 2 * np.cos(ang)
        ys = cy + np.cumsum(dy) * (L / npt) - L / 2 * np.sin(ang)
        # intermittent intensity along the scratch
        prof = np.abs(1.0 + 0.6 * np.interp(t, np.linspace(-L / 2, L / 2, 8), rng.standard_normal(8)))
        wgt = prof * float(rng.lognormal(0, 0.6)) * amp * 0.5
        ys_all.append(ys)
        xs_all.append(xs)
        ws_all.append(wgt)
    if not ys_all:
        return np.zeros(shape, np.float32)
    m = _splat(shape, np.concatenate(ys_all), np.concatenate(xs_all), np.concatenate(ws_all))
    return ndi.gaussian_filter(m, width)


def _blobs(shape, rng, n, rmin, rmax):
    """Irregular small blobs (dust, inclusions), returns coverage map in [0,1]."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    for _ in range(int(n)):
        r = float(rng.uniform(rmin, rmax))
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        k = int(np.ceil(r * 2 + 3))
        y0, x0 = int(cy) - k, int(cx) - k
        yy, xx = np.mgrid[y0:y0 + 2 * k + 1, x0:x0 + 2 * k + 1].astype(np.float32)
        ang = np.arctan2(yy - cy, xx - cx)
        rr = r * (1 + 0.3 * np.sin(2 * ang + rng.uniform(0, 6.3)) + 0.2 * np.sin(3 * ang + rng.uniform(0, 6.3)))
        v = np.clip(rr - np.hypot(yy - cy, xx - cx) + 0.5, 0, 1)
        ys0, xs0 = max(y0, 0), max(x0, 0)
        ys1, xs1 = min(y0 + 2 * k + 1, h), min(x0 + 2 * k + 1, w)
        if ys1 <= ys0 or xs1 <= xs0:
            continue
        sub = v[ys0 - y0:ys1 - y0, xs0 - x0:xs1 - x0]
        out[ys0:ys1, xs0:xs1] = np.maximum(out[ys0:ys1, xs0:xs1], sub)
    return out


def _thin_film_rgb(t_nm, n_film=2.3, r01=0.35, r12=0.55):
    """Reflectance of a thin transparent film on metal at three band-averaged wavelengths."""
    out = []
    for lam in WAVELENGTHS:
        acc = 0.0
        for dl in (-25.0, 0.0, 25.0):
            delta = 4 * np.pi * n_film * t_nm / (lam + dl)
            acc = acc + (r01 ** 2 + r12 ** 2 + 2 * r01 * r12 * np.cos(delta)) / \
                (1 + r01 ** 2 * r12 ** 2 + 2 * r01 * r12 * np.cos(delta))
        out.append(acc / 3.0)
    return np.stack(out, -1)


def _look_params(look, rng):
    P = dict(look=look)
    P["oblique"] = bool(look in ("bf_boundary", "overetched", "grain_contrast") and rng.random() < 0.35)
    P["light_angle_deg"] = _u(rng, 0, 360)
    P["colour_camera"] = bool(look in ("tint_color", "dic") or rng.random() < 0.55)
    if look == "bf_boundary":
        P.update(gb_contrast=_u(rng, 0.55, 0.95), gb_width=_u(rng, 1.0, 2.4), miss_p=_u(rng, 0.03, 0.12),
                 twin_vis_p=_u(rng, 0.3, 0.85), twin_strength=_u(rng, 0.25, 0.7), grain_var=_u(rng, 0.01, 0.07),
                 base=_u(rng, 0.72, 0.88), etch_pits=0, n_scratch=int(rng.integers(2, 25)), stains=rng.random() < 0.3)
    elif look == "tint_color":
        P.update(gb_contrast=_u(rng, 0.45, 0.9), gb_width=_u(rng, 0.9, 2.0), miss_p=_u(rng, 0.03, 0.15),
                 twin_vis_p=_u(rng, 0.1, 0.6), twin_strength=_u(rng, 0.2, 0.6), film_mean=_u(rng, 60, 170),
                 film_spread=_u(rng, 40, 130), film_n=_u(rng, 2.0, 2.6), base=_u(rng, 0.85, 1.0),
                 etch_pits=0, n_scratch=int(rng.integers(0, 12)), stains=rng.random() < 0.35)
    elif look == "grain_contrast":
        P.update(gb_contrast=_u(rng, 0.25, 0.75), gb_width=_u(rng, 0.9, 2.2), miss_p=_u(rng, 0.05, 0.25),
                 twin_vis_p=_u(rng, 0.1, 0.6), twin_strength=_u(rng, 0.2, 0.6), g_lo=_u(rng, 0.15, 0.4),
                 g_hi=_u(rng, 0.7, 0.92), base=1.0, sepia=rng.random() < 0.35, etch_pits=0,
                 n_scratch=int(rng.integers(0, 15)), stains=rng.random() < 0.3)
    elif look == "darkfield":
        P.update(gb_contrast=_u(rng, 0.6, 1.0), gb_width=_u(rng, 1.2, 2.6), miss_p=_u(rng, 0.05, 0.2),
                 twin_vis_p=_u(rng, 0.2, 0.7), twin_strength=_u(rng, 0.3, 0.7), grain_var=_u(rng, 0.0, 0.04),
                 base=_u(rng, 0.02, 0.08), df_gain=_u(rng, 0.6, 1.0), etch_pits=int(rng.integers(0, 2)),
                 n_scratch=int(rng.integers(5, 40)), stains=False)
    elif look == "dic":
        P.update(gb_contrast=_u(rng, 0.3, 0.7), gb_width=_u(rng, 1.2, 3.0), miss_p=_u(rng, 0.05, 0.2),
                 twin_vis_p=_u(rng, 0.3, 0.9), twin_strength=_u(rng, 0.3, 0.8), grain_var=_u(rng, 0.0, 0.05),
                 relief=_u(rng, 0.5, 2.0), bias_nm=float(rng.choice([_u(rng, 120, 260), _u(rng, 420, 600)])),
                 dic_gain=_u(rng, 60, 200), base=_u(rng, 0.8, 0.95), etch_pits=0,
                 n_scratch=int(rng.integers(3, 30)), stains=False)
    elif look == "overetched":
        P.update(gb_contrast=_u(rng, 0.85, 1.0), gb_width=_u(rng, 2.8, 6.0), miss_p=_u(rng, 0.0, 0.05),
                 twin_vis_p=_u(rng, 0.6, 1.0), twin_strength=_u(rng, 0.5, 0.9), grain_var=_u(rng, 0.05, 0.2),
                 base=_u(rng, 0.6, 0.8), etch_pits=int(rng.integers(150, 900)), groove_center=_u(rng, 0.0, 0.5),
                 n_scratch=int(rng.integers(0, 8)), stains=rng.random() < 0.6)
    else:  # underetched
        P.update(gb_contrast=_u(rng, 0.12, 0.4), gb_width=_u(rng, 0.8, 1.6), miss_p=_u(rng, 0.2, 0.5),
                 twin_vis_p=_u(rng, 0.0, 0.3), twin_strength=_u(rng, 0.2, 0.5), grain_var=_u(rng, 0.0, 0.03),
                 base=_u(rng, 0.75, 0.92), etch_pits=0, n_scratch=int(rng.integers(20, 90)),
                 stains=rng.random() < 0.4)
    P["stains"] = bool(P["stains"])
    P["patchy_scale"] = _u(rng, 40, 200)
    P["patchy_amp"] = _u(rng, 0.1, 0.6)
    P["corr_cbs"] = _u(rng, 0.0, 0.7)
    P["scratch_width"] = _u(rng, 0.5, 1.3)
    P["scratch_dominant"] = bool(rng.random() < 0.6)
    P["n_dust"] = int(rng.integers(0, 15))
    P["inclusion_extra"] = int(rng.integers(0, 12))
    return P


# --------------------------------------------------------------------------- main entry
def render_lom(cbs: np.ndarray, rng: np.random.Generator):
    cbs = np.asarray(cbs, dtype=np.float32)
    if cbs.ndim == 3:
        cbs = cbs.mean(-1)
    h, w = cbs.shape
    S = _segment(cbs)
    lab, nl = S["lab"], S["nl"]
    look = str(rng.choice(LOOKS, p=np.array(LOOK_P) / np.sum(LOOK_P)))
    P = _look_params(look, rng)
    area_mpx = h * w / 1e6

    # ---- per-grain orientation proxy (partially correlated with CBS grey)
    lab_c, nlc = S["lab_col"], S["nl_col"]
    gm = np.bincount(lab_c.ravel(), S["smooth"].ravel(), nlc) / np.maximum(np.bincount(lab_c.ravel(), minlength=nlc), 1)
    rank = np.argsort(np.argsort(gm)) / max(nlc - 1, 1)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    P["corr_sign"] = sign
    rnd = rng.random(nlc)
    c = P["corr_cbs"]
    ori = np.clip(c * (rank if sign > 0 else 1 - rank) + (1 - c) * rnd, 0, 1)

    # ---- per-segment etch strength
    nseg = S["nseg"]
    straight = S["straight"]
    vis = rng.random(nseg) >= P["miss_p"]
    tw_vis = rng.random(nseg) < P["twin_vis_p"]
    strength = rng.lognormal(0, 0.25, nseg)
    strength = np.where(straight, strength * P["twin_strength"], strength)
    vis = np.where(straight, vis & tw_vis, vis)
    # low-contrast (low-misorientation proxy) boundaries etch weaker
    strength = strength * np.clip(0.45 + S["sdiff"] / 0.12, 0.45, 1.0)
    strength = np.where(vis, strength * S["evid"], 0.0)
    width_seg = P["gb_width"] * rng.lognormal(0, 0.15, nseg)
    P["n_grains"] = int(nl)
    P["n_segments"] = int(nseg)
    P["n_twinlike"] = int(straight.sum())
    P["n_visible_segments"] = int((strength > 0).sum())

    by, bx, seg = S["by"], S["bx"], S["seg"]
    smap = np.zeros((h, w), np.float32)
    wmap = np.ones((h, w), np.float32)
    if by.size:
        smap[by, bx] = strength[seg]
        wmap[by, bx] = width_seg[seg]
    patch = 1.0 + P["patchy_amp"] * _smooth_noise((h, w), P["patchy_scale"], rng)
    patch = np.clip(patch, 0.0, 1.6)
    if (smap > 0).any():
        d, (iy, ix) = ndi.distance_transform_edt(smap <= 0, return_indices=True)
        d = d.astype(np.float32) + 0.5
        sn = smap[iy, ix] * patch
        wn = wmap[iy, ix]
        groove = sn * np.exp(-0.5 * (d / wn) ** 2)
        if look == "overetched":
            gc = P["groove_center"]
            groove = groove * (1 - gc * np.exp(-0.5 * (d / (0.35 * wn)) ** 2))
        groove = np.clip(groove, 0, 1.5).astype(np.float32)
    else:
        groove = np.zeros((h, w), np.float32)

    # ---- artifacts
    pits_cbs = S["pits"]
    extra_inc = _blobs((h, w), rng, P["inclusion_extra"] * area_mpx, 0.8, 2.5)
    inclusions = np.maximum(pits_cbs, extra_inc)
    n_scr = int(round(P["n_scratch"] * area_mpx))
    scr_fine = _scratches((h, w), rng, n_scr, P["scratch_width"], 1.0, P["scratch_dominant"])
    scr_fine = np.clip(scr_fine / 0.25, 0, 1.5)
    etchp = np.zeros((h, w), np.float32)
    if P["etch_pits"]:
        npit = int(P["etch_pits"] * area_mpx)
        ys = rng.uniform(0, h, npit)
        xs = rng.uniform(0, w, npit)
        gl = lab[np.clip(ys.astype(int), 0, h - 1), np.clip(xs.astype(int), 0, w - 1)]
        gang = rng.uniform(0, np.pi, nl)[gl]  # crystallographic: one pit direction per grain
        ln = rng.uniform(1.5, 4.0, npit)
        tt = np.linspace(-0.5, 0.5, 7)
        YY = (ys[:, None] + np.sin(gang)[:, None] * ln[:, None] * tt[None]).ravel()
        XX = (xs[:, None] + np.cos(gang)[:, None] * ln[:, None] * tt[None]).ravel()
        WW = np.repeat(rng.uniform(0.5, 1.0, npit), tt.size) / tt.size * 4
        etchp = np.clip(ndi.gaussian_filter(_splat((h, w), YY, XX, WW), 0.8) * 2.5, 0, 1)
    dust = _blobs((h, w), rng, P["n_dust"] * area_mpx, 1.0, 4.0)

    # ---- height map (arbitrary units ~ px) for relief-sensitive modes
    rel = rng.normal(0, 1.0, nl).astype(np.float32)
    hmap = ndi.gaussian_filter(rel[lab] * 0.6, 1.2)
    hmap = hmap - 2.0 * groove - 2.5 * inclusions - 1.2 * scr_fine - 1.5 * etchp
    gy, gx = np.gradient(hmap)
    la = np.deg2rad(P["light_angle_deg"])
    ddir = (np.cos(la) * gx + np.sin(la) * gy).astype(np.float32)
    gmag = np.hypot(gx, gy).astype(np.float32)

    # ---- reflectance (RGB) per grain
    if look == "tint_color":
        tfilm = P["film_mean"] + P["film_spread"] * (ori - 0.5) * 2
        tfield = tfilm[lab_c] + 8.0 * _smooth_noise((h, w), 300, rng)  # film non-uniformity
        refl = _thin_film_rgb(tfield, n_film=P["film_n"]).astype(np.float32)
        refl = refl / max(float(np.percentile(refl, 99)), 1e-3) * P["base"]
    elif look == "grain_contrast":
        # non-monotonic brightness vs. orientation proxy
        k = rng.uniform(1.0, 2.5)
        ph = rng.uniform(0, 1)
        v = 0.5 + 0.5 * np.cos(2 * np.pi * (k * ori + ph))
        gv = P["g_lo"] + (P["g_hi"] - P["g_lo"]) * v
        refl = np.repeat(gv[lab_c][..., None], 3, -1).astype(np.float32)
        if P["sepia"]:
            refl = refl * np.array([1.0, 0.86, 0.66], np.float32) ** (1.3 - gv[lab_c][..., None])
    else:
        gv = P["base"] * (1 + P["grain_var"] * (ori - 0.5) * 2)
        refl = np.repeat(gv[lab_c][..., None], 3, -1).astype(np.float32)
    # fine etch texture
    tex = 1 + 0.02 * ndi.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 1.0) * 3
    refl = refl * tex[..., None]
    # stains: smooth brownish/bluish blotches
    if P["stains"]:
        st = _smooth_noise((h, w), _u(rng, 80, 300), rng)
        st = np.clip((st - _u(rng, 0.8, 1.8)) * 1.5, 0, 1)
        tint = np.array([_u(rng, 0.75, 1.0), _u(rng, 0.6, 0.9), _u(rng, 0.4, 0.85)], np.float32)
        refl = refl * (1 - st[..., None] * (1 - tint) * _u(rng, 0.5, 1.0))
    # inclusion / dust absorption
    refl = refl * (1 - 0.85 * inclusions)[..., None] * (1 - 0.8 * dust)[..., None]

    # ---- imaging mode
    if look == "darkfield":
        scat = (gmag / 0.35) ** 1.2
        scat = scat + 0.8 * inclusions + 0.8 * scr_fine + 0.4 * dust
        img = P["base"] * refl / max(float(refl.mean()), 1e-3)
        img = img + P["df_gain"] * np.clip(scat, 0, 2)[..., None] * np.array([1.0, 0.95, 0.85], np.float32)
    elif look == "dic":
        shear = P["relief"] * ddir
        ret = P["bias_nm"] + P["dic_gain"] * shear
        img = np.stack([np.sin(np.pi * ret / lam) ** 2 for lam in WAVELENGTHS], -1).astype(np.float32)
        img = img * refl / max(P["base"], 1e-3) * (1 - 0.3 * P["gb_contrast"] * groove)[..., None]
    else:
        slope = 1.0 / (1.0 + (gmag / 0.9) ** 2)
        img = refl * (1 - P["gb_contrast"] * np.clip(groove, 0, 1))[..., None] * slope[..., None]
        img = img * (1 - 0.35 * scr_fine * (1.0 if look == "underetched" else 0.7))[..., None]
        img = img * (1 - 0.7 * etchp)[..., None]
        if P["oblique"]:
            img = img * np.clip(1 + _u(rng, 0.3, 0.8) * ddir, 0.2, 1.8)[..., None]
    img = np.clip(img, 0, None).astype(np.float32)

    # ---- optics: PSF (wavelength dependent, growing to the field edge), CA, illumination
    sig0 = _u(rng, 1.0, 2.6)
    sig_edge = sig0 * _u(rng, 1.0, 1.6)
    defocus = _u(rng, 0.0, 2.5) if rng.random() < 0.5 else 0.0
    P.update(psf_sigma=sig0, psf_sigma_edge=sig_edge, defocus_r=defocus)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy0 = h / 2 + _u(rng, -0.2, 0.2) * h
    cx0 = w / 2 + _u(rng, -0.2, 0.2) * w
    rr = np.hypot(yy - h / 2, xx - w / 2) / (0.5 * np.hypot(h, w))
    wedge = np.clip(rr, 0, 1) ** 2
    out = np.empty_like(img)
    for ci, lam in enumerate(WAVELENGTHS):
        sc = lam / 550.0
        a = _fft_blur(img[..., ci], sig0 * sc, defocus)
        if sig_edge > sig0 * 1.05:
            b = _fft_blur(img[..., ci], sig_edge * sc, defocus)
            a = a * (1 - wedge) + b * wedge
        out[..., ci] = a
    img = out
    ca = _u(rng, -0.35, 0.35)  # px of lateral CA at the field corner (red vs blue, opposite)
    P["lateral_ca_px"] = ca
    if abs(ca) > 0.02:
        rmax = 0.5 * np.hypot(h, w)
        for ci, sgn in ((0, 1.0), (2, -1.0)):
            e = sgn * ca / rmax
            coords = np.stack([h / 2 + (yy - h / 2) * (1 + e), w / 2 + (xx - w / 2) * (1 + e)])
            img[..., ci] = ndi.map_coordinates(img[..., ci], coords, order=1, mode="nearest")
    # illumination: off-centre Koehler + vignetting + slight gradient
    vig = _u(rng, 0.05, 0.35)
    ri = np.hypot(yy - cy0, xx - cx0) / (0.5 * np.hypot(h, w))
    illum = (1 - vig * np.clip(ri, 0, 1.6) ** 2) * (1 + _u(rng, -0.08, 0.08) * (xx / w - .5)
                                                   + _u(rng, -0.08, 0.08) * (yy / h - .5))
    img = img * illum[..., None]
    # sensor-dust shadows (out of focus, large faint discs)
    for _ in range(int(rng.integers(0, 4))):
        r0 = _u(rng, 8, 40)
        dd = np.hypot(yy - rng.uniform(0, h), xx - rng.uniform(0, w))
        img = img * (1 - _u(rng, 0.03, 0.12) * np.clip((r0 - dd) / 3 + 0.5, 0, 1))[..., None]
    P["vignetting"] = vig

    # ---- camera
    wb = np.array([_u(rng, 0.85, 1.12), 1.0, _u(rng, 0.78, 1.15)], np.float32)  # lamp / WB cast
    P["white_balance"] = [float(x) for x in wb]
    expo = _u(rng, 0.75, 1.05) / max(float(np.percentile(img, 99.5)), 1e-3)
    img = img * wb * expo
    full_well = float(np.exp(rng.uniform(np.log(800), np.log(15000))))
    read = _u(rng, 1.5, 8.0)
    P.update(full_well_e=full_well, read_noise_e=read)
    if P["colour_camera"]:
        mosaic = np.empty((h, w), np.float32)
        mosaic[0::2, 0::2] = img[0::2, 0::2, 0]
        mosaic[0::2, 1::2] = img[0::2, 1::2, 1]
        mosaic[1::2, 0::2] = img[1::2, 0::2, 1]
        mosaic[1::2, 1::2] = img[1::2, 1::2, 2]
        e = np.clip(mosaic, 0, 1.2) * full_well
        e = rng.poisson(e).astype(np.float32) + rng.normal(0, read, e.shape).astype(np.float32)
        mosaic = e / full_well
        # bilinear demosaic
        mr = np.zeros((h, w), np.float32); mr[0::2, 0::2] = 1
        mb = np.zeros((h, w), np.float32); mb[1::2, 1::2] = 1
        mg = 1 - mr - mb
        kg = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4
        krb = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
        R = ndi.convolve(mosaic * mr, krb, mode="mirror")
        G = ndi.convolve(mosaic * mg, kg, mode="mirror")
        B = ndi.convolve(mosaic * mb, krb, mode="mirror")
        img = np.stack([R, G, B], -1)
    else:
        grey = img @ np.array([0.25, 0.55, 0.20], np.float32)  # mono sensor spectral response
        e = np.clip(grey, 0, 1.2) * full_well
        e = rng.poisson(e).astype(np.float32) + rng.normal(0, read, e.shape).astype(np.float32)
        img = (e / full_well)[..., None]
    img = np.clip(img, 0, 1)
    gamma = _u(rng, 1.8, 2.4)
    P["gamma"] = gamma
    img = img ** (1 / gamma)
    if rng.random() < 0.4:
        amt = _u(rng, 0.2, 0.8)
        P["unsharp"] = amt
        for ci in range(img.shape[-1]):
            img[..., ci] = img[..., ci] + amt * (img[..., ci] - ndi.gaussian_filter(img[..., ci], 1.2))
    img = np.clip(img, 0, 1)
    if rng.random() < 0.35:
        q = int(rng.integers(40, 90))
        P["jpeg_quality"] = q
        img = _jpeg_like(img, q)
    lom = img[..., 0] if img.shape[-1] == 1 else img
    P["output"] = "grey" if lom.ndim == 2 else "rgb"
    P = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in P.items()}
    return np.clip(lom, 0, 1).astype(np.float32), P


_QY = np.array([[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
                [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
                [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
                [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float32)
_QC = np.full((8, 8), 99, np.float32)
_QC[:4, :4] = np.array([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]])


def _dct_quant(ch, qt):
    h, w = ch.shape
    H, W = -(-h // 8) * 8, -(-w // 8) * 8
    p = np.pad(ch, ((0, H - h), (0, W - w)), mode="edge")
    b = p.reshape(H // 8, 8, W // 8, 8).transpose(0, 2, 1, 3)
    c = sfft.dctn(b, axes=(2, 3), norm="ortho")
    c = np.round(c / qt) * qt
    b = sfft.idctn(c, axes=(2, 3), norm="ortho")
    return b.transpose(0, 2, 1, 3).reshape(H, W)[:h, :w]


def _jpeg_like(img, quality):
    s = 5000 / quality if quality < 50 else 200 - 2 * quality
    qy = np.clip(np.floor((_QY * s + 50) / 100), 1, 255)
    qc = np.clip(np.floor((_QC * s + 50) / 100), 1, 255)
    x = img * 255.0
    if x.shape[-1] == 1:
        return (np.clip(_dct_quant(x[..., 0] - 128, qy) + 128, 0, 255) / 255.0)[..., None].astype(np.float32)
    R, G, B = x[..., 0], x[..., 1], x[..., 2]
    Y = 0.299 * R + 0.587 * G + 0.114 * B
    Cb = -0.168736 * R - 0.331264 * G + 0.5 * B
    Cr = 0.5 * R - 0.418688 * G - 0.081312 * B
    h, w = Y.shape
    Y = _dct_quant(Y - 128, qy) + 128
    out_c = []
    for C in (Cb, Cr):  # 4:2:0 chroma subsampling
        hh, ww = -(-h // 2) * 2, -(-w // 2) * 2
        Cp = np.pad(C, ((0, hh - h), (0, ww - w)), mode="edge")
        Cs = Cp.reshape(hh // 2, 2, ww // 2, 2).mean((1, 3))
        Cs = _dct_quant(Cs, qc)
        out_c.append(ndi.zoom(Cs, 2, order=1, mode="nearest", grid_mode=True)[:h, :w])
    Cb, Cr = out_c
    R = Y + 1.402 * Cr
    G = Y - 0.344136 * Cb - 0.714136 * Cr
    B = Y + 1.772 * Cb
    return (np.clip(np.stack([R, G, B], -1), 0, 255) / 255.0).astype(np.float32)
