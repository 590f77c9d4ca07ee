"""Transform core: bUnwarpJ's B-spline model, its files, warping and operations."""

from __future__ import annotations

import numpy as np
import pytest

from styleunwarp.errors import TransformFileError
from styleunwarp.transform import (
    ElasticTransform,
    RawTransform,
    affine_elastic,
    beta3,
    compose,
    evaluate_elastic,
    fit_elastic,
    identity_elastic,
    invert_map,
    jacobian_determinant,
    java_double,
    read_elastic,
    read_transform,
    warp_image,
    warping_index,
    write_elastic,
    write_raw,
)


def random_elastic(rng: np.random.Generator, intervals: int, shape: tuple[int, int], amplitude: float = 3.0) -> ElasticTransform:
    """Identity plus a small rotation, a shift and random coefficient noise."""
    h, w = shape
    ang = np.deg2rad(rng.uniform(-3, 3))
    c, s = np.cos(ang), np.sin(ang)
    cxy = np.array([(w - 1) / 2, (h - 1) / 2])
    a = np.array([[c, -s, 0.0], [s, c, 0.0]])
    a[:, 2] = cxy - a[:, :2] @ cxy + rng.uniform(-4, 4, 2)
    base = affine_elastic(a, intervals, shape)
    n = intervals + 3
    return ElasticTransform(base.cx + amplitude * rng.standard_normal((n, n)), base.cy + amplitude * rng.standard_normal((n, n)))


def test_beta3_partition_of_unity_and_values():
    t = np.linspace(-3, 3, 601)
    total = sum(beta3(t - k) for k in range(-5, 6))
    assert np.allclose(total, 1.0, atol=1e-7)  # bUnwarpJ's 2/3 is a Java float
    assert beta3(np.array([0.0]))[0] == pytest.approx(2 / 3, abs=1e-7)
    assert beta3(np.array([1.0]))[0] == pytest.approx(1 / 6)
    assert beta3(np.array([2.0, -2.0, 2.5])).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("intervals", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("shape", [(64, 64), (37, 91), (2, 2)])
def test_identity_is_exact(intervals, shape):
    m = evaluate_elastic(identity_elastic(intervals, shape), shape)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    # exact up to bUnwarpJ's single-precision 2/3 (relative error ~2e-8)
    assert np.abs(m[0] - xx).max() < 1e-5
    assert np.abs(m[1] - yy).max() < 1e-5


def test_affine_map_is_reproduced_exactly():
    shape = (50, 70)
    a = np.array([[0.98, -0.05, 3.5], [0.04, 1.02, -2.25]])
    m = evaluate_elastic(affine_elastic(a, 4, shape), shape)
    yy, xx = np.mgrid[0:50, 0:70]
    assert np.abs(m[0] - (a[0, 0] * xx + a[0, 1] * yy + a[0, 2])).max() < 1e-5
    assert np.abs(m[1] - (a[1, 0] * xx + a[1, 1] * yy + a[1, 2])).max() < 1e-5


def test_evaluation_matches_the_formula_pointwise():
    """The matrix form equals the sum written in DESIGN.md, evaluated naively."""
    rng = np.random.default_rng(1)
    shape = (23, 31)
    t = random_elastic(rng, 4, shape)
    m = evaluate_elastic(t, shape)
    n = t.intervals
    for v, u in [(0, 0), (22, 30), (11, 7), (5, 29)]:
        tu, tv = u * n / (shape[1] - 1) + 1, v * n / (shape[0] - 1) + 1
        x = sum(t.cx[i, j] * beta3(np.array(tv - i))[()] * beta3(np.array(tu - j))[()] for i in range(n + 3) for j in range(n + 3))
        assert m[0, v, u] == pytest.approx(x, abs=1e-6)  # bUnwarpJ's weights differ by rounding
    # evaluation at continuous points agrees with the grid at integer points
    pts = t.at(shape, np.array([0.0, 30.0, 7.0]), np.array([0.0, 22.0, 11.0]))
    assert np.allclose(pts[:, [0, 1, 2]], m[:, [0, 22, 11], [0, 30, 7]])


def test_fit_recovers_an_elastic_transform():
    rng = np.random.default_rng(2)
    shape = (64, 80)
    t = random_elastic(rng, 8, shape)
    fitted = fit_elastic(evaluate_elastic(t, shape), 8)
    assert np.allclose(fitted.cx, t.cx, atol=1e-6)
    assert np.allclose(fitted.cy, t.cy, atol=1e-6)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (-12.5, "-12.5"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (1.2345e-5, "1.2345E-5"),
        (1e7, "1.0E7"),
        (12345678.9, "1.23456789E7"),
        (9999999.0, "9999999.0"),
        (255.99999999999997, "255.99999999999997"),
        (-3.1e-10, "-3.1E-10"),
    ],
)
def test_java_double_formatting(value, text):
    assert java_double(value) == text


