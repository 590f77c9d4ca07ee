"""``train PAIRS --unaligned``: learn a registration chain from pairs nobody aligned.

Self-training, every step on disk under the model folder ``M`` (so a rerun resumes):

* round 0: every pair is registered (coarse + elastic, :func:`~styleunwarp.pipeline.pair.register_pair`)
  by training-free chains — raw images through elastix MI and native MIND, and the shipped
  style model — into ``M/registrations/<chain>/<pair>``;
* the trust rule (:mod:`.trust`) keeps the pairs two independent chains agree on; the
  original source of each trusted pair, resampled onto its target grid by the found
  transform (colour kept), and the target make an aligned pair in ``M/rounds/NN/pairs``;
* round k: ``train --target auto`` (:func:`.auto.train_auto`) on round k-1's pairs writes
  ``M/rounds/NN/model``; every pair is registered with that chain (as ``register --model``
  does); the trust rule runs again with the new chain beside the training-free ones;
* repeat while the trusted set grows, rounds and time allow (``max_minutes`` covers
  everything, registrations included).

The delivered chain (``M/chain.json``, section ``unaligned``) is the candidate — a learned
round's model or a starting chain — ranked first by a round robin on the structure evidence of
its own registrations (:mod:`.tournament`), then by agreement with the verified transforms;
when no registration is evidence and nothing was trusted, the training-free chain the grader
liked best, with a warning in the card.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
import statistics
import time
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError, StyleunwarpError
from ..quality import TIERS
from .chain import ALTERNATIVES, Chain, load_chain
from .trust import AGREE_PX, Outcome, Verdict, verdict

log = logging.getLogger(__name__)

TIER_ORDER = tuple(reversed(TIERS))
"""The grader's tiers, best first."""
MIN_TRAIN_MINUTES = 1.0
"""A round is not started with less training time than this."""
MIN_CROP = 64
"""A trusted pair whose valid overlap is smaller than this (px a side) is not used for training."""


@dataclass
class UnalignedConfig:
    """How ``train --unaligned`` spends its time."""

    max_minutes: float = 30.0
    seed: int = 0
    rule: str = "agree"
    agree_px: float = AGREE_PX
    max_rounds: int = 4
    min_trusted: int = 1  # one verified pair already lets train_auto choose among chains by TRE on its deformations
    channels: int | None = None
    threads: int | None = 1
    lom_pattern: str | None = None
    cbs_pattern: str | None = None
    kinds: tuple[str, ...] | None = None  # train_auto's candidate kinds (None: its default)
    starting: tuple[str, ...] | None = None  # labels of the starting chains to use (None: all of starting_chains())
    cases_per_pair: int = 2  # train_auto's held-out cases per held-out pair
    min_train_minutes: float = MIN_TRAIN_MINUTES


@dataclass(frozen=True)
class ChainRun:
    """How one chain registers a pair: ``register_pair``'s style/model and the chain's backend."""

    chain: Chain
    style: str  # "none" or "model"
    model: Path | None
    slug: str  # folder name of its registrations

    @property
    def label(self) -> str:
        return self.chain.label


def starting_chains() -> list[ChainRun]:
    """Round 0's training-free chains, in the order they are tried on a pair (a pair two of them
    verify is not registered by the rest): raw images through native MIND (native NMI where
    MIND is absent), the shipped style model through native, raw images through elastix MI,
    the shipped model through elastix (where raw similarities fail, as on steel LOM -> CBS, the
    two shipped chains can still verify each other when the grader calls both decent)."""
    from .auto import _shipped_model, training_free_chains

    free = training_free_chains()
    if any(c.backend_options.get("similarity") == "mind" for c in free):
        free = [c for c in free if c.backend_options.get("similarity") != "nmi"]
    free.sort(key=lambda c: c.backend != "native")
    raw = [ChainRun(c, "none", None, c.slug) for c in free]
    shipped: list[ChainRun] = []
    if _shipped_model() is not None:
        backends = ["native"] + (["elastix"] if any(c.backend == "elastix" for c in free) else [])
        shipped = [ChainRun(Chain("shipped", b), "model", None, Chain("shipped", b).slug) for b in backends]
    # alternate representations: the first two chains can already verify each other strongly
    runs = [r for pair in zip(raw, shipped) for r in pair] + raw[len(shipped):] + shipped[len(raw):]
    return runs


