"""Levenberg-Marquardt (Gauss-Newton) minimisation of the SSD elastic energy.

For the SSD image term the energy is a sum of squares whose Jacobian has a separable
structure: the map at pixel ``(y, x)`` is ``By[y] · C · Bx[x]`` (:mod:`.spline`), so with the
moving image's gradient ``G`` at the mapped positions

* the gradient is ``By.T @ (w r G) @ Bx``                       (two small matrix products),
* the Gauss-Newton matrix is ``Ky.T @ (w Ga Gb) @ Kx``, ``K = B ⊙ B`` (row-wise Kronecker):
  three matrix products per level, exact, whatever the number of pixels.

The regulariser and the landmarks are quadratic in the coefficients (:mod:`.regularization`),
so they enter the normal equations exactly. Each step solves
``(J'J + R + μ diag) δ = -g`` and is kept only if it lowers the energy (μ adapts, as in
Levenberg-Marquardt); a stage ends when an accepted step lowers the energy by less than the
relative ``tolerance`` (bUnwarpJ's *stop threshold* has this meaning), or after ``max_iter``
steps. No autograd, one image sampling per trial step: this is what makes the native engine fast.

The moving image is interpolated by cubic B-splines (bUnwarpJ's interpolation) with
:class:`.sampler.CubicImage`, which returns the value and its exact gradient with respect to
the position in one pass; that gradient gives the Jacobian.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ...threads import torch_threads
from . import energy, sampler, spline
from .optimize import subgrid_step
from .spline import row_kron, separable_gram

_BINOMIAL5 = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


@dataclass
class Level:
    """One pyramid level of a ``(B, H, W)`` (or ``(B, C, H, W)``) stack: samples at full-resolution positions."""

    image: np.ndarray  # (B, h, w) or (B, C, h, w)
    py: np.ndarray  # (h,) row positions in full-resolution pixels
    px: np.ndarray  # (w,)

    @property
    def step(self) -> float:
        return float(self.py[1] - self.py[0]) if len(self.py) > 1 else 1.0


def pyramid(stack: np.ndarray, levels: int) -> list[Level]:
    """Burt-Adelson pyramid: level ``k`` is ``2**k`` times coarser (binomial blur, decimation).

    Stops early when a level would be less than 16 pixels a side.
    """
    out = [Level(np.asarray(stack, dtype=np.float32), np.arange(stack.shape[-2], dtype=np.float64),
                 np.arange(stack.shape[-1], dtype=np.float64))]
    for _ in range(levels):
        prev = out[-1]
        if min(prev.image.shape[-2:]) < 32:
            break
        sm = ndimage.correlate1d(prev.image, _BINOMIAL5, axis=-2, mode="reflect")
        sm = ndimage.correlate1d(sm, _BINOMIAL5, axis=-1, mode="reflect")
        out.append(Level(sm[..., ::2, ::2].copy(), prev.py[::2], prev.px[::2]))
    return out


def pixel_sum(x: torch.Tensor) -> torch.Tensor:
    """``(B, h, w) -> (B,)`` float64 sum, the same whatever torch's thread count.

    torch splits large CPU reductions between threads, so the rounding depends on how many
    there are; numpy's pairwise sum does not. (CUDA: torch's own.)
    """
    if x.device.type == "cpu":
        return torch.from_numpy(np.ascontiguousarray(x.detach().double().numpy()).sum(axis=(-2, -1)))
    return x.double().sum(dim=(-2, -1))


def solve(lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Batched ``lhs⁻¹ rhs``; on the CPU on one thread (LAPACK's result depends on the count)."""
    if lhs.device.type != "cpu":
        return torch.linalg.solve(lhs, rhs)
    with torch_threads(1):
        return torch.linalg.solve(lhs, rhs)


