"""Transform objects: bUnwarpJ's elastic (B-spline) and raw (dense) transforms.

A *dense map* is an array of shape ``(2, H, W)`` on the target grid: ``map[0]`` holds
the source x (column) and ``map[1]`` the source y (row) of every target pixel, as in
bUnwarpJ's raw files. Direct transforms map target pixels to source positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import bspline

Shape = tuple[int, int]


@dataclass(frozen=True)
class ElasticTransform:
    """bUnwarpJ's elastic transform: two ``(N+3, N+3)`` B-spline coefficient grids.

    Coefficients are absolute source coordinates (``cx`` for x, ``cy`` for y), rows along
    y and columns along x. The target image size is not part of the transform: it is given
    whenever the transform is evaluated.
    """

    cx: np.ndarray
    cy: np.ndarray

    def __post_init__(self) -> None:
        cx = np.asarray(self.cx, dtype=np.float64)
        cy = np.asarray(self.cy, dtype=np.float64)
        if cx.ndim != 2 or cx.shape[0] != cx.shape[1] or cx.shape[0] < 4:
            raise ValueError(f"coefficient grids must be square (N+3, N+3) with N >= 1, got {cx.shape}")
        if cy.shape != cx.shape:
            raise ValueError(f"cx and cy differ in shape: {cx.shape} vs {cy.shape}")
        object.__setattr__(self, "cx", cx)
        object.__setattr__(self, "cy", cy)

    @property
    def intervals(self) -> int:
        """Number of B-spline intervals ``N`` (the final grid has ``2**max_scale`` of them)."""
        return self.cx.shape[0] - 3

    def to_dense(self, target_shape: Shape) -> np.ndarray:
        """Dense ``(2, H, W)`` map on a target grid of ``target_shape = (H, W)``."""
        return evaluate_elastic(self, target_shape)

    def at(self, target_shape: Shape, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Source positions ``(2, ...)`` of continuous target positions ``(x, y)``."""
        return np.stack(
            [
                bspline.evaluate_points(self.cx, target_shape, x, y),
                bspline.evaluate_points(self.cy, target_shape, x, y),
            ]
        )


@dataclass(frozen=True)
class RawTransform:
    """bUnwarpJ's raw transform: the dense ``(2, H, W)`` map itself."""

    map: np.ndarray

    def __post_init__(self) -> None:
        m = np.asarray(self.map, dtype=np.float64)
        if m.ndim != 3 or m.shape[0] != 2:
            raise ValueError(f"a raw transform is a (2, H, W) array, got {m.shape}")
        object.__setattr__(self, "map", m)

    @property
    def shape(self) -> Shape:
        """The ``(H, W)`` of the target grid the map is defined on."""
        return (self.map.shape[1], self.map.shape[2])

    def to_dense(self, target_shape: Shape | None = None) -> np.ndarray:
        """The dense map; ``target_shape``, if given, must match the stored grid."""
        if target_shape is not None and tuple(target_shape) != self.shape:
            raise ValueError(f"raw transform is {self.shape[1]}x{self.shape[0]}, target is {target_shape[1]}x{target_shape[0]}")
        return self.map


Transform = ElasticTransform | RawTransform


def evaluate_elastic(transform: ElasticTransform, target_shape: Shape) -> np.ndarray:
    """Evaluate an elastic transform on every pixel of a ``(H, W)`` target grid.

    Returns a ``(2, H, W)`` float64 dense map (x first), exactly as bUnwarpJ's elastic to
    raw conversion does.
    """
    shape = (int(target_shape[0]), int(target_shape[1]))
    return np.stack([bspline.evaluate_grid(transform.cx, shape), bspline.evaluate_grid(transform.cy, shape)])


def identity_elastic(intervals: int, target_shape: Shape) -> ElasticTransform:
    """The elastic transform that maps every target pixel to the same source position.

    Cubic B-splines reproduce linear functions: with ``c_j = (j - 1) * (W - 1) / N`` the
    spline equals ``u`` everywhere on the grid.
    """
    h, w = target_shape
    k = np.arange(intervals + 3, dtype=np.float64) - 1.0
    cx = np.tile(k * (w - 1) / intervals, (intervals + 3, 1))
    cy = np.tile((k * (h - 1) / intervals)[:, None], (1, intervals + 3))
    return ElasticTransform(cx, cy)


def affine_elastic(matrix: np.ndarray, intervals: int, target_shape: Shape) -> ElasticTransform:
    """Elastic transform equal to the affine map ``(x, y) -> A @ (x, y, 1)`` (``A`` is 2x3).

    Exact: the affine map applied to the identity's coefficients.
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.shape != (2, 3):
        raise ValueError(f"affine matrix must be 2x3, got {a.shape}")
    ident = identity_elastic(intervals, target_shape)
    cx = a[0, 0] * ident.cx + a[0, 1] * ident.cy + a[0, 2]
    cy = a[1, 0] * ident.cx + a[1, 1] * ident.cy + a[1, 2]
    return ElasticTransform(cx, cy)


def fit_elastic(dense_map: np.ndarray, intervals: int) -> ElasticTransform:
    """Least-squares elastic transform with ``intervals`` intervals closest to a dense map."""
    m = np.asarray(dense_map, dtype=np.float64)
    if m.ndim != 3 or m.shape[0] != 2:
        raise ValueError(f"a dense map is a (2, H, W) array, got {m.shape}")
    return ElasticTransform(bspline.fit_grid(m[0], intervals), bspline.fit_grid(m[1], intervals))


def to_dense(transform: Transform | np.ndarray, target_shape: Shape) -> np.ndarray:
    """Dense ``(2, H, W)`` map of an elastic or raw transform, or a dense map passed through."""
    if isinstance(transform, np.ndarray):
        if transform.shape[1:] != tuple(target_shape):
            raise ValueError(f"dense map is {transform.shape[1:]}, target is {tuple(target_shape)}")
        return transform
    return transform.to_dense(target_shape)
