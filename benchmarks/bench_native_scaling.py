"""CPU time of one native registration (pipeline defaults) per image size, with and without the sample cap.

One synthetic pair per size (``synth.make_pair``, the perfect CBS-like source, seed 11), after
a 256² warm-up registration (numba compilation), in this process: CPU seconds
(``time.process_time``), wall seconds and mean TRE for each ``max_samples`` value (the
default, ``MAX_SAMPLES``, and ``None`` = every pixel). CPU time is the figure to read on a shared
machine. Run with ``OPENBLAS_NUM_THREADS=1`` as the command line does.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=python python benchmarks/bench_native_scaling.py --sizes 512,1024,2048
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="512,1024,2048")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    from styleunwarp.quality import tre
    from styleunwarp.registration import PIPELINE_DEFAULTS, register
    from styleunwarp.registration.native import MAX_SAMPLES
    from styleunwarp.synth import make_pair

    warm = make_pair((256, 256), seed=1)
    register(warm.cbs, warm.cbs_like_lom, PIPELINE_DEFAULTS, backend="native")
    print(f"{'size':>6} {'max_samples':>12} {'CPU s':>7} {'wall s':>7} {'TRE px':>7}")
    for n in (int(x) for x in args.sizes.split(",")):
        p = make_pair((n, n), seed=args.seed)
        for ms in dict.fromkeys([MAX_SAMPLES, None]):
            label = f"{ms} (all)" if n <= MAX_SAMPLES else str(ms)
            t0 = time.process_time()
            r = register(p.cbs, p.cbs_like_lom, PIPELINE_DEFAULTS, backend="native", max_samples=ms)
            cpu = time.process_time() - t0
            err = tre(r.direct, p.truth, p.cbs.shape, p.cbs_like_lom.shape).mean
            print(f"{n:>6} {label:>12} {cpu:>7.2f} {r.seconds:>7.2f} {err:>7.3f}", flush=True)
            if n <= MAX_SAMPLES:
                break  # the cap does not apply: both runs are the same


if __name__ == "__main__":
    main()