class SSDLevel:
    """The SSD image term of one level: fixed samples, moving image, basis matrices.

    Images may have channels (``(B, C, h, w)`` levels, e.g. MIND descriptors): the term is then
    the mean over channels of each channel's SSD.
    """

    def __init__(self, fixed: Level, fixed_mask: np.ndarray | None, moving: Level, moving_mask: np.ndarray | None,
                 shape: tuple[int, int], intervals: int, max_samples: int | None, dtype: torch.dtype,
                 device: torch.device, source_shape: tuple[int, int], hessian_samples: int | None = 256):
        """``fixed_mask``/``moving_mask``: 0/1 arrays of the levels' shapes, ``None`` for all pixels."""
        fim, fmask, fy, fx = fixed.image, fixed_mask, fixed.py, fixed.px
        if fim.ndim == 3:
            fim = fim[:, None]
        k = subgrid_step(max(fim.shape[-2:]), max_samples)
        if k > 1:
            fim, fy, fx = fim[..., ::k, ::k], fy[::k], fx[::k]
            fmask = None if fmask is None else fmask[:, ::k, ::k]
        h, w = shape
        t = lambda a, d=dtype: torch.as_tensor(np.ascontiguousarray(a), dtype=d, device=device)  # noqa: E731
        self.by = t(spline.basis(fy, h, intervals, "y"), torch.float64)
        self.bx = t(spline.basis(fx, w, intervals, "x"), torch.float64)
        # the Gauss-Newton matrix (a model, not the gradient) from at most ~hessian_samples² pixels
        self.hstep = subgrid_step(max(fim.shape[-2:]), hessian_samples)
        self.ky = row_kron(self.by[::self.hstep], self.by[::self.hstep])
        self.kx = row_kron(self.bx[::self.hstep], self.bx[::self.hstep])
        self.fixed = t(fim)  # (B, C, h, w)
        self.channels = fim.shape[1]
        self.fmask = None if fmask is None else t(fmask)
        mim = moving.image if moving.image.ndim == 4 else moving.image[:, None]
        if mim.shape[1] != self.channels:
            raise ValueError(f"fixed and moving levels have {self.channels} and {mim.shape[1]} channels")
        self.moving = sampler.CubicImage(mim, device, dtype=dtype)  # cubic B-spline, value + gradient in one pass
        self.mmask = None if moving_mask is None else t(moving_mask[:, None])
        self.m_origin, self.m_step = float(moving.px[0]), moving.step
        self.m_size = (len(moving.py), len(moving.px))
        self.source_shape = source_shape  # full-resolution grid of the moving image
        self.dtype = dtype

    def sample(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Residual ``r`` ``(B, C, h, w)`` (moved - fixed), weights ``w`` ``(B, h, w)`` and
        gradient ``g`` ``(B, C, 2, h, w)`` (d/dx, d/dy in full-resolution pixels) for grids ``c``."""
        x = (self.by @ c[:, 0] @ self.bx.T)
        y = (self.by @ c[:, 1] @ self.bx.T)
        hs, ws = self.source_shape
        w = energy.soft_inside(x, y, hs, ws).to(self.dtype)
        if self.fmask is not None:
            w = w * self.fmask
        mx = (x - self.m_origin) / self.m_step
        my = (y - self.m_origin) / self.m_step
        moved, gx, gy = self.moving.sample(mx, my)
        if self.mmask is not None:
            hm, wm = self.m_size
            grid = torch.stack([mx * (2.0 / max(wm - 1, 1)) - 1.0, my * (2.0 / max(hm - 1, 1)) - 1.0], dim=-1)
            w = w * (F.grid_sample(self.mmask, grid.to(self.dtype), mode="nearest", align_corners=True)[:, 0] > 0.5)
        g = torch.stack([gx, gy], dim=2).to(self.dtype) / self.m_step
        return moved.to(self.dtype) - self.fixed, w, g

    def energy(self, r: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        w = w.double()
        return pixel_sum(w[:, None] * r.double() ** 2).sum(1) / (pixel_sum(w).clamp(min=1.0) * self.channels)

    def normal_equations(self, r: torch.Tensor, w: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient ``(B, 2n²)`` and Gauss-Newton matrix ``(B, 2n², 2n²)`` of the image term."""
        b = r.shape[0]
        n = self.by.shape[1]
        # float64 throughout: small float32 matrix products are not thread-count independent
        r, w, g = r.double(), w.double(), g.double()
        scale = (2.0 / (pixel_sum(w).clamp(min=1.0) * self.channels))[:, None, None]
        ws = w * scale
        if self.channels == 1:
            rg = r[:, 0, None] * g[:, 0]  # (B, 2, h, w)
        else:
            rg = (r[:, :, None] * g).sum(1)
        grad = torch.cat([(self.by.T @ (ws * rg[:, a]) @ self.bx).reshape(b, -1) for a in range(2)], dim=1)
        k = self.hstep
        wk = ws[:, ::k, ::k] * (k * k)
        gs = g[..., ::k, ::k]
        blocks = {}
        for a, bb in ((0, 0), (0, 1), (1, 1)):
            gg = gs[:, 0, a] * gs[:, 0, bb] if self.channels == 1 else (gs[:, :, a] * gs[:, :, bb]).sum(1)
            blocks[a, bb] = separable_gram(self.ky, self.kx, wk * gg, n)
        hess = torch.cat([torch.cat([blocks[0, 0], blocks[0, 1]], 2),
                          torch.cat([blocks[0, 1].transpose(1, 2), blocks[1, 1]], 2)], 1)
        return grad, hess


class Landmarks:
    """``weight * mean |g(p_fixed) - p_moving|²``: linear residuals in the coefficients."""

    def __init__(self, fixed_pts: torch.Tensor, moving_pts: torch.Tensor, shape: tuple[int, int], intervals: int,
                 weight: float):
        h, w = shape
        p = fixed_pts.cpu().numpy()
        rows = []
        for pts in p:
            by = spline.basis(pts[:, 1], h, intervals, "y")
            bx = spline.basis(pts[:, 0], w, intervals, "x")
            rows.append(row_kron(by, bx))
        self.p = torch.as_tensor(np.stack(rows), dtype=torch.float64, device=fixed_pts.device)  # (B, K, n²)
        self.q = moving_pts.to(torch.float64)
        self.k = max(fixed_pts.shape[1], 1)
        self.weight = float(weight)

    def residual(self, c: torch.Tensor) -> torch.Tensor:
        b = c.shape[0]
        pos = torch.stack([self.p @ c[:, a].reshape(b, -1, 1) for a in range(2)], dim=-1)[:, :, 0]  # (B, K, 2)
        return pos - self.q

    def energy(self, c: torch.Tensor) -> torch.Tensor:
        return self.weight * (self.residual(c) ** 2).sum(dim=(1, 2)) / self.k

    def normal_equations(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.residual(c)
        s = 2.0 * self.weight / self.k
        grad = torch.cat([s * (self.p.transpose(1, 2) @ r[:, :, a:a + 1])[..., 0] for a in range(2)], dim=1)
        ptp = s * self.p.transpose(1, 2) @ self.p
        z = torch.zeros_like(ptp)
        return grad, torch.cat([torch.cat([ptp, z], 2), torch.cat([z, ptp], 2)], 1)


class ImageTerm:
    """``weight ·`` the SSD of one direction (map ``d`` of the coefficient stack)."""

    part = "image"

    def __init__(self, level: SSDLevel, weight: float, d: int = 0):
        self.level, self.weight, self.d = level, float(weight), d

    def evaluate(self, c: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        r, w, g = self.level.sample(c[:, self.d])
        return self.weight * self.level.energy(r, w), (r, w, g)

    def normal_equations(self, c: torch.Tensor, state: tuple, size: int):
        g, h = self.level.normal_equations(*state)
        return _place(self.weight * g, self.weight * h, self.d, size)


class QuadraticTerm:
    """``c_d · R · c_d`` (the regulariser of map ``d``)."""

    part = "regularization"

    def __init__(self, matrix: torch.Tensor, d: int = 0):
        self.matrix, self.d = matrix, d

    def evaluate(self, c: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        return energy.vector_spline_regularization(c[:, self.d], self.matrix), ()

    def normal_equations(self, c: torch.Tensor, state: tuple, size: int):
        flat = c[:, self.d].reshape(c.shape[0], -1)
        return _place(2.0 * flat @ self.matrix, (2.0 * self.matrix).expand(c.shape[0], -1, -1), self.d, size)


class LandmarkTerm:
    """The landmarks of map ``d``."""

    part = "landmarks"

    def __init__(self, landmarks: "Landmarks", d: int = 0):
        self.lm, self.d = landmarks, d

    def evaluate(self, c: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        return self.lm.energy(c[:, self.d]), ()

    def normal_equations(self, c: torch.Tensor, state: tuple, size: int):
        g, h = self.lm.normal_equations(c[:, self.d])
        return _place(g, h, self.d, size)


def _place(grad: torch.Tensor, hess: torch.Tensor, d: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Put the gradient/matrix of map ``d`` into the slots of the whole coefficient stack."""
    m = grad.shape[1]
    if m == size:
        return grad, hess
    g = grad.new_zeros(grad.shape[0], size)
    h = hess.new_zeros(hess.shape[0], size, size)
    g[:, d * m:(d + 1) * m] = grad
    h[:, d * m:(d + 1) * m, d * m:(d + 1) * m] = hess
    return g, h


PARTS = ("image", "regularization", "landmarks", "consistency")


def minimise(c0: torch.Tensor, terms: list, max_iter: int, tolerance: float, max_trials: int = 6) -> tuple[torch.Tensor, dict]:
    """Levenberg-Marquardt on the coefficient stack ``c0`` ``(B, D, 2, n, n)``; returns it and stage info.

    ``terms``: objects with ``part`` (a name of :data:`PARTS`), ``evaluate(c) -> (energy (B,),
    state)`` and ``normal_equations(c, state, size) -> (gradient (B, size), Gauss-Newton matrix
    (B, size, size))`` over the flattened stack (``size = D·2n²``). Pairs of a batch are
    independent: each has its own damping and stops on its own.
    """
    b = c0.shape[0]
    c = c0.to(torch.float64).clone()
    size = c[0].numel()

    def evaluate(cc: torch.Tensor) -> tuple[torch.Tensor, dict]:
        parts = {k: cc.new_zeros(b) for k in PARTS}
        states = []
        for term in terms:
            e, st = term.evaluate(cc)
            parts[term.part] = parts[term.part] + e
            states.append(st)
        parts["total"] = sum(parts[k] for k in PARTS)
        return parts["total"], {"parts": parts, "states": states}

    e, cache = evaluate(c)
    e_start = e.clone()
    mu = torch.full((b,), 1e-3, dtype=torch.float64, device=c.device)
    active = torch.ones(b, dtype=torch.bool, device=c.device)
    iterations = torch.zeros(b, dtype=torch.long)
    evaluations = 1
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        grad = c.new_zeros(b, size)
        hess = c.new_zeros(b, size, size)
        for term, st in zip(terms, cache["states"]):
            g, h = term.normal_equations(c, st, size)
            grad, hess = grad + g, hess + h
        # damping μ·mean(diag)·I: all coefficients are positions in pixels, so this bounds the
        # step in pixels, also for coefficients that no pixel constrains (outside the overlap)
        diag = torch.diagonal(hess, dim1=1, dim2=2)
        damp_base = diag.mean(dim=1, keepdim=True).expand_as(diag) + 1e-12
        accepted = torch.zeros(b, dtype=torch.bool, device=c.device)
        new_c, new_e, new_cache = c, e, cache
        for _trial in range(max_trials):
            todo = active & ~accepted
            if not bool(todo.any()):
                break
            lhs = hess + torch.diag_embed(mu[:, None] * damp_base)
            try:
                delta = solve(lhs, -grad[..., None])[..., 0]
            except RuntimeError:  # singular system: fall back to a damped gradient step
                delta = -grad / damp_base
            if _trial == 0:
                # the decrease the quadratic model promises; below the tolerance: converged
                predicted = -(grad * delta).sum(1) - 0.5 * torch.einsum("bi,bij,bj->b", delta, hess, delta)
                converged = todo & (predicted < tolerance * e.abs())
                active = active & ~converged
                todo = todo & ~converged
                if not bool(todo.any()):
                    break
            delta = torch.where(todo[:, None], delta, torch.zeros_like(delta))
            trial_c = c + delta.reshape(c.shape)
            trial_e, trial_cache = evaluate(trial_c)
            evaluations += 1
            ok = todo & torch.isfinite(trial_e) & (trial_e < e)
            if bool(ok.any()):
                sel = ok.reshape((-1,) + (1,) * (c.dim() - 1))
                new_c = torch.where(sel, trial_c, new_c)
                new_e = torch.where(ok, trial_e, new_e)
                new_cache = _merge(new_cache, trial_cache, ok)
                accepted |= ok
            mu = torch.where(ok, mu / 3.0, torch.where(todo, mu * 4.0, mu))
        rel = (e - new_e) / e.abs().clamp(min=1e-300)
        iterations += accepted.cpu().long()
        c, cache = new_c, new_cache
        e = new_e
        # a pair stops when no step helped, or when its best step gained less than `tolerance`
        active = active & accepted & (rel >= tolerance)
        if not bool(active.any()):
            break
    parts = {k: v.detach().cpu().numpy().tolist() for k, v in cache["parts"].items()}
    info = {
        "initial_energy": e_start.cpu().numpy().tolist(),
        "energy": parts,
        "iterations": int(iterations.max()),
        "evaluations": evaluations,
        "restarts": 0,
        "optimizer": "levenberg-marquardt",
    }
    return c, info


def _merge(old, new, take: torch.Tensor):
    """Per pair, the cached evaluation of ``new`` where ``take`` else of ``old`` (nested containers)."""
    if isinstance(new, dict):
        return {k: _merge(old[k], v, take) for k, v in new.items()}
    if isinstance(new, (list, tuple)):
        return type(new)(_merge(o, v, take) for o, v in zip(old, new))
    shape = (-1,) + (1,) * (new.dim() - 1)
    return torch.where(take.reshape(shape), new, old)


def level_for_scale(levels: int, scale: int, max_scale: int, subsample: int) -> int:
    """Pyramid level of deformation scale ``scale``: ``max_scale - scale + subsample`` (bounded)."""
    return max(0, min(levels - 1, max_scale - scale + subsample))

