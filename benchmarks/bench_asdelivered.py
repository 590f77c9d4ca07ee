"""`styleunwarp register LOM CBS --out D` with no flags on pairs as delivered and on nearly aligned real pairs.

Data sets (made here, from ``../shared/data``; each skipped when its folder is absent):

* ``asdelivered-px``: as-delivered steel pairs (:mod:`styleunwarp.synth.asdelivered`: LOM
  renderings of the real CBS images, RGB colour etch, scratches, dust, LOM pixel 1.3-2x the
  CBS's, a larger rotated (+-8 deg) shifted elastic LOM field), both pixel sizes in the files;
* ``asdelivered-nopx``: the same pairs, the LOM without a pixel size;
* ``shale``: the 24 aligned BSE/SE pairs (BSE moved), the BSE deformed by a known smooth
  deformation: near-identity (<= 0.5 deg, <= 1.5 px shift, <= 1 px elastic) for even
  indices, small (1-3 deg, 2-6 px, 1-3 px) for odd ones;
* ``clem``: the 4 aligned EM/FM pairs (EM moved), likewise.
* ``blind``: a 512 px crop (``--crop``; 0 for the largest square below its data bar) of each real CBS image with a LOM rendering made by
  ``benchmarks/blind_lom.py``, a renderer written without reading styleunwarp's own
  (``synth/``): grey or colour etch, dropped boundaries, optics, scratches, dust; the LOM
  (8-bit, grey or RGB) deformed as for ``shale``, no pixel sizes in the files. It stands in for
  the steel renderings "made differently from ours" that the project is judged on; nothing is
  tuned on it. With ``--delivered-cbs`` the CBS is the real file as delivered (16-bit, its data
  bar, its FEI pixel size) and the LOM is rendered from the whole field above the bar.
* ``lom3``: the same, with LOM renderings by ``benchmarks/blind_lom3.py``, a third renderer
  written without reading either of the others (the held-out renderer once
  ``blind_lom.py``'s renderings were used for training, see docs/style.md).
* ``lom4``: the same, with LOM renderings by ``benchmarks/blind_lom4.py``, a fourth renderer written
  without reading styleunwarp's ``synth/`` or the other two (forty-second session; nothing tuned on it).

For each pair: the TRE tier, the grader's tier (recomputed from the saved metrics with the
current grader, so a rerun after recalibration re-scores without re-registering), whether the start
(no registration) was better than the result, and the time. Per data set: tiers, median
TRE, poor results without a poor/bad verdict, pairs made worse than their start, and the
grader's agreement. Rows go to ``OUT/results.json`` (``calibrate_grader.py --from`` reads them).

    python benchmarks/bench_asdelivered.py [--out /tmp/bench_ad] [--sets asdelivered-px,asdelivered-nopx,shale,clem] [--n 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETS = ("asdelivered-px", "asdelivered-nopx", "shale", "clem", "blind", "lom3", "lom4")
BLIND_RENDERERS = {"blind": "blind_lom", "lom3": "blind_lom3", "lom4": "blind_lom4"}
"""Set name -> the independent LOM renderer (``benchmarks/NAME.py``) its pairs are drawn with."""
REAL_PAIRS = {"shale": ("petrography-bse-se", "bse", "se"), "clem": ("deepclem-em-fm", "em", "fm")}
"""The real aligned pairs of other modalities in ``../shared/data``: set name -> (folder, source
modality subfolder, target modality subfolder)."""
WORSE_TOLERANCE_PX = 0.25
"""A result is 'worse than its start' when its mean TRE exceeds the start's by more than this."""


def image_names(folder: Path) -> list[str]:
    """The image files (PNG, TIFF) of a data set's modality folder, by name."""
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff"))


