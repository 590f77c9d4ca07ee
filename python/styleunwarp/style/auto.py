"""``train --target auto``: choose the chain (representation + backend) by registration accuracy.

Held-out aligned pairs are deformed by random smooth known deformations
(:mod:`.heldout`, near-identity ones included); every candidate chain registers them with
the real backend and is scored by its target registration error (TRE). Training-free chains
(raw images through elastix MI, native NMI, native MIND when the engine offers it) compete
with learned ones (a ``shared`` InfoNCE code, ``edges`` / ``cbs`` translations, a ``lut`` lookup
table of grey levels or colours, tried last), whose
checkpoint is chosen by the same TRE. The winner is scored once more with its fine affine fit
ending on blurred maps (:func:`fit_variant`) and replaced by that variant only if it scores higher.
The winner is written to ``chain.json``; every candidate's TRE is recorded there. Everything, evaluations included, stays within
``max_minutes``: candidates that no longer fit the remaining time are skipped (and the card
says so); a candidate's evaluation stops as soon as it can no longer beat the best.
"""

from __future__ import annotations

import csv
import logging
import statistics
import time
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError, StyleunwarpError
from .chain import Chain, write_chain_card
from .heldout import KINDS, Case, eval_side_for, make_cases, ranges
from .representations import Representation

log = logging.getLogger(__name__)

GOOD_PX, OK_PX = 1.5, 5.0
"""Success thresholds (mean TRE, px): the score is (cases <= 5 px, cases <= 1.5 px, -cases left more
than :data:`WORSE_PX` farther than their start, -median TRE, -mean TRE capped at :data:`FAR_PX`),
TREs compared to 0.01 px so that equal results tie (and the earlier, training-free first, candidate
wins) instead of being decided by rounding noise."""

WORSE_PX = 0.25
"""A case ending more than this much farther from the truth than its start (the images as given) was
made worse: every such case counts against a chain before its median (never worse than the start)."""

FAR_PX = OK_PX
"""Cap of a case's TRE in the last tie-break: a failure is a failure, however far. (Capped at 1000 px
before, a learned chain won a tie with elastix on CLEM by failing one case at 12.6 px instead of 13.6,
and then moved a near-identity test case from 1.24 to 1.73 px, docs/representations.md, twenty-second
session; a chain that moves a failing case farther than its start is now counted by :data:`WORSE_PX`.)"""


@dataclass
class AutoConfig:
    """How ``train --target auto`` spends its time."""

    max_minutes: float = 15.0
    seed: int = 0
    heldout_fraction: float = 0.25
    max_heldout: int = 4
    cases_per_pair: int = 2
    eval_side: int | None = None  # held-out window side (px); None: chosen by the targets' structure (heldout.eval_side_for)
    channels: int | None = None  # None: 3 when the sources are RGB, else 1
    kinds: tuple[str, ...] = ("none", "shipped", "edges", "shared", "cbs", "lut")
    shared_fraction: float = 0.25  # of the time budget, for training the shared code
    translation_fraction: float = 0.12  # of the time budget, per translation model
    # pixel loss per translation kind (TrainConfig.loss): the grey-level translation learns the conditional
    # mean (l2), which on a sparse target (fluorescence) is not empty as its median is (docs/style.md)
    translation_loss: dict[str, str] = field(default_factory=lambda: {"edges": "l1", "cbs": "l2"})
    threads: int | None = 1  # torch CPU threads while training (1: measured 16x faster than 2 on a loaded 2-core machine)
    # fine-tune the shipped boundary-map model for ``edges`` instead of a fresh network: measured a tie on shale, its
    # colour proxy and the roles swapped, a loss on CLEM (docs/representations.md, "The boundary-map candidate
    # fine-tuned from the shipped model"), so off
    edges_from_shipped: bool = False


