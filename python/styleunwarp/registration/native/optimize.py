"""Multiresolution optimisation of the elastic energy (torch autograd + L-BFGS).

Schedule: one stage per deformation scale ``s = min .. max`` (``2**s`` intervals), the
coefficient grids refined exactly by B-spline subdivision between stages. The image term of
stage ``s`` uses a Gaussian pyramid level reduced by ``2**(max - s + img_subsamp_fact)`` (at
least 16 px a side), so coarse deformations see smooth, small images and the final scale the
full (or subsampled, as bUnwarpJ's factor asks) images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from . import energy, mind, regularization, sampler, spline


@dataclass
class Side:
    """One image of the pair as the *fixed* image of one direction."""

    image: np.ndarray  # (B, H, W) float64
    mask: np.ndarray  # (B, H, W) float64 0/1

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[2]


@dataclass
class Settings:
    similarity: str = "ssd"
    ncc_window: int | None = None
    nmi_bins: int = 32
    mind_radius: int = 2
    max_iter: int = 60
    tolerance: float = 1e-6
    history: int = 20
    consistency_points: int = 32
    max_samples: int | None = None
    restarts: int = 4
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float64


def subgrid_step(length: int, samples: int | None) -> int:
    """Stride of a regular sub-grid with about ``samples`` points along ``length`` (1: every pixel)."""
    return 1 if not samples or length <= samples else -(-length // samples)


def level_positions(length: int, factor: int) -> tuple[np.ndarray, int]:
    """Pixel positions (full-resolution coordinates) of a pyramid level reduced by ``factor``."""
    n = max(min(length, 16), int(round((length - 1) / factor)) + 1)
    return np.linspace(0.0, length - 1.0, n), n


def pyramid_level(image: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(B, h, w)`` level of a ``(B, H, W)`` stack: Gaussian smoothing then resampling."""
    _, h, w = image.shape
    py, _ = level_positions(h, factor)
    px, _ = level_positions(w, factor)
    if factor <= 1 and len(py) == h and len(px) == w:
        return image, py, px
    sigma = 0.5 * math.sqrt(max(factor * factor - 1, 0)) if factor > 1 else 0.0
    yy, xx = np.meshgrid(py, px, indexing="ij")
    out = []
    for im in image:
        sm = ndimage.gaussian_filter(im, sigma, mode="reflect") if sigma > 0 else im
        out.append(ndimage.map_coordinates(sm, [yy, xx], order=1, mode="nearest"))
    return np.stack(out), py, px


