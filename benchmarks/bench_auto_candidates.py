"""``train --target auto`` restricted to some candidate kinds, on the aligned real pairs of ../shared/data.

Prints every candidate's held-out result as ``train`` does (the card goes to ``OUT/SET/m/chain.json``).
Data sets: ``shale`` (the 24 BSE/SE pairs as given), ``shale-hue`` (the same, the BSE grey level coded
as a fully saturated hue, so that its luminance is not monotonic in it: a colour source whose
luminance mixes what the target shows), ``clem`` (the 4 EM/FM pairs).

    python benchmarks/bench_auto_candidates.py --sets shale,shale-hue,clem --kinds none,lut [--max-minutes 15] [--out /tmp/bench_auto_candidates]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_asdelivered import DATA, REAL_PAIRS  # noqa: E402

SETS = {**REAL_PAIRS, "shale-hue": REAL_PAIRS["shale"]}


def hue_coded(grey: np.ndarray, whole: np.ndarray | None = None) -> np.ndarray:
    """``grey`` stretched to 0..1 (by the range of ``whole``, default its own) and shown as the hue
    0..0.8 at full saturation and value (uint8 RGB). ``whole``: the image a patch or a warped copy
    of ``grey`` came from, so that both are coded alike."""
    ref = grey if whole is None else whole
    u = np.clip((grey - ref.min()) / (np.ptp(ref) + 1e-9), 0.0, 1.0)
    h = 0.8 * u * 6.0

    def channel(n: int) -> np.ndarray:  # HSV -> RGB with saturation and value 1
        k = (n + h) % 6
        return 1.0 - np.clip(np.minimum(k, 4 - k), 0, 1)

    return (np.stack([channel(5), channel(3), channel(1)], -1) * 255).astype(np.uint8)


def write_pairs(name: str, out: Path) -> Path:
    """The data set's aligned pairs as ``OUT/{lom,cbs}/NAME.tif``."""
    from styleunwarp.io import read_image, to_gray, write_tiff

    folder, src, tgt = SETS[name]
    for sub in ("lom", "cbs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for f in sorted((DATA / folder / src).iterdir()):
        g = next((DATA / folder / tgt).glob(f.stem + ".*"))
        s, t = to_gray(read_image(f).data), to_gray(read_image(g).data)
        if name == "shale-hue":
            s = hue_coded(s)
        write_tiff(out / "lom" / f"{f.stem}.tif", s, dtype=np.uint8 if s.dtype == np.uint8 else None)
        write_tiff(out / "cbs" / f"{f.stem}.tif", t)
    return out


def main(argv: list[str] | None = None) -> int:
    from styleunwarp.style.auto import AutoConfig, train_auto

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="shale,shale-hue,clem")
    ap.add_argument("--kinds", default="none,lut", help="candidate kinds (AutoConfig.kinds)")
    ap.add_argument("--max-minutes", type=float, default=15.0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_auto_candidates"))
    args = ap.parse_args(argv)
    for name in [s for s in args.sets.split(",") if s]:
        if name not in SETS:
            ap.error(f"unknown data set {name!r}; choose from {', '.join(SETS)}")
        if not (DATA / SETS[name][0]).is_dir():
            print(f"{name}: skipped, {DATA / SETS[name][0]} absent")
            continue
        print(f"== {name}", flush=True)
        pairs = write_pairs(name, args.out / name / "pairs")
        train_auto(pairs, args.out / name / "m", AutoConfig(max_minutes=args.max_minutes, kinds=tuple(args.kinds.split(","))),
                   echo=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
