"""Cubic B-spline image sampling: value and gradient in one pass.

The moving image of a registration is interpolated as bUnwarpJ does it: exact cubic B-spline
prefilter (mirror boundary), then ``Σ c[i, j] β3(y - i) β3(x - j)`` at the mapped positions.
:class:`CubicImage` returns the interpolated value *and* its exact gradient with respect to
the position from the same 4×4 neighbourhood, which is all the Levenberg-Marquardt engine
needs (one pass instead of ``grid_sample`` forward + backward), and :func:`sample` wraps it as
a differentiable torch function for the autograd (L-BFGS) path.

Positions outside ``[0, W-1] × [0, H-1]`` are clamped to the border (the value there, gradient
0), as ``grid_sample(padding_mode="border")``. Images may have channels (descriptor images
such as MIND): ``(B, C, H, W)``.

On the CPU the kernel is compiled by numba (one thread, so results do not depend on the
thread count; about 10× faster than ``grid_sample`` forward + backward at 512²). Without
numba, and on CUDA, a torch gather implementation computes the same numbers.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

try:  # optional accelerator: the torch implementation below computes the same values
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

PAD = 2  # mirror padding of the coefficient array, so a 4x4 neighbourhood never leaves it

__all__ = ["CubicImage", "prefilter", "sample", "HAVE_NUMBA"]

HAVE_NUMBA = numba is not None


def prefilter(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Cubic B-spline coefficients ``(B, C, H, W)`` of images ``(B, C, H, W)`` (mirror boundary)."""
    a = np.asarray(images, dtype=np.float64)
    out = np.empty(a.shape, dtype)
    for b in range(a.shape[0]):
        for c in range(a.shape[1]):
            out[b, c] = ndimage.spline_filter(a[b, c], order=3, mode="mirror")
    return out


