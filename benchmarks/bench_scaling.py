"""How the whole chain grows with image size: time and peak memory per stage, both backends.

For each size (square synthetic LOM/CBS pair, ``styleunwarp.synth.make_pair``) and backend,
one fresh process runs the chain's stages as ``styleunwarp register`` does with defaults:

* ``style``: reading both files, pixel-size matching, style model (shipped; loaded and
  warmed up on a small pair first) and target representation (:func:`styleunwarp.pipeline.pair.prepare_pair`);
* ``registration``: :func:`styleunwarp.registration.register` with ``PIPELINE_DEFAULTS`` and
  the coarse pass the pipeline uses for edge-map models (JVM start and bUnwarpJ's JIT
  warm-up excluded: one small registration runs first);
* ``apply``: the original LOM warped by the direct transform (:func:`styleunwarp.transform.warp_image`).

``*_cpu_s``: CPU time of the process (all its threads, the JVM's included): on a loaded
machine the stable measure. Peak memory per stage is the process's resident high-water mark (``VmHWM``) reset before the
stage (``/proc/self/clear_refs``), so it includes the JVM and torch.

    PYTHONPATH=python python benchmarks/bench_scaling.py --sizes 512,1024,2048 --backends native,bunwarpj [--timeout 900]

A (size, backend) that exceeds ``--timeout`` seconds is reported as such (that is where a
backend's cost explodes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _hwm_reset() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one(size: int, backend: str, work: Path) -> dict:
    import numpy as np

    from styleunwarp.io import to_gray, write_tiff
    from styleunwarp.pipeline.chain import default_coarse_sigma
    from styleunwarp.pipeline.pair import prepare_pair
    from styleunwarp.registration import PIPELINE_DEFAULTS, register
    from styleunwarp.synth import make_pair
    from styleunwarp.transform import displacement_error, warp_image

    p = make_pair((size, size), seed=11000 + size)
    write_tiff(work / "lom.tif", p.lom)
    write_tiff(work / "cbs.tif", p.cbs)
    # warm-up (JVM start, JIT, numba compilation, torch kernels): not part of the figures
    w = make_pair((128, 128), seed=1)
    write_tiff(work / "w_lom.tif", w.lom)
    write_tiff(work / "w_cbs.tif", w.cbs)
    wp = prepare_pair(work / "w_lom.tif", work / "w_cbs.tif", work / "w_out", style="model")
    register(wp.target, wp.styled, PIPELINE_DEFAULTS, backend=backend)
    out: dict = {"size": size, "backend": backend, "pixels": size * size}
    _hwm_reset()
    t0, c0 = time.perf_counter(), time.process_time()
    prep = prepare_pair(work / "lom.tif", work / "cbs.tif", work / "out", style="model")
    out["style_s"], out["style_cpu_s"], out["style_peak_mb"] = time.perf_counter() - t0, time.process_time() - c0, _hwm_mb()
    sigma = default_coarse_sigma(prep.style_info.get("style_target"))
    _hwm_reset()
    t0, c0 = time.perf_counter(), time.process_time()
    reg = register(prep.target, prep.styled, PIPELINE_DEFAULTS, backend=backend, coarse_sigma=sigma)
    out["registration_s"], out["registration_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    out["registration_peak_mb"] = _hwm_mb()
    _hwm_reset()
    t0 = time.perf_counter()
    warp_image(to_gray(prep.lom.data).astype(np.float32), reg.direct, prep.target.shape)
    out["apply_s"], out["apply_peak_mb"] = time.perf_counter() - t0, _hwm_mb()
    out["tre_px"] = float(displacement_error(reg.direct, p.truth, prep.target.shape).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="512,1024,2048")
    ap.add_argument("--backends", default="native,bunwarpj")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--one", nargs=2, metavar=("SIZE", "BACKEND"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        with tempfile.TemporaryDirectory() as d:
            print("RESULT " + json.dumps(one(int(a.one[0]), a.one[1], Path(d))), flush=True)
        return
    rows = []
    for size in map(int, a.sizes.split(",")):
        for backend in a.backends.split(","):
            t0 = time.perf_counter()
            try:
                cp = subprocess.run([sys.executable, __file__, "--one", str(size), backend], capture_output=True,
                                    text=True, timeout=a.timeout)
                res = [json.loads(x[7:]) for x in cp.stdout.splitlines() if x.startswith("RESULT ")]
                row = res[0] if res else {"size": size, "backend": backend, "error": cp.stderr.strip().splitlines()[-1:]}
            except subprocess.TimeoutExpired:
                row = {"size": size, "backend": backend, "error": f"over {a.timeout:.0f} s"}
            row["process_s"] = time.perf_counter() - t0
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| size | backend | style s | style peak MB | registration s | registration CPU s | registration peak MB | apply s | apply peak MB | TRE px |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        if "error" in r:
            print(f"| {r['size']}² | {r['backend']} | {r['error']} | | | | | | | |")
            continue
        print(f"| {r['size']}² | {r['backend']} | {r['style_s']:.2f} | {r['style_peak_mb']:.0f} | {r['registration_s']:.2f} | "
              f"{r['registration_cpu_s']:.2f} | "
              f"{r['registration_peak_mb']:.0f} | {r['apply_s']:.2f} | {r['apply_peak_mb']:.0f} | {r['tre_px']:.2f} |")


if __name__ == "__main__":
    main()