def collect_pairs(pairs: str | PathLike[str], cfg: UnalignedConfig):
    """The pairs as ``batch`` takes them (folder of NAME_LOM/NAME_CBS, regexes, or a CSV manifest)
    and the files that could not be paired (named, skipped)."""
    from ..pipeline.batch import discover
    from ..pipeline.pairing import DEFAULT_CBS_PATTERN, DEFAULT_LOM_PATTERN

    p = Path(pairs)
    if p.is_file() and p.suffix.lower() != ".csv":
        raise InputError(p, "PAIRS must be a folder of NAME_LOM/NAME_CBS images or a CSV manifest (lom,cbs)")
    specs, unpaired = discover(p, lom_pattern=cfg.lom_pattern or DEFAULT_LOM_PATTERN,
                               cbs_pattern=cfg.cbs_pattern or DEFAULT_CBS_PATTERN)
    problems = [f"{u.path}: {u.reason}; skipped" for u in unpaired]
    if not specs and not p.is_file():  # an empty manifest is returned as it is
        raise InputError(p, "no LOM/CBS pair found" + (f" ({len(problems)} unpaired files)" if problems else ""))
    return specs, problems


@dataclass
class Progress:
    """Registrations done and left, with an ETA from the measured time per registration."""

    say: Callable[[str], None]
    seconds: list[float] = field(default_factory=list)
    left: int = 0  # registrations left in this round
    deadline: float | None = None  # time.monotonic() at which the whole run stops (--max-minutes)

    def eta(self) -> str:
        if not self.seconds:
            return "ETA unknown"
        round_min = statistics.median(self.seconds) * self.left / 60.0
        text = f"{self.left} left in this round, ETA {round_min:.1f} min"
        if self.deadline is not None:  # the run's end is bounded by its budget, whatever the rounds do
            left_min = max(0.0, (self.deadline - time.monotonic()) / 60.0)
            ends = _dt.datetime.now() + _dt.timedelta(minutes=left_min)
            text += f"; the run ends by {ends:%H:%M} at the latest ({left_min:.0f} min of budget left)"
        return text


class OutOfTime(Exception):
    """The deadline came before a registration could start."""


def register_one(run: ChainRun, spec, folder: Path, deadline: float, bad: dict[str, str], progress: Progress,
                 tag: str) -> Outcome | None:
    """Register one pair with ``run`` into ``folder/<pair>`` (a finished one is read back, not redone).

    A pair whose files cannot be read is recorded in ``bad`` (named, skipped from then on); a
    failed registration gives ``None``. Raises :class:`OutOfTime` after ``deadline``.
    """
    from ..pipeline.pair import register_pair

    progress.left = max(0, progress.left - 1)
    d = folder / spec.name
    o = Outcome.read(run.label, run.chain.representation, run.chain.backend, d)
    if o is not None:
        return o
    if time.monotonic() > deadline:
        raise OutOfTime
    t0 = time.monotonic()
    try:
        register_pair(spec.lom, spec.cbs, d, model=run.model, style=run.style, backend=run.chain.backend,
                      backend_options=dict(run.chain.backend_options), coarse_sigma=run.chain.coarse_sigma,
                      lom_pixel_size=spec.lom_pixel_size, cbs_pixel_size=spec.cbs_pixel_size,
                      adapt_steps=0)  # a round registers with a model in training: adapting it per pair would cost the rounds their time
    except InputError as exc:
        bad[spec.name] = str(exc)
        progress.say(f"skipped pair {spec.name}: {exc}")
        return None
    except (StyleunwarpError, ValueError, RuntimeError) as exc:
        progress.say(f"  {tag} {run.label} on {spec.name} failed: {exc}")
        return None
    progress.seconds.append(time.monotonic() - t0)
    o = Outcome.read(run.label, run.chain.representation, run.chain.backend, d)
    if o is not None:
        progress.say(f"  {tag} {spec.name:<16} {run.label:<30} {o.tier:<6} NCC "
                     f"{o.ncc if o.ncc is None else round(o.ncc, 3)}  ({progress.eta()})")
    return o


