"""The shipped model's chain against a training-free chain, per pair, and which result register keeps.

For every pair of the data sets of ``bench_asdelivered.py`` (real shale BSE/SE and CLEM pairs,
steel renderings by the two renderers that are not ours; the source deformed near-identity or
small, truth known), runs the CLI twice as a user would: ``register LOM CBS
--no-second-opinion`` (the shipped style model's chain alone: what ``register`` did before the
every-pair second opinion) and ``register LOM CBS --style none --backend elastix`` (raw mutual
information, the training-free chain that second opinion runs), then applies
:func:`styleunwarp.pipeline.second_opinion.refusal` to the two results' structure evidence and
verdicts, as ``register`` does by default (``pipeline/second_opinion.py``: the structure duel,
the margin of :data:`~styleunwarp.pipeline.second_opinion.REPLACE_MARGIN`, no result graded worse,
evidence of alignment). Until the twentieth session this column applied the duel alone, which
``register`` has not done since the margin and the grader's veto. Prints per pair the TREs and
the evidence, and per set for each of the three: pairs within 1.5 px and 5 px, median and mean
TRE, pairs made worse than the start (by more than 0.25 px).

    python benchmarks/bench_second_opinion.py [--sets shale,lom3,blind,clem] [--out /tmp/bench_second_opinion] [--free elastix|mind|nmi]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# the training-free chain the shipped chain is dueled against (--free; elastix MI is what register runs)
FREE_CHAINS = {
    "elastix": ("--style", "none", "--backend", "elastix"),
    "mind": ("--style", "none", "--backend", "native", "-o", "similarity=mind"),
    "nmi": ("--style", "none", "--backend", "native", "-o", "similarity=nmi"),
}


def _register(row: dict, out: Path, flags: tuple[str, ...]) -> dict | None:
    """The CLI's metrics for ``row`` registered with ``flags`` into ``out`` (registered once; ``None`` if it failed)."""
    from bench_asdelivered import register_cli

    if not (out / "metrics.json").is_file():
        register_cli(row["lom"], row["cbs"], out, flags)
    return json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").is_file() else None


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_asdelivered import WORSE_TOLERANCE_PX, make_sets

    from styleunwarp.io import read_image
    from styleunwarp.quality import tre
    from styleunwarp.pipeline.second_opinion import refusal
    from styleunwarp.quality import grade_without_truth
    from styleunwarp.transform import identity_elastic, read_transform

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="shale,lom3,blind,clem")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_second_opinion"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--free", choices=sorted(FREE_CHAINS), default="elastix", help="the training-free chain (default: elastix MI, register's)")
    args = ap.parse_args(argv)
    chains = {"shipped": ("--no-second-opinion",), "free": FREE_CHAINS[args.free]}
    runs = {"shipped": "shipped", "free": "free" if args.free == "elastix" else f"free-{args.free}"}
    todo = make_sets(args.out, [s for s in args.sets.split(",") if s], 10, args.seed)
    lines = []
    for name, rows in todo.items():
        table = []
        for row in rows:
            metrics = {k: _register(row, args.out / "runs" / runs[k] / name / row["name"], flags) for k, flags in chains.items()}
            if any(m is None for m in metrics.values()):
                print(f"{name}/{row['name']}: a registration failed", flush=True)
                continue
            shape = tuple(metrics["shipped"]["cbs_shape"])
            lom_shape = read_image(row["lom"]).data.shape[:2]
            truth = read_transform(row["truth"])
            err = {k: tre(read_transform(args.out / "runs" / runs[k] / name / row["name"] / "direct_transf.txt"), truth, shape, lom_shape).mean
                   for k in chains}
            start = tre(identity_elastic(4, shape), truth, shape, lom_shape).mean
            why = refusal(metrics["free"].get("structure"), metrics["shipped"].get("structure"),
                          grade_without_truth(metrics["free"]), grade_without_truth(metrics["shipped"]))
            free_wins = why is None
            err["duel"] = err["free"] if free_wins else err["shipped"]
            table.append((start, err["shipped"], err["free"], err["duel"]))
            ev = {k: metrics[k].get("structure") or {} for k in chains}
            print(f"{name}/{row['name']}: start {start:.2f}; shipped {err['shipped']:.2f} (MIND {ev['shipped'].get('mind')}, z {ev['shipped'].get('z')}); "
                  f"free {err['free']:.2f} (MIND {ev['free'].get('mind')}, z {ev['free'].get('z')}); register keeps {'free' if free_wins else f'shipped ({why})'}",
                  flush=True)
        if not table:
            continue
        a = np.array(table)
        for j, label in ((1, "shipped chain alone"), (2, f"{args.free} alone"), (3, "both, register's rule keeps one (default)")):
            c = a[:, j]
            lines.append(f"| {name} | {label} | {len(c)} | {np.sum(c <= 1.5)} | {np.sum(c <= 5)} | {np.median(c):.2f} | {np.mean(c):.2f} | "
                         f"{np.sum(c > a[:, 0] + WORSE_TOLERANCE_PX)} |")
    print("\n| data set | chain | pairs | <= 1.5 px | <= 5 px | median TRE px | mean TRE px | worse than start |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
