"""How far may the fine affine step move a pair? Every fit, kept or not, against the truth.

The fine affine step (:func:`styleunwarp.pipeline.fine_affine.fine_affine`) refuses a fit that
moves a target corner or the centre by more than :data:`~styleunwarp.pipeline.fine_affine.FINE_AFFINE_MAX_MOVE`
of the image's larger side, whatever the raw images' structure says. This benchmark prepares each
pair as ``register`` does (a style model's representation, or the raw images with ``--model none``),
runs the coarse step and the fine affine step, and records the fit *before* the rules choose:
its largest move (px and % of the larger side), the raw images' MIND agreement change in chance
spreads (negative: agrees better), the mean TRE of the coarse start and of the fit against the
known truth, and what the step kept and why. The summary counts, per band of the move, fits that
came nearer the truth by more than 0.25 px ("helped"), went further by more than 0.25 px ("hurt"),
and, for fits beyond the limit, whether the structure confirmed them (:func:`styleunwarp.pipeline.coarse.confirm.confirm`
against the start, as the step now asks) and how many of each ended within 5 px of the truth.

Pairs (made here from ``../shared/data``, each set skipped where its folder is absent): ``shale``
(24 BSE/SE pairs, BSE moved), ``clem`` (4 EM/FM pairs, EM moved), ``lom3`` and ``blind`` (real CBS
crops with LOM renderings by ``benchmarks/blind_lom3.py`` / ``blind_lom.py``), the source deformed
by the known smooth deformations of ``bench_asdelivered.CYCLES[--deformations]`` (``large``:
near-identity, then two of 3-8 deg, 8-25 px shift, 2-5 px elastic). ``--perturb F`` shifts each
coarse start by F of the larger side in a random direction: far starts made on purpose, where
the coarse step seldom leaves one.

    PYTHONPATH=python python benchmarks/bench_fine_affine_move.py --sets shale,clem,lom3,blind --deformations large --seed 49 --out /tmp/fam
    PYTHONPATH=python python benchmarks/bench_fine_affine_move.py --perturb 0.05 --seed 49 --out /tmp/fam5
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT.parent / "shared" / "data"
from bench_asdelivered import REAL_PAIRS  # noqa: E402
BANDS = (0.0, 0.01, 0.03, 0.05, 0.08, 1.0)
"""Bands of the fit's largest move, as fractions of the larger side."""
FAR = 0.03
"""The fine affine step's limit of a local step (:data:`styleunwarp.pipeline.fine_affine.FINE_AFFINE_MAX_MOVE`)."""
CHANGE_PX = 0.25
"""A fit 'helped' / 'hurt' when its mean TRE is this much below / above the start's."""


def make_cases(name: str, out: Path, seed: int, cycle: str) -> list[dict]:
    """The pairs of set ``name`` (see the module docstring), written under ``out``."""
    from bench_asdelivered import BLIND_RENDERERS, _blind_pairs, _deformed_real_pairs

    if name in REAL_PAIRS:
        folder, src, tgt = REAL_PAIRS[name]
        return _deformed_real_pairs(DATA / folder, src, tgt, out / name, seed, None, cycle=cycle) if (DATA / folder).is_dir() else []
    if name in BLIND_RENDERERS:
        cbs = DATA / "openecci-cbs"
        return _blind_pairs(cbs, out / name, seed, None, BLIND_RENDERERS[name], cycle=cycle) if cbs.is_dir() else []
    raise SystemExit(f"unknown set {name!r}: choose from {sorted(REAL_PAIRS) + sorted(BLIND_RENDERERS)}")


def run_case(case: dict, model: str | None, perturb: float = 0.0, seed: int = 0) -> dict:
    """The coarse start, the fine affine fit and the step's choice for one pair, with their TRE;
    ``perturb``: the start shifted by this fraction of the larger side in a random direction (a start
    the coarse step got wrong, made on purpose)."""
    from styleunwarp.io import to_gray
    from styleunwarp.pipeline.chain import check_for, coarse_alignment
    from styleunwarp.pipeline.coarse import compose_direct
    from styleunwarp.pipeline.coarse.confirm import LOCAL_GAIN_SDS, confirm
    from styleunwarp.pipeline.coarse.types import Candidate
    from styleunwarp.pipeline.fine_affine import fine_affine
    from styleunwarp.pipeline.pair import prepare_pair
    from styleunwarp.quality import tre
    from styleunwarp.transform import identity_elastic, read_transform

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        prep = prepare_pair(case["lom"], case["cbs"], tmp, model=None if model == "none" else model,
                            style="none" if model == "none" else "model")
    truth = read_transform(case["truth"])
    ref = prep.target if prep.reference_target is None else prep.reference_target
    check = check_for(prep.style_info.get("representation"))
    coarse = coarse_alignment("auto", ref, prep.styled, scale_known=prep.scale_known, check=check)
    a0 = np.array(coarse.chosen.matrix, np.float64)[:2]
    if perturb:
        angle = np.random.default_rng([seed, 91, sum(map(ord, case["name"]))]).uniform(0, 2 * np.pi)
        a0[:, 2] += perturb * max(ref.shape) * np.array([np.cos(angle), np.sin(angle)])
    raw_t, raw_s = to_gray(prep.cbs.data), prep.source_gray
    step = fine_affine(ref, prep.styled, a0, check=check, raw=(raw_t, raw_s))
    f = step.facts
    fitted = np.asarray(f.get("matrix", a0))
    ok, cf = confirm(raw_t, raw_s, Candidate.from_matrix("fit", fitted, 0.0), LOCAL_GAIN_SDS, start=a0)

    def tre_of(a: np.ndarray) -> float:
        return tre(compose_direct(identity_elastic(4, ref.shape), a), truth, ref.shape, prep.styled.shape[:2]).mean

    side = max(ref.shape)
    return {"pair": Path(case["name"]).name, "kind": case["kind"], "coarse": coarse.chosen.method, "tre_start": tre_of(a0),
            "tre_fit": tre_of(fitted), "moved_px": f.get("moved_px", 0.0), "moved_frac": f.get("moved_px", 0.0) / side,
            "drop_sds": f.get("mind_drop_sds", float("nan")), "ncc_start": f.get("ncc_start", float("nan")),
            "ncc_fit": f.get("ncc_refined", float("nan")), "confirmed": ok, "z_fit": cf["z"], "paired_t": cf["paired_t"],
            "gain_sds": (cf["mind_winner"] - cf["mind_identity"]) / max(cf["mind_chance_sd"], 1e-9), "kept": f["kept"], "reason": f["reason"].split(" (")[0],
            "seconds": time.perf_counter() - t0}