def _valid_box(outcome: Outcome) -> tuple[slice, slice] | None:
    """The rows and columns of the target grid the found map fills from the source (a box)."""
    from ..transform import to_dense
    from ..transform.warp import inside_source

    inside = inside_source(to_dense(outcome.direct, outcome.target_shape), outcome.source_shape)
    cols = np.flatnonzero(inside.mean(axis=0) > 0.5)
    rows = np.flatnonzero(inside[:, cols].mean(axis=1) > 0.98) if cols.size else cols
    cols = np.flatnonzero(inside[rows].mean(axis=0) > 0.98) if rows.size else rows
    if rows.size < MIN_CROP or cols.size < MIN_CROP:
        return None
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return box if inside[box].mean() > 0.98 else None


def write_pseudo_pair(spec, outcome: Outcome, pairs_dir: Path) -> bool:
    """The original source resampled onto the target grid (``registered.tif`` of the chosen
    registration, colour kept) and the target, cropped to what the source covers, as an aligned
    training pair ``pairs_dir/{lom,cbs}/NAME.tif``. ``False`` when the overlap is too small."""
    from ..io import read_image, write_tiff

    box = _valid_box(outcome)
    if box is None:
        return False
    reg = read_image(outcome.folder / "registered.tif").data
    cbs = read_image(spec.cbs)
    if reg.shape[:2] != cbs.data.shape[:2]:
        return False
    for sub, img, px in (("lom", reg[box], cbs.pixel_size), ("cbs", cbs.data[box], cbs.pixel_size)):
        (pairs_dir / sub).mkdir(parents=True, exist_ok=True)
        write_tiff(pairs_dir / sub / f"{spec.name}.tif", img, pixel_size=px)
    return True


def _summary(outcomes_per_pair: dict[str, list[Outcome]]) -> tuple[float | None, dict[str, int]]:
    """Median NCC and tier counts of each pair's best-graded outcome."""
    best = []
    for outs in outcomes_per_pair.values():
        if outs:
            best.append(min(outs, key=lambda o: (TIER_ORDER.index(o.tier), -(o.ncc or -1.0))))
    nccs = [o.ncc for o in best if o.ncc is not None]
    tiers = {t: sum(o.tier == t for o in best) for t in TIER_ORDER}
    return (round(float(statistics.median(nccs)), 3) if nccs else None), tiers


