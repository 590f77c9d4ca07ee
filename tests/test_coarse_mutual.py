"""The coarse step's search by mutual information (raw images of two modalities), no Java."""

from __future__ import annotations

import numpy as np
import pytest

from styleunwarp.pipeline.coarse import align, align_by_mutual_information
from styleunwarp.pipeline.coarse.mutual import MutualInformationCorrelator, class_information, classes
from styleunwarp.pipeline.coarse.similarity import matrix
from styleunwarp.synth import make_pair
from styleunwarp.transform import affine_elastic, warp_image

from conftest import map_error, needs_data, real_data


@pytest.fixture(scope="module")
def texture():
    return make_pair((320, 320), seed=5, deform=False).cbs_like_lom.astype(np.float32)


def _other_modality(image: np.ndarray) -> np.ndarray:
    """A grey mapping that is not monotonic (mid greys bright, dark and light greys dark): no linear relation."""
    a = (image - image.min()) / (np.ptp(image) + 1e-9)
    return (255.0 * np.abs(np.sin(2.2 * np.pi * a))).astype(np.float32)


def _moved(image: np.ndarray, rot: float, shift: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """``image`` seen through the map ``rot`` degrees about the centre plus ``shift`` (target -> source px), and the map."""
    shape = image.shape
    a = matrix(rot, 1.0, (0.0, 0.0))
    c = np.array([(shape[1] - 1) / 2, (shape[0] - 1) / 2])
    a[:, 2] = c - a[:, :2] @ c + np.asarray(shift)
    inv = np.linalg.inv(np.vstack([a, [0, 0, 1]]))[:2]
    return warp_image(image, affine_elastic(inv, 1, shape), shape), a



def test_the_fft_map_equals_mutual_information_computed_directly(texture):
    """Every shift of the FFT map is the (overlap-weighted) normalised mutual information of the two
    images' classes over their overlap, as counted pixel by pixel."""
    fixed = texture[40:88, 50:98]
    moving = _other_modality(texture[30:100, 45:105])
    mask = np.ones(moving.shape, bool)
    mask[:5] = False  # part of the moving image is outside its field
    corr = MutualInformationCorrelator(fixed)
    out, origin = corr(moving, mask)
    h, w = fixed.shape
    for dy, dx in [(10, 5), (0, 0), (-3, 12), (20, -2)]:
        # fixed pixel (y, x) meets moving pixel (y + dy, x + dx)
        ys, xs = np.mgrid[0:h, 0:w]
        my, mx = ys + dy, xs + dx
        inside = (my >= 0) & (my < moving.shape[0]) & (mx >= 0) & (mx < moving.shape[1])
        # the classes of the whole moving image (as the FFT map quantises it) carried onto the fixed grid
        labels = classes(moving, mask)
        carried = np.full(fixed.shape, -1, np.int16)
        carried[inside] = labels[my[inside], mx[inside]]
        direct = class_information(corr.fixed, carried)
        assert out[origin[0] + dy, origin[1] + dx] == pytest.approx(direct, rel=1e-4, abs=1e-7), (dy, dx)  # float32 FFTs


def test_a_rotated_shifted_pair_without_a_linear_grey_relation_is_found(texture):
    """A texture against itself under a non-monotonic grey mapping, moved 6 deg and (14, -11) px:
    the NCC search cannot see it, mutual information finds it within a few pixels, confirmed by
    structure; the same pair aligned keeps the identity, and so does an unrelated pair."""
    target = texture[64:256, 64:256]
    source_full = _other_modality(texture)
    moved, a = _moved(source_full, 6.0, (14.0, -11.0))
    source = moved[64:256, 64:256]
    shape = target.shape
    crop = np.array([[1.0, 0.0, 64.0], [0.0, 1.0, 64.0], [0.0, 0.0, 1.0]])
    truth = (np.linalg.inv(crop) @ np.vstack([a, [0, 0, 1]]) @ crop)[:2]  # the map between the crops
    found = align_by_mutual_information(target, source, scale=1.0)
    assert not found.is_identity and found.search == "mutual information", found.reason
    assert found.confirmation and found.confirmation["z"] >= 5, found.reason
    assert map_error(found.chosen.matrix, truth, shape) < 3.0, (found.chosen.to_dict(shape), found.reason)
    aligned = align_by_mutual_information(target, source_full[64:256, 64:256], scale=1.0)
    assert aligned.is_identity and "peaks at the identity" in aligned.reason, aligned.reason
    noise = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    unrelated = align_by_mutual_information(target, noise, scale=1.0)
    assert unrelated.is_identity, unrelated.reason


@needs_data("petrography-bse-se", "bse/shale_0019.png")
def test_raw_shale_pairs_that_neither_ncc_search_finds_are_found_by_mutual_information():
    """Real shale BSE moved 5 deg and (-15, 12) px against its SE (as the large deformations of
    benchmarks/bench_coarse_raw.py, where this pair was one of the two that neither the grey levels
    nor the edge strength found): the raw chain's coarse step ends with a search by mutual
    information, which finds it within 5 px, confirmed by structure; without that stage the identity
    stays. The pair as acquired keeps the identity."""
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.pipeline.chain import coarse_alignment

    root = real_data("petrography-bse-se", "bse/shale_0019.png")[0].parents[1]
    bse, se = (to_gray(read_image(root / sub / "shale_0019.png").data).astype(np.float32) for sub in ("bse", "se"))
    moved, truth = _moved(bse, 5.0, (-15.0, 12.0))
    before = coarse_alignment("auto", se, moved, check="structure", mutual_information=False)
    found = coarse_alignment("auto", se, moved, check="structure")
    assert found.search == "mutual information" and not found.is_identity, found.reason
    assert found.confirmation and found.confirmation["z"] >= 5, found.reason
    assert map_error(found.chosen.matrix, truth, se.shape) < 5.0 < map_error(before.chosen.matrix, truth, se.shape), (found.reason, before.reason)
    aligned = coarse_alignment("auto", se, bse, check="structure")
    assert map_error(aligned.chosen.matrix, np.eye(2, 3), se.shape) < 1.5, aligned.reason


def test_representations_made_alike_do_not_take_the_mutual_information_search(texture):
    """The search by mutual information is the raw chain's last stage; ``coarse.align`` (NCC) is unchanged."""
    target = texture[64:256, 64:256]
    found = align("similarity", target, target, scale=1.0)
    assert found.search != "mutual information"
