"""Bringing the LOM onto the CBS pixel size, and mapping transforms back to the original LOM.

When both images carry a pixel size and they differ, the LOM is resampled by
``f = lom_pixel / cbs_pixel`` (cubic, pixel-centre convention: resampled pixel ``u`` sits at
original position ``(u + 0.5) / f - 0.5``). bUnwarpJ then registers images of one pixel
size. Because transform coefficients are absolute source coordinates, a direct transform
found on the resampled LOM becomes one for the original LOM by the same affine map applied
to its coefficients — exactly — so the original pixels are moved only once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..transform import ElasticTransform, fit_elastic

TOLERANCE = 0.01
"""Relative pixel-size difference below which no resampling is done."""

MAX_PIXELS = 200_000_000
"""Refuse resampling results larger than this (a wrong pixel size would explode memory)."""


@dataclass(frozen=True)
class GridMatch:
    """How the LOM was brought to the CBS pixel size (``factor == 1`` means untouched)."""

    factor: float
    original_shape: tuple[int, int]
    resampled_shape: tuple[int, int]
    reason: str

    def to_dict(self) -> dict:
        return {"factor": self.factor, "original_shape": list(self.original_shape), "resampled_shape": list(self.resampled_shape), "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict) -> "GridMatch":
        """The match :meth:`to_dict` wrote (``metrics.json`` ``pixel_grid``)."""
        return cls(float(d["factor"]), tuple(d["original_shape"]), tuple(d["resampled_shape"]), str(d.get("reason", "")))

    def to_original(self, x: np.ndarray) -> np.ndarray:
        """Resampled-LOM coordinates → original-LOM coordinates (either axis)."""
        return (np.asarray(x) + 0.5) / self.factor - 0.5

    def to_resampled(self, x: np.ndarray) -> np.ndarray:
        """Original-LOM coordinates → resampled-LOM coordinates."""
        return (np.asarray(x) + 0.5) * self.factor - 0.5


def match_pixel_size(lom: np.ndarray, lom_pixel: float | None, cbs_pixel: float | None) -> tuple[np.ndarray, GridMatch]:
    """Resample a LOM image (grey ``(H, W)`` or colour ``(H, W, C)``) to the CBS pixel size when both
    are known and differ; colour channels are resampled alike and kept."""
    shape = lom.shape[:2]
    if not lom_pixel or not cbs_pixel:
        return lom, GridMatch(1.0, shape, shape, "pixel size unknown for " + ("both images" if not lom_pixel and not cbs_pixel else "LOM" if not lom_pixel else "CBS"))
    factor = float(lom_pixel) / float(cbs_pixel)
    if abs(factor - 1.0) <= TOLERANCE:
        return lom, GridMatch(1.0, shape, shape, f"pixel sizes agree ({lom_pixel:.4g} vs {cbs_pixel:.4g} um)")
    new_shape = (int(round(shape[0] * factor)), int(round(shape[1] * factor)))
    if new_shape[0] * new_shape[1] > MAX_PIXELS or min(new_shape) < 16:
        raise InputError(None, f"LOM pixel {lom_pixel:.4g} um vs CBS pixel {cbs_pixel:.4g} um would resample the LOM to {new_shape[1]}x{new_shape[0]} px: check the pixel-size metadata")
    out = resample_to(lom, new_shape)
    return out, GridMatch(factor, shape, out.shape[:2], f"LOM resampled by {factor:.4g} to the CBS pixel size {cbs_pixel:.4g} um")


def resample_to(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` (grey ``(H, W)`` or colour ``(H, W, C)``) resampled to ``shape`` pixels over the same field:
    cubic, pixel-centre convention (corners of the pixel grids aligned), colour channels alike; float32."""
    zoom = (shape[0] / image.shape[0], shape[1] / image.shape[1]) + (1.0,) * (image.ndim - 2)
    return ndimage.zoom(np.asarray(image, np.float32), zoom, order=3, mode="grid-mirror", grid_mode=True)


def direct_to_original(direct: ElasticTransform, match: GridMatch) -> ElasticTransform:
    """A direct transform onto the resampled LOM, re-expressed onto the original LOM (exact)."""
    if match.factor == 1.0:
        return direct
    return ElasticTransform(match.to_original(direct.cx), match.to_original(direct.cy))


def inverse_to_original(inverse: ElasticTransform, match: GridMatch) -> ElasticTransform:
    """An inverse transform defined on the resampled LOM grid, refitted on the original grid.

    The spline grid spans the image, so a different grid size needs a least-squares refit
    (same number of intervals); for smooth maps the refit error is far below a pixel.
    """
    if match.factor == 1.0:
        return inverse
    h, w = match.original_shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dense = inverse.at(match.resampled_shape, match.to_resampled(xx), match.to_resampled(yy))
    return fit_elastic(dense, inverse.intervals)
