"""Test-time adaptation as a user runs it: ``styleunwarp register`` with the defaults, with and without adaptation.

For every pair of each set (the sets of ``bench_styled_defaults.py``, or ``shale:SEED`` / ``clem:SEED``:
the real aligned pairs of ``../shared/data`` with the source deformed near-identity or small in turn,
as ``bench_asdelivered.py`` does), the CLI registers the pair
twice with the shipped model and every default (second opinion included), ``--truth`` only to
score: ``off`` with ``--adapt-steps 0``, ``default`` as it comes (adapted, 150 steps). Writes
``OUT/rows.jsonl`` (one row per pair and configuration: mean TRE, tier, wall seconds of the whole
call, the pipeline's own seconds; a rerun skips the rows already there) and prints, per set, the
tiers (good/decent/bad/poor), the mean TRE and the per-pair differences.

    python benchmarks/bench_adapt_cli.py --sets lom3:47,blind:47 --out /tmp/adapt-cli
    python benchmarks/bench_adapt_cli.py --sets shale:51,clem:51 --pairs 8 --out /tmp/adapt-cli-real
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_asdelivered import REAL_PAIRS, _deformed_real_pairs  # noqa: E402
from bench_styled_defaults import make_set  # noqa: E402

CONFIGS = {"off": ["--adapt-steps", "0"], "default": []}


def cases(spec: str, out: Path, real: Path, size: int) -> list[tuple[str, str, Path, Path, Path]]:
    """``(set, name, lom, cbs, truth)`` of every pair of ``spec``: a set of ``bench_styled_defaults.py``
    (``lom3:47``), or ``shale:SEED`` / ``clem:SEED`` (the real pairs, as ``bench_asdelivered.py`` deforms them)."""
    kind, seed = spec.split(":")[:2]
    if kind in REAL_PAIRS:
        folder, src, tgt = REAL_PAIRS[kind]
        label = spec.replace(":", "_")
        rows = _deformed_real_pairs(real.parent / folder, src, tgt, out / "data" / label, int(seed), None)
        return [(label, r["name"], r["lom"], r["cbs"], r["truth"]) for r in rows]
    test = make_set(spec, out, real, size)
    return [(test.parent.name, lom.stem, lom, test / "cbs" / lom.name, test / "truth" / f"{lom.stem}_direct_transf.txt")
            for lom in sorted((test / "lom").glob("*.tif"))]


def run_one(case: tuple[str, str, Path, Path, Path], config: str, out: Path) -> dict:
    """One ``styleunwarp register`` call; its row."""
    set_name, name, lom, cbs, truth = case
    d = out / "runs" / set_name / name / config
    cmd = [sys.executable, "-m", "styleunwarp", "register", str(lom), str(cbs), "--out", str(d), "--truth", str(truth), *CONFIGS[config]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    row = {"set": set_name, "pair": name, "config": config, "wall_s": wall}
    if proc.returncode != 0:
        return {**row, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    m = json.loads((d / "metrics.json").read_text())
    return {**row, "tre": m["tre"]["mean"], "tier": m["tier"], "seconds": m["seconds"],
            "adapt": (m.get("adapt") or {}).get("combined"), "second_opinion": (m.get("second_opinion") or {}).get("kept")}


def summary(rows: list[dict]) -> None:
    """Per set: tiers, mean TRE and median wall time of each configuration run, and the per-pair
    differences where both ran."""
    for s in sorted({r["set"] for r in rows}):
        by = {(r["pair"], r["config"]): r for r in rows if r["set"] == s and "tre" in r}
        for c in CONFIGS:
            pairs = sorted(p for p, c2 in by if c2 == c)
            if not pairs:
                continue
            tiers = Counter(by[p, c]["tier"] for p in pairs)
            mean = sum(by[p, c]["tre"] for p in pairs) / len(pairs)
            wall = sorted(by[p, c]["wall_s"] for p in pairs)[len(pairs) // 2]
            print(f"{s:<12} {c:<8} {len(pairs):>3} pairs  {tiers['good']}/{tiers['decent']}/{tiers['bad']}/{tiers['poor']}"
                  f"  mean TRE {mean:.3f} px  median wall {wall:.0f} s")
        both = sorted(p for p, c in by if c == "default" and (p, "off") in by)
        if both:
            diffs = sorted(round(by[p, "default"]["tre"] - by[p, "off"]["tre"], 3) for p in both)
            print(f"{s:<12} default minus off, per pair (px): {diffs}")


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="lom3:47,blind:47")
    ap.add_argument("--real", default=str(repo.parent / "shared" / "data" / "openecci-cbs"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--pairs", type=int, default=0, help="first N pairs of each set only (0: all)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/adapt-cli"))
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"which of {', '.join(CONFIGS)} to run (default all)")
    args = ap.parse_args()
    if unknown := set(args.configs.split(",")) - set(CONFIGS):
        ap.error(f"unknown --configs {', '.join(sorted(unknown))}: choose from {', '.join(CONFIGS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "rows.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    done = {(r["set"], r["pair"], r["config"]) for r in rows}
    for spec in args.sets.split(","):
        for case in cases(spec, args.out, Path(args.real), args.size)[: args.pairs or None]:
            for config in args.configs.split(","):
                if (case[0], case[1], config) in done:
                    continue
                row = run_one(case, config, args.out)
                rows.append(row)
                with open(path, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps({k: row.get(k) for k in ("set", "pair", "config", "tre", "tier", "wall_s", "error")}), flush=True)
    summary(rows)


if __name__ == "__main__":
    main()
