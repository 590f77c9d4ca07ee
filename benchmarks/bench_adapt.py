"""Test-time adaptation of the style model to each pair (:mod:`styleunwarp.style.adapt`): does it help the chain?

For every test pair of each set (the sets of ``bench_styled_defaults.py``), with the style model
(default: the shipped one) and bUnwarpJ:

1. ``start``: the coarse step and the fine affine step on the model's map (as ``register``);
2. ``base``: the chain from there (consensus fit, keep-or-undo rule, second pass, raw structure
   check: ``bench_styled_defaults.py``'s ``base`` configuration);
3. the model fine-tuned on the LOM as ``base`` registered it (:func:`styleunwarp.style.adapt.adapt_to_pair`,
   ``--steps`` steps), then
   ``from_start``: the same chain again from the same start with the adapted map, and
   ``refine``: one more elastic step with the adapted map from ``base``'s result (the LOM's map moved by
   it, keep-or-undo rule without the peak test), composed with it, and
   ``mean_of_two``: the mean of ``base``'s and ``from_start``'s dense maps.

TRE against the known truth for each, with (``*_elastic``) and without the rule. Writes
``OUT/rows.jsonl`` (one row per pair; a rerun skips the pairs already there) and prints the mean
TRE and the tiers per set.

    python benchmarks/bench_adapt.py --sets lom3:2,blind:2 --out /tmp/adapt [--steps 150] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_styled_defaults import make_set, tier  # noqa: E402

COLUMNS = ("start", "base", "from_start", "refine", "mean_of_two")


def chain_from(styled, target, a, fine_facts, raw):
    """The pipeline's chain after the fine affine step, for a boundary map: ``(total, elastic-only, facts)``."""
    from styleunwarp.pipeline.chain import COARSE_SIGMA_FOR_EDGES, consensus_radius, keep_or_undo, raw_structure_check, second_pass
    from styleunwarp.pipeline.coarse import compose_direct, warp_source
    from styleunwarp.pipeline.consensus import consensus, default_consensus_px
    from styleunwarp.pipeline.restart import warrants_restart
    from styleunwarp.registration import PIPELINE_DEFAULTS, register

    radius = consensus_radius(default_consensus_px("edges"), fine_facts)
    moving = warp_source(styled, a, target.shape)
    reg = register(*consensus(target, moving, radius), PIPELINE_DEFAULTS, backend="bunwarpj", coarse_sigma=COARSE_SIGMA_FOR_EDGES)
    outcome = keep_or_undo(target, moving, reg, "alike", peak_test=radius == 0)
    a_chain = a
    if warrants_restart(outcome[3]):
        a_chain, _, outcome = second_pass(target, styled, a, reg, outcome, PIPELINE_DEFAULTS, backend="bunwarpj",
                                          coarse_sigma=COARSE_SIGMA_FOR_EDGES, consensus_px=radius, peak_test=radius == 0)
    outcome = raw_structure_check(styled, a_chain, outcome, target.shape, raw)
    return compose_direct(outcome[0], a_chain), compose_direct(reg.direct, a), outcome[3]


