"""The "never worse than the start" rule, measured: features of every elastic step vs its true effect.

For every pair of each data set, runs the chain exactly as ``register_pair`` does
(``pipeline.pair.chain_options``: coarse step, fine affine step, consensus fit, keep rule, second
pass, raw structure check; no second opinion, no adaptation) and records the TRE of the coarse
map, of the start the elastic step saw (the fine affine map), of the elastic result the backend
returned (before any rule) and of what the chain kept, together with the similarities a
keep/undo rule can use: NCC of the representations, NCC after Gaussian blur of sigma 1, 2, 4 px,
NMI, the gradient agreement the pipeline reads and its gain per 64 px tile (how many tiles gain,
the paired t of the gains), the raw images' MIND agreement and its drop in
chance spreads (the raw check), the direct/inverse consistency, and the size of the elastic
correction (mean distance it moves the start's pixels), and the TRE of the start moved a part of the
way (:data:`PARTS` of the elastic correction, ``tre_partW``). Rows go to ``OUT/rows_SET.json``;
``--rules`` prints, per data set, what each candidate rule would give (pairs good <= 1.5 px,
mean TRE, pairs made worse than the start by > 0.25 px), the chain's own decisions first.

Data sets (made here):

* ``synth-near``: synthetic pairs (``synth`` default deformation: 1.5-4 deg, 3-8 px, 1-3 px elastic), seed 2000;
* ``synth-ad``: as-delivered pairs from synthetic microstructures (``synth --as-delivered``), seed 7;
* ``real-near``: LOM renderings of the real openECCI CBS images, the default deformation (as
  ``bench_registration_table.py --synthetic 0``, seed 1000);
* ``real-ad``: as-delivered pairs from the real CBS images (as ``bench_asdelivered.py``, seed 1);
* ``blind``, ``blindN``: real CBS crops with LOM renderings by ``benchmarks/blind_lom.py`` (a
  renderer written without reading styleunwarp's), the LOM deformed near-identity or small
  (``bench_asdelivered.py``'s ``blind`` set, seed 1, or seed N);
* ``lom3``, ``lom3-N``, ``lom4``, ``lom4-N``: likewise with ``benchmarks/blind_lom3.py`` / ``blind_lom4.py``, a
  third and a fourth renderer (seed 1 or N);
* ``shale``, ``clem``: the first N aligned real pairs of another modality, the source deformed
  near-identity (even indices) or small (odd), as ``bench_asdelivered.py`` (seed 1).

The ``synth-*`` sets tune, the ``real-*`` sets test (they are not used to choose).

    python benchmarks/bench_keep_rule.py [--sets synth-near,synth-ad,real-near,real-ad] [--n 8] [--model DIR]
        [--crop 512] [--out /tmp/bench_keep] [--rules]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def renderer_set(name: str) -> tuple[str, int] | None:
    """``(renderer, seed)`` of a set drawn by an independent LOM renderer (``bench_asdelivered.BLIND_RENDERERS``):
    ``KIND`` (seed 1) or ``KIND-N``, and the older ``blindN``; ``None`` for any other set name."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_asdelivered import BLIND_RENDERERS

    kind, _, seed = name.partition("-")
    if kind in BLIND_RENDERERS and (seed == "" or seed.isdigit()):
        return kind, int(seed or 1)
    if name.startswith("blind") and name[5:].isdigit():
        return "blind", int(name[5:])
    return None


