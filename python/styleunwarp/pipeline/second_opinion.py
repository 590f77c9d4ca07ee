"""A second opinion for results that the structure evidence does not call aligned.

A model from ``train --target auto`` or ``train --unaligned`` prescribes one chain, chosen
because it registered most pairs best; it still fails on some pairs another chain gets right.
:func:`register_pair_verified` runs the model's chain (:func:`.pair.register_pair`) and, when
its result is not structure evidence of alignment (``metrics.json`` ``structure.aligned``:
the original source, moved, agrees with the original target at least
:data:`styleunwarp.structure.Z_MIN` chance spreads above chance, and its structure does not point
to a residual misalignment, :func:`styleunwarp.residual.misaligned`), registers the pair with the
card's alternatives (:func:`styleunwarp.style.chain.alternatives`) into
``out/second_opinion/<chain>/``. When the first alternative tied with the model's chain on the
held-out cases (as many within 5 and 1.5 px, only the median preferred the winner), it is run
on every pair, evidence or not: the held-out pairs could not choose between the two, so each
pair's structure does. A style model without a chain card (the shipped one) gets a
training-free chain run on every pair (:func:`styleunwarp.style.chain.style_model_alternatives`).
Both are one mechanism: the first alternative's ``Chain.every_pair`` says why it runs on every pair. An alternative replaces the result only when it wins the
structure duel against it (:func:`styleunwarp.style.tournament.duel`) and is itself structure
evidence of alignment, or the result it replaces is no evidence at all, and does not read much
lower on the model chain's own representation (:data:`CROSS_MARGIN`; :func:`replaces`);
otherwise the model's result stays. Where no result is evidence at all (the raw structure of EM
against chromatin cannot vouch even for right results), two results of different representations
that each searched their own start and agree within :data:`styleunwarp.style.trust.AGREE_PX`
(:func:`agreements`, the rule ``train --unaligned`` trusts pairs by) decide instead: they
corroborate the kept result when it is one of them, else the agreeing result that reads highest by
structure replaces it where it reads higher than the kept one (:func:`corroboration`), and no further
chain runs. Either way ``metrics.json``
records under ``second_opinion`` what was tried and why the result kept is kept (``agreement``:
the two chains, their disagreement in px, the result kept), and the console says so.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..io import atomic_path, atomic_write_text, read_image
from ..quality import GRADED_ON_KEY, TIERS, grade, grade_details, grade_without_truth, ncc
from ..residual import describe, misaligned
from ..transform import read_transform, to_dense, warp_image
from ..transform.model import Transform
from ..style.chain import NO_CARD, TIED, Chain, load_chain
from ..style.tournament import EVIDENCE_Z, duel, is_evidence
from ..style.trust import AGREE_PX, Outcome, closest_independent
from .coarse import MIN_SCORE
from .evidence import EVIDENCE_KEY
from .grid import GridMatch
from .pair import PairResult, PathLikeStr, adapt_result, register_pair

log = logging.getLogger(__name__)

SUBFOLDER = "second_opinion"
REPLACE_MARGIN = 0.003
"""MIND agreement by which an alternative must lead the result kept so far to replace it
(:func:`replaces`), where the structure duel (:func:`styleunwarp.style.tournament.duel`) calls
a lead above :data:`styleunwarp.style.tournament.MIND_TIE` (0.002) a win. One duel decides a
pair's result here, with no other pairs to average out its noise. Measured on the as-user runs
(``bench_asdelivered.py``, seeds 35-39 and as-delivered seed 1; docs/representations.md, "A lead
of a few thousandths"): the steel replacements by a lead of 0.002-0.003 whose model chain result
is known were all worse than that result (0.83 -> 4.13, 0.90 -> 1.75, 0.79 -> 2.10, 0.99 -> 3.55,
0.49 -> 1.26 px); the smallest lead of a shale replacement was 0.0037 (0.50 px kept)."""

CROSS_MARGIN = 0.08
"""How much lower an alternative's result may read on the model chain's representation than the
result kept so far (:func:`ncc_on_representation`, the NCC the model chain's result was optimised
for) and still replace it, where that representation shows the pair (the kept result reads at least
:data:`.coarse.MIN_SCORE` there). Measured (``bench_second_opinion.py``, docs/representations.md,
"The duel checked on the model's terms"): on real shale, where elastix's results are the better
ones, they read -0.040 to +0.020 against the shipped model chain's (36 pairs, seeds 55, 56 and 58); the
steel replacements that were wrong read 0.11-0.32 lower (blind:47 steel_SEM_009, blind:54
steel_SEM_002, blind:56 steel_SEM_010, lom3:57 steel_SEM_004: 3.84, 4.58, 6.69 and 3.85 px where
the model chain had 1.12, 0.88, 0.86 and 0.57 px)."""

RESULT_FILES = ("styled.tif", "target.tif", "direct_transf.txt", "inverse_transf.txt", "registered.tif", "overlay.png")
"""What a registration folder holds besides ``metrics.json`` (written last)."""


def _summary(chain: str, metrics: dict) -> dict:
    """One result's line in ``second_opinion.tried``: its structure evidence, tier and the NCC of its representation."""
    ev = metrics.get(EVIDENCE_KEY) or {}
    return {"chain": chain, "mind": ev.get("mind"), "z": ev.get("z"), "aligned": ev.get("aligned"), "tier": metrics.get("tier"),
            "styled_ncc_after": metrics.get("styled_ncc_after")}


def _model_chain_label(kwargs: dict, metrics: dict) -> str:
    """The label of the chain the first registration ran: the model's, unless its backend was overridden."""
    chain = load_chain(kwargs.get("model")) if kwargs.get("style", "model") == "model" else None
    if chain is not None and chain.backend == metrics.get("backend"):
        return chain.label
    return f"{metrics.get('representation', '?')}->{metrics.get('backend', '?')}"


def _adopt(src: Path, dst: Path, metrics: dict) -> None:
    """Put the registration in ``src`` in place of the one in ``dst`` (each file atomically, metrics last)."""
    for name in RESULT_FILES:
        s, d = src / name, dst / name
        if s.is_file():
            with atomic_path(d) as tmp:
                shutil.copy2(s, tmp)
        else:
            d.unlink(missing_ok=True)
    atomic_write_text(dst / "metrics.json", json.dumps(metrics, indent=2, default=float) + "\n")


def ncc_on_representation(styled: np.ndarray, target: np.ndarray, direct: Transform, grid: GridMatch | None = None) -> float:
    """NCC of a representation's ``styled`` source, moved by ``direct`` (target pixel -> original
    LOM pixel), with its ``target`` over the pixels the source covers; ``grid``: how the LOM the
    styled source was made on was resampled to the CBS pixel size (``None``: not resampled)."""
    dense = to_dense(direct, target.shape)
    if grid is not None and grid.factor != 1.0:  # the styled source lies on the resampled LOM
        dense = grid.to_resampled(dense)
    moved = warp_image(np.asarray(styled, np.float32), dense, target.shape)
    return ncc(moved, target, moved != 0)


def ncc_on_saved_representation(model_dir: Path, model_metrics: dict, styled: np.ndarray, direct_file: Path) -> float | None:
    """:func:`ncc_on_representation` of a saved direct transform (``direct_file``) on the representation
    a registration folder ``model_dir`` holds (its ``target.tif``, its ``metrics.json`` as ``model_metrics``
    for the representation and the pixel grid, and its ``styled`` source); ``None`` where that
    registration compared the raw images or its representation is not one grey image."""
    if model_metrics.get("representation") in (None, "none") or np.asarray(styled).ndim != 2:
        return None
    target = read_image(Path(model_dir) / "target.tif").data
    grid = GridMatch.from_dict(model_metrics["pixel_grid"]) if model_metrics.get("pixel_grid") else None
    return ncc_on_representation(styled, target, read_transform(direct_file), grid)


def on_model_representation(first: PairResult, adopted: PairResult) -> dict | None:
    """The adopted result measured on the model chain's representation (:data:`~styleunwarp.quality.GRADED_ON_KEY`,
    :func:`ncc_on_representation`); ``None`` where the model's chain registered the raw images
    (nothing to measure on) or its representation is not one grey image. Call it before the adopted
    result replaces the model chain's files (it reads the model chain's ``target.tif``).

    The grader's correlation thresholds were read on a style model's representation; a raw chain's
    own correlation (two modalities' grey levels) says nothing, and printed poor for decent results.
    """
    value = ncc_on_saved_representation(first.out_dir, first.metrics, first.styled, adopted.out_dir / "direct_transf.txt")
    if value is None:
        return None
    return {"representation": first.metrics["representation"], "styled_ncc_after": value,
            "reason": "the adopted result measured on the model chain's representation, the one the grader's thresholds were read on"}


def every_pair_reason(chain: Chain) -> str:
    """Why ``chain`` runs on every pair (its ``every_pair``), in words for the console and ``metrics.json``."""
    if chain.every_pair == NO_CARD:
        return f"the style model has no chain card (it was never measured against {chain.label} on held-out pairs)"
    if chain.every_pair == TIED:
        return f"the held-out cases could not tell the model's chain from {chain.label} (as many within 5 and 1.5 px)"
    return f"{chain.label} runs on every pair ({chain.every_pair})"


def _graded_worse(tier: str | None, than: str | None) -> bool:
    """Whether verdict ``tier`` is worse than ``than`` (False where either is not a tier)."""
    return tier in TIERS and than in TIERS and TIERS.index(tier) < TIERS.index(than)


def _leads(challenger: dict | None, incumbent: dict | None) -> bool:
    """Whether ``challenger``'s MIND agreement exceeds ``incumbent``'s by more than :data:`REPLACE_MARGIN`
    (True where either cannot be read: the duel alone decides then)."""
    a, b = (challenger or {}).get("mind"), (incumbent or {}).get("mind")
    if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)):
        return True
    return a - b > REPLACE_MARGIN


