"""Choose the shipped style model by registration TRE on held-out varied steel renderings.

    PYTHONPATH=python python benchmarks/choose_shipped.py MODEL_DIR [MODEL_DIR ...] [--cases 8] [--size 384]
        [--seed 50000] [--grey-too] [--out /tmp/choose_shipped.json]
    PYTHONPATH=python python benchmarks/choose_shipped.py CHOSEN --install models/lom2cbs-synthetic --out R1.json --also R2.json
        --training OUT/train_shipped.json

Cases: :func:`styleunwarp.synth.variety.varied_pair` with ``deform=True`` (the ``synth`` default
deformation: 1.5-4 deg, 3-8 px shift, 1-3 px elastic), seeds ``seed..seed+cases-1`` (the training
data uses seeds from 0, far below), half colour-etched; ``--renderers geometry,from-cbs`` renders
every other two cases' LOM from the CBS image instead (:func:`~styleunwarp.synth.variety.varied_pair`). Every model registers every case with
the chain the pipeline uses for an edges model (its representation, bUnwarpJ with the pipeline
defaults and the 3 px coarse pass; no coarse search: the deformations are within bUnwarpJ's
capture range) and is scored by the mean TRE (px) per case. ``--grey-too`` also registers the
grey (luminance) version of every colour case, to see what colour adds for a 3-channel model.
Prints one line per model (cases within 1.5 px, mean and median TRE, style seconds per 512²
image) and writes every number to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def make_cases(n: int, size: int, seed: int, grey_too: bool, renderers: tuple[str, ...] = ("geometry",)):
    from styleunwarp.io import to_gray
    from styleunwarp.style.heldout import Case
    from styleunwarp.synth.variety import varied_pair

    cases = []
    for i in range(n):
        renderer = renderers[(i // 2) % len(renderers)]
        p = varied_pair((size, size), seed=seed + i, deform=True, colour=i % 2 == 1, renderer=renderer)
        kind = ("colour" if p.lom.ndim == 3 else "grey") + ("" if renderer == "geometry" else f" {renderer}")
        cases.append(Case(f"c{seed + i}", p.lom, p.cbs, p.truth, kind))
        if grey_too and p.lom.ndim == 3:
            cases.append(Case(f"c{seed + i}-grey", to_gray(p.lom), p.cbs, p.truth, "colour as grey"))
    return cases


def style_seconds(rep, reps: int = 3) -> float:
    """Median seconds to style one 512x512 grey image (after a warm-up)."""
    img = np.random.default_rng(0).uniform(0, 255, (512, 512)).astype(np.float32)
    rep.model(img)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        rep.model(img)
        times.append(time.perf_counter() - t)
    return float(statistics.median(times))


RULE = ("registration TRE (bUnwarpJ, the pipeline's edges chain) on held-out varied renderings "
        "(benchmarks/choose_shipped.py): cases within 1.5 px, then mean TRE; among equals the faster net")


def styled_summary(rows_csv: Path) -> dict:
    """Per set of a ``bench_styled_defaults.py`` ``rows.csv``: tiers and mean/median TRE (px) after the keep rule."""
    import csv
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_styled_defaults import kept, tier

    rows = list(csv.DictReader(rows_csv.open()))
    out: dict = {}
    for name in dict.fromkeys(r["set"] for r in rows):
        means = [kept(r) for r in rows if r["set"] == name and r["config"] == "base"]
        tiers = [tier(m, p95) for m, p95 in means]
        out[name] = {"n": len(means), **{t: tiers.count(t) for t in ("good", "decent", "bad", "poor")},
                     "mean": round(float(np.mean([m for m, _ in means])), 3),
                     "median": round(float(np.median([m for m, _ in means])), 3)}
    return out


def install(model: str, results: list[Path], dest: Path, training: list[Path], rule: str = RULE,
            note: str | None = None, styled: dict[str, Path] | None = None) -> None:
    """Copy ``model`` (model.safetensors + model.json) to ``dest`` and record in its card how it was
    trained (``training``: a ``train_shipped.json`` per stage) and chosen (``rule``, every model's
    held-out TRE in ``results``, ``note``). A model fine-tuned from another (``training.init`` of its
    card) keeps that model's training stages and data first, so the card tells the whole lineage."""
    import shutil

    card = json.loads((Path(model) / "model.json").read_text())
    earlier: dict = {}
    init = (card.get("training") or {}).get("init")
    if init:  # read before dest is overwritten: the init model may be the one installed there
        init_card = json.loads((Path(init["model"]).parent / "model.json").read_text())
        earlier = {"commands": list(init_card.get("training_command") or []),
                   "slices": list(init_card.get("training_slices") or []),
                   "data": init_card.get("training_data", {}).get("description"),
                   "chosen_by": (init_card.get("chosen_by") or {}).get("rule")}
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(model) / "model.safetensors", dest / "model.safetensors")
    if training:  # one train_shipped.json per stage (a first run, then a --resume on more data)
        stages = [json.loads(f.read_text()) for f in training]
        card["training_command"] = earlier.get("commands", []) + [t["command"] for t in stages]
        card["training_slices"] = earlier.get("slices", []) + [s for t in stages for s in t["slices"]]
    if earlier:
        card["training_data"]["fine_tuned_from"] = {"data": earlier["data"], "chosen_by": earlier["chosen_by"]}
    card["chosen_by"] = {
        "rule": rule,
        "candidates": {str(f): {m: {"arch": r["arch"], "by_kind": r["by_kind"], "style_s_512": r["style_s_512"]}
                                for m, r in json.loads(f.read_text()).items()} for f in results},
        "chosen": str(model),
        **({"styled_defaults": {label: {"rows": str(f), "sets": styled_summary(f)} for label, f in styled.items()}}
           if styled else {}),
        **({"note": note} if note else {}),
    }
    (dest / "model.json").write_text(json.dumps(card, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="style model folders ('shipped' = the installed default)")
    ap.add_argument("--cases", type=int, default=8)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--seed", type=int, default=50_000)
    ap.add_argument("--grey-too", action="store_true")
    ap.add_argument("--renderers", default="geometry", help="comma-separated, cycled every two cases: geometry, from-cbs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="/tmp/choose_shipped.json")
    ap.add_argument("--install", default=None, metavar="DEST",
                    help="copy the first MODEL_DIR to DEST with the selection (--out, --also) in its card")
    ap.add_argument("--also", default="", help="comma-separated further result files to record with --install")
    ap.add_argument("--training", default=None, help="comma-separated train_shipped.json files of the installed model's stages")
    ap.add_argument("--rule", default=RULE, help="with --install: how the model was chosen, for its card")
    ap.add_argument("--note", default=None, help="with --install: a further note on the choice, for its card")
    ap.add_argument("--styled", default="", metavar="LABEL=ROWS.csv,...",
                    help="with --install: bench_styled_defaults.py results to summarise in the card (e.g. tuning and held-out runs)")
    args = ap.parse_args()
    if args.install:
        files = [Path(args.out)] + [Path(f) for f in args.also.split(",") if f]
        install(args.models[0], files, Path(args.install), [Path(f) for f in (args.training or "").split(",") if f],
                args.rule, args.note,
                {label: Path(f) for label, f in (item.split("=", 1) for item in args.styled.split(",") if item)})
        return

    import torch

    from styleunwarp.registration import PIPELINE_DEFAULTS
    from styleunwarp.style.auto import evaluate
    from styleunwarp.style.chain import Chain
    from styleunwarp.style.representations.translation import Translation

    torch.set_num_threads(args.threads)
    cases = make_cases(args.cases, args.size, args.seed, args.grey_too, tuple(args.renderers.split(",")))
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    for m in args.models:
        if m in results:
            continue
        rep = Translation.load_model(None if m == "shipped" else m)
        chain = Chain("edges", "bunwarpj", coarse_sigma=3.0)
        r = evaluate(rep, chain, cases, PIPELINE_DEFAULTS)
        secs = style_seconds(rep)
        by_kind: dict[str, list[float]] = {}
        for c, t in zip(cases, r.tres):
            by_kind.setdefault(c.kind, []).append(t)
        results[m] = {"arch": rep.model.arch.as_dict(), "tre_px": dict(zip([c.name for c in cases], r.tres)),
                      "style_s_512": secs,
                      "by_kind": {k: {"n": len(v), "good": sum(x <= 1.5 for x in v), "mean": float(np.mean(v)),
                                      "median": float(np.median(v))} for k, v in by_kind.items()}}
        out.write_text(json.dumps(results, indent=1, default=float) + "\n")
        kinds = "; ".join(f"{k}: {d['good']}/{d['n']} good, mean {d['mean']:.2f}, median {d['median']:.2f}"
                          for k, d in results[m]["by_kind"].items())
        print(f"{m}: {kinds}; style {secs:.3f} s/512²", flush=True)


if __name__ == "__main__":
    main()
