"""The study's table, reproduced: raw LOM vs styled LOM vs perfect CBS-like, per backend.

Test sets: synthetic pairs (``styleunwarp.synth``) and LOM-like renderings of the real
CBS images in ../shared/data/openecci-cbs (skipped if absent). Every variant is registered
with every available backend; tiers come from TRE against the known deformation
(DESIGN.md: good <= 1.5 px mean and <= 3 px p95, decent <= 3, bad <= 8, poor otherwise).

    python benchmarks/bench_registration_table.py [--synthetic 10] [--size 512]
        [--real ../shared/data/openecci-cbs] [--backends bunwarpj,elastix] [--model DIR] [--variants raw,styled,perfect]
        [--mode accurate] [--final fine] [--out /tmp/styleunwarp-table] [--markdown docs/FILE.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path


from styleunwarp.registration import PIPELINE_DEFAULTS


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", type=int, default=10)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=1000, help="data-set seed (differs from the training data's)")
    ap.add_argument("--real", default=str(repo.parent / "shared" / "data" / "openecci-cbs"))
    ap.add_argument("--backends", default="bunwarpj,elastix", help="comma-separated: bunwarpj, native, elastix (elastix runs on the raw LOM only)")
    ap.add_argument("--model", default=None, help="style model (default: the shipped one)")
    ap.add_argument("--variants", default="raw,styled,perfect", help="comma-separated subset of raw, styled, perfect")
    ap.add_argument("--mode", default="accurate")
    ap.add_argument("--final", default="fine")
    ap.add_argument("--divergence", type=float, default=PIPELINE_DEFAULTS.divergence_weight)
    ap.add_argument("--curl", type=float, default=PIPELINE_DEFAULTS.curl_weight)
    ap.add_argument("--out", default="/tmp/styleunwarp-table")
    ap.add_argument("--markdown", default=None, help="also write the tables to this Markdown file")
    args = ap.parse_args()

    from styleunwarp.demo import available_variants
    from styleunwarp.evaluation import RAW, evaluate_test_set, format_summary, summarize, write_rows_csv
    from styleunwarp.synth import write_dataset

    params = PIPELINE_DEFAULTS.with_(mode=args.mode, max_scale_deformation=args.final, divergence_weight=args.divergence, curl_weight=args.curl)
    wanted = set(args.variants.split(","))
    variants = [v for v in available_variants(args.model) if {"raw LOM": "raw", "styled LOM": "styled", "perfect CBS-like": "perfect"}[v.name] in wanted]
    out = Path(args.out)
    sets = []
    if args.synthetic > 0:
        write_dataset(out / "synthetic", 0, n_test=args.synthetic, size=args.size, seed=args.seed, progress=False)
        sets.append(("synthetic", out / "synthetic" / "test"))
    real = Path(args.real)
    if real.is_dir() and any(real.glob("*.tif")):
        write_dataset(out / "real", 0, size=args.size, seed=args.seed, from_cbs=real, progress=False)
        sets.append(("real CBS + LOM-like rendering", out / "real" / "test"))
    else:
        print(f"(real CBS images not found at {real}: that test set is skipped)")

    lines = [
        f"# Registration table: {args.mode} mode, final deformation {args.final}, divergence/curl weights {args.divergence}/{args.curl}, {args.size}x{args.size} px",
        "",
        f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`  ",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}; {time.strftime('%Y-%m-%d')}",
        "",
    ]
    for backend in args.backends.split(","):
        # elastix (mutual information) is the classic alternative on the raw LOM
        backend_variants = [v for v in variants if v is RAW] if backend == "elastix" else variants
        for label, test_dir in sets:
            t0 = time.perf_counter()
            rows = evaluate_test_set(test_dir, backend_variants, out / "results" / backend / label.split()[0], backend=backend, params=params)
            write_rows_csv(rows, out / f"rows_{backend}_{label.split()[0]}.csv")
            table = format_summary(summarize(rows))
            title = f"{label} — backend {backend} ({time.perf_counter() - t0:.0f} s)"
            print(f"\n{title}\n{table}")
            lines += [f"## {title}", "", "```", table, "```", ""]
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")
        print(f"\nwrote {args.markdown}")


if __name__ == "__main__":
    main()
