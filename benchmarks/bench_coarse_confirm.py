"""How much structure a coarse winner must gain over the identity: each stage of the coarse step, unconfirmed, against the truth.

The coarse step (``pipeline.chain.coarse_alignment``) replaces the identity by a hypothesis only if
MIND-SSC confirms it (:func:`styleunwarp.pipeline.coarse.confirm.confirm`): agreement above the
identity's and far above chance. This bench runs every stage of the step *without* that
confirmation and records, per stage, the winner's distance from the truth, its distance from the
identity, and the numbers the confirmation decides on (MIND agreement at the identity and at the
winner, the chance spread, z, and the paired gain on the pixels both maps cover with its t across
tiles, :func:`styleunwarp.structure.paired_gain`). Rules for the gain a winner needs are then evaluated offline: for
each rule the stages are replayed in the order ``coarse_alignment`` runs them, the first confirmed
winner chosen, so the result is the one ``register`` would get under that rule.

Chains, per pair, as ``register`` prepares it:

* ``model``: the shipped model's representation (or ``--model``), one stage (search on the
  representation, the identity refined locally where no hypothesis wins);
* ``raw``: the raw grey images of a training-free chain (``--style none``, the second opinion's
  elastix chain): grey levels, then edge strength (with the local refinement), then mutual information.

Inputs: folders as ``bench_asdelivered.py`` writes them (``NAME_LOM.tif``, ``NAME_CBS.tif``,
``NAME_truth.txt``) or ``lom/ cbs/ truth/``, given as ``LABEL=FOLDER``. Rows go to ``OUT/rows.jsonl``
(a rerun resumes); the table compares the rules of :data:`RULES`.

    PYTHONPATH=python python benchmarks/bench_coarse_confirm.py --sets lom3=D/lom3,shale=D/shale --out /tmp/bcc [--chains model,raw]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks"))

WORSE_PX = 0.25
"""A chosen map is 'worse than the start' when its mean TRE exceeds the identity's by more than this."""


def stage_row(name: str, result, target: np.ndarray, source: np.ndarray, tre_of, shape: tuple[int, int]) -> dict:
    """One stage's unconfirmed winner: its error, its move from the identity and the confirmation's numbers."""
    from styleunwarp.pipeline.coarse.confirm import confirm
    from styleunwarp.pipeline.fine_affine import largest_move

    eye = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    if result is None or result.is_identity:
        return {"stage": name, "winner": False, "reason": "" if result is None else result.reason}
    best = result.chosen
    _, facts = confirm(target, source, best, 0.0)
    return {"stage": name, "winner": True, "search": result.search, "method": best.method, "tre": tre_of(best.matrix),
            "moved_px": largest_move(eye, best.matrix, shape), "matrix": np.asarray(best.matrix)[:2].tolist(),
            **{k: float(v) for k, v in facts.items() if k != "reason"}}


def raw_stages(target: np.ndarray, source: np.ndarray, scale_known: bool, tre_of) -> list[dict]:
    """The raw chain's stages in ``coarse_alignment``'s order, each unconfirmed."""
    from styleunwarp.pipeline.coarse import CoarseResult, align
    from styleunwarp.pipeline.coarse.mutual import decide, search
    from styleunwarp.structure import edge_strength

    scale = 1.0 if scale_known else None
    grey = align("auto", target, source, scale=scale, refine_local=False, confirm_structure=False)
    edges = align("auto", target, source, scale=scale, search_on=(edge_strength(target), edge_strength(source)), confirm_structure=False)
    cands, identity = search(target, source, scale=scale)
    best, reason = decide(cands, identity, target.shape)
    mi = None if best is None else CoarseResult("similarity", best, identity, cands, reason, "mutual information")
    return [stage_row(n, r, target, source, tre_of, target.shape) for n, r in (("grey levels", grey), ("edge strength", edges), ("mutual information", mi))]


def model_stages(target: np.ndarray, source: np.ndarray, scale_known: bool, tre_of) -> list[dict]:
    """The model chain's one stage, unconfirmed."""
    from styleunwarp.pipeline.coarse import align

    r = align("auto", target, source, scale=1.0 if scale_known else None, confirm_structure=False)
    return [stage_row("representation", r, target, source, tre_of, target.shape)]


def run_pair(label: str, name: str, lom: Path, cbs: Path, truth_path: Path, chains: list[str], model) -> list[dict]:
    from styleunwarp.io import to_gray
    from styleunwarp.pipeline.coarse import compose_direct
    from styleunwarp.pipeline.pair import prepare_pair
    from styleunwarp.quality import tre
    from styleunwarp.transform import identity_elastic, read_transform

    truth = read_transform(truth_path)
    rows = []
    for chain in chains:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            prep = prepare_pair(lom, cbs, tmp, model=model) if chain == "model" else prepare_pair(lom, cbs, tmp, style="none")
        ref = prep.target if prep.reference_target is None else prep.reference_target
        source = prep.styled if chain == "model" else to_gray(prep.styled)

        def tre_of(a: np.ndarray) -> float:
            return float(tre(compose_direct(identity_elastic(4, ref.shape), a), truth, ref.shape, source.shape[:2]).mean)

        stages = (model_stages if chain == "model" else raw_stages)(ref, source, prep.scale_known, tre_of)
        rows.append({"set": label, "pair": name, "chain": chain, "tre_start": tre_of(np.eye(2, 3)), "stages": stages,
                     "seconds": time.perf_counter() - t0})
    return rows


