"""Native (PyTorch) registration vs the real bUnwarpJ, side by side on the same 512² pairs.

Pairs: a smooth random texture (source) warped by a known smooth ElasticTransform (the
truth, target → source) gives the target. TRE = mean ``displacement_error(direct, truth)``
over the target pixels at least ``--margin`` px from the border. bUnwarpJ runs in Mono at
Very Fine (``Param(2, 0, 0, 3, 0, 0, 0, 1, 10, 0.01)``), its fastest mode at this accuracy,
through ``computeTransformationBatch`` in one warm JVM (a warm-up registration first, not
timed); only the registration call is timed for both.

    PYTHONPATH=python python benchmarks/bench_native.py [--pairs 3] [--size 512] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from styleunwarp.registration import BUnwarpJParams, register
from styleunwarp.transform import ElasticTransform, displacement_error, identity_elastic, read_elastic, warp_image


def texture(shape, seed, scale):
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(shape)
    t = ndimage.gaussian_filter(n, 2.0 * scale, mode="wrap") + 0.5 * ndimage.gaussian_filter(n, 5.0 * scale, mode="wrap")
    return (t - t.min()) / np.ptp(t) * 255.0


def truth_transform(shape, seed, intervals=4, amplitude=6.0):
    rng = np.random.default_rng(seed)
    base = identity_elastic(intervals, shape)
    k = intervals + 3
    shift = rng.uniform(-4, 4, 2)
    return ElasticTransform(base.cx + shift[0] + amplitude * rng.standard_normal((k, k)),
                            base.cy + shift[1] + amplitude * rng.standard_normal((k, k)))


def make_pairs(n, size):
    shape = (size, size)
    out = []
    for i in range(n):
        src = texture(shape, 100 + i, size / 256)
        truth = truth_transform(shape, 200 + i)
        tgt = warp_image(src, truth, shape).astype(np.float64)
        out.append((tgt, src, truth))
    return out


def tre(t, truth, shape, margin):
    return float(displacement_error(t, truth, shape)[margin:-margin, margin:-margin].mean())


def run_bunwarpj(pairs, margin):
    from styleunwarp.imagej import jclass, start, to_imageplus

    start(require_bunwarpj=True)
    bunwarpj, param = jclass("bunwarpj.bUnwarpJ_"), jclass("bunwarpj.Param")
    args = (2, 0, 0, 3, 0.0, 0.0, 0.0, 1.0, 10.0, 0.01)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for k, (tgt, src, truth) in enumerate([pairs[0]] + list(pairs)):
            ti, si = to_imageplus(tgt.astype(np.float32), "target"), to_imageplus(src.astype(np.float32), "source")
            t0 = time.perf_counter()
            tr = bunwarpj.computeTransformationBatch(ti, si, None, None, param(*args))
            sec = time.perf_counter() - t0
            path = str(Path(d) / f"direct_{k}.txt")
            tr.saveDirectTransformation(path)
            if k == 0:
                continue  # JVM / JIT warm-up
            rows.append((sec, tre(read_elastic(path), truth, tgt.shape, margin)))
    return rows


def run_native(pairs, params, margin, **options):
    register(pairs[0][0], pairs[0][1], params, backend="native", **options)  # torch warm-up
    rows = []
    for tgt, src, truth in pairs:
        t0 = time.perf_counter()
        r = register(tgt, src, params, backend="native", **options)
        rows.append((time.perf_counter() - t0, tre(r.direct, truth, tgt.shape, margin), r))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--margin", type=int, default=16)
    ap.add_argument("--no-bunwarpj", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile one native registration")
    a = ap.parse_args()
    pairs = make_pairs(a.pairs, a.size)
    ident = np.mean([tre(identity_elastic(4, p[0].shape), p[2], p[0].shape, a.margin) for p in pairs])
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available; native runs 1 thread (default)")
    print(f"{a.pairs} pairs {a.size}x{a.size}; TRE of the identity {ident:.2f} px")
    results = {}
    if not a.no_bunwarpj:
        try:
            rows = run_bunwarpj(pairs, a.margin)
            results["bUnwarpJ Mono Very Fine"] = rows
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"bUnwarpJ not run: {exc}")
    mono3 = BUnwarpJParams(mode="mono", min_scale_deformation=0, max_scale_deformation=3)
    configs = {
        "native mono 0..3 (LM, default)": (mono3, {}),
        "native mono 0..3 LM tolerance=0.01": (mono3, {"tolerance": 0.01}),
        "native mono 0..3 L-BFGS": (mono3, {"optimizer": "lbfgs"}),
        "native mono 0..3 L-BFGS max_samples=128": (mono3, {"optimizer": "lbfgs", "max_samples": 128}),
        "native accurate 0..3 max_samples=128": (mono3.with_(mode="accurate"), {"max_samples": 128}),
    }
    for name, (params, opts) in configs.items():
        results[name] = [r[:2] for r in run_native(pairs, params, a.margin, **opts)]
    print(f"{'method':40s} {'s/pair':>8s} {'TRE px':>8s}   per pair (s, px)")
    base = results.get("bUnwarpJ Mono Very Fine")
    for name, rows in results.items():
        sec = np.mean([r[0] for r in rows])
        err = np.mean([r[1] for r in rows])
        speed = f"  {np.mean([b[0] for b in base]) / sec:5.2f}x vs bUnwarpJ" if base and not name.startswith("bUnwarpJ") else ""
        print(f"{name:40s} {sec:8.3f} {err:8.3f}   " + " ".join(f"({s:.2f}, {e:.3f})" for s, e in rows) + speed)
    if a.profile:
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(5):
            register(pairs[0][0], pairs[0][1], mono3, backend="native")
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(15)
        print(s.getvalue())


if __name__ == "__main__":
    main()
