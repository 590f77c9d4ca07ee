"""Is the fine affine step's fit determined by the images? Split-half fits against the truth.

For each pair (as ``register`` prepares it: the shipped model's representation, the coarse step)
the fine affine fit (:func:`styleunwarp.pipeline.fine_affine.fit_affine`) runs on the whole image
and, separately, on each half of a checkerboard of square tiles. A fit that the images
determine gives nearly the same map from either half, and each half's map raises the NCC on the
other half; a fit that follows noise in a weak representation does neither. Each row records
the TRE (mean px, against the known truth) of the coarse start and of the whole-image fit, what
the pipeline's step kept, and the split-half statistics:

* ``split_px``: the largest distance between the two halves' maps (target corners and centre);
* ``cv_gain_a`` / ``cv_gain_b``: the NCC gain of each half's map over the start, on the other half;
* ``full_gain``: the whole-image fit's NCC gain;
* ``aff_*``: the mean distance (px) of a map to the truth's own best affine map (its elastic part left out);

each for the affine fit (6 parameters, as the pipeline), a similarity (4) and a shift (2),
the latter two in columns ending in ``4`` and ``2``.

Pairs come from folders as ``bench_asdelivered.py`` writes them (``NAME_LOM.tif``,
``NAME_CBS.tif``, ``NAME_truth.txt``) or as ``bench_styled_defaults.py`` writes its sets
(``lom/``, ``cbs/``, ``truth/``), given as ``LABEL=FOLDER``. Pixel sizes in the files are not
used here: the TRE is measured on the grids as recorded.

    python benchmarks/bench_fine_affine.py --sets lom3_38=/tmp/ad38/data/lom3,blind_38=/tmp/ad38/data/blind --out /tmp/fa
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DOFS = (6, 4, 2)
"""Fits compared: affine, similarity, shift (:data:`styleunwarp.pipeline.fine_affine.DOF_BASES`); columns of 4 and 2 end in the number."""

TILE_PX = 64
"""Side (px of the target grid) of the checkerboard tiles that split the image in two halves."""


def checkerboard(shape: tuple[int, int], tile: int = TILE_PX) -> np.ndarray:
    """Boolean ``shape``: True on the 'black' tiles of a checkerboard of ``tile`` px squares."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return ((yy // tile + xx // tile) % 2) == 0


def pairs_in(folder: Path) -> list[tuple[str, Path, Path, Path]]:
    """``(name, lom, cbs, truth)`` for every ``NAME_LOM.tif`` with its CBS and truth in ``folder``,
    or, in a folder as ``bench_styled_defaults.py`` writes its sets, every ``lom/NAME.tif`` with
    ``cbs/NAME.tif`` and ``truth/NAME_direct_transf.txt``."""
    rows = []
    for lom in sorted((folder / "lom").glob("*.tif")):
        cbs, truth = folder / "cbs" / lom.name, folder / "truth" / f"{lom.stem}_direct_transf.txt"
        if cbs.exists() and truth.exists():
            rows.append((lom.stem, lom, cbs, truth))
    for lom in sorted(folder.glob("*_LOM.tif")):
        name = lom.name[: -len("_LOM.tif")]
        cbs, truth = folder / f"{name}_CBS.tif", folder / f"{name}_truth.txt"
        if cbs.exists() and truth.exists():
            rows.append((name, lom, cbs, truth))
    return rows


@dataclass(frozen=True)
class Prepared:
    """A pair as ``register`` prepares it, its coarse map ``a0`` and the fine affine ``step`` from it."""

    ref: np.ndarray
    styled: np.ndarray
    truth: object
    a0: np.ndarray
    step: object
    coarse_method: str

    def tre_of(self, a: np.ndarray) -> float:
        """Mean TRE (px) of the affine map ``a`` (target pixel -> source pixel) against the truth."""
        from styleunwarp.pipeline.coarse import compose_direct
        from styleunwarp.quality import tre
        from styleunwarp.transform import identity_elastic

        return float(tre(compose_direct(identity_elastic(4, self.ref.shape), np.asarray(a)), self.truth, self.ref.shape, self.styled.shape[:2]).mean)


def prepare_and_fit(lom: Path, cbs: Path, truth_path: Path, model) -> Prepared:
    """Prepare the pair as ``register`` does (``model``'s representation), run the coarse step and the
    fine affine step as the chain runs them."""
    from styleunwarp.io import to_gray
    from styleunwarp.pipeline.chain import check_for, coarse_alignment, fine_affine_start
    from styleunwarp.pipeline.fine_affine import default_fine_sigmas
    from styleunwarp.pipeline.pair import prepare_pair
    from styleunwarp.transform import read_transform

    with tempfile.TemporaryDirectory() as tmp:
        prep = prepare_pair(lom, cbs, tmp, model=model)
    ref = prep.target if prep.reference_target is None else prep.reference_target
    check = check_for(prep.style_info.get("representation"))
    coarse = coarse_alignment("auto", ref, prep.styled, scale_known=prep.scale_known, check=check)
    step = fine_affine_start(ref, prep.styled, coarse.chosen.matrix, check=check, raw=(to_gray(prep.cbs.data), prep.source_gray),
                             sigmas=default_fine_sigmas(*prep.made_with))
    return Prepared(ref, prep.styled, read_transform(truth_path), coarse.chosen.matrix, step, coarse.chosen.method)


