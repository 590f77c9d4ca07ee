"""Train candidate shipped models side by side on one GPU in one prepared run, keeping snapshots.

    PYTHONPATH=python python benchmarks/train_shipped_gpu.py OUT [--minutes 8] [--chunks 4]
        [--variants b8ft,b12,b16] [--workers 16] [--data DIR] [--pack DIR] [--scale 1.0]

What it does, in one command (so that a lent GPU's minutes go to training, not to starts):

1. renders a wide mix of aligned 512 px steel renderings once, in ``--workers`` processes
   (:data:`MIX`: plain varied renderings, with LOM-only marks, with marks and imaging looks
   (wide grooves, dark field, DIC), and LOMs rendered from the CBS; seeds 3000-3499, used by no
   test set); ``--scale`` multiplies every count;
2. trains each variant of :data:`VARIANTS` (an ``edges`` U-Net, 3 channels, random appearance on
   half the crops) in its own process, all at once, for ``--minutes`` in ``--chunks`` equal
   slices, copying the model kept so far (best validation L1) to ``OUT/NAME/snap{k}`` after
   each slice;
3. with ``--pack DIR`` (or ``--pack-only``, after a run cut short), writes each variant's snapshots as tar files of at most 15 MB into DIR,
   plus ``train_shipped_gpu.json`` (the command, the data, every slice).

The snapshots are candidates only: ``benchmarks/bench_styled_defaults.py --model`` chooses
among them by registration TRE on the CPU machine (docs/style.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (name prefix, count, first seed, renderer, LOM-only marks, imaging looks)
MIX = [
    ("p", 100, 3000, "geometry", False, False),
    ("m", 60, 3100, "geometry", True, False),
    ("ml", 60, 3200, "geometry", True, True),
    ("fp", 40, 3300, "from-cbs", False, False),
    ("fml", 40, 3400, "from-cbs", True, True),
]

#: name -> U-Net width (``base``), start weights, learning rate, batch size
VARIANTS = {
    "b8ft": {"base": 8, "init": "models/lom2cbs-synthetic", "lr": 5e-4, "batch": 16},
    "b12": {"base": 12, "init": None, "lr": 1e-3, "batch": 16},
    "b16": {"base": 16, "init": None, "lr": 1e-3, "batch": 16},
}


def render_one(job: tuple) -> dict:
    """Render and write one pair of :data:`MIX` (skipped when its files exist)."""
    root, name, seed, renderer, marks, looks = job
    from styleunwarp.io import write_tiff
    from styleunwarp.synth.variety import varied_pair

    root = Path(root)
    lom_f, cbs_f = root / "lom" / f"{name}.tif", root / "cbs" / f"{name}.tif"
    if not cbs_f.is_file():
        p = varied_pair((512, 512), seed=seed, name=name, renderer=renderer, marks=marks, looks=looks)
        write_tiff(lom_f, p.lom if p.lom.ndim == 2 else p.lom.round().astype("uint8"))
        write_tiff(cbs_f, p.cbs)
    return {"name": name, "seed": seed, "renderer": renderer, "marks": marks, "looks": looks}


def render_mix(root: Path, workers: int, scale: float) -> list[dict]:
    for sub in ("lom", "cbs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    jobs = [(str(root), f"{prefix}{seed0 + i}", seed0 + i, renderer, marks, looks)
            for prefix, n, seed0, renderer, marks, looks in MIX for i in range(max(1, round(n * scale)))]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(render_one, jobs, chunksize=4))


def describe(metas: list[dict]) -> str:
    parts = []
    for prefix, _, seed0, renderer, marks, looks in MIX:
        rows = [m for m in metas if m["name"].startswith(prefix) and m["name"][len(prefix):].isdigit()]
        if rows:
            parts.append(f"{len(rows)} {'from-CBS' if renderer == 'from-cbs' else 'varied'} renderings"
                         f" (seeds {rows[0]['seed']}..{rows[-1]['seed']}"
                         + (", LOM-only marks" if marks else "") + (", wide grooves / dark field / DIC" if looks else "")
                         + ")")
    return ("aligned 512x512 steel renderings (styleunwarp.synth.variety.varied_pair): " + "; ".join(parts)
            + "; each crop's LOM given a random look with probability 0.5 (styleunwarp.style.appearance); "
              "benchmarks/train_shipped_gpu.py")


def train_variant(out: Path, data: Path, name: str, minutes: float, chunks: int, desc: str) -> list[dict]:
    """Train one variant in ``chunks`` slices; a snapshot of the kept model after each."""
    import torch

    from styleunwarp.style.networks import Architecture
    from styleunwarp.style.train import TrainConfig
    from train_shipped import train_in_slices

    torch.set_num_threads(4)
    v = VARIANTS[name]
    cfg = TrainConfig(mode="unet", target="edges", epochs=100_000, seed=0, crop=192, batch_size=v["batch"],
                      lr=v["lr"], appearance=0.5, arch=Architecture(in_channels=3, base=v["base"], depth=5))
    slices = []
    for k, (snap, res, seconds) in enumerate(train_in_slices(data, out / name, cfg, minutes, chunks, init=v["init"],
                                                             desc=desc + (f"; fine-tuned from {v['init']}" if v["init"] else ""))):
        slices.append({"snapshot": f"{name}/{snap.name}", "seconds": seconds,
                       "steps_done": res.get("steps_done"), "steps_per_epoch": res.get("steps_per_epoch"),
                       "best": res.get("best")})
        print(f"{name} slice {k}: {json.dumps(slices[-1], default=str)}", flush=True)
        (out / name / "slices.json").write_text(json.dumps(slices, indent=1, default=str) + "\n")
    return slices


def pack(out: Path, dest: Path, names: list[str], limit: float = 15e6) -> list[str]:
    """Each variant's snapshots as tar files of at most ``limit`` bytes (a snapshot is never split)."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        snaps = sorted(p for p in (out / name).glob("snap*") if p.is_dir())
        group, size, part = [], 0.0, 0
        for snap in snaps + [None]:
            s = None if snap is None else sum(f.stat().st_size for f in snap.iterdir())
            if group and (snap is None or size + s > limit):
                tar = dest / f"{name}-{part}.tar"
                with tarfile.open(tar, "w") as tf:
                    for g in group:
                        tf.add(g, arcname=f"{name}/{g.name}")
                written.append(tar.name)
                group, size, part = [], 0.0, part + 1
            if snap is not None:
                group.append(snap)
                size += s
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--data", default=None, help="rendered pairs (default OUT/data)")
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every count of MIX (a quick check: 0.05)")
    ap.add_argument("--pack", default=None)
    ap.add_argument("--pack-only", action="store_true",
                    help="only pack OUT's existing snapshots into --pack (e.g. after a run cut short)")
    ap.add_argument("--only", default=None, help=argparse.SUPPRESS)  # one variant, in a child process
    ap.add_argument("--desc", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = Path(args.out)
    data = Path(args.data) if args.data else out / "data"
    if args.only:
        train_variant(out, data, args.only, args.minutes, args.chunks, args.desc)
        return 0
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    if args.pack_only:
        if not args.pack:
            raise SystemExit("--pack-only needs --pack DIR")
        print("packed", pack(out, Path(args.pack), names), flush=True)
        slices = {n: json.loads((out / n / "slices.json").read_text()) for n in names
                  if (out / n / "slices.json").is_file()}
        (Path(args.pack) / "slices.json").write_text(json.dumps(slices, indent=1) + "\n")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    metas = render_mix(data, args.workers, args.scale)
    desc = describe(metas)
    record = {"command": "python benchmarks/train_shipped_gpu.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "data": desc, "pairs": len(metas), "render_seconds": round(time.monotonic() - t0, 1), "variants": {}}
    print(f"rendered {len(metas)} pairs in {record['render_seconds']} s", flush=True)
    procs = {n: subprocess.Popen([sys.executable, __file__, str(out), "--data", str(data), "--only", n,
                                  "--minutes", str(args.minutes), "--chunks", str(args.chunks), "--desc", desc])
             for n in names}
    for n, p in procs.items():
        record["variants"][n] = {**VARIANTS[n], "returncode": p.wait()}
        f = out / n / "slices.json"
        record["variants"][n]["slices"] = json.loads(f.read_text()) if f.is_file() else []
    record["seconds"] = round(time.monotonic() - t0, 1)
    (out / "train_shipped_gpu.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    if args.pack:
        written = pack(out, Path(args.pack), names)
        shutil.copy2(out / "train_shipped_gpu.json", Path(args.pack) / "train_shipped_gpu.json")
        print("packed", written, flush=True)
    return 0 if all(v["returncode"] == 0 for v in record["variants"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