def _deformed_real_pairs(folder: Path, src_dir: str, tgt_dir: str, out: Path, seed: int, limit: int | None,
                         names: list[str] | None = None, cycle: str = "mixed", recode=None) -> list[dict]:
    """Aligned real pairs with the source deformed by a known smooth deformation (``names``: only these files).

    ``recode(moved, whole)``: turns the deformed grey source into the image written (e.g. a colour
    coding, ``whole`` the undeformed source it came from); the empty border stays black."""
    from styleunwarp.io import read_image, to_gray, write_tiff
    from styleunwarp.synth import source_positions
    from styleunwarp.transform import warp_image, write_elastic

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    names = names or image_names(folder / src_dir)[:limit]
    for i, name in enumerate(names):
        src = to_gray(read_image(folder / src_dir / name).data)
        tgt = to_gray(read_image(folder / tgt_dir / name).data)
        rng = np.random.default_rng([seed, i])
        kind = CYCLES[cycle][i % len(CYCLES[cycle])]
        d = _deformation(rng, tgt.shape, kind)
        moved = warp_image(src, source_positions(d, src.shape))
        if recode is not None:
            inside = warp_image(np.ones_like(src, dtype=np.float32), source_positions(d, src.shape)) > 0.5
            coded = recode(moved, src)
            moved = coded * (inside[..., None] if coded.ndim == 3 else inside).astype(np.uint8)
        stem = Path(name).stem
        write_tiff(out / f"{stem}_LOM.tif", moved)
        write_tiff(out / f"{stem}_CBS.tif", tgt)
        write_elastic(d.truth, out / f"{stem}_truth.txt")
        rows.append({"name": stem, "lom": out / f"{stem}_LOM.tif", "cbs": out / f"{stem}_CBS.tif", "truth": out / f"{stem}_truth.txt", "kind": kind})
    return rows


KINDS = {
    "near-identity": {"rotation_deg": (0.0, 0.5), "shift_px": (0.0, 1.5), "elastic_px": (0.0, 1.0)},
    "small": {"rotation_deg": (1.0, 3.0), "shift_px": (2.0, 6.0), "elastic_px": (1.0, 3.0)},
    "large": {"rotation_deg": (3.0, 8.0), "shift_px": (8.0, 25.0), "elastic_px": (2.0, 5.0)},
}
"""Known smooth deformations of the test pairs, by kind (ranges of rotation, shift and elastic displacement)."""
CYCLES = {"mixed": ("near-identity", "small"), "large": ("near-identity", "large", "large"), "near": ("near-identity",)}
"""The kinds given to the pairs in turn (``--cycle``); ``near``: every pair near-aligned, as the issue's steel target states it."""


RIGID_LEVELS = {1: ((0.0, 5.0), (0.0, 0.024)), 2: ((5.0, 10.0), (0.024, 0.048)),
                3: ((10.0, 15.0), (0.048, 0.072)), 4: ((15.0, 20.0), (0.072, 0.096))}
"""Lu et al. 2022's rigid transformation levels: level -> (rotation range in deg, either sign; translation
range per axis as a fraction of the patch side, either sign). Their histological set: 834 px patches,
20 px per level (2.4 %); Zurich and cytological: 300 px, 7 px per level (2.3 %)."""