def make_set(name: str, out: Path, n: int, crop: int = 512) -> list[dict]:
    from styleunwarp.synth import write_dataset
    from styleunwarp.synth.asdelivered import write_asdelivered

    d = out / "data" / name
    renderer = renderer_set(name)
    if renderer is not None:  # renderings by one of bench_asdelivered.py's independent LOM renderers
        import sys

        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_asdelivered import BLIND_RENDERERS, _blind_pairs

        kind, seed = renderer
        return _blind_pairs(DATA / "openecci-cbs", d, seed, n, BLIND_RENDERERS[kind], crop=crop)
    if name in ("shale", "clem"):  # aligned real pairs of other modalities, source deformed (bench_asdelivered.py)
        import sys

        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_asdelivered import REAL_PAIRS, _deformed_real_pairs

        folder, src, tgt = REAL_PAIRS[name]
        return _deformed_real_pairs(DATA / folder, src, tgt, d, 1, n)
    if name in ("synth-near", "real-near"):
        if not (d / "dataset.json").is_file():
            if name == "synth-near":
                write_dataset(d, 0, n_test=n, size=512, seed=2000, progress=False)
            else:
                write_dataset(d, 0, size=512, seed=1000, from_cbs=DATA / "openecci-cbs", progress=False)
        desc = json.loads((d / "dataset.json").read_text())
        return [{"name": e["name"], "lom": d / e["lom"], "cbs": d / e["cbs"], "truth": d / e["truth"]} for e in desc["test"]]
    if name not in ("synth-ad", "real-ad"):
        raise SystemExit(f"unknown set {name!r}: synth-near, synth-ad, real-near, real-ad, shale, clem, or a renderer "
                         "set (blind, blindN, lom3, lom3-N, lom4, lom4-N)")
    if not (d / "asdelivered.json").is_file():
        if name == "synth-ad":
            write_asdelivered(d, n, seed=7)
        else:
            write_asdelivered(d, n, from_cbs=DATA / "openecci-cbs", seed=1)
    desc = json.loads((d / "asdelivered.json").read_text())
    return [{"name": p["name"], "lom": d / "with_pixel_size" / f"{p['name']}_LOM.tif",
             "cbs": d / "with_pixel_size" / f"{p['name']}_CBS.tif", "truth": d / "truth" / f"{p['name']}_direct_transf.txt"}
            for p in desc["pairs"][:n]]


def _blur_ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray, sigma: float) -> float:
    from styleunwarp.quality import ncc

    if sigma <= 0:
        return ncc(a, b, mask)
    inner = ndimage.binary_erosion(mask, iterations=int(np.ceil(2 * sigma)))
    return ncc(ndimage.gaussian_filter(a, sigma), ndimage.gaussian_filter(b, sigma), inner)


def features(target: np.ndarray, moving: np.ndarray, moved: np.ndarray, reference: np.ndarray | None = None) -> dict:
    """Similarities of the target with the start and with the elastic result, over the pixels both cover.

    ``reference``: the image the pipeline's check measures gradient agreement on (the
    representation's ``reference_target``); the agreement on ``target`` itself is ``grad_target_*``."""
    from styleunwarp.quality import nmi
    from styleunwarp.structure import gradient_gain

    common = (moving != 0) & (moved != 0)
    f = {}
    for s in (0, 1, 2, 4):
        f[f"ncc{s}_start"] = _blur_ncc(moving, target, common, s)
        f[f"ncc{s}_elastic"] = _blur_ncc(moved, target, common, s)
    f["nmi_start"], f["nmi_elastic"] = nmi(moving, target, common), nmi(moved, target, common)
    f["grad_start"], f["grad_elastic"], _ = gradient_gain(moving, moved, target if reference is None else reference, common)
    f["grad_target_start"], f["grad_target_elastic"], _ = gradient_gain(moving, moved, target, common)
    f.update(tile_gain(moving, moved, target if reference is None else reference, common))
    return f


TILE_PX = 64


