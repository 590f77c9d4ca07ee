"""Verifying steps on raw images of two modalities: the margin for look-alike images vs the one for raw images.

Chains that compare the raw images (representation ``none``: elastix MI, native NMI) run
the pipeline's coarse step (winner confirmed by MIND-SSC agreement far above chance,
``coarse.confirm``) and never-worse rule (``pipeline.chain.register_representations``) once
with the gradient-agreement margin for representations that look alike (``check="alike"``)
and once with the one for raw images (``check="structure"``, what ``register`` uses on raw
images; ``styleunwarp.structure``). Rows labelled ``ncc`` in an output folder come from the
rules of earlier versions (coarse winner by NCC alone, elastic result kept on an NCC gain of 0.06),
rows labelled ``structure`` written before the coarse confirmation applied to every chain are the same as now. Cases are the real aligned pairs of
``bench_representations.load_dataset`` deformed by known smooth deformations
(``style.heldout``: one near-identity and one misaligned case per pair, 256 px crops).

Two splits: ``tune`` (the data sets' test pairs, seed 5), on which the thresholds
(``coarse.confirm.Z_MIN``, ``chain.GRADIENT_MARGIN``) were read, and ``check`` (their
training pairs, seed 6), not used to choose anything.

    PYTHONPATH=python python benchmarks/bench_raw_checks.py [--sets shale,clem,steel] [--split check] [--pairs 6] [--checks alike,structure] [--chains elastix,native,bunwarpj] [--out /tmp/bench_raw_checks]

Prints per data set and check: cases within 1.5 px and 5 px mean TRE, median TRE, and cases
made worse than as delivered (identity) by more than 0.25 px.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks"))

CHAINS = (("elastix", {}), ("native", {"similarity": "nmi"}))
MORE_CHAINS = {"bunwarpj": {}}
"""Further chains ``--chains`` may name (raw bUnwarpJ: SSD on the raw grey levels)."""


def cases_for(name: str, split: str, pairs_at_most: int) -> list:
    from bench_representations import load_dataset
    from styleunwarp.io import to_gray
    from styleunwarp.style.heldout import make_cases

    train, test = load_dataset(name)
    pairs, seed = (test, 5) if split == "tune" else (train, 6)
    return make_cases([(n, to_gray(s), t) for n, s, t in pairs[:pairs_at_most]], 2, seed=seed, max_side=256)


def run_case(case, backend: str, options: dict, check: str) -> dict:
    from styleunwarp.pipeline.chain import register_representations
    from styleunwarp.quality import tre
    from styleunwarp.registration import PIPELINE_DEFAULTS
    from styleunwarp.style.representations.raw import Raw
    from styleunwarp.transform import identity_elastic

    src, tgt = Raw().represent(case.source, case.target)
    t0 = time.perf_counter()
    out = register_representations(tgt, src, PIPELINE_DEFAULTS, backend=backend, backend_options=options, check=check)
    return {"case": case.name, "kind": case.kind, "backend": backend, "check": check,
            "tre_delivered": tre(identity_elastic(4, tgt.shape), case.truth, tgt.shape, src.shape).mean,
            "tre": tre(out.direct, case.truth, tgt.shape, src.shape).mean,
            "coarse": "identity" if out.coarse.is_identity else out.coarse.chosen.method,
            "elastic": out.elastic["kept"], "restart": (out.elastic.get("restart") or {}).get("confirmed"),
            "seconds": time.perf_counter() - t0}


def summary(rows: list[dict]) -> str:
    t = np.array([r["tre"] for r in rows])
    worse = sum(r["tre"] > r["tre_delivered"] + 0.25 for r in rows)
    return f"{int((t <= 1.5).sum())}/{len(t)} | {int((t <= 5).sum())}/{len(t)} | {np.median(t):.2f} | {worse}"


def main() -> None:
    from styleunwarp.pipeline.chain import CHECKS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="shale,clem,steel")
    ap.add_argument("--split", default="check", choices=("tune", "check"))
    ap.add_argument("--out", default="/tmp/bench_raw_checks")
    ap.add_argument("--pairs", type=int, default=6, help="pairs per data set at most (two cases each)")
    ap.add_argument("--checks", default=",".join(CHECKS), help="comma-separated subset of " + ", ".join(CHECKS))
    ap.add_argument("--chains", default=",".join(b for b, _ in CHAINS),
                    help="comma-separated backends on the raw images: " + ", ".join([b for b, _ in CHAINS] + list(MORE_CHAINS)))
    args = ap.parse_args()
    known = dict(CHAINS) | MORE_CHAINS
    chains = [(b, known[b]) for b in args.chains.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = []
    for name in args.sets.split(","):
        path = out / f"{name}_{args.split}.json"
        rows = json.loads(path.read_text()) if path.is_file() else []
        done = {(r["case"], r["backend"], r["check"]) for r in rows}
        for case in cases_for(name, args.split, args.pairs):
            for backend, options in chains:
                for check in args.checks.split(","):
                    if (case.name, backend, check) in done:
                        continue
                    r = run_case(case, backend, options, check)
                    rows.append(r)
                    print(f"{name} {r['case']} {backend} {check}: delivered {r['tre_delivered']:.2f} -> {r['tre']:.2f} px "
                          f"(coarse {r['coarse']}, elastic {r['elastic']}, restart {r['restart']}, {r['seconds']:.1f} s)", flush=True)
                    path.write_text(json.dumps(rows, indent=1, default=float) + "\n")
        for backend, _ in chains:
            for check in ("ncc", *CHECKS):
                sel = [r for r in rows if r["backend"] == backend and r["check"] == check]
                if sel:
                    table.append(f"| {name} | {backend} | {check} | {summary(sel)} |")
    print(f"\nsplit: {args.split}\n\n| data set | backend | check | <= 1.5 px | <= 5 px | median px | worse than delivered |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(table))


if __name__ == "__main__":
    main()