def run_round(k: int, runs: list[ChainRun], specs, root: Path, base: dict[str, list[Outcome]], cfg: UnalignedConfig,
              deadline: float, bad: dict[str, str], progress: Progress, chain_label: str) -> dict | None:
    """Register every pair with ``runs``, apply the trust rule (with ``base``'s outcomes beside
    them), write the trusted pairs and ``round.json``. ``None`` when the time ran out first."""
    from ..io import atomic_write_text

    rdir = root / "rounds" / f"{k:02d}"
    t0 = time.monotonic()
    new: dict[str, list[Outcome]] = {s.name: [] for s in specs}
    todo = [s for s in specs if s.name not in bad]
    progress.left = len(runs) * len(todo)
    try:
        for spec in todo:  # pair by pair: once two chains verify a pair, the others are not needed
            for j, run in enumerate(runs):
                folder = root / "registrations" / run.slug if run.model is None else rdir / "registrations"
                o = register_one(run, spec, folder, deadline, bad, progress, f"round {k}")
                if spec.name in bad:
                    progress.left = max(0, progress.left - (len(runs) - j - 1))
                    break
                if o is not None:
                    new[spec.name].append(o)
                if j < len(runs) - 1 and len(new[spec.name]) + len(base.get(spec.name, [])) >= 2 and \
                        verdict(new[spec.name] + base.get(spec.name, []), cfg.rule, cfg.agree_px).trusted:
                    progress.left = max(0, progress.left - (len(runs) - j - 1))
                    break
    except OutOfTime:
        return None
    pairs_dir = rdir / "pairs"
    if pairs_dir.exists():
        shutil.rmtree(pairs_dir)
    verdicts: dict[str, dict] = {}
    trusted: list[str] = []
    for spec in specs:
        if spec.name in bad:
            continue
        v: Verdict = verdict(new[spec.name] + base.get(spec.name, []), cfg.rule, cfg.agree_px)
        entry = {"trusted": v.trusted, "reason": v.reason, "chain": None if v.chosen is None else v.chosen.chain,
                 "agreeing": list(v.agreeing),
                 "disagreement_px": None if v.disagreement_px is None else round(v.disagreement_px, 3),
                 "tiers": {o.chain: o.tier for o in new[spec.name] + base.get(spec.name, [])}}
        if v.trusted and v.chosen is not None:
            if write_pseudo_pair(spec, v.chosen, pairs_dir):
                trusted.append(spec.name)
                entry["registration"] = str(v.chosen.folder.relative_to(root))
            else:
                entry.update(trusted=False, reason=v.reason + ", but the overlap is too small to train on")
        verdicts[spec.name] = entry
    median_ncc, tiers = _summary(new)
    row = {"round": k, "chain": chain_label, "pairs": len(verdicts), "trusted": len(trusted),
           "median_ncc": median_ncc, "tiers": tiers, "minutes": round((time.monotonic() - t0) / 60.0, 2)}
    state = {"row": row, "trusted": trusted, "verdicts": verdicts, "chains": [r.label for r in runs],
             "slugs": [r.slug for r in runs], "bad": dict(bad)}
    rdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(rdir / "round.json", json.dumps(state, indent=2, default=float) + "\n")
    return state


def _carry_round(root: Path, k: int, last: dict, chain_label: str) -> dict:
    """Round ``k`` when every pair was already trusted: its model, trained on all of them, is
    not used to re-register (the trusted set cannot grow); the verdicts are round k-1's."""
    from ..io import atomic_write_text

    row = {**last["row"], "round": k, "chain": chain_label, "minutes": 0.0, "re_registered": False}
    state = {**last, "row": row}
    rdir = root / "rounds" / f"{k:02d}"
    rdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(rdir / "round.json", json.dumps(state, indent=2, default=float) + "\n")
    return state


def format_row(row: dict) -> str:
    tiers = " ".join(f"{t} {row['tiers'].get(t, 0)}" for t in TIER_ORDER)
    return (f"{row['round']:>5}  {row['trusted']:>3}/{row['pairs']:<3}  {str(row['median_ncc']):>6}  "
            f"{tiers:<28}  {row['chain']}")


TABLE_HEADER = "round  trusted  med NCC  grader tiers (good decent bad poor)  chain"


def _read_round(root: Path, k: int) -> dict | None:
    p = root / "rounds" / f"{k:02d}" / "round.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _outcomes(root: Path, state: dict, runs: list[ChainRun]) -> dict[str, list[Outcome]]:
    """Round 0's outcomes read back from its registration folders."""
    per: dict[str, list[Outcome]] = {}
    for run in runs:
        folder = root / "registrations" / run.slug
        for d in sorted(folder.glob("*")) if folder.is_dir() else []:
            o = Outcome.read(run.label, run.chain.representation, run.chain.backend, d)
            if o is not None:
                per.setdefault(d.name, []).append(o)
    return per


