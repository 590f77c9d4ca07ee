"""The ``edges`` candidate of ``train --target auto`` trained three ways for the same seconds.

* ``scratch``: a fresh U-Net (base 16, depth 4, the source's channels): what ``train --target auto`` trains;
* ``shipped-init``: the shipped boundary-map model fine-tuned (its architecture: base 8, depth 5, 3 inputs;
  ``train_translation(init=...)``, ``AutoConfig.edges_from_shipped``);
* ``scratch-small``: a fresh network of the shipped model's architecture, to tell the start from the size.

It reads a folder that ``bench_user_field.py`` wrote for one data set (``SET/train``, ``SET/model/chain.json``,
``SET/test-rigid``), rebuilds ``train``'s split and held-out cases from the card (the same seed, checked
against the card's held-out names), trains each variant on the training pairs, and scores it with
``edges -> native`` (the chain the candidate is scored with) on the held-out cases and, where the folder
has them, on the saved Lu-level test cases (``--deformations rigid``). The card's own candidates are
printed beside them.

    python benchmarks/bench_edges_init.py /tmp/user-field/shale --out /tmp/edges-init/shale [--seconds 108]
        [--variants scratch,shipped-init,scratch-small]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from styleunwarp.io import read_image, to_gray  # noqa: E402
from styleunwarp.registration import PIPELINE_DEFAULTS  # noqa: E402
from styleunwarp.style import auto  # noqa: E402
from styleunwarp.style.data import find_pairs  # noqa: E402
from styleunwarp.style.heldout import Case, make_cases  # noqa: E402
from styleunwarp.threads import torch_threads  # noqa: E402
from styleunwarp.transform.files import read_transform  # noqa: E402

VARIANTS = ("scratch", "shipped-init", "scratch-small")


def heldout_cases(folder: Path, card: dict) -> tuple[list[Case], list, int]:
    """``train``'s held-out cases of ``folder/train`` as the card's run drew them, its training files, the channels."""
    cfg = auto.AutoConfig()
    files, problems = find_pairs(folder / "train")
    images, files, _ = auto._load_images(files, problems)
    order = np.random.default_rng([cfg.seed, 3]).permutation(len(images))
    n_held = min(cfg.max_heldout, max(1, int(round(cfg.heldout_fraction * len(images)))))
    held = [images[i] for i in order[:n_held]]
    if [h[0] for h in held] != card["training_data"]["held_out"]:
        raise SystemExit(f"{folder}: the split differs from the card's ({[h[0] for h in held]})")
    cases = make_cases(held, cfg.cases_per_pair, seed=cfg.seed, max_side=card["evaluation"]["eval_side_px"],
                       scale_known=bool(card["evaluation"].get("scale_known")))
    return cases, [files[i] for i in order[n_held:]], int(card["training_data"]["source_channels"])


def rigid_cases(folder: Path) -> list[Case]:
    """The saved Lu-level test cases (``*_LOM.tif``, ``*_CBS.tif``, ``*_truth.txt``), if any."""
    out = []
    for lom in sorted((folder / "test-rigid").glob("*_LOM.tif")):
        name = lom.name[: -len("_LOM.tif")]
        tgt = to_gray(read_image(lom.parent / f"{name}_CBS.tif").data)
        out.append(Case(name, read_image(lom).data, tgt, read_transform(lom.parent / f"{name}_truth.txt"), "rigid"))
    return out


def train_variant(variant: str, manifest: Path, out: Path, channels: int, seconds: float):
    from styleunwarp.style.representations.translation import train_translation

    if variant == "scratch":
        return train_translation(manifest, out, "edges", channels, seconds / 60.0)
    shipped = auto._shipped_edges_folder()
    if shipped is None:
        raise SystemExit("the shipped boundary-map model is not installed")
    if variant == "shipped-init":
        return train_translation(manifest, out, "edges", channels, seconds / 60.0, init=shipped)
    from styleunwarp.style.infer import StyleTransfer
    from styleunwarp.style.representations.translation import Translation
    from styleunwarp.style.train import TrainConfig, train

    arch = StyleTransfer.load(shipped).arch  # the shipped model's size, fresh weights
    cfg = TrainConfig(mode="unet", target="edges", epochs=1000, max_minutes=seconds / 60.0, crop=128, batch_size=4,
                      loss="l1", arch=arch)
    res = train(manifest, out, cfg, progress=False)
    return Translation(StyleTransfer.load(out), out.name), res


def line(label: str, r: auto.Result, n: int) -> str:
    d = r.as_dict(n)
    mean = float(np.mean(np.minimum(r.tres, 50.0))) if r.tres else float("nan")
    return (f"{label:<34} within 5 px {d['within_5px']}/{n}, within 1.5 px {d['within_1.5px']}, median {d['median_tre_px']} px, "
            f"mean (capped at 50) {mean:.3f} px, worse than start {d['worse_than_start']}; {d['tre_px']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="a data set's folder written by bench_user_field.py")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=None,
                    help="training seconds per variant (default: what train --target auto gives edges in 15 minutes)")
    ap.add_argument("--variants", default=",".join(VARIANTS[:2]))
    args = ap.parse_args()
    card = json.loads((args.folder / "model" / "chain.json").read_text())
    cfg = auto.AutoConfig()
    seconds = args.seconds or cfg.translation_fraction * 60.0 * cfg.max_minutes
    cases, train_files, channels = heldout_cases(args.folder, card)
    tests = rigid_cases(args.folder)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = auto._write_manifest(args.out / "train_pairs.csv", train_files)
    name = args.folder.name
    with torch_threads(1):
        for variant in args.variants.split(","):
            t0 = time.monotonic()
            rep, res = train_variant(variant, manifest, args.out / variant, channels, seconds)
            print(f"{name} {variant}: {res['steps_done']} steps in {time.monotonic() - t0:.0f} s", flush=True)
            chain = auto.Chain("edges", "native")
            print(f"{name} {line(variant + ' held-out', auto.evaluate(rep, chain, cases, PIPELINE_DEFAULTS), len(cases))}", flush=True)
            if tests:
                print(f"{name} {line(variant + ' rigid', auto.evaluate(rep, chain, tests, PIPELINE_DEFAULTS), len(tests))}", flush=True)
    for c in card["candidates"]:
        print(f"{name} card {c['chain']:<30} within 5 px {c['within_5px']}/{c['cases']}, within 1.5 px {c['within_1.5px']}, "
              f"median {c['median_tre_px']} px; {c['tre_px']}")


if __name__ == "__main__":
    main()
