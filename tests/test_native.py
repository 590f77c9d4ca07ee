"""The native (PyTorch) elastic registration backend."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from scipy import ndimage

from styleunwarp.errors import InputError
from styleunwarp.registration import BUnwarpJParams, register
from styleunwarp.registration.native import (
    assess,
    consistency,
    gauss_newton,
    mind,
    regularization,
    register_batch,
    sampler,
    spline,
)
from styleunwarp.transform import (
    ElasticTransform,
    affine_elastic,
    displacement_error,
    identity_elastic,
    invert_map,
    warp_image,
    write_elastic,
)

SHAPE = (96, 96)
MARGIN = 8


def texture(shape, seed):
    """Smooth random texture, 0..255."""
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(shape)
    t = ndimage.gaussian_filter(n, 2.0, mode="wrap") + 0.5 * ndimage.gaussian_filter(n, 5.0, mode="wrap")
    return (t - t.min()) / np.ptp(t) * 255.0


def smooth_truth(shape, seed, intervals=4, amplitude=2.0):
    """Identity + a shift + random coefficient noise on a coarse grid (target → source)."""
    rng = np.random.default_rng(seed)
    base = identity_elastic(intervals, shape)
    k = intervals + 3
    return ElasticTransform(
        base.cx + 1.5 + amplitude * rng.standard_normal((k, k)),
        base.cy - 1.0 + amplitude * rng.standard_normal((k, k)),
    )


def tre(estimated, truth, shape=SHAPE, margin=MARGIN):
    return float(displacement_error(estimated, truth, shape)[margin:-margin, margin:-margin].mean())


@pytest.fixture(scope="module")
def pair():
    src = texture(SHAPE, 1)
    truth = smooth_truth(SHAPE, 2)
    tgt = warp_image(src, truth, SHAPE).astype(np.float64)
    return tgt, src, truth


MONO = BUnwarpJParams(mode="mono", min_scale_deformation=0, max_scale_deformation=2)
ACCURATE = BUnwarpJParams(mode="accurate", min_scale_deformation=0, max_scale_deformation=2)


# --- the spline model agrees with styleunwarp.transform -------------------------------------


def test_subdivision_is_exact_and_points_match_transform():
    rng = np.random.default_rng(0)
    shape = (40, 56)
    t = smooth_truth(shape, 3, intervals=2, amplitude=3.0)
    c = torch.tensor(np.stack([t.cx, t.cy]))
    r = spline.refine(c).numpy()
    fine = ElasticTransform(r[0], r[1])
    assert fine.intervals == 4
    # exact up to bUnwarpJ's float 2/3 (weights sum to 1 + 2e-8)
    assert displacement_error(fine, t, shape).max() < 1e-5
    x = rng.uniform(-3, 58, 200)
    y = rng.uniform(-3, 42, 200)
    ours = spline.evaluate_points(c, shape, torch.tensor(np.stack([x, x])), torch.tensor(np.stack([y, y]))).numpy()
    ref = t.at(shape, x, y)
    assert np.abs(ours - ref).max() < 1e-10


def test_regularization_matrix_is_the_integral_and_ignores_affine_maps():
    rng = np.random.default_rng(1)
    n, shape = 4, (60, 90)
    wdiv, wcurl = 0.7, 0.3
    c = rng.standard_normal((2, n + 3, n + 3)) * 3
    quad = c.ravel() @ regularization.matrix(n, shape, wdiv, wcurl) @ c.ravel()
    # reference: the published energy's integrand on a fine grid (Riemann sum)
    py, px = np.linspace(0, shape[0] - 1, 1500), np.linspace(0, shape[1] - 1, 2200)
    mats = {f"y{k}": torch.tensor(spline.basis(py, shape[0], n, "y", k)) for k in range(3)}
    mats.update({f"x{k}": torch.tensor(spline.basis(px, shape[1], n, "x", k)) for k in range(3)})
    d = lambda cc, a, b: (mats[f"y{a}"] @ torch.tensor(cc) @ mats[f"x{b}"].T).numpy()  # noqa: E731
    uxx, uxy, uyy = d(c[0], 0, 2), d(c[0], 1, 1), d(c[0], 2, 0)
    vxx, vxy, vyy = d(c[1], 0, 2), d(c[1], 1, 1), d(c[1], 2, 0)
    integrand = wdiv * ((uxx + vxy) ** 2 + (uxy + vyy) ** 2) + wcurl * ((vxx - uxy) ** 2 + (vxy - uyy) ** 2)
    riemann = integrand.mean() * (shape[0] - 1) * (shape[1] - 1)
    assert quad > 0 and abs(quad - riemann) < 2e-3 * riemann
    a = affine_elastic(np.array([[1.1, 0.2, 5.0], [-0.1, 0.9, 3.0]]), n, shape)
    ca = np.concatenate([a.cx.ravel(), a.cy.ravel()])
    assert abs(ca @ regularization.matrix(n, shape, wdiv, wcurl) @ ca) < 1e-6


@pytest.mark.parametrize("use_numba", [True, False])
def test_cubic_sampler_value_and_gradient(use_numba):
    """Value = scipy's cubic B-spline interpolation (mirror); gradient = finite differences;
    the numba kernel and the torch implementation agree; the autograd wrapper passes the gradient."""
    if use_numba and not sampler.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(3)
    img = np.stack([texture((40, 50), 4), rng.uniform(0, 255, (40, 50))])[None]  # (1, 2, 40, 50)
    ci = sampler.CubicImage(img, use_numba=use_numba, dtype=torch.float64)
    x = torch.as_tensor(rng.uniform(-3, 52, (1, 300)))
    y = torch.as_tensor(rng.uniform(-3, 42, (1, 300)))
    v, gx, gy = ci.sample(x, y)
    assert v.shape == (1, 2, 300)
    xc, yc = x.clamp(0, 49).numpy()[0], y.clamp(0, 39).numpy()[0]
    for ch in range(2):
        ref = ndimage.map_coordinates(img[0, ch], [yc, xc], order=3, mode="mirror")
        assert np.abs(v[0, ch].numpy() - ref).max() < 1e-8 * 255
    eps = 1e-5
    inside = ((x > eps) & (x < 49 - eps) & (y > eps) & (y < 39 - eps))[:, None].expand_as(v)
    fdx = (ci.sample(x + eps, y)[0] - ci.sample(x - eps, y)[0]) / (2 * eps)
    fdy = (ci.sample(x, y + eps)[0] - ci.sample(x, y - eps)[0]) / (2 * eps)
    assert (fdx - gx)[inside].abs().max() < 1e-4 and (fdy - gy)[inside].abs().max() < 1e-4
    out_x = ((x <= 0) | (x >= 49))[:, None].expand_as(v)
    out_y = ((y <= 0) | (y >= 39))[:, None].expand_as(v)
    assert out_x.any() and (gx[out_x] == 0).all() and (gy[out_y] == 0).all()  # clamped: no gradient across the border
    other = sampler.CubicImage(img, use_numba=False, dtype=torch.float64)
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(ci.sample(x, y), other.sample(x, y)))
    xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    sampler.sample(ci, xr, yr).sum().backward()
    assert torch.allclose(xr.grad, gx.sum(1)) and torch.allclose(yr.grad, gy.sum(1))


def test_gauss_newton_gradient_and_matrix_match_finite_differences(pair):
    """The LM engine's analytic gradient and Gauss-Newton matrix against finite differences."""
    tgt, src, _ = pair
    lv = gauss_newton.SSDLevel(gauss_newton.pyramid(tgt[None], 0)[0], np.ones((1, *SHAPE), np.float32),
                               gauss_newton.pyramid(src[None], 0)[0], None, SHAPE, 4, None, torch.float64,
                               torch.device("cpu"), SHAPE, hessian_samples=None)
    ident = identity_elastic(4, SHAPE)
    gen = torch.Generator().manual_seed(0)
    c = torch.tensor(np.stack([ident.cx, ident.cy])[None]) + 0.5 * torch.randn(1, 2, 7, 7, dtype=torch.float64, generator=gen)
    r, w, g = lv.sample(c)
    grad, hess = lv.normal_equations(r, w, g)
    eps = 1e-4
    for _ in range(4):
        v = torch.randn(98, dtype=torch.float64, generator=gen)
        rp, _, _ = lv.sample(c + eps * v.reshape(c.shape))
        rm, _, _ = lv.sample(c - eps * v.reshape(c.shape))
        fd_grad = (lv.energy(rp, w) - lv.energy(rm, w)) / (2 * eps)  # overlap weights held, as the engine does
        jv = (rp - rm) / (2 * eps)
        fd_gn = 2.0 * (w * jv * jv).sum() / w.sum()
        assert abs(float(fd_grad) - float(grad[0] @ v)) < 1e-4 * (1 + abs(float(fd_grad)))
        assert abs(float(fd_gn) - float(v @ hess[0] @ v)) < 1e-4 * float(fd_gn)