def best_training_free(runs: list[ChainRun], base: dict[str, list[Outcome]], state0: dict | None) -> ChainRun:
    """The starting chain to deliver when no model was learned: the one in most of the agreements
    that made pairs trusted, then with the most good/decent grades, then the highest median NCC."""
    chosen = [c for v in (state0 or {}).get("verdicts", {}).values() if v.get("trusted") for c in v.get("agreeing", [])]

    def score(run: ChainRun):
        outs = [o for os_ in base.values() for o in os_ if o.chain == run.label]
        nccs = [o.ncc for o in outs if o.ncc is not None]
        return (chosen.count(run.label), sum(o.tier in ("good", "decent") for o in outs),
                statistics.median(nccs) if nccs else -1.0)

    return max(runs, key=score)


def _starting_section(out: Path, representation: str) -> dict:
    """The card section of a starting chain's representation in ``out`` (the shipped model copied beside it)."""
    from .representations.raw import Raw

    if representation == "shipped":
        from .auto import _shipped_model

        rep = _shipped_model()
        shutil.copytree(Path(rep.model.source).parent, out / "shipped", dirs_exist_ok=True)
        rep.folder = "shipped"
        return rep.save(out)
    return Raw().save(out)


def _write_training_free_card(out: Path, run: ChainRun) -> None:
    """``out/chain.json`` for a starting chain (the shipped model copied beside it)."""
    from .chain import write_chain_card

    write_chain_card(out, run.chain, _starting_section(out, run.chain.representation))


def _offer_alternatives(out: Path, card: dict, chains: list[Chain]) -> None:
    """Write ``chains`` into ``card`` as its ``alternatives`` (a second opinion for ``register``,
    :mod:`styleunwarp.pipeline.second_opinion`), with the representations they need."""
    sections = dict(card.get("representations") or {})
    for c in chains:
        if c.representation not in sections:
            sections[c.representation] = _starting_section(out, c.representation)
    card["representations"] = sections
    card["alternatives"] = [c.as_dict() for c in chains]


def _support(outcomes: dict[str, Outcome], verified: dict[str, Outcome], agree_px: float) -> int:
    """On how many verified pairs a chain's own map agrees with the verified transform."""
    from .trust import disagreement_px

    return sum(1 for n, v in verified.items() if n in outcomes and disagreement_px(outcomes[n], v) <= agree_px)


