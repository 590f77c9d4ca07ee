"""At which blur should the fine affine step end? Its fit replayed with several blur schedules.

Two kinds of evidence, each against a known truth, registering nothing with bUnwarpJ:

* ``saved`` — as-user runs saved by ``bench_asdelivered.py`` (``OUT/results.json``,
  ``OUT/runs/SET/PAIR/{metrics.json,target.tif,styled.tif}``): for every pair whose fine affine step
  ran, the step's similarity is fitted again from the recorded coarse start on the pipeline's own maps,
  once per schedule, and scored by the mean TRE against the pair's truth.
* ``real`` — aligned real pairs of two modalities (``../shared/data``: shale SE -> BSE, the first 8
  pairs train and the other 16 test; CLEM EM -> FM, each pair left out in turn): the maps of three
  representations (the shipped model's boundary maps; a lookup table and a shared code fitted on the
  training pairs), two starts off the truth per pair (rotation <= 0.5 deg, scale <= 0.5 %, shift
  <= 2 px), each schedule fitted from each start; error = the mean distance of the fitted map from the
  identity (the truth: the pairs are aligned) over the target's grid.

Prints the mean error per data set (and representation) for each schedule, and the fits that
ended more than 0.25 px further from the truth than their start. Writes ``OUT/blur.jsonl``.

    python benchmarks/bench_fine_affine_blur.py saved /tmp/s45/near80lom4 /tmp/s45/near80lom3 --out /tmp/blur
    python benchmarks/bench_fine_affine_blur.py real shale clem --out /tmp/blur_real [--shared-seconds 120]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
DATA = ROOT.parent / "shared" / "data"

SCHEDULES = {"sharp": (2.0, 1.0, 0.0), "s32": (3.0, 2.0), "s42": (4.0, 2.0), "s43": (4.0, 3.0)}
"""Blur schedules compared (Gaussian sigmas, px of the working grid, coarse to fine); ``sharp`` was the step's until the forty-fourth session."""

REAL = {"shale": ("petrography-bse-se/se", "petrography-bse-se/bse"), "clem": ("deepclem-em-fm/em", "deepclem-em-fm/fm")}


def mean_distance(a: np.ndarray, shape: tuple[int, int]) -> float:
    """Mean distance (px) between where ``a`` (2x3) maps the target's pixels (every 8th) and the pixels."""
    h, w = shape
    yy, xx = np.mgrid[0:h:8, 0:w:8]
    p = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)])
    q = np.asarray(a)[:2] @ p
    return float(np.hypot(q[0] - p[0], q[1] - p[1]).mean())