def test_consistency_gradient_and_matrix_match_finite_differences():
    """The LM consistency term (direct and inverse maps of different grids) against finite differences."""
    shape_a, shape_b, nint = (60, 80), (70, 50), 2
    gen = torch.Generator().manual_seed(1)
    ia, ib = identity_elastic(nint, shape_a), identity_elastic(nint, shape_b)
    # the direct map squeezes grid a into grid b (some points land outside: weights < 1)
    c = torch.tensor(np.stack([np.stack([ia.cx * 0.6 + 1, ia.cy * 1.1 - 2]), np.stack([ib.cx / 0.6, ib.cy / 1.1])])[None])
    c = c + 0.3 * torch.randn(c.shape, dtype=torch.float64, generator=gen)
    term = consistency.Consistency(0, 1, shape_a, shape_b, nint, 9, 10.0, torch.device("cpu"))
    e, state = term.evaluate(c)
    size = c[0].numel()
    grad, hess = term.normal_equations(c, state, size)
    inside = state[1]
    assert float(inside.min()) < 1.0  # some points map outside grid b
    eps = 1e-5
    for _ in range(4):
        v = torch.randn(size, dtype=torch.float64, generator=gen).reshape(c.shape)
        (_, sp), (_, sm) = term.evaluate(c + eps * v), term.evaluate(c - eps * v)
        # the overlap weights are held fixed within a step, as the engine does
        held = lambda st: (inside * (st[0] ** 2).sum(1)).sum(1) * term.weight / inside.sum(1)  # noqa: E731
        fd_grad = (held(sp) - held(sm)) / (2 * eps)
        jv = (sp[0] - sm[0]) / (2 * eps)
        fd_gn = 2 * term.weight * (inside * (jv ** 2).sum(1)).sum(1) / inside.sum(1)
        assert abs(float(fd_grad) - float(grad[0] @ v.reshape(-1))) < 1e-5 * (1 + abs(float(fd_grad)))
        assert abs(float(fd_gn) - float(v.reshape(-1) @ hess[0] @ v.reshape(-1))) < 1e-5 * (1 + float(fd_gn))


