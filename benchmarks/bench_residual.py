"""The residual-misalignment estimate of the structure evidence against the truth, per data set.

Each real aligned pair of ``bench_representations.load_dataset`` (shale BSE/SE, CLEM EM/FM,
steel: LOM renderings of the real CBS images) is moved by known smooth deformations (a shift
of 0.8 x MAG px in a random direction, a rotation under 0.3 degrees, an elastic part of RMS
0.4 x MAG px) for MAG in 0, 1, 2, 3.5, 5, 6.5, 10; the deformed source plays the part of a
registration result that is that far off. For each case: the true mean error, the structure
evidence (:func:`styleunwarp.structure.mind_verdict`: z, the residual estimate of
:func:`styleunwarp.residual.residual_shift`, ``aligned``) and the seconds it took.

    PYTHONPATH=python python benchmarks/bench_residual.py [--sets shale,clem,steel] [--out /tmp/bench_residual]
    PYTHONPATH=python python benchmarks/bench_residual.py --registered --sets shale --pairs 12

``--registered``: real registration results instead: the held-out cases of ``style.heldout``
(one near-identity and one misaligned case per pair, 256 px crops, seed 6) registered by the
training-free chains on the raw images (elastix MI, native NMI) as ``register`` runs them;
the evidence is that of the registered source against the target. ``--split tune`` takes the
other split (the data sets' test pairs, seed 5).

Prints per data set and error band: cases, how many got an estimate, the median |estimate -
truth|, and how many are called aligned by z alone and by z with the residual bar.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks"))

MAGNITUDES = (0.0, 1.0, 2.0, 3.5, 5.0, 6.5, 10.0)
BANDS = ((0.0, 2.0, "<= 2 px"), (2.0, 3.5, "2-3.5 px"), (3.5, 5.0, "3.5-5 px"), (5.0, 1e9, "> 5 px"))


def cases(name: str):
    from bench_representations import load_dataset
    from styleunwarp.io import to_gray
    from styleunwarp.quality import tre
    from styleunwarp.style.heldout import deform_source
    from styleunwarp.synth.deform import random_deformation
    from styleunwarp.transform import identity_elastic

    train, test = load_dataset(name)
    for i, (pair, src, tgt) in enumerate(train + test):
        src, tgt = to_gray(src), np.asarray(tgt, np.float32)
        for mag in MAGNITUDES:
            if mag == 0:
                yield pair, mag, 0.0, src, tgt
                continue
            rng = np.random.default_rng([i, int(mag * 10), 7])
            d = random_deformation(rng, tgt.shape, rotation_deg=(0.0, 0.3), shift_px=(0.8 * mag, 0.8 * mag + 1e-6),
                                   elastic_px=(0.4 * mag, 0.4 * mag + 1e-6))
            err = tre(identity_elastic(4, tgt.shape), d.truth, tgt.shape, src.shape).mean
            yield pair, mag, err, deform_source(src, d), tgt


def registered_cases(name: str, pairs: int, split: str = "check"):
    """(case name, chain, true mean error, registered source, target) of real registrations."""
    from bench_raw_checks import CHAINS, cases_for
    from styleunwarp.pipeline.chain import register_representations
    from styleunwarp.quality import tre
    from styleunwarp.registration import PIPELINE_DEFAULTS
    from styleunwarp.style.representations.raw import Raw
    from styleunwarp.transform import warp_image

    for case in cases_for(name, split, pairs):
        src, tgt = Raw().represent(case.source, case.target)
        for backend, options in CHAINS:
            out = register_representations(tgt, src, PIPELINE_DEFAULTS, backend=backend, backend_options=options, check="structure")
            err = tre(out.direct, case.truth, tgt.shape, src.shape).mean
            yield f"{case.name} {backend}", backend, err, warp_image(case.source, out.direct, tgt.shape), case.target


def _peaks(moved: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> list[list[float]]:
    """Every tile's (offset in image px, prominence), for rules other than the shipped one (as mind_verdict measures them)."""
    from styleunwarp.io import to_gray
    from styleunwarp.residual import tile_peaks
    from styleunwarp.structure import _inner, analysis_factor, descriptors

    a = to_gray(moved)
    f = analysis_factor(a.shape)
    m = _inner(np.ones(a.shape[:2], bool) if mask is None else mask, f)
    return [[round(o * f, 3), round(p, 3)] for o, p in tile_peaks(descriptors(a, f), descriptors(target, f), m)]


def summary(rows: list[dict]) -> str:
    from styleunwarp.structure import Z_MIN

    lines = [f"{'set':<7} {'true error':<10} {'cases':>5} {'estimated':>9} {'median |est - true|':>20} {'aligned by z':>12} {'aligned (z + residual)':>23}"]
    for s in dict.fromkeys(r["set"] for r in rows):
        for lo, hi, label in BANDS:
            sel = [r for r in rows if r["set"] == s and lo <= float(r["error"]) < hi] if lo > 0 else \
                [r for r in rows if r["set"] == s and float(r["error"]) <= hi]
            if not sel:
                continue
            est = [r for r in sel if r["residual_px"] not in (None, "", "None")]
            dev = np.median([abs(float(r["residual_px"]) - float(r["error"])) for r in est]) if est else float("nan")
            by_z = sum(float(r["z"]) >= Z_MIN for r in sel)
            both = sum(r["aligned"] in (True, "True") for r in sel)
            lines.append(f"{s:<7} {label:<10} {len(sel):>5} {len(est):>9} {dev:>20.2f} {by_z:>12} {both:>23}")
    return "\n".join(lines)


def main() -> None:
    from styleunwarp.io import to_gray
    from styleunwarp.structure import mind_verdict

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="shale,clem,steel")
    ap.add_argument("--out", default="/tmp/bench_residual")
    ap.add_argument("--registered", action="store_true", help="real registration results (elastix MI, native NMI) instead of deformed pairs")
    ap.add_argument("--pairs", type=int, default=12, help="with --registered: pairs per set")
    ap.add_argument("--split", default="check", choices=("check", "tune"),
                    help="with --registered: bench_raw_checks.py's split (check: training pairs, seed 6; tune: test pairs, seed 5)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.sets.split(","):
        for pair, mag, err, moved, tgt in (registered_cases(name, args.pairs, args.split) if args.registered else cases(name)):
            t0 = time.perf_counter()
            mask = (to_gray(moved) != 0) if args.registered else None  # as the pipeline: the pixels the source covers
            v = mind_verdict(to_gray(moved), tgt, mask)
            secs = time.perf_counter() - t0
            rows.append({"set": name, "pair": pair, "magnitude": mag, "error": err, "z": v["z"], "residual_px": v["residual_px"],
                         "residual_tiles": v["residual_tiles"], "tiles_off": v["tiles_off"], "aligned": v["aligned"], "seconds": secs,
                         "peaks": json.dumps(_peaks(moved, tgt, mask))})
            r = rows[-1]
            print(f"{name:<6} {pair:<18} error {err:5.2f}  z {v['z']:6.1f}  residual {r['residual_px']}  ({r['residual_tiles']} tiles)  "
                  f"aligned {v['aligned']}", flush=True)
    with (out / (f"registered_{args.split}.csv" if args.registered else "rows.csv")).open("w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"\ncommand: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(summary(rows))
    print(f"median seconds per evidence: {np.median([r['seconds'] for r in rows]):.2f}")


if __name__ == "__main__":
    main()