def tile_gain(start: np.ndarray, result: np.ndarray, target: np.ndarray, mask: np.ndarray, tile: int = TILE_PX) -> dict:
    """The gradient agreement's gain per tile of ``tile`` px: how many tiles gain and the paired t of
    their gains (a small correction gains a little everywhere; a fit to one map's artefacts gains
    where it moves and loses elsewhere)."""
    from styleunwarp.structure import _gradients, _inner_gradient_mask, _ngf_map

    m = _inner_gradient_mask(mask, target.shape)
    gt = _gradients(target, 1.0)
    v0, v1 = (_ngf_map(_gradients(img, 1.0), gt, m) for img in (start, result))
    gains = []
    h, w = target.shape
    for y in range(0, h - tile + 1, tile):
        for x in range(0, w - tile + 1, tile):
            mm = m[y:y + tile, x:x + tile]
            if mm.mean() > 0.5:
                gains.append(float(v1[y:y + tile, x:x + tile][mm].mean() - v0[y:y + tile, x:x + tile][mm].mean()))
    g = np.asarray(gains)
    if g.size < 3:
        return {"tile_n": int(g.size), "tile_frac": float("nan"), "tile_t": float("nan")}
    return {"tile_n": int(g.size), "tile_frac": float((g > 0).mean()), "tile_t": float(g.mean() / (g.std(ddof=1) / np.sqrt(g.size) + 1e-12))}


def raw_features(prep, a: np.ndarray, direct) -> dict:
    """MIND agreement (structure evidence) of the raw LOM, moved by the start and by the elastic
    result, with the raw CBS: a candidate check on images no registration optimised."""
    from styleunwarp.io import to_gray
    from styleunwarp.pipeline.coarse import compose_direct
    from styleunwarp.pipeline.grid import direct_to_original
    from styleunwarp.structure import mind_agreement
    from styleunwarp.transform import identity_elastic, warp_image

    lom, cbs = to_gray(prep.lom.data).astype(np.float32), to_gray(prep.cbs.data).astype(np.float32)
    out = {}
    for key, d in (("start", identity_elastic(direct.intervals, cbs.shape)), ("elastic", direct)):
        moved = warp_image(lom, direct_to_original(compose_direct(d, a), prep.grid), cbs.shape)
        out[f"mind_{key}"] = mind_agreement(moved, cbs, moved != 0)
    return out


def correction(direct, mask: np.ndarray) -> float:
    """Mean distance (px) by which the elastic step moves the start's pixels, over ``mask``."""
    from styleunwarp.transform import to_dense

    d = to_dense(direct, mask.shape)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    return float(np.hypot(d[0] - xx, d[1] - yy)[mask].mean())


PARTS = (0.25, 0.5, 0.75)
"""Fractions of the elastic correction scored as candidates (``tre_partW``): the start moved part of the way."""


def partial_correction(direct, fraction: float, shape: tuple[int, int]):
    """The elastic correction ``direct`` (on the start's grid) scaled by ``fraction``: the B-spline
    is linear in its coefficients, so the start plus a fraction of the displacement."""
    from styleunwarp.transform import ElasticTransform, identity_elastic

    ident = identity_elastic(direct.intervals, shape)
    return ElasticTransform(ident.cx + fraction * (direct.cx - ident.cx), ident.cy + fraction * (direct.cy - ident.cy))