def test_levenberg_marquardt_and_lbfgs_agree(pair):
    tgt, src, truth = pair
    lm = register(tgt, src, MONO, backend="native")
    assert lm.info["stages"][-1]["optimizer"] == "levenberg-marquardt"
    lb = register(tgt, src, MONO, backend="native", optimizer="lbfgs")
    print(f"TRE: lm {tre(lm.direct, truth):.3f} px, lbfgs {tre(lb.direct, truth):.3f} px")
    assert tre(lm.direct, truth) < 0.2 and tre(lb.direct, truth) < 0.3
    assert tre(lm.direct, lb.direct) < 0.3
    with pytest.raises(InputError, match="optimizer 'lm' needs"):
        register(tgt, src, MONO, backend="native", optimizer="lm", similarity="ncc")
    with pytest.raises(InputError, match="unknown optimizer"):
        register(tgt, src, MONO, backend="native", optimizer="adam")


def test_levenberg_marquardt_is_independent_of_thread_count():
    """At 256 px torch's kernels do split work between threads; the result must not change."""
    shape = (256, 256)
    src = texture(shape, 11)
    truth = smooth_truth(shape, 12, amplitude=3.0)
    tgt = warp_image(src, truth, shape)
    params = MONO.with_(max_scale_deformation=3)
    n0 = torch.get_num_threads()
    try:
        rs = [register(tgt, src, params, backend="native", threads=n) for n in (1, 2)]
    finally:
        torch.set_num_threads(n0)
    assert np.array_equal(rs[0].direct.cx, rs[1].direct.cx) and np.array_equal(rs[0].direct.cy, rs[1].direct.cy)
    assert tre(rs[0].direct, truth, shape, 16) < 0.3


