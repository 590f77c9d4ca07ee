"""As-delivered pairs, pixel sizes by hand, size warnings and the printed verdict (no Java)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from styleunwarp.cli import main
from styleunwarp.errors import InputError
from styleunwarp.io import read_image, to_gray, write_tiff
from styleunwarp.pipeline.pair import prepare_pair
from styleunwarp.pipeline.pairing import read_manifest
from styleunwarp.synth import make_pair
from styleunwarp.synth.asdelivered import as_delivered
from styleunwarp.transform import read_transform, warp_image


def _grad(a: np.ndarray) -> np.ndarray:
    g = ndimage.gaussian_filter(np.asarray(a, np.float64), 1.5)
    return np.hypot(*np.gradient(g)).ravel()


@pytest.fixture(scope="module")
def big():
    return make_pair((400, 400), seed=31, deform=False, rgb=True)


@pytest.fixture(scope="module")
def delivered(big):
    return as_delivered(big.cbs_like_lom, big.lom, np.random.default_rng(4), cbs_pixel_um=0.1, target_shape=(160, 160))


def test_as_delivered_pair_has_its_own_grid_and_an_exact_truth(big, delivered):
    p = delivered
    assert p.lom.ndim == 3 and p.lom.shape[2] == 3 and p.cbs.shape == (160, 160)
    assert 1.3 <= p.lom_pixel_um / p.cbs_pixel_um <= 2.0
    field = p.lom.shape[0] * p.lom_pixel_um / (p.cbs.shape[0] * p.cbs_pixel_um)
    assert 1.25 <= field <= 1.65 and abs(p.meta["rotation_deg"]) <= 8.0
    assert p.meta["truth_fit_error_px"] < 0.05
    m = p.truth.to_dense((160, 160))
    assert m[0].min() >= 0 and m[0].max() <= p.lom.shape[1] - 1 and m[1].min() >= 0 and m[1].max() <= p.lom.shape[0] - 1
    # the LOM moved by the truth is the aligned LOM rendering on the CBS crop; the LOM as delivered is not
    ox, oy = p.meta["cbs_crop_xy"]
    assert np.array_equal(p.cbs, big.cbs_like_lom[oy : oy + 160, ox : ox + 160])
    ref = to_gray(big.lom)[oy : oy + 160, ox : ox + 160]
    moved = warp_image(to_gray(p.lom), p.truth, (160, 160))
    aligned = np.corrcoef(_grad(moved), _grad(ref))[0, 1]
    k = min(p.lom.shape[0], p.lom.shape[1], 160)
    naive = np.corrcoef(_grad(to_gray(p.lom)[:k, :k]), _grad(ref[:k, :k]))[0, 1]
    assert aligned > 0.5 and aligned > naive + 0.3, (aligned, naive)


def test_synth_cli_as_delivered_writes_both_variants(tmp_path):
    res = CliRunner().invoke(main, ["synth", str(tmp_path / "ad"), "--n", "1", "--size", "128", "--as-delivered", "--no-progress"])
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "ad" / "asdelivered.json").read_text())
    name = d["pairs"][0]["name"]
    with_px = read_image(tmp_path / "ad" / "with_pixel_size" / f"{name}_LOM.tif")
    without = read_image(tmp_path / "ad" / "without_pixel_size" / f"{name}_LOM.tif")
    cbs = read_image(tmp_path / "ad" / "with_pixel_size" / f"{name}_CBS.tif")
    assert with_px.pixel_size == pytest.approx(d["pairs"][0]["lom_pixel_um"], rel=1e-4) and without.pixel_size is None
    assert cbs.pixel_size == pytest.approx(d["pairs"][0]["cbs_pixel_um"], rel=1e-4)
    assert np.array_equal(with_px.data, without.data) and with_px.is_rgb
    read_transform(tmp_path / "ad" / "truth" / f"{name}_direct_transf.txt")


def test_pixel_sizes_by_hand_override_metadata_and_are_recorded(tmp_path):
    p = make_pair((96, 96), seed=2, deform=False)
    lom = ndimage.zoom(p.cbs_like_lom, 0.5, order=1)  # LOM pixel twice the CBS's, same field
    write_tiff(tmp_path / "lom.tif", lom)  # no pixel size in the file
    write_tiff(tmp_path / "cbs.tif", p.cbs, pixel_size=0.2)
    prep = prepare_pair(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "a", style="none")
    assert not prep.scale_known and prep.grid.factor == 1.0
    assert prep.pixel_sizes["lom"]["source"] == "unknown" and prep.pixel_sizes["cbs"]["source"].startswith("metadata")
    assert prep.warnings and "unknown" in prep.warnings[0] and "--lom-pixel-size" in prep.warnings[0]
    prep = prepare_pair(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "b", style="none", lom_pixel_size=0.4)
    assert prep.scale_known and prep.grid.factor == pytest.approx(2.0) and prep.styled.shape == (96, 96)
    assert prep.pixel_sizes["lom"] == {"um": 0.4, "source": "given"} and not prep.warnings
    prep = prepare_pair(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "c", style="none", lom_pixel_size=0.4, cbs_pixel_size=0.05)
    assert prep.warnings and "check the pixel sizes" in prep.warnings[0]  # the LOM field is now 4x the CBS's
    with pytest.raises(InputError, match="lom.tif"):
        prepare_pair(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "d", style="none", lom_pixel_size=-1.0)
    res = CliRunner().invoke(main, ["prepare", str(tmp_path / "lom.tif"), str(tmp_path / "cbs.tif"), "--out", str(tmp_path / "e"), "--style", "none", "--lom-pixel-size", "0.4"])
    assert res.exit_code == 0 and "warning" not in res.output, res.output


def test_manifest_pixel_size_columns(tmp_path):
    (tmp_path / "m.csv").write_text("lom,cbs,lom_pixel_size,cbs_pixel_size\nl1.tif,c1.tif,0.3,0.15\nl2.tif,c2.tif,,\n")
    a, b = read_manifest(tmp_path / "m.csv")
    assert (a.lom_pixel_size, a.cbs_pixel_size) == (0.3, 0.15) and (b.lom_pixel_size, b.cbs_pixel_size) == (None, None)
    (tmp_path / "bad.csv").write_text("lom,cbs,lom_pixel_size\nl1.tif,c1.tif,abc\n")
    with pytest.raises(InputError, match="line 2: lom_pixel_size"):
        read_manifest(tmp_path / "bad.csv")


@pytest.mark.slow
def test_register_prints_a_verdict_and_records_coarse_and_elastic_choices(tmp_path):
    p = make_pair((128, 128), seed=6)
    write_tiff(tmp_path / "lom.tif", p.cbs_like_lom)
    write_tiff(tmp_path / "cbs.tif", p.cbs)
    args = ["register", str(tmp_path / "lom.tif"), str(tmp_path / "cbs.tif"), "--out", str(tmp_path / "out"), "--style", "none", "--backend", "native", "--mode", "mono",
            "--lom-pixel-size", "0.1", "--cbs-pixel-size", "0.1"]  # fmt: skip
    res = CliRunner().invoke(main, args)  # output holds stdout and stderr (click >= 8.2)
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["tier"] in ("good", "decent", "bad", "poor") and m["grade_source"] == "grader"
    assert f"verdict: {m['tier'].upper()} (estimated by the grader" in res.output
    assert m["coarse"]["method"] == "auto" and m["coarse"]["candidates"][0]["method"] == "identity"
    assert m["elastic"]["kept"] in ("elastic", "start") and m["elastic"]["check"] == "structure" and "gradient_start" in m["elastic"]  # raw images: checked by structure
    assert m["pixel_size_source"] == {"lom": "given", "cbs": "given"}
