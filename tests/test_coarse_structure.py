"""The coarse step's search on local structure (MIND-SSC; raw images of two modalities), no Java."""

from __future__ import annotations

import numpy as np
import pytest

from styleunwarp.pipeline.coarse import align_by_structure
from styleunwarp.pipeline.coarse.mind import ERODE_PX, MindCorrelator, refine
from styleunwarp.pipeline.coarse.similarity import matrix
from styleunwarp.pipeline.coarse.types import Candidate
from styleunwarp.registration.native.mind import mind_ssc
from styleunwarp.synth import make_pair, rigid_patch

from conftest import map_error, needs_data, real_data


@pytest.fixture(scope="module")
def texture():
    return make_pair((320, 320), seed=5, deform=False).cbs_like_lom.astype(np.float32)


def test_the_fft_map_equals_the_mean_descriptor_ncc_computed_directly(texture):
    """Every shift of the map is the mean over the six MIND-SSC channels of the NCC of the fixed
    image's descriptors and the moving image's (computed on it, inside its mask's eroded core) over
    their overlap, weighted by the square root of the covered fraction, as computed pixel by pixel."""
    fixed = texture[40:100, 50:110]
    moving = np.abs(np.sin(texture[30:110, 45:115] / 40.0)).astype(np.float32)
    mask = np.ones(moving.shape, bool)
    mask[:6] = False
    out, origin = MindCorrelator(fixed)(moving, mask)
    fd = mind_ssc(fixed.astype(np.float64)[None])[0]
    md = mind_ssc(np.where(mask, moving, moving[mask].mean()).astype(np.float64)[None])[0]
    from scipy import ndimage

    core = ndimage.binary_erosion(mask, iterations=ERODE_PX)
    h, w = fixed.shape
    ys, xs = np.mgrid[0:h, 0:w]
    for dy, dx in [(0, 0), (10, 5), (-3, 12), (15, -2)]:
        my, mx = ys + dy, xs + dx
        inside = (my >= 0) & (my < moving.shape[0]) & (mx >= 0) & (mx < moving.shape[1])
        inside[inside] = core[my[inside], mx[inside]]
        values = [np.corrcoef(fd[c][inside], md[c][my[inside], mx[inside]])[0, 1] for c in range(fd.shape[0])]
        direct = float(np.mean(values)) * np.sqrt(inside.sum() / (h * w))
        assert out[origin[0] + dy, origin[1] + dx] == pytest.approx(direct, abs=2e-4), (dy, dx)  # float32 FFTs


def test_an_aligned_pair_and_an_unrelated_one_keep_the_identity(texture):
    """The structure search moves nothing where the images as given are aligned (its peak is the
    identity) or unrelated (no confirmed unique peak)."""
    target = texture[64:256, 64:256]
    aligned = align_by_structure(target, np.sqrt(texture[64:256, 64:256] - texture.min() + 1.0), scale=1.0)
    assert aligned.is_identity and "peaks at the identity" in aligned.reason, aligned.reason
    noise = np.random.default_rng(3).normal(size=target.shape).astype(np.float32)
    unrelated = align_by_structure(target, noise, scale=1.0)
    assert unrelated.is_identity, unrelated.reason


def test_the_refinement_places_a_map_the_search_left_a_pixel_and_degree_off(texture):
    """A map 1.2 deg and (2, -2) px from the truth (the search's grain: one working pixel, 1.25 deg) is
    refined by the same measure to within 0.4 px of the truth; the truth itself stays within 0.4 px."""
    source = np.sqrt(texture - texture.min() + 1.0)
    moved, reference, truth = rigid_patch(source, texture, 192, 7.0, (9.0, -6.0))
    c = (reference.shape[1] - 1) / 2.0
    about_centre = matrix(1.2, 1.0, (0.0, 0.0)) @ np.array([[1.0, 0, -c], [0, 1.0, -c], [0, 0, 1.0]]) + np.array([[0, 0, c + 2.0], [0, 0, c - 2.0]])
    start = Candidate.from_matrix("similarity", truth @ np.vstack([about_centre, [0, 0, 1]]), 0.0)
    assert 2.5 < map_error(start.matrix, truth, reference.shape) < 4.0
    refined = refine(reference, moved, start, scale=1.0)
    assert map_error(refined.matrix, truth, reference.shape) < 0.4, refined.to_dict(reference.shape)
    kept = refine(reference, moved, Candidate.from_matrix("similarity", truth, 0.0), scale=1.0)
    assert map_error(kept.matrix, truth, reference.shape) < 0.4, kept.to_dict(reference.shape)


def test_two_representations_whose_grey_level_search_keeps_the_identity_are_searched_on_structure(texture):
    """Two representations made alike (``check="alike"``) whose grey-level search finds no unique
    winner (here the source's contrast is reversed, so no hypothesis of its own polarity leads:
    the identity is kept, 13 px from the truth) are searched on their structure as a raw chain's
    last stage: the map 7 deg and (9, -6) px off is found to within 0.1 px and confirmed; with
    ``structure_search=False`` the identity stays."""
    from styleunwarp.pipeline.chain import coarse_alignment

    moved, reference, truth = rigid_patch(texture.max() - texture, texture, 192, 7.0, (9.0, -6.0))
    before = coarse_alignment("auto", reference, moved, check="alike", structure_search=False)
    found = coarse_alignment("auto", reference, moved, check="alike")
    assert before.is_identity and map_error(before.chosen.matrix, truth, reference.shape) > 10.0, before.reason
    assert found.search == "structure" and not found.is_identity, found.reason
    assert found.confirmation and found.confirmation["z"] >= 5, found.reason
    assert map_error(found.chosen.matrix, truth, reference.shape) < 0.1, found.reason
    assert "on the representations' grey levels: no unique winner" in found.reason, found.reason


