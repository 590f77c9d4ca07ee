"""Synthetic pairs of widely varied steel looks, for training a style model that serves LOM
looks it has not seen.

Each pair draws, from its seed: the grain size (35-180 px, log-uniform), how many twins,
islands and pits; a grey or a colour-etched LOM (per-grain colours that differ strongly
from grain to grain, as tint etchants give, on top of the usual tint); the LOM look
(:class:`.LOMStyle` widened: sharper or blurrier optics, stronger uneven illumination, more
noise); and defects of the LOM frame: polishing scratches and dust
(:mod:`.asdelivered`), extra defocus blur. The CBS is the usual rendering. ``renderer="from-cbs"``
renders the LOM another way: from the CBS image itself (:func:`.fromcbs.lom_from_cbs`: its
steps as etched lines, a non-monotone tint of its grey), as the real-CBS test renderings are. With
``deform=True`` the LOM sees the structure through a known smooth deformation (held-out
test renderings); otherwise the pair is aligned (training).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from .asdelivered import dust, scratches
from .pairs import SyntheticPair, make_pair
from .render import LOMStyle

GRAIN_SIZE_PX = (35.0, 180.0)
COLOUR_FRACTION = 0.5
"""Fraction of pairs with a colour-etched (RGB) LOM."""


def varied_style(rng: np.random.Generator, colour: bool) -> LOMStyle:
    """A LOM look drawn from a wider range than :meth:`.LOMStyle.random`."""
    s = LOMStyle.random(rng)
    s = replace(
        s,
        blur=float(rng.uniform(0.7, 2.6)),
        vignette=float(rng.uniform(0.0, 0.55)),
        gradient=float(rng.uniform(0.0, 0.5)),
        noise=float(rng.uniform(1.5, 9.0)),
        grain_depth=float(rng.uniform(0.35, 0.9)),
        tint=float(rng.uniform(15, 80)),
    )
    if colour:  # tint etching: strong per-grain colour, a warm or cool cast
        cast = rng.uniform(0.65, 1.0, 3)
        cast /= cast.max()
        s = replace(s, colour=tuple(float(c) for c in cast), colour_jitter=float(rng.uniform(0.06, 0.25)))
    return s


def defects(lom: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Scratches, dust and extra defocus on a LOM frame (grey or RGB); returns the image and what was added."""
    img = np.asarray(lom, np.float64)
    shape = img.shape[:2]
    meta = {"scratches": 0, "dust": 0, "defocus_px": 0.0}
    expand = (lambda a: a[..., None]) if img.ndim == 3 else (lambda a: a)
    if rng.random() < 0.6:
        meta["scratches"] = int(rng.integers(2, 16))
        img = img + expand(scratches(rng, shape, meta["scratches"]))
    if rng.random() < 0.6:
        meta["dust"] = int(rng.integers(5, 80))
        img = img * expand(dust(rng, shape, meta["dust"]))
    if rng.random() < 0.3:
        meta["defocus_px"] = float(rng.uniform(0.8, 2.0))
        sig = (meta["defocus_px"],) * 2 + ((0.0,) if img.ndim == 3 else ())
        img = ndimage.gaussian_filter(img, sig, mode="nearest")
    return np.clip(img, 0, 255).astype(np.float32), meta


def varied_pair(shape: tuple[int, int], *, seed: int, deform: bool = False, name: str | None = None,
                colour: bool | None = None, renderer: str = "geometry", marks: bool = False,
                looks: bool = False, **deformation) -> SyntheticPair:
    """One pair of a widely varied steel look (see the module docstring); ``colour`` forces grey/RGB;
    ``renderer``: ``"geometry"`` (the LOM from the microstructure) or ``"from-cbs"`` (from the CBS image);
    ``marks``: also LOM-only etch pits, relief shading, dark field and JPEG (:func:`.marks.lom_marks`;
    drawn after everything else, so the pair is otherwise the same as without); ``looks``: then wide
    grooves, dark field or DIC (:func:`.looks.lom_looks`, from a random stream of its own, so the
    pair is otherwise the same as without; skipped on a frame that the marks made dark-field)."""
    if renderer not in ("geometry", "from-cbs"):
        raise ValueError(f"renderer must be 'geometry' or 'from-cbs', got {renderer!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 71]))
    rgb = bool(rng.random() < COLOUR_FRACTION) if colour is None else bool(colour)
    grain = float(np.exp(rng.uniform(*np.log(GRAIN_SIZE_PX))))
    micro = {"grain_size": grain, "twins": float(rng.uniform(0.2, 1.5)), "islands": float(rng.uniform(0.0, 1.0)),
             "pits": float(rng.uniform(0.0, 2.0))}
    style = varied_style(rng, rgb)
    pair, _, deformation_ = make_pair(shape, seed=int(seed), deform=deform, rgb=rgb, lom_style=style, name=name,
                                      return_structure=True, **micro, **deformation)
    if renderer == "from-cbs":
        from .fromcbs import lom_from_cbs

        lom = lom_from_cbs(pair.cbs, rng, rgb=rgb, style=style)
        if deformation_ is not None:
            from ..style.heldout import deform_source

            lom = deform_source(lom, deformation_)
        pair.lom = lom
    pair.lom, added = defects(pair.lom, rng)
    if marks:
        from .marks import lom_marks

        pair.lom, extra = lom_marks(pair.lom, rng)
        added["marks"] = extra
    if looks and not (added.get("marks") or {}).get("dark_field"):
        from .looks import lom_looks

        pair.lom, added["looks"] = lom_looks(pair.lom, np.random.default_rng(np.random.SeedSequence([int(seed), 73])))
    pair.meta["variety"] = {"colour_etched": rgb, "renderer": renderer, **added}
    return pair


__all__ = ["GRAIN_SIZE_PX", "defects", "varied_pair", "varied_style"]
