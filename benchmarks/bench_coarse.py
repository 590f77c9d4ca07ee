"""The coarse step's search with and without the near-identity shortcut, per data set.

For every pair the two representations are made as the pipeline makes them
(``prepare_pair``: pixel-size matching, shipped style model or ``--style none``), then
``coarse.align("auto", ...)`` runs twice: ``shortcut=True`` (the default: skip when the
identity cannot be beaten, else a near-identity search first, the global search only when it
finds no clear peak) and ``shortcut=False`` (always the global search over the full circle
and every scale). Reported per pair: which search decided, CPU seconds of each, the start TRE
(mean px, the chosen coarse map against the truth) of each, and the largest distance between
the two chosen maps at the target's corners.

Data sets: ``perfect`` / ``styled`` (``synth.make_pair`` 512², the perfect CBS-like source or
the LOM through the shipped model, seeds from 3000), and those of ``bench_asdelivered.py``
(``asdelivered-px``, ``asdelivered-nopx``, ``shale``, ``clem``, from ``../shared/data``).

    PYTHONPATH=python python benchmarks/bench_coarse.py --sets perfect,styled,shale,asdelivered-px,asdelivered-nopx,clem [--n 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SYNTH = ("perfect", "styled")


def _synth_rows(kind: str, out: Path, n: int, seed: int) -> list[dict]:
    from styleunwarp.io import write_tiff
    from styleunwarp.synth import make_pair
    from styleunwarp.transform import write_elastic

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        p = make_pair((512, 512), seed=seed + i)
        write_tiff(out / f"p{i}_LOM.tif", p.cbs_like_lom if kind == "perfect" else p.lom)
        write_tiff(out / f"p{i}_CBS.tif", p.cbs)
        write_elastic(p.truth, out / f"p{i}_truth.txt")
        rows.append({"name": f"p{i}", "lom": out / f"p{i}_LOM.tif", "cbs": out / f"p{i}_CBS.tif", "truth": out / f"p{i}_truth.txt"})
    return rows


def _start_tre(a: np.ndarray, prep, truth) -> float:
    from styleunwarp.pipeline.coarse import compose_direct
    from styleunwarp.pipeline.grid import direct_to_original
    from styleunwarp.quality import tre
    from styleunwarp.transform import identity_elastic

    direct = direct_to_original(compose_direct(identity_elastic(4, prep.target.shape), a), prep.grid)
    return tre(direct, truth, prep.target.shape, prep.lom.data.shape[:2]).mean


def _corner_distance(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> float:
    h, w = shape
    pts = np.array([[0, w - 1, 0, w - 1], [0, 0, h - 1, h - 1], [1, 1, 1, 1]], np.float64)
    return float(np.abs(a @ pts - b @ pts).max())


def run_pair(row: dict, style: str, work: Path) -> dict:
    from styleunwarp.pipeline.coarse import align
    from styleunwarp.pipeline.pair import prepare_pair
    from styleunwarp.transform import read_transform

    prep = prepare_pair(row["lom"], row["cbs"], work / row["name"], style=style)
    truth = read_transform(row["truth"])
    out = {"name": row["name"]}
    chosen = {}
    for label, shortcut in (("new", True), ("old", False)):
        t0 = time.process_time()
        res = align("auto", prep.target, prep.styled, scale=1.0 if prep.scale_known else None, shortcut=shortcut)
        out[f"{label}_s"] = time.process_time() - t0
        out[f"{label}_tre"] = _start_tre(res.chosen.matrix, prep, truth)
        out[f"{label}_kept"] = "identity" if res.is_identity else res.chosen.method
        chosen[label] = res.chosen.matrix
        if shortcut:
            out["search"] = res.search
    out["map_diff_px"] = _corner_distance(chosen["new"], chosen["old"], prep.target.shape)
    return out


def main(argv: list[str] | None = None) -> int:
    from bench_asdelivered import SETS, make_sets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="perfect,styled,shale,asdelivered-px,asdelivered-nopx,clem")
    ap.add_argument("--n", type=int, default=6, help="pairs per synthetic / as-delivered set")
    ap.add_argument("--seed", type=int, default=3000, help="seed of the synthetic pairs (as-delivered: 1, as bench_asdelivered)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    unknown = sorted(set(sets) - set(SETS) - set(SYNTH))
    if unknown:
        ap.error(f"unknown data sets {unknown}")
    work = args.out or Path(tempfile.mkdtemp(prefix="bench_coarse_"))
    todo = {s: _synth_rows(s, work / "data" / s, args.n, args.seed) for s in sets if s in SYNTH}
    todo.update(make_sets(work, [s for s in sets if s in SETS], args.n, 1))
    summary = []
    for name, rows in todo.items():
        res = []
        for row in rows:
            r = run_pair(row, "none" if name == "perfect" else "model", work / "runs" / name)
            res.append(r)
            print(f"{name}/{r['name']}: search {r['search']}, new {r['new_s']:.2f} s TRE {r['new_tre']:.2f} ({r['new_kept']}), "
                  f"old {r['old_s']:.2f} s TRE {r['old_tre']:.2f} ({r['old_kept']}), maps differ {r['map_diff_px']:.2f} px", flush=True)
        searches = ", ".join(f"{k} {sum(r['search'] == k for r in res)}" for k in ("skipped", "near", "near-fallback", "global") if any(r["search"] == k for r in res))
        summary.append(
            f"| {name} | {len(res)} | {searches} | {statistics.median(r['old_s'] for r in res):.2f} | {statistics.median(r['new_s'] for r in res):.2f} | "
            f"{statistics.fmean(r['old_tre'] for r in res):.2f} | {statistics.fmean(r['new_tre'] for r in res):.2f} | "
            f"{sum(r['old_kept'] != r['new_kept'] for r in res)} | {max(r['map_diff_px'] for r in res):.2f} |"
        )
    print("\n| data set | pairs | search (new) | global only, CPU s (median) | new, CPU s (median) | start TRE global only | start TRE new | choice differs | max map difference px |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