def summary(rows: list[dict]) -> list[str]:
    """One markdown row per set and band of the move: fits, helped, hurt, and the drops of the hurt ones."""
    lines = ["| set | move (% of side) | fits | helped | hurt | MIND change of helped (spreads) | of hurt |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in dict.fromkeys(r["set"] for r in rows):
        for lo, hi in zip(BANDS[:-1], BANDS[1:]):
            band = [r for r in rows if r["set"] == name and lo < float(r["moved_frac"]) <= hi and r["drop_sds"] == r["drop_sds"]]
            if not band:
                continue
            gain = [float(r["tre_start"]) - float(r["tre_fit"]) for r in band]
            helped = [-float(r["drop_sds"]) for r, g in zip(band, gain) if g > CHANGE_PX]
            hurt = [-float(r["drop_sds"]) for r, g in zip(band, gain) if g < -CHANGE_PX]

            def span(v: list[float]) -> str:
                return f"{min(v):+.1f} to {max(v):+.1f}" if v else "-"

            lines.append(f"| {name} | {100 * lo:g}-{100 * hi:g} | {len(band)} | {len(helped)} | {len(hurt)} | {span(helped)} | {span(hurt)} |")
    lines += ["", "Fits beyond the local step's limit (3 % of the side), by the structure's confirmation (coarse.confirm against the start):", "",
              "| set | far fits | confirmed | confirmed within 5 px of the truth | not confirmed | not confirmed within 5 px |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name in dict.fromkeys(r["set"] for r in rows):
        far = [r for r in rows if r["set"] == name and float(r["moved_frac"]) > FAR]
        yes = [r for r in far if str(r.get("confirmed")) == "True"]
        no = [r for r in far if str(r.get("confirmed")) != "True"]
        lines.append(f"| {name} | {len(far)} | {len(yes)} | {sum(float(r['tre_fit']) <= 5 for r in yes)} | {len(no)} | {sum(float(r['tre_fit']) <= 5 for r in no)} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="shale,clem,lom3,blind")
    ap.add_argument("--deformations", default="large", help="a key of bench_asdelivered.CYCLES (mixed, large)")
    ap.add_argument("--seed", type=int, default=49)
    ap.add_argument("--model", default=None, help="style model folder; 'none': raw images; default: the shipped model")
    ap.add_argument("--perturb", type=float, default=0.0,
                    help="shift the coarse start by this fraction of the larger side, in a random direction per pair")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_fine_affine_move"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "rows.csv"
    rows = list(csv.DictReader(open(path))) if path.exists() else []
    done = {(r["set"], r["pair"]) for r in rows}
    for name in args.sets.split(","):
        for case in make_cases(name, args.out / "data", args.seed, args.deformations):
            if (name, case["name"]) in done:
                continue
            try:
                row = {"set": name, **run_case(case, args.model, args.perturb, args.seed)}
            except Exception as exc:  # noqa: BLE001 - one failing pair is reported, the others go on
                print(f"{name} {case['name']}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            new = not path.exists()
            with open(path, "a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(row))
                if new:
                    w.writeheader()
                w.writerow(row)
            rows.append({k: str(v) for k, v in row.items()})
            print(f"{name:<6} {row['pair']:<16} {row['kind']:<14} start {row['tre_start']:6.2f} fit {row['tre_fit']:6.2f} moved {row['moved_px']:5.1f} px "
                  f"({100 * row['moved_frac']:4.1f} %) MIND {-row['drop_sds']:+5.1f} sd z {row['z_fit']:5.1f} t {row['paired_t']:5.1f} conf {row['confirmed']:d} kept {row['kept']:<7} {row['reason'][:60]} {row['seconds']:.0f}s", flush=True)
    rows = [dict(r, drop_sds=float(r["drop_sds"])) for r in rows]
    print("\n".join(summary(rows)))


if __name__ == "__main__":
    main()