def rigid_patch_pairs(folder: Path, src_dir: str, tgt_dir: str, out: Path, seed: int, names: list[str],
                      side: int, per_pair: int = 1, recode=None) -> list[dict]:
    """Held-out pairs as Lu et al. 2022 cut them: a ``side`` px reference patch from the centre of the
    target and the source patch cut from the larger source field at a known rotation and translation
    (levels 1-4 in turn, :data:`RIGID_LEVELS`), so the moved source has no empty border. The truth maps
    each reference pixel to its position in the source patch (an exact affine map). ``per_pair`` > 1 cuts
    that many cases from each pair, at random places where the moved patch stays inside the field.
    ``recode(patch, whole)``: as for :func:`_deformed_real_pairs`."""
    from styleunwarp.io import read_image, to_gray, write_tiff
    from styleunwarp.synth import rigid_patch
    from styleunwarp.transform import affine_elastic, write_elastic

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (name, k) in enumerate((n, k) for n in names for k in range(per_pair)):
        src = to_gray(read_image(folder / src_dir / name).data)
        tgt = to_gray(read_image(folder / tgt_dir / name).data)
        level = 1 + i % len(RIGID_LEVELS)
        (rot_lo, rot_hi), (sh_lo, sh_hi) = RIGID_LEVELS[level]
        rng = np.random.default_rng([seed, 41, i])
        sign = lambda: float(rng.choice([-1.0, 1.0]))  # noqa: E731
        angle = np.deg2rad(rng.uniform(rot_lo, rot_hi) * sign())
        t = np.array([rng.uniform(sh_lo, sh_hi) * sign(), rng.uniform(sh_lo, sh_hi) * sign()]) * side
        h, w = tgt.shape
        c = np.array([(side - 1) / 2.0, (side - 1) / 2.0])
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        half = np.abs(rot) @ c + np.abs(t)  # farthest reach of the source patch from its centre
        room = np.floor(np.array([w - 1, h - 1]) / 2.0 - np.maximum(half, c))  # how far the centre may move
        if np.any(room < 0):
            raise ValueError(f"{name}: a {side} px patch at level {level} leaves the {w}x{h} field; use a smaller side")
        jitter = np.zeros(2) if per_pair == 1 else np.array([rng.integers(-room[0], room[0] + 1), rng.integers(-room[1], room[1] + 1)])
        o = np.floor(np.array([(w - side) / 2.0, (h - side) / 2.0])) + jitter  # the reference patch's top-left in the field
        moved, reference, truth = rigid_patch(src, tgt, side, float(np.rad2deg(angle)), tuple(t), tuple(o))
        if recode is not None:
            moved = recode(moved, src)
        stem = Path(name).stem + (f"_{k}" if per_pair > 1 else "")
        write_tiff(out / f"{stem}_LOM.tif", moved)
        write_tiff(out / f"{stem}_CBS.tif", reference)
        write_elastic(affine_elastic(truth, 4, (side, side)), out / f"{stem}_truth.txt")
        rows.append({"name": stem, "lom": out / f"{stem}_LOM.tif", "cbs": out / f"{stem}_CBS.tif", "truth": out / f"{stem}_truth.txt",
                     "kind": f"level {level} ({np.rad2deg(angle):+.1f} deg, {t[0]:+.0f},{t[1]:+.0f} px)"})  # fmt: skip
    return rows


def _deformation(rng: np.random.Generator, shape: tuple[int, int], kind: str):
    """A smooth random deformation of one of :data:`KINDS`."""
    from styleunwarp.synth import random_deformation

    return random_deformation(rng, shape, intervals=4, **KINDS[kind])


def load_renderer(name: str):
    """Import ``benchmarks/{name}.py`` (an independent LOM renderer: ``crop_cbs``, ``render_lom``) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # registered first: dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def _largest_square(path: Path, bar_rows: int) -> int:
    """The side of the largest square crop of a CBS file below its data bar."""
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        h, w = tif.pages[0].shape[:2]
    return min(h - bar_rows, w)


def _field_above_bar(path: Path, bar_rows: int) -> np.ndarray:
    """The whole specimen field of a CBS file (the rows above its data bar), scaled to [0, 1] by its dtype's range."""
    import tifffile

    img = tifffile.imread(str(path))
    scale = float(np.iinfo(img.dtype).max) if np.issubdtype(img.dtype, np.integer) else 1.0
    return (img[:-bar_rows].astype(np.float64) / scale).astype(np.float32)