def _choose_delivery(root: Path, states: list[dict], runs0: list[ChainRun], base: dict[str, list[Outcome]],
                     cfg: UnalignedConfig, k: int, stop: str):
    """``(model folder or None, starting chain or None, delivered, warning)``.

    Every candidate — each learned round's model and each starting chain — is ranked by a round
    robin on the structure evidence of its own registrations (:mod:`.tournament`: on the pairs
    two candidates both registered, whose raw source agrees better with the raw target), then by
    its *support*: on how many trusted pairs (of the round that trusted most) its own
    registration agrees with the verified transform within ``agree_px``. A model trained when
    every pair was already trusted (not re-registered) counts as its chain's starting twin when
    it has one, else has no registrations of its own and the support of everything it was
    trained on. Ties go to the later learned model, then to the starting chains in their order.
    """
    from .chain import CHAIN_NAME
    from .tournament import any_evidence, tournament

    verified: dict[str, Outcome] = {}
    if states:
        best_state = max(states, key=lambda s: (s["row"]["trusted"], s["row"]["round"]))
        for name, v in best_state["verdicts"].items():
            if v.get("trusted") and v.get("registration"):
                o = Outcome.read(v.get("chain") or "", "", "", root / v["registration"])
                if o is not None:
                    verified[name] = o
    start = {r.label: {n: o for n, outs in base.items() for o in outs if o.chain == r.label} for r in runs0}
    candidates = []  # (label, order, kind, payload, own registrations, support)
    for s in states:
        kk = s["row"]["round"]
        model = root / "rounds" / f"{kk:02d}" / "model"
        if kk < 1 or not (model / CHAIN_NAME).is_file():
            continue
        chain = load_chain(model)
        twin = next((r.label for r in runs0 if r.chain == chain), None)
        if twin is not None:
            outs, sup = start[twin], None
        elif s["row"].get("re_registered") is False:
            outs, sup = {}, len(verified)
        else:
            outs, sup = {}, None
            for d in sorted((model.parent / "registrations").glob("*")):
                o = Outcome.read(chain.label, chain.representation, chain.backend, d)
                if o is not None:
                    outs[d.name] = o
        candidates.append((f"{chain.label} (round {kk} model)", 1000 + kk, "model", model, outs, sup))
    for i, r in enumerate(runs0):
        candidates.append((r.label, -i, "start", r, start[r.label], None))
    if not candidates:
        raise StyleunwarpError("train --unaligned: no starting chain is available")
    support = {c[0]: c[5] if c[5] is not None else _support(c[4], verified, cfg.agree_px) for c in candidates}
    results = {c[0]: c[4] for c in candidates}
    by_structure = any_evidence(results)
    table = tournament(results) if by_structure else {}

    def rank(c) -> tuple:
        return (*(table[c[0]].key() if by_structure else (0, 0)), support[c[0]], c[1])

    ranked = sorted(candidates, key=rank, reverse=True)
    label, _, kind, payload, _, _ = ranked[0]
    # second opinions for register: the next starting chains by rank that gave structure evidence somewhere
    offered = [c[3].label for c in ranked[1:] if c[2] == "start" and any_evidence({c[0]: c[4]})][:ALTERNATIVES]
    if by_structure:
        st = table[label]
        why = (f"its own registrations agree better with the targets by structure (raw source vs raw target, "
               f"MIND) than {st.beaten} of the other {len(candidates) - 1} candidates' on the pairs both registered "
               f"(duels won minus lost: {st.margin}); support {support[label]} of {len(verified)} verified transforms")
    else:
        why = (f"no registration is structure evidence; its own registrations agree with {support[label]} of the "
               f"{len(verified)} verified transforms (within {cfg.agree_px:g} px), the most of every candidate")
    scores = {c[0]: {"beaten": table[c[0]].beaten if by_structure else None,
                     "margin": table[c[0]].margin if by_structure else None,
                     "pairs": len(c[4]), "support": support[c[0]]} for c in candidates}
    partial = root / "rounds" / f"{k:02d}" / "model"
    if not verified and (partial / CHAIN_NAME).is_file():
        return partial, None, {"round": k, "chain": load_chain(partial).label, "why": "the only model trained; "
                                "its re-registration of the pairs did not finish within the budget", "candidates": scores}, None
    if not verified and not by_structure:
        run = best_training_free(runs0, base, states[0] if states else None)
        warning = (f"nothing was verified ({stop}): the training-free chain graded best was written ({run.label})")
        return None, run, {"round": 0, "chain": run.label, "why": "no verified pair (see warning)", "candidates": scores}, warning
    warning = None if verified else (f"no pair was verified ({stop}): delivered {label}, ranked first by structure "
                                     "evidence alone")
    if kind == "model":
        return payload, None, {"round": int(payload.parent.name), "chain": label, "why": why, "candidates": scores,
                               "alternatives": offered}, warning
    return None, payload, {"round": 0, "chain": label, "why": why, "candidates": scores, "alternatives": offered}, warning


def train_unaligned(pairs: str | PathLike[str], out: str | PathLike[str], config: UnalignedConfig | None = None, *,
                    echo: Callable[[str], None] | None = None) -> dict:
    """Learn a chain from unaligned ``pairs`` into ``out`` (``out/chain.json`` with section ``unaligned``).

    Returns the card written.
    """
    from ..threads import torch_threads

    cfg = config or UnalignedConfig()
    with torch_threads(cfg.threads or None):
        return _train_unaligned(Path(pairs), Path(out), cfg, echo or (lambda s: log.info(s)))