def needed_gain(stage: dict, rule: dict) -> float:
    """The chance spreads of agreement over the identity ``rule`` asks of a stage's winner."""
    from styleunwarp.pipeline.coarse.confirm import LOCAL_GAIN_SDS

    base = LOCAL_GAIN_SDS if stage.get("search") == "local" else 0.0
    if stage["moved_px"] <= rule.get("near_px", np.inf):
        base = max(base, rule["gain"])
    return base


def chosen_tre(row: dict, rule: dict) -> tuple[float, str]:
    """The coarse result ``register`` would get under ``rule``: the first stage whose winner is confirmed."""
    from styleunwarp.pipeline.coarse.confirm import decide

    for st in row["stages"]:
        if st["winner"] and decide(st, needed_gain(st, rule), rule.get("paired_t", -np.inf))[2]:
            return st["tre"], st["stage"]
    return row["tre_start"], "identity"


RULES = {
    "before (gain > 0; local 2)": {"gain": 0.0},
    "paired t >= 0.5 (default)": {"gain": 0.0, "paired_t": 0.5},
    "paired t >= 1": {"gain": 0.0, "paired_t": 1.0},
    "gain 1 within 8 px": {"gain": 1.0, "near_px": 8.0},
    "gain 2 within 8 px": {"gain": 2.0, "near_px": 8.0},
    "gain 2 within 16 px": {"gain": 2.0, "near_px": 16.0},
    "gain 1 always": {"gain": 1.0},
    "gain 2 always": {"gain": 2.0},
    "gain 3 always": {"gain": 3.0},
}
"""Rules for the agreement gain over the identity a coarse winner needs (``gain``: chance spreads;
``near_px``: only for winners moving no pixel further than this from the identity; ``paired_t``: the
gain on the pixels both maps cover in standard errors across tiles, :data:`.confirm.PAIRED_T_MIN`)."""


def table(rows: list[dict]) -> str:
    out = ["| set | chain | rule | within 1.5 px | within 5 px | mean px | worse than start | changed vs before |", "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["set"], r["chain"]) for r in rows})
    for s, c in keys:
        sub = [r for r in rows if r["set"] == s and r["chain"] == c]
        now = [chosen_tre(r, RULES["before (gain > 0; local 2)"])[0] for r in sub]
        for rule_name, rule in RULES.items():
            t = np.array([chosen_tre(r, rule)[0] for r in sub])
            start = np.array([r["tre_start"] for r in sub])
            changed = int(np.sum(np.abs(t - np.array(now)) > 1e-9))
            out.append(f"| {s} | {c} | {rule_name} | {(t <= 1.5).sum()}/{t.size} | {(t <= 5).sum()}/{t.size} | {t.mean():.2f} | "
                       f"{int((t > start + WORSE_PX).sum())} | {changed} |")
    return "\n".join(out)


def main() -> None:
    from bench_fine_affine import pairs_in

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", required=True, help="LABEL=FOLDER,... (folders as bench_asdelivered.py writes them)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--chains", default="model,raw")
    ap.add_argument("--model", default=None, help="style model (default: the shipped one)")
    args = ap.parse_args()
    chains = args.chains.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    rows_file = args.out / "rows.jsonl"
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.exists() else []
    done = {(r["set"], r["pair"], r["chain"]) for r in rows}
    for spec in args.sets.split(","):
        label, folder = spec.split("=", 1)
        for name, lom, cbs, truth in pairs_in(Path(folder)):
            todo = [c for c in chains if (label, name, c) not in done]
            if not todo:
                continue
            new = run_pair(label, name, lom, cbs, truth, todo, args.model)
            with rows_file.open("a") as f:
                for r in new:
                    f.write(json.dumps(r) + "\n")
            rows += new
            for r in new:
                desc = "; ".join(f"{s['stage']} {s['tre']:.2f} px (moved {s['moved_px']:.1f}, MIND {s['mind_identity']:.3f}->{s['mind_winner']:.3f}, "
                                 f"sd {s['mind_chance_sd']:.4f}, z {s['z']:.1f}, {s['search']})" for s in r["stages"] if s["winner"]) or "no winner"
                print(f"{label}/{name} {r['chain']}: start {r['tre_start']:.2f}; {desc} [{r['seconds']:.0f} s]", flush=True)
    print(f"\ncommand: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(table([r for r in rows if r["chain"] in chains]))


if __name__ == "__main__":
    main()
