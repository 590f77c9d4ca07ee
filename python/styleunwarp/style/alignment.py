"""How far a registration would move an aligned pair: a differentiable training signal.

For a model output ``pred`` and its target map ``target``, aligned by construction, the sum of
squared differences over a window is stationary at the truth only if the window's boundaries lie
where the target's do. One Gauss-Newton step of a local translation says how far a registration
driven by that similarity would move the window away from the truth:

    r = pred - target,  g = (grad pred + grad target) / 2   (the symmetric, ESM-style gradient)
    H = sum_w g g^T + lambda I,  b = sum_w r g,  shift = -H^-1 b   (pixels, x then y)

over windows of ``window`` px every ``stride`` px (the scale of the elastic step's spline grid),
at each level of a pyramid (both images averaged over ``f`` x ``f`` blocks for each ``f`` in
``factors``; the window stays ``window`` full-resolution px, at least 8 pooled px; shifts in
full-resolution px): a registration that starts coarse, as bUnwarpJ does, is pulled by the
coarse levels' bias first. On the shipped model's aligned steel test pairs the shifts of the
coarse levels (factors 4 and 8) are the ones that go with how far bUnwarpJ moves the pair
(correlation 0.5 over 20 pairs, against 0.15 at full resolution; docs/style.md).
``lambda`` is ``damping`` times the batch's mean gradient energy, so a window without structure is
not moved. The shift is ``pred``'s displacement that best matches ``target``: ``pred(x + shift) ~
target(x)``. :func:`alignment_loss` penalises it robustly (px^2 below ``cap_px``, flattening above),
so a model can be trained to place boundaries where a registration will leave them (the "floor" of
``benchmarks/bench_representation_floor.py``), not only to match intensities (L1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW = 128
STRIDE = 64
FACTORS = (1, 2, 4, 8)
DAMPING = 0.01
CAP_PX = 5.0


def _gradients(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences (x, y) of ``img`` (N, C, H, W), replicated at the border."""
    p = F.pad(img, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2])
    gy = 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])
    return gx, gy


def local_shift(pred: torch.Tensor, target: torch.Tensor, window: int = WINDOW, stride: int = STRIDE,
                damping: float = DAMPING) -> torch.Tensor:
    """The Gauss-Newton translation (N, 2, h, w; x then y, px) of each window of ``pred`` onto ``target``.

    ``pred`` and ``target`` are (N, C, H, W); differentiable in both. The C channels of a
    multi-channel code share one shift (their normal equations are summed). An image smaller
    than ``window`` is one window.
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"pred and target must both be (N, C, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")
    if min(pred.shape[-2:]) < window:
        window = stride = min(pred.shape[-2:])
    gpx, gpy = _gradients(pred)
    gtx, gty = _gradients(target)
    gx, gy = 0.5 * (gpx + gtx), 0.5 * (gpy + gty)
    r = pred - target

    def pool(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t.sum(dim=1, keepdim=True), window, stride)

    hxx, hxy, hyy = pool(gx * gx), pool(gx * gy), pool(gy * gy)
    bx, by = pool(r * gx), pool(r * gy)
    lam = damping * (gx * gx + gy * gy).sum(dim=1).mean().detach() + 1e-12
    hxx, hyy = hxx + lam, hyy + lam
    det = hxx * hyy - hxy * hxy
    sx = -(hyy * bx - hxy * by) / det
    sy = -(hxx * by - hxy * bx) / det
    return torch.cat([sx, sy], dim=1)


def pyramid_shifts(pred: torch.Tensor, target: torch.Tensor, factors: tuple[int, ...] = FACTORS,
                   window: int = WINDOW, damping: float = DAMPING) -> list[torch.Tensor]:
    """:func:`local_shift` at each pyramid level ``f`` of ``factors`` (windows of ``window`` full-resolution
    px, half overlapping), in full-resolution px; levels coarser than the image are left out.

    Coarse levels overstate a shift's length (central differences of a texture near the sampling
    limit: about x1.3 at factor 4 and x1.5 at 8 for a 3 px Gaussian texture), never its direction,
    and a pair aligned at full resolution is aligned at every level."""
    out = []
    for f in factors:
        if min(pred.shape[-2:]) // f < 8:
            continue
        a, b = (pred, target) if f == 1 else (F.avg_pool2d(pred, f), F.avg_pool2d(target, f))
        w = max(8, window // f)
        out.append(f * local_shift(a, b, w, max(1, w // 2), damping))
    return out


def alignment_loss(pred: torch.Tensor, target: torch.Tensor, factors: tuple[int, ...] = FACTORS,
                   window: int = WINDOW, damping: float = DAMPING, cap_px: float = CAP_PX) -> torch.Tensor:
    """Robust squared local shift ``d^2 / (1 + d^2 / cap_px^2)`` (px^2) of ``pred`` against ``target``,
    averaged over the windows of each pyramid level, then over the levels."""
    terms = []
    for s in pyramid_shifts(pred, target, factors, window, damping):
        d2 = (s * s).sum(dim=1)
        terms.append((d2 / (1.0 + d2 / cap_px ** 2)).mean())
    return torch.stack(terms).mean()


def mean_shift_px(pred: torch.Tensor, target: torch.Tensor, factors: tuple[int, ...] = FACTORS,
                  window: int = WINDOW, damping: float = DAMPING) -> float:
    """Mean length (px) of the local shifts over the windows and levels: how far a registration would
    move the aligned pair."""
    with torch.no_grad():
        return float(torch.stack([torch.sqrt((s * s).sum(dim=1)).mean()
                                  for s in pyramid_shifts(pred, target, factors, window, damping)]).mean())
