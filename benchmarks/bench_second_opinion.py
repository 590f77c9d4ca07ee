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

Each pair's row also reads the training-free result on the shipped chain's representation (its
``styled.tif`` and ``target.tif``, :func:`~styleunwarp.pipeline.second_opinion.ncc_on_representation`)
beside the shipped result's own NCC there, and all rows go to ``OUT/rows.json``: the data for a
cross-check of the duel on the model's terms. ``--shipped-adapt-steps 0`` runs the shipped chain
unadapted, the result the duel first meets in ``register``.

    python benchmarks/bench_second_opinion.py [--sets shale,lom3,blind,clem] [--out /tmp/bench_second_opinion] [--free elastix|mind|nmi]
                                              [--seed 1] [--limit N] [--shipped-adapt-steps N]
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


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _on_shipped_representation(shipped_dir: Path, free_dir: Path, shipped_metrics: dict) -> float | None:
    """The free chain's result (its direct transform) read on the shipped chain's representation, as ``register`` reads it."""
    from styleunwarp.io import read_image
    from styleunwarp.pipeline.second_opinion import ncc_on_saved_representation

    if not (shipped_dir / "styled.tif").is_file():
        return None
    styled = read_image(shipped_dir / "styled.tif").data
    return ncc_on_saved_representation(shipped_dir, shipped_metrics, styled, free_dir / "direct_transf.txt")


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
    ap.add_argument("--limit", type=int, default=10, help="pairs per set (default 10)")
    ap.add_argument("--shipped-adapt-steps", type=int, default=None, help="--adapt-steps for the shipped chain (default: register's)")
    args = ap.parse_args(argv)
    shipped = ("--no-second-opinion",) + (() if args.shipped_adapt_steps is None else ("--adapt-steps", str(args.shipped_adapt_steps)))
    chains = {"shipped": shipped, "free": FREE_CHAINS[args.free]}
    runs = {"shipped": "shipped" if args.shipped_adapt_steps is None else f"shipped-adapt{args.shipped_adapt_steps}",
            "free": "free" if args.free == "elastix" else f"free-{args.free}"}
    todo = make_sets(args.out, [s for s in args.sets.split(",") if s], args.limit, args.seed)
    lines, dump = [], []
    for name, rows in todo.items():
        table = []
        for row in rows[:args.limit]:
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
            on_model = _on_shipped_representation(args.out / "runs" / runs["shipped"] / name / row["name"],
                                                  args.out / "runs" / runs["free"] / name / row["name"], metrics["shipped"])
            duel_args = (metrics["free"].get("structure"), metrics["shipped"].get("structure"),
                         grade_without_truth(metrics["free"]), grade_without_truth(metrics["shipped"]))
            readings = (on_model, metrics["shipped"].get("styled_ncc_after"))
            why = refusal(*duel_args, on_model=readings)
            free_wins = why is None
            err["duel"] = err["free"] if free_wins else err["shipped"]
            free_wins_structure_only = refusal(*duel_args) is None
            err["duel_structure_only"] = err["free"] if free_wins_structure_only else err["shipped"]
            table.append((start, err["shipped"], err["free"], err["duel_structure_only"], err["duel"]))
            ev = {k: metrics[k].get("structure") or {} for k in chains}
            dump.append({"set": name, "pair": row["name"], "start": start, "tre": err, "refusal": why,
                         "free_wins_structure_only": free_wins_structure_only,
                         "evidence": ev, "tier": {k: grade_without_truth(metrics[k]) for k in chains},
                         "shipped_ncc": metrics["shipped"].get("styled_ncc_after"), "free_ncc_on_shipped": on_model})
            print(f"{name}/{row['name']}: start {start:.2f}; shipped {err['shipped']:.2f} (MIND {ev['shipped'].get('mind')}, z {ev['shipped'].get('z')}); "
                  f"free {err['free']:.2f} (MIND {ev['free'].get('mind')}, z {ev['free'].get('z')}); on the shipped representation "
                  f"{_fmt(metrics['shipped'].get('styled_ncc_after'))} / {_fmt(on_model)}; register keeps {'free' if free_wins else f'shipped ({why})'}",
                  flush=True)
        if not table:
            continue
        a = np.array(table)
        for j, label in ((1, "shipped chain alone"), (2, f"{args.free} alone"), (3, "both, the rule without the cross-check"),
                         (4, "both, register's rule keeps one (default)")):
            c = a[:, j]
            lines.append(f"| {name} | {label} | {len(c)} | {np.sum(c <= 1.5)} | {np.sum(c <= 5)} | {np.median(c):.2f} | {np.mean(c):.2f} | "
                         f"{np.sum(c > a[:, 0] + WORSE_TOLERANCE_PX)} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rows.json").write_text(json.dumps(dump, indent=1, default=float) + "\n")
    print("\n| data set | chain | pairs | <= 1.5 px | <= 5 px | median TRE px | mean TRE px | worse than start |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(lines))
    print(_margin_sweep(dump))
    return 0


MARGINS = (0.02, 0.03, 0.05, 0.08, 0.10, 0.12, 0.15)


def _margin_sweep(dump: list[dict]) -> str:
    """Per set and cross-check margin: pairs within 1.5 / 5 px, mean TRE and pairs made worse than
    the start, the free result kept where the rule without the cross-check keeps it and it reads no
    more than the margin lower on the shipped representation (:func:`~styleunwarp.pipeline.second_opinion.reads_worse`)."""
    from bench_asdelivered import WORSE_TOLERANCE_PX

    from styleunwarp.pipeline.second_opinion import reads_worse

    out = ["", "| data set | cross-check margin | <= 1.5 px | <= 5 px | mean TRE px | worse than start | free kept |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in dict.fromkeys(r["set"] for r in dump):
        rows = [r for r in dump if r["set"] == name]
        for margin in (None, *MARGINS):
            kept = []
            for r in rows:
                vetoed = margin is not None and reads_worse(r["free_ncc_on_shipped"], r["shipped_ncc"], margin)
                free = r["free_wins_structure_only"] and not vetoed
                kept.append((r["start"], r["tre"]["free"] if free else r["tre"]["shipped"], free))
            a_ = np.array(kept)
            out.append(f"| {name} | {'none' if margin is None else margin} | {np.sum(a_[:, 1] <= 1.5)} | {np.sum(a_[:, 1] <= 5)} | "
                       f"{np.mean(a_[:, 1]):.3f} | {np.sum(a_[:, 1] > a_[:, 0] + WORSE_TOLERANCE_PX)} | {int(np.sum(a_[:, 2]))} |")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
