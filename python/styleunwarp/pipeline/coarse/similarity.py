"""Similarity hypotheses (rotation, scale, translation) by exhaustive search, then refinement.

For each scale (known from the pixel sizes, else a geometric grid) and each rotation over
the full circle (and optionally mirrored), the source is rotated and scaled onto a canvas
covering all of it, and the masked NCC against the reduced target is computed for every
translation at once (FFT), so a field inside a larger one is found wherever it lies. The
best few distinct hypotheses are then refined (rotation, scale, shift) on a finer level.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from .score import Level, ShiftCorrelator, reduce, sample, weighted
from .types import Candidate

COARSE_SIZE = 64
"""Longer side (px) of the reduced target the exhaustive search runs on."""

SEARCH_SIZE = 96
"""Longer side (px) of the reduced target the finer grid around the best coarse hypotheses runs on."""

REFINE_SIZE = 192
"""Longer side (px) of the reduced target hypotheses are refined and compared on."""

COARSE_ROTATION_STEP = 10.0
"""Rotation step (degrees) of the exhaustive search (a quarter of it in the finer grid)."""

SCALE_RANGE = (0.25, 4.0)
"""Searched ratio of source to target pixel size when the pixel sizes are not both known."""

COARSE_SCALE_STEP = 2 ** (1 / 4)
"""Ratio between neighbouring scales of the exhaustive search (half steps in the finer grid)."""

MAX_FIELD_RATIO = 4.0
"""Searched scales keep either field at most this many times the other's (per side)."""

KEEP_COARSE = 10
"""Hypotheses of the exhaustive search looked at more closely."""

KEEP = 3
"""Hypotheses refined at the end."""

NEAR_ROTATION = 10.0
"""Largest rotation (degrees, either way) of the near-identity search (:func:`search_near`)."""

NEAR_ROTATION_STEP = 2.5
"""Rotation step (degrees) of the near-identity search (that of the global search's finer grid)."""


def matrix(rotation_deg: float, scale: float, shift: tuple[float, float], mirror: bool = False) -> np.ndarray:
    """2x3 map target -> source: ``scale * R(rotation) * F (x) + shift`` (``F`` flips x when mirrored)."""
    th = np.deg2rad(rotation_deg)
    r = scale * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    if mirror:
        r = r @ np.diag([-1.0, 1.0])
    return np.hstack([r, np.asarray(shift, np.float64)[:, None]])


def _search_one(corr: ShiftCorrelator, level: Level, source_blurred: np.ndarray, rot: float, scale: float, mirror: bool) -> tuple[float, np.ndarray]:
    """Best NCC over all translations for one rotation and scale, and the full-resolution map."""
    k = level.k
    lin = matrix(rot, scale, (0.0, 0.0), mirror)[:, :2]
    inv = np.linalg.inv(lin)
    h, w = source_blurred.shape
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]]).T
    xs = inv @ corners  # full-resolution target coordinates of the source corners
    # canvas pixel c (working units) is full-resolution target position k (c + off) + (k - 1) / 2
    off = np.floor((xs.min(axis=1) - (k - 1) / 2) / k) - 1
    size = np.ceil((xs.max(axis=1) - xs.min(axis=1)) / k).astype(int) + 3
    canvas_to_full = np.array([[k, 0, k * off[0] + (k - 1) / 2], [0, k, k * off[1] + (k - 1) / 2]])
    a_canvas = lin @ canvas_to_full  # canvas pixel -> source pixel
    canvas, inside = sample(source_blurred, a_canvas, (int(size[1]), int(size[0])))
    nmap, origin = corr(canvas, inside)
    i = int(np.argmax(nmap))
    iy, ix = np.unravel_index(i, nmap.shape)
    best = float(nmap[iy, ix])
    if not np.isfinite(best):
        return -np.inf, np.zeros((2, 3))
    dy, dx = iy - origin[0], ix - origin[1]
    # target working x meets canvas x + d: full target X meets full canvas position X + k (d + off)
    t = lin @ (k * (np.array([dx, dy], np.float64) + off))
    return best, np.hstack([lin, t[:, None]])


def _map_points(target_shape: tuple[int, int]) -> np.ndarray:
    """The target's corners and centre, homogeneous (3x5): where two maps are compared."""
    h, w = target_shape
    return np.array([[0, w - 1, 0, w - 1, (w - 1) / 2], [0, 0, h - 1, h - 1, (h - 1) / 2], [1, 1, 1, 1, 1]], np.float64)


def _distinct(cands: list[tuple[float, np.ndarray, float, float, bool]], target_shape: tuple[int, int], keep: int, min_px: float) -> list:
    """The best ``keep`` hypotheses whose maps differ by more than ``min_px`` at the target's corners."""
    pts = _map_points(target_shape)
    out: list = []
    for c in sorted(cands, key=lambda c: -c[0]):
        p = c[1] @ pts
        if all(np.abs(p - o[1] @ pts).max() > min_px for o in out):
            out.append(c)
        if len(out) == keep:
            break
    return out


