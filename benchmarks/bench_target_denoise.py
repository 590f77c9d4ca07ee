"""How strongly to denoise the CBS before its boundary map (the ``edges`` target): TRE per strength.

For each pair of each test set the shipped model's rendering of the LOM is computed once; the
target boundary map is made with every ``--strengths`` value (total variation, weight =
strength x the CBS's measured noise sd, :func:`styleunwarp.noise.denoise`; 0 = the map before
2026-12-02); then the coarse step (on the map as recorded, as the pipeline runs it) and one elastic
registration on the map of each strength run,
and the TRE against the known deformation is recorded (elastic result, no keep-or-undo: the
representation is what is measured). Sets as in ``bench_styled_defaults.py`` (``real:SEED[:rgb]``,
``variety:SEED``, ``synthetic:SEED``; none used to train the shipped model).

    python benchmarks/bench_target_denoise.py --sets real:2000:rgb,variety:900 --strengths 0,0.5,1,1.5,2,3 \
        --backend native --out /tmp/target-denoise

Writes ``rows.csv`` and prints per set and strength: good (DESIGN.md tier) of n, mean and median
TRE, and the measured noise sd of the CBS images.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_styled_defaults import make_set, tier  # noqa: E402


def run_pair(test: Path, name: str, strengths: list[float], backend: str) -> list[dict]:
    from styleunwarp.io import normalize, read_image, to_gray
    from styleunwarp.noise import noise_sigma
    from styleunwarp.pipeline.coarse import align as coarse_align
    from styleunwarp.pipeline.coarse import compose_direct, warp_source
    from styleunwarp.quality import tre
    from styleunwarp.registration import PIPELINE_DEFAULTS, register
    from styleunwarp.style.data import normalize_input, target_representation
    from styleunwarp.style.infer import StyleTransfer
    from styleunwarp.transform import identity_elastic, read_transform

    lom = read_image(test / "lom" / f"{name}.tif")
    cbs = to_gray(read_image(test / "cbs" / f"{name}.tif").data)
    truth = read_transform(test / "truth" / f"{name}_direct_transf.txt")
    styled = normalize(np.asarray(StyleTransfer.load_default()(lom.data), np.float32))
    sd = noise_sigma(normalize_input(cbs, 1)[0])
    rows = []
    recorded = normalize(target_representation(cbs, "edges", denoise=0.0))
    known = bool(lom.pixel_size)
    a = coarse_align("auto", recorded, styled, scale=1.0 if known else None).chosen.matrix  # as the pipeline: on the recorded map
    for s in strengths:
        target = normalize(target_representation(cbs, "edges", denoise=s))
        moving = warp_source(styled, a, target.shape)
        start = tre(compose_direct(identity_elastic(4, target.shape), a), truth, target.shape, cbs.shape)
        t0 = time.perf_counter()
        reg = register(target, moving, PIPELINE_DEFAULTS, backend=backend, coarse_sigma=0.0)
        e = tre(compose_direct(reg.direct, a), truth, target.shape, cbs.shape)
        rows.append({"pair": name, "strength": s, "noise_sd": round(sd, 4), "tre_start": start.mean,
                     "tre": e.mean, "p95": e.p95, "seconds": round(time.perf_counter() - t0, 2)})
        print(f"  {name:<16} strength {s:<4g} noise {sd:.3f}  start {start.mean:5.2f}  elastic {e.mean:5.2f} (p95 {e.p95:4.1f})", flush=True)
    return rows


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="real:2000:rgb,variety:900")
    ap.add_argument("--strengths", default="0,1.5")
    ap.add_argument("--backend", default="native")
    ap.add_argument("--real", default=str(repo.parent / "shared" / "data" / "openecci-cbs"))
    ap.add_argument("--out", default="/tmp/target-denoise")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    strengths = [float(s) for s in args.strengths.split(",")]
    table = []
    with (out / "rows.csv").open("w", newline="") as fh:
        w = None
        for spec in args.sets.split(","):
            test = make_set(spec, out, Path(args.real), 512)
            rows = []
            for name in sorted(p.stem for p in (test / "lom").glob("*.tif")):
                for r in run_pair(test, name, strengths, args.backend):
                    r = {"set": spec, **r}
                    if w is None:
                        w = csv.DictWriter(fh, list(r))
                        w.writeheader()
                    w.writerow(r)
                    fh.flush()
                    rows.append(r)
            for s in strengths:
                sel = [r for r in rows if r["strength"] == s]
                tre_ = np.array([r["tre"] for r in sel])
                good = sum(tier(r["tre"], r["p95"]) == "good" for r in sel)
                table.append(f"| {spec} | {s:g} | {good}/{len(sel)} | {tre_.mean():.3f} | {np.median(tre_):.3f} | "
                             f"{np.mean([r['noise_sd'] for r in sel]):.3f} |")
    print(f"\ncommand: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}  (backend {args.backend})")
    print("| set | strength | good | mean TRE (px) | median TRE (px) | CBS noise sd |\n| --- | --- | --- | --- | --- | --- |")
    print("\n".join(table))


if __name__ == "__main__":
    main()