@dataclass
class Result:
    """One candidate chain's measurement."""

    chain: Chain
    tres: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # each case's TRE at the start (the images as given), where known
    seconds: float = 0.0
    coarse_seconds: float = 0.0  # of ``seconds``: coarse alignments and fine affine steps computed (not reused from the cache)
    note: str = ""
    checkpoint: str | None = None

    @property
    def worse(self) -> int:
        """Cases left more than :data:`WORSE_PX` farther from the truth than their start."""
        return sum(v > s + WORSE_PX for v, s in zip(self.tres, self.starts))

    @property
    def score(self) -> tuple[int, int, int, float, float]:
        t = [v for v in self.tres if np.isfinite(v)]
        med = statistics.median(self.tres) if self.tres else float("inf")
        far = float(np.mean(np.minimum(self.tres, FAR_PX))) if self.tres else float("inf")
        return (sum(v <= OK_PX for v in t), sum(v <= GOOD_PX for v in t), -self.worse, -round(med, 2), -round(far, 2))

    def as_dict(self, n_cases: int) -> dict:
        done = len(self.tres)
        return {"chain": self.chain.described, **self.chain.as_dict(), "checkpoint": self.checkpoint,
                "cases": done, "of": n_cases,
                "within_5px": sum(v <= OK_PX for v in self.tres), "within_1.5px": sum(v <= GOOD_PX for v in self.tres),
                "median_tre_px": None if not done else round(float(statistics.median(self.tres)), 3),
                "tre_px": [round(float(v), 3) if np.isfinite(v) else None for v in self.tres],
                "start_tre_px": [round(float(v), 3) for v in self.starts], "worse_than_start": self.worse,
                "seconds": round(self.seconds, 1), "coarse_seconds": round(self.coarse_seconds, 1), "note": self.note}


def training_free_chains() -> list[Chain]:
    """Raw-image chains this installation can run: elastix MI, native NMI, native MIND if present."""
    from ..registration.native import energy

    chains = []
    try:
        import itk  # noqa: F401

        chains.append(Chain("none", "elastix"))
    except ImportError:
        log.info("itk-elastix not installed: the elastix MI candidate is skipped")
    if "mind" in energy.SIMILARITIES:
        chains.append(Chain("none", "native", {"similarity": "mind"}))
    chains.append(Chain("none", "native", {"similarity": "nmi"}))
    return chains


def _shipped_edges_folder() -> Path | None:
    """The shipped style model's folder where it is installed and draws boundary maps: where the ``edges``
    candidate starts from with :attr:`AutoConfig.edges_from_shipped` (fine-tuning; docs/representations.md,
    "The boundary-map candidate fine-tuned from the shipped model")."""
    shipped = _shipped_model()
    if shipped is None or shipped.kind != "edges" or not getattr(shipped.model, "source", None):
        return None
    return Path(shipped.model.source).parent


def _shipped_model():
    """The shipped style model as a representation, or ``None`` when it is not installed."""
    from .representations.translation import Translation

    try:
        return Translation.load_model(None)
    except (InputError, OSError):
        return None


def learned_chains(kind: str) -> list[Chain]:
    """Backends a learned representation is tried with (the first is used to choose the checkpoint)."""
    if kind == "shared":
        return [Chain("shared", "native", {"similarity": "ncc"}), Chain("shared", "elastix"), Chain("shared", "native")]
    if kind == "edges":
        return [Chain("edges", "native")]  # the blurred first pass: the pipeline default (pipeline.chain.default_coarse_sigma)
    if kind == "lut":
        return [Chain("lut", "native")]  # grey levels made comparable: SSD, as bUnwarpJ compares them
    return [Chain("cbs", "native")]