# --- accuracy ---------------------------------------------------------------------------------


def test_recovers_known_smooth_deformation(pair):
    tgt, src, truth = pair
    before = tre(identity_elastic(4, SHAPE), truth)
    r = register(tgt, src, MONO, backend="native")
    assert r.backend == "native" and r.inverse is None
    assert r.direct.intervals == 4
    assert not r.info["failed"] and r.info["folded"] is False
    err = tre(r.direct, truth)
    print(f"TRE identity {before:.2f} px -> native mono {err:.3f} px")
    assert before > 2.0
    assert err < 0.5


def test_identity_for_identical_images():
    img = texture(SHAPE, 5)
    r = register(img, img, MONO, backend="native")
    # not exactly 0: bUnwarpJ's float 2/3 makes the identity grid map to x(1 + 2e-8)
    assert displacement_error(r.direct, identity_elastic(4, SHAPE), SHAPE).max() < 1e-3


def test_landmarks_only_recover_an_affine_map():
    rng = np.random.default_rng(7)
    a = np.array([[1.04, 0.05, 3.0], [-0.03, 0.97, -2.0]])
    tp = rng.uniform(5, 90, (40, 2))
    sp = tp @ a[:, :2].T + a[:, 2]
    params = BUnwarpJParams(mode="accurate", min_scale_deformation=0, max_scale_deformation=1,
                            image_weight=0.0, landmark_weight=1.0, consistency_weight=1.0)
    img = texture(SHAPE, 1)
    r = register(img, img, params, backend="native", landmarks=(tp, sp), affine_init=False)
    truth = affine_elastic(a, 2, SHAPE)
    before = displacement_error(identity_elastic(2, SHAPE), truth, SHAPE)[10:86, 10:86].mean()
    err = displacement_error(r.direct, truth, SHAPE)[10:86, 10:86]  # inside the landmarks' hull
    print(f"landmarks only: identity {before:.2f} px -> mean {err.mean():.4f}, max {err.max():.4f} px")
    assert before > 2.0
    assert err.mean() < 0.05 and err.max() < 0.15
    ainv = np.linalg.inv(np.vstack([a, [0, 0, 1]]))[:2]
    erri = displacement_error(r.inverse, affine_elastic(ainv, 2, SHAPE), SHAPE)[15:80, 15:80]
    assert erri.mean() < 0.05 and erri.max() < 0.15