def reads_worse(challenger_on_model: float | None, incumbent_on_model: float | None, margin: float = CROSS_MARGIN) -> bool:
    """Whether a challenger's result reads lower on the model chain's representation than the result
    kept so far by more than ``margin`` (:data:`CROSS_MARGIN`), where that representation shows the pair (the kept
    result reads at least :data:`.coarse.MIN_SCORE`); False where either reading is missing."""
    a, b = challenger_on_model, incumbent_on_model
    if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)):
        return False
    return b >= MIN_SCORE and a < b - margin


def refusal(challenger: dict | None, incumbent: dict | None, challenger_tier: str | None = None,
            incumbent_tier: str | None = None, on_model: tuple[float | None, float | None] = (None, None)) -> str | None:
    """Why a second opinion's result does not replace the result kept so far (:func:`replaces`):
    ``"lost"`` (it does not win the structure duel), ``"narrow"`` (it wins by no more than
    :data:`REPLACE_MARGIN`), ``"graded worse"``, ``"model view"`` (it reads lower on the model
    chain's representation, :func:`reads_worse`; ``on_model``: the challenger's and the incumbent's
    readings there), ``"unshown"`` (not shown aligned while the result kept is evidence); ``None``
    when it replaces it."""
    if duel(challenger, incumbent) <= 0:
        return "lost"
    if not _leads(challenger, incumbent):
        return "narrow"
    if _graded_worse(challenger_tier, incumbent_tier):
        return "graded worse"
    if reads_worse(*on_model):
        return "model view"
    if not ((challenger or {}).get("aligned") or not is_evidence(incumbent)):
        return "unshown"
    return None


