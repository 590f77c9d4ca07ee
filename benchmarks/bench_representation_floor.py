"""How far the registration moves a pair that is already aligned: the floor of a representation.

Every test pair (the sets of ``bench_styled_defaults.py``) comes with its true deformation. Here
the LOM is first warped by that truth into the CBS frame, so the pair is exactly aligned; then the
representation is made (the shipped model, or ``--model``) and each step of the chain is run from
the identity, as if it had started at the truth:

- ``affine``: the fine affine step's fit (:func:`styleunwarp.pipeline.fine_affine.fit_affine`);
- ``elastic``: the elastic step (bUnwarpJ with the pipeline's defaults, or ``--backend``; skipped
  with ``--skip-elastic``);
- ``shift_x``, ``shift_y``: the translation alone that fits the maps best at the truth (the fine
  affine fit with two degrees of freedom). Averaged over a set, it tells a bias of the renderer (its
  LOM lines drawn to one side of the CBS boundaries: every pair shifts the same way) from pair-by-pair
  scatter (the set's mean vector short against its pairs' shifts);
- ``local``: the mean length of one Gauss-Newton translation step of each 128 px window at four pyramid levels
  (:func:`styleunwarp.style.alignment.mean_shift_px`, the training signal of ``--align-weight``),
  no registration run at all.

Whatever they move is error the representation itself brings (lines one map draws and the other
does not, boundaries drawn off their place): no registration of that representation can be
expected to end closer to the truth than this, on average. Each number is the mean displacement
(px) over the CBS frame. (``bench_edges_floor.py`` measures the same for our own renderer's aligned
crops against perfect boundaries; this one takes any set, any renderer, and both steps.)

Variants (``--variants``, comma-separated): ``plain`` (the representation as the pipeline makes
it), ``denoiseS`` (the CBS boundary map after total-variation denoising of strength S, as
``target.denoise`` in a model card), ``highpassS`` (both maps less their Gaussian low-pass of
S px, before both steps), ``consensusR`` (the elastic step fits each map only where the
other shows structure within R px, :mod:`styleunwarp.pipeline.consensus`; the affine column is
then the plain one's).

    python benchmarks/bench_representation_floor.py --sets real:1000,blind:33,lom3:33 --out /tmp/floor \
        [--variants plain,denoise1.5,consensus3] [--model DIR] [--backend bunwarpj] [--skip-elastic] [--min-scale coarse]

Writes ``rows.csv`` (one row per set, pair and variant) and prints the mean per set and variant.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def warp_by_truth(image: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """``image`` (grey or colour) resampled at the source positions ``dense`` (2, H, W: x, y) of the truth."""
    from scipy import ndimage

    if image.ndim == 3:
        return np.stack([warp_by_truth(image[..., c], dense) for c in range(image.shape[2])], -1)
    return ndimage.map_coordinates(np.asarray(image, np.float32), [dense[1], dense[0]], order=1, mode="nearest")


def denoise_of(variant: str) -> float:
    """The CBS denoising strength of ``variant`` (``denoiseS``; 0 for the others)."""
    return float(variant[len("denoise"):]) if variant.startswith("denoise") else 0.0


def highpass_of(variant: str) -> float:
    """The high-pass scale of ``variant`` (``highpassS``; 0 for the others)."""
    return float(variant[len("highpass"):]) if variant.startswith("highpass") else 0.0


def highpass(image: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` less its Gaussian low-pass of ``sigma`` px."""
    from scipy import ndimage

    return image - ndimage.gaussian_filter(image, sigma)