def run_pair(test: Path, name: str, model, steps: int, seed: int) -> dict:
    from styleunwarp.io import normalize, read_image, to_gray
    from styleunwarp.pipeline.chain import keep_or_undo
    from styleunwarp.pipeline.coarse import align as coarse_align
    from styleunwarp.pipeline.coarse import compose_direct
    from styleunwarp.pipeline.consensus import consensus, default_consensus_px
    from styleunwarp.pipeline.fine_affine import fine_affine
    from styleunwarp.quality import tre
    from styleunwarp.registration import PIPELINE_DEFAULTS, register
    from styleunwarp.style.adapt import adapt_to_pair
    from styleunwarp.style.representations.translation import Translation
    from styleunwarp.transform import identity_elastic, read_transform, warp_image
    from styleunwarp.transform.ops import compose

    lom, cbs = read_image(test / "lom" / f"{name}.tif"), read_image(test / "cbs" / f"{name}.tif")
    truth = read_transform(test / "truth" / f"{name}_direct_transf.txt")
    cbs_gray, lom_gray = to_gray(cbs.data), to_gray(lom.data).astype(np.float32)
    styled, target = Translation(model).represent(lom.data, cbs_gray)
    known = bool(lom.pixel_size) and bool(cbs.pixel_size)
    coarse = coarse_align("auto", target, styled, scale=1.0 if known else None)
    fine = fine_affine(target, styled, coarse.chosen.matrix, raw=(cbs_gray, lom_gray))
    a, shape = fine.matrix, target.shape

    def err(t) -> tuple[float, float]:
        e = tre(t, truth, shape, lom_gray.shape)
        return float(e.mean), float(e.p95)

    row: dict = {"pair": name, "start": err(compose_direct(identity_elastic(4, shape), a))}
    t0 = time.perf_counter()
    total, elastic, facts = chain_from(styled, target, a, fine.facts, (cbs_gray, lom_gray))
    row.update(base=err(total), base_elastic=err(elastic), base_refused=facts.get("refused", ""), base_seconds=time.perf_counter() - t0)
    t0 = time.perf_counter()
    adapted, row["adapt"] = adapt_to_pair(model, lom.data, model.prepare_target(cbs_gray), total, steps=steps, seed=seed)
    styled2 = normalize(adapted(lom.data).astype(np.float32))
    row["adapt"]["seconds"] = time.perf_counter() - t0
    total2, elastic2, facts2 = chain_from(styled2, target, a, fine.facts, (cbs_gray, lom_gray))
    row.update(from_start=err(total2), from_start_elastic=err(elastic2), from_start_refused=facts2.get("refused", ""))
    row["mean_of_two"] = err((total.to_dense(shape) + total2.to_dense(shape)) / 2)  # two estimates of partly independent error
    base_map = total.to_dense(shape)
    moving = warp_image(styled2, base_map, shape)
    reg = register(*consensus(target, moving, default_consensus_px("edges")), PIPELINE_DEFAULTS, backend="bunwarpj", coarse_sigma=0.0)
    kept = keep_or_undo(target, moving, reg, "alike", peak_test=False)
    row.update(refine=err(compose(kept[0], base_map, shape, shape)), refine_elastic=err(compose(reg.direct, base_map, shape, shape)),
               refine_refused=kept[3].get("refused", ""), seconds=time.perf_counter() - t0)
    return row


def summary(rows: list[dict]) -> str:
    lines = [f"{'set':<12} {'chain':<12} {'good':>4} {'dec':>4} {'bad':>4} {'poor':>4}  {'mean TRE':>8}  {'elastic-only':>12}  (n)"]
    for s in dict.fromkeys(r["set"] for r in rows):
        sel = [r for r in rows if r["set"] == s]
        for c in COLUMNS:
            tiers = [tier(*r[c]) for r in sel]
            el = f"{np.mean([r[c + '_elastic'][0] for r in sel]):12.3f}" if c + "_elastic" in sel[0] else f"{'':12}"
            lines.append(f"{s:<12} {c:<12} {tiers.count('good'):>4} {tiers.count('decent'):>4} {tiers.count('bad'):>4} "
                         f"{tiers.count('poor'):>4}  {np.mean([r[c][0] for r in sel]):8.3f}  {el}  ({len(sel)})")
    return "\n".join(lines)


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="lom3:2,blind:2")
    ap.add_argument("--model", default=None, help="style model (default: the shipped one)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real", default=str(repo.parent / "shared" / "data" / "openecci-cbs"))
    ap.add_argument("--out", default="/tmp/adapt")
    args = ap.parse_args()
    from styleunwarp.style import StyleTransfer

    model = StyleTransfer.load(args.model) if args.model else StyleTransfer.load_default()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rows.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    done = {(r["set"], r["pair"]) for r in rows}
    with path.open("a") as fh:
        for spec in args.sets.split(","):
            test = make_set(spec, out, Path(args.real), 512)
            for name in sorted(p.stem for p in (test / "lom").glob("*.tif")):
                if (spec, name) in done:
                    continue
                row = {"set": spec, **run_pair(test, name, model, args.steps, args.seed)}
                rows.append(row)
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                print(f"  {spec:<10} {name:<14} start {row['start'][0]:5.2f}  base {row['base'][0]:5.2f}  "
                      f"from start {row['from_start'][0]:5.2f}  refine {row['refine'][0]:5.2f} ({row['seconds']:.0f} s)", flush=True)
    print(f"\ncommand: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(summary(rows))


if __name__ == "__main__":
    main()
