"""Agreement of the transform core with the real bUnwarpJ plugin (skipped where it is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from styleunwarp.imagej import from_imageplus, to_imageplus
from styleunwarp.transform import evaluate_elastic, format_raw, read_elastic, read_raw, warp_image, warping_index, write_elastic
from test_transform import random_elastic

pytestmark = pytest.mark.bunwarpj


def _java_matrix(jclass, n: int):
    import jpype

    return jpype.JArray(jpype.JDouble, 2)([[0.0] * n for _ in range(n)])


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    rng = np.random.default_rng(11)
    shape = (96, 128)  # H, W of the target
    t = random_elastic(rng, 8, shape, amplitude=2.0)
    d = tmp_path_factory.mktemp("bunwarpj_files")
    path = write_elastic(t, d / "direct_transf.txt")
    src = rng.uniform(0, 255, (90, 120)).astype(np.float32)
    return t, shape, path, src, d


def test_bunwarpj_writes_the_same_bytes(bunwarpj, case):
    t, _, path, _, d = case
    import jpype

    out = d / "java_written.txt"
    bunwarpj("bunwarpj.MiscTools").saveElasticTransformation(
        t.intervals, jpype.JArray(jpype.JDouble, 2)(t.cx.tolist()), jpype.JArray(jpype.JDouble, 2)(t.cy.tolist()), str(out)
    )
    assert out.read_bytes() == path.read_bytes()


def test_bunwarpj_reads_our_file(bunwarpj, case):
    t, _, path, _, _ = case
    n = t.intervals + 3
    cx, cy = _java_matrix(bunwarpj, n), _java_matrix(bunwarpj, n)
    bunwarpj("bunwarpj.MiscTools").loadTransformation(str(path), cx, cy)
    assert np.array_equal(np.array([list(r) for r in cx]), t.cx)
    assert np.array_equal(np.array([list(r) for r in cy]), t.cy)


def test_raw_conversion_agrees_with_bunwarpj(bunwarpj, case, record_property):
    t, shape, path, _, d = case
    target = to_imageplus(np.zeros(shape, np.float32), "target")
    raw_java = d / "raw_by_bunwarpj.txt"
    bunwarpj("bunwarpj.MiscTools").saveElasticAsRaw(str(path), str(raw_java), target)
    theirs = read_raw(raw_java)
    ours = evaluate_elastic(t, shape)
    diff = np.abs(theirs.map - ours).max()
    record_property("max_raw_difference_px", float(diff))
    print(f"max |ours - bUnwarpJ| raw map difference: {diff:.3e} px")
    assert diff < 1e-9  # same weights as the plugin, so only summation-order rounding
    # our writer reproduces bUnwarpJ's raw file byte for byte from the same numbers
    assert format_raw(theirs) == raw_java.read_text()
    # and read_elastic of our file + their raw agree through the warping index
    assert warping_index(read_elastic(path), theirs, shape) < 1e-9


def test_warped_image_agrees_with_bunwarpj(bunwarpj, case, record_property):
    t, shape, path, src, _ = case
    target = to_imageplus(np.zeros(shape, np.float32), "target")
    source = to_imageplus(src, "source")
    bunwarpj("bunwarpj.bUnwarpJ_").applyTransformToSource(str(path), target, source)
    theirs = from_imageplus(source)
    ours = warp_image(src, t, shape)
    assert theirs.shape == ours.shape == shape
    diff = np.abs(theirs - ours).max()
    record_property("max_warp_difference_grey_levels", float(diff))
    print(f"max |ours - bUnwarpJ| warped image difference: {diff:.3e} (image range 0..255)")
    assert np.array_equal(theirs == 0, ours == 0)  # same pixels fall outside the source
    assert diff < 1e-3  # float32 output of both; measured 3e-5 on 0..255 noise


def test_a_16_bit_colour_image_is_warped_channel_by_channel_with_all_its_bits(bunwarpj, case):
    """ImageJ's RGB holds 8 bits a channel: a 16-bit colour LOM goes through the plugin one 32-bit channel at a time."""
    from styleunwarp.registration.bunwarpj import apply_transform

    t, shape, _, _, _ = case
    rgb = np.random.default_rng(13).integers(0, 65536, (90, 120, 3)).astype(np.float32)
    moved = apply_transform(rgb, t, shape)
    assert moved.shape == shape + (3,) and moved.dtype == np.float32
    assert moved.max() > 60000  # not cut to 8 bits
    for c in range(3):
        np.testing.assert_array_equal(moved[..., c], apply_transform(rgb[..., c], t, shape))
    assert np.abs(moved - warp_image(rgb, t, shape)).max() < 1.0  # our warp agrees to well under a grey level of 65535
    eight_bit = apply_transform(np.rint(rgb / 257.0), t, shape)  # whole numbers in 0..255: ImageJ's RGB, as before
    assert eight_bit.dtype == np.uint8


def test_warped_rgb_agrees_with_bunwarpj(bunwarpj, case):
    t, shape, path, _, _ = case
    rng = np.random.default_rng(12)
    rgb = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    target = to_imageplus(np.zeros(shape, np.float32), "target")
    source = to_imageplus(rgb, "source")
    bunwarpj("bunwarpj.bUnwarpJ_").applyTransformToSource(str(path), target, source)
    theirs = from_imageplus(source)
    ours = warp_image(rgb, t, shape)
    assert theirs.shape == ours.shape
    assert np.abs(theirs.astype(int) - ours.astype(int)).max() <= 1
