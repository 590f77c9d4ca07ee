"""How low may the representations correlate for the fine affine step's fit to be kept?

For every pair of each set (``lom3:SEED`` / ``blind:SEED``: LOM renderings of the real CBS images by
two renderers not ours, as ``bench_styled_defaults.py`` writes them; ``shale:SEED`` / ``clem:SEED``:
the real aligned pairs, the source deformed near-identity or small in turn, as
``bench_adapt_cli.py`` makes them) this prepares the pair as ``register`` does (the shipped model's
representation), runs the coarse step and the fine affine step as the chain runs them
(:func:`styleunwarp.pipeline.chain.fine_affine_start`) and records, against the truth, the mean
TRE of the coarse map and of the fit, the fit's NCC at the start and at the end, and what the step
kept. It then replays the step's decision with every floor of :data:`FLOORS` on the fitted NCC (a
fit that passed the step's other checks is kept at or above the floor, else the coarse map) and prints, per set and floor, the mean TRE
after the step, the pairs left more than 0.25 px farther from the truth than the coarse map, and
those brought more than 0.25 px closer. Writes ``OUT/rows.jsonl`` (a rerun skips pairs done).

    python benchmarks/bench_fine_affine_floor.py --sets lom3:59,blind:59,shale:59 --out /tmp/fa-floor [--views 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_adapt_cli import cases  # noqa: E402
from bench_fine_affine import prepare_and_fit  # noqa: E402
from bench_styled_defaults import add_views_option, use_views  # noqa: E402

FLOORS = (0.15, 0.18, 0.20, 0.22, 0.25)
"""Floors on the fitted NCC replayed (0.15 = :data:`styleunwarp.pipeline.coarse.MIN_SCORE`)."""

MARGIN_PX = 0.25
"""A fit counts as better or worse than the coarse map by more than this (mean TRE, px)."""


def run_pair(set_name: str, name: str, lom: Path, cbs: Path, truth_path: Path, model) -> dict:
    """One pair: the coarse and fine affine steps as ``register`` runs them, scored against the truth."""
    t0 = time.perf_counter()
    p = prepare_and_fit(lom, cbs, truth_path, model)
    f = p.step.facts
    fitted = f.get("matrix")
    return {"set": set_name, "pair": name, "tre_start": p.tre_of(np.eye(3)[:2]), "tre_coarse": p.tre_of(p.a0),
            "tre_fit": p.tre_of(fitted) if fitted is not None else None, "tre_step": p.tre_of(p.step.matrix),
            "kept": f.get("kept"), "reason": f.get("reason"), "ncc_start": f.get("ncc_start"), "ncc_refined": f.get("ncc_refined"),
            "moved_px": f.get("moved_px"), "seconds": time.perf_counter() - t0}


def passed_other_checks(row: dict) -> bool:
    """Whether the fit passed every check but the floor: kept, or refused by the floor alone (the step's last check)."""
    return row["tre_fit"] is not None and (row["kept"] == "refined" or "do not correlate enough" in (row.get("reason") or ""))


def replay(row: dict, floor: float) -> float:
    """The TRE after the step had its floor on the fitted NCC been ``floor``: a fit that passed every
    other check is kept at or above it."""
    if passed_other_checks(row) and (row["ncc_refined"] or 0.0) >= floor:
        return row["tre_fit"]
    return row["tre_coarse"]


def summary(rows: list[dict]) -> None:
    """Per set and floor: mean TRE after the step, pairs worse / better than the coarse map."""
    for s in sorted({r["set"] for r in rows}):
        rs = [r for r in rows if r["set"] == s and "tre_step" in r]
        print(f"{s}: {len(rs)} pairs; coarse map mean TRE {np.mean([r['tre_coarse'] for r in rs]):.3f} px")
        for floor in FLOORS:
            after = [replay(r, floor) for r in rs]
            worse = sum(a > r["tre_coarse"] + MARGIN_PX for a, r in zip(after, rs))
            better = sum(a < r["tre_coarse"] - MARGIN_PX for a, r in zip(after, rs))
            print(f"  floor {floor:.2f}: mean {np.mean(after):.3f} px, worse than the coarse map {worse}, better {better}")
        low = [r for r in rs if passed_other_checks(r) and (r["ncc_refined"] or 0.0) < max(FLOORS)]
        for r in sorted(low, key=lambda r: r["ncc_refined"]):
            print(f"    {r['pair']:<14} NCC {r['ncc_start']:.3f} -> {r['ncc_refined']:.3f}  TRE {r['tre_coarse']:.2f} -> {r['tre_fit']:.2f} px  moved {r['moved_px']:.2f} px")


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="lom3:59,blind:59")
    ap.add_argument("--real", default=str(repo.parent / "shared" / "data" / "openecci-cbs"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--pairs", type=int, default=0, help="first N pairs of each set only (0: all)")
    ap.add_argument("--model", default=None, help="style model (default: the shipped one)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/fa-floor"))
    add_views_option(ap)
    args = ap.parse_args()
    use_views(args.views)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "rows.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    done = {(r["set"], r["pair"]) for r in rows}
    for spec in args.sets.split(","):
        for set_name, name, lom, cbs, truth in cases(spec, args.out, Path(args.real), args.size)[: args.pairs or None]:
            if (set_name, name) in done:
                continue
            try:
                row = run_pair(set_name, name, Path(lom), Path(cbs), Path(truth), args.model)
            except Exception as exc:  # one failing pair is reported, the others go on
                row = {"set": set_name, "pair": name, "error": f"{type(exc).__name__}: {exc}"}
            rows.append(row)
            with open(path, "a") as fh:
                fh.write(json.dumps(row, default=float) + "\n")
            print(json.dumps({k: row.get(k) for k in ("set", "pair", "tre_coarse", "tre_fit", "kept", "ncc_refined", "error")}, default=float), flush=True)
    summary(rows)


if __name__ == "__main__":
    main()
