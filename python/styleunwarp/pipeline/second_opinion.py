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
structure duel against it (:func:`styleunwarp.style.tournament.duel`); otherwise the model's
result stays. Either way ``metrics.json`` records under ``second_opinion`` what was tried and why
the result kept is kept, and the console says so.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..io import atomic_path, atomic_write_text
from ..residual import describe, misaligned
from ..style.chain import NO_CARD, TIED, Chain, load_chain
from ..style.tournament import duel
from .evidence import EVIDENCE_KEY
from .pair import PairResult, PathLikeStr, register_pair

log = logging.getLogger(__name__)

SUBFOLDER = "second_opinion"
RESULT_FILES = ("styled.tif", "target.tif", "direct_transf.txt", "inverse_transf.txt", "registered.tif", "overlay.png")
"""What a registration folder holds besides ``metrics.json`` (written last)."""


def _summary(chain: str, metrics: dict) -> dict:
    ev = metrics.get(EVIDENCE_KEY) or {}
    return {"chain": chain, "mind": ev.get("mind"), "z": ev.get("z"), "aligned": ev.get("aligned"), "tier": metrics.get("tier")}


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


def every_pair_reason(chain: Chain) -> str:
    """Why ``chain`` runs on every pair (its ``every_pair``), in words for the console and ``metrics.json``."""
    if chain.every_pair == NO_CARD:
        return f"the style model has no chain card (it was never measured against {chain.label} on held-out pairs)"
    if chain.every_pair == TIED:
        return f"the held-out cases could not tell the model's chain from {chain.label} (as many within 5 and 1.5 px)"
    return f"{chain.label} runs on every pair ({chain.every_pair})"


def register_pair_verified(lom: PathLikeStr, cbs: PathLikeStr, out_dir: PathLikeStr, *, alternatives: Sequence[Chain] = (),
                           **kwargs) -> PairResult:
    """:func:`.pair.register_pair` with the model's chain (``kwargs``), then, when its result is
    not structure evidence of alignment, the ``alternatives`` (chains of the same model) until one
    is (the first one always when its ``every_pair`` gives a reason); the result whose source agrees best
    with the target by structure is kept in ``out_dir``.
    ``kwargs["backend"]``/``backend_options``/``coarse_sigma`` are the model's chain's; each
    alternative brings its own, and its representation from the model's card."""
    out = Path(out_dir)
    first = register_pair(lom, cbs, out, **kwargs)
    aligned = bool((first.metrics.get(EVIDENCE_KEY) or {}).get("aligned"))
    always = alternatives[0] if alternatives and alternatives[0].every_pair else None
    if not alternatives or (aligned and always is None):
        return first
    primary_label = _model_chain_label(kwargs, first.metrics)
    tried = [_summary(primary_label + " (the model's chain)", first.metrics)]
    best, best_label = first, None
    for i, chain in enumerate(alternatives):
        if i > 0 and (best.metrics.get(EVIDENCE_KEY) or {}).get("aligned"):
            break
        kw = dict(kwargs, backend=chain.backend, backend_options=dict(chain.backend_options), coarse_sigma=chain.coarse_sigma,
                  representation=chain.representation)
        try:
            res = register_pair(lom, cbs, out / SUBFOLDER / chain.slug, **kw)
        except Exception as exc:  # noqa: BLE001 - an alternative that cannot run leaves the model's result
            tried.append({"chain": chain.label, "error": f"{type(exc).__name__}: {exc}"})
            log.warning("%s: second opinion %s failed: %s", out, chain.label, exc)
            continue
        tried.append(_summary(chain.label, res.metrics))
        if duel(res.metrics.get(EVIDENCE_KEY), best.metrics.get(EVIDENCE_KEY)) > 0:
            best, best_label = res, chain.label
    if best_label is None:
        why = "kept the model's chain: no alternative agrees better with the target by structure"
    else:
        why = f"replaced by {best_label}: its source agrees better with the target by structure (MIND)"
    ev = first.metrics.get(EVIDENCE_KEY) or {}
    not_shown = "the model chain's result is not structure evidence of alignment"
    if misaligned(ev):
        not_shown += f" ({describe(ev)})"
    trigger = every_pair_reason(always) + ": the pair's structure decides" if aligned and always is not None else not_shown
    record = {"reason": why, "kept": best_label or "model chain", "tried": tried, "trigger": trigger}
    metrics = dict(best.metrics, second_opinion=record)
    if best is first:
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=float) + "\n")
    else:
        _adopt(best.out_dir, out, metrics)
    return PairResult(out, best.registration, best.registered, best.styled, metrics)


__all__ = ["RESULT_FILES", "SUBFOLDER", "every_pair_reason", "register_pair_verified"]