def replaces(challenger: dict | None, incumbent: dict | None, challenger_tier: str | None = None,
             incumbent_tier: str | None = None, on_model: tuple[float | None, float | None] = (None, None)) -> bool:
    """Whether a second opinion's result (structure evidence ``challenger``) replaces the result
    kept so far (``incumbent``): it must win the structure duel (:func:`styleunwarp.style.tournament.duel`)
    by a lead of more than :data:`REPLACE_MARGIN` in MIND agreement,
    must not be graded worse than the incumbent (``*_tier``: each result's own verdict without
    ground truth, :func:`styleunwarp.quality.grade_without_truth`; not compared where either is
    None), must not read lower on the model chain's representation by more than
    :data:`CROSS_MARGIN` (``on_model``, :func:`reads_worse`), and must be structure evidence of
    alignment itself (``aligned``), unless the incumbent is no evidence at all (below
    :data:`styleunwarp.style.tournament.EVIDENCE_Z`).

    Of two results neither shown aligned, a small edge in MIND agreement says little: measured on
    the as-user runs (``bench_asdelivered.py``, 7 runs, about 50 replacements), the only two made
    by a result not shown aligned were a near-aligned lom3 pair moved from 1.70 to 23.7 px by
    elastix MI (z 4.6 against the model chain's 4.0) and a blind pair left at its start; every
    other replacement was by an aligned result. Nor does the duel's edge outweigh the grader:
    of the 10 steel replacements by a result graded worse (three as-user runs, eighteenth
    session), 9 were worse than the result replaced (a 1.15 px start: the model chain 0.92 px,
    good; elastix MI 28.1 px, poor; mean 4.14 px against 0.70), while all 46 shale replacements
    were graded good and no worse than what they replaced (docs/representations.md)."""
    return refusal(challenger, incumbent, challenger_tier, incumbent_tier, on_model) is None


