"""Calibrate the no-ground-truth grader against TRE on synthetic pairs, and measure its error rate.

Registrations of widely varying quality are made on synthetic pairs by registering, in
place of the LOM, the perfect CBS-like rendering, partial mixtures of it with the raw LOM,
the raw LOM itself and (when a style model is available) the styled LOM. For each result
the grader's inputs (``styled_ncc_after``, the direct/inverse consistency error, folding)
and the true tier (from TRE) are recorded. Thresholds are fitted on half of the pairs and
the agreement is reported on the other half (and vice versa), so the error rate is an
honest out-of-sample figure.

    python benchmarks/calibrate_grader.py [--pairs 12] [--size 384] [--out /tmp/calib] [--markdown docs/quality.md]

With ``--from OUT/results.json`` of ``benchmarks/bench_asdelivered.py`` it fits instead on
those registrations (``styleunwarp register`` with no flags on as-delivered steel
renderings, shale BSE/SE and CLEM EM/FM pairs with known deformations), two-fold by pair
within each data set, and reports the out-of-sample agreement per data set:

    python benchmarks/calibrate_grader.py --from /tmp/bench_asdelivered/results.json [--markdown FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

TIERS = ("poor", "bad", "decent", "good")


def _grade(row: dict, th: dict) -> str:
    from styleunwarp.quality import grade_without_truth

    m = {"styled_ncc_after": row["ncc"], "transform": {"folded_fraction": row["folded"], "consistency_error": row["consistency"]}}
    return grade_without_truth(m, th)


def _fit(rows: list[dict]) -> dict:
    """Thresholds maximising exact tier agreement (greedy per tier boundary, good first)."""
    ncc_grid = np.round(np.arange(0.10, 0.96, 0.025), 3)
    cons_grid = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 1e9]
    th = {"good": {"styled_ncc_after": 0.95, "consistency_px": 0.25}, "decent": {"styled_ncc_after": 0.95, "consistency_px": 0.25}, "bad": {"styled_ncc_after": 0.95, "consistency_px": 0.25}}
    for tier in ("good", "decent", "bad"):
        best = None
        for n, c in itertools.product(ncc_grid, cons_grid):
            trial = json.loads(json.dumps(th))
            trial[tier] = {"styled_ncc_after": float(n), "consistency_px": float(c)}
            # keep the tiers ordered: a lower tier never asks for more than a higher one
            if tier != "good":
                higher = trial["good" if tier == "decent" else "decent"]
                if n > higher["styled_ncc_after"] or c < higher["consistency_px"]:
                    continue
            agree = sum(_grade(r, trial) == r["tier"] for r in rows)
            optimistic = sum(TIERS.index(_grade(r, trial)) - TIERS.index(r["tier"]) >= 2 for r in rows)
            silent_poor = sum(r["tier"] == "poor" and _grade(r, trial) in ("decent", "good") for r in rows)
            key = (agree - 5 * optimistic - 5 * silent_poor, -n)
            if best is None or key > best[0]:
                best = (key, trial)
        th = best[1]
    return th


def _confusion(rows: list[dict], th: dict) -> tuple[np.ndarray, float, int]:
    cm = np.zeros((4, 4), int)
    for r in rows:
        cm[TIERS.index(r["tier"]), TIERS.index(_grade(r, th))] += 1
    agree = float(np.trace(cm)) / max(1, cm.sum())
    optimistic = int(sum(cm[i, j] for i in range(4) for j in range(4) if j - i >= 2))
    return cm, agree, optimistic


def from_bench(path: Path, markdown: str | None) -> None:
    """Fit and evaluate on the rows of bench_asdelivered.py (see the module docstring)."""
    data = json.loads(Path(path).read_text())
    rows = []
    for dset, items in data.items():
        for k, r in enumerate(x for x in items if x.get("status") == "done"):
            rows.append({"set": dset, "pair": k, "tier": r["tier_true"], "tre": r["tre_mean"], "ncc": r["ncc"], "consistency": r["consistency"], "folded": r["folded"]})
    half_a = [r for r in rows if r["pair"] % 2 == 0]
    half_b = [r for r in rows if r["pair"] % 2 == 1]
    th_a, th_b, th_all = _fit(half_a), _fit(half_b), _fit(rows)
    held = [(r, _grade(r, th_b if r["pair"] % 2 == 0 else th_a)) for r in rows]
    lines = [
        "Command: `python benchmarks/calibrate_grader.py --from OUT/results.json` on the registrations of "
        "`benchmarks/bench_asdelivered.py` (two-fold: thresholds fitted on the even pairs of every data set are "
        "judged on the odd ones and vice versa).",
        "",
        "| data set | registrations | true tiers (poor/bad/decent/good) | out-of-sample agreement | optimistic by 2+ tiers | poor called decent/good |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for dset in dict.fromkeys(r["set"] for r in rows):
        sub = [(r, g) for r, g in held if r["set"] == dset]
        tiers = "/".join(str(sum(r["tier"] == t for r, _ in sub)) for t in TIERS)
        agree = sum(r["tier"] == g for r, g in sub)
        opt = sum(TIERS.index(g) - TIERS.index(r["tier"]) >= 2 for r, g in sub)
        silent = sum(r["tier"] == "poor" and g in ("decent", "good") for r, g in sub)
        lines.append(f"| {dset} | {len(sub)} | {tiers} | {agree}/{len(sub)} | {opt} | {silent} |")
    agree = sum(r["tier"] == g for r, g in held)
    opt = sum(TIERS.index(g) - TIERS.index(r["tier"]) >= 2 for r, g in held)
    lines += ["", f"All: {agree}/{len(held)} out of sample, optimistic by two or more tiers {opt}. Thresholds fitted on all: `{json.dumps(th_all)}`."]
    cm_all, agree_all, opt_all = _confusion(rows, th_all)
    lines += ["", "Confusion matrix, all registrations, thresholds fitted on all (rows: true tier, columns: grader):", "", "| true \\ grader | " + " | ".join(TIERS) + " |", "| --- | " + " | ".join("---:" for _ in TIERS) + " |"]
    for i, t in enumerate(TIERS):
        lines.append(f"| {t} | " + " | ".join(str(v) for v in cm_all[i]) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if markdown:
        Path(markdown).write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="from_bench", type=Path, default=None, help="results.json of bench_asdelivered.py: fit on those registrations")
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--seed", type=int, default=2000)
    ap.add_argument("--out", default="/tmp/styleunwarp-calibration")
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    if args.from_bench is not None:
        from_bench(args.from_bench, args.markdown)
        return

    from styleunwarp.demo import available_variants
    from styleunwarp.io import normalize, read_image, write_tiff
    from styleunwarp.pipeline import register_pair
    from styleunwarp.synth import write_dataset

    out = Path(args.out)
    write_dataset(out / "data", 0, n_test=args.pairs, size=args.size, seed=args.seed, progress=False)
    test = out / "data" / "test"
    has_model = any(v.style == "model" for v in available_variants(None))
    rows: list[dict] = []
    t0 = time.perf_counter()
    for k, lom_file in enumerate(sorted((test / "lom").glob("*.tif"))):
        name = lom_file.stem
        lom = normalize(read_image(lom_file, as_gray=True).data)
        perfect = read_image(test / "cbs_like" / f"{name}.tif").data
        sources = {"perfect": (perfect, "none"), "mix 0.6": (0.6 * perfect + 0.4 * lom, "none"), "mix 0.35": (0.35 * perfect + 0.65 * lom, "none"), "raw": (lom, "none")}
        if has_model:
            sources["styled"] = (lom, "model")
        for label, (img, style) in sources.items():
            src = out / "sources" / f"{name}_{label.replace(' ', '')}.tif"
            src.parent.mkdir(parents=True, exist_ok=True)
            write_tiff(src, img.astype(np.float32))
            res = register_pair(src, test / "cbs" / f"{name}.tif", out / "results" / f"{name}_{label.replace(' ', '')}", style=style, truth=test / "truth" / f"{name}_direct_transf.txt")
            m = res.metrics
            rows.append({"pair": k, "source": label, "tier": m["tier"], "tre": m["tre"]["mean"], "ncc": m["styled_ncc_after"], "consistency": m["transform"]["consistency_error"], "folded": m["transform"]["folded_fraction"]})
            print(f"{name} {label:<8} tier {m['tier']:<6} TRE {m['tre']['mean']:7.2f}  ncc {m['styled_ncc_after']:.3f}  consistency {m['transform']['consistency_error']:.3f}", flush=True)
    (out / "rows.json").write_text(json.dumps(rows, indent=1))

    half_a = [r for r in rows if r["pair"] % 2 == 0]
    half_b = [r for r in rows if r["pair"] % 2 == 1]
    th_a, th_b, th_all = _fit(half_a), _fit(half_b), _fit(rows)
    cm_b, agree_b, opt_b = _confusion(half_b, th_a)
    cm_a, agree_a, opt_a = _confusion(half_a, th_b)
    cm_all, agree_all, opt_all = _confusion(rows, th_all)
    cv_agree = (agree_a * len(half_a) + agree_b * len(half_b)) / len(rows)
    lines = [
        "# Grading without ground truth: calibration against TRE",
        "",
        f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}` ({len(rows)} registrations on {args.pairs} synthetic {args.size}x{args.size} pairs, bUnwarpJ Accurate/Fine, {time.perf_counter() - t0:.0f} s)",
        "",
        "Sources registered in place of the LOM: perfect CBS-like, mixtures 0.6 and 0.35 of it with the raw LOM, the raw LOM" + (", the styled LOM" if has_model else "") + ".",
        "",
        "True tiers: " + ", ".join(f"{t} {sum(r['tier'] == t for r in rows)}" for t in TIERS) + ".",
        "",
        f"**Out-of-sample agreement (two-fold, thresholds fitted on the other half of the pairs): {100 * cv_agree:.1f} %** exact tier; optimistic by two or more tiers: {opt_a + opt_b} of {len(rows)}.",
        "",
        f"Thresholds fitted on all pairs (used by styleunwarp): `{json.dumps(th_all)}`; in-sample agreement {100 * agree_all:.1f} %, optimistic by two or more tiers: {opt_all}.",
        "",
        "Confusion matrix (rows: true tier from TRE, columns: grader), all pairs, fitted thresholds:",
        "",
        "| true \\ grader | " + " | ".join(TIERS) + " |",
        "| --- | " + " | ".join("---:" for _ in TIERS) + " |",
    ]
    for i, t in enumerate(TIERS):
        lines.append(f"| {t} | " + " | ".join(str(v) for v in cm_all[i]) + " |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    (out / "thresholds.json").write_text(json.dumps(th_all, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(text)
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
