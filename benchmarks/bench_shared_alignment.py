"""Does the alignment loss help the learned shared code? InfoNCE alone against InfoNCE + W x alignment.

For each data set of ``bench_representations.py`` (its train / test split and its test cases:
two known smooth deformations per test pair, seed 77, near-identity ones included), the shared
code (:mod:`styleunwarp.style.representations.shared`) is trained for ``--seconds`` (or exactly ``--steps``) on the
training pairs once per weight of ``--weights`` (same seed, same crops), and every learned chain
of the shared code (:func:`styleunwarp.style.auto.learned_chains`) is run on the test cases.
Reported per data set, weight and chain: the held-out result as ``train --target auto`` records it
(:meth:`styleunwarp.style.auto.Result.as_dict`: cases within 1.5 / 5 px mean TRE, cases left more
than 0.25 px farther than their start, the median TRE); and the mean local shift of the
codes on the aligned test pairs (:func:`styleunwarp.style.alignment.mean_shift_px`).

    PYTHONPATH=python python benchmarks/bench_shared_alignment.py --datasets clem,shale --weights 0,1 \
        --steps 800 --test-pairs 3 --out /tmp/shared-align

Writes ``OUT/DATASET.json``; prints one line per data set, weight and chain.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def code_shift(rep, pairs) -> float:
    """Mean local shift (px) of the two codes of aligned ``(name, source, target)`` pairs."""
    import torch

    from styleunwarp.style.alignment import mean_shift_px

    shifts = []
    for _, s, t in pairs:
        a = torch.from_numpy(rep.codes(s, "source").astype(np.float32))[None]
        b = torch.from_numpy(rep.codes(t, "target").astype(np.float32))[None]
        shifts.append(mean_shift_px(a, b))
    return float(np.mean(shifts))


def main(argv: list[str] | None = None) -> None:
    from bench_representations import load_dataset

    from styleunwarp.registration import PIPELINE_DEFAULTS
    from styleunwarp.style.auto import evaluate, learned_chains
    from styleunwarp.style.heldout import make_cases
    from styleunwarp.style.representations.shared import SharedConfig, train_shared

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="clem,shale")
    ap.add_argument("--weights", default="0,1")
    ap.add_argument("--seconds", type=float, default=150.0)
    ap.add_argument("--steps", type=int, default=None,
                    help="train exactly this many steps instead (the same for every weight, whatever the load)")
    ap.add_argument("--test-pairs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.datasets.split(","):
        train, test = load_dataset(name)
        test = test[:args.test_pairs]
        cases = make_cases(test, 2, seed=77, max_side=256)
        rows = []
        for w in (float(v) for v in args.weights.split(",")):
            snaps, summary = train_shared([(s, t) for _, s, t in train], 1 if train[0][1].ndim == 2 else 3,
                                          seconds=args.seconds if args.steps is None else 1e9,
                                          cfg=SharedConfig(align_weight=w), seed=args.seed, max_steps=args.steps,
                                          snapshots=1)
            rep = snaps[-1]
            shift = code_shift(rep, test)
            for chain in learned_chains("shared"):
                row = {"weight": w, "steps": summary["steps"], "training_seconds": summary["seconds"], "code_shift_px": shift,
                       **evaluate(rep, chain, cases, PIPELINE_DEFAULTS).as_dict(len(cases))}
                rows.append(row)
                print(f"{name:<6} W {w:g} {chain.label:<28} steps {summary['steps']:>5}  shift {shift:.3f} px  "
                      f"<=1.5 {row['within_1.5px']}/{len(cases)}  <=5 {row['within_5px']}/{len(cases)}  "
                      f"worse {row['worse_than_start']}  median {row['median_tre_px']:.2f} px", flush=True)
        (args.out / f"{name}.json").write_text(json.dumps({"dataset": name, "cases": len(cases), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