def _train_unaligned(pairs: Path, root: Path, cfg: UnalignedConfig, say: Callable[[str], None]) -> dict:
    from ..io import atomic_write_text
    from .auto import AutoConfig, train_auto
    from .chain import CHAIN_NAME, read_card

    t_start = time.monotonic()
    deadline = t_start + 60.0 * cfg.max_minutes
    root.mkdir(parents=True, exist_ok=True)
    specs, problems = collect_pairs(pairs, cfg)
    for msg in problems:
        say(f"skipped: {msg}")
    bad: dict[str, str] = {}
    runs0 = [r for r in starting_chains() if cfg.starting is None or r.label in cfg.starting]
    if not runs0:
        raise InputError(None, f"none of the starting chains {cfg.starting} is available here")
    progress = Progress(say, deadline=deadline)
    say(f"unaligned: {len(specs)} pairs from {pairs}; budget {cfg.max_minutes:g} min; starting chains: "
        + ", ".join(r.label for r in runs0))

    states: list[dict] = []
    stop = ""
    state0 = _read_round(root, 0)
    if state0 is not None:
        say("round 0: finished before, read back")
    else:
        state0 = run_round(0, runs0, specs, root, {}, cfg, deadline, bad, progress,
                           "training-free: " + ", ".join(r.label for r in runs0))
    base = _outcomes(root, state0, runs0)  # also what a round 0 cut short by the budget registered
    if state0 is None:
        stop = "the time budget ran out during round 0"
    else:
        states.append(state0)
        bad.update(state0.get("bad", {}))
        for name, why in state0.get("bad", {}).items():
            say(f"skipped pair {name}: {why}")
        say(f"round 0: {state0['row']['trusted']}/{state0['row']['pairs']} pairs trusted")
    secs = progress.seconds or [o.seconds for os_ in base.values() for o in os_ if o.seconds]
    per_reg = statistics.median(secs) if secs else 20.0

    k = 1
    while not stop:
        last = states[-1]
        if last["row"]["trusted"] < cfg.min_trusted:
            stop = (f"no trusted pair after round {k - 1}: nothing to learn from" if cfg.min_trusted == 1 else
                    f"fewer than {cfg.min_trusted} trusted pairs after round {k - 1}: nothing to learn from")
            break
        if k >= 2 and last["row"]["trusted"] <= states[-2]["row"]["trusted"]:
            stop = f"the trusted set stopped growing in round {k - 1}"
            break
        if k > cfg.max_rounds:
            stop = f"{cfg.max_rounds} rounds done"
            break
        rdir = root / "rounds" / f"{k:02d}"
        done = _read_round(root, k)
        if done is not None:
            say(f"round {k}: finished before, read back")
            states.append(done)
            say(f"round {k}: {done['row']['trusted']}/{done['row']['pairs']} pairs trusted")
            k += 1
            continue
        model = rdir / "model"
        usable = len(specs) - len(bad)
        everything = last["row"]["trusted"] >= usable  # the trusted set cannot grow: no re-registration needed
        if not (model / CHAIN_NAME).is_file():
            left = deadline - time.monotonic()
            reserve = 0.0 if everything else 1.3 * per_reg * usable
            train_min = (left - reserve - 20.0) / 60.0
            if train_min < cfg.min_train_minutes:
                stop = f"not enough time left for round {k} ({left / 60:.1f} min)"
                break
            then = "every pair is trusted already: no re-registration" if everything else \
                f"then {usable} registrations, ~{per_reg * usable / 60:.1f} min"
            say(f"round {k}: train --target auto on {last['row']['trusted']} trusted pairs for up to {train_min:.1f} min "
                f"({then})")
            auto = AutoConfig(max_minutes=train_min, seed=cfg.seed + k, channels=cfg.channels, threads=cfg.threads,
                              cases_per_pair=cfg.cases_per_pair)
            if cfg.kinds is not None:
                auto.kinds = cfg.kinds
            try:
                train_auto(rdir.parent / f"{k - 1:02d}" / "pairs", model, auto, echo=lambda s: say("  " + s),
                           description=f"pairs aligned by round {k - 1} of train --unaligned")
            except StyleunwarpError as exc:
                stop = f"round {k}: training failed ({exc})"
                break
        chain = load_chain(model)
        assert chain is not None
        if everything:
            state = _carry_round(root, k, last, f"{chain.label} (round {k} model)")
            states.append(state)
            stop = f"every pair was trusted by round {k - 1}: round {k}'s model was trained on all of them, not re-registered"
            break
        same = [r for r in runs0 if r.chain == chain]  # a starting chain won: its registrations are reused
        run = same[0] if same else ChainRun(chain, "model", model, "model")
        state = run_round(k, [run], specs, root, base, cfg, deadline, bad, progress, f"{chain.label} (round {k} model)")
        if state is None:
            stop = f"the time budget ran out while round {k} re-registered the pairs"
            break
        states.append(state)
        say(f"round {k}: {state['row']['trusted']}/{state['row']['pairs']} pairs trusted")
        k += 1

    # what to deliver: the candidate whose own registrations agree best with the targets by structure
    src, run, delivered, warning = _choose_delivery(root, states, runs0, base, cfg, k, stop)
    if src is not None:
        for item in src.iterdir():
            if item.is_dir():
                shutil.copytree(item, root / item.name, dirs_exist_ok=True)
            else:
                shutil.copy2(item, root / item.name)
    else:
        _write_training_free_card(root, run)
    card = read_card(root / CHAIN_NAME)
    delivered_chain = load_chain(root)
    offer = [r.chain for label in delivered.get("alternatives", []) for r in runs0 if r.label == label and r.chain != delivered_chain]
    _offer_alternatives(root, card, offer)
    card["unaligned"] = {
        "learned_without_aligned_pairs": True,
        "note": ("learned by styleunwarp train --unaligned from pairs no one aligned: registered by training-free "
                 "chains, verified pairs resampled into training pairs, retrained, repeated"),
        "pairs_source": str(pairs.resolve()),
        "files": [{"name": s.name, "lom": str(Path(s.lom).resolve()), "cbs": str(Path(s.cbs).resolve())} for s in specs],
        "skipped_files": problems + [f"{n}: {why}" for n, why in bad.items()],
        "rounds": [s["row"] for s in states],
        "n_rounds": len(states),
        "stopped": stop or "done",
        "trust_rule": {"rule": cfg.rule, "agree_px": cfg.agree_px,
                       "why": ("two chains whose direct maps agree within "
                               f"{cfg.agree_px:g} px mean, one of them moved from the identity start, of different "
                               "representations (each searched its own coarse alignment) or of one representation "
                               "through two backends both graded at least decent (they share the coarse step): "
                               "agreement of independent methods is evidence no single similarity gives; the grader "
                               "alone is not trusted (its NCC is meaningless on raw multimodal images); precision "
                               "measured in docs/unaligned.md")},
        "starting_chains": [r.label for r in runs0],
        "delivered": delivered,
        "warning": warning,
        "minutes": round((time.monotonic() - t_start) / 60.0, 2),
        "max_minutes": cfg.max_minutes,
    }
    atomic_write_text(root / CHAIN_NAME, json.dumps(card, indent=2, default=float) + "\n")
    say(TABLE_HEADER)
    for s in states:
        say(format_row(s["row"]))
    say(f"unaligned: {stop or 'done'}; delivered {delivered['chain']} (round {delivered['round']}) -> {root / CHAIN_NAME}")
    if warning:
        say(f"warning: {warning}")
    return card


__all__ = ["ChainRun", "OutOfTime", "UnalignedConfig", "collect_pairs", "register_one", "starting_chains", "train_unaligned",
           "verdict", "write_pseudo_pair"]