def _reading(res: PairResult, label: str | None, on_model: dict[str, dict]) -> float | None:
    """A result's NCC on the model chain's representation: the model chain's own (``label`` None), an alternative's as read."""
    if label is None:
        return None if res.metrics.get("representation") in (None, "none") else res.metrics.get("styled_ncc_after")
    return (on_model.get(label) or {}).get("styled_ncc_after")


def _challenge(best: PairResult, best_label: str | None, res: PairResult, label: str,
               refused: dict[str, list[str]], on_model: dict[str, dict]) -> tuple[PairResult, str | None]:
    """The result kept after ``res`` (alternative ``label``) challenged ``best``; why a winner of the
    duel did not replace it goes into ``refused`` by :func:`refusal`'s kind. ``on_model``: each
    alternative's result read on the model chain's representation (:func:`on_model_representation`)."""
    challenger, incumbent = res.metrics.get(EVIDENCE_KEY), best.metrics.get(EVIDENCE_KEY)
    tiers = grade_without_truth(res.metrics), grade_without_truth(best.metrics)
    readings = _reading(res, label, on_model), _reading(best, best_label, on_model)
    kind = refusal(challenger, incumbent, *tiers, on_model=readings)
    if kind is None:
        return res, label
    if kind == "narrow":
        refused.setdefault(kind, []).append(f"{label} (MIND {challenger['mind']:.4f} against {incumbent['mind']:.4f})")
    elif kind == "graded worse":
        refused.setdefault(kind, []).append(f"{label} (graded {tiers[0]}, the result kept {tiers[1]})")
    elif kind == "model view":
        refused.setdefault(kind, []).append(f"{label} (NCC {readings[0]:.3f} against {readings[1]:.3f})")
    elif kind == "unshown":
        refused.setdefault(kind, []).append(label)
    return best, best_label