def evaluate(rep: Representation, chain: Chain, cases: list[Case], params, *, must_reach: int = 0,
             deadline: float | None = None, coarse: str = "auto", coarse_cache: dict | None = None) -> Result:
    """Register every case with ``chain`` as ``register --model M`` would, and record its TRE (inf for a failure).

    Each case runs the representation, then :func:`~styleunwarp.pipeline.chain.register_representations`:
    the coarse alignment (``coarse``, the pipeline's default ``"auto"``), the chain's backend
    with its options and blurred first pass (as ``register`` resolves it), and the
    never-worse rule. ``coarse_cache`` (a dict kept across calls) reuses a representation's
    coarse alignment and fine affine step of a case for its other backends (they depend on the
    images only).
    Stops early when the count of cases within 5 px can no longer reach ``must_reach``, or at
    ``deadline`` (``time.monotonic()``), noting why.
    """
    from ..pipeline.chain import check_for, coarse_alignment, default_coarse_sigma, fine_affine_start, register_representations
    from ..pipeline.consensus import default_consensus_px
    from ..pipeline.fine_affine import FINE_AFFINE_SIGMAS
    from ..io import to_gray
    from ..quality import tre

    res = Result(chain)
    sigma = chain.coarse_sigma if chain.coarse_sigma is not None else default_coarse_sigma(rep.kind)
    radius = default_consensus_px(rep.kind)
    check = check_for(rep.kind)
    sigmas = chain.fine_sigmas if chain.fine_sigmas is not None else FINE_AFFINE_SIGMAS
    t0 = time.monotonic()
    for i, c in enumerate(cases):
        if deadline is not None and time.monotonic() > deadline:
            res.note = f"time budget reached after {i} of {len(cases)} cases"
            break
        res.starts.append(c.start_tre())
        try:
            src, tgt = rep.represent(c.source, c.target)
            ref = rep.reference_target(c.target)  # what the coarse step and the check see (None: tgt)
            seen = tgt if ref is None else ref
            key = (id(rep), c.name, coarse, c.scale_known, sigmas)
            hit = None if coarse_cache is None else coarse_cache.get(key)
            raw = (to_gray(c.target), to_gray(c.source))
            if hit is None or hit[0] is not rep or hit[1] is not c:
                tc = time.monotonic()
                first = _cached_coarse(coarse_cache, key, rep, c)  # another fit's entry: the coarse step is the same
                if first is None:
                    first = coarse_alignment(coarse, seen, src, scale_known=c.scale_known, check=check)
                hit = (rep, c, first, fine_affine_start(seen, src, first.chosen.matrix, coarse=coarse, check=check, raw=raw,
                                                        sigmas=sigmas))
                res.coarse_seconds += time.monotonic() - tc
                if coarse_cache is not None:
                    coarse_cache[key] = hit
            out = register_representations(tgt, src, params, backend=chain.backend, backend_options=chain.backend_options,
                                           coarse_sigma=sigma, coarse_result=hit[2], fine_result=hit[3], check=check,
                                           reference_target=ref, consensus_px=radius, raw=raw, fine_sigmas=sigmas)
            err = tre(out.direct, c.truth, tgt.shape, src.shape[:2]).mean
        except (StyleunwarpError, ValueError, RuntimeError) as exc:
            log.warning("%s on %s failed: %s", chain.label, c.name, exc)
            err = float("inf")
        res.tres.append(float(err) if np.isfinite(err) else float("inf"))
        ok = sum(v <= OK_PX for v in res.tres)
        if ok + (len(cases) - i - 1) < must_reach:
            res.note = f"stopped after {i + 1} of {len(cases)} cases: cannot beat the best"
            break
    res.seconds = time.monotonic() - t0
    return res


def _cached_coarse(cache: dict | None, key: tuple, rep: Representation, case: Case):
    """The coarse alignment a cache entry of ``key``'s representation and case holds for another fit
    schedule (the key's last item), or ``None``."""
    for k, hit in (cache or {}).items():
        if k[:-1] == key[:-1] and hit[0] is rep and hit[1] is case:
            return hit[2]
    return None


def fit_variant(chain: Chain) -> Chain | None:
    """The chain with its fine affine fit ending on blurred maps (:data:`~styleunwarp.pipeline.fine_affine.
    FINE_AFFINE_SIGMAS_UNSEEN`), which ``train --target auto`` measures beside the winner; ``None``
    where there is no such variant: raw images (their fine affine step does not refit,
    :func:`~styleunwarp.pipeline.chain.check_for`) or a chain that already sets its blurs.

    A representation's sharp maps can hold a bias the blurred ones do not (the shipped model on
    steel looks it never met draws a wide groove as two flanks: docs/coarse.md, "The blur the fine
    affine fit ends on"); on real shale the sharp maps were the more precise. So the field's held-out
    pairs decide, by the rule every candidate faces."""
    from ..pipeline.chain import check_for
    from ..pipeline.fine_affine import FINE_AFFINE_SIGMAS_UNSEEN

    if check_for(chain.representation) == "structure" or chain.fine_sigmas is not None:
        return None
    return replace(chain, fine_sigmas=FINE_AFFINE_SIGMAS_UNSEEN)