def _refine(level: Level, source: np.ndarray, s_scale: float, a0: np.ndarray, mirror: bool, scale_fixed: bool) -> tuple[float, np.ndarray]:
    """Local maximisation of the NCC over rotation, log-scale and shift from ``a0``."""
    lin0 = a0[:, :2] @ (np.diag([-1.0, 1.0]) if mirror else np.eye(2))
    scale0 = float(np.sqrt(abs(np.linalg.det(lin0))))
    rot0 = float(np.degrees(np.arctan2(lin0[1, 0], lin0[0, 0])))
    h, w = level.image.shape
    centre = level.full_from_working()[:2] @ np.array([(w - 1) / 2, (h - 1) / 2, 1.0])

    def build(p: np.ndarray) -> np.ndarray:
        rot, logs, tx, ty = rot0 + p[0], (0.0 if scale_fixed else p[1]), p[2], p[3]
        m = matrix(rot, scale0 * np.exp(logs), (0.0, 0.0), mirror)
        # keep the image of the target centre at a0's plus (tx, ty) source px
        c_src = a0 @ np.append(centre, 1.0)
        t = c_src + np.array([tx, ty]) - m[:, :2] @ centre
        m[:, 2] = t
        return m

    def cost(p: np.ndarray) -> float:
        v, frac = level.score(source, build(p), s_scale)
        return 1.0 - (weighted(v, frac) if np.isfinite(v) else -1.0)

    step = level.k * scale0
    simplex = np.array([[0, 0, 0, 0], [3.0, 0, 0, 0], [0, 0.04, 0, 0], [0, 0, 2 * step, 0], [0, 0, 0, 2 * step]], np.float64)
    res = optimize.minimize(cost, np.zeros(4), method="Nelder-Mead", options={"initial_simplex": simplex, "xatol": 0.05, "fatol": 1e-4, "maxfev": 120})
    return 1.0 - float(res.fun), build(res.x)


def _reduced_source(source: np.ndarray, level: Level, scale: float) -> tuple[np.ndarray, float]:
    """The source reduced so that one of its pixels is about one working pixel of ``level``."""
    ks = max(1.0, level.k * scale)
    shape = (max(8, int(round(source.shape[0] / ks))), max(8, int(round(source.shape[1] / ks))))
    return reduce(source, ks, shape, level.blur), ks


def _grid(corr: ShiftCorrelator, level: Level, source: np.ndarray, hyps: list[tuple[float, float, bool]]) -> list:
    """Search score and full-resolution map for every ``(rotation, scale, mirrored)``."""
    found = []
    by_scale: dict[float, list] = {}
    for rot, s, flip in hyps:
        by_scale.setdefault(s, []).append((rot, flip))
    for s, rots in by_scale.items():
        src, ks = _reduced_source(source, level, s)
        to_full = np.array([[ks, 0, (ks - 1) / 2], [0, ks, (ks - 1) / 2], [0, 0, 1]])
        for rot, flip in rots:
            v, a = _search_one(corr, level, src, float(rot), s / ks, flip)
            if np.isfinite(v):
                found.append((v, (to_full @ np.vstack([a, [0, 0, 1]]))[:2], float(rot), s, flip))
    return found


def search(
    target: np.ndarray,
    source: np.ndarray,
    *,
    scale: float | None = None,
    mirror: bool = False,
) -> list[Candidate]:
    """Refined similarity hypotheses, best first.

    ``scale`` is the source/target pixel-size ratio when known (1 after pixel-size
    matching); ``None`` searches :data:`SCALE_RANGE`. Three stages: a coarse grid of
    rotations (and scales) at :data:`COARSE_SIZE`, a finer grid around the best
    :data:`KEEP_COARSE` at :data:`SEARCH_SIZE`, then local refinement of the best
    :data:`KEEP` at :data:`REFINE_SIZE`.
    """
    flips = (False, True) if mirror else (False,)
    coarse = Level.of(target, COARSE_SIZE)
    if scale:
        scales = [float(scale)]
    else:
        scales = list(np.exp(np.arange(np.log(SCALE_RANGE[0]), np.log(SCALE_RANGE[1]) + 1e-9, np.log(COARSE_SCALE_STEP))))
        # neither field more than MAX_FIELD_RATIO times the other's side
        lo = max(source.shape) / (MAX_FIELD_RATIO * max(target.shape))
        hi = MAX_FIELD_RATIO * min(source.shape) / min(target.shape)
        scales = [s for s in scales if lo / 1.01 <= s <= hi * 1.01] or [1.0]
    hyps = [(r, s, f) for s in scales for r in np.arange(0.0, 360.0, COARSE_ROTATION_STEP) for f in flips]
    found = _grid(ShiftCorrelator(coarse.image), coarse, source, hyps)
    top = _distinct(found, target.shape, KEEP_COARSE, min_px=4 * coarse.k)
    level = Level.of(target, SEARCH_SIZE)
    hyps = []
    for _, _, rot, s, flip in top:
        sub = [s] if scale else [s * COARSE_SCALE_STEP ** (j / 2) for j in (-1, 0, 1)]
        hyps += [(rot + dr, ss, flip) for ss in sub for dr in np.arange(-COARSE_ROTATION_STEP / 2, COARSE_ROTATION_STEP / 2 + 1e-9, COARSE_ROTATION_STEP / 4)]
    found = _grid(ShiftCorrelator(level.image), level, source, list(dict.fromkeys(hyps)))
    return _refined(target, source, _distinct(found, target.shape, KEEP, min_px=4 * level.k), scale_fixed=scale is not None)