def run_pair(label: str, name: str, lom: Path, cbs: Path, truth_path: Path, model) -> dict:
    from styleunwarp.pipeline.fine_affine import fit_affine, largest_move
    from styleunwarp.transform import to_dense
    from styleunwarp.transform.warp import inside_source

    t0 = time.perf_counter()
    p = prepare_and_fit(lom, cbs, truth_path, model)
    ref, styled, truth, a0, step, tre_of = p.ref, p.styled, p.truth, p.a0, p.step, p.tre_of

    # the truth's own best affine map (least squares over the target pixels it maps inside the source):
    # the distance of a fit to it is the fit's error without the truth's elastic part
    dense = to_dense(truth, ref.shape)
    inside = inside_source(dense, styled.shape[:2])
    yy, xx = np.nonzero(inside)
    design = np.stack([xx, yy, np.ones_like(xx)], 1).astype(np.float64)
    best = np.linalg.lstsq(design, np.stack([dense[0][inside], dense[1][inside]], 1), rcond=None)[0].T  # 2x3

    def affine_error(a: np.ndarray) -> float:
        return float(np.mean(np.hypot(*((np.asarray(a)[:2] - best) @ design.T))))

    half = checkerboard(ref.shape)

    def ncc_on(a: np.ndarray, m: np.ndarray) -> float:  # NCC of the map on a half, without fitting
        return fit_affine(ref, styled, a, mask=m, max_iter=0, sigmas=(0.0,))[1]

    start_a, start_b = ncc_on(a0, ~half), ncc_on(a0, half)  # the start's NCC on each half, whatever the dof
    row = {"set": label, "pair": name, "coarse": p.coarse_method, "tre_coarse": tre_of(a0), "aff_coarse": affine_error(a0), "kept": step.facts.get("kept", ""),
           "tre_kept": tre_of(step.matrix), "mind_drop_sds": step.facts.get("mind_drop_sds", float("nan"))}
    for dof in DOFS:
        sfx = "" if dof == 6 else str(dof)
        full, ncc0, ncc1 = fit_affine(ref, styled, a0, dof=dof)
        fit_a, _, _ = fit_affine(ref, styled, a0, mask=half, dof=dof)
        fit_b, _, _ = fit_affine(ref, styled, a0, mask=~half, dof=dof)
        row.update({f"tre_fit{sfx}": tre_of(full), f"aff_fit{sfx}": affine_error(full), f"aff_a{sfx}": affine_error(fit_a), f"tre_a{sfx}": tre_of(fit_a), f"tre_b{sfx}": tre_of(fit_b), f"ncc_start{sfx}": ncc0,
                    f"full_gain{sfx}": ncc1 - ncc0, f"cv_gain_a{sfx}": ncc_on(fit_a, ~half) - start_a,
                    f"cv_gain_b{sfx}": ncc_on(fit_b, half) - start_b, f"split_px{sfx}": largest_move(fit_a, fit_b, ref.shape),
                    f"moved_px{sfx}": largest_move(a0, full, ref.shape)})
    row["seconds"] = time.perf_counter() - t0
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", required=True, help="LABEL=FOLDER,... (folders as bench_asdelivered.py writes them)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default=None, help="style model (default: the shipped one)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "rows.csv"
    done = set()
    if path.exists():
        with open(path) as fh:
            done = {(r["set"], r["pair"]) for r in csv.DictReader(fh)}
    fields = None
    for spec in args.sets.split(","):
        label, folder = spec.split("=", 1)
        for name, lom, cbs, truth in pairs_in(Path(folder)):
            if (label, name) in done:
                continue
            try:
                row = run_pair(label, name, lom, cbs, truth, args.model)
            except Exception as exc:  # one failing pair is reported, the others go on
                print(f"{label} {name}: FAILED {exc}", file=sys.stderr)
                continue
            fields = fields or list(row)
            new = not path.exists()
            with open(path, "a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=fields)
                if new:
                    w.writeheader()
                w.writerow(row)
            print(f"{label:<10} {name:<16} coarse {row['tre_coarse']:6.2f} ({row['aff_coarse']:5.2f}) fit {row['tre_fit']:6.2f} ({row['aff_fit']:5.2f}) kept {row['kept']:<8}"
                  f" {row['tre_kept']:6.2f}  halves {row['tre_a']:5.2f}/{row['tre_b']:5.2f} split {row['split_px']:5.2f}"
                  f" cv {row['cv_gain_a']:+.4f}/{row['cv_gain_b']:+.4f} gain {row['full_gain']:+.4f} ncc {row['ncc_start']:.3f}"
                  f" | similarity {row['tre_fit4']:5.2f} ({row['aff_fit4']:5.2f}) split {row['split_px4']:5.2f} | shift {row['tre_fit2']:5.2f} ({row['aff_fit2']:5.2f}) split {row['split_px2']:5.2f}"
                  f" {row['seconds']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
