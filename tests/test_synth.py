"""Synthetic correlative pairs: determinism, geometry, ground truth, data-set layout, real CBS."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import needs_data, real_data
import tifffile
from click.testing import CliRunner
from scipy import ndimage
from scipy.stats import pearsonr, spearmanr

from styleunwarp.synth import (
    CBSStyle,
    lom_from_cbs,
    make_pair,
    pair_from_cbs,
    random_deformation,
    random_microstructure,
    read_cbs,
    render_cbs,
    source_positions,
    write_dataset,
)
from styleunwarp.synth.fromcbs import cbs_edges
from styleunwarp.synth.render import _direction, cbs_grey, lom_value
from styleunwarp.transform import (
    evaluate_elastic,
    inside_source,
    invert_map,
    jacobian_determinant,
    read_elastic,
    warp_image,
)


REAL = real_data("openecci-cbs", "*.tif")
needs_real = needs_data("openecci-cbs", "*.tif")


def _corr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(pearsonr(a[mask], b[mask])[0])


@pytest.fixture(scope="module")
def pair_and_structure():
    return make_pair((192, 224), seed=11, return_structure=True)


# ------------------------------------------------------------------------- basics


def test_make_pair_is_deterministic_and_seed_dependent():
    a = make_pair((96, 128), seed=3)
    b = make_pair((96, 128), seed=3)
    c = make_pair((96, 128), seed=4)
    for name in ("lom", "cbs", "cbs_like_lom"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.truth.cx, b.truth.cx)
    assert a.meta == b.meta
    assert not np.array_equal(a.cbs, c.cbs)
    assert not np.allclose(a.truth.cx, c.truth.cx)


def test_shapes_dtypes_and_ranges():
    p = make_pair((80, 120), seed=5)
    for img in (p.lom, p.cbs, p.cbs_like_lom):
        assert img.shape == (80, 120) and img.dtype == np.float32
        assert np.isfinite(img).all() and img.min() >= 0 and img.max() <= 255
    lo, hi = np.percentile(p.cbs, [1, 99])
    assert hi - lo > 80  # CBS spans most of 0..255 (bUnwarpJ needs that range)
    assert p.truth is not None and p.truth.intervals == 4
    rgb = make_pair((80, 120), seed=5, rgb=True)
    assert rgb.lom.shape == (80, 120, 3) and rgb.lom.dtype == np.float32
    # Colour cast: channels differ (warm light), but the geometry is the same pair.
    assert rgb.lom[..., 0].mean() > rgb.lom[..., 2].mean() + 5
    np.testing.assert_array_equal(rgb.cbs, p.cbs)


def test_aligned_pair_has_no_truth_and_shares_the_grid():
    p = make_pair((128, 128), seed=7, deform=False)
    assert p.truth is None and p.meta["deformation"] is None
    full = np.ones(p.cbs.shape, bool)
    assert _corr(p.cbs_like_lom, p.cbs, full) > 0.85  # same geometry, independent noise


# -------------------------------------------------------------------- the geometry


def test_grain_and_twin_distances_are_exact():
    """d_grain / d_twin equal the distance to the nearest region change (checked on a fine grid)."""
    micro = random_microstructure(np.random.default_rng(2), (64, 64), grain_size=40, twins=2.0, islands=0, pits=0)
    step = 0.125
    yy, xx = np.mgrid[0:64:step, 0:64:step]
    s = micro.sample(xx, yy)
    assert (s.phase == 1).any(), "the test structure should have twins"
    change = np.zeros(s.region.shape, bool)
    change[:-1] |= s.region[:-1] != s.region[1:]
    change[:, :-1] |= s.region[:, :-1] != s.region[:, 1:]
    d_edt = ndimage.distance_transform_edt(~change) * step
    d = np.minimum(s.d_grain, s.d_twin)
    near = (d < 6) & (d_edt < 6)
    inner = np.zeros_like(near)
    inner[48:-48, 48:-48] = True  # away from the sampled window's edges
    err = np.abs(d - d_edt)[near & inner]
    assert err.size > 1000
    assert np.percentile(err, 99) < 0.25, np.percentile(err, [50, 99, 100])


def test_deformation_is_affine_plus_smooth_and_invertible():
    shape = (150, 170)
    rigid = random_deformation(np.random.default_rng(1), shape, elastic_px=(0.0, 0.0))
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    a = rigid.affine
    # Exact up to bUnwarpJ's float constant 2/3 in its B-spline (weights sum to 1 + 2e-8).
    np.testing.assert_allclose(rigid.dense()[0], a[0, 0] * xx + a[0, 1] * yy + a[0, 2], rtol=0, atol=1e-4)
    np.testing.assert_allclose(rigid.dense()[1], a[1, 0] * xx + a[1, 1] * yy + a[1, 2], rtol=0, atol=1e-4)
    assert 1.5 <= abs(rigid.params["rotation_deg"]) <= 4.0

    d = random_deformation(np.random.default_rng(2), shape, intervals=8)
    assert d.truth.intervals == 8
    assert jacobian_determinant(d.truth, shape).min() > 0.8
    pos = source_positions(d)
    # T(T^-1(p)) == p wherever T^-1(p) lies on the target grid.
    inside = (pos[0] >= 0) & (pos[0] <= shape[1] - 1) & (pos[1] >= 0) & (pos[1] <= shape[0] - 1)
    assert inside.mean() > 0.8
    back = d.truth.at(shape, pos[0][inside], pos[1][inside])
    assert np.abs(back[0] - xx[inside]).max() < 2e-3
    assert np.abs(back[1] - yy[inside]).max() < 2e-3
    # Agrees with the generic numeric inverse of the transform module.
    ref = invert_map(d.dense(), shape)
    ok = inside & np.isfinite(ref[0])
    assert np.abs(pos - ref)[:, ok].max() < 0.05
    # Source pixels outside the CBS field of view get a smooth continuation, no gaps.
    assert np.isfinite(pos).all() and (~inside).any()
    assert np.abs(np.diff(pos[0], 2, axis=1)).max() < 0.05


def test_truth_maps_lom_grid_onto_the_structure(pair_and_structure):
    """Each target pixel, followed through the truth into the LOM grid, sees the same region."""
    pair, micro, deformation = pair_and_structure
    h, w = pair.cbs.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    target_region = micro.sample(xx, yy).region
    pos = source_positions(deformation)
    source_region = micro.sample(pos[0], pos[1]).region  # what each LOM pixel shows
    t = evaluate_elastic(pair.truth, (h, w))
    inside = inside_source(t, pair.lom.shape)
    ri = np.clip(np.rint(t[1]).astype(int), 0, h - 1)
    ci = np.clip(np.rint(t[0]).astype(int), 0, w - 1)
    same = source_region[ri, ci] == target_region
    assert same[inside].mean() > 0.97
    # Without the truth (identity), the regions disagree far more often.
    assert (source_region == target_region)[inside].mean() < same[inside].mean() - 0.05


def test_warped_renderings_match_the_aligned_rendering(pair_and_structure):
    """Noise-free CBS rendering on the LOM grid, warped with the truth == rendering on the CBS grid."""
    pair, micro, deformation = pair_and_structure
    h, w = pair.cbs.shape
    style = CBSStyle(**{**pair.meta["cbs_style"], "gradient": 0.0, "blur": 1.0})
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    aligned = render_cbs(micro, micro.sample(xx, yy), style, rng, noise=False)
    pos = source_positions(deformation)
    on_source = render_cbs(micro, micro.sample(pos[0], pos[1]), style, rng, noise=False)
    warped = warp_image(on_source, pair.truth, (h, w))
    inside = inside_source(evaluate_elastic(pair.truth, (h, w)), (h, w))
    inside = ndimage.binary_erosion(inside, iterations=3)
    diff = np.abs(warped - aligned)[inside]
    assert np.median(diff) < 0.5 and diff.mean() < 2.0, (np.median(diff), diff.mean())
    assert np.abs(on_source - aligned)[inside].mean() > 4 * diff.mean()


@pytest.mark.parametrize("seed", [1, 4])
def test_cbs_like_source_registers_but_raw_lom_is_not_monotone(seed):
    p = make_pair((192, 192), seed=seed)
    h, w = p.cbs.shape
    inside = inside_source(evaluate_elastic(p.truth, (h, w)), p.lom.shape)
    like = warp_image(p.cbs_like_lom, p.truth, (h, w))
    r_warped = _corr(like, p.cbs, inside)
    r_unwarped = _corr(p.cbs_like_lom, p.cbs, inside)
    assert r_warped > 0.85 and r_warped > r_unwarped + 0.05
    lom = warp_image(p.lom, p.truth, (h, w))
    rho = float(spearmanr(lom[inside], p.cbs[inside])[0])
    assert abs(rho) < 0.5 and abs(rho) < r_warped - 0.4


def test_lom_tint_is_not_a_monotone_function_of_cbs_grey():
    """Over many orientations, the LOM tint ranks differ from the CBS grey ranks."""
    from scipy.spatial.transform import Rotation

    rot = Rotation.random(2000, random_state=0).as_matrix()
    grey = cbs_grey(rot, CBSStyle())
    for tilt in (25, 32, 40):
        tint = lom_value(rot, _direction(tilt, 0.0))
        assert abs(spearmanr(grey, tint)[0]) < 0.4


# ------------------------------------------------------------------------ data set


def test_write_dataset_layout_truth_and_determinism(tmp_path):
    out = tmp_path / "ds"
    desc = write_dataset(out, 2, n_test=2, size=96, seed=5, progress=False)
    names = {"train": ["train_0000", "train_0001"], "test": ["test_0000", "test_0001"]}
    for split, stems in names.items():
        assert [e["name"] for e in desc[split]] == stems
        for stem in stems:
            for kind in ("lom", "cbs") + (("cbs_like",) if split == "test" else ()):
                img = tifffile.imread(out / split / kind / f"{stem}.tif")
                assert img.shape == (96, 96) and img.dtype == np.float32
    assert sorted(p.name for p in (out / "test" / "truth").iterdir()) == ["test_0000_direct_transf.txt", "test_0001_direct_transf.txt"]
    assert not (out / "train" / "truth").exists()
    on_disk = json.loads((out / "dataset.json").read_text())
    assert on_disk["seed"] == 5 and on_disk["size"] == 96 and len(on_disk["test"]) == 2
    assert "test/truth/NAME_direct_transf.txt" in (out / "README.md").read_text()

    # The truth file is a bUnwarpJ elastic file that reproduces the pair.
    entry = on_disk["test"][1]
    truth = read_elastic(out / entry["truth"])
    pair = make_pair((96, 96), seed=entry["seed"], name=entry["name"])
    np.testing.assert_allclose(truth.cx, pair.truth.cx, rtol=0, atol=1e-9)
    np.testing.assert_allclose(truth.cy, pair.truth.cy, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(tifffile.imread(out / entry["lom"]), pair.lom)
    np.testing.assert_array_equal(tifffile.imread(out / entry["cbs"]), pair.cbs)
    cbs = tifffile.imread(out / entry["cbs"])
    like = warp_image(tifffile.imread(out / entry["cbs_like"]), truth, cbs.shape)
    inside = inside_source(evaluate_elastic(truth, cbs.shape), cbs.shape)
    assert _corr(like, cbs, inside) > 0.8

    # Same seed, same data; a longer set starts with the same pairs.
    write_dataset(tmp_path / "again", 3, n_test=1, size=96, seed=5, progress=False)
    for rel in ("train/lom/train_0001.tif", "test/cbs/test_0000.tif", "test/lom/test_0000.tif"):
        np.testing.assert_array_equal(tifffile.imread(out / rel), tifffile.imread(tmp_path / "again" / rel))
    assert (out / "test/truth/test_0000_direct_transf.txt").read_text() == (tmp_path / "again/test/truth/test_0000_direct_transf.txt").read_text()


def test_cli_writes_documented_layout(tmp_path):
    from styleunwarp.cli import main

    out = tmp_path / "cli"
    res = CliRunner().invoke(main, ["synth", str(out), "--n", "1", "--n-test", "1", "--size", "64", "--seed", "2", "--rgb", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "1 training and 1 test pairs" in res.output
    expected = {
        "dataset.json",
        "README.md",
        "train/lom/train_0000.tif",
        "train/cbs/train_0000.tif",
        "test/lom/test_0000.tif",
        "test/cbs/test_0000.tif",
        "test/cbs_like/test_0000.tif",
        "test/truth/test_0000_direct_transf.txt",
    }
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == expected
    lom = tifffile.imread(out / "test/lom/test_0000.tif")
    assert lom.shape == (64, 64, 3) and lom.dtype == np.uint8  # RGB LOM: 8-bit RGB for ImageJ
    assert json.loads((out / "dataset.json").read_text())["rgb"] is True

    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(main, ["synth", str(tmp_path / "x"), "--n", "0", "--from-cbs", str(empty), "--no-progress"])
    assert res.exit_code != 0 and "no images" in res.output


# ---------------------------------------------------------------------- real CBS


@pytest.fixture(scope="module")
def real_cbs():
    return read_cbs(REAL[1 % len(REAL)])


@needs_real
def test_read_cbs_crops_the_data_bar_and_scales(real_cbs):
    raw = tifffile.imread(REAL[1 % len(REAL)])
    assert real_cbs.shape == (raw.shape[0] - 70, raw.shape[1])
    assert real_cbs.dtype == np.float32 and real_cbs.min() >= 0 and real_cbs.max() <= 255
    assert np.percentile(real_cbs, 99) - np.percentile(real_cbs, 1) > 100


@needs_real
def test_lom_from_real_cbs(real_cbs):
    real_cbs = real_cbs[100:484, 200:712]
    lom = lom_from_cbs(real_cbs, np.random.default_rng(0))
    assert lom.shape == real_cbs.shape and lom.dtype == np.float32
    edges = cbs_edges(real_cbs)
    assert 0.003 < edges.mean() < 0.05
    assert lom[edges].mean() < lom[~edges].mean() - 40  # etched boundaries are dark
    assert abs(spearmanr(lom[::3, ::3].ravel(), real_cbs[::3, ::3].ravel())[0]) < 0.5
    assert np.array_equal(lom, lom_from_cbs(real_cbs, np.random.default_rng(0)))
    rgb = lom_from_cbs(real_cbs, np.random.default_rng(0), rgb=True)
    assert rgb.shape == real_cbs.shape + (3,)


@needs_real
def test_pair_from_real_cbs(real_cbs):
    p = pair_from_cbs(real_cbs, seed=4, shape=(256, 288))
    assert p.cbs.shape == p.lom.shape == p.cbs_like_lom.shape == (256, 288)
    ox, oy = p.meta["crop_xy"]
    np.testing.assert_array_equal(p.cbs, real_cbs[oy : oy + 256, ox : ox + 288])
    assert (p.lom > 0).all()  # rendered from the whole image: no empty border
    inside = inside_source(evaluate_elastic(p.truth, p.cbs.shape), p.lom.shape)
    like = warp_image(p.cbs_like_lom, p.truth, p.cbs.shape)
    assert _corr(like, p.cbs, inside) > 0.9
    assert _corr(like, p.cbs, inside) > _corr(p.cbs_like_lom, p.cbs, inside) + 0.1
    lom = warp_image(p.lom, p.truth, p.cbs.shape)
    assert abs(spearmanr(lom[inside], p.cbs[inside])[0]) < 0.5
    aligned = pair_from_cbs(real_cbs, seed=4, shape=(256, 288), deform=False)
    assert aligned.truth is None and aligned.lom.shape == (256, 288)


@needs_real
def test_cli_from_cbs(tmp_path):
    out = tmp_path / "real"
    desc = write_dataset(out, 0, n_test=2, size=128, seed=1, progress=False, from_cbs=REAL[0].parent)
    assert [e["name"] for e in desc["test"]] == [REAL[0].stem, REAL[1].stem]
    assert desc["test"][0]["meta"]["cbs_file"] == REAL[0].name
    truth = read_elastic(out / desc["test"][0]["truth"])
    assert truth.intervals == 4
    assert tifffile.imread(out / "test/cbs" / f"{REAL[0].stem}.tif").shape == (128, 128)


# ------------------------------------------------------------- with the real bUnwarpJ


@pytest.mark.bunwarpj
@pytest.mark.slow
def test_bunwarpj_fails_on_raw_lom_and_succeeds_on_cbs_like(bunwarpj):
    """The synthetic problem is hard in the same way as the real one."""
    from styleunwarp.quality import tre
    from styleunwarp.registration import BUnwarpJParams, register

    p = make_pair((384, 384), seed=2)
    params = BUnwarpJParams(mode="mono")
    good = tre(register(p.cbs, p.cbs_like_lom, params).direct, p.truth, p.cbs.shape)
    bad = tre(register(p.cbs, p.lom, params).direct, p.truth, p.cbs.shape)
    assert good.mean <= 1.5, good
    assert bad.mean > 8.0, bad


def test_varied_pairs_are_reproducible_and_varied():
    from styleunwarp.synth.variety import varied_pair

    a = varied_pair((96, 96), seed=3, colour=True)
    b = varied_pair((96, 96), seed=3, colour=True)
    np.testing.assert_array_equal(a.lom, b.lom)
    assert a.lom.shape == (96, 96, 3) and a.truth is None and a.meta["variety"]["colour_etched"]
    # colour etching: neighbouring grains differ in hue, not only in brightness
    chroma = a.lom[..., 0] / np.maximum(a.lom[..., 2], 1)
    assert np.std(chroma) > 0.05
    g = varied_pair((96, 96), seed=3, colour=False)
    assert g.lom.shape == (96, 96)
    sizes = {round(varied_pair((32, 32), seed=s).meta["microstructure"]["grain_size"]) for s in range(6)}
    assert len(sizes) == 6 and min(sizes) >= 35 and max(sizes) <= 180
    f = varied_pair((96, 96), seed=4, deform=True, renderer="from-cbs")
    assert f.truth is not None and f.meta["variety"]["renderer"] == "from-cbs" and f.lom.shape[:2] == (96, 96)
    with pytest.raises(ValueError, match="renderer"):
        varied_pair((32, 32), seed=1, renderer="paint")


def test_lom_marks_change_only_the_lom_and_look_as_named():
    from styleunwarp.synth import marks
    from styleunwarp.synth.variety import varied_pair

    plain = varied_pair((96, 96), seed=5, colour=False)
    marked = varied_pair((96, 96), seed=5, colour=False, marks=True)
    np.testing.assert_array_equal(plain.cbs, marked.cbs)  # the marks are the LOM's alone
    assert set(marked.meta["variety"]["marks"]) == {"pits", "relief", "dark_field", "jpeg_quality"}
    assert marked.lom.dtype == np.float32 and 0 <= marked.lom.min() and marked.lom.max() <= 255
    # a bright-field frame with one dark etched groove
    frame = np.full((64, 64), 180.0)
    frame[:, 30:32] = 60.0
    rng = np.random.default_rng(0)
    dark = marks.dark_field(frame, rng)
    assert dark[:, 30:32].mean() > 5 * dark[:, :20].mean()  # dark field: the groove is bright, the grain dark
    pitted = marks.etch_pits(np.full((128, 128), 180.0), rng, 40)
    assert pitted.min() < 0.6 * 180 and np.mean(pitted < 170) < 0.1  # a few dark dots, not a dark frame
    shaded = marks.oblique_relief(frame, rng)
    side = shaded[:, 27:30].mean() - shaded[:, 32:35].mean()
    assert abs(side) > 1.0  # one flank of the groove brighter than the other
    rgb = np.dstack([frame, frame * 0.8, frame * 0.5])
    assert marks.jpeg(rgb, 40).shape == rgb.shape and marks.dark_field(rgb, rng).shape == rgb.shape


def test_lom_looks_widen_grooves_and_change_the_imaging_mode_of_the_lom_only():
    from styleunwarp.synth import looks
    from styleunwarp.synth.variety import varied_pair

    plain = varied_pair((96, 96), seed=5, colour=True, marks=True)
    looked = varied_pair((96, 96), seed=5, colour=True, marks=True, looks=True)
    np.testing.assert_array_equal(plain.cbs, looked.cbs)  # the looks are the LOM's alone
    assert set(looked.meta["variety"]["looks"]) == {"widen_px", "mode"}
    assert looked.lom.dtype == np.float32 and 0 <= looked.lom.min() and looked.lom.max() <= 255
    # a bright-field frame with one dark etched groove, 2 px wide, centred at x = 31.5
    frame = np.full((64, 64), 180.0)
    frame[:, 31:33] = 60.0
    wide = looks.widen_grooves(frame, 2)
    assert np.flatnonzero(wide[10] < 100).tolist() == list(range(29, 35))  # 2 px more each side, same centre
    rgb = np.dstack([frame, frame * 0.8, frame * 0.5])
    assert looks.widen_grooves(rgb, 1).shape == rgb.shape
    rng = np.random.default_rng(0)
    relief = looks.dic(frame, rng)
    left, right = relief[:, 28:31].mean(), relief[:, 33:36].mean()
    assert abs(left - right) > 20  # DIC: one flank of the groove bright, the other dark
    assert abs(relief[:, :20].mean() - relief[:, 44:].mean()) < 5  # flat grains alike on both sides
    assert looks.dic(rgb, rng).shape == rgb.shape
    modes = {looks.lom_looks(frame, np.random.default_rng(s))[1]["mode"] for s in range(12)}
    assert modes == {"bright field", "dark field", "DIC"}
