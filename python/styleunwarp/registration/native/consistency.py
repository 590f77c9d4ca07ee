"""The direct/inverse consistency term for the Levenberg-Marquardt engine.

Arganda-Carreras et al. (2006) tie the direct map ``g_a`` (grid ``a`` → grid ``b``) and the
inverse ``g_b`` (grid ``b`` → grid ``a``) by ``mean_p |g_b(g_a(p)) - p|²`` over points ``p``
of grid ``a`` that ``g_a`` sends inside grid ``b`` (and the same from the other side). The
residual ``r(p) = g_b(q) - p``, ``q = g_a(p)``, has an exact Jacobian:

* with respect to ``c_a`` (component ``k``): ``J_b(q)[:, k] · B_a(p)``, ``J_b`` the 2×2
  spatial Jacobian of ``g_b``, ``B_a(p)`` the basis weights of ``p`` (a regular sub-grid, so
  separable: its Gram matrices are the same few products as the image term's);
* with respect to ``c_b`` (component ``m``, residual component ``m``): ``B_b(q)``.

So the term enters the normal equations exactly (Gauss-Newton), as the SSD term does.
"""

from __future__ import annotations

import numpy as np
import torch

from . import energy, spline
from .spline import row_kron, separable_gram


class Consistency:
    """``weight · mean_p inside(q) |g_b(g_a(p)) - p|²`` as a Gauss-Newton term.

    ``a``, ``b``: indices of the two maps in the coefficient stack ``(B, D, 2, n, n)``;
    ``shape_a``/``shape_b``: the grids they are defined on; ``points``: sub-grid points a side.
    """

    part = "consistency"

    def __init__(self, a: int, b: int, shape_a: tuple[int, int], shape_b: tuple[int, int], intervals: int,
                 points: int, weight: float, device: torch.device):
        self.a, self.b = a, b
        self.shape_b = shape_b
        self.nint = intervals
        self.n = intervals + 3
        self.weight = float(weight)
        ha, wa = shape_a
        gy = np.linspace(0.0, ha - 1.0, min(points, ha))
        gx = np.linspace(0.0, wa - 1.0, min(points, wa))
        t = lambda x: torch.as_tensor(x, dtype=torch.float64, device=device)  # noqa: E731
        self.by, self.bx = t(spline.basis(gy, ha, intervals, "y")), t(spline.basis(gx, wa, intervals, "x"))
        self.ky, self.kx = row_kron(self.by, self.by), row_kron(self.bx, self.bx)
        self.ka = row_kron(self.by[:, None, :].expand(-1, len(gx), -1).reshape(-1, self.n),
                           self.bx[None, :, :].expand(len(gy), -1, -1).reshape(-1, self.n))  # (P, n²)
        yy, xx = np.meshgrid(gy, gx, indexing="ij")
        self.p = t(np.stack([xx.ravel(), yy.ravel()]))  # (2, P) as (x, y)
        self.grid = (len(gy), len(gx))

    def _basis(self, q: torch.Tensor, length: int, axis: str) -> tuple[torch.Tensor, torch.Tensor]:
        qn = q.detach().cpu().numpy()
        v = np.stack([spline.basis(row, length, self.nint, axis) for row in qn])
        d = np.stack([spline.basis(row, length, self.nint, axis, 1) for row in qn])
        return torch.as_tensor(v, device=q.device), torch.as_tensor(d, device=q.device)

    def evaluate(self, c: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        bsz = c.shape[0]
        ca, cb = c[:, self.a], c[:, self.b]
        qx = (self.by @ ca[:, 0] @ self.bx.T).reshape(bsz, -1)
        qy = (self.by @ ca[:, 1] @ self.bx.T).reshape(bsz, -1)
        hb, wb = self.shape_b
        inside = energy.soft_inside(qx, qy, hb, wb)
        byq, dbyq = self._basis(qy, hb, "y")  # (B, P, n)
        bxq, dbxq = self._basis(qx, wb, "x")
        res, jac = [], []
        for m in range(2):
            ty = byq @ cb[:, m]  # (B, P, n): rows of the coefficient grid weighted by y
            res.append((ty * bxq).sum(-1) - self.p[m])
            jac.append(torch.stack([(ty * dbxq).sum(-1), ((dbyq @ cb[:, m]) * bxq).sum(-1)], 1))  # d/dx, d/dy
        r = torch.stack(res, 1)  # (B, 2, P)
        j = torch.stack(jac, 1)  # (B, 2[m], 2[k], P)
        e = self.weight * (inside * (r * r).sum(1)).sum(1) / inside.sum(1).clamp(min=1.0)
        return e, (r, inside, j, byq, bxq)

    def normal_equations(self, c: torch.Tensor, state: tuple, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient ``(B, size)`` and Gauss-Newton matrix ``(B, size, size)`` over the whole stack."""
        r, inside, j, byq, bxq = state
        bsz = r.shape[0]
        n2 = self.n * self.n
        w = inside * (2.0 * self.weight / inside.sum(1, keepdim=True).clamp(min=1.0))  # (B, P)
        grad = r.new_zeros(bsz, size)
        hess = r.new_zeros(bsz, size, size)
        sa = lambda k: slice((2 * self.a + k) * n2, (2 * self.a + k + 1) * n2)  # noqa: E731
        sb = lambda m: slice((2 * self.b + m) * n2, (2 * self.b + m + 1) * n2)  # noqa: E731
        gy, gx = self.grid
        kb = row_kron(byq, bxq)  # (B, P, n²)
        hbb = kb.transpose(1, 2) @ (w[..., None] * kb)
        for k in range(2):
            v = (w * (j[:, 0, k] * r[:, 0] + j[:, 1, k] * r[:, 1])).reshape(bsz, gy, gx)
            grad[:, sa(k)] = (self.by.T @ v @ self.bx).reshape(bsz, -1)
            grad[:, sb(k)] = (kb.transpose(1, 2) @ (w * r[:, k])[..., None])[..., 0]
            hess[:, sb(k), sb(k)] = hbb
            for l in range(k, 2):
                vv = (w * (j[:, 0, k] * j[:, 0, l] + j[:, 1, k] * j[:, 1, l])).reshape(bsz, gy, gx)
                blk = separable_gram(self.ky, self.kx, vv, self.n)
                hess[:, sa(k), sa(l)] = blk
                if l != k:
                    hess[:, sa(l), sa(k)] = blk.transpose(1, 2)
            for m in range(2):
                cross = self.ka.T @ ((w * j[:, m, k])[..., None] * kb)  # (B, n², n²): a-comp k, b-comp m
                hess[:, sa(k), sb(m)] = cross
                hess[:, sb(m), sa(k)] = cross.transpose(1, 2)
        return grad, hess