def test_elastic_file_round_trip_and_layout(tmp_path):
    rng = np.random.default_rng(3)
    t = random_elastic(rng, 4, (100, 100))
    p = write_elastic(t, tmp_path / "t.txt")
    lines = p.read_text().split("\n")
    assert lines[0] == "Intervals=4"
    assert lines[1] == ""
    assert lines[2] == "X Coeffs -----------------------------------"
    assert len(lines[3]) == 7 * 22 and lines[3].endswith(" ")
    assert lines[10] == "" and lines[11] == "Y Coeffs -----------------------------------"
    back = read_elastic(p)
    assert np.array_equal(back.cx, t.cx) and np.array_equal(back.cy, t.cy)
    assert isinstance(read_transform(p), ElasticTransform)
    assert not list(tmp_path.glob("*.tmp*"))


def test_raw_file_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    shape = (12, 17)
    m = evaluate_elastic(random_elastic(rng, 2, shape), shape)
    p = write_raw(m, tmp_path / "raw.txt")
    text = p.read_text()
    assert text.startswith("Width=17\nHeight=12\n\nX Trans -----------------------------------\n")
    back = read_transform(p)
    assert isinstance(back, RawTransform)
    assert np.array_equal(back.map, m)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "empty"),
        ("Intervals=x\n", "not an integer"),
        ("Intervals=2\n\nX Coeffs ---\n" + "1 2 3\n" * 5, "numbers, expected 5"),
        ("Intervals=1\n\nX Coeffs ---\n" + "1 2 3 4\n" * 2, "truncated"),
        ("Intervals=1\n\nX Coeffs ---\n" + "1 2 3 4\n" * 4 + "\nY Coeffs ---\n" + "1 2 3 nan\n" * 4, "NaN"),
        ("Intervals=1\n\nX Coeffs ---\n" + "1 2 3 4\n" * 3 + "1 2 3 a\n", "not a number"),
        ("hello\n", "not a bUnwarpJ transform"),
    ],
)
def test_malformed_files_name_the_file_and_problem(tmp_path, content, problem):
    p = tmp_path / "bad_transf.txt"
    p.write_text(content)
    with pytest.raises(TransformFileError) as err:
        read_transform(p)
    assert str(p) in str(err.value)
    assert problem in str(err.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(TransformFileError, match="not found"):
        read_transform(tmp_path / "nope.txt")
    b = tmp_path / "bin.txt"
    b.write_bytes(bytes(range(256)))
    with pytest.raises(TransformFileError, match="not a text file"):
        read_transform(b)


def test_warp_identity_and_shift():
    rng = np.random.default_rng(5)
    img = rng.uniform(0, 255, (40, 50)).astype(np.float32)
    shape = img.shape
    out = warp_image(img, identity_elastic(4, shape), shape)
    assert out.dtype == np.float32
    # border pixels map to 0 +- 1e-14 and may fall outside (as in bUnwarpJ): compare inside
    assert np.abs(out - img)[1:-1, 1:-1].max() < 1e-3
    # integer shift by +3 in x: out(x, y) = img(x + 3, y), zero where x + 3 >= W
    a = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, 0.0]])
    out = warp_image(img, affine_elastic(a, 4, shape), shape)
    assert np.abs(out[1:-1, 1:-3] - img[1:-1, 4:]).max() < 5e-3
    assert np.all(out[:, -3:] == 0)


