"""The floor of the ``edges`` representation: how far the elastic step drifts from a pair that is already aligned.

For each real CBS image (``--real``, default ../shared/data/openecci-cbs) an aligned pair is
made with :func:`styleunwarp.synth.fromcbs.pair_from_cbs` (``deform=False``: a 512 px crop and
its LOM rendering, no deformation), and three sources are registered from the identity to the
CBS boundary map (:func:`styleunwarp.style.data.target_representation`, ``edges``):

* ``boundaries``: the very boundaries the LOM rendering was drawn from (the CBS's Canny edges,
  :func:`styleunwarp.synth.fromcbs.cbs_edges`), blurred to the map's width: a perfect boundary
  detector on the LOM side;
* ``model``: the shipped model's rendering of the aligned LOM (what ``register`` compares);
* ``cbs-like``: the CBS itself with fresh scan noise, against the CBS (the study's upper bound).

The truth is the identity, so the mean distance the result moves pixels is its error: the error
the representation alone leaves, whatever the start. ``--denoise`` lists target denoising
strengths (:data:`styleunwarp.style.data.EDGE_DENOISE`).

    python benchmarks/bench_edges_floor.py [--backend native] [--denoise 0,1.5] [--seed 3000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]


def drift(direct, shape: tuple[int, int]) -> float:
    """Mean distance (px) by which ``direct`` moves the pixels of a ``shape`` grid."""
    from styleunwarp.transform import to_dense

    d = to_dense(direct, shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return float(np.hypot(d[0] - xx, d[1] - yy).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", default=str(ROOT.parent / "shared" / "data" / "openecci-cbs"))
    ap.add_argument("--backend", default="native")
    ap.add_argument("--denoise", default="0")
    ap.add_argument("--seed", type=int, default=3000)
    ap.add_argument("--rgb", action="store_true", help="colour LOM renderings")
    args = ap.parse_args()

    from styleunwarp.io import normalize
    from styleunwarp.registration import PIPELINE_DEFAULTS, register
    from styleunwarp.style.data import EDGE_SIGMA, target_representation
    from styleunwarp.style.infer import StyleTransfer
    from styleunwarp.synth.dataset import cbs_images
    from styleunwarp.synth.fromcbs import cbs_edges, pair_from_cbs, read_cbs

    files = cbs_images(args.real)
    if not files:
        raise SystemExit(f"no CBS images in {args.real}")
    model = StyleTransfer.load_default()
    strengths = [float(s) for s in args.denoise.split(",")]
    results: dict[str, list[float]] = {}
    for i, path in enumerate(files):
        full = read_cbs(path)
        pair = pair_from_cbs(full, seed=args.seed + i, deform=False, rgb=args.rgb, name=path.stem)
        x0, y0 = pair.meta["crop_xy"]
        h, w = pair.cbs.shape
        boundaries = cbs_edges(full)[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
        sources = {
            "boundaries": normalize(ndimage.gaussian_filter(boundaries, EDGE_SIGMA)),
            "model": normalize(np.asarray(model(pair.lom), np.float32)),
        }
        line = f"{path.stem:<16}"
        for s in strengths:
            target = normalize(target_representation(pair.cbs, "edges", denoise=s))
            for name, source in sources.items():
                t0 = time.perf_counter()
                reg = register(target, source, PIPELINE_DEFAULTS, backend=args.backend, coarse_sigma=0.0)
                e = drift(reg.direct, target.shape)
                results.setdefault(f"{name}, denoise {s:g}", []).append(e)
                line += f"  {name}/{s:g} {e:.2f} ({time.perf_counter() - t0:.0f} s)"
        cbs_like = normalize(pair.cbs + np.random.default_rng(args.seed + i).normal(0, 4.0, pair.cbs.shape).astype(np.float32))
        reg = register(normalize(pair.cbs), cbs_like, PIPELINE_DEFAULTS, backend=args.backend, coarse_sigma=0.0)
        results.setdefault("cbs-like vs CBS", []).append(drift(reg.direct, pair.cbs.shape))
        print(line + f"  cbs-like {results['cbs-like vs CBS'][-1]:.2f}", flush=True)
    print(f"\ncommand: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print("| source (aligned) | mean drift (px) | median | max | pairs |\n| --- | --- | --- | --- | --- |")
    for name, v in results.items():
        a = np.array(v)
        print(f"| {name} | {a.mean():.3f} | {np.median(a):.3f} | {a.max():.2f} | {a.size} |")


if __name__ == "__main__":
    main()
