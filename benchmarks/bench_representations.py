"""Representations and chains on real modality pairs: the table of docs/representations.md.

    python benchmarks/bench_representations.py [--work DIR] [--max-minutes 6] [--heldout 2] [--test-pairs 2] [--datasets shale,clem,steel,synthetic]

For each data set, aligned pairs are split into training and test pairs. ``train_auto`` (what
``styleunwarp train --target auto`` runs) trains the learned representations on the training
pairs and chooses a chain on its own held-out part of them; then every chain (raw bUnwarpJ,
raw elastix MI, raw native NMI, native MIND if the engine has it, and the learned
representations with their backends) registers the *test* pairs, each deformed by known
smooth deformations (``style.heldout``: one near-identity, one misaligned per pair, 256 px
crops where the target varies most; 2 test pairs by default, to fit a shared 2-core machine)
through the chain ``register --model M`` runs (representation, coarse alignment, backend,
never worse than the start: ``pipeline.chain``), and is scored by mean TRE: success rate at <= 1.5 px and <= 5 px, median TRE. ``shipped`` is the shipped
style model (``models/lom2cbs-synthetic``, edges of synthetic steel) used as delivered. ``auto`` is the chain
``train_auto`` chose without seeing the test pairs.

Data (read only, never copied into the repository), ``../shared/data`` from the repo root:

* shale: petrography-bse-se, source SE -> target BSE (400x400), first 16 pairs train, last 8 test;
* clem: deepclem-em-fm, source EM -> target FM, each 1280x954 image cut into 2x2 tiles; s6-s8 train, s9 test
  (its tiles with the most chromatin first);
* steel: openecci-cbs real CBS, LOM renderings by ``synth.fromcbs.pair_from_cbs`` (grey and
  colour alternately, 384 px), 7 train, 3 test;
* synthetic: ``synth.make_pair`` (256 px, grey and colour alternately), 7 train, 3 test.

Results go to ``WORK/<dataset>/result.json`` (a finished data set is not rerun; ``--retest``
tests every chain again on the model already trained there, after a change to the chain) and the
markdown table to stdout. Timings on a shared machine are inflated by concurrent load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
sys.path.insert(0, str(ROOT / "python"))


def _write_pairs(folder: Path, pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> Path:
    from styleunwarp.io import write_tiff

    for sub in ("lom", "cbs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name, s, t in pairs:
        write_tiff(folder / "lom" / f"{name}.tif", s)
        write_tiff(folder / "cbs" / f"{name}.tif", t)
    return folder


def load_dataset(name: str) -> tuple[list, list]:
    """(train, test) lists of aligned ``(name, source, target)``."""
    from styleunwarp.io import read_image, to_gray

    if name == "shale":
        d = DATA / "petrography-bse-se"
        names = sorted(p.name for p in (d / "se").glob("*.png"))
        pairs = [(Path(n).stem, to_gray(read_image(d / "se" / n).data), to_gray(read_image(d / "bse" / n).data)) for n in names]
        return pairs[:16], pairs[16:]
    if name == "clem":
        d = DATA / "deepclem-em-fm"
        out = {}
        for n in sorted(p.name for p in (d / "em").glob("*.png")):
            em, fm = to_gray(read_image(d / "em" / n).data), to_gray(read_image(d / "fm" / n).data)
            h, w = em.shape[0] // 2, em.shape[1] // 2
            out[Path(n).stem] = [(f"{Path(n).stem}_{i}{j}", em[i * h:(i + 1) * h, j * w:(j + 1) * w], fm[i * h:(i + 1) * h, j * w:(j + 1) * w])
                                 for i in range(2) for j in range(2)]
        keys = sorted(out)
        test = sorted(out[keys[-1]], key=lambda p: -float(np.std(p[2])))  # tiles with the most chromatin first
        return [p for k in keys[:-1] for p in out[k]], test
    if name == "steel":
        from styleunwarp.synth.fromcbs import pair_from_cbs, read_cbs

        files = sorted((DATA / "openecci-cbs").glob("*.tif"))
        pairs = []
        for i, f in enumerate(files):
            p = pair_from_cbs(read_cbs(f), seed=1000 + i, shape=(384, 384), deform=False, rgb=bool(i % 2))
            pairs.append((f.stem, p.lom, p.cbs))
        return pairs[:7], pairs[7:]
    if name == "synthetic":
        from styleunwarp.synth import make_pair

        pairs = []
        for i in range(10):
            p = make_pair((256, 256), seed=2000 + i, deform=False, rgb=bool(i % 2))
            pairs.append((f"syn{i}", p.lom, p.cbs))
        return pairs[:7], pairs[7:]
    raise ValueError(name)


def chains_to_test(reps: dict) -> list:
    from styleunwarp.style.auto import learned_chains, training_free_chains
    from styleunwarp.style.chain import Chain

    chains = [Chain("none", "bunwarpj"), *training_free_chains()]
    for kind in ("shipped", "edges", "shared", "cbs"):
        if kind in reps:
            chains += [Chain(kind, c.backend, c.backend_options, c.coarse_sigma)
                       for c in learned_chains(reps[kind].kind)]
    return chains


def start_row(cases: list) -> dict:
    """TRE of doing nothing (the identity map): the reference every chain must beat."""
    from styleunwarp.quality import tre
    from styleunwarp.transform import identity_elastic

    start = [tre(identity_elastic(4, c.target.shape), c.truth, c.target.shape, c.source.shape[:2]).mean for c in cases]
    return {"chain": "start (no registration)", "cases": len(cases), "within_5px": sum(v <= 5 for v in start),
            "within_1.5px": sum(v <= 1.5 for v in start), "median_tre_px": round(float(np.median(start)), 3),
            "tre_px": [round(float(v), 3) for v in start], "seconds": 0.0, "auto": False}


def run_dataset(name: str, work: Path, minutes: float, test_pairs: int, heldout: int, retest: bool = False) -> dict:
    from styleunwarp.registration import PIPELINE_DEFAULTS
    from styleunwarp.style.auto import AutoConfig, evaluate, train_auto
    from styleunwarp.style.heldout import make_cases
    from styleunwarp.style.representations import load

    out = work / name
    res_file = out / "result.json"
    if res_file.is_file() and not retest:
        result = json.loads(res_file.read_text())
        if result["rows"][0]["chain"] != "start (no registration)":  # older result: add the start row
            def centred(a: np.ndarray) -> np.ndarray:  # results before busiest_window used centred crops
                y, x = max(0, (a.shape[0] - 256) // 2), max(0, (a.shape[1] - 256) // 2)
                return a[y:y + 256, x:x + 256]

            test = [(n, centred(s), centred(t)) for n, s, t in load_dataset(name)[1][:result["test_pairs"]]]
            result["rows"].insert(0, start_row(make_cases(test, 2, seed=77)))
            res_file.write_text(json.dumps(result, indent=1, default=float))
        return result
    train, test = load_dataset(name)
    test = test[:test_pairs]
    card_file = out / "model" / "chain.json"
    if retest and card_file.is_file():  # the same trained model, every chain tested again with today's code
        card = json.loads(card_file.read_text())
        train_minutes = float(card.get("minutes", float("nan")))
    else:
        pairs_dir = _write_pairs(out / "pairs", train)
        t0 = time.monotonic()
        card = train_auto(pairs_dir, out / "model", AutoConfig(max_minutes=minutes, max_heldout=heldout), echo=print)
        train_minutes = (time.monotonic() - t0) / 60
    reps = {k: load(out / "model", sec) for k, sec in card["representations"].items()}
    cases = make_cases(test, 2, seed=77, max_side=256)
    rows = [start_row(cases)]
    coarse_cache: dict = {}
    for chain in chains_to_test(reps):
        r = evaluate(reps[chain.representation], chain, cases, PIPELINE_DEFAULTS, coarse_cache=coarse_cache)
        d = r.as_dict(len(cases))
        d["auto"] = chain.as_dict() == card["chain"]
        rows.append(d)
        print(f"  test {name:<9} {chain.label:<34} <=1.5: {d['within_1.5px']}/{len(cases)} <=5: {d['within_5px']}/{len(cases)} "
              f"median {d['median_tre_px']} px ({r.seconds / max(1, len(cases)):.1f} s/case)", flush=True)
    result = {"dataset": name, "train_pairs": len(train), "test_pairs": len(test), "cases": len(cases),
              "auto_chain": card["chain"], "auto_minutes": round(train_minutes, 2), "max_minutes": minutes,
              "auto_validation": card["candidates"], "rows": rows, "load": os.getloadavg()[0]}
    res_file.write_text(json.dumps(result, indent=1, default=float))
    return result


def table(results: list[dict]) -> str:
    lines = ["| data set | chain | <= 1.5 px | <= 5 px | median TRE (px) | s / case |", "|---|---|---|---|---|---|"]
    for res in results:
        n = res["cases"]
        for d in res["rows"]:
            label = d["chain"] + (" **= auto**" if d["auto"] else "")
            if d["chain"].startswith("none->bunwarpj"):
                label = "raw bUnwarpJ (none->bunwarpj)" + (" **= auto**" if d["auto"] else "")
            sec = d["seconds"] / max(1, d["cases"])
            lines.append(f"| {res['dataset']} | {label} | {d['within_1.5px']}/{n} | {d['within_5px']}/{n} | "
                         f"{d['median_tre_px']} | {sec:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/styleunwarp-bench-representations")
    ap.add_argument("--max-minutes", type=float, default=6.0, help="train_auto budget per data set")
    ap.add_argument("--datasets", default="shale,clem,steel,synthetic")
    ap.add_argument("--test-pairs", type=int, default=2, help="test pairs per data set (2 deformed cases each)")
    ap.add_argument("--heldout", type=int, default=2, help="train_auto's own held-out pairs (its validation), at most")
    ap.add_argument("--table-only", action="store_true", help="print the table of the data sets already finished")
    ap.add_argument("--retest", action="store_true",
                    help="test every chain again on each data set's model already trained in WORK (no training; "
                         "result.json is replaced: copy WORK first to keep the earlier one)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    work = Path(args.work)
    names = args.datasets.split(",")
    if args.table_only:
        results = [json.loads((work / n / "result.json").read_text()) for n in names if (work / n / "result.json").is_file()]
    else:
        results = [run_dataset(n, work, args.max_minutes, args.test_pairs, args.heldout, args.retest) for n in names]
    print(table(results))
    for r in results:
        print(f"{r['dataset']}: auto chose {r['auto_chain']['representation']}->{r['auto_chain']['backend']} "
              f"in {r['auto_minutes']} min (budget {r['max_minutes']}); load {r['load']:.1f}")


if __name__ == "__main__":
    main()
