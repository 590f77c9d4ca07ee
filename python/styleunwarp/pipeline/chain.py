"""The registration chain after the representation: coarse alignment -> elastic -> never worse.

:func:`register_representations` is the one place this sequence lives: ``register`` /
``batch`` (:func:`~styleunwarp.pipeline.pair.register_pair`) run it on the two represented
images, and ``train --target auto`` (:func:`styleunwarp.style.auto.evaluate`) scores every
candidate chain by running it on deformed held-out pairs, so the chain chosen is measured as
``register --model M`` runs it: coarse alignment (:mod:`.coarse`, the identity kept unless
beaten), the elastic backend (optionally with a blurred first pass), the keep-or-undo rule
(:func:`keep_or_undo`), and the composition of the elastic result with the coarse map.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..quality import Z_CHANCE, ncc, transform_stats
from ..structure import (PEAK_SHIFT_PX, agreement_and_chance, edge_strength, gradient_gain, gradient_peak_drop, significance,
                         structure_drop)
from ..registration import BUnwarpJParams, Registration, register
from ..transform import ElasticTransform, affine_elastic, identity_elastic, inside_source, warp_image
from .coarse import CoarseResult, align_by_mutual_information, align_by_structure, compose_direct, invert_affine, inverse_through, warp_source
from .coarse import align as coarse_align
from .consensus import consensus, consensus_on_source
from .fine_affine import FINE_AFFINE_SIGMAS, FineAffine
from .fine_affine import fine_affine as refine_fine_affine
from .restart import restart_start, warrants_restart

COARSE_SIGMA_FOR_EDGES = 0.0
"""Blur (px) of a first pass when registering boundary maps; 0 = one pass on the sharp maps.

Measured (docs/study-table.md, ``benchmarks/bench_styled_defaults.py``): behind the coarse
alignment step, one pass is more accurate than a 3 px blurred pass first, on the tuning sets
(varied LOM looks) and held out (real-CBS renderings), and twice as fast. The two-pass
registration (``--coarse-sigma``) was needed before the coarse step existed."""

CHECKS = ("alike", "structure")
"""How an elastic result is verified (:func:`check_for`): ``alike`` for representations made to
look alike, ``structure`` for raw images of two modalities."""

GRADIENT_MARGIN = {"alike": 0.0005, "structure": 0.005}
"""Gradient agreement (:func:`styleunwarp.structure.gradient_agreement`) an elastic result must
gain over its start to be kept, by :func:`check_for` kind. Measured (docs/coarse.md):

* ``alike`` (``benchmarks/bench_keep_rule.py``, shipped boundary-map model, bUnwarpJ): every
  elastic result that made a pair worse (3 of 8 as-delivered real-CBS renderings, 2 of 8 shale
  pairs) gained at most 0.0002; results that improved steel pairs by more than 0.3 px gained
  0.0005-0.011 (two that improved by 0.14 and 0.24 px gained 0.0002 and 0); the NCC rose for
  all. Any margin up to 0.0015 is best on the tuning sets (synthetic), 0.0003-0.001 makes no
  pair of any set worse; 0.0005 is inside both. That was measured on the boundary map of the
  CBS as recorded; a model whose target is denoised before registration is checked on that map
  (:meth:`~styleunwarp.style.representations.Representation.reference_target`): measured on the
  denoised map itself, elastic results that made as-delivered pairs 0.2-0.8 px worse gained up
  to 0.0009, on the recorded map at most 0.0004 (docs/study-table.md).
