"""Which registration defaults of a style chain limit its accuracy: a parameter sweep on held-out sets.

For each test set the representation and the coarse start of every pair are computed once,
then the elastic step runs with every configuration (final deformation, coarse sigma,
divergence/curl weights, mode, image subsampling). Each row records the TRE of the elastic
result and of its start, and the keep-or-undo facts (gradient agreement and NCC before/after,
consistency), checks that read no representation (gradient and MIND-SSC agreement of the LOM as
recorded with the raw CBS, at the start and at the elastic result; how far the elastic step moved
pixels), and the chain's own outcome (``tre_chain``: the keep rule and, where a first pass warrants
it, the second pass of :func:`styleunwarp.pipeline.chain.second_pass`, ``restart``); the summary
reads ``tre_chain`` (older rows: the pipeline's rule applied here, :func:`styleunwarp.pipeline.chain.trusts`).

Test sets (``--sets``; all made with seeds that neither benchmarks/train_shipped.py, seeds 0-59,
nor the training of any shipped model used):

- ``real:SEED[:rgb]`` — LOM-like renderings of the real CBS images (openecci-cbs), as
  ``bench_registration_table.py`` makes them (its set is ``real:1000``);
- ``variety:SEED`` — 10 :func:`styleunwarp.synth.variety.varied_pair` test pairs (seeds SEED..SEED+9,
  alternating the geometry and the from-CBS renderer), other LOM looks;
- ``synthetic:SEED`` — 10 :func:`styleunwarp.synth.write_dataset` test pairs;
- ``blind:SEED`` — the 10 real CBS images with LOM renderings by ``benchmarks/blind_lom.py``, a
  renderer written without reading styleunwarp's (``bench_asdelivered.py``'s ``blind`` set; seed 1
  there is held out, other seeds may tune);
- ``lom3:SEED`` — likewise with ``benchmarks/blind_lom3.py``, a third independent renderer;
  ``blind:SEED:large`` / ``lom3:SEED:large``: every third pair near the identity, the others
  3-8 deg, 8-25 px, 2-5 px elastic (``bench_asdelivered.py``'s ``large`` cycle) instead of near / small;
  ``:near``: every pair near the identity; ``:whole``: the largest square of each CBS image below its
  data bar instead of a 512 px crop (flags combine: ``lom4:80:near:whole``);
- ``lom4:SEED`` — likewise with ``benchmarks/blind_lom4.py``, a fourth independent renderer.

    python benchmarks/bench_styled_defaults.py --sets real:1000,variety:900 \
        --configs base,vfine,sigma0 --out /tmp/styled-defaults [--model DIR] [--backend bunwarpj] [--views 1|4|8] [--tta scales]

``--views`` sets how many dihedral views the style model averages (``StyleTransfer(views=...)``;
default the package's, 8; ``--views 1``: the network as it is). ``--tta scales`` styles every LOM
with a test-time augmentation instead (:func:`augmented`): the mean of the model's outputs over the
LOM at 0.7x and 1x scale. One setting per run, so compare runs with different ``--out``.

Writes ``rows.csv`` (one row per set, pair and configuration) and prints a summary per set
and configuration: good / decent / bad / poor (the tiers of DESIGN.md) and mean TRE, with the
keep-or-undo rule of the pipeline applied.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from styleunwarp.registration import PIPELINE_DEFAULTS

CONFIGS: dict[str, dict] = {
    "base": {},
    "prewarp": {"prewarp": True},  # the elastic step on the source pre-warped by the affine start (before the initial affine)
    "sigma3": {"sigma": 3.0},
    "vfine": {"max_scale_deformation": "very_fine"},
    "coarse_grid": {"max_scale_deformation": "coarse"},
    "vcoarse_grid": {"max_scale_deformation": "very_coarse"},
    "coarse_grid_reg1": {"max_scale_deformation": "coarse", "divergence_weight": 1.0, "curl_weight": 1.0},
    "sigma0": {"sigma": 0.0},
    "sigma1.5": {"sigma": 1.5},
    "sigma5": {"sigma": 5.0},
    "vfine_sigma0": {"max_scale_deformation": "very_fine", "sigma": 0.0},
    "sigma0_reg0.3": {"sigma": 0.0, "divergence_weight": 0.3, "curl_weight": 0.3},
    "sigma0_reg1": {"sigma": 0.0, "divergence_weight": 1.0, "curl_weight": 1.0},
    "sigma0_mono": {"sigma": 0.0, "mode": "mono"},
    "blur1": {"sigma": 0.0, "blur": 1.0},
    "blur2": {"sigma": 0.0, "blur": 2.0},
    "blur1_reg0.3": {"sigma": 0.0, "blur": 1.0, "divergence_weight": 0.3, "curl_weight": 0.3},
    "vfine_sigma1.5": {"max_scale_deformation": "very_fine", "sigma": 1.5},
    "reg0": {"divergence_weight": 0.0, "curl_weight": 0.0},
    "reg0.3": {"divergence_weight": 0.3, "curl_weight": 0.3},
    "reg1": {"divergence_weight": 1.0, "curl_weight": 1.0},
    "vfine_reg0.3": {"max_scale_deformation": "very_fine", "divergence_weight": 0.3, "curl_weight": 0.3},
    "vfine_reg1": {"max_scale_deformation": "very_fine", "divergence_weight": 1.0, "curl_weight": 1.0},
    "mono": {"mode": "mono"},
    "sub1": {"img_subsamp_fact": 1},
    "stop0.001": {"stop_threshold": 0.001},
    "min_coarse": {"min_scale_deformation": "coarse"},
    "min_fine": {"min_scale_deformation": "fine"},
    "cons3": {"consistency_weight": 3.0},
    "cons30": {"consistency_weight": 30.0},
    "consensus0": {"consensus": 0},
    "consensus1": {"consensus": 1},
    "consensus2": {"consensus": 2},
    "consensus3": {"consensus": 3},
    "consensus4": {"consensus": 4},
    "consensus3_nopeak": {"consensus": 3, "peak": False},
    "consensus2_nopeak": {"consensus": 2, "peak": False},
    "consensus2_peak": {"consensus": 2, "peak": True},
    "close2": {"close": 2},
    "close3": {"close": 3},
    "close4": {"close": 4},
    "close6": {"close": 6},
    "close3_src": {"close": 3, "close_target": False},
    "nofine": {"fine_affine": False},
    "fine_dof6": {"fine_dof": 6},
    "fine_dof4": {"fine_dof": 4},
}
"""Named changes to the styled chain's defaults (``sigma``: the coarse-to-fine blur; ``blur``: one pass on
both images blurred by this sigma; ``consensus``: the radius of
:func:`styleunwarp.pipeline.consensus.consensus` (default: the pipeline's for the representation, used only from a start the fine affine step refined, as
:func:`styleunwarp.pipeline.chain.consensus_radius`); ``peak``: the keep rule's peak test (default: the pipeline's, on for whole maps only); ``close``: one pass on both representations after a grey closing
with a disk of this radius, which fills the gap of a boundary drawn as two lines (``close_target``
False: the source's only); ``fine_affine``: False skips the fine affine step (:mod:`styleunwarp.pipeline.fine_affine`,
on in the pipeline); ``fine_dof``: that step's degrees of freedom (:data:`styleunwarp.pipeline.fine_affine.DOF_BASES`;
default the pipeline's); the rest: bUnwarpJ parameters)."""