def run_pair(row: dict, out: Path, model: str | None) -> dict:
    """The pair through today's chain exactly as ``register_pair`` runs it (coarse step, fine affine
    step, consensus fit, keep rule, second pass, raw structure check; :func:`styleunwarp.pipeline.pair.chain_options`),
    and the elastic result the backend returned before any rule, with its features and its TRE."""
    from styleunwarp.io import to_gray
    from styleunwarp.pipeline.chain import raw_structure_drop, register_representations
    from styleunwarp.pipeline.coarse import compose_direct, warp_source
    from styleunwarp.pipeline.grid import direct_to_original
    from styleunwarp.pipeline.pair import chain_options, prepare_pair
    from styleunwarp.quality import transform_stats, tre
    from styleunwarp.registration import PIPELINE_DEFAULTS
    from styleunwarp.transform import affine_elastic, identity_elastic, read_transform, warp_image

    t0 = time.perf_counter()
    prep = prepare_pair(row["lom"], row["cbs"], out / row["name"], model=model)
    target, styled = prep.target, prep.styled
    kwargs = chain_options(prep)
    chain = register_representations(target, styled, PIPELINE_DEFAULTS, **kwargs)
    a = chain.start if chain.start is not None else chain.coarse.chosen.matrix
    restarted = bool((chain.elastic.get("restart") or {}).get("confirmed"))  # reg then refers to the second pass's start
    moving = warp_source(styled, a, target.shape)  # the start the elastic step saw
    reg = chain.registration  # before the keep rule: this benchmark measures candidate rules
    moved = warp_image(moving, reg.direct, target.shape)
    truth = read_transform(row["truth"])
    lom_shape = to_gray(prep.lom.data).shape
    n = reg.direct.intervals

    def err(direct, composed=False):
        return tre(direct_to_original(direct if composed else compose_direct(direct, a), prep.grid), truth, target.shape, lom_shape).mean

    consistency = None if reg.inverse is None else transform_stats(reg.direct, target.shape, target.shape, reg.inverse).consistency_error
    drop = raw_structure_drop(kwargs["raw"], np.shape(styled)[:2], target.shape, affine_elastic(a, n, target.shape), compose_direct(reg.direct, a))
    return {"name": row["name"], "tre_coarse": err(affine_elastic(chain.coarse.chosen.matrix, n, target.shape), composed=True),
            "tre_start": err(identity_elastic(n, target.shape)), "tre_elastic": err(reg.direct),
            **{f"tre_part{w}": err(partial_correction(reg.direct, w, target.shape)) for w in PARTS},
            "tre_pipeline": err(chain.direct, composed=True), "restarted": restarted,
            "kept": chain.elastic.get("kept"), "refused": chain.elastic.get("refused"), "consensus_px": chain.elastic.get("consensus_px"),
            "fine_affine": (chain.fine_affine or {}).get("kept"),
            "mind_drop_sds": None if drop is None else drop["mind_drop_sds"],
            "consistency": consistency, "correction": correction(reg.direct, (moving != 0) & (moved != 0)),
            **features(target, moving, moved, prep.reference_target), **raw_features(prep, a, reg.direct),
            "seconds": time.perf_counter() - t0}