* ``structure`` (``benchmarks/bench_raw_checks.py``, raw images): elastix and native NMI results
  that improved shale pairs gained 0.007-0.05; elastix results that moved CLEM pairs 15-30 px
  and steel pairs 1-4 px away from the truth gained at most 0.003 or lost, on the tuning cases;
  on the check cases two CLEM results that moved near-aligned pairs 11-13 px away gained 0.006
  and 0.013. Hence also :data:`GRADIENT_CHANCE_SDS`."""

GRADIENT_CHANCE_SDS = 1.0
"""On raw images (``check="structure"``) the gain must also exceed this many standard deviations
of the agreement at large shifts (:func:`styleunwarp.structure.gradient_chance`): the two CLEM
results above gained 0.12 and 0.26 of it (a fluorescence channel has few edges, so the measure
varies a lot), correct results on shale 2.2-4.7 of it."""

PEAK_DROP_MIN = {"alike": 0.0018, "structure": None}
"""How sharply the two representations' agreement must peak at an elastic result whose gain is
not clear (below :data:`CLEAR_GAIN_FACTOR` times the margin): :func:`styleunwarp.structure.gradient_peak_drop`
at :data:`styleunwarp.structure.PEAK_SHIFT_PX`, by :func:`check_for` kind (None: not tested).
Where a model meets a look it has not learned, its map and the target's boundary map agree only
weakly, their agreement has a flat top, and bUnwarpJ's optimum on it follows the model's
artefacts (a wide groove drawn as two lines) rather than the structure. Measured
(docs/coarse.md, ``benchmarks/bench_styled_defaults.py --dump``, shipped model, bUnwarpJ, first
passes): on the tuning sets (7 steel sets of three renderers, 70 pairs) the kept results that
made a pair worse had drops of 0.0007-0.0017, those on our own real-CBS renderings (all
improvements) 0.0011-0.0045; 0.0018 made no pair worse there (10 before) and none on 7 held-out
sets (17 before; mean TRE 2.35 -> 2.08 px after the second pass), at the cost of some right
results with flat peaks (our renderings: mean 0.72 -> 0.80-1.00 px). Not tested on raw images
(``structure``): no measurement there. Not applied where the elastic step fitted only what both
maps show (:mod:`.consensus`, from a start the fine affine step refined: :func:`consensus_radius`):
there it refused results that improved foreign renderings (blind:2 mean 0.95 px without it, 1.18
with it; docs/study-table.md). Applied to consensus fits from unrefined coarse starts it was
needed: without it those fits made 6 of 40 steel pairs worse."""

CLEAR_GAIN_FACTOR = 10
"""An elastic result whose gradient agreement gains at least this many times the margin is kept
without the peak test (:data:`PEAK_DROP_MIN`): such gains came only from pairs that started
3.8-10 px off (docs/coarse.md), where a flat peak still leaves the result far better than its start."""

ELASTIC_MIND_DROP_SDS = 2.0
"""Largest drop of the raw images' structure agreement (:func:`styleunwarp.structure.structure_drop`,
in chance spreads) for a kept elastic result of two representations to stay kept: the fine affine
step's bar (:data:`.fine_affine.FINE_AFFINE_MIND_DROP_SDS`), applied to the elastic step, which
its own rule checks on the representations it fitted. Measured (docs/coarse.md, "The elastic
step checked on the raw images"): a learned shared code registered by elastix moved near-identity
shale cases from 0.7 to 9.5 px while the code's gradient agreement and NCC rose."""

ELASTIC_MAX_MEAN_MOVE = 0.03
"""Largest mean move of an elastic result's correction to its start (a fraction of the larger side)
kept without structure confirmation (:func:`far_move_check`): the fine affine step's bound
(:data:`.fine_affine.FINE_AFFINE_MAX_MOVE`), applied to the elastic step, which could otherwise make
the far move the fine affine step had refused. Measured (docs/coarse.md, "A far move of the elastic
step"): of 35 saved kept elastic results with ground truth, the two that moved more than this on
average ended 24.5 and 41.8 px off; the largest move below it (1.5 % of the side) ended 0.31 px off."""

ELASTIC_MIN_STRUCTURE_Z = Z_CHANCE
"""Least structure evidence (chance spreads above chance, :func:`styleunwarp.structure.mind_verdict`'s
``z`` of the images as recorded) of a kept elastic result (:func:`chance_check`): below it nothing shows
that the result overlaps the target at all, and the start is kept. The grader's bar for "no better than
chance" (:data:`styleunwarp.quality.Z_CHANCE`). Measured (docs/coarse.md, "An elastic result at chance"):
of 669 saved results with ground truth, the 8 kept elastic results below it all ended more than 5 px
off, and of the 5 whose start is known, 3 ended 1.2-16 px farther than their start."""

ELASTIC_MAX_INCONSISTENCY = 0.75
"""Direct/inverse disagreement (px) above which an elastic result is not trusted (Accurate mode).
Elastic results that helped measured 0.37-0.64 px; two that made pairs worse 1.05 px."""


@dataclass(frozen=True)
class ChainOutcome:
    """What the chain found, on the representation grids (before any pixel-size matching is undone)."""

    direct: ElasticTransform
    """Target pixel -> source (representation) pixel, the coarse map composed in."""
    inverse: ElasticTransform | None
    """Source pixel -> target pixel (``None`` in Mono mode)."""
    moved: np.ndarray
    """The source representation on the target grid as finally compared (coarse + kept elastic)."""
    coarse: CoarseResult
    registration: Registration
    """The backend's raw result (on the coarsely aligned source), whether kept or not."""
    elastic: dict
    """The keep-or-undo facts (:func:`keep_or_undo`)."""
    coarse_seconds: float
    fine_affine: dict = field(default_factory=dict)
    """What the fine affine step did (:func:`.fine_affine.fine_affine`; empty when it did not run)."""
    start: np.ndarray | None = None
    """The affine map (2x3) the elastic step started from: the coarse map, refined by the fine affine step."""


def check_for(representation: str | None) -> str:
    """How a chain on ``representation`` (a kind of :mod:`styleunwarp.style.representations`)
    verifies its steps: ``"structure"`` for the raw images (``none``: two modalities as
    acquired), ``"alike"`` for representations made to look alike."""
    return "structure" if representation in (None, "none") else "alike"


def coarse_alignment(method: str, target: np.ndarray, source: np.ndarray, *, scale_known: bool = False,
                     check: str = "alike", mutual_information: bool = True, structure_search: bool = True) -> CoarseResult:
    """The coarse step of the chain (:func:`.coarse.align`), the scale fixed at 1 when ``scale_known``.

    ``check`` is the chain's kind (:func:`check_for`). For ``"structure"`` (raw images of two
    modalities, whose grey levels need not correspond), when the search on the grey levels keeps
    the identity, the hypotheses are searched again on the images' edge strength
    (:func:`styleunwarp.structure.edge_strength`), the winner confirmed by MIND-SSC on the images
    themselves as always. Measured on the 24 shale BSE/SE pairs with known deformations
    (docs/coarse.md, ``benchmarks/bench_coarse_raw.py``): the grey levels alone found a start
    within 5 px on 20 and 17 of 24 cases (near-identity and small; mostly 8-25 px), the edge
    strength alone on 23 and 22; where the grey levels do correspond (a CBS-like source) their
    start is the more accurate one, hence grey levels first. Where edge strength keeps the identity
    too, with ``mutual_information`` (default) the hypotheses are searched by mutual information
    (:func:`.coarse.align_by_mutual_information`: full circle in 2.5-degree steps, the known scale
    or 1), which needs no linear relation between the two images' grey levels
    (docs/coarse.md, "Raw images: a last search by mutual information"). Where that keeps the
    identity too, with ``structure_search`` (default) the hypotheses are searched on the images'
    local structure (:func:`.coarse.align_by_structure`: MIND-SSC descriptors, full circle, the
    known scale or 1), which needs no grey-level relation at all, only shapes both images show
    (docs/coarse.md, "Raw images: a search on structure").

    For ``"alike"`` (two representations made to look alike) the search runs on their grey levels,
    and where it keeps the identity, with ``structure_search`` on their local structure, as a raw
    chain's last stage: the grey-level search of boundary maps needs one hypothesis to lead every
    other, and a map that misses or adds boundaries leaves several near-equal peaks where the
    structure search still finds one. Measured on steel renderings of two foreign renderers with
    large deformations (docs/coarse.md, "The structure search for representations"): lom3:64 steel_SEM_006,
    rotated 6 deg and 23.4 px off, kept the identity on the maps' grey levels (a lead of 0.032);
    their structure found it (1.64 px, 10.5 chance spreads above chance). Over 70 held-out steel
    pairs it changed 3 coarse starts (all of one CBS field), moved no near-aligned pair, and took
    2.6-9 s where it ran; through the chain, 23.4 -> 0.93 and 30.1 -> 0.92 px.

    Where no search finds a winner, the identity refined locally is judged by the same margins
    (:func:`.coarse.align`'s ``refine_local``); for raw images on their edge strength only (the last
    stage), as the grey levels of two modalities need not correspond.

    Hypotheses of the source's own polarity only: searching the reversed grey scale too
    (``polarity="either"``) changed no coarse result on the raw CLEM, steel and shale cases of
    ``benchmarks/bench_raw_checks.py`` (CLEM's reversed matches were not unique peaks) and
    doubles the search, so it stays off (docs/coarse.md)."""
    scale = 1.0 if scale_known else None
    # Raw images: the NCC searches of grey levels and edge strength leave scale 1 to the stages made for two
    # modalities (mutual information, structure), which search it anyway; measured (docs/coarse.md, "Scale 1
    # alone where the search over every scale is crowded"): their NCC winners at scale 1 were less precise
    raw = check == "structure"
    found = coarse_align(method, target, source, scale=scale, refine_local=not raw, unit_scale=not raw)
    if not found.is_identity or found.search in ("skipped", "off"):
        return found
    if check != "structure":
        return _last_search_on_structure(found, target, source, scale, structure_search, found.reason,
                                         f"on the representations' grey levels: {found.reason}")
    on_edges = coarse_align(method, target, source, scale=scale, search_on=(edge_strength(target), edge_strength(source)),
                            unit_scale=False)
    if not on_edges.is_identity:
        return replace(on_edges, reason=f"on edge strength: {on_edges.reason} (on grey levels: {found.reason})")
    if not mutual_information:
        return found
    by_mi = align_by_mutual_information(target, source, scale=scale)
    if not by_mi.is_identity:
        return replace(by_mi, reason=f"{by_mi.reason} (on grey levels: {found.reason}; on edge strength: {on_edges.reason})")
    return _last_search_on_structure(found, target, source, scale, structure_search,
                                     f"{found.reason}; on edge strength: {on_edges.reason}; {by_mi.reason}",
                                     f"on grey levels: {found.reason}; on edge strength: {on_edges.reason}; {by_mi.reason}")


def _last_search_on_structure(found: CoarseResult, target: np.ndarray, source: np.ndarray, scale: float | None,
                              structure_search: bool, tried: str, tried_before: str) -> CoarseResult:
    """The last stage of :func:`coarse_alignment`, for raw images and representations alike, where every
    earlier search kept the identity (``found``): the search on local structure (off without
    ``structure_search``). ``tried``: what the earlier searches said, the reason when the identity stays;
    ``tried_before``: the same, put in brackets behind a structure winner's reason."""
    if not structure_search:
        return replace(found, reason=tried)
    by_structure = align_by_structure(target, source, scale=scale)
    if by_structure.is_identity:
        return replace(found, reason=f"{tried}; {by_structure.reason}")
    return replace(by_structure, reason=f"{by_structure.reason} ({tried_before})")


def default_coarse_sigma(kind: str | None) -> float:
    """The blurred first pass a representation gets when nobody chose one: :data:`COARSE_SIGMA_FOR_EDGES` for boundary maps, else off."""
    return COARSE_SIGMA_FOR_EDGES if kind == "edges" else 0.0


def trusts(before: float, after: float, margin: float) -> bool:
    """Whether a gradient agreement going from ``before`` (the start) to ``after`` (the elastic
    result) gains more than ``margin`` (a start that cannot be measured trusts any measurable result)."""
    if not np.isfinite(after):
        return False
    return not np.isfinite(before) or after > before + margin


def keep_or_undo(target: np.ndarray, moving: np.ndarray, reg: Registration, check: str = "alike",
                 reference: np.ndarray | None = None, peak_test: bool = True) -> tuple[ElasticTransform, ElasticTransform | None, np.ndarray, dict]:
    """Never worse than the start: keep the elastic result only if the two images agree better.

    Agreement is the normalised gradient field agreement of the target with the start and with
    the elastic result over the pixels both cover (:func:`styleunwarp.structure.gradient_agreement`:
    whether their edges run parallel, blind to polarity and grey mapping); the result must gain
    :data:`GRADIENT_MARGIN` for the ``check`` kind (:func:`check_for`), on raw images also
    :data:`GRADIENT_CHANCE_SDS` times its spread at large shifts. The NCC (its magnitude
    when both are negative: a contrast-inverted pair, ``facts["polarity"] = "inverted"``) is
    recorded beside it: it rises when bUnwarpJ fits mismatched details of two representations,
    or MI fits raw images of two modalities, while moving the image away from the truth, so it
    does not decide. When the result has an inverse, its direct and inverse maps must also
    agree within :data:`ELASTIC_MAX_INCONSISTENCY`. A gain below :data:`CLEAR_GAIN_FACTOR` times
    the margin must also sit on a sharp agreement peak (:data:`PEAK_DROP_MIN`, representations made
    alike only): where the two images agree too weakly to locate a result, the start is kept
    (``facts["refused"] = "flat peak"``). Returns ``(direct, inverse, moved, facts)``;
    when the elastic result is not trusted, the identity on the start replaces it.
    ``reference``: the target image the agreement and NCC are measured on, when it differs from
    the ``target`` registered to (:meth:`~styleunwarp.style.representations.Representation.reference_target`).
    ``peak_test`` False skips the peak test (benchmarks measure the rule without it).
    """
    if check not in CHECKS:
        raise ValueError(f"check must be one of {', '.join(CHECKS)}, got {check!r}")
    moved = warp_image(moving, reg.direct, target.shape)
    common = (moving != 0) & (moved != 0)
    ref = target if reference is None else np.asarray(reference, np.float32)
    if ref.shape != target.shape:
        raise ValueError(f"check reference has shape {ref.shape}, the target {target.shape}")
    before, after, spread = gradient_gain(moving, moved, ref, common, with_spread=check == "structure")
    ncc_before, ncc_after = ncc(moving, ref, common), ncc(moved, ref, common)
    polarity = "same"
    if np.isfinite(ncc_before) and np.isfinite(ncc_after) and ncc_before < 0 and ncc_after < 0:
        # contrast inverted between the two images (raw images of two detectors): better alignment
        # makes the correlation more negative; the record gives its magnitude
        ncc_before, ncc_after, polarity = -ncc_before, -ncc_after, "inverted"
    consistency = None if reg.inverse is None else transform_stats(reg.direct, target.shape, target.shape, reg.inverse).consistency_error
    margin = GRADIENT_MARGIN[check]
    if np.isfinite(spread):  # raw images: the gain must also exceed the measure's spread at large shifts
        margin = max(margin, GRADIENT_CHANCE_SDS * spread)
    facts = {"check": check, "check_on": "registered target" if reference is None else "reference target", "gradient_start": before, "gradient_elastic": after, "gradient_margin": margin,
             "ncc_start": ncc_before, "ncc_elastic": ncc_after, "polarity": polarity, "consistency_px": consistency}
    label = f"gradient agreement {before:.4f} -> {after:.4f}; {'|NCC|' if polarity == 'inverted' else 'NCC'} {ncc_before:.3f} -> {ncc_after:.3f}"
    consistent = consistency is None or consistency <= ELASTIC_MAX_INCONSISTENCY
    gained = consistent and trusts(before, after, margin)
    located = True
    peak_min = PEAK_DROP_MIN[check] if peak_test else None
    if gained and peak_min is not None and np.isfinite(before) and after - before < CLEAR_GAIN_FACTOR * margin:
        drop = gradient_peak_drop(moved, ref, common)
        facts.update(peak_drop=drop, peak_drop_min=peak_min)
        located = not np.isfinite(drop) or drop >= peak_min
        if located:
            label += f"; agreement peak drop {drop:.4f} at {PEAK_SHIFT_PX:g} px"
    if gained and located:
        facts.update(kept="elastic", reason=f"the elastic result agrees better with the target than its start ({label})")
        return reg.direct, reg.inverse, moved, facts
    n = reg.direct.intervals
    if not consistent:
        why, refused = f"its direct and inverse transforms disagree by {consistency:.2f} px (> {ELASTIC_MAX_INCONSISTENCY})", "inconsistent"
    elif not gained:
        why, refused = f"its edges do not agree better with the target's than its start's ({label}; needs a gradient gain above {margin:g})", "no gain"
    else:
        why, refused = (f"its edges gained only {after - before:.4f} ({label}; below the clear gain {CLEAR_GAIN_FACTOR * margin:g}) and the two "
                        f"images agree too weakly to locate a result: shifting it by {PEAK_SHIFT_PX:g} px lowers their agreement by "
                        f"{facts['peak_drop']:.4f} (< {peak_min:g})"), "flat peak"
    facts.update(kept="start", refused=refused, reason=f"elastic result not trusted: {why}; kept the start")
    inverse = None if reg.inverse is None else identity_elastic(reg.inverse.intervals, target.shape)
    return identity_elastic(n, target.shape), inverse, moving, facts


def second_pass(target: np.ndarray, source: np.ndarray, a: np.ndarray, reg: Registration,
                outcome: tuple[ElasticTransform, ElasticTransform | None, np.ndarray, dict], params: BUnwarpJParams, *,
                backend: str = "bunwarpj", coarse_sigma: float = 0.0, backend_options: dict | None = None,
                check: str = "alike", reference_target: np.ndarray | None = None, consensus_px: int = 0,
                peak_test: bool = True, from_start: bool = True,
                ) -> tuple[np.ndarray, Registration, tuple[ElasticTransform, ElasticTransform | None, np.ndarray, dict]]:
    """The elastic step again from the affine part of a first pass that :func:`.restart.warrants_restart`.

    ``a``: the coarse map (target pixel -> ``source`` pixel) the first pass started from, ``reg``
    that pass and ``outcome`` what :func:`keep_or_undo` made of it (the start kept: its third item
    is the source warped by ``a``).
    When the affine part is confirmed by structure (:func:`.restart.restart_start`), the backend
    runs again from ``a`` composed with it and :func:`keep_or_undo` judges that pass against its own
    start; otherwise the first pass's outcome stands (the coarse start). Returns ``(a, reg,
    keep_or_undo's tuple)`` for the start finally used; the facts carry ``restart``.
    """
    reference = target if reference_target is None else reference_target
    moving, elastic = outcome[2], outcome[3]
    first = {k: elastic[k] for k in ("gradient_start", "gradient_elastic", "consistency_px", "reason")}
    first["seconds"] = reg.seconds
    start, restart = restart_start(reference, moving, reg.direct)  # (``from_start``: see :func:`elastic_step`)
    restart["first_pass"] = first
    if start is None:
        facts = dict(elastic, restart=restart)
        facts["reason"] += f"; the affine part of that pass was not confirmed as a new start ({restart['reason']})"
        return a, reg, (*outcome[:3], facts)
    a = np.asarray(a, np.float64) @ np.vstack([start, [0.0, 0.0, 1.0]])
    moving_again = warp_source(source, a, target.shape)
    before, after, _ = gradient_gain(moving, moving_again, reference, (moving != 0) & (moving_again != 0))
    restart.update(gradient_start=before, gradient_restart=after)
    moving = moving_again
    reg = elastic_step(target, source, moving, a, params, backend=backend, coarse_sigma=coarse_sigma, backend_options=backend_options,
                       consensus_px=consensus_px, from_start=from_start)
    outcome = keep_or_undo(target, moving, reg, check, reference_target, peak_test=peak_test)
    gained = first["gradient_elastic"] - first["gradient_start"]
    outcome[3]["reason"] = (f"a first elastic pass found a start the coarse step had missed (its direct and inverse maps disagreed by "
                            f"{first['consistency_px']:.2f} px, its edges gained {gained:.4f}); its affine part was confirmed "
                            f"({restart['reason']}) and a second pass ran from it: {outcome[3]['reason']}")
    outcome[3]["restart"] = restart
    return a, reg, outcome


INITIAL_AFFINE_BACKENDS = ("bunwarpj",)
"""Backends that start from an affine map themselves (:func:`elastic_step`): bUnwarpJ's
``computeTransformationBatch`` overload with two initial ``AffineTransform``s."""


def elastic_step(target: np.ndarray, source: np.ndarray, moving: np.ndarray, a: np.ndarray, params: BUnwarpJParams, *, backend: str = "bunwarpj",
                 coarse_sigma: float = 0.0, backend_options: dict | None = None, consensus_px: int = 0,
                 from_start: bool = True) -> Registration:
    """The backend's elastic registration of ``source`` to ``target`` from the affine start ``a``
    (target pixel -> source pixel); ``moving`` is the source warped by ``a`` onto the target grid
    (:func:`.coarse.warp_source`), which the caller's checks read too.

    The result's transforms refer to that moving frame, as :func:`keep_or_undo` reads them. A backend of
    :data:`INITIAL_AFFINE_BACKENDS` registering in one pass (no blurred pass, no image subsampling:
    bUnwarpJ mis-scales the start then) registers the source as it is, started from ``a``, and its
    transforms are re-expressed in the moving frame (the direct one exactly, the inverse by one
    refit); with a consensus radius, the source is weighted by the target's support carried onto
    the source grid by ``a`` (:func:`.consensus.consensus_on_source`). Registering the pre-warped
    source instead puts its empty margin and its resampling into the similarity term: measured on a
    synthetic pair 2.5 deg and 7 px off, bUnwarpJ from the pre-warped source ended 1.45 px from the
    truth with direct and inverse maps 0.66 px apart, from the start 0.35 px and 0.20 px
    (docs/coarse.md, "The elastic step from the affine start"). Other backends, a blurred first
    pass and ``from_start=False`` (benchmarks compare the two) register the pre-warped source.
    """
    options = backend_options or {}
    if from_start and backend in INITIAL_AFFINE_BACKENDS and coarse_sigma <= 0 and params.img_subsamp_fact == 0:
        a = np.asarray(a, np.float64)
        fit_target, fit_source = consensus_on_source(target, source, moving, a, consensus_px)
        reg = register(fit_target, fit_source, params, backend=backend, initial_affine=a, **options)
        back = invert_affine(a)
        inverse = None if reg.inverse is None else inverse_through(reg.inverse, back, tuple(target.shape), tuple(source.shape[:2]))
        return replace(reg, direct=compose_direct(reg.direct, back), inverse=inverse, source_shape=tuple(target.shape))
    return register(*consensus(target, moving, consensus_px), params, backend=backend, coarse_sigma=coarse_sigma, **options)


def consensus_radius(consensus_px: int, fine: dict) -> int:
    """The consensus radius the elastic step uses: ``consensus_px`` where the fine affine step refined
    the start (``fine["kept"] == "refined"``), else 0 (whole maps).

    A consensus fit (:mod:`.consensus`) sees only partners within its radius, so it needs a start
    that close: a start the fine affine step refined, and its check accepted, is one; a coarse map
    kept as it is (nothing found, or the refinement refused) may be several pixels off, where
    the whole maps still reach the truth (docs/study-table.md, "Fitting what both maps show")."""
    return int(consensus_px) if consensus_px > 0 and fine.get("kept") == "refined" else 0


def fine_affine_start(target: np.ndarray, source: np.ndarray, start: np.ndarray, *, coarse: str = "auto",
                      check: str = "alike", raw: tuple[np.ndarray, np.ndarray] | None = None,
                      sigmas: tuple[float, ...] = FINE_AFFINE_SIGMAS) -> FineAffine | None:
    """The fine affine step (:mod:`.fine_affine`) from the coarse map ``start``, as the chain runs it:
    ``None`` with ``coarse="none"`` (the images as given are registered as given)."""
    if coarse == "none":
        return None
    return refine_fine_affine(target, source, start, check=check, raw=raw, sigmas=sigmas)


def _on_grids(raw: tuple[np.ndarray, np.ndarray] | None, source_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> bool:
    """Whether ``raw`` (``(target, source)`` as recorded) is given and lies on the representations' grids."""
    return raw is not None and np.shape(raw[0])[:2] == tuple(target_shape[:2]) and np.shape(raw[1])[:2] == tuple(source_shape[:2])


def _start_restored(source: np.ndarray, a: np.ndarray, direct: ElasticTransform, inverse: ElasticTransform | None,
                    target_shape: tuple[int, int], facts: dict) -> tuple[ElasticTransform, ElasticTransform | None, np.ndarray, dict]:
    """The outcome that keeps the start ``a``: identity elastic maps of ``direct``'s (and ``inverse``'s)
    grid, the source moved by ``a``, and ``facts`` (which say why)."""
    start_inverse = None if inverse is None else identity_elastic(inverse.intervals, target_shape)
    return identity_elastic(direct.intervals, target_shape), start_inverse, warp_source(source, a, target_shape), facts


def _checked_images(raw: tuple[np.ndarray, np.ndarray] | None, target: np.ndarray, source: np.ndarray,
                    ) -> tuple[np.ndarray, np.ndarray, str]:
    """``(target, source, on)``: the images a check of the elastic step reads: ``raw`` (the images as
    recorded) where it lies on the representations' grids, else the representations; ``on`` says which."""
    on_raw = _on_grids(raw, np.shape(source), np.shape(target))
    check_target, check_source = raw if on_raw else (target, source)
    return np.asarray(check_target, np.float32), np.asarray(check_source, np.float32), "raw images" if on_raw else "representations"


def _refused(source: np.ndarray, a: np.ndarray, direct: ElasticTransform, inverse: ElasticTransform | None,
             target_shape: tuple[int, int], facts: dict, refused: str, why: str,
             ) -> tuple[ElasticTransform, ElasticTransform | None, np.ndarray, dict]:
    """The start ``a`` restored in place of a kept elastic result, ``facts`` saying ``refused`` and ``why``."""
    facts.update(kept="start", refused=refused, reason=f"elastic result not trusted: {why}; kept the start "
                 f"(the representations alone favoured it: {facts.get('reason', '')})")
    return _start_restored(source, a, direct, inverse, target_shape, facts)


def raw_structure_drop(raw: tuple[np.ndarray, np.ndarray] | None, source_shape: tuple[int, ...], target_shape: tuple[int, int],
                       before: ElasticTransform, after: ElasticTransform) -> dict | None:
    """How much worse the images as recorded agree with ``after`` than with ``before`` (direct maps,
    target pixel -> source pixel): :func:`styleunwarp.structure.structure_drop` plus ``max_drop_sds``
    (:data:`ELASTIC_MIND_DROP_SDS`). ``raw``: ``(target, source)`` as recorded, on the grids of
    ``target_shape`` and ``source_shape``; None (nothing measured) without it or on other grids."""
    if not _on_grids(raw, source_shape, target_shape):
        return None
    raw_source = np.asarray(raw[1], np.float32)  # resampled once for each map, so that both are blurred alike
    drop = structure_drop(raw[0], warp_image(raw_source, before, target_shape), warp_image(raw_source, after, target_shape))
    return {**drop, "max_drop_sds": ELASTIC_MIND_DROP_SDS}


def drop_text(drop: dict) -> str:
    """``(start -> after, -N chance spreads; at most M)`` of a :func:`raw_structure_drop` result."""
    return (f"({drop['mind_start']:.4f} -> {drop['mind_after']:.4f}, -{drop['mind_drop_sds']:.1f} chance spreads; "
            f"at most {drop['max_drop_sds']:g})")


def raw_structure_check(source: np.ndarray, a: np.ndarray,
                        outcome: tuple[ElasticTransform, ElasticTransform | None, np.ndarray, dict],
                        target_shape: tuple[int, int], raw: tuple[np.ndarray, np.ndarray] | None,
                        ) -> tuple[ElasticTransform, ElasticTransform | None, np.ndarray, dict]:
    """Undo a kept elastic result of two representations that the raw images contradict
    (an ``outcome`` that kept the start is returned as it is).

    ``outcome``: what :func:`keep_or_undo` (or :func:`second_pass`) kept, its maps relative to
    the start ``a`` (target pixel -> ``source`` pixel). ``raw``: ``(target, source)`` as
    recorded, on the representations' grids; without it (or on other grids) nothing is checked
    (``raw_check.checked_on`` says so). The source moved by the start and by the elastic result is compared with the target
    by :func:`styleunwarp.structure.structure_drop`; a drop of more than
    :data:`ELASTIC_MIND_DROP_SDS` chance spreads restores the start. The facts gain
    ``raw_check`` (those numbers and ``checked_on``).
    """
    direct, inverse, moved, facts = outcome
    if facts.get("kept") != "elastic":  # the start is kept already
        return outcome
    drop = raw_structure_drop(raw, np.shape(source)[:2], target_shape, affine_elastic(a, direct.intervals, target_shape),
                              compose_direct(direct, a))
    if drop is None:
        return direct, inverse, moved, {**facts, "raw_check": {"checked_on": "not run: the images as recorded were not given"}}
    drop["checked_on"] = "raw images"
    facts = {**facts, "raw_check": drop}
    if not drop["mind_drop_sds"] > ELASTIC_MIND_DROP_SDS:  # NaN (not measurable) keeps the result
        return direct, inverse, moved, facts
    return _refused(source, a, direct, inverse, target_shape, facts, "raw structure",
                    f"the structure of the images as recorded agrees worse with it than with the start {drop_text(drop)}")


def chance_check(target: np.ndarray, source: np.ndarray, a: np.ndarray,
                 outcome: tuple[ElasticTransform, ElasticTransform | None, np.ndarray, dict],
                 raw: tuple[np.ndarray, np.ndarray] | None) -> tuple[ElasticTransform, ElasticTransform | None, np.ndarray, dict]:
    """Undo a kept elastic result whose source agrees with the target no better than chance by structure
    (:func:`styleunwarp.structure.mind_verdict`'s ``z`` below :data:`ELASTIC_MIN_STRUCTURE_Z`): a result
    nothing shows to overlap its target is no reason to leave the start (never worse than the start).

    ``outcome`` as in :func:`raw_structure_check`. The structure is read on ``raw`` (the images as
    recorded) where it is on the representations' grids, else on ``target`` and ``source``, over the
    target pixels the result maps inside the source. The facts gain ``structure_z``; where it is too
    low, ``refused = "at chance"``. A ``z`` that cannot be measured (too little overlap) keeps the result."""
    direct, inverse, moved, facts = outcome
    if facts.get("kept") != "elastic":
        return outcome
    shape = tuple(np.shape(target)[:2])
    check_target, check_source, on = _checked_images(raw, target, source)
    dense = compose_direct(direct, a).to_dense(shape)
    covered = inside_source(dense, check_source.shape[:2])
    z = significance(*agreement_and_chance(warp_image(check_source, dense, shape), check_target, covered))
    facts = {**facts, "structure_z": z, "structure_z_on": on}
    if not z < ELASTIC_MIN_STRUCTURE_Z:  # NaN (not measurable) keeps the result
        return direct, inverse, moved, facts
    return _refused(source, a, direct, inverse, shape, facts, "at chance",
                    f"its source agrees with the target no better than chance by structure "
                    f"({z:.1f} chance spreads above chance, needs {ELASTIC_MIN_STRUCTURE_Z:g})")


def far_move_check(target: np.ndarray, source: np.ndarray, a: np.ndarray,
                   outcome: tuple[ElasticTransform, ElasticTransform | None, np.ndarray, dict],
                   raw: tuple[np.ndarray, np.ndarray] | None) -> tuple[ElasticTransform, ElasticTransform | None, np.ndarray, dict]:
    """Undo a kept elastic result that moves the start's pixels by more than
    :data:`ELASTIC_MAX_MEAN_MOVE` of the larger side on average, unless the structure confirms it as
    it confirms a coarse winner refined locally (:func:`.coarse.confirm.confirm_placements`, with
    :data:`.coarse.confirm.LOCAL_GAIN_SDS`). Such a move is a search result, not a local correction.

    ``outcome`` as in :func:`raw_structure_check`. The structure is read on ``raw`` (the images as
    recorded) where it is on the representations' grids, else on ``target`` and ``source``. The facts
    gain ``mean_move_px``, and ``far_move`` where the move is beyond the bound."""
    from .coarse.confirm import LOCAL_GAIN_SDS, confirm_placements

    direct, inverse, moved, facts = outcome
    if facts.get("kept") != "elastic":
        return outcome
    shape = tuple(np.shape(target)[:2])
    start_map = affine_elastic(a, direct.intervals, shape)
    result_map = compose_direct(direct, a)
    mean_move = float(np.hypot(*(result_map.to_dense(shape) - start_map.to_dense(shape))).mean())
    limit = ELASTIC_MAX_MEAN_MOVE * max(shape)
    facts = {**facts, "mean_move_px": mean_move}
    if not mean_move > limit:
        return direct, inverse, moved, facts
    check_target, check_source, on = _checked_images(raw, target, source)
    ok, far = confirm_placements(check_target, warp_image(check_source, start_map, shape), warp_image(check_source, result_map, shape),
                                 LOCAL_GAIN_SDS)
    facts["far_move"] = {**far, "limit_px": limit, "checked_on": on}
    if ok:
        return direct, inverse, moved, facts
    return _refused(source, a, direct, inverse, shape, facts, "far move",
                    f"it moves the start by {mean_move:.1f} px on average (> {limit:.1f} px, beyond a local correction) "
                    f"and the structure does not confirm so far a move: {far['reason']}")


def register_representations(
    target: np.ndarray,
    source: np.ndarray,
    params: BUnwarpJParams,
    *,
    backend: str = "bunwarpj",
    backend_options: dict | None = None,
    coarse: str = "auto",
    coarse_sigma: float = 0.0,
    scale_known: bool = False,
    coarse_result: CoarseResult | None = None,
    check: str = "alike",
    reference_target: np.ndarray | None = None,
    consensus_px: int = 0,
    fine_affine: bool = True,
    raw: tuple[np.ndarray, np.ndarray] | None = None,
    fine_result: FineAffine | None = None,
    fine_sigmas: tuple[float, ...] = FINE_AFFINE_SIGMAS,
) -> ChainOutcome:
    """Register the source representation to the target representation as ``register`` does.

    ``coarse`` is the coarse-alignment method (:data:`.coarse.METHODS`); ``scale_known``
    (both pixel sizes known, the source already on the target's pixel size) fixes its scale
    at 1, else the scale is searched. ``coarse_sigma`` (px) is the backend's blurred first
    pass (0: off). ``backend_options`` are the backend's keyword arguments (e.g.
    ``fiji_dir``, ``similarity``). ``coarse_result``: the coarse alignment of these same two
    images, already computed (it does not depend on the backend: ``train --target auto``
    reuses it across the backends of one representation). ``check``: how the elastic result
    is verified (:func:`keep_or_undo`), ``"alike"`` for representations made to look alike,
    ``"structure"`` for raw images of two modalities (:func:`check_for`); ``reference_target``: the
    target image the coarse alignment and that check use, if not ``target`` (the
    representation's ``reference_target``: the boundary map as recorded, where the elastic step
    fits the denoised one). ``consensus_px``: the elastic step fits the two images each kept
    only where the other shows structure within this radius (:func:`.consensus.consensus`;
    0: as they are; the never-worse check reads them as they are). ``fine_affine``: refine the
    coarse map by a similarity (rotation, scale, shift) at full resolution before the elastic step
    (:mod:`.fine_affine`; not with ``coarse="none"``, nor on raw images of two modalities), checked
    on ``raw`` = ``(target, source)`` as recorded (grey, on the representations' grids) when given.
    ``fine_sigmas``: the blurs that step fits on (:func:`.fine_affine.default_fine_sigmas`).
    ``fine_result``: that step's outcome for these same images and ``coarse_result``, already
    computed (used as given, like ``coarse_result``). The result's transforms refer to ``source``'s grid.
    """
    t0 = time.perf_counter()
    coarse_target = target if reference_target is None else reference_target  # what the coarse and fine affine steps compare
    if coarse_result is None:
        coarse_result = coarse_alignment(coarse, coarse_target, source, scale_known=scale_known, check=check)
    a = coarse_result.chosen.matrix
    fine: dict = {}
    if fine_result is None and fine_affine:
        fine_result = fine_affine_start(coarse_target, source, a, coarse=coarse, check=check, raw=raw, sigmas=fine_sigmas)
    if fine_result is not None:
        a, fine = fine_result.matrix, fine_result.facts
    coarse_seconds = time.perf_counter() - t0
    start = a
    moving = warp_source(source, a, target.shape)
    radius = consensus_radius(consensus_px, fine)
    reg = elastic_step(target, source, moving, a, params, backend=backend, coarse_sigma=coarse_sigma, backend_options=backend_options, consensus_px=radius)
    direct, inverse, moved, elastic = keep_or_undo(target, moving, reg, check, reference_target, peak_test=radius == 0)
    if warrants_restart(elastic):
        a, reg, (direct, inverse, moved, elastic) = second_pass(target, source, a, reg, (direct, inverse, moved, elastic), params,
                                                                backend=backend, coarse_sigma=coarse_sigma, backend_options=backend_options,
                                                                check=check, reference_target=reference_target, consensus_px=radius,
                                                                peak_test=radius == 0)
    if check != "structure":
        direct, inverse, moved, elastic = raw_structure_check(source, a, (direct, inverse, moved, elastic), target.shape, raw)
    direct, inverse, moved, elastic = far_move_check(target, source, a, (direct, inverse, moved, elastic), raw)
    direct, inverse, moved, elastic = chance_check(target, source, a, (direct, inverse, moved, elastic), raw)
    elastic["consensus_px"] = radius
    if radius != consensus_px:
        elastic["consensus_note"] = (f"whole maps fitted instead of a {consensus_px} px consensus: the fine affine step did not "
                                     "refine the start, so it may be further off than the consensus radius")
    direct = compose_direct(direct, a)
    if inverse is not None:
        inverse = inverse_through(inverse, a, source.shape[:2], target.shape)
    return ChainOutcome(direct, inverse, moved, coarse_result, reg, elastic, coarse_seconds, fine, start)


__all__ = [
    "CHECKS",
    "CLEAR_GAIN_FACTOR",
    "COARSE_SIGMA_FOR_EDGES",
    "ELASTIC_MAX_INCONSISTENCY",
    "ELASTIC_MIND_DROP_SDS",
    "INITIAL_AFFINE_BACKENDS",
    "drop_text",
    "elastic_step",
    "raw_structure_drop",
    "GRADIENT_CHANCE_SDS",
    "GRADIENT_MARGIN",
    "PEAK_DROP_MIN",
    "ChainOutcome",
    "chance_check",
    "check_for",
    "coarse_alignment",
    "consensus_radius",
    "fine_affine_start",
    "trusts",
    "default_coarse_sigma",
    "keep_or_undo",
    "far_move_check",
    "raw_structure_check",
    "register_representations",
    "second_pass",
]
