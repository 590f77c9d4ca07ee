"""Calibration of the native engine's regulariser scale against bUnwarpJ (held-out synthetic pairs).

bUnwarpJ's normalisation of its divergence/curl weights is not published, so the native engine
multiplies them by ``REGULARIZATION_SCALE``. This registers 512² synthetic pairs (seeds
5000+, not those of the other benchmarks) as the pipeline does with its defaults, for each
scale, in two chains: ``perfect`` (CBS vs the perfect CBS-like LOM, no style) and ``styled``
(the shipped model's edge maps, with the pipeline's 3 px coarse pass), and with bUnwarpJ.
TRE = mean ``|direct - truth|`` over all target pixels.

    PYTHONPATH=python python benchmarks/bench_native_regularization.py --scales 1,100,300,1000,3000 [--pairs 4] [--bunwarpj]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import styleunwarp.registration.native as native
from styleunwarp.registration import PIPELINE_DEFAULTS, register
from styleunwarp.style.infer import StyleTransfer
from styleunwarp.synth import make_pair
from styleunwarp.transform import displacement_error


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1,100,300,1000,3000")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--bunwarpj", action="store_true")
    a = ap.parse_args()
    st = StyleTransfer.load_default()
    sets: dict = {"perfect": [], "styled": []}
    for i in range(a.pairs):
        p = make_pair((512, 512), seed=5000 + i)
        sets["perfect"].append((p.cbs.astype(np.float64), p.cbs_like_lom.astype(np.float64), p.truth))
        sets["styled"].append((st.prepare_target(p.cbs), st(p.lom), p.truth))
    runs = [("native", float(f)) for f in a.scales.split(",")] + ([("bunwarpj", None)] if a.bunwarpj else [])
    for backend, scale in runs:
        if scale is not None:
            native.REGULARIZATION_SCALE = scale
        for name, pairs in sets.items():
            tre = []
            t0 = time.perf_counter()
            for tgt, mov, truth in pairs:
                r = register(tgt, mov, PIPELINE_DEFAULTS, backend=backend, coarse_sigma=3.0 if name == "styled" else 0.0)
                tre.append(float(displacement_error(r.direct, truth, tgt.shape).mean()))
            label = f"native x{scale:g}" if scale is not None else "bUnwarpJ"
            print(f"| {label} | {name} | " + " ".join(f"{x:.3f}" for x in tre) + f" | {np.mean(tre):.3f} | "
                  f"{(time.perf_counter() - t0) / len(pairs):.1f} |", flush=True)


if __name__ == "__main__":
    main()
