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

    python benchmarks/bench_regrade.py OUT [OUT ...]
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
    from styleunwarp.quality import GRADED_ON_KEY, TIERS, grade

    folders = [Path(a) for a in (argv if argv is not None else sys.argv[1:])]
    print("| run | data set | pairs | = true tier before | now | optimistic by 1 (now) | by 2+ (now) | pessimistic (now) | poor not printed poor/bad (now) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in folders:
        for set_name, rows in json.loads((run / "results.json").read_text()).items():
            counts = {"n": 0, "before": 0, "now": 0, "opt1": 0, "opt2": 0, "pess": 0, "silent": 0}
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
                print(f"  {run.name} {set_name} {row['name']}: TRE {row['tre_mean']:.2f} px {true}; printed {row['tier_printed']}, now {now}"
                      + (f" (on {on['representation']}: NCC {on['styled_ncc_after']:.3f})" if on else ""), file=sys.stderr)
            c = counts
            print(f"| {run.name} | {set_name} | {c['n']} | {c['before']}/{c['n']} | {c['now']}/{c['n']} | {c['opt1']} | {c['opt2']} | {c['pess']} | {c['silent']} |")
    print(f"\ncommand: python benchmarks/{Path(__file__).name} {' '.join(str(f) for f in folders)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