TIERS = ((1.5, 3.0, "good"), (3.0, 6.0, "decent"), (8.0, float("inf"), "bad"))


def augmented(mode: str):
    """A replacement for ``StyleTransfer._run`` that averages the network's output over test-time
    augmentations: ``scales`` (the input at 0.7x and 1x, bilinear, each output brought back to the
    input's size). (The eight flips and rotations, once ``d4`` here, are now the package's own
    ``StyleTransfer(views=8)``: ``--views``.)"""
    from scipy import ndimage

    from styleunwarp.style.infer import StyleTransfer

    run = StyleTransfer._run

    def scales(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[1:]
        small = run(self, np.stack([ndimage.zoom(ch, 0.7, order=1) for ch in x]))
        back = ndimage.zoom(small, (h / small.shape[0], w / small.shape[1]), order=1)[:h, :w]
        return ((run(self, x) + back) / 2).astype(np.float32)

    return {"scales": scales}[mode]


def add_views_option(ap: argparse.ArgumentParser) -> None:
    """``--views 1|4|8``: the dihedral views the style model averages (default: the package's)."""
    ap.add_argument("--views", type=int, choices=[1, 4, 8], default=None,
                    help="dihedral views the style model averages (default: the package's, StyleTransfer's views)")


def use_views(views: int | None) -> None:
    """Make ``views`` the default of every ``StyleTransfer`` this benchmark process builds (None: leave it)."""
    if views:
        from styleunwarp.style.infer import StyleTransfer

        StyleTransfer.__init__.__kwdefaults__["views"] = views  # this benchmark process only


def tier(mean: float, p95: float) -> str:
    """The tier of DESIGN.md from a mean and p95 TRE."""
    if not np.isfinite(mean):
        return "failed"
    for m, p, name in TIERS:
        if mean <= m and p95 <= p:
            return name
    return "poor"


def write_variety(out: Path, seed0: int, n: int = 10, size: int = 512) -> Path:
    """``n`` deformed varied-look pairs (test layout: lom/, cbs/, truth/)."""
    from styleunwarp.io import write_tiff
    from styleunwarp.synth.variety import varied_pair
    from styleunwarp.transform import write_elastic

    for sub in ("lom", "cbs", "truth"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = f"v{seed0 + i:04d}"
        if (out / "truth" / f"{name}_direct_transf.txt").exists():
            continue
        p = varied_pair((size, size), seed=seed0 + i, deform=True, name=name, renderer="geometry" if i % 2 == 0 else "from-cbs")
        write_tiff(out / "lom" / f"{name}.tif", p.lom)
        write_tiff(out / "cbs" / f"{name}.tif", p.cbs)
        write_elastic(p.truth, out / "truth" / f"{name}_direct_transf.txt")
    return out


def write_blind(out: Path, real: Path, seed: int, renderer: str = "blind_lom", cycle: str = "mixed", crop: int = 512) -> Path:
    """The ``blind`` pairs of ``bench_asdelivered.py`` (seed ``seed``, LOMs by ``benchmarks/{renderer}.py``, deformations of
    its ``CYCLES[cycle]``, CBS crops of ``crop`` px, 0 for the largest square) in the test layout (lom/, cbs/, truth/)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_asdelivered import _blind_pairs

    for sub in ("lom", "cbs", "truth"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for row in _blind_pairs(real, out / "raw", seed, None, renderer, cycle, crop=crop):
        for src, dst in ((row["lom"], out / "lom" / f"{row['name']}.tif"), (row["cbs"], out / "cbs" / f"{row['name']}.tif"),
                         (row["truth"], out / "truth" / f"{row['name']}_direct_transf.txt")):
            dst.write_bytes(Path(src).read_bytes())
    return out


def make_set(spec: str, out: Path, real: Path, size: int) -> Path:
    """The test folder of ``spec`` (written once, reused)."""
    from styleunwarp.synth import write_dataset

    kind, seed, *flags = spec.split(":")
    folder = out / "data" / spec.replace(":", "_")
    if kind == "variety":
        return write_variety(folder / "test", int(seed), size=size)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_asdelivered import BLIND_RENDERERS

    if kind in BLIND_RENDERERS:
        cycle = "large" if "large" in flags else "near" if "near" in flags else "mixed"
        return write_blind(folder / "test", real, int(seed), BLIND_RENDERERS[kind], cycle, crop=0 if "whole" in flags else 512)
    if not (folder / "dataset.json").exists():
        if kind == "real":
            write_dataset(folder, 0, size=size, seed=int(seed), from_cbs=real, rgb="rgb" in flags, progress=False)
        elif kind == "synthetic":
            write_dataset(folder, 0, n_test=10, size=size, seed=int(seed), rgb="rgb" in flags, progress=False)
        else:
            raise SystemExit(f"unknown set kind {kind!r} (real, variety, synthetic)")
    return folder / "test"


def run_pair(test: Path, name: str, configs: list[str], model, backend: str, writer, set_name: str, dump: Path | None = None) -> None:
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.pipeline.coarse import compose_direct, warp_source
    from styleunwarp.pipeline.chain import COARSE_SIGMA_FOR_EDGES, coarse_alignment, consensus_radius, elastic_step, keep_or_undo, raw_structure_check, second_pass
    from styleunwarp.pipeline.consensus import default_consensus_px
    from styleunwarp.pipeline.fine_affine import FINE_AFFINE_DOF, fine_affine
    from styleunwarp.pipeline.restart import warrants_restart
    from styleunwarp.pipeline.pair import style_images
    from styleunwarp.quality import ncc, transform_stats, tre
    from styleunwarp.structure import gradient_gain, mind_agreement
    from styleunwarp.registration import register
    from styleunwarp.transform import identity_elastic, read_transform, warp_image

    lom = read_image(test / "lom" / f"{name}.tif")
    cbs = read_image(test / "cbs" / f"{name}.tif")
    truth = read_transform(test / "truth" / f"{name}_direct_transf.txt")
    cbs_gray = to_gray(cbs.data)
    styled, target, info = style_images(lom.data, cbs_gray, model, "model")
    known = bool(lom.pixel_size) and bool(cbs.pixel_size)  # as register_pair: else the coarse step searches the scale
    coarse = coarse_alignment("auto", target, styled, scale_known=known, check="alike")  # as register_representations
    a_coarse = coarse.chosen.matrix
    lom_gray = to_gray(lom.data).astype(np.float32)
    fine = fine_affine(target, styled, a_coarse, raw=(cbs_gray, lom_gray))  # as register_representations
    src_shape = lom_gray.shape
    tre_coarse = tre(compose_direct(identity_elastic(4, target.shape), a_coarse), truth, target.shape, src_shape)
    default_sigma = COARSE_SIGMA_FOR_EDGES if info.get("style_target") == "edges" else 0.0
    default_radius = default_consensus_px(info.get("style_target"))
    for cfg in configs:
        change = dict(CONFIGS[cfg])
        refined = change.pop("fine_affine", True)
        dof = change.pop("fine_dof", None)
        fine_cfg = fine if dof in (None, FINE_AFFINE_DOF) else fine_affine(target, styled, a_coarse, raw=(cbs_gray, lom_gray), dof=int(dof))
        a = fine_cfg.matrix if refined else a_coarse
        moving = warp_source(styled, a, target.shape)
        raw_moving = warp_source(lom_gray, a, target.shape)  # the LOM as recorded, for checks that read no representation
        start = compose_direct(identity_elastic(4, target.shape), a)
        tre_start = tre(start, truth, target.shape, src_shape)
        sigma = float(change.pop("sigma", default_sigma))
        blur = float(change.pop("blur", 0.0))
        close = int(change.pop("close", 0))
        close_target = bool(change.pop("close_target", True))
        # as register_representations: the consensus radius only from a start the fine affine step refined,
        # and the keep rule's peak test only on whole maps (a config may force either)
        radius = consensus_radius(int(change.pop("consensus", default_radius)), fine_cfg.facts if refined else {})
        peak = bool(change.pop("peak", radius == 0))
        from_start = not change.pop("prewarp", False)
        params = PIPELINE_DEFAULTS.with_(**change)
        t0 = time.perf_counter()
        try:
            if close:
                from scipy import ndimage as _nd

                from styleunwarp.synth.looks import disk

                cm = _nd.grey_closing(moving, footprint=disk(close))
                ct = _nd.grey_closing(target, footprint=disk(close)) if close_target else target
                reg = register(ct, cm, params, backend=backend, coarse_sigma=sigma)
            elif blur > 0:
                from styleunwarp.registration.coarse_to_fine import _blur

                reg = register(_blur(target, blur), _blur(moving, blur), params, backend=backend, coarse_sigma=sigma)
            else:  # as register_representations
                reg = elastic_step(target, styled, moving, a, params, backend=backend, coarse_sigma=sigma, consensus_px=radius, from_start=from_start)
        except Exception as exc:  # a failing configuration is a result too
            print(f"  {set_name} {name} {cfg}: FAILED {exc}", file=sys.stderr)
            continue
        secs = time.perf_counter() - t0
        moved = warp_image(moving, reg.direct, target.shape)
        common = (moving != 0) & (moved != 0)
        before, after = ncc(moving, target, common), ncc(moved, target, common)
        outcome = keep_or_undo(target, moving, reg, "alike", peak_test=peak)  # the pipeline's rule: its gradient and consistency facts
        facts = outcome[3]
        g_before, g_after, cons = facts["gradient_start"], facts["gradient_elastic"], facts["consistency_px"]
        raw_moved = warp_image(raw_moving, reg.direct, target.shape)
        raw_g0, raw_g1, raw_spread = gradient_gain(raw_moving, raw_moved, cbs_gray, common, with_spread=True)
        e = tre(compose_direct(reg.direct, a), truth, target.shape, src_shape)
        restart, a_chain, restart_facts = "", a, {}
        if warrants_restart(outcome[3]) and not close and blur <= 0:  # as register_representations: a second pass from the first's affine part
            a_chain, _, outcome = second_pass(target, styled, a, reg, outcome, params, backend=backend, coarse_sigma=sigma,
                                              consensus_px=radius, peak_test=peak, from_start=from_start)
            restart = "confirmed" if outcome[3]["restart"]["confirmed"] else "refused"
            restart_facts = restart_numbers(outcome[3]["restart"], a, truth, target.shape, src_shape)
        outcome = raw_structure_check(styled, a_chain, outcome, target.shape, (cbs_gray, lom_gray))  # as register_representations
        raw_check = outcome[3].get("raw_check", {})
        chain_tre = tre(compose_direct(outcome[0], a_chain), truth, target.shape, src_shape)
        row = {"set": set_name, "pair": name, "config": cfg, "tre_elastic": e.mean, "p95_elastic": e.p95,
               "tre_start": tre_start.mean, "p95_start": tre_start.p95, "tre_coarse": tre_coarse.mean, "fine_affine": fine_cfg.facts.get("kept", ""), "ncc_start": before, "ncc_elastic": after,
               "gradient_start": g_before, "gradient_elastic": g_after, "consistency": cons, "consistent": facts.get("refused") != "inconsistent",
               "raw_gradient_start": raw_g0, "raw_gradient_elastic": raw_g1, "raw_gradient_spread": raw_spread,
               "mind_start": mind_agreement(raw_moving, cbs_gray, common), "mind_elastic": mind_agreement(raw_moved, cbs_gray, common),
               "moved_px": transform_stats(reg.direct, target.shape, target.shape).displacement_mean,
               "refused": facts.get("refused", ""), "peak_drop": facts.get("peak_drop", ""),
               "restart": restart, **restart_facts, "raw_drop_sds": raw_check.get("mind_drop_sds", ""),
               "raw_refused": outcome[3].get("refused") == "raw structure", "tre_chain": chain_tre.mean, "p95_chain": chain_tre.p95, "seconds": secs,
               "initial_affine": bool(reg.info.get("initial_affine", False))}
        writer(row)
        if dump is not None:  # the images and the first pass's map, for studying a keep rule offline
            dump.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(dump / f"{set_name.replace(':', '_')}_{name}_{cfg}.npz", target=target.astype(np.float32),
                                moving=moving.astype(np.float32), moved=moved.astype(np.float32),
                                direct=reg.direct.to_dense(target.shape).astype(np.float32), truth_start=np.float32(tre_start.mean),
                                truth_elastic=np.float32(e.mean))
        print(f"  {set_name:<16} {name:<16} {cfg:<14} start {tre_start.mean:6.2f}  elastic {e.mean:6.2f} (p95 {e.p95:5.2f})  "
              f"NCC {before:.3f}->{after:.3f}  cons {cons if cons is None else round(cons, 2)}  {secs:5.1f} s", flush=True)


RESTART_FIELDS = ("restart_gain_sds", "restart_paired_t", "restart_z", "tre_restart_affine")
"""What a second pass's confirmation read (the affine part's MIND gain over its start in chance
spreads, its paired t across tiles, its z above chance) and the TRE of that affine start, so that
other confirmation bounds can be replayed on the rows (:func:`styleunwarp.pipeline.coarse.confirm.decide`)."""


def restart_numbers(restart: dict, a: np.ndarray, truth, shape: tuple[int, int], src_shape: tuple[int, int]) -> dict:
    """:data:`RESTART_FIELDS` of one second pass's ``restart`` facts; ``a`` is the first pass's start."""
    from styleunwarp.pipeline.coarse import compose_direct
    from styleunwarp.quality import tre
    from styleunwarp.transform import identity_elastic

    c = restart.get("confirmation") or {}
    sd = c.get("mind_chance_sd") or float("nan")
    out = {"restart_gain_sds": (c.get("mind_winner", float("nan")) - c.get("mind_identity", float("nan"))) / sd,
           "restart_paired_t": c.get("paired_t", ""), "restart_z": c.get("z", "")}
    m = (restart.get("affine") or {}).get("matrix")
    if m is not None:
        both = np.asarray(a, np.float64) @ np.vstack([np.asarray(m, np.float64)[:2], [0.0, 0.0, 1.0]])
        out["tre_restart_affine"] = tre(compose_direct(identity_elastic(4, shape), both), truth, shape, src_shape).mean
    return out


def kept(row: dict) -> tuple[float, float]:
    """(mean, p95) TRE after the pipeline's keep-or-undo rule and second pass (rows without those columns:
    the rule applied here; rows without gradient columns: the elastic result)."""
    if row.get("tre_chain") not in (None, ""):
        return float(row["tre_chain"]), float(row["p95_chain"])
    from styleunwarp.pipeline.chain import GRADIENT_MARGIN, trusts

    g0, g1 = row.get("gradient_start"), row.get("gradient_elastic")
    gain_ok = True if g0 in (None, "") else trusts(float(g0), float(g1), GRADIENT_MARGIN["alike"])
    ok = row["consistent"] in (True, "True") and gain_ok
    return (float(row["tre_elastic"]), float(row["p95_elastic"])) if ok else (float(row["tre_start"]), float(row["p95_start"]))


def summary(rows: list[dict]) -> str:
    lines = [f"{'set':<16} {'config':<14} {'good':>4} {'dec':>4} {'bad':>4} {'poor':>4}  {'mean TRE':>8}  {'elastic-only':>12}  {'s/pair':>6}"]
    for s in dict.fromkeys(r["set"] for r in rows):
        for c in dict.fromkeys(r["config"] for r in rows if r["set"] == s):
            sel = [r for r in rows if r["set"] == s and r["config"] == c]
            k = [kept(r) for r in sel]
            tiers = [tier(m, p) for m, p in k]
            el = np.mean([float(r["tre_elastic"]) for r in sel])
            lines.append(f"{s:<16} {c:<14} {tiers.count('good'):>4} {tiers.count('decent'):>4} {tiers.count('bad'):>4} "
                         f"{tiers.count('poor'):>4}  {np.mean([m for m, _ in k]):8.3f}  {el:12.3f}  "
                         f"{np.mean([float(r['seconds']) for r in sel]):6.1f}   (n={len(sel)})")
    return "\n".join(lines)


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="real:1000,variety:900")
    ap.add_argument("--configs", default="base,vfine")
    ap.add_argument("--model", default=None, help="style model (default: the shipped one)")
    ap.add_argument("--backend", default="bunwarpj")
    ap.add_argument("--real", default=str(repo.parent / "shared" / "data" / "openecci-cbs"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--pairs", type=int, default=0, help="first N pairs of each set only (0: all)")
    ap.add_argument("--out", default="/tmp/styled-defaults")
    ap.add_argument("--summary-only", action="store_true", help="only summarise OUT/rows.csv")
    ap.add_argument("--dump", default=None, help="also write each first pass's images and map to DIR/SET_PAIR_CONFIG.npz")
    ap.add_argument("--tta", choices=["scales"], default=None, help="test-time augmentation of the style model (see augmented())")
    add_views_option(ap)
    args = ap.parse_args()
    if args.tta:
        from styleunwarp.style.infer import StyleTransfer

        StyleTransfer._run = augmented(args.tta)  # this benchmark process only
    use_views(args.views)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rows.csv"
    if not args.summary_only:
        configs = args.configs.split(",")
        unknown = [c for c in configs if c not in CONFIGS]
        if unknown:
            raise SystemExit(f"unknown configs {unknown}; known: {', '.join(CONFIGS)}")
        fields = ["set", "pair", "config", "tre_elastic", "p95_elastic", "tre_start", "p95_start", "tre_coarse", "fine_affine", "ncc_start", "ncc_elastic", "gradient_start", "gradient_elastic", "consistency", "consistent",
                  "raw_gradient_start", "raw_gradient_elastic", "raw_gradient_spread", "mind_start", "mind_elastic", "moved_px",
                  "refused", "peak_drop", "restart", *RESTART_FIELDS, "raw_drop_sds", "raw_refused", "tre_chain", "p95_chain", "seconds", "initial_affine"]
        new = not path.exists()
        with path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fields)
            if new:
                w.writeheader()

            def writer(row: dict) -> None:
                w.writerow(row)
                fh.flush()

            for spec in args.sets.split(","):
                test = make_set(spec, out, Path(args.real), args.size)
                names = sorted(p.stem for p in (test / "lom").glob("*.tif"))
                for name in names[: args.pairs or None]:
                    run_pair(test, name, configs, args.model, args.backend, writer, spec, Path(args.dump) if args.dump else None)
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    print(f"\n'mean TRE' after the pipeline's keep-or-undo rule, 'elastic-only' without it; command: "
          f"python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(summary(rows))
    print(json.dumps({"rows": len(rows), "csv": str(path)}))


if __name__ == "__main__":
    main()
