"""Where the elastic step's error lies, and two ways tried to cut it in regions without structure.

For each pair of each test set (``bench_styled_defaults.py`` sets: ``real:SEED[:rgb]``,
``variety:SEED``, ``synthetic:SEED``) the pipeline's representation (shipped model) and coarse
start are computed, then one elastic registration (``--backend``, default native), and the TRE
against the truth is split by the local structure of the source's representation (its Gaussian
blur, sigma 16 px: lowest and highest third of the pixels). Two variants are scored on the same
pairs:

* ``refit``: the elastic displacement (beyond the coarse start) refitted on a B-spline grid of
  ``--intervals`` intervals (default 8, finer than the elastic step's Fine grid of 4) by weighted least squares with weight 1 where the structure is in the top third and 1e-4
  elsewhere, plus a bending penalty (``--lam``) on the coefficients, so that structure-poor
  regions follow a smooth interpolation of the structured ones instead of the image noise;
* ``mask``: the elastic step with a target mask that keeps the pixels of the upper half of the
  structure (the image term ignores the rest; the regularisation carries the map there).

    python benchmarks/bench_structure_poor.py [--sets real:1000,real:2000:rgb,variety:900,synthetic:1000]
        [--backend native] [--lam 3] [--intervals 8] [--out /tmp/structure-poor]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_styled_defaults import make_set, tier  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def bending_penalty(n: int) -> np.ndarray:
    """Quadratic form of the discrete bending energy of an ``(n+3) x (n+3)`` coefficient grid (zero on affine grids)."""
    m = n + 3
    eye = np.eye(m)
    d2, d1 = np.diff(eye, 2, axis=0), np.diff(eye, 1, axis=0)
    dy, dx, dxy = np.kron(d2, eye), np.kron(eye, d2), np.kron(d1, d1)
    return dy.T @ dy + dx.T @ dx + 2 * dxy.T @ dxy


def weighted_refit(residual: np.ndarray, weight: np.ndarray, intervals: int, lam: float, step: int = 4) -> np.ndarray:
    """Dense ``(2, H, W)`` spline closest to ``residual`` in the ``weight``-ed least-squares sense, with bending ``lam``."""
    from styleunwarp.transform.bspline import basis_matrix

    h, w = residual.shape[1:]
    ys, xs = np.arange(0, h, step), np.arange(0, w, step)
    b = np.kron(basis_matrix(ys.astype(float), h, intervals, "y"), basis_matrix(xs.astype(float), w, intervals, "x"))
    ww = weight[np.ix_(ys, xs)].ravel()
    ww = ww / ww.mean()
    a = b.T @ (b * ww[:, None]) + lam * bending_penalty(intervals)
    by = basis_matrix(np.arange(h, dtype=float), h, intervals, "y")
    bx = basis_matrix(np.arange(w, dtype=float), w, intervals, "x")
    out = []
    for c in range(2):
        coeffs = np.linalg.solve(a, b.T @ (ww * residual[c][np.ix_(ys, xs)].ravel())).reshape(intervals + 3, intervals + 3)
        out.append(by @ coeffs @ bx.T)
    return np.stack(out)


def run_pair(test: Path, name: str, backend: str, lam: float, intervals: int) -> dict:
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.pipeline.coarse import align as coarse_align
    from styleunwarp.pipeline.coarse import compose_direct, warp_source
    from styleunwarp.pipeline.pair import style_images
    from styleunwarp.registration import PIPELINE_DEFAULTS, register
    from styleunwarp.transform import identity_elastic, read_transform, to_dense
    from styleunwarp.transform.warp import inside_source

    lom, cbs = read_image(test / "lom" / f"{name}.tif"), read_image(test / "cbs" / f"{name}.tif")
    styled, target, _ = style_images(lom.data, to_gray(cbs.data), None, "model")
    a = coarse_align("auto", target, styled, scale=1.0 if (lom.pixel_size and cbs.pixel_size) else None).chosen.matrix
    moving = warp_source(styled, a, target.shape)
    truth = to_dense(read_transform(test / "truth" / f"{name}_direct_transf.txt"), target.shape)
    inside = inside_source(truth, to_gray(lom.data).shape)
    start = to_dense(compose_direct(identity_elastic(4, target.shape), a), target.shape)
    structure = ndimage.gaussian_filter(moving.astype(np.float64), 16.0)
    low = inside & (structure <= np.percentile(structure[inside], 100 / 3))
    high = inside & (structure >= np.percentile(structure[inside], 200 / 3))

    def errors(dense: np.ndarray) -> np.ndarray:
        return np.hypot(*(dense - truth))

    reg = register(target, moving, PIPELINE_DEFAULTS, backend=backend, coarse_sigma=0.0)
    elastic = to_dense(compose_direct(reg.direct, a), target.shape)
    weight = np.where(structure >= np.percentile(structure, 200 / 3), 1.0, 1e-4)
    refit = start + weighted_refit(elastic - start, weight, intervals, lam)
    masked = register(target, moving, PIPELINE_DEFAULTS, backend=backend, coarse_sigma=0.0, target_mask=structure >= np.median(structure))
    row = {"pair": name}
    for key, dense in (("start", start), ("elastic", elastic), ("refit", refit), ("mask", to_dense(compose_direct(masked.direct, a), target.shape))):
        e = errors(dense)
        row[key], row[f"{key}_p95"] = float(e[inside].mean()), float(np.percentile(e[inside], 95))
    e = errors(elastic)
    row["elastic_low"], row["elastic_high"] = float(e[low].mean()), float(e[high].mean())
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="real:1000,real:2000:rgb,variety:900,synthetic:1000")
    ap.add_argument("--backend", default="native")
    ap.add_argument("--lam", type=float, default=3.0)
    ap.add_argument("--intervals", type=int, default=8)
    ap.add_argument("--real", default=str(ROOT.parent / "shared" / "data" / "openecci-cbs"))
    ap.add_argument("--out", default="/tmp/structure-poor")
    args = ap.parse_args()
    table = []
    for spec in args.sets.split(","):
        test = make_set(spec, Path(args.out), Path(args.real), 512)
        rows = []
        for name in sorted(p.stem for p in (test / "lom").glob("*.tif")):
            r = run_pair(test, name, args.backend, args.lam, args.intervals)
            rows.append(r)
            print(f"{spec} {name}: start {r['start']:.2f} elastic {r['elastic']:.2f} (structure-poor third {r['elastic_low']:.2f}, "
                  f"rich third {r['elastic_high']:.2f}) refit {r['refit']:.2f} mask {r['mask']:.2f}", flush=True)

        def cell(key: str) -> str:
            m = np.array([r[key] for r in rows])
            good = sum(tier(r[key], r[f"{key}_p95"]) == "good" for r in rows)
            return f"{m.mean():.3f} ({good} good)"

        table.append(f"| {spec} | {cell('start')} | {cell('elastic')} | {np.mean([r['elastic_low'] for r in rows]):.2f} / "
                     f"{np.mean([r['elastic_high'] for r in rows]):.2f} | {cell('refit')} | {cell('mask')} |")
    print(f"\ncommand: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print("| set | start | elastic | elastic: structure-poor / rich third | refit | mask |\n|---|---|---|---|---|---|")
    print("\n".join(table))


if __name__ == "__main__":
    main()
