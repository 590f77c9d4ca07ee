"""The chain once more with the style model adapted to the pair, and the two results averaged.

After :func:`.chain.register_representations` has registered a pair through a translation
model (``edges`` or ``cbs``), :func:`adapt_and_register` fine-tunes a copy of the model on the
source as that result registers it (:func:`styleunwarp.style.adapt.adapt_to_pair`), runs the same
chain again from the same start (the coarse and fine affine maps) on the adapted model's map,
and returns the mean of the two results. The two maps share the structure the registration
must find and differ in the model's errors on a look it was not trained on, so the two results'
errors are partly independent; their mean was the best of the combinations measured
(``benchmarks/bench_adapt.py``, docs/style.md "Test-time adaptation").

Each of the two results passed the chain's own checks (the keep-or-undo rule, the raw images'
structure); both are recorded in the facts. The mean is checked against the first result as the
elastic step is against its start, on a measure neither registration optimised: if the raw
images' structure agrees worse with it by more than :data:`.chain.ELASTIC_MIND_DROP_SDS` chance
spreads (:func:`styleunwarp.structure.structure_drop`), the first result is kept. Other
representations (raw images, shared codes) are returned unchanged, with the reason; so is a
result whose two maps, as registered, correlate below the coarse step's credible score
(:data:`.coarse.MIN_SCORE`, the fine affine step's bar too): a pair the model's map does not
show is no example to learn its look from (the steel model on CLEM EM -> FM: NCC 0.00-0.02, where
adapting changed no result and cost 86-449 s a pair; foreign steel renderings: 0.07-0.58).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..quality import ncc
from ..transform import ElasticTransform, warp_image
from .coarse import MIN_SCORE
from .chain import ELASTIC_MIND_DROP_SDS, ChainOutcome, drop_text, raw_structure_drop, register_representations
from .fine_affine import FineAffine


def mean_transform(a: ElasticTransform, b: ElasticTransform) -> ElasticTransform | None:
    """The transform whose map is the mean of the two maps (same B-spline grid: the mean of the
    coefficients, exactly, as the map is linear in them); None for different grids."""
    if a.cx.shape != b.cx.shape:
        return None
    return ElasticTransform((a.cx + b.cx) / 2.0, (a.cy + b.cy) / 2.0)


def default_adapt_steps(model, style: str, representation: str | None = None) -> int:
    """The fine-tuning steps that ``adapt_steps=None`` (the default) stands for.

    :data:`styleunwarp.style.adapt.ADAPT_STEPS` for a style model without a chain card (the shipped
    one: measured better on held-out steel renderings by renderers not ours, docs/style.md
    "Test-time adaptation"); 0 for raw images (``style="none"`` or ``representation="none"``, as a
    second opinion runs them) and for a model from ``train`` (its card's chain was chosen by
    registering held-out pairs without adaptation, so adapting would run a chain that was not measured).
    """
    from ..style.adapt import ADAPT_STEPS
    from ..style.chain import applied_to_unseen_looks

    return ADAPT_STEPS if applied_to_unseen_looks(model, style, representation) else 0


def adapt_and_register(first: ChainOutcome, representation, source: np.ndarray, target_raw: np.ndarray,
                       target: np.ndarray, styled: np.ndarray, params, *, steps: int, seed: int = 0,
                       **chain_kwargs) -> tuple[ChainOutcome, dict]:
    """``first`` combined with the chain run again on the map of the model adapted to this pair.

    Parameters
    ----------
    first
        The chain's outcome on ``(target, styled)``.
    representation
        The representation that made ``styled`` (adapted only if it is a translation model).
    source
        The source image as the representation takes it (grey or RGB), on the grid of ``styled``.
    target_raw
        The target image as recorded (grey), from which the model's target map is made.
    target, styled, params
        What ``first`` registered, and the backend parameters.
    steps, seed
        Fine-tuning steps and seed (:func:`styleunwarp.style.adapt.adapt_to_pair`).
    chain_kwargs
        The keyword arguments ``first`` was registered with (backend, options, check, consensus, raw, ...).

    Returns
    -------
    (ChainOutcome, dict)
        The combined outcome (``first`` where nothing was adapted) and the facts: ``combined``
        ("mean" or why not), the fine-tuning facts, and each result's keep-or-undo facts.
    """
    model = getattr(representation, "model", None)
    if model is None or not hasattr(model, "prepare_target"):
        return first, {"combined": "not adapted", "reason": f"only translation models adapt (this chain's representation: "
                                                             f"{getattr(representation, 'kind', '?')})"}
    from ..style.adapt import adapt_to_pair
    from ..style.representations.translation import Translation

    shared = ncc(first.moved, target, first.moved != 0)
    if not shared >= MIN_SCORE:  # NaN too: nothing correlates
        return first, {"combined": "not adapted", "correlation": shared,
                       "reason": f"the model's map and the target's correlate {shared:.3f} as the chain registered them (below "
                                 f"{MIN_SCORE:g}): they share too little structure to learn this look from"}
    try:
        adapted, facts = adapt_to_pair(model, source, model.prepare_target(target_raw), first.direct, steps=steps, seed=seed)
    except ValueError as exc:  # too little overlap to learn from: the first result stands
        return first, {"combined": "not adapted", "reason": str(exc)}
    styled2 = Translation(adapted).represent(source, target_raw)[0]
    start = first.start if first.start is not None else first.coarse.chosen.matrix
    second = register_representations(target, styled2, params, coarse_result=first.coarse,
                                      fine_result=FineAffine(start, dict(first.fine_affine)), **chain_kwargs)
    facts.update(first={k: first.elastic.get(k) for k in ("kept", "refused", "gradient_start", "gradient_elastic")},
                 adapted={k: second.elastic.get(k) for k in ("kept", "refused", "gradient_start", "gradient_elastic")})
    direct = mean_transform(first.direct, second.direct)
    if direct is None:
        facts["combined"] = "first only: the two results have different grids"
        return first, facts
    drop = raw_structure_drop(chain_kwargs.get("raw"), np.shape(styled)[:2], target.shape, first.direct, direct)
    if drop is not None:
        facts["raw_check"] = drop
        if drop["mind_drop_sds"] > ELASTIC_MIND_DROP_SDS:  # NaN (not measurable) keeps the mean
            facts["combined"] = f"first only: the structure of the images as recorded agrees worse with the mean {drop_text(drop)}"
            return first, facts
    inverse = None
    if first.inverse is not None and second.inverse is not None:
        inverse = mean_transform(first.inverse, second.inverse)
    facts["combined"] = "mean"
    moved = warp_image(styled, direct, target.shape)
    return replace(first, direct=direct, inverse=inverse, moved=moved), facts


__all__ = ["adapt_and_register", "default_adapt_steps", "mean_transform"]
