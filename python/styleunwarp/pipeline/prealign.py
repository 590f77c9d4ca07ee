"""Automatic coarse pre-alignment: translation, rotation and scale (a similarity transform).

For pairs that are not pre-aligned. The rotation and scale come from phase correlation of
the log-polar Fourier magnitudes (invariant to translation), the translation from phase
correlation after undoing them. It runs on the *styled* LOM, which looks like the CBS.
The result is a 2x3 matrix ``A`` mapping target (CBS) pixel ``(x, y, 1)`` to source
position; the elastic registration then starts from the source resampled by ``A``, and
``A`` is composed into the final coefficients exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.registration import phase_cross_correlation
from skimage.transform import warp_polar

from ..transform import ElasticTransform, affine_elastic, warp_image


@dataclass(frozen=True)
class Similarity:
    """A similarity transform target → source: rotation (degrees), scale, and the shift
    (pixels) of the target centre's image in the source; ``matrix`` is the 2x3 map."""

    rotation_deg: float
    scale: float
    shift_x: float
    shift_y: float
    matrix: np.ndarray

    def to_dict(self) -> dict:
        return {"rotation_deg": self.rotation_deg, "scale": self.scale, "shift_x": self.shift_x, "shift_y": self.shift_y}


def _centre_crop(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    y0, x0 = (a.shape[0] - h) // 2, (a.shape[1] - w) // 2
    return a[y0 : y0 + h, x0 : x0 + w]


def _prepare(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    a = (a - a.mean()) / (a.std() + 1e-12)
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    return a * win


def _matrix(rotation_deg: float, scale: float, centre: tuple[float, float], shift: tuple[float, float]) -> np.ndarray:
    """Source position = scale * R(rotation) (x - c) + c + shift."""
    th = np.deg2rad(rotation_deg)
    r = scale * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    c = np.asarray(centre, dtype=np.float64)
    t = c - r @ c + np.asarray(shift, dtype=np.float64)
    return np.hstack([r, t[:, None]])


def estimate_similarity(target: np.ndarray, source: np.ndarray, *, max_scale_change: float = 1.5) -> Similarity:
    """Estimate the similarity transform mapping target pixels to source positions.

    Both images are grey and should look alike (use the styled LOM, not the raw one).
    """
    size = min(*target.shape, *source.shape)
    t = _prepare(_centre_crop(target, (size, size)))
    s = _prepare(_centre_crop(source, (size, size)))
    # rotation and scale: log-polar phase correlation of high-passed Fourier magnitudes
    ft = np.abs(np.fft.fftshift(np.fft.fft2(t)))
    fs = np.abs(np.fft.fftshift(np.fft.fft2(s)))
    yy, xx = np.mgrid[0:size, 0:size] - size / 2
    highpass = 1.0 - np.cos(np.pi * np.clip(np.hypot(xx, yy) / (size / 2), 0, 1)) ** 2
    radius = size // 2
    pt = warp_polar(ft * highpass, radius=radius, output_shape=(360, radius), scaling="log")
    ps = warp_polar(fs * highpass, radius=radius, output_shape=(360, radius), scaling="log")
    half = 180  # the magnitude spectrum is symmetric: use half a turn
    shifts, _, _ = phase_cross_correlation(pt[:half], ps[:half], upsample_factor=10, normalization=None)
    rotation = float(shifts[0])  # degrees (360 rows per turn)
    klog = radius / np.log(radius)
    scale = float(np.exp(shifts[1] / klog))
    if not 1 / max_scale_change <= scale <= max_scale_change:
        scale = 1.0
    centre = ((source.shape[1] - 1) / 2, (source.shape[0] - 1) / 2)
    best = None
    for rot in (rotation, rotation + 180.0):  # the spectrum cannot tell 180 degrees apart
        a = _matrix(-rot, scale, centre, (0.0, 0.0))
        a[:, 2] += np.array([(source.shape[1] - target.shape[1]) / 2, (source.shape[0] - target.shape[0]) / 2])
        moved = warp_image(source, affine_elastic(a, 1, target.shape), target.shape)
        shift, error, _ = phase_cross_correlation(target, moved, upsample_factor=10, normalization=None)
        if best is None or error < best[0]:
            best = (error, rot, a, shift)
    _, rot, a, (dy, dx) = best
    # moved(x) = source(A x); target(x) ~ moved(x - d)  =>  target(x) ~ source(A (x - d))
    a = a.copy()
    a[:, 2] -= a[:, :2] @ np.array([dx, dy])
    rot = (-rot + 180.0) % 360.0 - 180.0
    c = np.array([(target.shape[1] - 1) / 2, (target.shape[0] - 1) / 2])
    shift = a[:, :2] @ c + a[:, 2] - c  # where the target centre lands in the source, minus the centre
    return Similarity(rot, scale, float(shift[0]), float(shift[1]), a)


def prealigned_source(source: np.ndarray, sim: Similarity, target_shape: tuple[int, int]) -> np.ndarray:
    """The source resampled onto the target grid by the similarity (bUnwarpJ's cubic warping)."""
    return warp_image(source, affine_elastic(sim.matrix, 1, target_shape), target_shape)


def compose_with_prealignment(direct: ElasticTransform, sim: Similarity) -> ElasticTransform:
    """``A(D(x))``: a direct transform onto the pre-aligned source, re-expressed onto the source."""
    a = sim.matrix
    return ElasticTransform(a[0, 0] * direct.cx + a[0, 1] * direct.cy + a[0, 2], a[1, 0] * direct.cx + a[1, 1] * direct.cy + a[1, 2])


def inverse_through_prealignment(inverse: ElasticTransform, sim: Similarity, source_shape: tuple[int, int], target_shape: tuple[int, int]) -> ElasticTransform:
    """An inverse transform of the pre-aligned source (on the target grid) re-expressed on the source grid.

    ``I(p) = I'(A^-1 p)``: evaluated exactly on the source grid, then refitted with the same
    number of intervals (the spline grid spans the image, so a new grid needs a refit).
    """
    from ..transform import fit_elastic

    a = sim.matrix
    ainv = np.linalg.inv(np.vstack([a, [0.0, 0.0, 1.0]]))[:2]
    h, w = source_shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    qx = ainv[0, 0] * xx + ainv[0, 1] * yy + ainv[0, 2]
    qy = ainv[1, 0] * xx + ainv[1, 1] * yy + ainv[1, 2]
    return fit_elastic(inverse.at(target_shape, qx, qy), inverse.intervals)
