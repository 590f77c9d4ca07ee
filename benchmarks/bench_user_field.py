"""A field the chain was not built on, run exactly as a user runs it: ``train`` on aligned pairs, ``register`` held-out ones.

The issue's acceptance test on an unseen field, reproduced on each real modality pair in
../shared/data: the aligned pairs are split (seeded shuffle) into training pairs and held-out
pairs; the held-out sources are deformed by known smooth deformations (alternately near-identity,
rotation <= 0.5 deg, shift <= 1.5 px, elastic <= 1 px, and small, 1-3 deg, 2-6 px, 1-3 px; as
``bench_asdelivered.py``). Then, through the command line with its defaults:

* ``styleunwarp train TRAIN --out M`` (``--target auto``, 15 minutes unless ``--max-minutes``);
* ``styleunwarp register LOM CBS --model M --out D --truth T`` for every held-out pair;
* the training-free baseline of the issue, ``styleunwarp register LOM CBS --backend elastix --style none``.

Prints, per data set and method, the pairs within 1.5 px and 5 px mean TRE and the median TRE
(start = no registration); rows go to ``OUT/rows_SET.csv``. ``shale-hue`` is shale with its BSE
grey levels shown as hues (:data:`RECODED`): a colour source; ``clem-hue`` likewise the CLEM EM against
its sparse chromatin channel (a dense colour source against a sparse target, as a stained bright-field
section against a fibre or fluorescence channel).

    python benchmarks/bench_user_field.py [--sets shale,shale-hue,clem] [--train 12] [--out /tmp/user-field]
        [--max-minutes 15] [--seed 0] [--case-seed N] [--deformations mixed|large|rigid]

``--deformations large`` gives every third pair a near-identity deformation and the others
3-8 deg, 8-25 px, 2-5 px elastic (most start more than 5 px off, as in the issue's unseen field).
``--deformations rigid`` cuts the held-out cases as Lu et al. 2022 cut their evaluation sets (the
"Is image-to-image translation the panacea" study the issue cites): a reference patch from the
target's centre and the source patch from the larger source field at a known rotation and
translation, their four levels in turn (up to 5, 10, 15, 20 deg; up to 2.4, 4.8, 7.2, 9.6 % of the
side per axis), so the moved source has no empty border (``bench_asdelivered.rigid_patch_pairs``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_asdelivered import CYCLES, REAL_PAIRS, image_names  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SETS = {**REAL_PAIRS, "shale-hue": REAL_PAIRS["shale"], "clem-hue": REAL_PAIRS["clem"],
        "shale-rev": ("petrography-bse-se", "se", "bse"), "clem-rev": ("deepclem-em-fm", "fm", "em")}
"""``-rev``: the same real pairs with the roles swapped (the secondary electrons or the fluorescence
moved onto the backscatter or the EM image), a direction no choice of ours was made on."""
RIGID_CASES = {"shale": (256, 1), "shale-hue": (256, 1), "shale-rev": (256, 1),
               "clem": (512, 4), "clem-hue": (512, 4), "clem-rev": (512, 4)}
"""``--deformations rigid``: patch side and cases per held-out pair (the largest side every level fits in the field)."""
LOOK_CAST = (0.75, 1.25, 0.12)
"""``--held-out-look varied``: per-channel gain range and largest offset (fraction of the range) of a held-out source's colour cast."""
LOOK_GAMMA = (0.7, 1.4)
"""``--held-out-look varied``: range of the tone curve's exponent."""
RECODED = {"shale-hue", "clem-hue"}
"""Sets whose sources are the data set's grey sources shown as colour (``bench_auto_candidates.hue_coded``:
the grey level as a hue, so the luminance is not monotonic in it): a colour source whose colour marks
what the target shows, as a stain does. Training sources are coded by their own range, held-out ones
by the range of the field they were cut from."""


def styleunwarp(*args: str) -> subprocess.CompletedProcess:
    """Run the command-line tool as a user would (this Python's package)."""
    cmd = [sys.executable, "-m", "styleunwarp", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "python")})


def split(folder: Path, src_dir: str, n_train: int, seed: int) -> tuple[list[str], list[str]]:
    names = image_names(folder / src_dir)
    order = list(np.random.default_rng(seed).permutation(len(names)))
    n_train = min(n_train, len(names) - 1)
    return sorted(names[i] for i in order[:n_train]), sorted(names[i] for i in order[n_train:])


