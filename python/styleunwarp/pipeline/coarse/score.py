"""The similarity every coarse hypothesis is scored by, and its FFT form over all shifts.

Both images are *representations* (what the registration compares: the styled LOM and the
target representation), so a plain normalised cross-correlation (NCC) of lightly blurred
copies is the right measure: it is what bUnwarpJ's SSD term rewards, invariant to the
gain and offset of either image. Hypotheses are affine maps ``A`` (2x3) from target
pixel ``(x, y, 1)`` to source pixel position, in full-resolution pixel units; scoring
happens on a reduced copy of the target (a :class:`Level`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

MIN_OVERLAP = 0.3
"""Fraction of the largest possible overlap a hypothesis must reach to be scored."""


def weighted(ncc_value: float, overlap: float) -> float:
    """The score hypotheses are ranked by: NCC times the square root of the overlap fraction.

    ``overlap`` is the fraction of the target covered by the moved source. A few pixels
    correlate well by chance; the weight keeps small overlaps from winning on noise.
    """
    return float(ncc_value) * float(np.sqrt(max(0.0, min(1.0, overlap)))) if np.isfinite(ncc_value) else float("-inf")


try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _affine_linear(image, a, out_h, out_w):  # pragma: no cover - compiled
        """Bilinear ``image`` at ``A @ (x, y, 1)`` (0 where any coordinate lies outside
        ``[0, n - 1]``, as ``ndimage``'s order 1, mode ``constant``), and the inside mask."""
        h, w = image.shape
        out = np.zeros((out_h, out_w), np.float32)
        inside = np.zeros((out_h, out_w), np.bool_)
        for i in range(out_h):
            for j in range(out_w):
                px = a[0, 0] * j + a[0, 1] * i + a[0, 2]
                py = a[1, 0] * j + a[1, 1] * i + a[1, 2]
                inside[i, j] = px >= -0.5 and px <= w - 0.5 and py >= -0.5 and py <= h - 0.5
                if px < 0.0 or px > w - 1 or py < 0.0 or py > h - 1:
                    continue
                x0, y0 = int(px), int(py)
                fx, fy = px - x0, py - y0
                x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
                out[i, j] = (1.0 - fy) * ((1.0 - fx) * image[y0, x0] + fx * image[y0, x1]) + fy * ((1.0 - fx) * image[y1, x0] + fx * image[y1, x1])
        return out, inside


def sample(image: np.ndarray, a: np.ndarray, shape: tuple[int, int], order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``image`` sampled at ``A @ (x, y, 1)`` for every pixel of ``shape``, and the inside mask.

    Order 1 runs a numba kernel (5-10x faster than ``ndimage.affine_transform``, which it
    equals to float rounding; the coarse search's main cost), other orders ``ndimage``.
    """
    a = np.asarray(a, dtype=np.float64)
    if order == 1 and numba is not None:
        return _affine_linear(np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(a), int(shape[0]), int(shape[1]))
    # ndimage works in (row, col): swap the axes of the 2x3 map
    m = np.array([[a[1, 1], a[1, 0]], [a[0, 1], a[0, 0]]])
    off = np.array([a[1, 2], a[0, 2]])
    out = ndimage.affine_transform(image.astype(np.float32, copy=False), m, off, output_shape=shape, order=order, mode="constant", cval=0.0, prefilter=False)
    h, w = image.shape
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    px = a[0, 0] * xx + a[0, 1] * yy + a[0, 2]
    py = a[1, 0] * xx + a[1, 1] * yy + a[1, 2]
    inside = (px >= -0.5) & (px <= w - 0.5) & (py >= -0.5) & (py <= h - 0.5)
    return out, inside


def ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation of ``a`` and ``b`` over ``mask`` (nan when flat or nearly empty)."""
    if mask is not None:
        a, b = a[mask], b[mask]
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.size < 16:
        return float("nan")
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


@dataclass(frozen=True)
class Level:
    """The target reduced by ``k`` (working pixel ``x`` is full-resolution ``k x + (k - 1) / 2``)."""

    k: float
    image: np.ndarray
    blur: float

    @classmethod
    def of(cls, target: np.ndarray, size: int, blur: float = 1.0) -> "Level":
        """A level whose longer side is about ``size`` px (never enlarged); blurred by ``blur`` working px."""
        k = cls.factor(target.shape, size)
        shape = (max(8, int(round(target.shape[0] / k))), max(8, int(round(target.shape[1] / k))))
        img = reduce(target, k, shape, blur)
        return cls(k, img, blur)

    @staticmethod
    def factor(shape: tuple[int, ...], size: int) -> float:
        """Full-resolution pixels per working pixel of a level of about ``size`` px for an image of ``shape``."""
        return max(1.0, max(shape[:2]) / float(size))

    def full_from_working(self) -> np.ndarray:
        """3x3 map working pixel -> full-resolution pixel."""
        k = self.k
        return np.array([[k, 0.0, (k - 1) / 2], [0.0, k, (k - 1) / 2], [0.0, 0.0, 1.0]])

    def score(self, source: np.ndarray, a: np.ndarray, source_scale: float = 1.0) -> tuple[float, float]:
        """``(NCC, overlap)`` of the target and the source moved by ``A`` (full-resolution map);
        ``overlap`` is the fraction of the target the moved source covers.

        ``source`` may be a reduced copy of the source by ``source_scale`` (its pixel ``p``
        is full-resolution ``source_scale * p + (source_scale - 1) / 2``).
        """
        moved, inside = self.moved(source, a, source_scale)
        frac = float(inside.mean())
        return ncc(self.image, moved, inside), frac

    def moved(self, source: np.ndarray, a: np.ndarray, source_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """The source moved by ``A`` (full-resolution map) onto this level's grid, and where it lies
        (``source`` as for :meth:`score`)."""
        aw = np.vstack([a, [0, 0, 1]]) @ self.full_from_working()
        if source_scale != 1.0:
            s = source_scale
            aw = np.array([[1 / s, 0, -(s - 1) / (2 * s)], [0, 1 / s, -(s - 1) / (2 * s)], [0, 0, 1]]) @ aw
        return sample(source, aw[:2], self.image.shape)


def reduce(image: np.ndarray, k: float, shape: tuple[int, int], blur: float) -> np.ndarray:
    """``image`` reduced by ``k`` (anti-aliased) to ``shape``, then blurred by ``blur`` px."""
    img = np.asarray(image, np.float32)
    sigma = np.sqrt(max(0.0, (k / 2) ** 2 - 0.25) + (blur * k) ** 2)
    if sigma > 0.3:
        img = ndimage.gaussian_filter(img, sigma)
    a = np.array([[k, 0.0, (k - 1) / 2], [0.0, k, (k - 1) / 2]])
    return sample(img, a, shape)[0]


class ShiftCorrelator:
    """Masked NCC of a fixed image against a moving one, for every integer shift (FFT).

    Shift ``d = (dy, dx)``: fixed pixel ``x`` meets moving pixel ``x + d``. Shifts whose
    overlap is below ``MIN_OVERLAP`` of the largest possible one score ``-inf``
    (Padfield, "Masked object registration in the Fourier domain", 2012).
    """

    def __init__(self, fixed: np.ndarray) -> None:
        f = np.asarray(fixed, np.float64)
        self.fixed = ((f - f.mean()) / (f.std() + 1e-12)).astype(np.float32)
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _fixed_ffts(self, size: tuple[int, int]):
        if size not in self._cache:
            f = self.fixed
            self._cache[size] = tuple(np.conj(sfft.rfft2(x, size)) for x in (np.ones_like(f), f, f * f))
        return self._cache[size]

    def __call__(self, moving: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """``(ncc_map, origin)``: ``ncc_map[i, j]`` is the shift ``(i - origin[0], j - origin[1])``."""
        h, w = self.fixed.shape
        hm, wm = moving.shape
        size = (sfft.next_fast_len(hm + h - 1, real=True), sfft.next_fast_len(wm + w - 1, real=True))
        f1, ff, fff = self._fixed_ffts(size)
        m = mask.astype(np.float32)
        vals = moving[mask]
        mu, sd = (float(vals.mean()), float(vals.std()) + 1e-12) if vals.size else (0.0, 1.0)
        g = np.where(mask, (moving - mu) / sd, 0.0).astype(np.float32)
        fm, fg, fgg = sfft.rfft2(m, size), sfft.rfft2(g, size), sfft.rfft2(g * g, size)

        def corr(a, b):
            return sfft.irfft2(a * b, size)

        n = corr(f1, fm)
        sf, sg = corr(ff, fm), corr(f1, fg)
        sff, sgg, sfg = corr(fff, fm), corr(f1, fgg), corr(ff, fg)
        n = np.maximum(np.round(n), 1.0)  # inputs are standardised: float32 sums keep ample precision
        with np.errstate(divide="ignore", invalid="ignore"):
            num = sfg - sf * sg / n
            vf, vg = sff - sf * sf / n, sgg - sg * sg / n
            out = num / np.sqrt(np.maximum(vf * vg, 1e-12))
        best_possible = min(h * w, float(m.sum()))
        bad = (n < MIN_OVERLAP * best_possible) | (vf < 1e-3 * n) | (vg < 1e-3 * n)
        out = out * np.sqrt(np.clip(n / (h * w), 0.0, 1.0))  # weighted(): small overlaps win no ties
        out[bad] = -np.inf
        # index k along an axis is shift k (k < moving size) or k - size (negative shifts)
        out = np.roll(out, (h - 1, w - 1), axis=(0, 1))[: hm + h - 1, : wm + w - 1]
        return out, (h - 1, w - 1)

