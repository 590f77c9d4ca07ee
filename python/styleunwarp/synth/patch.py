"""Rigidly moved patches of an aligned pair, cut as Lu et al. 2022 cut their evaluation sets.

A reference patch is cut from the target, and the source patch from the larger source field at a
known rotation and translation, so the moved source has no empty border (a rotated copy of a
patch would carry corners of zeros that no real acquisition has). The truth is an exact affine map.
"""

from __future__ import annotations

import numpy as np

from ..transform import warp_image


def rigid_patch(source: np.ndarray, target: np.ndarray, side: int, rotation_deg: float, shift: tuple[float, float],
                origin: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(moved, reference, truth)`` from an aligned pair ``source``/``target`` (grey, same field).

    ``reference``: the ``side`` px target patch whose top-left pixel is ``origin`` (x, y; default the
    centred patch). ``moved``: the source patch rotated by ``rotation_deg`` about its centre and shifted
    by ``shift`` (x, y, px) in the field: its pixel ``p`` shows the field at ``R (p - c) + c + origin +
    shift``. ``truth``: the 2x3 map from reference pixel to moved-patch position (what a
    registration of ``moved`` onto ``reference`` should find). Raises ``ValueError`` where the moved
    patch would leave the field."""
    h, w = target.shape[:2]
    c = np.full(2, (side - 1) / 2.0)
    o = np.floor(np.array([(w - side) / 2.0, (h - side) / 2.0])) if origin is None else np.asarray(origin, np.float64)
    th = np.deg2rad(rotation_deg)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    t = np.asarray(shift, np.float64)
    centre = c + o + t  # the field position the moved patch's centre shows
    low, high = centre - np.abs(rot) @ c, centre + np.abs(rot) @ c  # its farthest reach, per axis
    if np.any(low < -0.5) or high[0] > w - 0.5 or high[1] > h - 0.5 or o.min() < 0 or o[0] + side > w or o[1] + side > h:
        raise ValueError(f"a {side} px patch rotated {rotation_deg:+.1f} deg and shifted {tuple(np.round(t, 1))} px leaves the {w}x{h} field")
    a = np.column_stack([rot, c + o + t - rot @ c])  # moved-patch pixel -> field position
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    pos = np.stack([a[0, 0] * xx + a[0, 1] * yy + a[0, 2], a[1, 0] * xx + a[1, 1] * yy + a[1, 2]]).astype(np.float32)
    moved = warp_image(source, pos, (side, side))
    reference = target[int(o[1]):int(o[1]) + side, int(o[0]):int(o[0]) + side]
    truth = (np.linalg.inv(np.vstack([a, [0.0, 0.0, 1.0]])) @ np.array([[1.0, 0.0, o[0]], [0.0, 1.0, o[1]], [0.0, 0.0, 1.0]]))[:2]
    return moved, reference, truth


__all__ = ["rigid_patch"]