def main(argv: list[str] | None = None) -> None:
    import torch
    from bench_styled_defaults import make_set

    from styleunwarp.io import normalize, read_image, to_gray
    from styleunwarp.pipeline.consensus import consensus
    from styleunwarp.pipeline.fine_affine import fit_affine
    from styleunwarp.quality import transform_stats
    from styleunwarp.registration import PIPELINE_DEFAULTS, register
    from styleunwarp.style.alignment import mean_shift_px
    from styleunwarp.style.infer import StyleTransfer
    from styleunwarp.transform import affine_elastic, read_transform
    from styleunwarp.transform.model import to_dense

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", required=True, help="comma-separated sets of bench_styled_defaults.py (real:1000, blind:33, ...)")
    ap.add_argument("--variants", default="plain")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--model", default=None, help="style model folder (default: the shipped one)")
    ap.add_argument("--backend", default="bunwarpj")
    ap.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data" / "openecci-cbs")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--min-scale", default=None,
                    help="the elastic step's first deformation scale (very_coarse .. very_fine; default: the pipeline's)")
    ap.add_argument("--skip-elastic", action="store_true", help="only the affine and local columns (no registration)")
    args = ap.parse_args(argv)

    params = PIPELINE_DEFAULTS if args.min_scale is None else replace(PIPELINE_DEFAULTS, min_scale_deformation=args.min_scale)
    model = StyleTransfer.load(args.model) if args.model else StyleTransfer.load_default()
    if model.target_kind != "edges":
        raise SystemExit(f"{args.model}: the floor is measured for boundary-map (edges) models, this one renders {model.target_kind!r}")
    variants = args.variants.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for spec in args.sets.split(","):
        test = make_set(spec, args.out, args.real, args.size)
        for lom_file in sorted((test / "lom").glob("*.tif")):
            name = lom_file.stem
            cbs = to_gray(read_image(test / "cbs" / f"{name}.tif").data).astype(np.float32)
            dense = to_dense(read_transform(test / "truth" / f"{name}_direct_transf.txt"), cbs.shape)
            lom = warp_by_truth(read_image(lom_file).data, dense)
            identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
            styled = normalize(np.asarray(model(lom), np.float32))
            maps: dict[tuple[float, float], tuple[np.ndarray, np.ndarray, float, np.ndarray]] = {}
            for variant in variants:
                key = (denoise_of(variant), highpass_of(variant))
                if key not in maps:
                    target = normalize(np.asarray(model.prepare_target(cbs, denoise=key[0]), np.float32))
                    source = styled
                    if key[1] > 0:
                        source, target = normalize(highpass(source, key[1])), normalize(highpass(target, key[1]))
                    fitted, _, _ = fit_affine(target, source, identity)
                    affine = transform_stats(affine_elastic(fitted, 1, cbs.shape), cbs.shape, cbs.shape).displacement_mean
                    shift, _, _ = fit_affine(target, source, identity, dof=2)
                    maps[key] = (source, target, affine, shift[:, 2])
                source, target, affine, shift = maps[key]
                local = mean_shift_px(torch.from_numpy(source)[None, None], torch.from_numpy(target)[None, None])
                elastic = float("nan")
                if not args.skip_elastic:
                    radius = int(variant[len("consensus"):]) if variant.startswith("consensus") else 0
                    reg = register(*consensus(target, source, radius), params, backend=args.backend)
                    elastic = transform_stats(reg.direct, cbs.shape, cbs.shape).displacement_mean
                row = {"set": spec, "pair": name, "variant": variant, "affine": affine, "elastic": elastic, "local": local,
                       "shift_x": float(shift[0]), "shift_y": float(shift[1])}
                rows.append(row)
                print(f"{spec} {name} {variant}: affine {affine:.2f} px, elastic {elastic:.2f} px, local {local:.2f} px, "
                      f"shift ({shift[0]:+.2f}, {shift[1]:+.2f}) px", flush=True)
    with (args.out / "rows.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {}
    for spec in args.sets.split(","):
        for variant in variants:
            sel = [r for r in rows if r["set"] == spec and r["variant"] == variant]
            summary[f"{spec} {variant}"] = m = {k: round(float(np.mean([r[k] for r in sel])), 3)
                                                for k in ("affine", "elastic", "local", "shift_x", "shift_y")}
            m["shift_length"] = round(float(np.mean([np.hypot(r["shift_x"], r["shift_y"]) for r in sel])), 3)
            print(f"{spec:>12} {variant:>12}: mean affine {m['affine']:.3f} px, elastic {m['elastic']:.3f} px, "
                  f"local {m['local']:.3f} px, shift: mean vector ({m['shift_x']:+.3f}, {m['shift_y']:+.3f}), "
                  f"mean length {m['shift_length']:.3f} px ({len(sel)} pairs)")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
