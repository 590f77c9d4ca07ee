"""`train --unaligned` vs `train --target auto` on the same pairs aligned, scored on held-out pairs.

Data sets (made here from ``../shared/data``, each skipped when absent), every pair made
unaligned by a known deformation kept aside for scoring only:

* ``shale``: BSE -> SE pairs of petrography-bse-se, the BSE deformed (rotation 1-4 deg,
  shift 3-10 px, elastic 1-3 px RMS);
* ``clem``: EM -> FM pairs of deepclem-em-fm, likewise;
* ``steel``: as-delivered steel (:mod:`styleunwarp.synth.asdelivered`: LOM renderings of the
  real openECCI CBS images, own pixel size, larger rotated field, scratches, dust).

Per data set: the first ``--train`` pairs are the training pairs, the next ``--test`` are held
out. ``train PAIRS --unaligned`` gets the unaligned training pairs (files only, no truth);
``train --target auto`` gets the same pairs *aligned* (the source resampled onto the target by
the truth). Each model then registers the held-out pairs with ``register LOM CBS --model M``
(defaults), scored by mean TRE against the truth: within 5 px, good tier, median TRE. Also
measured: the trust rule's precision (trusted training pairs whose chosen registration is
within 5 px of the truth, every round) and each starting (training-free) chain's TRE on the
training pairs (round 0's registrations).

    python benchmarks/bench_unaligned.py [--out /tmp/bench_unaligned] [--sets shale,steel,clem]
        [--train 6] [--test 4] [--unaligned-minutes 8] [--aligned-minutes 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_asdelivered import REAL_PAIRS, image_names  # noqa: E402
SETS = ("shale", "steel", "clem")


def _cli(*args: str, log: Path) -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "styleunwarp", *args], capture_output=True, text=True, env=env)
    log.write_text(proc.stdout + proc.stderr)
    return proc.returncode


def _write_set(name: str, out: Path, n: int, seed: int) -> list[dict]:
    """Unaligned pairs ``out/unaligned/NAME_{LOM,CBS}.tif`` with their truths in ``out/truth``."""
    from styleunwarp.io import read_image, to_gray, write_tiff
    from styleunwarp.synth import random_deformation, source_positions
    from styleunwarp.transform import warp_image, write_elastic

    ua, tr = out / "unaligned", out / "truth"
    ua.mkdir(parents=True, exist_ok=True)
    tr.mkdir(parents=True, exist_ok=True)
    rows = []
    if name == "steel":
        from styleunwarp.synth.asdelivered import write_asdelivered

        desc = write_asdelivered(out / "asdelivered", n, from_cbs=DATA / "openecci-cbs", seed=seed)
        for p in desc["pairs"]:
            stem = p["name"]
            for kind in ("LOM", "CBS"):
                dst = ua / f"{stem}_{kind}.tif"
                if not dst.exists():
                    dst.symlink_to(out / "asdelivered" / "with_pixel_size" / f"{stem}_{kind}.tif")
            truth = out / "asdelivered" / "truth" / f"{stem}_direct_transf.txt"
            rows.append({"name": stem, "lom": ua / f"{stem}_LOM.tif", "cbs": ua / f"{stem}_CBS.tif", "truth": truth})
        return rows
    folder, src_dir, tgt_dir = REAL_PAIRS[name]
    folder = DATA / folder
    names = image_names(folder / src_dir)[:n]
    for i, fname in enumerate(names):
        stem = Path(fname).stem
        src = to_gray(read_image(folder / src_dir / fname).data)
        tgt = to_gray(read_image(folder / tgt_dir / fname).data)
        d = random_deformation(np.random.default_rng([seed, i, 7]), tgt.shape, intervals=4, rotation_deg=(1.0, 4.0),
                               shift_px=(3.0, 10.0), elastic_px=(1.0, 3.0))
        write_tiff(ua / f"{stem}_LOM.tif", warp_image(src, source_positions(d, src.shape)))
        write_tiff(ua / f"{stem}_CBS.tif", tgt)
        write_elastic(d.truth, tr / f"{stem}.txt")
        rows.append({"name": stem, "lom": ua / f"{stem}_LOM.tif", "cbs": ua / f"{stem}_CBS.tif", "truth": tr / f"{stem}.txt"})
    return rows


def _aligned(rows: list[dict], out: Path) -> Path:
    """The training pairs aligned by their truth: ``out/{lom,cbs}/NAME.tif`` (source on the target grid)."""
    from styleunwarp.io import read_image, write_tiff
    from styleunwarp.transform import read_transform, to_dense, warp_image
    from styleunwarp.transform.warp import inside_source

    for sub in ("lom", "cbs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for r in rows:
        lom, cbs = read_image(r["lom"]), read_image(r["cbs"])
        truth = read_transform(r["truth"])
        reg = warp_image(lom.data, truth, cbs.data.shape[:2])
        inside = inside_source(to_dense(truth, cbs.data.shape[:2]), lom.data.shape[:2])
        xs = np.flatnonzero(inside.mean(0) > 0.5)
        ys = np.flatnonzero(inside[:, xs].mean(1) > 0.98)
        xs = np.flatnonzero(inside[ys].mean(0) > 0.98)
        box = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
        write_tiff(out / "lom" / f"{r['name']}.tif", reg[box])
        write_tiff(out / "cbs" / f"{r['name']}.tif", cbs.data[box], pixel_size=cbs.pixel_size)
    return out


def _tre(direct_file: Path, row: dict) -> float:
    from styleunwarp.io import read_image
    from styleunwarp.quality import tre
    from styleunwarp.transform import read_transform

    cbs_shape = read_image(row["cbs"]).data.shape[:2]
    lom_shape = read_image(row["lom"]).data.shape[:2]
    return float(tre(read_transform(direct_file), read_transform(row["truth"]), cbs_shape, lom_shape).mean)


def _score(tres: list[float]) -> dict:
    from styleunwarp.quality import tier_from_tre

    fin = [t for t in tres if np.isfinite(t)]
    return {"n": len(tres), "within_5px": sum(t <= 5.0 for t in fin), "good": sum(t <= 1.5 for t in fin),
            "median_tre": round(float(statistics.median(tres)), 2) if tres else None, "tre": [round(t, 2) for t in tres],
            "_tier": [tier_from_tre(t, t) for t in fin]}


def run_set(name: str, out: Path, n_train: int, n_test: int, ua_min: float, al_min: float, seed: int) -> dict:
    root = out / name
    rows = _write_set(name, root / "data", n_train + n_test, seed)
    trn, test = rows[:n_train], rows[n_train:n_train + n_test]
    train_dir = root / "data" / "train_unaligned"
    train_dir.mkdir(exist_ok=True)
    for r in trn:  # the files only: the truth stays aside
        for key, kind in (("lom", "LOM"), ("cbs", "CBS")):
            dst = train_dir / f"{r['name']}_{kind}.tif"
            if not dst.exists():
                dst.symlink_to(Path(r[key]).resolve())
    res: dict = {"set": name, "train": [r["name"] for r in trn], "test": [r["name"] for r in test],
                 "unaligned_minutes": ua_min, "aligned_minutes": al_min}
    for key, args in (("unaligned", [str(train_dir), "--unaligned"]),
                      ("aligned", [str(_aligned(trn, root / "data" / "aligned"))])):
        model = root / f"m_{key}"
        if (model / "chain.json").is_file():  # a rerun scores what exists (delete the folder to retrain)
            continue
        t0 = time.monotonic()
        res[f"{key}_rc"] = _cli("train", *args, "--out", str(model), "--max-minutes", str(ua_min if key == "unaligned" else al_min),
                                log=root / f"train_{key}.log")
        res[f"{key}_train_s"] = round(time.monotonic() - t0)
    for key in ("unaligned", "aligned"):
        model = root / f"m_{key}"
        card = json.loads((model / "chain.json").read_text()) if (model / "chain.json").is_file() else {}
        res[f"{key}_chain"] = card.get("winner", {}).get("chain") or (card.get("unaligned") or {}).get("delivered", {}).get("chain")
        if card.get("unaligned"):
            res["delivered"] = card["unaligned"]["delivered"]
            res["rounds"] = card["unaligned"]["rounds"]
        tres = []
        for r in test:
            d = root / f"reg_{key}" / r["name"]
            if not (d / "metrics.json").is_file():
                _cli("register", str(r["lom"]), str(r["cbs"]), "--model", str(model), "--out", str(d), log=root / f"reg_{key}_{r['name']}.log")
            tres.append(_tre(d / "direct_transf.txt", r) if (d / "direct_transf.txt").is_file() else float("inf"))
        res[key] = _score(tres)
    # trust precision and the starting chains, from the unaligned run's own registrations
    m = root / "m_unaligned"
    byname = {r["name"]: r for r in trn}
    trust = []
    for rj in sorted((m / "rounds").glob("*/round.json")):
        st = json.loads(rj.read_text())
        if st["row"].get("re_registered") is False:
            continue  # a round that only trained (every pair was trusted already): its verdicts are the last round's
        for n, v in st["verdicts"].items():
            if v.get("trusted") and v.get("registration"):
                trust.append({"round": st["row"]["round"], "pair": n, "tre": round(_tre(m / v["registration"] / "direct_transf.txt", byname[n]), 2)})
    res["trusted"] = trust
    res["trust_precision"] = f"{sum(t['tre'] <= 5.0 for t in trust)}/{len(trust)}"
    free = {}
    for d in sorted((m / "registrations").glob("*")):
        tres = [_tre(d / r["name"] / "direct_transf.txt", r) for r in trn if (d / r["name"] / "direct_transf.txt").is_file()]
        free[d.name] = _score(tres)
    res["training_free_on_train_pairs"] = free
    return res


def table(results: list[dict]) -> str:
    lines = ["| data set | train/test pairs | model | chain | held-out within 5 px | good (<=1.5 px) | median TRE px |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        for key in ("unaligned", "aligned"):
            s = r[key]
            lines.append(f"| {r['set']} | {len(r['train'])}/{len(r['test'])} | `--{'unaligned' if key == 'unaligned' else 'target auto'}` "
                         f"({r[f'{key}_minutes']:g} min) | {r[f'{key}_chain']} | {s['within_5px']}/{s['n']} | {s['good']}/{s['n']} | {s['median_tre']} |")
    lines += ["", "| data set | rounds (trusted/pairs) | trust precision (trusted within 5 px) | starting chains on the training pairs (within 5 px, median TRE) |",
              "|---|---|---|---|"]
    for r in results:
        rounds = ", ".join(f"r{x['round']}: {x['trusted']}/{x['pairs']}" for x in r.get("rounds", []))
        free = "; ".join(f"{k}: {v['within_5px']}/{v['n']}, {v['median_tre']}" for k, v in r["training_free_on_train_pairs"].items())
        lines.append(f"| {r['set']} | {rounds} | {r['trust_precision']} | {free} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_unaligned"))
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--train", type=int, default=6)
    ap.add_argument("--test", type=int, default=4)
    ap.add_argument("--unaligned-minutes", type=float, default=8.0)
    ap.add_argument("--aligned-minutes", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "python"))
    a.out.mkdir(parents=True, exist_ok=True)
    results = []
    need = {**{k: v[0] for k, v in REAL_PAIRS.items()}, "steel": "openecci-cbs"}
    for name in a.sets.split(","):
        if not (DATA / need[name]).is_dir():
            print(f"{name}: skipped ({DATA / need[name]} absent)")
            continue
        n_train, n_test = (min(a.train, 3), 1) if name == "clem" else (a.train, a.test)  # CLEM has 4 pairs
        r = run_set(name, a.out, n_train, n_test, a.unaligned_minutes, a.aligned_minutes, a.seed)
        results.append(r)
        (a.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(table([r]), flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
