"""A *chain*: representation + registration backend + backend options, as chosen by ``train``.

``train --target auto`` writes ``chain.json`` into the model folder: the winning chain, the
representation's card section (its weights lie beside it), and the measured TRE of every
candidate. ``register --model M`` then uses the chain's backend and options unless the user
gives ``--backend`` explicitly (:func:`load_chain`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from os import PathLike
from pathlib import Path

from ..errors import InputError

CHAIN_FORMAT = "styleunwarp.chain/1"
CHAIN_NAME = "chain.json"

TIED = "tied"
"""``Chain.every_pair`` of a chain the held-out cases could not tell from the model's own (as many
cases within 5 px and within 1.5 px; only the median TRE preferred the winner)."""
NO_CARD = "no chain card"
"""``Chain.every_pair`` of the training-free chain offered to a style model without a chain card
(never measured against it on held-out pairs)."""


@dataclass(frozen=True)
class Chain:
    """What the registration of a pair runs: ``representation`` then ``backend`` with ``backend_options``."""

    representation: str
    backend: str
    backend_options: dict = field(default_factory=dict)
    coarse_sigma: float | None = None
    fine_sigmas: tuple[float, ...] | None = None
    """The blurs the fine affine step fits on, coarse to fine; ``None``: the pipeline's choice
    (:func:`styleunwarp.pipeline.fine_affine.default_fine_sigmas`). ``train --target auto`` sets it
    where a fit ending on blurred maps placed the held-out cases better (:func:`.auto.fit_variant`).
    Not part of :attr:`label`: the same representation and backend, another fit of the start."""
    every_pair: str = field(default="", compare=False)
    """Why a second opinion runs this chain on every pair, evidence or not (:data:`TIED`,
    :data:`NO_CARD`); empty: only where the model's result is not structure evidence of alignment.
    Set by :func:`alternatives` and :func:`style_model_alternatives`; not part of the card's chain entry."""
    last_resort: bool = field(default=False, compare=False)
    """A chain :func:`alternatives` offers after the ranked ones (another representation the card holds,
    whatever it scored): the second opinion runs it only while no result is evidence at all. Not part of the card's chain entry."""

    @property
    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.backend_options.items()))
        return f"{self.representation}->{self.backend}" + (f"[{opts}]" if opts else "")

    @property
    def described(self) -> str:
        """:attr:`label`, and the fine affine fit's blurs where the chain sets them."""
        if self.fine_sigmas is None:
            return self.label
        return f"{self.label} (fine affine fit on blurs {', '.join(f'{s:g}' for s in self.fine_sigmas)} px)"

    @property
    def slug(self) -> str:
        """A folder name for the chain's registrations, e.g. ``none-native-mind``."""
        opts = "-".join(f"{v}" for _, v in sorted(self.backend_options.items()))
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{self.representation}-{self.backend}" + (f"-{opts}" if opts else ""))

    def as_dict(self) -> dict:
        d = asdict(self)
        del d["every_pair"], d["last_resort"]
        if self.fine_sigmas is None:
            del d["fine_sigmas"]  # cards of chains without it read as before
        else:
            d["fine_sigmas"] = list(self.fine_sigmas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Chain":
        sigmas = d.get("fine_sigmas")
        if sigmas is not None:
            sigmas = tuple(float(v) for v in sigmas)
            if not sigmas or any(not v >= 0 for v in sigmas):
                raise ValueError(f"fine_sigmas must be a list of blurs >= 0 px, got {d.get('fine_sigmas')!r}")
        return cls(str(d["representation"]), str(d["backend"]), dict(d.get("backend_options") or {}),
                   None if d.get("coarse_sigma") is None else float(d["coarse_sigma"]), sigmas)


def chain_file(model: str | PathLike[str] | None) -> Path | None:
    """``MODEL/chain.json`` if ``model`` is a folder holding one (or is that file), else ``None``."""
    if model is None:
        return None
    p = Path(model)
    if p.is_dir() and (p / CHAIN_NAME).is_file():
        return p / CHAIN_NAME
    if p.is_file() and p.name == CHAIN_NAME:
        return p
    return None


def applied_to_unseen_looks(model: str | PathLike[str] | None, style: str, representation: str | None = None) -> bool:
    """Whether the chain runs a style model without a chain card (the shipped one, or a model from
    ``train --target edges|cbs``) on the pair: a model applied to looks it may never have met, whose
    maps the chain adapts to the pair and fits only at the scale such looks do not bias. False for
    raw images (``style="none"`` or ``representation="none"``) and for a model from ``train --target
    auto``, whose chain was measured on held-out pairs of its own field."""
    raw = style != "model" or representation == "none"
    return not raw and chain_file(model) is None


def read_card(path: Path) -> dict:
    """A chain card, checked; errors name the file."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"chain card is not valid JSON: {exc}") from exc
    if not isinstance(card, dict) or card.get("format") != CHAIN_FORMAT:
        raise InputError(path, f"not a styleunwarp chain card (expected format {CHAIN_FORMAT!r})")
    if not isinstance(card.get("chain"), dict) or not isinstance(card.get("representation"), dict):
        raise InputError(path, "chain card has no 'chain' or 'representation' object")
    return card


def load_chain(model: str | PathLike[str] | None) -> Chain | None:
    """The chain a model folder prescribes, or ``None`` for a plain style model (or no model)."""
    path = chain_file(model)
    if path is None:
        return None
    return _card_chain(path, read_card(path))


def _card_chain(path: Path, card: dict) -> Chain:
    """The chain of a card read from ``path``; a bad entry is an error naming the file."""
    try:
        return Chain.from_dict(card["chain"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"bad 'chain' entry: {exc}") from exc


def resolve_backend(model, style: str, backend: str, backend_options: dict, coarse_sigma: float | None,
                    backend_explicit: bool) -> tuple[str, dict, float | None, Chain | None]:
    """The backend, its options and the coarse sigma to use with ``model``.

    A model with a chain card prescribes its backend and options unless the user chose the
    backend explicitly (``backend_explicit``); options the user gave win over the chain's, and
    an explicit ``coarse_sigma`` over the chain's. Returns ``(backend, options, coarse_sigma, chain)``.
    """
    chain = load_chain(model) if style == "model" else None
    if chain is None:
        return backend, dict(backend_options), coarse_sigma, None
    if not backend_explicit:
        backend = chain.backend
        backend_options = {**chain.backend_options, **backend_options}
    if coarse_sigma is None and chain.coarse_sigma is not None:
        coarse_sigma = chain.coarse_sigma
    return backend, dict(backend_options), coarse_sigma, chain


def load_representation(model: str | PathLike[str] | None, style: str = "model", key: str | None = None):
    """The :class:`~.representations.Representation` of a model folder, file or ``None``.

    ``style="none"``: the raw images. A folder with ``chain.json``: its representation, or with
    ``key`` another one its card lists under ``representations`` (what ``train --target auto``
    trained or tried: ``none``, ``shipped``, ``edges``, ``shared``, ``cbs``). Any other model
    (folder or weights file; ``None`` = the shipped default): a translation model.
    """
    from .representations import load
    from .representations.raw import Raw
    from .representations.translation import Translation

    if style == "none" or key == "none":
        return Raw()
    path = chain_file(model)
    if path is not None:
        card = read_card(path)
        if key is None:
            return load(path.parent, card["representation"])
        sections = card.get("representations") or {}
        if key not in sections:
            raise InputError(path, f"the model has no representation {key!r} (it has: {', '.join(sorted(sections)) or 'none listed'})")
        return load(path.parent, sections[key])
    if key is not None:
        raise InputError(model, f"representation {key!r} needs a model folder with a chain card (train --target auto)")
    return Translation.load_model(model)


ALTERNATIVES = 2
"""How many other chains of a model's card :func:`alternatives` offers for a second opinion."""


def _counts(c: dict) -> tuple[int, int, int]:
    """Held-out cases of a candidate entry: (evaluated, within 5 px, within 1.5 px)."""
    return (int(c.get("cases") or 0), int(c.get("within_5px") or 0), int(c.get("within_1.5px") or 0))


def alternatives(model: str | PathLike[str] | None, n: int = ALTERNATIVES, *, every_representation: bool = True) -> list[Chain]:
    """Other chains the model's card offers, best first: at most ``n`` ranked ones, its ``alternatives`` list
    when written (``train --unaligned``), else the measured ``candidates`` of ``train --target
    auto`` ranked as the winner was (most held-out cases within 5 px, then 1.5 px, then the lower
    median TRE), each representation once per backend, only representations the card can load.

    Where every alternative so chosen has the winner's representation (raw images, say: they share its
    coarse search and fail where it fails), the last place goes to the best chain of another
    representation that placed at least one held-out case within 5 px.

    With ``every_representation`` (default, and only where ``n`` > 0), the best-ranked chain of each
    representation the card can load that neither the winner nor those ``n`` use follows, in the
    card's order, whatever it scored on the held-out cases (``last_resort``): the second opinion runs them one by one
    only while no result is evidence at all, its structure agreement less than
    :data:`styleunwarp.style.tournament.EVIDENCE_Z` chance spreads above chance
    (:func:`styleunwarp.pipeline.second_opinion.register_pair_verified`), under the same replacement rules. A handful of held-out cases ranks representations poorly: on
    colour-coded CLEM (docs/representations.md, "Every representation before giving up") the
    translation, stopped after one held-out case it missed, placed the test patches' hypotheses where
    raw mutual information, the winner, found none.

    The first alternative runs on every pair (``every_pair`` = :data:`TIED`) when it was evaluated on all the winner's
    held-out cases and put as many within 5 px and within 1.5 px: only the median TRE (a few
    tenths of a pixel on a handful of cases) preferred the winner."""
    path = chain_file(model)
    if path is None or n <= 0:
        return []
    card = read_card(path)
    winner = Chain.from_dict(card["chain"])
    loadable = set(card.get("representations") or {}) | {"none"}
    if isinstance(card.get("alternatives"), list):
        ranked = list(card["alternatives"])
    else:
        def score(c: dict) -> tuple:
            med = c.get("median_tre_px")
            return (c.get("within_5px") or 0, c.get("within_1.5px") or 0, -(med if med is not None else float("inf")))

        ranked = sorted((c for c in card.get("candidates") or [] if c.get("cases")), key=score, reverse=True)
    won = card.get("winner") if isinstance(card.get("winner"), dict) else None
    usable: list[tuple[Chain, dict]] = []
    for d in ranked:
        try:
            chain = Chain.from_dict(d)
        except (KeyError, TypeError, ValueError):
            continue
        if chain.label != winner.label and chain.representation in loadable and chain.label not in {c.label for c, _ in usable}:
            usable.append((chain, d))
    picked = usable[:n]
    if n >= 2 and picked and all(c.representation == winner.representation for c, _ in picked):
        # every alternative sees the pair as the winner does (raw images: the same coarse search) and
        # fails where it fails: the best chain of another representation that placed a held-out case
        # within 5 px takes the last place (docs/representations.md, "A second opinion from another representation")
        other = next(((c, d) for c, d in usable if c.representation != winner.representation and _counts(d)[1] > 0), None)
        if other is not None:
            picked = picked[:n - 1] + [other]
    out: list[Chain] = []
    for chain, d in picked:
        tie = not out and won is not None and _counts(won)[0] > 0 and _counts(d) == _counts(won)
        out.append(replace(chain, every_pair=TIED if tie else ""))
    if every_representation and picked:
        seen = {winner.representation} | {c.representation for c in out}
        for chain, _ in usable:
            if chain.representation not in seen:
                seen.add(chain.representation)
                out.append(replace(chain, last_resort=True))
    return out


HELDOUT_FIELDS = ("cases", "within_5px", "within_1.5px", "median_tre_px")
"""What :func:`heldout_result` copies from a card's entry."""


def heldout_result(model: str | PathLike[str] | None, chain: Chain) -> dict | None:
    """What ``train --target auto`` measured for ``chain`` on the model's held-out cases: the card's
    ``winner`` where it is that chain, else its best-ranked ``candidates`` entry of the same label
    (most cases within 5 px, then 1.5 px, then the lower median TRE), as ``{"chain", "cases",
    "within_5px", "within_1.5px", "median_tre_px"}``; ``None`` for a model without a chain card, a
    chain the card never measured (a backend or options the user chose), or an entry without cases."""
    path = chain_file(model)
    return None if path is None else _heldout_in_card(read_card(path), chain)


def _heldout_in_card(card: dict, chain: Chain) -> dict | None:
    """:func:`heldout_result` in a card already read."""
    entries = ([card["winner"]] if isinstance(card.get("winner"), dict) else []) + [
        c for c in card.get("candidates") or [] if isinstance(c, dict)]

    def label_of(d: dict) -> str | None:
        try:
            return Chain.from_dict(d).label
        except (KeyError, TypeError, ValueError):
            return None

    def rank(d: dict) -> tuple:
        med = d.get("median_tre_px")
        return (*_counts(d)[1:], -(med if med is not None else float("inf")))

    same = [d for d in entries if label_of(d) == chain.label and _counts(d)[0] > 0]
    if not same:
        return None
    best = same[0] if same[0] is card.get("winner") else max(same, key=rank)
    return {"chain": chain.label, **{k: best.get(k) for k in HELDOUT_FIELDS}}


def registration_heldout(model: str | PathLike[str] | None, style: str, representation: str | None, backend: str,
                         backend_options: dict | None) -> dict | None:
    """:func:`heldout_result` of the chain a registration runs with these arguments (those of
    :func:`styleunwarp.pipeline.pair.register_pair`): the representation ``representation`` (a key of
    the card), the card's own, or ``none`` for ``style="none"``, then ``backend`` with ``backend_options``."""
    path = chain_file(model)
    if path is None:
        return None
    card = read_card(path)
    rep = "none" if style == "none" else representation or _card_chain(path, card).representation
    return _heldout_in_card(card, Chain(rep, backend, dict(backend_options or {})))


def style_model_alternatives() -> list[Chain]:
    """The second opinion for a style model without a chain card (the shipped model, or a model of
    ``train --target edges|cbs``): the first training-free chain this installation can run
    (elastix MI, else native MIND or NMI; :func:`.auto.training_free_chains`), on every pair.

    Such a model was trained on one modality pair (the shipped one on synthetic steel) and never
    measured against the training-free chains on the user's data; the structure duel decides per
    pair. Measured on real shale BSE/SE and on two steel renderers that are not ours
    (docs/representations.md, "Second opinion for a style model")."""
    from .auto import training_free_chains

    return [replace(c, every_pair=NO_CARD) for c in training_free_chains()[:1]]


def write_chain_card(folder: Path, chain: Chain, representation_section: dict, **sections) -> Path:
    """Write ``folder/chain.json`` atomically."""
    import datetime as _dt

    from .. import __version__
    from ..io import atomic_write_text

    card = {"format": CHAIN_FORMAT, "chain": chain.as_dict(), "representation": representation_section,
            "styleunwarp_version": __version__,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **sections}
    return atomic_write_text(folder / CHAIN_NAME, json.dumps(card, indent=2, default=float) + "\n")


__all__ = ["ALTERNATIVES", "CHAIN_NAME", "Chain", "alternatives", "chain_file", "heldout_result", "load_chain", "registration_heldout", "load_representation", "read_card", "resolve_backend",
           "write_chain_card"]