RULES = {
    "the chain's own decision (today's pipeline)": None,
    "always elastic": lambda r: True,
    "ncc0 +0.06 (the rule before)": lambda r: r["ncc0_elastic"] >= r["ncc0_start"] + 0.06,
    "ncc0 > start": lambda r: r["ncc0_elastic"] > r["ncc0_start"],
    "ncc1 > start": lambda r: r["ncc1_elastic"] > r["ncc1_start"],
    "ncc2 > start": lambda r: r["ncc2_elastic"] > r["ncc2_start"],
    "ncc4 > start": lambda r: r["ncc4_elastic"] > r["ncc4_start"],
    "ncc2 +0.01": lambda r: r["ncc2_elastic"] >= r["ncc2_start"] + 0.01,
    "ncc2 +0.02": lambda r: r["ncc2_elastic"] >= r["ncc2_start"] + 0.02,
    "ncc2 +0.03": lambda r: r["ncc2_elastic"] >= r["ncc2_start"] + 0.03,
    "ncc4 +0.01": lambda r: r["ncc4_elastic"] >= r["ncc4_start"] + 0.01,
    "ncc4 +0.02": lambda r: r["ncc4_elastic"] >= r["ncc4_start"] + 0.02,
    "ncc4 +0.03": lambda r: r["ncc4_elastic"] >= r["ncc4_start"] + 0.03,
    "nmi > start": lambda r: r["nmi_elastic"] > r["nmi_start"],
    "gradient agreement > start": lambda r: "grad_start" in r and r["grad_elastic"] > r["grad_start"],
    "gradient agreement > start + 0.0005 (pipeline, look-alike images)": lambda r: "grad_start" in r and r["grad_elastic"] > r["grad_start"] + 0.0005,
    "gradient agreement > start + 0.005 (pipeline, raw images)": lambda r: "grad_start" in r and r["grad_elastic"] > r["grad_start"] + 0.005,
    "gradient agreement on the registered target > start + 0.0005": lambda r: "grad_target_start" in r and r["grad_target_elastic"] > r["grad_target_start"] + 0.0005,
    "MIND of the raw images > start": lambda r: "mind_start" in r and r["mind_elastic"] > r["mind_start"],
    "MIND of the raw images > start + 0.002": lambda r: "mind_start" in r and r["mind_elastic"] > r["mind_start"] + 0.002,
    **{f"gradient agreement > start + 0.0005, or a correction >= {c} px": (lambda c: lambda r: "correction" in r and (
        r["correction"] >= c or r["grad_elastic"] > r["grad_start"] + 0.0005))(c) for c in (0.75, 1.0, 1.25, 1.5)},
    "raw MIND drop <= 2 chance spreads (the raw check alone)": lambda r: r.get("mind_drop_sds") is None or not r["mind_drop_sds"] > 2,
    **{f"gradient agreement > start - {t} and raw MIND drop <= 2 spreads": (lambda t: lambda r: r["grad_elastic"] > r["grad_start"] - t and (
        r.get("mind_drop_sds") is None or not r["mind_drop_sds"] > 2))(t) for t in (0.0005, 0.001, 0.002)},
    **{f"ncc0 +{g} and raw MIND drop <= 2 spreads": (lambda g: lambda r: r["ncc0_elastic"] >= r["ncc0_start"] + g and (
        r.get("mind_drop_sds") is None or not r["mind_drop_sds"] > 2))(g) for g in (0.02, 0.04)},
    **{f"gradient agreement gains on tiles: paired t >= {t}": (lambda t: lambda r: "tile_t" in r and r["tile_t"] >= t)(t) for t in (1, 2, 3)},
    "gradient agreement gains on more than 55 % of the tiles": lambda r: "tile_frac" in r and r["tile_frac"] > 0.55,
    "blur gain > sharp gain": lambda r: (r["ncc2_elastic"] - r["ncc2_start"]) > (r["ncc0_elastic"] - r["ncc0_start"]),
    **{f"always {w} of the elastic correction": (lambda w: lambda r: f"tre_part{w}" if f"tre_part{w}" in r else None)(w) for w in PARTS},
    **{f"{w} of the correction where the chain refused it, all where it kept it": (lambda w: lambda r: (
        "tre_elastic" if r.get("kept") not in ("start", None) else f"tre_part{w}") if f"tre_part{w}" in r else None)(w) for w in PARTS},
}


def scale_rule(m: float, k: float):
    """Keep when the sharp NCC gains at least ``m`` and the gain after a 4 px blur is at most ``k`` times it."""
    def keep(r: dict) -> bool:
        d0, d4 = r["ncc0_elastic"] - r["ncc0_start"], r["ncc4_elastic"] - r["ncc4_start"]
        return d0 >= m and d4 <= k * d0
    return keep