@pytest.mark.parametrize("optimizer", ["auto", "lbfgs"])
def test_consistency_mode_gives_inverse_of_direct(pair, optimizer):
    tgt, src, truth = pair
    r = register(tgt, src, ACCURATE, backend="native", optimizer=optimizer)
    assert r.info["stages"][-1].get("optimizer") == ("levenberg-marquardt" if optimizer == "auto" else None)
    assert r.inverse is not None and r.inverse.intervals == 4
    numeric = invert_map(r.direct, SHAPE, target_shape=SHAPE)
    est = r.inverse.to_dense(SHAPE)
    d = np.hypot(*(est - numeric))[16:-16, 16:-16]  # the interior: the border is loosely constrained
    print(f"accurate: TRE {tre(r.direct, truth):.3f} px, |inverse - inv(direct)| mean {np.nanmean(d):.3f} px")
    assert np.nanmean(d) < 0.15
    assert tre(r.direct, truth) < 0.5
    # without the consistency term the inverse is a separate registration: less consistent
    loose = register(tgt, src, ACCURATE.with_(consistency_weight=0.0), backend="native", optimizer=optimizer)
    d0 = np.hypot(*(loose.inverse.to_dense(SHAPE) - invert_map(loose.direct, SHAPE, target_shape=SHAPE)))[16:-16, 16:-16]
    assert np.nanmean(d) < np.nanmean(d0)


@pytest.mark.parametrize("similarity", ["ncc", "nmi", "mind"])
def test_ncc_nmi_mind_align_inverted_contrast_where_ssd_cannot(pair, similarity):
    tgt, src, truth = pair
    inverted = 255.0 - src
    ssd = register(tgt, inverted, MONO, backend="native", similarity="ssd")
    other = register(tgt, inverted, MONO, backend="native", similarity=similarity)
    e_ssd, e_other = tre(ssd.direct, truth), tre(other.direct, truth)
    print(f"inverted contrast: ssd {e_ssd:.2f} px, {similarity} {e_other:.3f} px")
    assert e_ssd > 1.0
    assert e_other < 0.5


def test_mind_descriptors_are_contrast_invariant_and_work_with_lbfgs(pair):
    """MIND-SSC: the same structure under another monotonic/inverted contrast gives nearly the
    same descriptors; both optimisers register with it (a gamma-distorted, inverted source)."""
    tgt, src, truth = pair
    d1 = mind.mind_ssc(src[None])
    d2 = mind.mind_ssc((255.0 - src[None]) * 0.3 + 7.0)
    assert d1.shape == (1, 6, *SHAPE) and d1.dtype == np.float32 and 0 <= d1.min() and d1.max() <= 255
    assert np.abs(d1 - d2).max() < 1e-2
    other = 255.0 * (1.0 - (src / 255.0) ** 2)
    for optimizer in ("auto", "lbfgs"):
        r = register(tgt, other, MONO, backend="native", similarity="mind", optimizer=optimizer)
        assert tre(r.direct, truth) < 0.5, optimizer
    assert r.info["similarity"] == "mind"


@pytest.mark.parametrize("window", [15, 16])
def test_local_ncc_window(pair, window):
    """Odd and even windows (an even one is widened to stay centred; it once crashed on a size mismatch)."""
    tgt, src, truth = pair
    r = register(tgt, 255.0 - src, MONO, backend="native", similarity="ncc", ncc_window=window)
    assert tre(r.direct, truth) < 0.5


def test_batch_matches_single_pairs(pair):
    tgt, src, truth = pair
    src2 = texture(SHAPE, 9)
    truth2 = smooth_truth(SHAPE, 4)
    tgt2 = warp_image(src2, truth2, SHAPE)
    rs = register_batch([tgt, tgt2], [src, src2], MONO)
    assert len(rs) == 2 and all(r.info["batch_size"] == 2 for r in rs)
    assert tre(rs[0].direct, truth) < 0.5 and tre(rs[1].direct, truth2) < 0.5


# --- determinism --------------------------------------------------------------------------------


def test_deterministic_and_independent_of_thread_count(pair):
    tgt, src, _ = pair
    params = ACCURATE.with_(max_scale_deformation=1)
    n0 = torch.get_num_threads()
    try:
        out = []
        for n in (1, 2, 2):  # the caller's torch thread count
            torch.set_num_threads(n)
            out.append(register(tgt, src, params, backend="native", seed=3))
        assert torch.get_num_threads() == 2  # restored after the registration
        # torch itself running 1 or 2 threads inside the registration (mono: cheap under load)
        mono = [register(tgt, src, MONO.with_(max_scale_deformation=1), backend="native", threads=n) for n in (1, 2)]
    finally:
        torch.set_num_threads(n0)
    for r in out[1:]:
        assert np.array_equal(r.direct.cx, out[0].direct.cx) and np.array_equal(r.direct.cy, out[0].direct.cy)
        assert np.array_equal(r.inverse.cx, out[0].inverse.cx) and np.array_equal(r.inverse.cy, out[0].inverse.cy)
    assert np.array_equal(mono[0].direct.cx, mono[1].direct.cx) and np.array_equal(mono[0].direct.cy, mono[1].direct.cy)


