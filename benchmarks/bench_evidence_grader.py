"""The grader against the true tier on saved registrations, with the structure evidence recomputed by the current code.

For every registration folder found (``metrics.json``, ``registered.tif``, ``direct_transf.txt``;
``second_opinion/*`` folders too, each distinct result once), the structure evidence of the raw
images is computed again (:func:`styleunwarp.pipeline.evidence.structure_evidence`, so a change
of the residual estimate is seen without registering again) and the tier is estimated two ways:

* ``correlation``: the correlation grader alone, capped by the evidence (the grader before the
  residual estimate graded anything);
* ``evidence``: :func:`styleunwarp.quality.grade_without_truth` as now (the residual estimate
  decides where there is one), also for each ``--good-px`` threshold swept.

Ground truth comes from ``metrics.json`` ``tre`` (folders of ``register --truth``, e.g.
``bench_user_field.py``) or from a ``bench_asdelivered.py`` output folder's ``results.json``
(its ``truth`` files). Truth is used only for scoring.

    python benchmarks/bench_evidence_grader.py --asdelivered /tmp/s10/ad_snap0 /tmp/s9/ad_all --truth-folders /tmp/s7/uf
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from styleunwarp.io import read_image  # noqa: E402
from styleunwarp.pipeline.evidence import structure_evidence  # noqa: E402
from styleunwarp.quality import TIERS, grade_by_correlation, grade_without_truth, tier_from_evidence, tier_from_tre, tre  # noqa: E402
from styleunwarp.transform import read_transform  # noqa: E402


def _evidence(folder: Path, m: dict) -> dict:
    h, w = m["cbs_shape"][:2]
    target = read_image(m["cbs"]).data[:h, :w]
    registered = read_image(folder / "registered.tif").data
    return structure_evidence(registered, target, read_transform(folder / "direct_transf.txt"), tuple(m["lom_shape"][:2]))


def _folders(base: Path) -> list[Path]:
    return [base, *sorted(p.parent for p in (base / "second_opinion").glob("*/metrics.json"))]


def rows_of(folder: Path, truth_tre) -> dict | None:
    """One scored row for the registration in ``folder``; ``truth_tre(folder, metrics)`` gives (mean, p95)."""
    m = json.loads((folder / "metrics.json").read_text())
    mean, p95 = truth_tre(folder, m)
    ev = _evidence(folder, m)
    old = grade_by_correlation(m)
    new_m = dict(m, structure=ev)
    return {"folder": str(folder), "tre": mean, "p95": p95,
            "true": tier_from_tre(mean, p95, m["transform"]["folded_fraction"] > 0),
            "correlation": old, "evidence": grade_without_truth(new_m), "folded": m["transform"]["folded_fraction"] > 0,
            "residual_px": ev.get("residual_px"), "tiles_off": ev.get("tiles_off"), "aligned": ev.get("aligned"), "structure": ev}


def collect(asdelivered: list[Path], truth_folders: list[Path]) -> dict[str, list[dict]]:
    """Rows per source folder (distinct results: a second opinion adopted into its pair's folder counted once)."""
    out: dict[str, list[dict]] = {}
    for run in asdelivered:
        res = json.loads((run / "results.json").read_text())
        rows = out.setdefault(str(run), [])
        for set_name, pairs in res.items():
            for r in pairs:
                if r.get("status") != "done":
                    continue
                truth = read_transform(r["truth"])
                lom_shape = read_image(r["lom"]).data.shape[:2]

                def truth_tre(folder, m, truth=truth, lom_shape=lom_shape):
                    e = tre(read_transform(folder / "direct_transf.txt"), truth, tuple(m["cbs_shape"]), lom_shape)
                    return e.mean, e.p95

                _add(rows, _folders(run / "runs" / set_name / r["name"]), truth_tre, f"{set_name}/{r['name']}")
    for root in truth_folders:
        rows = out.setdefault(str(root), [])
        for mf in sorted(root.glob("**/metrics.json")):
            if "second_opinion" in mf.parts:
                continue
            m = json.loads(mf.read_text())
            if "tre" in m:
                _add(rows, _folders(mf.parent), lambda f, mm: (mm["tre"]["mean"], mm["tre"]["p95"]), str(mf.parent.relative_to(root)))
    return out


def _add(rows: list[dict], folders: list[Path], truth_tre, name: str) -> None:
    seen = set()
    for f in folders:
        try:
            row = rows_of(f, truth_tre)
        except (OSError, KeyError, ValueError) as exc:
            print(f"skip {f}: {exc}", file=sys.stderr)
            continue
        key = round(row["tre"], 4)
        if key in seen:  # the adopted second opinion, same result as the pair's folder
            continue
        seen.add(key)
        rows.append(dict(row, pair=name))


def score(rows: list[dict], key: str) -> str:
    right = sum(r[key] == r["true"] for r in rows)
    opt = sum(TIERS.index(r[key]) > TIERS.index(r["true"]) for r in rows)
    opt2 = sum(TIERS.index(r[key]) > TIERS.index(r["true"]) + 1 for r in rows)
    return f"{right}/{len(rows)} right, {opt} optimistic ({opt2} by two tiers), {len(rows) - right - opt} pessimistic"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--asdelivered", type=Path, nargs="*", default=[], help="bench_asdelivered.py output folders")
    ap.add_argument("--truth-folders", type=Path, nargs="*", default=[], help="roots of register --truth folders")
    ap.add_argument("--good-px", default="0.6,0.75,0.9,1.0,1.1,1.25,1.5", help="thresholds to sweep")
    ap.add_argument("--rows", type=Path, default=None, help="write every row as JSON lines here")
    args = ap.parse_args()
    by_source = collect(args.asdelivered, args.truth_folders)
    sweep = [float(t) for t in args.good_px.split(",") if t]
    if args.rows:
        args.rows.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "structure"}, default=str) + "\n"
                                     for rows in by_source.values() for r in rows))
    print("| registrations | n | with an estimate | correlation grader | evidence grader (now) |")
    print("| --- | ---: | ---: | --- | --- |")
    for src, rows in by_source.items():
        n_est = sum(r["residual_px"] is not None for r in rows)
        print(f"| {src} | {len(rows)} | {n_est} | {score(rows, 'correlation')} | {score(rows, 'evidence')} |")
    print("\nthreshold sweep (rows with an estimate; the others keep the correlation grader):")
    for src, rows in by_source.items():
        est = [r for r in rows if r["residual_px"] is not None and not r["folded"]]
        for t in sweep:
            for r in est:
                r["swept"] = tier_from_evidence({"structure": r["structure"]}, good_px=t)
            print(f"  {src}  good <= {t:.2f} px: {score(est, 'swept') if est else 'no rows'}")


if __name__ == "__main__":
    main()
