"""How well structure evidence ranks registrations without ground truth (``style/tournament.py``).

Reads the folders ``benchmarks/bench_unaligned.py`` leaves (``SET/m_unaligned`` with every
chain's registrations of the training pairs, ``SET/data`` with the truths kept aside) and, per
run:

* duels: for every two registrations of one pair whose true mean TREs differ by more than
  0.25 px, whether :func:`styleunwarp.style.tournament.duel` names the better one (right),
  the worse one (wrong), or neither (draw / no contest);
* the round robin's ranking of the chains against their median TRE on the training pairs.

Usage::

    python benchmarks/bench_tournament.py /tmp/b15s/shale20/shale /tmp/b15/steel30/steel
"""

from __future__ import annotations

import argparse
import statistics
import sys
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _truth_file(data: Path, pair: str) -> Path | None:
    for f in (data / "truth" / f"{pair}.txt", data / "asdelivered" / "truth" / f"{pair}_direct_transf.txt"):
        if f.is_file():
            return f
    return None


def run(folder: Path) -> dict:
    from styleunwarp.io import read_image
    from styleunwarp.quality import tre
    from styleunwarp.style.tournament import duel, tournament
    from styleunwarp.style.trust import Outcome
    from styleunwarp.transform import read_transform

    data, model = folder / "data", folder / "m_unaligned"
    results: dict[str, dict[str, Outcome]] = {}
    errors: dict[tuple[str, str], float] = {}
    dirs = [(d.parent.name, d) for d in sorted((model / "registrations").glob("*/*"))]
    dirs += [(f"round {d.parent.parent.name} model", d) for d in sorted((model / "rounds").glob("*/registrations/*"))]
    for chain, d in dirs:
        truth = _truth_file(data, d.name)
        o = Outcome.read(chain, "", "", d)
        if o is None or truth is None:
            continue
        lom = read_image(data / "unaligned" / f"{d.name}_LOM.tif").data.shape[:2]
        errors[chain, d.name] = float(tre(o.direct, read_transform(truth), o.target_shape, lom).mean)
        results.setdefault(chain, {})[d.name] = o
    right = wrong = none = 0
    for chain_a, chain_b in combinations(results, 2):
        for pair in sorted(set(results[chain_a]) & set(results[chain_b])):
            ea, eb = errors[chain_a, pair], errors[chain_b, pair]
            if abs(ea - eb) <= 0.25:
                continue
            d = duel(results[chain_a][pair].evidence, results[chain_b][pair].evidence)
            if d == 0:
                none += 1
            elif (d > 0) == (ea < eb):
                right += 1
            else:
                wrong += 1
    table = tournament(results)
    ranking = sorted(table, key=lambda c: table[c].key(), reverse=True)
    median = {c: statistics.median(errors[c, p] for p in results[c]) for c in results}
    return {"run": str(folder), "duels": (right, wrong, none), "ranking": ranking, "standing": table, "median_tre": median}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="SET folders of bench_unaligned.py (holding data/ and m_unaligned/)")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "python"))
    for folder in a.folders:
        r = run(folder)
        print(f"\n{r['run']}: duels right {r['duels'][0]}, wrong {r['duels'][1]}, draw/no contest {r['duels'][2]}")
        print("| rank | chain | beaten | duels won - lost | pairs | median TRE px |\n|---|---|---|---|---|---|")
        for i, c in enumerate(r["ranking"], 1):
            st = r["standing"][c]
            print(f"| {i} | {c} | {st.beaten} | {st.margin} | {st.pairs} | {r['median_tre'][c]:.2f} |")


if __name__ == "__main__":
    main()
