"""What the structure evidence's significance says about accuracy, read off saved registrations.

Every folder ``register`` writes with ``--truth`` holds, in its ``metrics.json``, the true mean TRE
and the structure evidence (``structure.z``: the MIND agreement of the raw source, as registered,
with the raw target, in chance spreads above chance; :mod:`styleunwarp.pipeline.evidence`). This
script walks the given folders for such files (the runs of ``bench_asdelivered.py``,
``bench_user_field.py``, second opinions' sub-folders included) and prints:

* per band of ``z``, how many results were within 1.5 px, 1.5-3 px and more than 3 px off;
* the grader's verdict without the truth (:func:`styleunwarp.quality.grade_without_truth`, recomputed
  from the saved metrics with today's grader) against the true tier: every result it calls good or
  decent that is more than 3 px off (an over-claim), and the count of each (true, printed) pair.
  A result of a ``train`` model saved before ``metrics.json`` recorded what the chain reached on the
  model's held-out cases (``quality.HELDOUT_KEY``) gets it from the model card, as ``register`` records it now.

    python benchmarks/bench_evidence_bands.py /tmp/s38 /tmp/s39 [--bands -inf,1,2,3,5,inf]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))


def saved_results(folders: list[Path]) -> list[dict]:
    """``{"folder", "tre", "p95", "z", "metrics"}`` of every ``metrics.json`` under ``folders`` with a
    true TRE and a finite structure significance, each registration once (a second opinion's result
    that was adopted is saved twice, in its sub-folder and in the pair's: same TRE, same evidence)."""
    rows, seen = [], set()
    for root in folders:
        for path in sorted(Path(root).rglob("metrics.json")):
            try:
                m = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            z = (m.get("structure") or {}).get("z")
            tre = m.get("tre") or {}
            if z is None or not np.isfinite(z) or "mean" not in tre:
                continue
            key = (round(float(tre["mean"]), 6), round(float(z), 6))
            if key in seen:
                continue
            seen.add(key)
            rows.append({"folder": str(path.parent), "tre": float(tre["mean"]), "p95": float(tre.get("p95", np.nan)), "z": float(z), "metrics": m})
    return rows


def with_heldout(metrics: dict, folder: Path) -> dict:
    """``metrics`` with the held-out result of its chain (:func:`styleunwarp.style.chain.registration_heldout`)
    where it lacks one: the model is the ``train`` model named in this folder's metrics or a parent's
    (a second opinion's raw result names none)."""
    from styleunwarp.quality import HELDOUT_KEY
    from styleunwarp.style.chain import chain_file, registration_heldout

    if HELDOUT_KEY in metrics:
        return metrics
    for parent in [folder, *folder.parents][:4]:
        try:
            model = json.loads((parent / "metrics.json").read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError):
            continue
        if model and chain_file(model) is not None:
            held = registration_heldout(model, metrics.get("style", "model"), metrics.get("representation_key"), metrics.get("backend"),
                                        metrics.get("backend_options"))
            return {**metrics, HELDOUT_KEY: held} if held else metrics
    return metrics


def main(argv: list[str] | None = None) -> None:
    from styleunwarp.quality import TIERS, grade_without_truth, tier_from_tre

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--bands", default="-inf,1,2,3,4,5,inf", help="edges of the z bands, comma-separated")
    args = ap.parse_args(argv)
    rows = saved_results(args.folders)
    print(f"{len(rows)} registrations with a true TRE and structure evidence")
    edges = [float(x) for x in args.bands.split(",")]
    print("| z band | results | <= 1.5 px | 1.5-3 px | > 3 px |\n|---|---|---|---|---|")
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = [r["tre"] for r in rows if lo <= r["z"] < hi]
        if sel:
            t = np.asarray(sel)
            print(f"| [{lo:g}, {hi:g}) | {t.size} | {(t <= 1.5).sum()} | {((t > 1.5) & (t <= 3)).sum()} | {(t > 3).sum()} |")
    pairs = Counter()
    over = []
    for r in rows:
        m = with_heldout({k: v for k, v in r["metrics"].items() if k not in ("tre", "tier", "grade_source")}, Path(r["folder"]))
        printed = grade_without_truth(m)
        true = tier_from_tre(r["tre"], r["p95"], (m.get("transform") or {}).get("folded_fraction", 0.0) > 0)
        pairs[(true, printed)] += 1
        if printed in ("good", "decent") and r["tre"] > 3:
            over.append((r["tre"], r["z"], printed, r["folder"]))
    print("\ntrue tier -> printed without the truth: " + ", ".join(f"{t}->{p} {n}" for (t, p), n in sorted(pairs.items())))
    rank = {t: i for i, t in enumerate(TIERS)}
    print(f"right {sum(n for (t, p), n in pairs.items() if t == p)}, optimistic {sum(n for (t, p), n in pairs.items() if rank[p] > rank[t])}, "
          f"pessimistic {sum(n for (t, p), n in pairs.items() if rank[p] < rank[t])}")
    print(f"printed good or decent, more than 3 px off: {len(over)}")
    for tre, z, printed, folder in sorted(over, reverse=True):
        print(f"  {tre:6.2f} px, z {z:5.1f}, printed {printed}: {folder}")


if __name__ == "__main__":
    main()
