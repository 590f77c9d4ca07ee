"""Native engine vs bUnwarpJ over a batch of pairs through the command line, side by side.

Writes N synthetic 512x512 pairs with their ground truth in a CSV manifest, then runs

    styleunwarp batch MANIFEST --style none --backend bunwarpj --mode mono --final-deformation very_fine
    styleunwarp batch MANIFEST --style none --backend native   --mode mono --final-deformation very_fine [-o ...]

``--chain perfect`` (default): the LOM is the perfect CBS-like rendering (a same-modality
problem). ``--chain styled``: the LOM is the LOM-like rendering and the batch runs
``--style model`` (the shipped model). Real data sets (``../shared/data``; aligned pairs made
misaligned by known smooth deformations, ``style.heldout.make_cases``: one near-identity and
one misaligned case per pair, 512 px windows at most): ``--chain steel`` (real openECCI CBS
crops with LOM renderings, ``--style model``), ``--chain shale`` (SE -> BSE, ``--style none``),
``--chain clem`` (EM -> fluorescence tiles, ``--style none``). ``--defaults``: the project's default parameters
(no ``--mode``/``--final-deformation``), as the issue's acceptance test runs it.

and reports, from each run's results.csv, the median registration time per pair (the
registration itself, JVM / torch already running), the wall time of the whole command
(interpreter, JVM start, reading, writing, metrics, report), and the TRE.

    python benchmarks/bench_native_cli.py [--pairs 10] [--size 512] [--native-option max_samples=128 ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(cmd: list[str]) -> tuple[float, float, tuple[float, float]]:
    """Wall seconds, CPU seconds (user + system of the command) and the 1-minute load average before and after."""
    load0 = os.getloadavg()[0]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), (load0, os.getloadavg()[0])


def _summary(out: Path) -> dict:
    with open(out / "results.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["status"] == "done"]
    reg = [float(r["registration_s"]) for r in rows]
    tre = [float(r["tre_mean_px"]) for r in rows]
    tiers = {t: sum(r["tier"] == t for r in rows) for t in ("good", "decent", "bad", "poor")}
    stages = {"style": 0.0, "coarse": 0.0, "registration": 0.0, "apply": 0.0, "total": 0.0}
    for r in rows:
        sec = json.loads((out / r["pair"] / "metrics.json").read_text())["seconds"]
        for k in stages:
            stages[k] += sec.get(k, 0.0)
    return {"done": len(rows), "reg_median": statistics.median(reg), "tre_mean": statistics.fmean(tre), "tre_max": max(tre), "tiers": tiers, "stages": stages}


def real_cases(chain: str, n: int, seed: int, side: int) -> list:
    """Cases from the first ``n`` aligned pairs of a real data set (bench_representations' loaders,
    its test pairs first): each pair once near the identity and once misaligned (``style.heldout``)."""
    import importlib.util

    from styleunwarp.style.heldout import make_cases

    spec = importlib.util.spec_from_file_location("bench_representations", Path(__file__).with_name("bench_representations.py"))
    reps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reps)
    train, test = reps.load_dataset(chain)
    pairs = (test + train)[: max(1, (n + 1) // 2)]
    return make_cases(pairs, per_pair=2, seed=seed, max_side=side)[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--native-option", action="append", default=None, help="KEY=VALUE for the native backend (default: none, the backend's defaults)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--chain", choices=["perfect", "styled", "steel", "shale", "clem"], default="perfect")
    ap.add_argument("--defaults", action="store_true", help="project defaults instead of --mode mono --final-deformation very_fine")
    ap.add_argument("--seed", type=int, default=3000)
    ap.add_argument("--backends", default="bunwarpj,native", help="which runs (bunwarpj, native; the speed-up needs both)")
    args = ap.parse_args()
    native_opts = args.native_option or []

    from styleunwarp.io import write_tiff
    from styleunwarp.synth import make_pair
    from styleunwarp.transform import write_elastic

    work = Path(args.out or tempfile.mkdtemp(prefix="bench_native_cli_"))
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    lines = ["name,lom,cbs,truth"]
    if args.chain in ("perfect", "styled"):
        for i in range(args.pairs):
            p = make_pair((args.size, args.size), seed=args.seed + i)
            write_tiff(data / f"p{i}_LOM.tif", p.cbs_like_lom if args.chain == "perfect" else p.lom)
            write_tiff(data / f"p{i}_CBS.tif", p.cbs)
            write_elastic(p.truth, data / f"p{i}_truth.txt")
            lines.append(f"p{i},p{i}_LOM.tif,p{i}_CBS.tif,p{i}_truth.txt")
    else:
        for case in real_cases(args.chain, args.pairs, args.seed, args.size):
            name = case.name.replace("#", "_")
            write_tiff(data / f"{name}_LOM.tif", case.source if case.source.ndim == 2 else case.source.round().clip(0, 255).astype("uint8"))
            write_tiff(data / f"{name}_CBS.tif", case.target)
            write_elastic(case.truth, data / f"{name}_truth.txt")
            lines.append(f"{name},{name}_LOM.tif,{name}_CBS.tif,{name}_truth.txt")
    (data / "pairs.csv").write_text("\n".join(lines) + "\n")

    exe = str(Path(sys.executable).parent / "styleunwarp")
    style = ["--style", "model"] if args.chain in ("styled", "steel") else ["--style", "none"]
    params = [] if args.defaults else ["--mode", "mono", "--final-deformation", "very_fine"]
    what = "defaults" if args.defaults else "Mono, Very Fine"
    common = ["batch", str(data / "pairs.csv"), *style, *params, "--no-progress"]
    runs = {
        f"bUnwarpJ ({what})": [exe, *common, "--out", str(work / "bunwarpj"), "--backend", "bunwarpj"],
        f"native ({what}{', ' if native_opts else ''}{' '.join(native_opts)})": [exe, *common, "--out", str(work / "native"), "--backend", "native", *sum((["-o", o] for o in native_opts), [])],
    }
    wanted = [b.strip() for b in args.backends.split(",")]
    runs = {k: v for k, v in runs.items() if v[v.index("--backend") + 1] in wanted}
    results = {}
    for label, cmd in runs.items():
        wall, cpu, load = _run(cmd)
        print(" ".join(cmd[1:]), flush=True)
        summ = _summary(Path(cmd[cmd.index("--out") + 1]))
        print(f"  wall {wall:.1f} s, CPU {cpu:.1f} s, load average {load[0]:.1f} -> {load[1]:.1f}; per-stage sums (s): "
              + ", ".join(f"{k} {v:.1f}" for k, v in summ["stages"].items()), flush=True)
        results[label] = (wall, summ)
    print(f"{len(lines) - 1} {args.chain} pairs of at most {args.size}x{args.size} px through `styleunwarp batch`, one run, side by side:")
    print(f"{'backend':<58} {'reg. s/pair (median)':>21} {'wall s (whole batch)':>21} {'mean TRE':>9} {'max TRE':>8}  tiers")
    for label, (wall, s) in results.items():
        tiers = ", ".join(f"{k} {v}" for k, v in s["tiers"].items() if v)
        print(f"{label:<58} {s['reg_median']:>21.3f} {wall:>21.1f} {s['tre_mean']:>9.3f} {s['tre_max']:>8.3f}  {tiers} ({s['done']} done)")
    if len(results) < 2:
        return
    (b_wall, b), (n_wall, n) = results.values()
    print(f"speed-up of native over bUnwarpJ: {b['reg_median'] / n['reg_median']:.1f}x per registration, {b_wall / n_wall:.1f}x for the whole command")


if __name__ == "__main__":
    main()
