"""The grader's verdicts on saved as-user registrations, as printed then and as the grader gives them now.

Reads folders written by ``bench_asdelivered.py`` (``OUT/results.json`` and ``OUT/runs/SET/PAIR/
metrics.json``), never registers anything. For every pair whose second opinion (elastix MI on the raw
images) replaced the shipped model's result before ``metrics.json`` recorded ``graded_on``, the
result is measured on the shipped model's representation as ``register`` now does
(:func:`styleunwarp.pipeline.second_opinion.ncc_on_representation`, the representation made afresh
from the pair's files). Then each pair is graded by the current grader (truth used only for
scoring). Per data set: verdict = true tier, optimistic by one, optimistic by two or more,
pessimistic, poor results not printed poor or bad; before (``tier_printed`` of ``results.json``,
the grader when the run was scored) and now.

    python benchmarks/bench_regrade.py OUT [OUT ...] [--decent-ncc 0.30,0.20,0.15]

The last columns grade without the structure evidence's floor under a weak correlation
(``grade_without_truth(..., floor=False)``, the grader before it): verdict = true tier and
optimistic by one or more.

``--decent-ncc`` grades again with the correlation grader's ``decent`` threshold at each value
(the other thresholds as they are) and adds a column per value: verdicts = true tier.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))


def _graded_on(row: dict, m: dict) -> dict | None:
    """``graded_on`` as ``register`` records it now, for a run made before it did."""
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.pipeline.pair import style_images
    from styleunwarp.pipeline.second_opinion import ncc_on_representation
    from styleunwarp.quality import GRADED_ON_KEY
    from styleunwarp.transform import read_transform

    so = m.get("second_opinion") or {}
    if GRADED_ON_KEY in m or so.get("kept") in (None, "model chain") or m.get("model"):
        return m.get(GRADED_ON_KEY)
    lom, cbs = read_image(row["lom"]).data, to_gray(read_image(row["cbs"]).data)
    styled, target, info = style_images(lom, cbs, None, "model", None)  # the shipped model: these runs used no --model
    value = ncc_on_representation(styled, target, read_transform(Path(row["folder"]) / "direct_transf.txt"))
    return {"representation": info["representation"], "styled_ncc_after": value, "reason": "measured afresh by bench_regrade.py"}


def main(argv: list[str] | None = None) -> int:
    import argparse

    from styleunwarp.quality import GRADED_ON_KEY, GRADER_THRESHOLDS, TIERS, grade, grade_without_truth

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", type=Path, nargs="+")
    ap.add_argument("--decent-ncc", default="", help="comma-separated decent NCC thresholds to try")
    args = ap.parse_args(argv)
    folders = args.folders
    tries = [float(v) for v in args.decent_ncc.split(",") if v]
    variants = {v: {**GRADER_THRESHOLDS, "decent": {**GRADER_THRESHOLDS["decent"], "styled_ncc_after": v}} for v in tries}
    extra = "".join(f" decent NCC {v}: = true / optimistic |" for v in tries)
    print("| run | data set | pairs | = true tier before | now | optimistic by 1 (now) | by 2+ (now) | pessimistic (now) | poor not printed poor/bad (now) |"
          " without the floor: = true / optimistic / pessimistic |" + extra)
    print("|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(tries))
    for run in folders:
        for set_name, rows in json.loads((run / "results.json").read_text()).items():
            counts = {"n": 0, "before": 0, "now": 0, "opt1": 0, "opt2": 0, "pess": 0, "silent": 0, "nf": 0, "nf_opt": 0, "nf_pess": 0}
            tried = {v: [0, 0] for v in tries}
            for row in rows:
                if row.get("status") != "done":
                    continue
                row = dict(row, folder=str(run / "runs" / set_name / row["name"]))
                m = json.loads((Path(row["folder"]) / "metrics.json").read_text())
                m = {k: v for k, v in m.items() if k != "tre"}
                on = _graded_on(row, m)
                if on is not None:
                    m[GRADED_ON_KEY] = on
                now = grade(m)[0]
                true = row["tier_true"]
                gap = TIERS.index(now) - TIERS.index(true)
                counts["n"] += 1
                counts["before"] += row["tier_printed"] == true
                counts["now"] += gap == 0
                counts["opt1"] += gap == 1
                counts["opt2"] += gap >= 2
                counts["pess"] += gap < 0
                counts["silent"] += true == "poor" and now not in ("poor", "bad")
                nf = grade_without_truth(m, floor=False)
                counts["nf"] += nf == true
                counts["nf_opt"] += TIERS.index(nf) > TIERS.index(true)
                counts["nf_pess"] += TIERS.index(nf) < TIERS.index(true)
                for v, th in variants.items():
                    t = grade_without_truth(m, th)
                    tried[v][0] += t == true
                    tried[v][1] += TIERS.index(t) > TIERS.index(true)
                print(f"  {run.name} {set_name} {row['name']}: TRE {row['tre_mean']:.2f} px {true}; printed {row['tier_printed']}, now {now}"
                      + (f" (on {on['representation']}: NCC {on['styled_ncc_after']:.3f})" if on else ""), file=sys.stderr)
            c = counts
            print(f"| {run.name} | {set_name} | {c['n']} | {c['before']}/{c['n']} | {c['now']}/{c['n']} | {c['opt1']} | {c['opt2']} | {c['pess']} | {c['silent']} |"
                  f" {c['nf']}/{c['n']} / {c['nf_opt']} / {c['nf_pess']} |"
                  + "".join(f" {a}/{c['n']}, {o} |" for a, o in tried.values()))
    print(f"\ncommand: python benchmarks/{Path(__file__).name} {' '.join(str(f) for f in folders)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