def case_ranges(side: int) -> dict:
    """The deformation ranges of each held-out case kind on a ``side``-px crop, for the card."""
    return {kind: {k: [round(float(v), 2) for v in r] for k, r in ranges(kind, (side, side)).items()} for kind in KINDS}


def is_colour(image: np.ndarray) -> bool:
    """An RGB image whose channels differ (a grey image stored as RGB is not colour)."""
    a = np.asarray(image)
    return a.ndim == 3 and a.shape[2] >= 3 and not (np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]))


def _load_images(files, problems: list[str]) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], list, set[str]]:
    """The readable aligned pairs, their files, and the names of those whose two pixel sizes
    are both known; a bad pair is reported in ``problems`` and skipped."""
    from ..io import read_image, to_gray
    from .data import normalize_input, source_on_target_grid

    out, kept, scaled = [], [], set()
    for pf in files:
        try:
            sm, tm = read_image(pf.lom), read_image(pf.cbs)
            s, how = source_on_target_grid(sm, tm)
            t = tm.data
            for path, image in ((pf.lom, s), (pf.cbs, t)):
                normalize_input(image, 1, path)  # a constant or non-finite image: nothing to learn or measure
            if how:
                log.warning("%s: %s", pf.lom, how)
        except InputError as exc:
            log.warning("%s; skipped", exc)
            problems.append(f"{exc}; skipped")
            continue
        out.append((pf.name, s, to_gray(t)))
        kept.append(pf)
        if sm.pixel_size and tm.pixel_size:
            scaled.add(pf.name)
    if not out:
        raise InputError(None, "no usable aligned pair: " + "; ".join(problems[-3:]))
    return out, kept, scaled


def _write_manifest(path: Path, files) -> Path:
    from ..io import atomic_write_text
    import io as _io

    buf = _io.StringIO()
    w = csv.writer(buf)
    w.writerow(["name", "lom", "cbs"])
    for pf in files:
        w.writerow([pf.name, str(Path(pf.lom).resolve()), str(Path(pf.cbs).resolve())])
    return atomic_write_text(path, buf.getvalue())


def train_auto(pairs: str | PathLike[str], out: str | PathLike[str], config: AutoConfig | None = None, *,
               echo: Callable[[str], None] | None = None, description: str | None = None) -> dict:
    """Choose and train the chain for aligned ``pairs``; write ``out/chain.json`` (+ weights).

    Returns the card written.
    """
    from ..threads import torch_threads

    cfg = config or AutoConfig()
    with torch_threads(cfg.threads or None):
        return _train_auto(pairs, out, cfg, echo, description)


