"""Training-free multimodal similarities on real modality pairs with known deformations.

For each aligned real pair (A, B) of a data set a smooth random deformation ``T`` (target →
source, :func:`styleunwarp.synth.deform.random_deformation`) makes the target
``A(T(x) + m)`` on a grid ``m`` px smaller on each side (no empty border) and the source is B
cropped by ``m`` on each side; the openecci CBS images give (CBS crop, deformed LOM rendering) pairs from
:func:`styleunwarp.synth.pair_from_cbs` instead. Each method registers every pair with the
project's default parameters; TRE = mean ``|direct - T|`` over the target pixels ≥ 16 px from
the border.

    PYTHONPATH=python python benchmarks/bench_native_similarity.py --data shale --pairs 6 --deform near,moderate
    PYTHONPATH=python python benchmarks/bench_native_similarity.py --data clem --pairs 4 --downsample 2
    PYTHONPATH=python python benchmarks/bench_native_similarity.py --data cbs --pairs 4

Methods (``--methods``): ``mind`` (native, ``similarity="mind"``, LM), ``nmi`` (native
NMI, L-BFGS), ``ssd`` (native SSD, control), ``elastix`` (itk-elastix, Mattes MI),
``identity`` (no registration).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from styleunwarp.registration import PIPELINE_DEFAULTS, register
from styleunwarp.transform import ElasticTransform, displacement_error, identity_elastic, warp_image

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DEFORMS = {  # rotation_deg, shift_px, elastic_px ranges
    "near": ((0.0, 0.3), (0.0, 1.0), (0.3, 0.8)),
    "moderate": ((1.0, 2.0), (2.0, 5.0), (1.0, 2.5)),
}


def _gray(path: Path, downsample: int) -> np.ndarray:
    from styleunwarp.io import read_image, to_gray

    a = to_gray(read_image(path).data).astype(np.float64)
    if downsample > 1:
        a = ndimage.zoom(ndimage.gaussian_filter(a, 0.5 * downsample), 1.0 / downsample, order=1)
    return a


def real_pairs(name: str, n: int, downsample: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Aligned (A = fixed modality, B = moving modality) pairs of a data set."""
    if name == "shale":
        root = DATA / "petrography-bse-se"
        files = sorted((root / "bse").glob("*.png"))[:n]
        return [(f.stem, _gray(f, downsample), _gray(root / "se" / f.name, downsample)) for f in files]
    if name == "clem":
        root = DATA / "deepclem-em-fm"
        files = sorted((root / "em").glob("*.png"))[:n]
        return [(f.stem, _gray(f, downsample), _gray(root / "fm" / f.name, downsample)) for f in files]
    raise ValueError(name)


def deformed(a: np.ndarray, b: np.ndarray, kind: str, seed: int, margin: int):
    from styleunwarp.synth.deform import random_deformation

    h, w = a.shape
    shape = (h - 2 * margin, w - 2 * margin)
    rot, shift, elastic = DEFORMS[kind]
    d = random_deformation(np.random.default_rng(seed), shape, rotation_deg=rot, shift_px=shift, elastic_px=elastic)
    shifted = ElasticTransform(d.truth.cx + margin, d.truth.cy + margin)
    target = warp_image(a.astype(np.float32), shifted, shape).astype(np.float64)
    # the source is B cropped the same way: target(x) = A(T(x) + m) ≈ B(T(x) + m) = source(T(x))
    return target, b[margin:h - margin, margin:w - margin], d.truth


def cbs_pairs(n: int, kind: str, size: int):
    from styleunwarp.synth import pair_from_cbs
    from styleunwarp.synth.fromcbs import read_cbs

    files = sorted((DATA / "openecci-cbs").glob("*.tif"))[:n]
    rot, shift, elastic = DEFORMS[kind]
    out = []
    for i, f in enumerate(files):
        p = pair_from_cbs(read_cbs(f), seed=7000 + i, shape=(size, size), rotation_deg=rot, shift_px=shift, elastic_px=elastic)
        out.append((f.stem, p.cbs.astype(np.float64), p.lom.astype(np.float64) if p.lom.ndim == 2 else p.lom.mean(-1), p.truth))
    return out


def run(method: str, target: np.ndarray, source: np.ndarray):
    p = PIPELINE_DEFAULTS
    if method == "identity":
        return identity_elastic(4, target.shape), 0.0
    t0 = time.perf_counter()
    if method == "elastix":
        r = register(target, source, p, backend="elastix")
    else:
        r = register(target, source, p, backend="native", similarity=method)
    return r.direct, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["shale", "clem", "cbs"], required=True)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--deform", default="near,moderate")
    ap.add_argument("--methods", default="identity,mind,nmi,ssd,elastix")
    ap.add_argument("--downsample", type=int, default=1)
    ap.add_argument("--margin", type=int, default=24, help="target grid this much smaller on each side (shale/clem)")
    ap.add_argument("--size", type=int, default=512, help="crop size of the openecci pairs")
    a = ap.parse_args()
    methods = a.methods.split(",")
    print(f"data {a.data}, {a.pairs} pairs, methods {methods}, PIPELINE_DEFAULTS, downsample {a.downsample}")
    for kind in a.deform.split(","):
        if a.data == "cbs":
            cases = cbs_pairs(a.pairs, kind, a.size)
        else:
            cases = [(name, *deformed(x, y, kind, 9000 + i, a.margin)) for i, (name, x, y) in enumerate(real_pairs(a.data, a.pairs, a.downsample))]
        rows = {m: [] for m in methods}
        for name, target, source, truth in cases:
            line = []
            for m in methods:
                try:
                    direct, sec = run(m, target, source)
                    err = displacement_error(direct, truth, target.shape)[16:-16, 16:-16]
                    tre = float(np.nanmean(err)) if np.isfinite(err).any() else float("inf")
                except Exception as exc:  # noqa: BLE001 - a failed method is a result
                    tre, sec = float("inf"), 0.0
                    print(f"  {name} {m}: {exc}")
                rows[m].append((tre, sec))
                line.append(f"{m} {tre:.2f}")
            print(f"  {kind} {name} {target.shape}: " + ", ".join(line), flush=True)
        print(f"\n{a.data} ({kind} deformations, {len(cases)} pairs): method | mean TRE | median TRE | ≤1 px | ≤5 px | s/pair")
        for m, r in rows.items():
            tres = [t for t, _ in r]
            fin = [t for t in tres if np.isfinite(t)]
            print(f"| {m} | {statistics.fmean(fin) if fin else float('inf'):.2f} | {statistics.median(tres):.2f} | "
                  f"{sum(t <= 1 for t in tres)}/{len(tres)} | {sum(t <= 5 for t in tres)}/{len(tres)} | "
                  f"{statistics.fmean([s for _, s in r]):.1f} |", flush=True)


if __name__ == "__main__":
    main()
