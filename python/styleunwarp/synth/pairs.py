"""Synthetic correlative LOM/CBS pairs with ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..transform import ElasticTransform
from .deform import Deformation, random_deformation, source_positions
from .microstructure import Microstructure, random_microstructure
from .render import CBSStyle, LOMStyle, render_cbs, render_lom


@dataclass
class SyntheticPair:
    """One correlative pair.

    Attributes
    ----------
    lom
        The LOM-like source image, float32 ``(H, W)`` or ``(H, W, 3)``, about 0..255.
    cbs
        The CBS-like target image, float32 ``(H, W)``, about 0..255.
    cbs_like_lom
        The CBS-like rendering on the LOM (source) grid: what a perfect style transfer of
        ``lom`` would give (own noise realisation).
    truth
        The direct transform (target -> source) as a bUnwarpJ elastic transform, or
        ``None`` for an aligned pair (source grid = target grid).
    name
        A file-name stem.
    meta
        Seeds and parameters used (JSON-serialisable).
    """

    lom: np.ndarray
    cbs: np.ndarray
    cbs_like_lom: np.ndarray
    truth: ElasticTransform | None
    name: str
    meta: dict = field(default_factory=dict)


def make_pair(
    shape: tuple[int, int] = (512, 512),
    *,
    seed: int | np.random.SeedSequence,
    deform: bool = True,
    rgb: bool = False,
    grain_size: float = 100.0,
    twins: float = 1.0,
    islands: float = 0.5,
    pits: float = 1.0,
    intervals: int = 4,
    rotation_deg: tuple[float, float] = (1.5, 4.0),
    shift_px: tuple[float, float] = (3.0, 8.0),
    elastic_px: tuple[float, float] = (1.0, 3.0),
    name: str | None = None,
    return_structure: bool = False,
    lom_style: LOMStyle | None = None,
) -> SyntheticPair | tuple[SyntheticPair, Microstructure, Deformation | None]:
    """Render one synthetic pair: a random microstructure seen by the CBS and by the LOM.

    Parameters
    ----------
    shape
        ``(H, W)`` of both images.
    seed
        Everything is a deterministic function of the seed and the other arguments.
    deform
        If true, the LOM frame is deformed by a random smooth transform (returned as
        ``truth``); if false, both images share one grid (an aligned training pair).
    rgb
        Render the LOM in colour ``(H, W, 3)``.
    grain_size, twins, islands, pits
        Microstructure parameters (see :func:`.random_microstructure`).
    intervals, rotation_deg, shift_px, elastic_px
        Deformation parameters (see :func:`.random_deformation`).
    name
        File-name stem (default ``synth_<seed>``).
    return_structure
        Also return the microstructure and the deformation (for tests and inspection).
    lom_style
        The LOM look (default: :meth:`.LOMStyle.random`, drawn from the seed either way so the
        other draws do not change).
    """
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
    r_micro, r_style, r_deform, r_cbs, r_lom, r_like = (np.random.default_rng(s) for s in seq.spawn(6))
    shape = (int(shape[0]), int(shape[1]))
    micro = random_microstructure(r_micro, shape, grain_size=grain_size, twins=twins, islands=islands, pits=pits)
    cbs_style = CBSStyle.random(r_style)
    drawn = LOMStyle.random(r_style)
    lom_style = drawn if lom_style is None else lom_style

    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    target = micro.sample(xx, yy)
    cbs = render_cbs(micro, target, cbs_style, r_cbs)
    deformation = None
    if deform:
        deformation = random_deformation(r_deform, shape, intervals=intervals, rotation_deg=rotation_deg, shift_px=shift_px, elastic_px=elastic_px)
        pos = source_positions(deformation, shape)
        source = micro.sample(pos[0], pos[1])
    else:
        source = target
    lom = render_lom(micro, source, lom_style, r_lom, rgb=rgb)
    cbs_like = render_cbs(micro, source, cbs_style, r_like)

    seed_id = seq.entropy if not seq.spawn_key else f"{seq.entropy}/{'/'.join(map(str, seq.spawn_key))}"
    meta = {
        "seed": seed_id,
        "shape": list(shape),
        "rgb": rgb,
        "microstructure": {"grain_size": grain_size, "twins": twins, "islands": islands, "pits": pits, **micro.meta},
        "cbs_style": cbs_style.as_dict(),
        "lom_style": lom_style.as_dict(),
        "deformation": None if deformation is None else deformation.params,
    }
    pair = SyntheticPair(
        lom=lom,
        cbs=cbs,
        cbs_like_lom=cbs_like,
        truth=None if deformation is None else deformation.truth,
        name=name or f"synth_{seed_id}".replace("/", "_"),
        meta=meta,
    )
    if return_structure:
        return pair, micro, deformation
    return pair