def _train_auto(pairs, out, cfg: AutoConfig, echo, description) -> dict:
    from ..registration import PIPELINE_DEFAULTS
    from .data import find_pairs
    from .representations.raw import Raw

    say = echo or (lambda s: log.info(s))
    t_start = time.monotonic()
    deadline = t_start + 60.0 * cfg.max_minutes
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files, problems = find_pairs(pairs)
    images, files, scaled = _load_images(files, problems)
    for msg in problems:
        say(f"skipped: {msg}")
    channels = cfg.channels or (3 if any(is_colour(s) for _, s, _ in images) else 1)
    order = np.random.default_rng([cfg.seed, 3]).permutation(len(images))
    n_held = min(cfg.max_heldout, max(1, int(round(cfg.heldout_fraction * len(images))))) if len(images) >= 2 else 0
    held = [images[i] for i in order[:n_held]]
    trn_idx = list(order[n_held:])
    trn = [images[i] for i in trn_idx]
    if not held:  # a single pair: test on it too, and say so
        held, note_data = trn, "only one pair: the held-out cases are deformations of the training pair"
    else:
        note_data = f"{len(trn)} training pairs, {len(held)} held out"
    # as register: with both pixel sizes known the coarse step keeps the scale, else it searches it
    scale_known = all(n in scaled for n, _, _ in held)
    eval_side = cfg.eval_side or eval_side_for([t for _, _, t in held])
    cases = make_cases(held, cfg.cases_per_pair, seed=cfg.seed, max_side=eval_side, scale_known=scale_known)
    sizes = sorted({f"{c.target.shape[1]} x {c.target.shape[0]} px" for c in cases})
    say(f"auto: {note_data}; {len(cases)} held-out cases (deformed; windows of at most {eval_side} px a side"
        f"{'' if cfg.eval_side else ', chosen by the structure of the targets'}: {', '.join(sizes)}); "
        f"budget {cfg.max_minutes:g} min; source channels {channels}")
    params = PIPELINE_DEFAULTS
    results: list[Result] = []
    reps: dict[str, Representation] = {"none": Raw()}
    skipped: list[str] = []
    coarse_cache: dict = {}  # a representation's coarse alignment of a case, shared by its backends

    def best() -> Result | None:
        return max(results, key=lambda r: r.score) if results else None

    def run(rep: Representation, chain: Chain, checkpoint: str | None = None) -> Result:
        b = best()
        need = b.score[0] if b is not None else 0
        r = evaluate(rep, chain, cases, params, must_reach=need, deadline=deadline - 10.0, coarse_cache=coarse_cache)
        r.checkpoint = checkpoint
        results.append(r)
        d = r.as_dict(len(cases))
        say(f"  {chain.described:<34} within 5 px {d['within_5px']}/{d['cases']}, within 1.5 px {d['within_1.5px']}, "
            f"median TRE {d['median_tre_px']} px, {r.seconds:.0f} s {r.note}")
        return r

    def left() -> float:
        return deadline - time.monotonic()

    def train_translation_candidate(kind: str) -> None:
        if kind not in cfg.kinds:
            return
        secs = min(cfg.translation_fraction * 60.0 * cfg.max_minutes, 0.5 * left())
        if secs < 30 or left() < 90:
            skipped.append(f"{kind}: not enough time left to train")
            return
        from .representations.translation import train_translation

        init = _shipped_edges_folder() if kind == "edges" and cfg.edges_from_shipped else None
        say(f"auto: training the {kind} translation for {secs:.0f} s" + (" from the shipped model" if init else ""))
        manifest = _write_manifest(out / "train_pairs.csv", [files[i] for i in trn_idx] or files)
        try:
            rep, _ = train_translation(manifest, out / kind, kind, channels, secs / 60.0, seed=cfg.seed,
                                       loss=cfg.translation_loss.get(kind, "l1"), init=init)
        except (StyleunwarpError, ValueError) as exc:
            skipped.append(f"{kind}: training failed ({exc})")
            return
        reps[kind] = rep
        for chain in learned_chains(kind):
            if left() < 30:
                skipped.append(f"{chain.label}: not enough time left")
                continue
            run(rep, chain, checkpoint="best validation L1" + (", fine-tuned from the shipped model" if init else ""))

    per_case = None
    for chain in training_free_chains() if "none" in cfg.kinds else []:
        if per_case is not None and left() < per_case * len(cases) * 0.5:
            skipped.append(f"{chain.label}: not enough time left")
            continue
        r = run(reps["none"], chain)
        if r.tres:  # the next raw-image chains reuse this one's coarse alignments
            per_case = (r.seconds - r.coarse_seconds) / len(r.tres) if per_case is None else per_case

    if "shipped" in cfg.kinds and left() > 60:
        shipped = _shipped_model()
        if shipped is not None:  # the shipped style model, untrained here: free to try
            for chain in learned_chains(shipped.kind):
                run(shipped, Chain("shipped", chain.backend, chain.backend_options, chain.coarse_sigma),
                    checkpoint="the shipped model, as delivered")
            reps["shipped"] = shipped

    trn_pairs = [(s, t) for _, s, t in trn]
    for kind in ("edges",):
        train_translation_candidate(kind)
    if "shared" in cfg.kinds and left() > 60:
        from .representations.shared import train_shared

        secs = min(cfg.shared_fraction * 60.0 * cfg.max_minutes, 0.5 * left())
        say(f"auto: training the shared code for {secs:.0f} s")
        snaps, summary = train_shared(trn_pairs, channels, seconds=secs, seed=cfg.seed)
        first, *others = learned_chains("shared")
        snap_results = []
        for k, rep in enumerate(snaps):
            if left() < 30:
                skipped.append(f"shared checkpoint {k + 1}: not enough time left")
                break
            snap_results.append((run(rep, first, checkpoint=f"{k + 1}/{len(snaps)} ({summary['steps']} steps in all)"), rep))
        if snap_results:
            r0, rep = max(snap_results, key=lambda x: x[0].score)
            reps["shared"] = rep
            for chain in others:
                if left() < 30:
                    skipped.append(f"{chain.label}: not enough time left")
                    continue
                run(rep, chain, checkpoint=r0.checkpoint)

    for kind in ("cbs",):
        train_translation_candidate(kind)

    # last: it cannot take time from the trained candidates, and it wins no tie against them
    if "lut" in cfg.kinds and left() > 45:
        from .representations.lut import IntensityMap

        reps["lut"] = lut = IntensityMap.fit(trn_pairs, channels)
        for chain in learned_chains("lut"):
            run(lut, chain, checkpoint="fitted on the training pairs")

    win = best()
    variant = None if win is None else fit_variant(win.chain)
    if variant is not None:  # the winner's fine affine fit ending on blurred maps, scored by the same rule
        if win.chain.representation not in reps:
            skipped.append(f"{variant.described}: its representation was not kept")
        elif left() < win.seconds + 20.0:
            skipped.append(f"{variant.described}: not enough time left")
        else:
            run(reps[win.chain.representation], variant, checkpoint=win.checkpoint)
            win = best()  # the variant only if it scores higher: a tie keeps the sharp fit

    if not results:
        raise StyleunwarpError("train --target auto: no candidate could be evaluated within the time budget")
    if "shipped" in reps:
        import shutil

        src = Path(reps["shipped"].model.source).parent
        shutil.copytree(src, out / "shipped", dirs_exist_ok=True)
        reps["shipped"].folder = "shipped"
    rep_sections = {kind: rep.save(out) for kind, rep in reps.items()}
    per_backend = {}
    for r in sorted(results, key=lambda r: r.score, reverse=True):
        per_backend.setdefault(r.chain.backend, r.chain.as_dict())
    card = {
        "task": "registration chain chosen by held-out TRE (styleunwarp train --target auto)",
        "chosen_by": (f"most held-out cases within {OK_PX:g} px mean TRE, then within {GOOD_PX:g} px, then fewest "
                      f"left more than {WORSE_PX:g} px farther than their start, then lowest "
                      f"median TRE, then lowest mean TRE (each case capped at {FAR_PX:g} px; TREs to 0.01 px); "
                      f"ties go to the earlier (training-free first) candidate; last, the winner's fine affine fit "
                      f"ending on blurred maps (fine_sigmas) is scored the same way and replaces the sharp fit only "
                      f"if it scores higher"),
        "winner": win.as_dict(len(cases)),
        "candidates": [r.as_dict(len(cases)) for r in results],
        "skipped": skipped,
        "best_per_backend": per_backend,
        "representations": rep_sections,
        "training_data": {"description": description or f"{len(images)} aligned pairs from {Path(pairs).resolve()}",
                          "train": [n for n, _, _ in trn], "held_out": [n for n, _, _ in held],
                          "note": note_data, "skipped_files": problems, "source_channels": channels},
        "evaluation": {"cases": len(cases), "cases_per_pair": cfg.cases_per_pair, "eval_side_px": eval_side,
                       "eval_side_chosen_by": "given" if cfg.eval_side else "structured tiles (heldout.eval_side_for)",
                       "kinds": [c.kind for c in cases], "case_ranges": case_ranges(eval_side),
                       "chain": "as register runs it: representation -> coarse alignment (auto) -> backend -> never worse "
                                "than the start (pipeline.chain.register_representations)",
                       "scale_known": scale_known, "params": params.to_dict()},
        "minutes": round((time.monotonic() - t_start) / 60.0, 2),
        "max_minutes": cfg.max_minutes,
    }
    write_chain_card(out, win.chain, rep_sections[win.chain.representation], **card)
    card = {"chain": win.chain.as_dict(), "representation": rep_sections[win.chain.representation], **card}
    say(f"auto: chose {win.chain.described} ({card['winner']['within_5px']}/{len(cases)} within 5 px, "
        f"median TRE {card['winner']['median_tre_px']} px) in {card['minutes']:.1f} min -> {out / 'chain.json'}")
    return card


__all__ = ["AutoConfig", "Result", "evaluate", "fit_variant", "learned_chains", "train_auto", "training_free_chains"]
