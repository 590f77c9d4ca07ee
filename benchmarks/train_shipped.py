"""Train a candidate shipped style model on widely varied steel renderings, keeping snapshots.

    PYTHONPATH=python python benchmarks/train_shipped.py OUT [--pairs 40] [--size 512]
        [--base 12] [--channels 3] [--minutes 22] [--chunks 4] [--threads 1] [--data DIR]
        [--from-cbs-pairs N] [--seed S] [--marks] [--init MODEL --lr 5e-4]
        [--real-cbs-pairs N --real-cbs-images 1,2,3,4,5] [--looks] [--plain-pairs N] [--align-weight W] [--loss l1|l2]

Writes ``DATA`` (default ``OUT/data``): ``lom/NAME.tif`` + ``cbs/NAME.tif`` aligned pairs from
:func:`styleunwarp.synth.variety.varied_pair` (seed ``i``, half colour-etched, scratches, dust,
blur, uneven light, grain sizes 35-180 px); then trains an ``edges`` U-Net in ``--chunks``
equal time slices (``train --resume``), copying the model kept so far (best validation L1)
into ``OUT/snap{k}/`` after each slice, so that the registration TRE on held-out renderings
(``benchmarks/choose_shipped.py``) chooses the checkpoint. ``--marks`` adds LOM-only marks
(:mod:`styleunwarp.synth.marks`) to the renderings; ``--init`` fine-tunes an existing model.
``--real-cbs-pairs N`` adds N random 512 px crops of the real CBS images numbered
``--real-cbs-images`` (openecci-cbs; the others stay held out), each with a LOM rendered from
it, alternately by ``benchmarks/blind_lom.py`` (a renderer written without reading ours) and
by :func:`styleunwarp.synth.lom_from_cbs`: real CBS targets and two renderers' looks. ``--looks``
adds LOM imaging modes (:mod:`styleunwarp.synth.looks`: wide grooves, dark field, DIC); ``--plain-pairs N``
adds the first N plain renderings (the shipped model's own training data). ``OUT/train_shipped.json`` records
the command, the data and each slice.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path


def write_data(root: Path, n: int, size: int, seed0: int, renderer: str = "geometry", marks: bool = False,
               looks: bool = False) -> list[dict]:
    from styleunwarp.io import write_tiff
    from styleunwarp.synth.variety import varied_pair

    metas = []
    for sub in ("lom", "cbs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = ("m" if marks else "") + ("l" if looks else "") + (f"v{i:03d}" if renderer == "geometry" else f"f{i:03d}")
        if not (root / "cbs" / f"{name}.tif").is_file():
            p = varied_pair((size, size), seed=seed0 + i, name=name, renderer=renderer, marks=marks, looks=looks)
            write_tiff(root / "lom" / f"{name}.tif", p.lom if p.lom.ndim == 2 else p.lom.round().astype("uint8"))
            write_tiff(root / "cbs" / f"{name}.tif", p.cbs)
            metas.append({"name": name, "seed": seed0 + i, "grain_size": p.meta["microstructure"]["grain_size"],
                          **p.meta["variety"]})
    return metas


def write_real_cbs_data(root: Path, n: int, images: list[int], seed0: int, size: int = 512) -> list[dict]:
    """``n`` aligned pairs on random crops of the real CBS images ``steel_SEM_{k:03d}`` for k in ``images``.

    Even pairs get a LOM by ``benchmarks/blind_lom.py``, odd pairs by :func:`styleunwarp.synth.lom_from_cbs`
    (half of them RGB); the CBS crop is written as uint16 like the real files.
    """
    import numpy as np

    from styleunwarp.io import write_tiff
    from styleunwarp.synth import lom_from_cbs

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_asdelivered import load_renderer

    blind = load_renderer("blind_lom")
    data_dir = Path(blind.DATA_DIR)
    files = [data_dir / f"steel_SEM_{k:03d}.tif" for k in images]
    for f in files:
        if not f.is_file():
            raise SystemExit(f"{f}: real CBS image not found")
    for sub in ("lom", "cbs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    metas = []
    for i in range(n):
        name = f"r{i:03d}"
        f = files[i % len(files)]
        if (root / "cbs" / f"{name}.tif").is_file():
            continue
        rng = np.random.default_rng([seed0, 91, i])
        cbs = blind.crop_cbs(f, size, rng)
        lo, hi = np.percentile(cbs, [0.1, 99.9])
        cbs01 = np.clip((cbs - lo) / max(hi - lo, 1e-9), 0, 1)
        if i % 2 == 0:
            lom, params = blind.render_lom(cbs, rng)
            renderer = "blind_lom"
        else:
            rgb = bool(rng.random() < 0.5)
            lom, params = lom_from_cbs(cbs01 * 255.0, rng, rgb=rgb) / 255.0, {"rgb": rgb}
            renderer = "lom_from_cbs"
        write_tiff(root / "lom" / f"{name}.tif", np.clip(np.rint(np.asarray(lom) * 255), 0, 255).astype("uint8"))
        write_tiff(root / "cbs" / f"{name}.tif", (cbs01 * 60000.0).astype("uint16"))
        metas.append({"name": name, "cbs_image": f.stem, "renderer": renderer, "seed": [seed0, 91, i],
                      "params": {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool))}})
    return metas


def train_in_slices(data: Path, root: Path, cfg, minutes: float, chunks: int, *, init: str | None = None,
                    resume: bool = False, desc: str | None = None):
    """Train ``ROOT/model`` on ``data`` in ``chunks`` equal time slices (``train --resume`` after the
    first; ``init`` fine-tunes in the first), copying the model kept so far to ``ROOT/snap{k}``
    (``snap1{k}`` when ``resume``) after each; yields ``(snapshot folder, train's result, seconds)``."""
    from styleunwarp.style.train import train

    model = root / "model"
    for k in range(chunks):
        cfg.max_minutes = minutes / chunks
        t = time.monotonic()
        res = train(data, model, cfg, resume=k > 0 or resume, init=init if k == 0 else None,
                    progress=False, data_description=desc)
        snap = root / f"snap{k + 10 * resume}"
        snap.mkdir(parents=True, exist_ok=True)
        for f in ("model.safetensors", "model.json"):
            shutil.copy2(model / f, snap / f)
        yield snap, res, round(time.monotonic() - t, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--data", default=None)
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0, help="first pair seed (pair i: seed + i)")
    ap.add_argument("--from-cbs-pairs", type=int, default=0,
                    help="also this many pairs whose LOM is rendered from the CBS image (seeds seed+pairs onwards)")
    ap.add_argument("--real-cbs-pairs", type=int, default=0,
                    help="also this many pairs on random crops of real CBS images (see --real-cbs-images)")
    ap.add_argument("--real-cbs-images", default="1,2,3,4,5",
                    help="numbers of the openecci-cbs images those crops come from; the others stay held out")
    ap.add_argument("--resume", action="store_true", help="continue OUT/model's training (first slice too)")
    ap.add_argument("--init", default=None, help="start from this model's weights (fine-tuning; a fresh validation)")
    ap.add_argument("--marks", action="store_true",
                    help="LOM-only etch pits, relief, dark field and JPEG on the renderings (synth.marks.lom_marks)")
    ap.add_argument("--looks", action="store_true",
                    help="then wide grooves, dark field or DIC on the renderings (synth.looks.lom_looks)")
    ap.add_argument("--plain-pairs", type=int, default=0,
                    help="also the first N plain varied renderings (seeds 0..N-1, the shipped model's own data), "
                         "so that a fine-tune keeps what it learned")
    ap.add_argument("--appearance", type=float, default=0.0,
                    help="probability of a random look for each training crop's LOM (styleunwarp.style.appearance)")
    ap.add_argument("--align-weight", type=float, default=0.0,
                    help="weight of the alignment loss (styleunwarp.style.alignment; snapshots then kept by val_align_px)")
    ap.add_argument("--loss", choices=("l1", "l2"), default="l1",
                    help="pixel loss (TrainConfig.loss): l1 = conditional median, l2 = conditional mean")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--base", type=int, default=12)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--channels", type=int, default=3, choices=(1, 3))
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--minutes", type=float, default=22.0)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    from styleunwarp.style.networks import Architecture
    from styleunwarp.style.train import TrainConfig

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data) if args.data else out / "data"
    t0 = time.monotonic()
    metas = write_data(data, args.pairs, args.size, args.seed, marks=args.marks, looks=args.looks)
    if args.from_cbs_pairs:
        metas += write_data(data, args.from_cbs_pairs, args.size, args.seed + args.pairs, renderer="from-cbs",
                            marks=args.marks, looks=args.looks)
    if args.plain_pairs:
        metas += write_data(data, args.plain_pairs, args.size, 0)
    real_images = [int(k) for k in args.real_cbs_images.split(",") if k.strip()]
    if args.real_cbs_pairs:
        metas += write_real_cbs_data(data, args.real_cbs_pairs, real_images, args.seed, args.size)
    record = {"command": "python benchmarks/train_shipped.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "data": str(data), "data_seconds": round(time.monotonic() - t0, 1), "pairs": metas, "slices": []}
    desc = (f"{args.pairs} aligned {args.size}x{args.size} varied steel renderings "
            f"(styleunwarp.synth.variety.varied_pair, seeds {args.seed}..{args.seed + args.pairs - 1}: grain size 35-180 px, "
            f"half colour-etched RGB, scratches, dust, defocus, uneven light, noise)"
            + (f" + {args.from_cbs_pairs} whose LOM is rendered from the CBS image (renderer='from-cbs', seeds "
               f"{args.seed + args.pairs}..{args.seed + args.pairs + args.from_cbs_pairs - 1})" if args.from_cbs_pairs else "")
            + (f" + {args.real_cbs_pairs} random crops of the real CBS images steel_SEM_"
               + ",".join(f"{k:03d}" for k in real_images)
               + " (openecci-cbs) with LOMs rendered alternately by benchmarks/blind_lom.py and synth.lom_from_cbs"
               if args.real_cbs_pairs else "")
            + ("; with LOM-only marks (synth.marks.lom_marks: etch pits, oblique relief, dark field, JPEG)"
               if args.marks else "")
            + ("; then wide grooves, dark field or DIC (synth.looks.lom_looks)" if args.looks else "")
            + (f" + {args.plain_pairs} plain varied renderings (seeds 0..{args.plain_pairs - 1}, the shipped model's own data)"
               if args.plain_pairs else "")
            + (f"; fine-tuned from {args.init}" if args.init else "")
            + (f"; each crop's LOM given a random look with probability {args.appearance:g} (styleunwarp.style.appearance)"
               if args.appearance else "")
            + ("; squared-difference (L2) loss: the conditional mean" if args.loss == "l2" else "")
            + (f"; loss plus {args.align_weight:g} x the alignment loss (styleunwarp.style.alignment)" if args.align_weight else "")
            + "; benchmarks/train_shipped.py")
    cfg = TrainConfig(mode="unet", target="edges", epochs=10_000, seed=0, crop=args.crop, batch_size=4, lr=args.lr, appearance=args.appearance,
                      align_weight=args.align_weight, loss=args.loss,
                      arch=Architecture(in_channels=args.channels, base=args.base, depth=args.depth))
    for k, (snap, res, seconds) in enumerate(train_in_slices(data, out, cfg, args.minutes, args.chunks, init=args.init,
                                                             resume=args.resume, desc=desc)):
        record["slices"].append({"snapshot": snap.name, "seconds": seconds,
                                 "steps_done": res.get("steps_done"), "best": res.get("best")})
        (out / "train_shipped.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
        print(f"slice {k}: {record['slices'][-1]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
