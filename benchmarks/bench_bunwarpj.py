"""Overhead of styleunwarp's bUnwarpJ bridge over the bare plugin, in one run.

Measures on the same 512x512 synthetic pair (perfect CBS-like source, so bUnwarpJ
converges as it would on a styled LOM):
  * JVM start with ImageJ + bUnwarpJ (fresh interpreter, subprocess);
  * numpy -> ImagePlus -> numpy conversion of a 512x512 float image;
  * the bare plugin: IJ.openImage of the two files, computeTransformationBatch,
    saveDirect/InverseTransformation, elasticTransformImageMacro on the LOM (all in Java);
  * styleunwarp: register_pair(style="none") on the same files (Python API, warm JVM),
    which adds reading, normalising, metrics, overlay and atomic writes;
  * `styleunwarp register` as a command (cold: interpreter + JVM start included).
Runs alternate bare/styleunwarp to share machine noise; medians are reported.

    python benchmarks/bench_bunwarpj.py [--repeats 5] [--mode accurate] [--final fine]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _bare(jclass, target_path: Path, source_path: Path, lom_path: Path, out: Path, params) -> float:
    ij = jclass("ij.IJ")
    plugin = jclass("bunwarpj.bUnwarpJ_")
    t0 = time.perf_counter()
    target = ij.openImage(str(target_path))
    source = ij.openImage(str(source_path))
    transf = plugin.computeTransformationBatch(target, source, None, None, jclass("bunwarpj.Param")(*params.as_java_args()))
    transf.saveDirectTransformation(str(out / "direct.txt"))
    if params.mode != "mono":
        transf.saveInverseTransformation(str(out / "inverse.txt"))
    plugin.elasticTransformImageMacro(str(target_path), str(lom_path), str(out / "direct.txt"), str(out / "registered.tif"))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mode", default="accurate")
    ap.add_argument("--final", default="fine")
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()

    from styleunwarp.imagej import from_imageplus, jclass, start, to_imageplus
    from styleunwarp.io import write_tiff
    from styleunwarp.pipeline import register_pair
    from styleunwarp.registration import BUnwarpJParams
    from styleunwarp.synth import make_pair

    params = BUnwarpJParams(mode=args.mode, max_scale_deformation=args.final)
    work = Path(tempfile.mkdtemp(prefix="bench_bunwarpj_"))
    pair = make_pair((args.size, args.size), seed=7)
    write_tiff(work / "cbs.tif", pair.cbs)
    write_tiff(work / "lom.tif", pair.cbs_like_lom)

    code = "import time; t=time.perf_counter(); from styleunwarp.imagej import start; start(); print(time.perf_counter()-t)"
    jvm_cold = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1])

    start()
    img = pair.cbs.astype(np.float32)
    conv = []
    for _ in range(20):
        t0 = time.perf_counter()
        back = from_imageplus(to_imageplus(img))
        conv.append(time.perf_counter() - t0)
    assert np.array_equal(back, img)

    # warm-up: the first registration in a JVM pays for JIT compilation
    _bare(jclass, work / "cbs.tif", work / "lom.tif", work / "lom.tif", work, params)
    bare, ours = [], []
    for i in range(args.repeats):
        bare.append(_bare(jclass, work / "cbs.tif", work / "lom.tif", work / "lom.tif", work, params))
        t0 = time.perf_counter()
        register_pair(work / "lom.tif", work / "cbs.tif", work / f"pair{i}", style="none", params=params)
        ours.append(time.perf_counter() - t0)

    exe = Path(sys.executable).parent / "styleunwarp"
    t0 = time.perf_counter()
    subprocess.run([str(exe), "register", str(work / "lom.tif"), str(work / "cbs.tif"), "--out", str(work / "cli"), "--style", "none", "--mode", args.mode, "--final-deformation", args.final], check=True, capture_output=True)
    cli_cold = time.perf_counter() - t0

    b, o = statistics.median(bare), statistics.median(ours)
    print(f"bUnwarpJ bridge benchmark: {args.size}x{args.size} pair, mode {args.mode}, final {args.final}, {args.repeats} repeats (medians)")
    print(f"  JVM start (ImageJ + bUnwarpJ), fresh interpreter : {jvm_cold:7.3f} s")
    print(f"  numpy -> ImagePlus -> numpy, 512x512 float       : {1000 * statistics.median(conv):7.3f} ms")
    print(f"  bare plugin (open, register, save, apply)         : {b:7.3f} s   runs {', '.join(f'{x:.2f}' for x in bare)}")
    print(f"  styleunwarp register_pair (warm JVM)              : {o:7.3f} s   runs {', '.join(f'{x:.2f}' for x in ours)}")
    print(f"  overhead of styleunwarp over the bare plugin      : {o - b:+7.3f} s = {100 * (o - b) / b:+.1f} %")
    print(f"  `styleunwarp register` command, cold start        : {cli_cold:7.3f} s")


if __name__ == "__main__":
    main()