def fit(rows: list[dict]) -> tuple[float, float]:
    """The (m, k) of :func:`scale_rule` that makes no tuning pair worse, then makes most good, then
    has the lowest mean TRE; ties go to the middle of the tied ranges."""
    ms = [0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06]
    ks = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.8, 1.0, 1e9]
    scored = {(m, k): score(rows, scale_rule(m, k)) for m in ms for k in ks}
    best = max(scored.values(), key=lambda s: (-s[2], s[0], -round(s[1], 3)))
    tied = [mk for mk, s in scored.items() if (s[2], s[0], round(s[1], 3)) == (best[2], best[0], round(best[1], 3))]
    m = sorted({mk[0] for mk in tied})[len({mk[0] for mk in tied}) // 2]
    kk = sorted(mk[1] for mk in tied if mk[0] == m)
    return m, kk[len(kk) // 2]


def score(rows: list[dict], keep) -> tuple[int, float, int]:
    """Pairs good (<= 1.5 px), mean TRE and pairs made worse than the start by > 0.25 px with the
    rule ``keep`` deciding each elastic result (``None``: the chain's own decisions). A second pass
    (whose result refers to another start) keeps the chain's own result under every rule."""
    from styleunwarp.pipeline.chain import ELASTIC_MAX_INCONSISTENCY

    tres, worse = [], 0
    for r in rows:
        if keep is None or r.get("restarted"):
            t = r.get("tre_pipeline", r["tre_start"])
        else:
            consistent = r["consistency"] is None or r["consistency"] <= ELASTIC_MAX_INCONSISTENCY
            decision = keep(r) if consistent else False
            t = r[decision] if isinstance(decision, str) else r["tre_elastic"] if decision else r["tre_start"]
        tres.append(t)
        worse += t > r["tre_start"] + 0.25
    return sum(t <= 1.5 for t in tres), float(np.mean(tres)), worse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="synth-near,synth-ad,real-near,real-ad")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--model", default=None)
    ap.add_argument("--crop", type=int, default=512, help="blind/lom3 sets: side of the CBS crop in px, 0 for the largest square")
    ap.add_argument("--out", default="/tmp/bench_keep")
    ap.add_argument("--rules", action="store_true", help="only print the rules' results from saved rows")
    ap.add_argument("--fit", default=None, help="tuning sets (comma-separated; 'set:even' = its even-numbered rows): "
                    "fit scale_rule's (m, k) on them and add the fitted rule to the table")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    all_rows = {}
    for name in args.sets.split(","):
        path = out / f"rows_{name}.json"
        if not args.rules:
            rows = json.loads(path.read_text()) if path.is_file() else []
            done = {r["name"] for r in rows}
            for row in make_set(name, out, args.n, args.crop):
                if row["name"] in done:
                    continue
                rows.append(run_pair(row, out / "runs" / name, args.model))
                r = rows[-1]
                print(f"{name} {r['name']}: start {r['tre_start']:.2f} elastic {r['tre_elastic']:.2f} chain {r['tre_pipeline']:.2f} px "
                      f"(kept {r['kept']}, refused {r['refused']}); grad {r['grad_start']:.4f}->{r['grad_elastic']:.4f} "
                      f"ncc0 {r['ncc0_start']:.3f}->{r['ncc0_elastic']:.3f} ncc2 {r['ncc2_start']:.3f}->{r['ncc2_elastic']:.3f} "
                      f"ncc4 {r['ncc4_start']:.3f}->{r['ncc4_elastic']:.3f} tiles {r['tile_frac']:.2f} t {r['tile_t']:.1f} ({r['seconds']:.0f} s)", flush=True)
                path.write_text(json.dumps(rows, indent=1, default=float) + "\n")
        if path.is_file():
            all_rows[name] = json.loads(path.read_text())
    if args.fit:
        tune = []
        for spec in args.fit.split(","):
            name, _, part = spec.partition(":")
            rows = all_rows.get(name, [])
            tune += rows[::2] if part == "even" else rows[1::2] if part == "odd" else rows
        m, k = fit(tune)
        print(f"fitted on {args.fit} ({len(tune)} pairs): m = {m}, k = {k}")
        RULES[f"fitted: ncc0 +{m}, ncc4 gain <= {k} x ncc0 gain"] = scale_rule(m, k)
        split = {}
        for name, rows in all_rows.items():
            split[f"{name}:even"], split[f"{name}:odd"] = rows[::2], rows[1::2]
        all_rows = {**all_rows, **{n: r for n, r in split.items() if n.split(":")[0] in ("real-ad", "shale")}}
    names = list(all_rows)
    print("\n| rule | " + " | ".join(f"{n}: good / mean px / worse" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for label, keep in RULES.items():
        cells = []
        for n in names:
            g, m, w = score(all_rows[n], keep)
            cells.append(f"{g}/{len(all_rows[n])} / {m:.2f} / {w}")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