def _weights(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cubic B-spline weights ``(..., 4)`` at fractional offset ``t`` and their derivatives."""
    s = 1.0 - t
    t2 = t * t
    t3 = t2 * t
    w = torch.stack([s * s * s / 6.0, (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0,
                     (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0, t3 / 6.0], -1)
    d = torch.stack([-0.5 * s * s, 1.5 * t2 - 2.0 * t, -1.5 * t2 + t + 0.5, 0.5 * t2], -1)
    return w, d


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _kernel(coef, x, y, h, w, val, gx, gy):  # pragma: no cover - compiled
        """coef (B, Hp, Wp, C) padded by PAD; x, y (B, P) float64; val, gx, gy (B, C, P)."""
        nb, npts = x.shape
        nc = coef.shape[3]
        for b in range(nb):
            for p in range(npts):
                xx = x[b, p]
                yy = y[b, p]
                inx = 1.0
                iny = 1.0
                if not xx > 0.0:  # also NaN
                    xx = 0.0
                    inx = 0.0
                elif xx >= w - 1.0:
                    xx = w - 1.0
                    inx = 0.0
                if not yy > 0.0:
                    yy = 0.0
                    iny = 0.0
                elif yy >= h - 1.0:
                    yy = h - 1.0
                    iny = 0.0
                ix = min(int(xx), w - 2)
                iy = min(int(yy), h - 2)
                tx = xx - ix
                ty = yy - iy
                sx = 1.0 - tx
                sy = 1.0 - ty
                tx2 = tx * tx
                ty2 = ty * ty
                wx0 = sx * sx * sx / 6.0
                wx1 = (3.0 * tx2 * tx - 6.0 * tx2 + 4.0) / 6.0
                wx2 = (-3.0 * tx2 * tx + 3.0 * tx2 + 3.0 * tx + 1.0) / 6.0
                wx3 = tx2 * tx / 6.0
                dx0 = -0.5 * sx * sx
                dx1 = 1.5 * tx2 - 2.0 * tx
                dx2 = -1.5 * tx2 + tx + 0.5
                dx3 = 0.5 * tx2
                wy0 = sy * sy * sy / 6.0
                wy1 = (3.0 * ty2 * ty - 6.0 * ty2 + 4.0) / 6.0
                wy2 = (-3.0 * ty2 * ty + 3.0 * ty2 + 3.0 * ty + 1.0) / 6.0
                wy3 = ty2 * ty / 6.0
                dy0 = -0.5 * sy * sy
                dy1 = 1.5 * ty2 - 2.0 * ty
                dy2 = -1.5 * ty2 + ty + 0.5
                dy3 = 0.5 * ty2
                r0 = iy + PAD - 1
                c0 = ix + PAD - 1
                for c in range(nc):
                    v = 0.0
                    ax = 0.0
                    ay = 0.0
                    for j in range(4):
                        row = coef[b, r0 + j]
                        q0 = row[c0, c]
                        q1 = row[c0 + 1, c]
                        q2 = row[c0 + 2, c]
                        q3 = row[c0 + 3, c]
                        rv = wx0 * q0 + wx1 * q1 + wx2 * q2 + wx3 * q3
                        rd = dx0 * q0 + dx1 * q1 + dx2 * q2 + dx3 * q3
                        if j == 0:
                            wj, dj = wy0, dy0
                        elif j == 1:
                            wj, dj = wy1, dy1
                        elif j == 2:
                            wj, dj = wy2, dy2
                        else:
                            wj, dj = wy3, dy3
                        v += wj * rv
                        ax += wj * rd
                        ay += dj * rv
                    val[b, c, p] = v
                    gx[b, c, p] = ax * inx
                    gy[b, c, p] = ay * iny


class CubicImage:
    """A ``(B, C, H, W)`` image stack ready for cubic B-spline sampling with gradients."""

    def __init__(self, images: np.ndarray, device: torch.device | str = "cpu", use_numba: bool | None = None,
                 dtype: torch.dtype = torch.float32):
        a = np.asarray(images)
        if a.ndim == 3:
            a = a[:, None]
        if a.ndim != 4 or min(a.shape[2:]) < 2:
            raise ValueError(f"need a (B, C, H, W) stack of images at least 2x2, got shape {a.shape}")
        self.batch, self.channels, self.h, self.w = a.shape
        self.dtype = dtype
        self._np_dtype = np.float64 if dtype == torch.float64 else np.float32
        coef = np.pad(prefilter(a, self._np_dtype), ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)), mode="reflect")
        self.device = torch.device(device)
        self.use_numba = (HAVE_NUMBA if use_numba is None else bool(use_numba)) and self.device.type == "cpu"
        if self.use_numba and not HAVE_NUMBA:
            raise ValueError("numba is not installed")
        # channel-last: the C values of a pixel are adjacent (one neighbourhood, every channel)
        self._coef_np = np.ascontiguousarray(coef.transpose(0, 2, 3, 1))
        self._coef_t = torch.as_tensor(self._coef_np, device=self.device)
        hp, wp = coef.shape[2:]
        self._offsets = (torch.arange(4, device=self.device)[:, None] * wp
                         + torch.arange(4, device=self.device)[None, :]).reshape(-1)
        self._wp = wp

    def sample(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values and gradients ``(B, C, *x.shape[1:])`` (this image's dtype) at positions ``x, y`` ``(B, ...)``.

        Positions are in this image's pixels (column ``x``, row ``y``).
        """
        shape = x.shape
        b = shape[0]
        xf = x.detach().reshape(b, -1)
        yf = y.detach().reshape(b, -1)
        if self.use_numba:
            xn = np.ascontiguousarray(xf.cpu().numpy(), dtype=np.float64)
            yn = np.ascontiguousarray(yf.cpu().numpy(), dtype=np.float64)
            out = np.empty((3, b, self.channels, xn.shape[1]), self._np_dtype)
            _kernel(self._coef_np, xn, yn, self.h, self.w, out[0], out[1], out[2])
            res = torch.from_numpy(out)
        else:
            res = self._sample_torch(xf, yf)
        v, gx, gy = (r.reshape(b, self.channels, *shape[1:]) for r in res)
        return v, gx, gy

    def _sample_torch(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The same numbers as the numba kernel, with torch gathers (CUDA, or no numba)."""
        b, npts = x.shape
        x = x.to(self.device, torch.float64)
        y = y.to(self.device, torch.float64)
        inx = ((x > 0) & (x < self.w - 1)).to(self.dtype)
        iny = ((y > 0) & (y < self.h - 1)).to(self.dtype)
        x = x.clamp(0.0, self.w - 1.0)
        y = y.clamp(0.0, self.h - 1.0)
        ix = x.floor().clamp(max=self.w - 2)
        iy = y.floor().clamp(max=self.h - 2)
        wx, dx = _weights((x - ix).to(self.dtype))
        wy, dy = _weights((y - iy).to(self.dtype))
        base = (iy.long() + PAD - 1) * self._wp + (ix.long() + PAD - 1)  # (B, P)
        idx = base[..., None] + self._offsets  # (B, P, 16)
        flat = self._coef_t.reshape(b, -1, self.channels)  # (B, Hp*Wp, C)
        q = torch.gather(flat, 1, idx.reshape(b, -1, 1).expand(-1, -1, self.channels))
        q = q.reshape(b, npts, 4, 4, self.channels)
        rv = (q * wx[:, :, None, :, None]).sum(3)  # (B, P, 4[j], C)
        rd = (q * dx[:, :, None, :, None]).sum(3)
        v = (rv * wy[..., None]).sum(2)
        gx = (rd * wy[..., None]).sum(2) * inx[..., None]
        gy = (rv * dy[..., None]).sum(2) * iny[..., None]
        return torch.stack([v, gx, gy]).permute(0, 1, 3, 2)  # (3, B, C, P)


class _Sample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, image):  # noqa: D102
        v, gx, gy = image.sample(x, y)
        ctx.save_for_backward(gx, gy)
        ctx.out = (x.dtype, x.device)
        return v.to(x.device, x.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        gx, gy = ctx.saved_tensors
        dtype, device = ctx.out
        g = grad.to(gx.device, gx.dtype)
        return (g * gx).sum(1).to(device, dtype), (g * gy).sum(1).to(device, dtype), None


def sample(image: CubicImage, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Differentiable (in ``x``, ``y``) cubic B-spline sample ``(B, C, ...)`` of ``image``."""
    return _Sample.apply(x, y, image)