def test_warp_rgb_per_channel_uint8():
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    out = warp_image(img, identity_elastic(2, (30, 30)), (30, 30))
    assert out.dtype == np.uint8 and out.shape == (30, 30, 3)
    assert np.abs(out.astype(int) - img.astype(int))[1:-1, 1:-1].max() <= 1


def test_warp_of_smooth_image_follows_analytic_map():
    """Warping a smooth analytic image by an analytic map gives the analytic composition."""
    shape = (64, 64)
    yy, xx = np.mgrid[0:64, 0:64].astype(float)
    img = np.sin(xx / 9.0) + np.cos(yy / 7.0)
    a = np.array([[1.0, 0.02, 1.3], [-0.02, 1.0, -0.7]])
    t = affine_elastic(a, 4, shape)
    out = warp_image(img, t, shape)
    m = evaluate_elastic(t, shape)
    expected = np.sin(m[0] / 9.0) + np.cos(m[1] / 7.0)
    inner = (m[0] > 2) & (m[0] < 61) & (m[1] > 2) & (m[1] < 61)
    assert np.abs(out[inner] - expected[inner]).max() < 2e-3


def test_compose_with_inverse_is_identity():
    rng = np.random.default_rng(7)
    shape = (60, 60)
    t = random_elastic(rng, 4, shape, amplitude=1.0)
    inv = invert_map(t, shape, target_shape=shape)
    ok = ~np.isnan(inv[0])
    # the bilinear model of a dense map gives nearly the same inverse
    inv_dense = invert_map(evaluate_elastic(t, shape), shape)
    both = ok & ~np.isnan(inv_dense[0])
    assert np.abs(inv_dense - inv)[:, both].max() < 0.05
    assert ok.mean() > 0.8
    # T(T^-1(p)) = p where the inverse exists
    back = t.at(shape, np.nan_to_num(inv[0]), np.nan_to_num(inv[1]))
    yy, xx = np.mgrid[0:60, 0:60]
    assert np.abs(back[0] - xx)[ok].max() < 1e-3
    assert np.abs(back[1] - yy)[ok].max() < 1e-3
    # composing two affine maps gives their product
    a1 = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    a2 = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, 4.0]])
    m = compose(affine_elastic(a1, 2, shape), affine_elastic(a2, 2, shape), shape, shape)
    # the spline reproduces the affine map inside its grid; (x+2, y-1) leaves it at two edges
    inner = (slice(2, None), slice(None, -3))
    assert np.abs(m[0] - (xx + 1.5))[inner].max() < 1e-4
    assert np.abs(m[1] - (yy + 3.0))[inner].max() < 1e-4


def test_jacobian_analytic_vs_numeric_and_folding():
    rng = np.random.default_rng(8)
    shape = (50, 50)
    t = random_elastic(rng, 4, shape, amplitude=1.0)
    exact = jacobian_determinant(t, shape)
    numeric = jacobian_determinant(evaluate_elastic(t, shape), shape)
    assert np.abs(exact - numeric)[2:-2, 2:-2].max() < 1e-2
    a = np.array([[1.1, 0.0, 0.0], [0.0, 0.9, 0.0]])
    assert np.allclose(jacobian_determinant(affine_elastic(a, 2, shape), shape), 0.99)
    flip = np.array([[-1.0, 0.0, 49.0], [0.0, 1.0, 0.0]])
    assert np.all(jacobian_determinant(affine_elastic(flip, 2, shape), shape) < 0)


def test_warping_index_is_rms_over_inside_pixels():
    shape = (40, 40)
    ident = identity_elastic(2, shape)
    shifted = affine_elastic(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]]), 2, shape)
    assert warping_index(ident, ident, shape) == 0.0
    assert warping_index(ident, shifted, shape) == pytest.approx(2.0)
    far = affine_elastic(np.array([[1.0, 0.0, 500.0], [0.0, 1.0, 0.0]]), 2, shape)
    assert warping_index(far, ident, shape) == -1.0