def _duel_all(first: PairResult, ran: Sequence[tuple[str, PairResult]],
              on_model: dict[str, dict]) -> tuple[PairResult, str | None, dict[str, list[str]]]:
    """The model chain's result ``first`` challenged by each alternative's result in turn."""
    best, best_label, refused = first, None, {}
    for label, res in ran:
        best, best_label = _challenge(best, best_label, res, label, refused, on_model)
    return best, best_label, refused


def outcome_of(label: str, res: PairResult) -> Outcome:
    """One registration of the second opinion as the trust rule reads it (:class:`styleunwarp.style.trust.Outcome`)."""
    m = res.metrics
    return Outcome.from_metrics(label, str(m.get("representation") or "none"), str(m.get("backend") or "?"), res.out_dir, m)


def agreements(earlier: Sequence[Outcome], new: Outcome, agree_px: float = AGREE_PX) -> list[tuple[float, Outcome, Outcome]]:
    """The ``earlier`` results that agree with result ``new`` within ``agree_px`` and are independent
    of it in the strong sense: another representation, which searched its own start
    (:func:`styleunwarp.style.trust.closest_independent` without one representation through two
    backends), one of the two moved from the start; each as ``(disagreement in px, earlier, new)``."""
    found = []
    for o in earlier:
        pair = closest_independent([o, new], weak=False)
        if pair is not None and pair[0] <= agree_px:
            found.append(pair)
    return found


def _z(res: PairResult) -> float:
    """A result's structure evidence in chance spreads (-inf where it was not measured)."""
    z = (res.metrics.get(EVIDENCE_KEY) or {}).get("z")
    return float(z) if z is not None and np.isfinite(z) else float("-inf")


def corroboration(agreeing: Sequence[tuple[float, Outcome, Outcome]], results: dict[str, PairResult],
                  kept: str) -> tuple[tuple[float, Outcome, Outcome], str] | None:
    """What agreeing results (:func:`agreements`) decide for the result kept so far (label ``kept``
    in ``results``, label -> result), which is no structure evidence at all: the closest pair that
    includes it corroborates it (``(pair, kept)``); else, of every result in an agreeing pair, the
    one with the highest structure evidence (z) replaces it where that z is higher than the kept
    result's (``(its closest pair, its label)``); ``None`` where neither holds."""
    with_kept = [pair for pair in agreeing if kept in (pair[1].chain, pair[2].chain)]
    if with_kept:
        return min(with_kept, key=lambda pair: pair[0]), kept
    best = None
    for pair in sorted(agreeing, key=lambda pair: pair[0]):
        for o in pair[1:]:
            if _z(results[o.chain]) > _z(results[kept]) and (best is None or _z(results[o.chain]) > _z(results[best[1]])):
                best = (pair, o.chain)
    return best


