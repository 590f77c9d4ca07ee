"""Pixel-size matching and pairing (no Java needed); the coarse alignment is tested in test_coarse.py."""

from __future__ import annotations

import numpy as np
import pytest

from styleunwarp.errors import InputError
from styleunwarp.pipeline.grid import direct_to_original, inverse_to_original, match_pixel_size
from styleunwarp.pipeline.pairing import find_pairs, read_manifest, safe_name
from styleunwarp.synth import make_pair
from styleunwarp.transform import affine_elastic, evaluate_elastic, warp_image


@pytest.fixture(scope="module")
def texture():
    return make_pair((256, 256), seed=5, deform=False).cbs_like_lom


def test_pixel_size_matching_and_transform_mapping_are_exact(texture):
    lom = texture[:200, :240]
    resampled, match = match_pixel_size(lom, 0.5, 0.25)  # LOM pixels twice as large: upsample by 2
    assert match.factor == pytest.approx(2.0) and resampled.shape == (400, 480)
    # a transform onto the resampled LOM, mapped to the original LOM, samples the same pixels
    target_shape = (300, 300)
    a = np.array([[1.0, 0.02, 20.0], [-0.02, 1.0, 30.0]])
    direct = affine_elastic(a, 4, target_shape)
    via_resampled = warp_image(resampled, direct, target_shape)
    via_original = warp_image(lom, direct_to_original(direct, match), target_shape)
    inner = (slice(20, -20), slice(20, -20))
    assert np.abs(via_resampled - via_original)[inner].mean() < 0.02 * np.ptp(lom)
    inv = inverse_to_original(affine_elastic(np.array([[1.0, 0.0, -5.0], [0.0, 1.0, 3.0]]), 4, resampled.shape), match)
    m = evaluate_elastic(inv, lom.shape)
    yy, xx = np.mgrid[0:200, 0:240]
    assert np.abs(m[0] - (match.to_resampled(xx) - 5)).max() < 1e-3
    same, m1 = match_pixel_size(lom, 0.25, 0.2505)
    assert same is lom and m1.factor == 1.0
    _, m2 = match_pixel_size(lom, None, 0.25)
    assert m2.factor == 1.0 and "unknown" in m2.reason
    with pytest.raises(InputError, match="metadata"):
        match_pixel_size(lom, 1000.0, 0.001)


def test_pairing_by_suffix_with_awkward_names(tmp_path):
    for name in ["a b [1]_LOM.tif", "a b [1]_CBS.tif", "x_lom.png", "x_SEM.tiff", "solo_LOM.tif", "dup_LOM.tif", "dup_CBS.tif", "dup_SEM.tif", "notes.txt", "other.tif"]:
        (tmp_path / name).write_bytes(b"")
    pairs, unpaired = find_pairs(tmp_path)
    assert [p.name for p in pairs] == ["a b [1]", "x"]
    reasons = {u.path.name: u.reason for u in unpaired}
    assert "no CBS" in reasons["solo_LOM.tif"]
    assert all("ambiguous" in reasons[n] for n in ("dup_LOM.tif", "dup_CBS.tif", "dup_SEM.tif"))
    custom, _ = find_pairs(tmp_path, lom_pattern=r"^(?P<stem>other)\.tif$", cbs_pattern=r"^(?P<stem>notes)\.txt$")
    assert custom == []
    with pytest.raises(InputError, match="stem"):
        find_pairs(tmp_path, lom_pattern=r".*_LOM\.tif")


def test_manifest(tmp_path):
    (tmp_path / "m.csv").write_text("name,lom,cbs,truth\np1,l1.tif,c1.tif,t1.txt\n,sub/l2.tif,c2.tif,\n")
    pairs = read_manifest(tmp_path / "m.csv")
    assert [p.name for p in pairs] == ["p1", "l2"]
    assert pairs[0].truth == tmp_path / "t1.txt" and pairs[1].truth is None and pairs[1].lom == tmp_path / "sub" / "l2.tif"
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="columns"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "dup.csv").write_text("name,lom,cbs\np,a,b\np,c,d\n")
    with pytest.raises(InputError, match="twice"):
        read_manifest(tmp_path / "dup.csv")
    assert safe_name("a/b\\c") == "a_b_c" and safe_name("..") != ".."