def search_near(target: np.ndarray, source: np.ndarray, *, scale: float | None = None) -> list[Candidate]:
    """Refined similarity hypotheses near the identity, best first: the cheap first look.

    Rotations within :data:`NEAR_ROTATION` degrees (steps of :data:`NEAR_ROTATION_STEP`), the
    known ``scale`` (else 1 and half a scale step either way), every translation (FFT), on the
    :data:`SEARCH_SIZE` level; the best :data:`KEEP` distinct ones refined as in :func:`search`.
    About 27 hypotheses instead of :func:`search`'s ~600 + ~150 when the scale is unknown.
    """
    level = Level.of(target, SEARCH_SIZE)
    scales = [float(scale)] if scale else [COARSE_SCALE_STEP ** (j / 2) for j in (-1, 0, 1)]
    rots = np.arange(-NEAR_ROTATION, NEAR_ROTATION + 1e-9, NEAR_ROTATION_STEP)
    found = _grid(ShiftCorrelator(level.image), level, source, [(float(r), s, False) for s in scales for r in rots])
    return _refined(target, source, _distinct(found, target.shape, KEEP, min_px=4 * level.k), scale_fixed=scale is not None)


LOCAL_STARTS_PX = 4.0
""":func:`basin_px` refines from the identity shifted this far (full-resolution px) left, right, up
and down, to measure the basin :func:`refine_identity`'s optimum is reached from."""


def refine_identity(target: np.ndarray, source: np.ndarray) -> Candidate:
    """The identity refined locally: rotation and shift (scale 1) maximising the score from the
    images as given, on the :data:`REFINE_SIZE` level, as :func:`search`'s hypotheses are refined.

    Where the search over hypotheses finds no unique winner (the representations of two modalities
    agree too loosely for one hypothesis to stand out among distant ones), a pair moved a few pixels
    and degrees is still reached continuously from where it was delivered (:func:`basin_px` says
    whether that optimum is one)."""
    fine = Level.of(target, REFINE_SIZE)
    src, ks = _reduced_source(source, fine, 1.0)
    score, a = _refine(fine, src, ks, np.eye(2, 3), False, scale_fixed=True)
    return Candidate.from_matrix("similarity", a, score, refined_from="identity")


def basin_px(target: np.ndarray, source: np.ndarray, refined: Candidate) -> float:
    """How far (largest distance at the target's corners and centre, px) refinements started
    :data:`LOCAL_STARTS_PX` left, right, up and down of the identity end from ``refined``
    (:func:`refine_identity`'s result): on a flat ridge of the score they scatter, on a real
    optimum they meet."""
    fine = Level.of(target, REFINE_SIZE)
    src, ks = _reduced_source(source, fine, 1.0)
    pts = _map_points(target.shape)
    at = refined.matrix @ pts
    spread = 0.0
    for dx, dy in ((LOCAL_STARTS_PX, 0), (-LOCAL_STARTS_PX, 0), (0, LOCAL_STARTS_PX), (0, -LOCAL_STARTS_PX)):
        _, b = _refine(fine, src, ks, np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]), False, scale_fixed=True)
        spread = max(spread, float(np.abs(b @ pts - at).max()))
    return spread


def _refined(target: np.ndarray, source: np.ndarray, best: list, scale_fixed: bool) -> list[Candidate]:
    """The search hypotheses ``best`` refined on the :data:`REFINE_SIZE` level, best first."""
    fine = Level.of(target, REFINE_SIZE)
    reduced: dict[float, tuple[np.ndarray, float]] = {}  # hypotheses of one scale share the reduced source
    out = []
    for v, a, rot, s, flip in best:
        if s not in reduced:
            reduced[s] = _reduced_source(source, fine, s)
        src, ks = reduced[s]
        score, a_ref = _refine(fine, src, ks, a, flip, scale_fixed=scale_fixed)
        out.append(Candidate.from_matrix("similarity", a_ref, score, mirrored=flip, search_score=v))
    return sorted(out, key=lambda c: -c.score)