def varied_look(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` (uint8, grey or RGB) with another look, as another slide or session of the same
    microscope gives it: a per-channel gain and offset (:data:`LOOK_CAST`; RGB only, a stain or white
    balance that differs) and one tone curve (:data:`LOOK_GAMMA`). Black (an empty border) stays black."""
    u = np.asarray(image, np.float64) / 255.0
    lo, hi, off = LOOK_CAST
    shape = (1, 1, u.shape[2]) if u.ndim == 3 else (1, 1)
    v = np.clip(u * rng.uniform(lo, hi, shape) + rng.uniform(-off, off, shape), 0.0, 1.0)
    v = v ** float(np.exp(rng.uniform(*np.log(LOOK_GAMMA))))
    v = np.where(u > 0, v, 0.0)
    return np.round(v * 255).astype(np.uint8)


def with_varied_look(recode, seed: int):
    """``recode`` followed by :func:`varied_look`, one draw per case (seeded): held-out sources that look
    unlike the training ones, the structure unchanged."""
    rng = np.random.default_rng(seed)

    def coded(moved: np.ndarray, whole: np.ndarray) -> np.ndarray:
        return varied_look(recode(moved, whole) if recode is not None else np.clip(moved, 0, 255).astype(np.uint8), rng)

    return coded


def training_folder(folder: Path, src_dir: str, tgt_dir: str, names: list[str], out: Path, recode=None) -> Path:
    """``out/{lom,cbs}/NAME`` copies of the training pairs (the layout ``train`` reads); with
    ``recode(grey, whole)`` the sources are written recoded, as ``NAME`` with a ``.tif`` suffix."""
    from styleunwarp.io import read_image, to_gray, write_tiff

    for sub, src in (("lom", src_dir), ("cbs", tgt_dir)):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            if recode is not None and sub == "lom":
                dest = out / sub / (Path(name).stem + ".tif")
                if not dest.is_file():
                    grey = to_gray(read_image(folder / src / name).data)
                    write_tiff(dest, recode(grey, grey))
            elif not (out / sub / name).is_file():
                shutil.copy2(folder / src / name, out / sub / name)
    return out


def tre_of(run_dir: Path) -> tuple[float, str, dict]:
    """Mean TRE, tier, and the structure evidence's verdict (aligned, residual estimate, what a second opinion kept)."""
    m = json.loads((run_dir / "metrics.json").read_text())
    ev = m.get("structure") or {}
    verdict = {"aligned": ev.get("aligned"), "residual": ev.get("residual_px"), "second opinion": (m.get("second_opinion") or {}).get("kept")}
    return float(m["tre"]["mean"]), str(m.get("tier", "?")), verdict


def main() -> None:
    from bench_asdelivered import _deformed_real_pairs, rigid_patch_pairs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="shale,clem")
    ap.add_argument("--train", type=int, default=12, help="training pairs per set (the rest are held out)")
    ap.add_argument("--max-minutes", type=float, default=None, help="train's budget (default: the command's own, 15)")
    ap.add_argument("--seed", type=int, default=0, help="seeds the train/held-out split (and, by default, the held-out cases: seed + 1)")
    ap.add_argument("--case-seed", type=int, default=None,
                    help="seeds the held-out cases alone (default: --seed + 1); new cases for the same split and model")
    ap.add_argument("--out", default="/tmp/user-field")
    ap.add_argument("--deformations", choices=sorted(CYCLES) + ["rigid"], default="mixed",
                    help="mixed: near-identity and small in turn; large: near-identity, then two of 3-8 deg, 8-25 px, 2-5 px elastic; "
                         "rigid: Lu et al. 2022's levels 1-4 in turn (up to 20 deg, 9.6 %% of the side per axis), patches cut from the field")
    ap.add_argument("--side", type=int, default=None, help="with --deformations rigid: the patch side (default: per set, RIGID_SIDE)")
    ap.add_argument("--per-pair", type=int, default=None, help="with --deformations rigid: cases cut from each held-out pair (default: per set)")
    ap.add_argument("--held-out-look", choices=("same", "varied"), default="same",
                    help="varied: each held-out source gets another colour cast and tone curve than the training sources "
                         "(another slide or session; varied_look), the model trained as before")
    args = ap.parse_args()
    out = Path(args.out)
    summary = []
    for set_name in args.sets.split(","):
        folder_name, src_dir, tgt_dir = SETS[set_name]
        folder = DATA / folder_name
        if not folder.is_dir():
            print(f"{set_name}: {folder} not found, skipped")
            continue
        train_names, test_names = split(folder, src_dir, args.train, args.seed)
        work = out / set_name
        recode = None
        if set_name in RECODED:
            from bench_auto_candidates import hue_coded as recode
        pairs = training_folder(folder, src_dir, tgt_dir, train_names, work / "train", recode)
        model = work / "model"
        if not (model / "chain.json").is_file():
            t0 = time.perf_counter()
            extra = ["--max-minutes", str(args.max_minutes)] if args.max_minutes else []
            r = styleunwarp("train", str(pairs), "--out", str(model), *extra)
            if r.returncode != 0:
                raise SystemExit(f"{set_name}: train failed ({r.returncode}):\n{r.stderr[-2000:]}")
            print(f"{set_name}: trained on {len(train_names)} pairs in {time.perf_counter() - t0:.0f} s", flush=True)
        from styleunwarp.style.chain import load_chain

        chain = load_chain(model).label
        print(f"{set_name}: the model's chain is {chain}", flush=True)
        case_seed = args.seed + 1 if args.case_seed is None else args.case_seed
        tag = ("" if args.case_seed is None else f"-seed{case_seed}") + ("-varied" if args.held_out_look == "varied" else "")
        held_out_recode = with_varied_look(recode, case_seed) if args.held_out_look == "varied" else recode
        test_dir = work / (("test" if args.deformations == "mixed" else f"test-{args.deformations}") + tag)
        if args.deformations == "rigid":
            side, per_pair = RIGID_CASES[set_name]
            cases = rigid_patch_pairs(folder, src_dir, tgt_dir, test_dir, case_seed, test_names,
                                      args.side or side, args.per_pair or per_pair, recode=held_out_recode)
        else:
            cases = _deformed_real_pairs(folder, src_dir, tgt_dir, test_dir, case_seed, None, names=test_names, cycle=args.deformations,
                                         recode=held_out_recode)
        rows = []
        for case in cases:
            row = {"set": set_name, "pair": case["name"], "kind": case["kind"]}
            for label, opts in (("model", ["--model", str(model)]), ("raw MI (elastix)", ["--backend", "elastix", "--style", "none"])):
                run_dir = work / (("runs" if args.deformations == "mixed" else f"runs-{args.deformations}") + tag) / label.split()[0] / case["name"]
                t0 = time.perf_counter()
                if not (run_dir / "metrics.json").is_file():
                    r = styleunwarp("register", str(case["lom"]), str(case["cbs"]), *opts, "--out", str(run_dir), "--truth", str(case["truth"]))
                    if r.returncode != 0:
                        print(f"  {case['name']} {label}: failed: {r.stderr.strip().splitlines()[-1:]}", flush=True)
                        row[label] = float("inf")
                        continue
                row[label], row[f"{label} tier"], verdict = tre_of(run_dir)
                row.update({f"{label} {k}": v for k, v in verdict.items()})
                row[f"{label} s"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(f"  {case['name']:<14} {case['kind']:<13} model {row['model']:7.2f} (aligned {row.get('model aligned')}, residual "
                  f"{row.get('model residual')}, second opinion kept {row.get('model second opinion')})  raw MI {row['raw MI (elastix)']:7.2f}", flush=True)
        start_tre = start_tres(cases)
        for row in rows:
            row["start"] = start_tre[row["pair"]]
        with (out / f"rows_{set_name}{tag}.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, sorted({k for r in rows for k in r}, key=lambda k: (k not in ("set", "pair", "kind"), k)))
            w.writeheader()
            w.writerows(rows)
        for label in ("start", "model", "raw MI (elastix)"):
            t = np.array([r[label] for r in rows])
            summary.append(f"| {set_name} | {label}{' (' + chain + ')' if label == 'model' else ''} | {(t <= 1.5).sum()}/{t.size} | "
                           f"{(t <= 5).sum()}/{t.size} | {np.median(t):.2f} |")
    print(f"\ncommand: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print("| data set | method | <= 1.5 px | <= 5 px | median TRE (px) |\n|---|---|---|---|---|")
    print("\n".join(summary))


def start_tres(cases: list[dict]) -> dict[str, float]:
    """Mean TRE of doing nothing (the identity) for each case."""
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.quality import tre
    from styleunwarp.transform import identity_elastic, read_transform

    out = {}
    for c in cases:
        shape = to_gray(read_image(c["cbs"]).data).shape
        out[c["name"]] = tre(identity_elastic(4, shape), read_transform(c["truth"]), shape, to_gray(read_image(c["lom"]).data).shape).mean
    return out


if __name__ == "__main__":
    main()