def register_pair_verified(lom: PathLikeStr, cbs: PathLikeStr, out_dir: PathLikeStr, *, alternatives: Sequence[Chain] = (),
                           **kwargs) -> PairResult:
    """:func:`.pair.register_pair` with the model's chain (``kwargs``), then, when its result is
    not structure evidence of alignment, the ``alternatives`` (chains of the same model) until one
    is (the first one always when its ``every_pair`` gives a reason; a ``last_resort`` only while the result
    kept is no evidence at all, :func:`styleunwarp.style.tournament.is_evidence`); the result whose source agrees best
    with the target by structure is kept in ``out_dir``.
    ``kwargs["backend"]``/``backend_options``/``coarse_sigma`` are the model's chain's; each
    alternative brings its own, and its representation from the model's card.

    Where the model's chain adapts its model to the pair (:mod:`.adapt`), the adaptation waits for
    the duel: a model chain's result that an alternative replaced while it was shown aligned is not
    adapted; any other (kept, or replaced while not shown aligned, which adapting may change) is
    adapted (:func:`.pair.adapt_result`) and meets the same alternatives' results once more. An
    adaptation that a second opinion would discard anyway is not paid for. While the result kept
    is no evidence at all, two results of different representations that agree (:func:`agreements`)
    stop the alternatives and decide by :func:`corroboration`."""
    out = Path(out_dir)
    first = register_pair(lom, cbs, out, defer_adapt=bool(alternatives), **kwargs)
    ev = first.metrics.get(EVIDENCE_KEY) or {}  # what decides whether the alternatives run
    aligned = bool(ev.get("aligned"))
    always = alternatives[0] if alternatives and alternatives[0].every_pair else None
    if not alternatives or (aligned and always is None):
        return adapt_result(first)
    primary_label = _model_chain_label(kwargs, first.metrics)
    tried = [_summary(primary_label + " (the model's chain)", first.metrics)]
    best, best_label = first, None
    refused: dict[str, list[str]] = {}  # alternatives that won the duel but did not replace, by refusal()
    ran: list[tuple[str, PairResult]] = []
    on_model: dict[str, dict] = {}  # each alternative's result read on the model chain's representation
    last_resorts = None  # why the last resorts did not run, where they did not
    outcomes = [outcome_of(primary_label, first)]  # every result so far, as the trust rule reads them
    agreeing: list[tuple[float, Outcome, Outcome]] = []  # results of different representations that agree (:func:`agreements`)
    for i, chain in enumerate(alternatives):
        if i > 0 and (best.metrics.get(EVIDENCE_KEY) or {}).get("aligned"):
            break
        if (agreeing and not is_evidence(best.metrics.get(EVIDENCE_KEY))
                and corroboration(agreeing, {primary_label: first, **dict(ran)}, best_label or primary_label)):
            break  # two representations that each searched their own start agree: no further chain is needed
        if chain.last_resort and is_evidence(best.metrics.get(EVIDENCE_KEY)):
            last_resorts = (f"not run ({', '.join(c.label for c in alternatives[i:] if c.last_resort)}): the result kept "
                            f"is evidence, {EVIDENCE_Z:g} or more chance spreads above chance")
            break
        kw = dict(kwargs, backend=chain.backend, backend_options=dict(chain.backend_options), coarse_sigma=chain.coarse_sigma,
                  representation=chain.representation)
        try:
            res = register_pair(lom, cbs, out / SUBFOLDER / chain.slug, **kw)
        except Exception as exc:  # noqa: BLE001 - an alternative that cannot run leaves the model's result
            tried.append({"chain": chain.label, "error": f"{type(exc).__name__}: {exc}"})
            log.warning("%s: second opinion %s failed: %s", out, chain.label, exc)
            continue
        entry = _summary(chain.label, res.metrics)
        read = on_model_representation(first, res)
        if read is not None:  # each result read on the other's terms too: the model chain's entry has its own NCC
            on_model[chain.label] = read
            entry["styled_ncc_on_model_representation"] = read["styled_ncc_after"]
        tried.append(entry)
        ran.append((chain.label, res))
        best, best_label = _challenge(best, best_label, res, chain.label, refused, on_model)
        new = outcome_of(chain.label, res)
        agreeing += agreements(outcomes, new)
        outcomes.append(new)
    adapt_note = None
    if first.deferred is not None and (best_label is None or not aligned):
        # adapt the model chain's result where it stays, or where it lost while not shown aligned (adapting may show it
        # aligned, which changes what may replace it: blind:54 steel_SEM_004), and let it meet the alternatives again
        before = tried[0]
        first = adapt_result(first)
        tried[0] = dict(_summary(primary_label + " (the model's chain)", first.metrics),
                        before_adapting={k: before.get(k) for k in ("mind", "z", "aligned", "tier")})
        best, best_label, refused = _duel_all(first, ran, on_model)
        outcomes[0] = outcome_of(primary_label, first)  # the adapted result, read afresh
        agreeing = [pair for j in range(1, len(outcomes)) for pair in agreements(outcomes[:j], outcomes[j])]
    elif first.deferred is not None:
        adapt_note = {"combined": "not adapted", "reason": f"{best_label} replaced the model chain's result, shown aligned, before it "
                                                          "was adapted: only a result the second opinion keeps, or one not shown aligned, "
                                                          "is adapted"}
    agreed = None  # {"chains", "disagreement_px", "kept"} where agreeing results decided
    decided = corroboration(agreeing, {primary_label: first, **dict(ran)}, best_label or primary_label) \
        if agreeing and not is_evidence(best.metrics.get(EVIDENCE_KEY)) else None
    if decided is not None:
        (d, a, b), pick = decided
        agreed = {"chains": [a.chain, b.chain], "disagreement_px": round(d, 2)}
        if pick != (best_label or primary_label):
            best, best_label = (first, None) if pick == primary_label else (dict(ran)[pick], pick)
        agreed["kept"] = best_label or "model chain"
    if agreed is not None and best_label is not None:
        why = (f"replaced by {best_label}: no result is structure evidence of alignment, but {agreed['chains'][0]} and "
               f"{agreed['chains'][1]}, two representations that each searched their own start, agree within "
               f"{agreed['disagreement_px']:.2f} px")
    elif agreed is not None:
        other = [c for c in agreed["chains"] if c != primary_label][0]
        why = (f"kept the model's chain: no result is structure evidence of alignment, but {other}, another representation that "
               f"searched its own start, agrees with it within {agreed['disagreement_px']:.2f} px")
    elif best_label is None and "narrow" in refused:
        why = (f"kept the model's chain: {', '.join(refused['narrow'])} agrees a little better with the target by structure, "
               f"by no more than {REPLACE_MARGIN:g}: too little to trade one result for another")
    elif best_label is None and "graded worse" in refused:
        why = (f"kept the model's chain: {', '.join(refused['graded worse'])} agrees a little better with the target by structure "
               "but is graded worse")
    elif best_label is None and "model view" in refused:
        why = (f"kept the model's chain: {', '.join(refused['model view'])} agrees better with the target by structure but reads "
               f"lower on the model chain's representation (NCC), by more than {CROSS_MARGIN:g}: the two measures disagree")
    elif best_label is None and "unshown" in refused:
        why = (f"kept the model's chain: {', '.join(refused['unshown'])} agrees a little better with the target by structure but is not "
               "shown aligned either, too little to trade one result for another")
    elif best_label is None:
        why = "kept the model's chain: no alternative agrees better with the target by structure"
    else:
        why = f"replaced by {best_label}: its source agrees better with the target by structure (MIND)"
    not_shown = "the model chain's result is not structure evidence of alignment"
    if misaligned(ev):
        not_shown += f" ({describe(ev)})"
    trigger = every_pair_reason(always) + ": the pair's structure decides" if aligned and always is not None else not_shown
    record = {"reason": why, "kept": best_label or "model chain", "tried": tried, "trigger": trigger,
              **({"last_resorts": last_resorts} if last_resorts else {}), **({"agreement": agreed} if agreed else {})}
    metrics = dict(best.metrics, second_opinion=record, **({"adapt": adapt_note} if adapt_note else {}))
    graded_on = on_model.get(best_label) if best_label is not None else None  # the adopted result, read once above
    if graded_on is not None:
        metrics[GRADED_ON_KEY] = graded_on
        if metrics.get("grade_source") == "grader":
            metrics["tier"] = grade(metrics)[0]
        metrics["grade_details"] = grade_details(metrics)
    if best is first:
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=float) + "\n")
    else:
        _adopt(best.out_dir, out, metrics)
    return PairResult(out, best.registration, best.registered, best.styled, metrics)


__all__ = ["CROSS_MARGIN", "REPLACE_MARGIN", "agreements", "corroboration", "outcome_of", "reads_worse", "RESULT_FILES", "ncc_on_saved_representation", "SUBFOLDER", "every_pair_reason", "refusal", "replaces", "ncc_on_representation", "on_model_representation", "register_pair_verified"]