def start_near(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A similarity off the identity: rotation <= 0.5 deg, scale <= 0.5 %, shift <= 2 px, about the centre."""
    h, w = shape
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    th, s = np.deg2rad(rng.uniform(-0.5, 0.5)), 1 + rng.uniform(-0.005, 0.005)
    lin = s * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    return np.hstack([lin, (c + rng.uniform(-2, 2, 2) - lin @ c)[:, None]])


def saved_rows(runs: list[Path]):
    """Rows of the saved as-user runs, one per pair whose fine affine step ran."""
    import tifffile

    from styleunwarp.io import read_image
    from styleunwarp.pipeline.fine_affine import fit_affine
    from styleunwarp.quality import tre
    from styleunwarp.transform import affine_elastic, read_transform

    for folder in runs:
        for set_name, entries in json.loads((folder / "results.json").read_text()).items():
            for entry in entries:
                run = folder / "runs" / set_name / entry["name"]
                if entry.get("status") != "done" or not (run / "styled.tif").is_file():
                    continue
                m = json.loads((run / "metrics.json").read_text())
                if "matrix" not in (m.get("fine_affine") or {}):
                    continue
                target = tifffile.imread(run / "target.tif").astype(np.float32)
                source = tifffile.imread(run / "styled.tif").astype(np.float32)
                source = source.mean(-1) if source.ndim == 3 else source
                start = np.asarray(m["coarse"]["chosen"]["matrix"], np.float64)[:2]
                shape, lom_shape = tuple(m["cbs_shape"]), read_image(entry["lom"]).data.shape[:2]
                truth = read_transform(entry["truth"])

                def err(a: np.ndarray) -> float:
                    return float(tre(affine_elastic(a, 4, shape), truth, shape, lom_shape).mean)

                row = {"set": f"{folder.name}/{set_name}", "pair": entry["name"], "rep": m.get("representation") or m.get("style"),
                       "start": err(start), "recorded": err(np.asarray(m["fine_affine"]["matrix"]))}
                for name, sigmas in SCHEDULES.items():
                    row[name] = err(fit_affine(target, source, start, sigmas=sigmas, dof=4)[0])
                yield row


def real_rows(sets: list[str], shared_seconds: float, seed: int = 7):
    """Rows of the real aligned pairs, per test pair, representation and start."""
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.pipeline.fine_affine import fit_affine
    from styleunwarp.style.auto import _shipped_model
    from styleunwarp.style.representations.lut import IntensityMap
    from styleunwarp.style.representations.shared import train_shared

    edges = _shipped_model()
    rng = np.random.default_rng(seed)
    for name in sets:
        src_dir, tgt_dir = REAL[name]
        files = sorted((DATA / src_dir).glob("*.png"))
        pairs = [(f.stem, read_image(f).data.astype(np.float32), to_gray(read_image(DATA / tgt_dir / f.name).data).astype(np.float32))
                 for f in files]
        splits = [(pairs[:8], pairs[8:])] if name == "shale" else [([p for p in pairs if p is not q], [q]) for q in pairs]
        for train, test in splits:
            aligned = [(s, t) for _, s, t in train]
            reps = {"edges": edges, "lut": IntensityMap.fit(aligned, 1)}
            if shared_seconds > 0:
                reps["shared"] = train_shared(aligned, 1, seconds=shared_seconds, snapshots=1)[0][-1]
            for stem, s, t in test:
                starts = [start_near(rng, t.shape) for _ in range(2)]
                for rep_name, rep in reps.items():
                    if rep is None:
                        continue
                    source_map, target_map = rep.represent(s, t)
                    for start in starts:
                        row = {"set": name, "pair": stem, "rep": rep_name, "start": mean_distance(start, t.shape)}
                        for sched, sigmas in SCHEDULES.items():
                            row[sched] = mean_distance(fit_affine(target_map, source_map, start, sigmas=sigmas, dof=4)[0], t.shape)
                        yield row


def summary(rows: list[dict], by: tuple[str, ...] = ("set",), tolerance: float = 0.25) -> list[str]:
    """Mean error per group and schedule, and the fits that ended further from the truth than their start."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    lines = ["| " + " / ".join(by) + " | fits | start | " + " | ".join(SCHEDULES) + " |", "|---" * (3 + len(SCHEDULES)) + "|"]
    for key, rs in sorted(groups.items()) + [(("all",), rows)]:
        lines.append(f"| {' / '.join(map(str, key))} | {len(rs)} | {np.mean([r['start'] for r in rs]):.3f} | "
                     + " | ".join(f"{np.mean([r[s] for r in rs]):.3f}" for s in SCHEDULES) + " |")
    for s in SCHEDULES:
        worse = [r for r in rows if r[s] > r["start"] + tolerance]
        lines.append(f"{s}: {len(worse)} of {len(rows)} fits ended > {tolerance} px further from the truth than their start"
                     + (": " + ", ".join(f"{r['set']} {r['pair']} {r['rep']} {r['start']:.2f}->{r[s]:.2f}" for r in worse) if worse else ""))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=("saved", "real"))
    ap.add_argument("inputs", nargs="+", help="saved: folders written by bench_asdelivered.py; real: shale and/or clem")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shared-seconds", type=float, default=120.0, help="real: training time of the shared code per split (0: left out)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    source = saved_rows([Path(p) for p in args.inputs]) if args.kind == "saved" else real_rows(args.inputs, args.shared_seconds)
    with open(args.out / "blur.jsonl", "a") as f:
        for row in source:
            rows.append(row)
            f.write(json.dumps(row) + "\n")
            f.flush()
    print("\n".join(summary(rows, ("set",) if args.kind == "saved" else ("set", "rep"))))


if __name__ == "__main__":
    main()