@needs_data("petrography-bse-se", "bse/shale_0046.png")
def test_a_raw_pair_no_grey_edge_or_information_search_finds_is_found_by_structure():
    """Real shale: a 256 px SE reference and the BSE patch cut from the field rotated -11.8 deg and
    shifted (16, 14) px (Lu et al. 2022's third level, as ``benchmarks/bench_user_field.py
    --deformations rigid`` cut it, where both chains kept the identity, 25.9 px off): the grey-level,
    edge-strength and mutual-information searches find no unique winner; the search on structure
    finds it, refined locally to within 1 px, confirmed by structure at full resolution."""
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.pipeline.chain import coarse_alignment

    root = real_data("petrography-bse-se", "bse/shale_0046.png")[0].parents[1]
    bse, se = (to_gray(read_image(root / sub / "shale_0046.png").data).astype(np.float32) for sub in ("bse", "se"))
    moved, reference, truth = rigid_patch(bse, se, 256, -11.8, (16.0, 14.0))
    before = coarse_alignment("auto", reference, moved, check="structure", structure_search=False)
    found = coarse_alignment("auto", reference, moved, check="structure")
    assert before.is_identity, before.reason
    assert found.search == "structure" and not found.is_identity, found.reason
    assert found.confirmation and found.confirmation["z"] >= 5, found.reason
    assert map_error(found.chosen.matrix, truth, reference.shape) < 1.0, found.reason
    assert map_error(before.chosen.matrix, truth, reference.shape) > 20.0, before.reason


@needs_data("deepclem-em-fm", "em/s7.png")
def test_coarse_structure_shared_by_clem_is_confirmed_at_the_scale_it_was_found():
    """Real CLEM: a 512 px chromatin-fluorescence reference and the EM patch cut from the field rotated
    -11.8 deg and shifted (32, 28) px (as the rigid CLEM case s7_2 of ``bench_user_field.py``). The
    structure search finds it within 6 px; at full resolution the EM's fine texture keeps the
    agreement near chance (z < 5), with descriptors at the search's 1/4 resolution the chromatin
    patches confirm it (z >= 5), and the coarse step starts from it where every other search kept the
    identity 55 px off."""
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.pipeline.chain import coarse_alignment

    root = real_data("deepclem-em-fm", "em/s7.png")[0].parents[1]
    em, fm = (to_gray(read_image(root / sub / "s7.png").data).astype(np.float32) for sub in ("em", "fm"))
    moved, reference, truth = rigid_patch(em, fm, 512, -11.8, (32.0, 28.0))
    found = coarse_alignment("auto", reference, moved, check="structure")
    assert found.search == "structure" and not found.is_identity, found.reason
    facts = found.confirmation
    assert facts["factor"] == 4 and facts["z"] >= 5 and facts["full_resolution"]["z"] < 5, found.reason
    assert map_error(found.chosen.matrix, truth, reference.shape) < 6.0, found.reason
    before = coarse_alignment("auto", reference, moved, check="structure", structure_search=False)
    assert before.is_identity and map_error(before.chosen.matrix, truth, reference.shape) > 40, before.reason


@needs_data("deepclem-em-fm", "em/s7.png")
def test_a_result_is_also_judged_at_the_scale_its_shared_structure_was_found():
    """Real CLEM, the EM patch of the test above placed by the truth and 20 px off it: at full resolution
    neither is shown aligned (the EM's fine texture); with ``coarse_factor`` 4 (where the coarse step
    confirmed its winner) the evidence adds the verdict at 1/4 resolution, aligned at the truth and not
    20 px off, and leaves ``aligned``, which decisions read, the full-resolution verdict."""
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.pipeline.evidence import structure_evidence
    from styleunwarp.transform import affine_elastic, warp_image

    root = real_data("deepclem-em-fm", "em/s7.png")[0].parents[1]
    em, fm = (to_gray(read_image(root / sub / "s7.png").data).astype(np.float32) for sub in ("em", "fm"))
    moved, reference, truth = rigid_patch(em, fm, 512, -11.8, (32.0, 28.0))
    verdicts = []
    for off in (0.0, 20.0):
        t = affine_elastic(truth + np.array([[0, 0, off], [0, 0, 0]]), 4, reference.shape)
        registered = warp_image(moved, t, reference.shape)
        ev = structure_evidence(registered, reference, t, moved.shape, coarse_factor=4)
        assert not ev["aligned"] and ev["coarse"]["factor"] == 4, ev
        verdicts.append(ev["coarse"]["aligned"])
    assert verdicts == [True, False]
    assert "coarse" not in structure_evidence(registered, reference, t, moved.shape)
