"""Synthetic correlative LOM/CBS pairs with ground truth.

The default data of the demo, the tests and model training. A random steel-like
(austenitic) microstructure is defined at continuous coordinates
(:mod:`.microstructure`), rendered CBS-like and LOM-like (:mod:`.render`), and seen by the
LOM through a known smooth deformation stored as a bUnwarpJ elastic transform
(:mod:`.deform`). :mod:`.fromcbs` renders LOM-like images of *real* CBS micrographs;
:mod:`.dataset` writes data sets to disk.

>>> pair = make_pair((256, 256), seed=1)             # doctest: +SKIP
>>> pair.lom, pair.cbs, pair.cbs_like_lom, pair.truth  # source, target, perfect style, T
"""

from .dataset import cbs_images, pair_seed, write_dataset
from .deform import Deformation, random_deformation, source_positions
from .fromcbs import cbs_edges, lom_from_cbs, pair_from_cbs, read_cbs
from .microstructure import Microstructure, MicroSample, random_microstructure
from .pairs import SyntheticPair, make_pair
from .patch import rigid_patch
from .render import CBSStyle, LOMStyle, render_cbs, render_lom

__all__ = [
    "CBSStyle",
    "Deformation",
    "LOMStyle",
    "MicroSample",
    "Microstructure",
    "SyntheticPair",
    "cbs_edges",
    "cbs_images",
    "lom_from_cbs",
    "make_pair",
    "pair_from_cbs",
    "pair_seed",
    "random_deformation",
    "random_microstructure",
    "read_cbs",
    "render_cbs",
    "render_lom",
    "rigid_patch",
    "source_positions",
    "write_dataset",
]
