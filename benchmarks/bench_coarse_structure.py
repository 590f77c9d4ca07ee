"""The raw chain's last coarse search, on local structure (MIND-SSC): how it separates right from wrong, and what it changes.

Cases (made here from ``../shared/data``, each set skipped when its folder is absent):

* ``shale-rigid`` / ``clem-rigid``: held-out cases cut as Lu et al. 2022 cut theirs
  (``bench_asdelivered.rigid_patch_pairs``: four levels of rotation up to 20 deg and translation up
  to 9.6 % of the side; shale 256 px, one per pair; CLEM 512 px, four per pair);
* ``shale``, ``clem``, ``lom3``, ``blind``: the as-delivered sets of ``bench_asdelivered.py``
  (near-identity and small smooth deformations; lom3 and blind: raw steel LOM renderings by the two
  foreign renderers against real CBS, as the second opinion's raw chain sees them).

For every case, on the raw images (grey): the structure search's best and next different
hypothesis and the identity (their scores, the best's distance from the truth, whether it is the
identity), and ``pipeline.chain.coarse_alignment(check="structure")`` without and with the stage
(the start each would give the elastic step, mean px from the truth). Rows go to ``OUT/rows.jsonl``
(a rerun resumes); the summary prints per set: cases, best within 5 px, the unique-peak ratio of
wrong bests (> 5 px) and of right ones not at the identity, and what the stage changed.

    python benchmarks/bench_coarse_structure.py [--sets shale-rigid,clem-rigid,shale,clem,lom3,blind] [--seed 8] [--out /tmp/bench_coarse_structure]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT.parent / "shared" / "data"
WORSE_PX = 0.25


def cases(name: str, out: Path, seed: int) -> list[dict]:
    from bench_asdelivered import image_names, make_sets, rigid_patch_pairs
    from bench_user_field import RIGID_CASES, SETS

    base = name.removesuffix("-rigid")
    if base != name and base in RIGID_CASES:  # the cases bench_user_field.py --deformations rigid cuts
        (folder, src, tgt), (side, per_pair) = SETS[base], RIGID_CASES[base]
        if not (DATA / folder).is_dir():
            return []
        names = image_names(DATA / folder / src)
        return rigid_patch_pairs(DATA / folder, src, tgt, out / "data" / name, seed, names, side, per_pair)
    return make_sets(out, [name], 10, seed).get(name, [])


def measure(case: dict) -> dict:
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.pipeline.chain import coarse_alignment
    from styleunwarp.pipeline.coarse import mind
    from styleunwarp.pipeline.coarse.mutual import _near_identity
    from styleunwarp.transform import read_transform, to_dense

    lom, cbs = (to_gray(read_image(case[k]).data).astype(np.float32) for k in ("lom", "cbs"))
    truth = to_dense(read_transform(case["truth"]), cbs.shape)
    yy, xx = np.mgrid[0:cbs.shape[0], 0:cbs.shape[1]]

    def err(m: np.ndarray) -> float:
        return float(np.hypot(m[0, 0] * xx + m[0, 1] * yy + m[0, 2] - truth[0], m[1, 0] * xx + m[1, 1] * yy + m[1, 2] - truth[1]).mean())

    t0 = time.perf_counter()
    cands, identity = mind.search(cbs, lom)
    row = {"name": case["name"], "kind": case.get("kind"), "start": err(np.eye(2, 3)), "search_s": round(time.perf_counter() - t0, 2),
           "identity": identity.score, "best": cands[0].score, "best_px": err(cands[0].matrix),
           "best_is_identity": _near_identity(cands[0].matrix, cbs.shape, mind.SIZE, mind.AT_IDENTITY_PX),
           "second": cands[1].score if len(cands) > 1 else None}
    before = coarse_alignment("auto", cbs, lom, check="structure", structure_search=False)
    after = coarse_alignment("auto", cbs, lom, check="structure") if before.is_identity else before
    row.update({"before_px": err(before.chosen.matrix), "before_search": before.search, "after_px": err(after.chosen.matrix),
                "after_search": after.search, "after_reason": after.reason if after is not before else ""})
    return row


def summary(name: str, rows: list[dict]) -> str:
    """One table row: how the search's best hypotheses separate, and what the stage changed."""
    ratio = [r["best"] / r["second"] if r["second"] and r["second"] > 0 else np.inf for r in rows]
    wrong = [q for q, r in zip(ratio, rows) if r["best_px"] > 5]
    right = [q for q, r in zip(ratio, rows) if r["best_px"] <= 5 and not r["best_is_identity"]]
    changed = [r for r in rows if r["after_search"] == "structure"]
    closer = sum(r["after_px"] < r["before_px"] - WORSE_PX for r in changed)
    farther = sum(r["after_px"] > r["before_px"] + WORSE_PX for r in changed)
    cells = [name, str(len(rows)), str(sum(r["best_px"] <= 5 for r in rows)),
             f"{max(wrong):.2f} ({len(wrong)})" if wrong else "- (0)", f"{min(right):.2f} ({len(right)})" if right else "- (0)",
             f"{len(changed)}: {closer} closer, {farther} farther" + "".join(f"; {r['name']} {r['before_px']:.1f} -> {r['after_px']:.1f}" for r in changed)]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="shale-rigid,clem-rigid,shale,clem,lom3,blind")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_coarse_structure"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "rows.jsonl"
    done = {(r["set"], r["name"]): r for r in map(json.loads, store.read_text().splitlines())} if store.is_file() else {}
    table = []
    for name in args.sets.split(","):
        rows = []
        for case in cases(name, args.out, args.seed):
            row = done.get((name, case["name"]))
            if row is None:
                row = {"set": name, **measure(case)}
                with store.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
            rows.append(row)
            print(f"{name} {row['name']}: start {row['start']:.1f}, structure search best {row['best_px']:.1f} px "
                  f"(ratio {row['best'] / row['second'] if row['second'] else float('inf'):.2f}{', the identity' if row['best_is_identity'] else ''}), "
                  f"coarse step {row['before_px']:.1f} -> {row['after_px']:.1f} px ({row['after_search']})", flush=True)
        if rows:
            table.append(summary(name, rows))
    print(f"\ncommand: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print("| set | cases | best within 5 px | largest ratio of a wrong best (n) | smallest ratio of a right best away from the identity (n) | "
          "cases the stage changed |\n|---|---|---|---|---|---|")
    print("\n".join(table))


if __name__ == "__main__":
    main()
