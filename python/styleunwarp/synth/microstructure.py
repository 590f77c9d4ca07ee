"""A steel-like (austenitic) microstructure defined at continuous coordinates.

Grains are the cells of a power (weighted Voronoi) diagram of seed points, so grain
boundaries are straight and grain sizes vary. Every grain has a crystal orientation (a
rotation matrix). Annealing twins are straight, parallel-sided bands inside a grain,
along the trace of one of the grain's {111} planes on the surface, with the Sigma-3 twin
orientation (60 degrees about that <111>); a band may end inside the grain. Optional
second-phase islands (delta-ferrite-like ellipses on grain boundaries) and pits (discs)
complete the picture.

:meth:`Microstructure.sample` evaluates all of it at arbitrary positions ``(x, y)``
(pixel units of the target/CBS frame): the region under each point and the exact
distances to the nearest grain boundary, twin boundary, island edge and pit edge. A
deformed rendering samples the same geometry at deformed positions, so it is exact
rather than a resampled image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

#: Phase codes of :attr:`MicroSample.phase`.
GRAIN, TWIN, ISLAND = 0, 1, 2

_K_NEIGHBOURS = 5
_SQRT3 = np.sqrt(3.0)
# The four {111} plane normals of a cubic crystal (crystal frame).
_N111 = np.array([[1, 1, 1], [-1, 1, 1], [1, -1, 1], [1, 1, -1]], dtype=np.float64) / _SQRT3


@dataclass
class MicroSample:
    """The microstructure at a set of points (all arrays have the points' shape).

    ``region`` indexes :attr:`Microstructure.orientations`; ``phase`` is GRAIN, TWIN or
    ISLAND; distances are in pixels (``inf`` where a feature is absent). ``d_pit`` is
    signed: negative inside a pit.
    """

    region: np.ndarray
    grain: np.ndarray
    phase: np.ndarray
    d_grain: np.ndarray
    d_twin: np.ndarray
    d_island: np.ndarray
    d_pit: np.ndarray
    relief: np.ndarray


@dataclass
class Microstructure:
    """Geometry and crystallography of a synthetic austenitic microstructure.

    Coordinates are ``(x, y)`` in pixels of the target frame. Regions are numbered: grains
    ``0..G-1`` (one per seed), then twin bands, then islands; ``orientations[r]`` is the
    crystal-to-sample rotation matrix of region ``r``.
    """

    seeds: np.ndarray  # (G, 2)
    lift: np.ndarray  # (G,) third coordinate of the lifted (power-diagram) seeds
    orientations: np.ndarray  # (R, 3, 3)
    band_grain: np.ndarray  # (B,) grain that holds each twin band
    band_normal: np.ndarray  # (B, 2) unit normal of the band in the surface
    band_offset: np.ndarray  # (B,) band centre line: normal . p = offset
    band_half: np.ndarray  # (B,) half width
    band_end: np.ndarray  # (B,) tangent . p where a band ends
    band_end_side: np.ndarray  # (B,) 0: crosses the grain; +1/-1: exists where side*(t.p - end) < 0
    island_centre: np.ndarray  # (I, 2)
    island_axes: np.ndarray  # (I, 2) semi-axes
    island_angle: np.ndarray  # (I,)
    pit_centre: np.ndarray  # (P, 2)
    pit_radius: np.ndarray  # (P,)
    relief_waves: np.ndarray  # (K, 4): kx, ky, phase, amplitude of a smooth surface field
    grain_size: float = 100.0
    meta: dict = field(default_factory=dict)

    @property
    def n_grains(self) -> int:
        return len(self.seeds)

    @property
    def n_bands(self) -> int:
        return len(self.band_grain)

    @cached_property
    def _tree(self) -> cKDTree:
        return cKDTree(np.column_stack([self.seeds, self.lift]))

    @cached_property
    def _band_slots(self) -> np.ndarray:
        """``(G, Bmax)`` table of the bands of each grain, padded with -1."""
        counts = np.bincount(self.band_grain, minlength=self.n_grains) if self.n_bands else np.zeros(self.n_grains, int)
        slots = np.full((self.n_grains, max(int(counts.max(initial=0)), 1)), -1, dtype=np.int64)
        fill = np.zeros(self.n_grains, dtype=np.int64)
        for b, g in enumerate(self.band_grain):
            slots[g, fill[g]] = b
            fill[g] += 1
        return slots

    @cached_property
    def _pit_tree(self) -> cKDTree | None:
        return cKDTree(self.pit_centre) if len(self.pit_centre) else None

    def sample(self, x: np.ndarray, y: np.ndarray) -> MicroSample:
        """Evaluate the microstructure at continuous positions ``(x, y)`` (same shapes)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        shape = np.broadcast(x, y).shape
        px = np.broadcast_to(x, shape).ravel()
        py = np.broadcast_to(y, shape).ravel()
        m = px.size
        k = min(_K_NEIGHBOURS, self.n_grains)
        dist, idx = self._tree.query(np.column_stack([px, py, np.zeros(m)]), k=k, workers=-1)
        if k == 1:
            dist, idx = dist[:, None], idx[:, None]
        grain = idx[:, 0]
        region = grain.copy()
        phase = np.zeros(m, dtype=np.uint8)
        # Distance to the cell boundary: the nearest bisector (power line) of the cell.
        pd = dist**2
        d_grain = np.full(m, np.inf)
        sx, sy = self.seeds[:, 0], self.seeds[:, 1]
        s0x, s0y = sx[grain], sy[grain]
        for j in range(1, k):
            sep = np.hypot(sx[idx[:, j]] - s0x, sy[idx[:, j]] - s0y)
            np.minimum(d_grain, (pd[:, j] - pd[:, 0]) / (2.0 * np.maximum(sep, 1e-9)), out=d_grain)

        d_twin = np.full(m, np.inf)
        if self.n_bands:
            slots = self._band_slots
            for j in range(slots.shape[1]):
                b = slots[grain, j]
                has = np.flatnonzero(b >= 0)
                if not has.size:
                    continue
                bb = b[has]
                n = self.band_normal[bb]
                t = np.column_stack([n[:, 1], -n[:, 0]])
                qx, qy = px[has], py[has]
                across = np.abs(n[:, 0] * qx + n[:, 1] * qy - self.band_offset[bb]) - self.band_half[bb]
                along = (t[:, 0] * qx + t[:, 1] * qy - self.band_end[bb]) * self.band_end_side[bb]
                side = self.band_end_side[bb]
                # Signed distance to the (half-)strip: negative inside.
                outside_end = (side != 0) & (along > 0)
                sd = np.where(outside_end, np.where(across > 0, np.hypot(across, along), along), across)
                inside_end = (side != 0) & (along <= 0)
                sd = np.where(inside_end & (across <= 0), np.maximum(across, along), sd)
                inside = sd < 0
                hit = has[inside]
                region[hit] = self.n_grains + bb[inside]
                phase[hit] = TWIN
                d_twin[has] = np.minimum(d_twin[has], np.abs(sd))

        d_island = np.full(m, np.inf)
        for i in range(len(self.island_centre)):
            cx, cy = self.island_centre[i]
            a, b = self.island_axes[i]
            c, s = np.cos(self.island_angle[i]), np.sin(self.island_angle[i])
            u = (px - cx) * c + (py - cy) * s
            v = -(px - cx) * s + (py - cy) * c
            rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
            grad = np.sqrt((u / a**2) ** 2 + (v / b**2) ** 2) / np.maximum(rho, 1e-9)
            sd = (rho - 1.0) / np.maximum(grad, 1e-9)
            inside = sd < 0
            region[inside] = self.n_grains + self.n_bands + i
            phase[inside] = ISLAND
            d_island = np.minimum(d_island, np.abs(sd))

        if self._pit_tree is not None:
            dp, ip = self._pit_tree.query(np.column_stack([px, py]), k=1, workers=-1)
            d_pit = dp - self.pit_radius[ip]
        else:
            d_pit = np.full(m, np.inf)

        relief = np.zeros(m)
        for kx, ky, ph, amp in self.relief_waves:
            relief += amp * np.cos(kx * px + ky * py + ph)

        def r(a: np.ndarray) -> np.ndarray:
            return a.reshape(shape)

        return MicroSample(r(region), r(grain), r(phase), r(d_grain), r(d_twin), r(d_island), r(d_pit), r(relief))


# --------------------------------------------------------------------------- generation


def _poisson_disc(rng: np.random.Generator, box: tuple[float, float, float, float], spacing: float, density: float) -> np.ndarray:
    """Dart throwing: ``density`` points per px², at least ``spacing`` apart, in ``box = (x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    area = (x1 - x0) * (y1 - y0)
    target = int(round(area * density)) + 1
    pts = np.empty((0, 2))
    tries = 0
    while len(pts) < target and tries < 40:
        cand = rng.uniform((x0, y0), (x1, y1), size=(4 * target, 2))
        for p in cand:
            if len(pts) >= target:
                break
            if len(pts) and np.min(np.sum((pts - p) ** 2, axis=1)) < spacing**2:
                continue
            pts = np.vstack([pts, p])
        tries += 1
    return pts


def _twin_rotation(axis: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(axis * np.deg2rad(60.0)).as_matrix()


def random_microstructure(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    grain_size: float = 100.0,
    twins: float = 1.0,
    islands: float = 0.5,
    pits: float = 1.0,
    margin: float | None = None,
) -> Microstructure:
    """Draw a random austenitic microstructure covering ``shape = (H, W)`` plus a margin.

    Parameters
    ----------
    rng
        Random generator (the only source of randomness).
    shape
        ``(H, W)`` of the frame in pixels; the structure extends ``margin`` beyond it.
    grain_size
        Mean grain diameter in pixels.
    twins
        Mean number of annealing-twin bands per grain (0 for none).
    islands
        Mean number of second-phase islands per 10 grains (0 for none).
    pits
        Pit density: ``pits`` per 40 000 px² (about 6 in a 512x512 frame at 1; 0 for none).
    margin
        Extent beyond the frame (default: 1.5 grain sizes).
    """
    h, w = shape
    margin = 1.5 * grain_size if margin is None else margin
    box = (-margin, -margin, w + margin, h + margin)
    # Mean cell area pi/4 d^2 for a mean (equivalent-circle) grain diameter d.
    seeds = _poisson_disc(rng, box, 0.45 * grain_size, 4.0 / (np.pi * grain_size**2))
    g = len(seeds)
    # Power-diagram weights (px^2): variable grain sizes with straight boundaries.
    weights = (0.35 * grain_size) ** 2 * rng.uniform(0.0, 1.0, g) ** 2
    lift = np.sqrt(weights.max() - weights)
    grain_rot = Rotation.random(g, random_state=rng).as_matrix()

    band_grain, band_normal, band_offset, band_half, band_end, band_side, band_rot = [], [], [], [], [], [], []
    if twins > 0:
        n_tw = rng.poisson(twins, g)
        for gi in range(g):
            if not n_tw[gi]:
                continue
            # One twin variant per grain: parallel bands along the trace of one {111} plane
            # (steep enough to show as a band), never overlapping, so that every band edge
            # is a real boundary.
            traces = grain_rot[gi][:2] @ _N111.T  # (2, 4) in-plane parts of the plane normals
            steep = np.flatnonzero(np.linalg.norm(traces, axis=0) >= 0.3)
            if not steep.size:
                continue
            variant = int(rng.choice(steep))
            nrm = traces[:, variant] / np.linalg.norm(traces[:, variant])
            tan = np.array([nrm[1], -nrm[0]])
            twin_rot = grain_rot[gi] @ _twin_rotation(_N111[variant])
            placed: list[tuple[float, float]] = []
            for _ in range(min(int(n_tw[gi]), 4)):
                for _try in range(6):
                    half = 0.5 * float(np.clip(rng.lognormal(np.log(0.2 * grain_size), 0.5), 4.0, 0.5 * grain_size))
                    offset = float(nrm @ seeds[gi]) + float(rng.uniform(-0.45, 0.45)) * grain_size
                    if all(abs(offset - o) >= half + hw + 2.0 for o, hw in placed):
                        break
                else:
                    continue
                placed.append((offset, half))
                band_grain.append(gi)
                band_normal.append(nrm)
                band_offset.append(offset)
                band_half.append(half)
                if rng.random() < 0.3:  # a band that ends inside the grain
                    band_side.append(float(rng.choice([-1.0, 1.0])))
                    band_end.append(float(tan @ seeds[gi]) + float(rng.uniform(-0.3, 0.3)) * grain_size)
                else:
                    band_side.append(0.0)
                    band_end.append(0.0)
                band_rot.append(twin_rot)

    island_centre, island_axes, island_angle = [], [], []
    if islands > 0:
        tree = cKDTree(seeds)
        for _ in range(rng.poisson(islands * g / 10.0)):
            i = rng.integers(g)
            _, nb = tree.query(seeds[i], k=4)
            j = nb[rng.integers(1, 4)]
            mid = 0.5 * (seeds[i] + seeds[j])
            d = seeds[j] - seeds[i]
            island_centre.append(mid)
            island_axes.append([rng.uniform(0.08, 0.22) * grain_size, rng.uniform(0.03, 0.07) * grain_size])
            island_angle.append(np.arctan2(d[1], d[0]) + np.pi / 2 + rng.normal(0, 0.2))
    island_rot = Rotation.random(len(island_centre), random_state=rng).as_matrix() if island_centre else np.empty((0, 3, 3))

    n_pits = rng.poisson(pits * (h + 2 * margin) * (w + 2 * margin) / 40_000.0) if pits > 0 else 0
    pit_centre = rng.uniform((-margin, -margin), (w + margin, h + margin), size=(n_pits, 2))
    pit_radius = np.clip(rng.lognormal(np.log(2.2), 0.4, n_pits), 1.0, 6.0)

    n_waves = 4
    ang = rng.uniform(0, 2 * np.pi, n_waves)
    wavelength = rng.uniform(150, 600, n_waves)
    relief = np.column_stack([np.cos(ang) * 2 * np.pi / wavelength, np.sin(ang) * 2 * np.pi / wavelength, rng.uniform(0, 2 * np.pi, n_waves), rng.normal(0, 0.5, n_waves)])

    orientations = np.concatenate(
        [grain_rot, np.asarray(band_rot).reshape(-1, 3, 3), island_rot.reshape(-1, 3, 3)]
    )
    return Microstructure(
        seeds=seeds,
        lift=lift,
        orientations=orientations,
        band_grain=np.asarray(band_grain, dtype=np.int64),
        band_normal=np.asarray(band_normal, dtype=np.float64).reshape(-1, 2),
        band_offset=np.asarray(band_offset, dtype=np.float64),
        band_half=np.asarray(band_half, dtype=np.float64),
        band_end=np.asarray(band_end, dtype=np.float64),
        band_end_side=np.asarray(band_side, dtype=np.float64),
        island_centre=np.asarray(island_centre, dtype=np.float64).reshape(-1, 2),
        island_axes=np.asarray(island_axes, dtype=np.float64).reshape(-1, 2),
        island_angle=np.asarray(island_angle, dtype=np.float64),
        pit_centre=pit_centre,
        pit_radius=pit_radius,
        relief_waves=relief,
        grain_size=float(grain_size),
        meta={"grains": g, "twin_bands": len(band_grain), "islands": len(island_centre), "pits": int(n_pits)},
    )
