"""The coarse step on raw images of two modalities: hypotheses searched on grey levels vs on edge strength.

Real aligned pairs of other modalities (shale BSE/SE, CLEM EM/FM from ``../shared/data``), the
source deformed by a known smooth deformation as ``bench_asdelivered.py`` does (``--deformations
mixed``: near-identity and small in turn; ``large``: near-identity, then two of 3-8 deg, 8-25 px,
2-5 px elastic; ``rigid``: Lu et al. 2022's four levels in turn, up to 20 deg and 9.6 % of the side,
patches cut from the field as ``bench_user_field.py --deformations rigid`` cuts them). For every case ``pipeline.chain.coarse_alignment`` runs twice on the raw images,
as a raw chain's coarse step: ``check="alike"`` (hypotheses scored by the NCC of the grey levels,
the behaviour before), on :func:`styleunwarp.structure.edge_strength` alone (``coarse.align(...,
search_on=...)``), and ``check="structure"`` (grey levels, then edge strength where they keep the
identity: what ``register`` did for raw images), and that cascade with a last search by mutual
information where edge strength keeps the identity too (what ``register`` does now); every winner
must be confirmed by MIND-SSC on the raw images. Reported: the mean distance (px) of the chosen coarse map from the truth, per case and
per data set (cases within 5 px, median, cases made worse than the start by > 0.25 px).

    PYTHONPATH=python python benchmarks/bench_coarse_raw.py [--sets shale,clem] [--deformations mixed,large,rigid] [--seed 5] [--out /tmp/bench_coarse_raw]
        [--searches 0,1,2,3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT.parent / "shared" / "data"
from bench_asdelivered import REAL_PAIRS as SETS  # noqa: E402
RIGID_CASES = {"shale": (256, 1), "clem": (512, 2)}
"""``--deformations rigid``: patch side and cases per pair."""
SEARCHES = ("grey levels", "edge strength", "grey levels, then edge strength", "grey levels, edge strength, then mutual information")


def coarse_error(matrix: np.ndarray, truth, shape: tuple[int, int]) -> float:
    """Mean TRE (px, :func:`styleunwarp.quality.tre`) of a 2x3 target-to-source map against the true transform."""
    from styleunwarp.pipeline.coarse import compose_direct
    from styleunwarp.quality import tre
    from styleunwarp.transform import identity_elastic

    return tre(compose_direct(identity_elastic(4, shape), matrix), truth, shape, shape).mean


def main() -> None:
    from bench_asdelivered import _deformed_real_pairs, image_names, rigid_patch_pairs

    from styleunwarp.io import read_image, to_gray
    from styleunwarp.pipeline.chain import coarse_alignment
    from styleunwarp.pipeline.coarse import align
    from styleunwarp.structure import edge_strength
    from styleunwarp.transform import read_transform

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="shale,clem")
    ap.add_argument("--deformations", default="mixed,large")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_coarse_raw"))
    ap.add_argument("--searches", default=",".join(str(i) for i in range(len(SEARCHES))),
                    help="which searches to run, by index into SEARCHES (default: all)")
    args = ap.parse_args()
    searches = [SEARCHES[int(i)] for i in args.searches.split(",")]
    table = []
    for set_name in args.sets.split(","):
        folder, src, tgt = SETS[set_name]
        if not (DATA / folder).is_dir():
            print(f"{set_name}: {DATA / folder} not found, skipped")
            continue
        for cycle in args.deformations.split(","):
            if cycle == "rigid":  # Lu et al. 2022's levels, patches cut from the field (bench_asdelivered.rigid_patch_pairs)
                names = image_names(DATA / folder / src)
                side, per_pair = RIGID_CASES[set_name]
                cases = rigid_patch_pairs(DATA / folder, src, tgt, args.out / f"{set_name}-{cycle}", args.seed, names, side, per_pair)
            else:
                cases = _deformed_real_pairs(DATA / folder, src, tgt, args.out / f"{set_name}-{cycle}", args.seed, None, cycle=cycle)
            errs: dict[str, list[float]] = {"start": [], **{k: [] for k in searches}}
            for c in cases:
                a = to_gray(read_image(c["lom"]).data).astype(np.float32)
                b = to_gray(read_image(c["cbs"]).data).astype(np.float32)
                truth = read_transform(c["truth"])
                errs["start"].append(coarse_error(np.eye(2, 3), truth, b.shape))
                line = [f"{set_name}-{cycle} {c['name']} ({c['kind']}): start {errs['start'][-1]:.1f}"]
                for label in searches:
                    if label == "edge strength":
                        r = align("auto", b, a, search_on=(edge_strength(b), edge_strength(a)))
                    elif label == "grey levels":
                        r = coarse_alignment("auto", b, a, check="alike")
                    else:
                        r = coarse_alignment("auto", b, a, check="structure", mutual_information="mutual" in label)
                    errs[label].append(coarse_error(r.chosen.matrix, truth, b.shape))
                    line.append(f"{label} {errs[label][-1]:.1f} ({'identity' if r.is_identity else r.chosen.method})")
                print(", ".join(line), flush=True)
            start = np.array(errs["start"])
            for label, v in errs.items():
                v = np.array(v)
                worse = int((v > start + 0.25).sum())
                table.append(f"| {set_name} | {cycle} | {label} | {(v <= 5).sum()}/{v.size} | {np.median(v):.1f} | {worse} |")
    print(f"\ncommand: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print("| data set | deformations | coarse start | within 5 px | median px | worse than start |\n|---|---|---|---|---|---|")
    print("\n".join(table))


if __name__ == "__main__":
    main()
