"""Does a fine affine fit that one half of the image makes also help the other half?

Reads as-user runs saved by ``bench_asdelivered.py`` (``OUT/results.json`` and
``OUT/runs/SET/PAIR/``: ``metrics.json``, ``target.tif``, ``styled.tif``), registers nothing. For every
pair whose fine affine step ran, it fits the step's similarity again (:func:`styleunwarp.pipeline.fine_affine.fit_affine`,
the pipeline's representations and coarse map) on each half of a checkerboard of K x K tiles of the
target's grid, and records against the truth the mean TRE of the coarse map, of the recorded fit and of
each half's fit; the NCC gain of each half's fit on the *other* half (a fit driven by what the whole
image shows gains there; one driven by a few details does not); and how far the two halves' fits lie
apart (largest move of a corner or the centre); and how far the fit lies from the coarse level's best
map (:func:`coarse_optimum`), in cells of that level (the larger side / ``REFINE_SIZE`` px). The
question: does a check that the halves agree, or that the fit stays in the coarse optimum's cell,
refuse the fits that moved a pair away from the truth, and keep the ones that brought it closer?

Prints one row per pair, sorted by what the recorded fit did to the TRE, and a summary of three rules
(both held-out gains positive; the halves' fits within the recorded fit's own move; the fit within one
coarse cell of the coarse optimum).
Writes ``OUT/halves.jsonl``.

    python benchmarks/bench_fine_affine_halves.py RUN [RUN ...] --out /tmp/halves [--tiles 4]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))


def checkerboard(shape: tuple[int, int], tiles: int) -> np.ndarray:
    """Boolean ``shape``: the even tiles of a ``tiles`` x ``tiles`` checkerboard."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy * tiles // h) + (xx * tiles // w)) % 2 == 0