def _blind_pairs(cbs_dir: Path, out: Path, seed: int, limit: int | None, renderer: str = "blind_lom",
                 cycle: str = "mixed", crop: int = 512, delivered: bool = False) -> list[dict]:
    """Real CBS crops with LOM renderings by ``benchmarks/{renderer}.py``, the LOM deformed by a known deformation
    (the kinds of ``CYCLES[cycle]`` in turn); ``crop``: the side of the square CBS crop, 0 for the largest one.
    ``delivered``: no crop; the LOM is rendered from the whole field above the data bar and the CBS
    written is the file itself, as delivered (its data bar and pixel size for ``register`` to find)."""
    from styleunwarp.io import write_tiff
    from styleunwarp.synth import source_positions
    from styleunwarp.transform import warp_image, write_elastic

    blind = load_renderer(renderer)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, path in enumerate(sorted(cbs_dir.glob("*.tif"))[:limit]):
        rng = np.random.default_rng([seed, 77, i])
        if delivered:
            cbs = _field_above_bar(path, blind.BAR_ROWS)
        else:
            cbs = blind.crop_cbs(path, crop or _largest_square(path, blind.BAR_ROWS), rng)
        lom, params = blind.render_lom(cbs, rng)
        kind = CYCLES[cycle][i % len(CYCLES[cycle])]
        d = _deformation(rng, cbs.shape, kind)
        moved = warp_image(lom, source_positions(d, cbs.shape))
        moved = np.clip(np.rint(np.asarray(moved, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
        stem = path.stem
        write_tiff(out / f"{stem}_LOM.tif", moved, dtype=np.uint8)
        if delivered:
            shutil.copyfile(path, out / f"{stem}_CBS.tif")
        else:
            lo, hi = np.percentile(cbs, [0.1, 99.9])
            write_tiff(out / f"{stem}_CBS.tif", np.clip((cbs - lo) / max(hi - lo, 1e-9), 0, 1) * 60000.0, dtype=np.uint16)
        write_elastic(d.truth, out / f"{stem}_truth.txt")
        (out / f"{stem}_params.json").write_text(json.dumps(params, default=str) + "\n")
        rows.append({"name": stem, "lom": out / f"{stem}_LOM.tif", "cbs": out / f"{stem}_CBS.tif", "truth": out / f"{stem}_truth.txt",
                     "kind": kind + (" colour" if moved.ndim == 3 else " grey")})  # fmt: skip
    return rows


def make_sets(out: Path, sets: list[str], n: int, seed: int, crop: int = 512, cycle: str = "mixed",
              delivered: bool = False) -> dict[str, list[dict]]:
    from styleunwarp.synth.asdelivered import write_asdelivered

    todo: dict[str, list[dict]] = {}
    cbs_dir = DATA / "openecci-cbs"
    if any(s.startswith("asdelivered") for s in sets) and cbs_dir.is_dir():
        ad = out / "data" / "asdelivered"
        desc = json.loads((ad / "asdelivered.json").read_text()) if (ad / "asdelivered.json").is_file() else write_asdelivered(ad, n, from_cbs=cbs_dir, seed=seed)
        for key, sub in (("asdelivered-px", "with_pixel_size"), ("asdelivered-nopx", "without_pixel_size")):
            if key in sets:
                todo[key] = [
                    {"name": p["name"], "lom": ad / sub / f"{p['name']}_LOM.tif", "cbs": ad / sub / f"{p['name']}_CBS.tif", "truth": ad / "truth" / f"{p['name']}_direct_transf.txt", "kind": "as-delivered"}
                    for p in desc["pairs"][:n]
                ]  # fmt: skip
    for name, (folder, src, tgt) in REAL_PAIRS.items():
        if name in sets and (DATA / folder).is_dir():
            todo[name] = _deformed_real_pairs(DATA / folder, src, tgt, out / "data" / name, seed, None, cycle=cycle)
    for name, renderer in BLIND_RENDERERS.items():
        if name in sets and cbs_dir.is_dir():
            todo[name] = _blind_pairs(cbs_dir, out / "data" / name, seed, n, renderer, cycle=cycle, crop=crop, delivered=delivered)
    return todo


def register_cli(lom: Path, cbs: Path, out: Path, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``styleunwarp register LOM CBS --out OUT FLAGS`` as a user runs it, in a subprocess (output captured)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    cmd = [sys.executable, "-m", "styleunwarp", "register", str(lom), str(cbs), "--out", str(out), *flags]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def run_pair(row: dict, out: Path, register: bool = True) -> dict:
    """Run the CLI with no flags, then score the saved direct transform against the truth."""
    from styleunwarp.io import read_image
    from styleunwarp.quality import grade, grade_details, tier_from_tre, tre
    from styleunwarp.transform import identity_elastic, read_transform

    d = out / row["name"]
    t0 = time.perf_counter()
    if not (d / "metrics.json").is_file():
        if not register:
            return {**{k: str(v) for k, v in row.items()}, "status": "not run"}
        proc = register_cli(row["lom"], row["cbs"], d)
        console = proc.stdout + proc.stderr
        if proc.returncode != 0:
            return {**{k: str(v) for k, v in row.items()}, "status": "failed", "error": console.strip().splitlines()[-1:]}
        (d / "console.txt").write_text(console)
    m = json.loads((d / "metrics.json").read_text())
    lom_shape = read_image(row["lom"]).data.shape[:2]
    truth = read_transform(row["truth"])
    cbs_shape = tuple(m["cbs_shape"])
    err = tre(read_transform(d / "direct_transf.txt"), truth, cbs_shape, lom_shape)
    start = tre(identity_elastic(4, cbs_shape), truth, cbs_shape, lom_shape)
    folded = m["transform"]["folded_fraction"] > 0
    return {
        **{k: str(v) for k, v in row.items()},
        "status": "done",
        "tre_mean": err.mean, "tre_p95": err.p95, "tier_true": tier_from_tre(err.mean, err.p95, folded),
        # the verdict of the current grader on the saved metrics (= what register prints now)
        "tier_printed": grade(m)[0], "grade_source": grade(m)[1],
        "start_tre_mean": start.mean, "worse_than_start": bool(err.mean > start.mean + WORSE_TOLERANCE_PX),
        "coarse_kept": m["coarse"]["kept"], "elastic_kept": m["elastic"]["kept"],
        "ncc": m.get("styled_ncc_after"), "consistency": grade_details(m)["consistency_px"], "folded": m["transform"]["folded_fraction"],
        "seconds": time.perf_counter() - t0, "total_s": m["seconds"]["total"],
    }  # fmt: skip


def summarise(name: str, rows: list[dict]) -> str:
    rows = [r for r in rows if r["status"] != "not run"]
    done = [r for r in rows if r["status"] == "done"]
    tiers = {t: sum(r["tier_true"] == t for r in done) for t in ("good", "decent", "bad", "poor")}
    silent_poor = sum(r["tier_true"] == "poor" and r["tier_printed"] not in ("poor", "bad") for r in done)
    worse = sum(r["worse_than_start"] for r in done)
    agree = sum(r["tier_true"] == r["tier_printed"] for r in done)
    med = float(np.median([r["tre_mean"] for r in done])) if done else float("nan")
    mean = float(np.mean([r["tre_mean"] for r in done])) if done else float("nan")
    secs = float(np.median([r["total_s"] for r in done])) if done else float("nan")
    return (
        f"| {name} | {len(rows)} | {tiers['good']} | {tiers['decent']} | {tiers['bad']} | {tiers['poor']} | {len(rows) - len(done)} | "
        f"{med:.2f} | {mean:.2f} | {silent_poor} | {worse} | {agree}/{len(done)} | {secs:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_asdelivered"))
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--n", type=int, default=10, help="as-delivered pairs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--crop", type=int, default=512, help="blind/lom3/lom4: side of the CBS crop in px, 0 for the largest square")
    ap.add_argument("--delivered-cbs", action="store_true",
                    help="blind/lom3/lom4: the real CBS file as delivered (data bar, pixel size), the LOM rendered from the whole field above the bar (no crop)")
    ap.add_argument("--cycle", choices=sorted(CYCLES), default="mixed", help="kinds of deformation given to the pairs in turn (shale, clem, blind, lom3, lom4)")
    ap.add_argument("--score-only", action="store_true", help="only re-score pairs already registered in OUT (current grader)")
    ap.add_argument("--merge", type=Path, nargs="*", default=[], help="more OUT folders of earlier runs to include (score only)")
    args = ap.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    unknown = sorted(set(sets) - set(SETS))
    if unknown:
        ap.error(f"unknown data sets {unknown}; choose from {', '.join(SETS)}")
    todo = make_sets(args.out, sets, args.n, args.seed, args.crop, args.cycle, args.delivered_cbs)
    results: dict[str, list[dict]] = {}
    res_file = args.out / "results.json"
    outs = [args.out, *args.merge]
    for name, rows in todo.items():
        results[name] = []
        for row in rows:
            where = next((o for o in outs if (o / "runs" / name / row["name"] / "metrics.json").is_file()), args.out)
            r = run_pair(row, where / "runs" / name, register=not args.score_only)
            results[name].append(r)
            if r["status"] == "not run":
                continue
            extra = f"TRE {r['tre_mean']:.2f} px ({r['tier_true']}), printed {r['tier_printed']}, start {r['start_tre_mean']:.2f}, coarse {r['coarse_kept']}, elastic {r['elastic_kept']}" if r["status"] == "done" else f"FAILED {r['error']}"
            print(f"{name}/{r['name']}: {extra}", flush=True)
            res_file.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print("\n| data set | pairs | good | decent | bad | poor | failed | median TRE px | mean TRE px | poor without poor/bad verdict | worse than start | grader = true tier | median s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rows in results.items():
        print(summarise(name, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