# --- bad input ------------------------------------------------------------------------------------


def test_bad_input_raises_input_error(pair):
    tgt, src, _ = pair
    with pytest.raises(InputError, match="constant"):
        register(np.full(SHAPE, 7.0), src, MONO, backend="native")
    nan = src.copy()
    nan[3, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        register(tgt, nan, MONO, backend="native")
    with pytest.raises(InputError, match="at least 16"):
        register(tgt[:10, :10], src[:10, :10], MONO, backend="native")
    with pytest.raises(InputError, match="similarity"):
        register(tgt, src, MONO, backend="native", similarity="mse")
    with pytest.raises(InputError, match="nothing to register"):
        register(tgt, src, MONO.with_(image_weight=0.0), backend="native")
    with pytest.raises(InputError, match="same length"):
        register(tgt, src, MONO, backend="native", landmarks=(np.zeros((3, 2)), np.zeros((4, 2))))


def test_folded_and_diverged_maps_are_flagged():
    ident = identity_elastic(4, SHAPE)
    ok = assess(ident, None, SHAPE, SHAPE)
    assert ok["failed"] is False and ok["folded"] is False and ok["min_jacobian"] > 0.9
    cx = ident.cx.copy()
    cx[3, 3] += 60.0  # pushes one knot far beyond its neighbours: the map folds
    folded = assess(ElasticTransform(cx, ident.cy), None, SHAPE, SHAPE)
    assert folded["folded"] is True and folded["min_jacobian"] <= 0
    cx[0, 0] = np.nan
    bad = assess(ElasticTransform(cx, ident.cy), None, SHAPE, SHAPE)
    assert bad["failed"] is True and "non-finite" in bad["reason"]
    worse = assess(ident, None, SHAPE, SHAPE, final_energy=2.0, start_energy=1.0)
    assert worse["failed"] is True and "convergence" in worse["reason"]


# --- the real plugin loads and applies the written files -------------------------------------------


@pytest.mark.bunwarpj
def test_bunwarpj_applies_native_result(bunwarpj, pair, tmp_path):
    from styleunwarp.imagej import from_imageplus, to_imageplus

    tgt, src, _ = pair
    r = register(tgt, src, ACCURATE, backend="native")
    for name, t, fixed, moving in (("direct", r.direct, tgt, src), ("inverse", r.inverse, src, tgt)):
        path = write_elastic(t, tmp_path / f"{name}_transf.txt")
        target_imp = to_imageplus(fixed.astype(np.float32), "target")
        source_imp = to_imageplus(moving.astype(np.float32), "source")
        bunwarpj("bunwarpj.bUnwarpJ_").applyTransformToSource(str(path), target_imp, source_imp)
        theirs = from_imageplus(source_imp)
        ours = warp_image(moving.astype(np.float32), t, fixed.shape)
        assert theirs.shape == ours.shape
        assert np.array_equal(theirs == 0, ours == 0)
        assert np.abs(theirs - ours).max() < 1e-2  # grey levels 0..255


def test_source_much_smaller_than_target_has_fewer_pyramid_levels():
    """A small source has fewer pyramid levels than the target: each side uses its own coarsest."""
    t, s = texture((200, 180), 1), texture((40, 50), 2)
    r = register(t, s, BUnwarpJParams(mode="accurate", max_scale_deformation=3), backend="native")
    assert not r.info["failed"] and r.inverse.intervals == 8 and r.source_shape == (40, 50)