def masked_ncc(target: np.ndarray, source: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> float:
    """NCC of ``target`` and ``source`` moved by ``matrix`` over ``mask`` and the pixels the source covers."""
    from styleunwarp.pipeline.coarse import warp_source
    from styleunwarp.quality import ncc

    moved = warp_source(source, matrix, target.shape)
    inside = warp_source(np.ones_like(source), matrix, target.shape) > 0.999
    return float(ncc(target, moved, mask & inside))


def coarse_optimum(metrics: dict, target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """The coarse level's best map: the highest-scoring of the coarse step's recorded candidates and the
    identity refined locally (:func:`styleunwarp.pipeline.coarse.similarity.refine_identity`, recomputed:
    the step records it only where it wins)."""
    from styleunwarp.pipeline.coarse.similarity import refine_identity

    local = refine_identity(target, source)
    scored = [(c["score"], np.asarray(c["matrix"], np.float64)[:2]) for c in metrics["coarse"].get("candidates") or []]
    return max(scored + [(local.score, np.asarray(local.matrix, np.float64)[:2])], key=lambda c: c[0])[1]


def pair_row(run: Path, entry: dict, tiles: int) -> dict | None:
    """The halves' fits of one saved pair, scored against its truth; None where no fine affine fit ran."""
    import tifffile

    from styleunwarp.io import read_image
    from styleunwarp.pipeline.coarse.similarity import REFINE_SIZE
    from styleunwarp.pipeline.fine_affine import fit_affine, largest_move
    from styleunwarp.quality import tre
    from styleunwarp.transform import affine_elastic, read_transform

    m = json.loads((run / "metrics.json").read_text())
    fa = m.get("fine_affine") or {}
    if "matrix" not in fa or not (run / "styled.tif").is_file():
        return None
    target = tifffile.imread(run / "target.tif").astype(np.float32)
    source = tifffile.imread(run / "styled.tif").astype(np.float32)
    source = source.mean(-1) if source.ndim == 3 else source
    start = np.asarray(m["coarse"]["chosen"]["matrix"], np.float64)[:2]
    fitted = np.asarray(fa["matrix"], np.float64)
    a = checkerboard(target.shape, tiles)
    fit_a = fit_affine(target, source, start, dof=fa.get("dof", 4), mask=a)[0]
    fit_b = fit_affine(target, source, start, dof=fa.get("dof", 4), mask=~a)[0]
    shape = tuple(m["cbs_shape"])
    lom_shape = read_image(entry["lom"]).data.shape[:2]
    truth = read_transform(entry["truth"])

    def err(matrix: np.ndarray) -> float:
        return float(tre(affine_elastic(matrix, 4, shape), truth, shape, lom_shape).mean)

    optimum = coarse_optimum(m, target, source)
    cell = max(target.shape) / REFINE_SIZE
    return {"pair": entry["name"], "start_px": err(start), "fit_px": err(fitted), "half_a_px": err(fit_a), "half_b_px": err(fit_b),
            "coarse_optimum_px": err(optimum), "from_coarse_optimum_cells": largest_move(optimum, fitted, target.shape) / cell,
            "moved_px": largest_move(start, fitted, target.shape), "halves_apart_px": largest_move(fit_a, fit_b, target.shape),
            "gain_on_b_of_a": masked_ncc(target, source, fit_a, ~a) - masked_ncc(target, source, start, ~a),
            "gain_on_a_of_b": masked_ncc(target, source, fit_b, a) - masked_ncc(target, source, start, a),
            "ncc_gain": fa["ncc_refined"] - fa["ncc_start"], "kept": fa["kept"]}


def summary(rows: list[dict], tolerance: float = 0.25) -> list[str]:
    """What each rule would have refused among the fits that helped, hurt or changed little."""
    rules = {"both held-out gains > 0": lambda r: r["gain_on_b_of_a"] > 0 and r["gain_on_a_of_b"] > 0,
             "halves within the fit's move": lambda r: r["halves_apart_px"] <= r["moved_px"],
             "within one coarse cell of the coarse optimum": lambda r: r["from_coarse_optimum_cells"] <= 1.0}
    helped = [r for r in rows if r["fit_px"] < r["start_px"] - tolerance]
    hurt = [r for r in rows if r["fit_px"] > r["start_px"] + tolerance]
    lines = [f"{len(rows)} fits: {len(helped)} brought the pair > {tolerance} px closer, {len(hurt)} moved it > {tolerance} px away"]
    for name, keep in rules.items():
        lost = [r for r in helped if not keep(r)]
        saved = [r for r in hurt if not keep(r)]
        lines.append(f"rule '{name}': refuses {len(saved)}/{len(hurt)} that hurt ({sum(r['fit_px'] - r['start_px'] for r in saved):.2f} px avoided) "
                     f"and {len(lost)}/{len(helped)} that helped ({sum(r['start_px'] - r['fit_px'] for r in lost):.2f} px lost)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="folders written by bench_asdelivered.py")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tiles", type=int, default=4, help="checkerboard tiles per side (default 4)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(args.out / "halves.jsonl", "w") as f:
        for folder in args.runs:
            results = json.loads((folder / "results.json").read_text())
            for set_name, entries in results.items():
                for entry in entries:
                    row = pair_row(folder / "runs" / set_name / entry["name"], entry, args.tiles)
                    if row is None:
                        continue
                    row.update(run=str(folder), set=set_name)
                    rows.append(row)
                    f.write(json.dumps(row) + "\n")
                    f.flush()
    rows.sort(key=lambda r: r["fit_px"] - r["start_px"])
    print("| run | pair | start px | fit | half A | half B | moved px | halves apart px | held-out gain A->B / B->A | coarse optimum px | fit from it (cells) | kept |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {Path(r['run']).name} | {r['pair']} | {r['start_px']:.2f} | {r['fit_px'] - r['start_px']:+.2f} | {r['half_a_px'] - r['start_px']:+.2f} | "
              f"{r['half_b_px'] - r['start_px']:+.2f} | {r['moved_px']:.2f} | {r['halves_apart_px']:.2f} | "
              f"{r['gain_on_b_of_a']:+.4f} / {r['gain_on_a_of_b']:+.4f} | {r['coarse_optimum_px']:.2f} | {r['from_coarse_optimum_cells']:.2f} | {r['kept']} |")
    print()
    print("\n".join(summary(rows)))


if __name__ == "__main__":
    main()