class Direction:
    """Image term of one direction at one pyramid level: fixed grid → moving image."""

    def __init__(self, fixed: Side, moving: Side, factor: int, s: Settings, nint: int):
        t = lambda a: torch.as_tensor(np.array(a), dtype=s.dtype, device=s.device)  # noqa: E731
        self.shape = fixed.shape
        self.intervals = nint
        self.mshape = moving.shape
        fim, py, px = pyramid_level(fixed.image, factor)
        fmask, _, _ = pyramid_level(fixed.mask, factor) if factor > 1 else (fixed.mask, py, px)
        mim, _, _ = pyramid_level(moving.image, factor)
        mmask, _, _ = pyramid_level(moving.mask, factor) if factor > 1 else (moving.mask, None, None)
        if s.similarity == "mind":  # descriptor images (B, 6, h, w), compared by SSD
            fim, mim = mind.mind_ssc(fim, s.mind_radius), mind.mind_ssc(mim, s.mind_radius)
        k = subgrid_step(max(fim.shape[-2:]), s.max_samples)
        if k > 1:
            # image term on a regular sub-grid of the fixed pixels (the moving image keeps its
            # full resolution): enough samples for a grid of few coefficients, far cheaper
            fim, fmask, py, px = fim[..., ::k, ::k], fmask[:, ::k, ::k], py[::k], px[::k]
        h, w = self.shape
        self.mats = {"y0": t(spline.basis(py, h, nint, "y"))}
        self.mats["x0"] = t(spline.basis(px, w, nint, "x"))
        self.fixed = t(fim)
        self.fmask = t(fmask > 0.5)
        self.moving = t(mim) if mim.ndim == 4 else t(mim)[:, None]
        self.mmask = t(mmask > 0.5)[:, None]  # float for grid_sample
        self.full_mask_moving = bool((moving.mask > 0.5).all())
        self.sim = s.similarity
        self.window = s.ncc_window
        self.bins = s.nmi_bins
        if self.sim == "nmi":
            lo_f, hi_f = self._range(fixed.image)
            lo_m, hi_m = self._range(moving.image)
            scaled = (self.fixed - lo_f[:, None, None]) / (hi_f - lo_f)[:, None, None] * (self.bins - 1)
            self.fixed_w = energy.parzen_weights(scaled.reshape(scaled.shape[0], -1).clamp(0, self.bins - 1), self.bins)
            self.moving = (self.moving - lo_m[:, None, None, None]) / (hi_m - lo_m)[:, None, None, None] * (self.bins - 1)
        self.cubic = sampler.CubicImage(self.moving.cpu().numpy(), s.device, dtype=s.dtype)
        # consistency points: a sub-grid of the level grid (at most consistency_points a side)
        sy = py[:: max(1, len(py) // s.consistency_points)]
        sx = px[:: max(1, len(px) // s.consistency_points)]
        self.cons = (t(spline.basis(sy, h, nint, "y")), t(spline.basis(sx, w, nint, "x")), t(sy), t(sx))

    def _range(self, im: np.ndarray):
        lo = torch.as_tensor(im.reshape(im.shape[0], -1).min(1), dtype=self.fixed.dtype, device=self.fixed.device)
        hi = torch.as_tensor(im.reshape(im.shape[0], -1).max(1), dtype=self.fixed.dtype, device=self.fixed.device)
        return lo, torch.maximum(hi, lo + 1e-6)

    def overlap(self, c: torch.Tensor) -> torch.Tensor:
        """Weights of the fixed pixels that ``c`` maps inside the moving image (no gradient).

        1 inside, falling linearly to 0 one pixel outside the border, times the masks.
        """
        with torch.no_grad():
            x = spline.dense(c[:, 0], self.mats["y0"], self.mats["x0"])
            y = spline.dense(c[:, 1], self.mats["y0"], self.mats["x0"])
            hm, wm = self.mshape
            mask = energy.soft_inside(x, y, hm, wm) * self.fmask
            if not self.full_mask_moving:
                grid = torch.stack([x * (2.0 / (wm - 1)) - 1.0, y * (2.0 / (hm - 1)) - 1.0], dim=-1)
                mask = mask * (F.grid_sample(self.mmask, grid, mode="nearest", align_corners=True)[:, 0] > 0.5)
        return mask

    def image_term(self, c: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Similarity of fixed and warped moving image for grids ``c`` ``(B, 2, n, n)``.

        ``mask``: the overlap weights, frozen during an L-BFGS run (see :func:`run_stage`).
        """
        x = spline.dense(c[:, 0], self.mats["y0"], self.mats["x0"])
        y = spline.dense(c[:, 1], self.mats["y0"], self.mats["x0"])
        hm, wm = self.mshape
        ml = self.moving.shape[-2:]  # the moving level's grid spans the full image
        moved = sampler.sample(self.cubic, x * ((ml[1] - 1) / (wm - 1)), y * ((ml[0] - 1) / (hm - 1)))
        moved = moved if self.fixed.dim() == 4 else moved[:, 0]
        if mask is None:
            mask = self.overlap(c)
        if self.sim in ("ssd", "mind"):
            return energy.ssd(self.fixed, moved, mask)
        if self.sim == "ncc":
            return energy.ncc(self.fixed, moved, mask, self.window)
        return energy.nmi(self.fixed_w, moved, mask, self.bins)


def run_stage(
    coeffs: torch.Tensor,
    dirs: list[Direction],
    weights: dict[str, float],
    landmarks: list[tuple[torch.Tensor, torch.Tensor]] | None,
    s: Settings,
) -> tuple[torch.Tensor, dict]:
    """Minimise the energy over ``coeffs`` ``(B, D, 2, n, n)`` (D = 1 direct, 2 direct+inverse)."""

    masks: list[torch.Tensor | None] = [None] * len(dirs)
    reg_mats = [regularization.tensor(d.intervals, d.shape, weights["divergence"], weights["curl"],
                                      coeffs.dtype, coeffs.device) for d in dirs]

    def parts(c: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        zero = c.new_zeros(c.shape[0])
        img = reg = lm = zero
        for d, direction in enumerate(dirs):
            cd = c[:, d]
            if weights["image"]:
                img = img + weights["image"] * direction.image_term(cd, masks[d])
            if reg_mats[d] is not None:
                reg = reg + energy.vector_spline_regularization(cd, reg_mats[d])
            if landmarks is not None and weights["landmark"]:
                fp, mp = landmarks[d]
                lm = lm + weights["landmark"] * energy.landmarks(cd, direction.shape, fp, mp)
        out["image"], out["regularization"], out["landmarks"] = img, reg, lm
        cons = zero
        if len(dirs) == 2 and weights["consistency"]:
            a, b = dirs
            cons = energy.consistency(c[:, 0], *a.cons, c[:, 1], b.shape)
            cons = cons + energy.consistency(c[:, 1], *b.cons, c[:, 0], a.shape)
            cons = weights["consistency"] * cons
        out["consistency"] = cons
        out["total"] = img + reg + lm + cons
        return out

    with torch.no_grad():
        e0 = parts(coeffs)["total"]
    scale = 1.0 / torch.where(e0 > 1e-12, e0, torch.ones_like(e0))
    x = coeffs.clone().requires_grad_(True)
    n_eval = 0
    n_iter = 0
    rounds = 0

    def closure():
        nonlocal n_eval
        n_eval += 1
        opt.zero_grad()
        e = (parts(x)["total"] * scale).sum()
        e.backward()
        return e

    # The overlap (which fixed pixels land inside the moving image) is frozen during one L-BFGS
    # run, so the energy it minimises is smooth and its gradient exact; the run is restarted
    # with the updated overlap until a restart no longer lowers the energy.
    prev = float("inf")
    while bool((e0 > 1e-12).any()) and rounds < s.restarts and n_iter < s.max_iter:
        rounds += 1
        for d, direction in enumerate(dirs):
            masks[d] = direction.overlap(x.detach()[:, d])
        opt = torch.optim.LBFGS(
            [x], lr=1.0, max_iter=s.max_iter - n_iter, max_eval=int((s.max_iter - n_iter) * 1.5),
            tolerance_grad=1e-9, tolerance_change=s.tolerance, history_size=s.history, line_search_fn="strong_wolfe",
        )
        opt.step(closure)
        n_iter += int(opt.state[opt._params[0]].get("n_iter", 0))
        with torch.no_grad():
            for d, direction in enumerate(dirs):
                masks[d] = direction.overlap(x.detach()[:, d])
            now = float((parts(x)["total"] * scale).sum())
        if not prev - now > s.tolerance * len(e0):
            break
        prev = now
    for d in range(len(dirs)):
        masks[d] = None
    with torch.no_grad():
        final = {k: v.detach().cpu().numpy().tolist() for k, v in parts(x).items()}
    info = {
        "initial_energy": e0.cpu().numpy().tolist(),
        "energy": final,
        "iterations": n_iter,
        "evaluations": n_eval,
        "restarts": rounds,
    }
    return x.detach(), info
