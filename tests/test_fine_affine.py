"""The fine affine step between the coarse and the elastic step (no Java)."""

from __future__ import annotations

import numpy as np
import pytest

from styleunwarp.pipeline.chain import consensus_radius, register_representations
from styleunwarp.pipeline.coarse.similarity import matrix
from styleunwarp.pipeline.fine_affine import (FINE_AFFINE_MIN_NCC, FINE_AFFINE_SIGMAS, FINE_AFFINE_SIGMAS_UNSEEN, FineAffine,
                                               default_fine_sigmas, fine_affine, fit_affine, largest_move)
from styleunwarp.registration import PIPELINE_DEFAULTS
from styleunwarp.synth import make_pair
from styleunwarp.transform import affine_elastic, warp_image

SHAPE = (256, 256)


@pytest.fixture(scope="module")
def pair():
    """A CBS-like target and the same view with a small known affine misalignment (target px -> source px)."""
    p = make_pair((320, 320), seed=7, deform=False)
    texture = p.cbs_like_lom
    truth = matrix(0.6, 1.012, (0.0, 0.0))
    truth[:, :2] = truth[:, :2] @ np.array([[1.0, 0.008], [0.0, 1.0]])  # a little shear
    c = np.array([(SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2])
    truth[:, 2] = np.array([161.7, 158.9]) - truth[:, :2] @ c
    base = np.array([[1.0, 0.0, 160.0 - c[0]], [0.0, 1.0, 160.0 - c[1]]])  # the same field without the misalignment
    target = warp_image(texture, affine_elastic(truth, 1, SHAPE), SHAPE)
    return target, texture, truth, base


def test_the_fit_recovers_a_small_affine_misalignment(pair):
    target, source, truth, start = pair
    assert largest_move(start, truth, SHAPE) > 2.0  # the start is clearly off
    fitted, ncc0, ncc1 = fit_affine(target, source, start)
    assert ncc1 > ncc0
    assert largest_move(fitted, truth, SHAPE) < 0.15


def test_a_large_image_is_fitted_on_a_reduced_grid_in_full_resolution_pixels(pair):
    target, source, truth, start = pair
    fitted, _, _ = fit_affine(target, source, start, max_size=100)  # 256 px reduced 2.56x, the source likewise
    assert largest_move(fitted, truth, SHAPE) < 0.4


def test_the_step_keeps_a_verified_fit_and_records_why(pair):
    target, source, truth, start = pair
    res = fine_affine(target, source, start, raw=(target, source), dof=6)  # the truth has shear: all six parameters
    assert res.facts["kept"] == "refined", res.facts["reason"]
    assert largest_move(res.matrix, truth, SHAPE) < 0.15 and res.facts["dof"] == 6
    assert res.facts["checked_on"] == "raw images"
    assert res.facts["mind_refined"] > res.facts["mind_start"]
    assert {"ncc_start", "ncc_refined", "mind_drop_sds", "moved_px", "matrix", "seconds"} <= set(res.facts)


def test_raw_structure_that_contradicts_the_fit_keeps_the_start(pair):
    """The representations agree 2.5 px away from where the raw images agree: the raw images decide."""
    target, source, truth, start = pair
    shifted = start.copy()
    shifted[:, 2] += (2.5, -1.5)
    rep_target = warp_image(source, affine_elastic(shifted, 1, SHAPE), SHAPE)  # a representation offset from the truth
    raw_target = warp_image(source, affine_elastic(start, 1, SHAPE), SHAPE)  # the images as recorded agree at the start
    res = fine_affine(rep_target, source, start, raw=(raw_target, source))
    assert largest_move(np.asarray(res.facts["matrix"]), shifted, SHAPE) < 0.3  # the fit itself found the representations' optimum
    assert res.facts["kept"] == "start", res.facts["reason"]
    assert "structure" in res.facts["reason"]
    assert np.array_equal(res.matrix, start)


def test_a_fit_beyond_a_local_step_is_kept_only_where_structure_confirms_it(pair):
    """A start 15 px off (over the 3 % of a local step: 7.7 px at 256 px): the fit that brings it
    back is a search result, kept because the raw structure confirms it as the coarse step
    confirms its winners (far above chance, better than the start, consistently); the same fit
    on representations whose optimum the raw images contradict is refused."""
    target, source, truth, _ = pair
    far = truth.copy()
    far[:, 2] += (12.0, -9.0)
    res = fine_affine(target, source, far, raw=(target, source), dof=6)
    assert res.facts["moved_px"] > res.facts["max_move_px"]
    assert res.facts["kept"] == "refined", res.facts["reason"]
    assert "confirmed by structure" in res.facts["reason"] and res.facts["far_move"]["z"] >= 5
    assert largest_move(res.matrix, truth, SHAPE) < 0.3
    raw_target = warp_image(source, affine_elastic(far, 1, SHAPE), SHAPE)  # the images as recorded agree at the far start
    refused = fine_affine(target, source, far, raw=(raw_target, source), dof=6)
    assert refused.facts["moved_px"] > refused.facts["max_move_px"]
    assert refused.facts["kept"] == "start" and "does not confirm" in refused.facts["reason"], refused.facts["reason"]
    assert np.array_equal(refused.matrix, far)


@pytest.mark.parametrize("weight", [0.05, 0.10])
def test_representations_that_do_not_correlate_keep_the_start(pair, weight):
    """Below the fit's bar (NCC 0.20) there is too little structure to locate a map: a CLEM pair's
    fit at NCC 0.012 moved it from 2.0 to 5.1 px while the raw structure did not object, and steel
    fits ending at 0.154-0.195 moved near-aligned renderings up to 1.96 px away. Weight 0.10 ends
    between the coarse step's bar (0.15) and the fit's."""
    target, source, truth, start = pair
    rng = np.random.default_rng(3)
    faint = (weight * source + rng.normal(size=source.shape) * source.std()).astype(np.float32)  # the structure drowned in noise
    faint -= faint.min()
    res = fine_affine(target, faint, start, raw=(target, source))  # the raw images agree: only the NCC bar objects
    assert res.facts["ncc_start"] <= res.facts["ncc_refined"] < FINE_AFFINE_MIN_NCC and res.facts["moved_px"] <= res.facts["max_move_px"]
    assert (res.facts["ncc_refined"] < 0.15) == (weight == 0.05)
    assert res.facts["mind_drop_sds"] <= 2.0
    assert res.facts["kept"] == "start" and "correlate" in res.facts["reason"], res.facts["reason"]
    assert np.array_equal(res.matrix, start)


def test_representations_that_correlate_above_the_bar_are_refined(pair):
    """The same drowned structure, a little stronger (NCC above 0.20): the fit is kept."""
    target, source, truth, start = pair
    rng = np.random.default_rng(3)
    faint = (0.12 * source + rng.normal(size=source.shape) * source.std()).astype(np.float32)
    faint -= faint.min()
    res = fine_affine(target, faint, start, raw=(target, source))
    assert res.facts["ncc_refined"] >= FINE_AFFINE_MIN_NCC and res.facts["kept"] == "refined", res.facts["reason"]


@pytest.mark.parametrize("weight", [0.12, 0.15])
def test_the_floor_reads_the_sharp_maps_when_the_fit_ends_blurred(pair, weight):
    """With the schedule for a model on unseen looks (ending on maps blurred by 2 px) the drowned
    structure correlates far above the floor on the blurred maps (white noise averages out there);
    the floor still reads the sharp maps at the fit, where it was measured."""
    target, source, truth, start = pair
    rng = np.random.default_rng(3)
    faint = (weight * source + rng.normal(size=source.shape) * source.std()).astype(np.float32)
    faint -= faint.min()
    res = fine_affine(target, faint, start, raw=(target, source), sigmas=FINE_AFFINE_SIGMAS_UNSEEN)
    f = res.facts
    assert f["fit_sigmas"] == list(FINE_AFFINE_SIGMAS_UNSEEN) and f["fit_ncc_start"] < f["fit_ncc_refined"]
    assert f["fit_ncc_refined"] > 3 * FINE_AFFINE_MIN_NCC
    assert (f["kept"] == "refined") == (f["ncc_refined"] >= FINE_AFFINE_MIN_NCC) == (weight == 0.15), f["reason"]
    assert "blurred by 2 px" in f["reason"]


def test_the_blurred_schedule_is_for_style_models_without_a_chain_card(tmp_path):
    from styleunwarp.style.chain import Chain, write_chain_card

    assert default_fine_sigmas(None, "model") == FINE_AFFINE_SIGMAS_UNSEEN  # the shipped model
    assert default_fine_sigmas(None, "none") == FINE_AFFINE_SIGMAS
    assert default_fine_sigmas(None, "model", "none") == FINE_AFFINE_SIGMAS
    write_chain_card(tmp_path, Chain("edges", "native"), {"kind": "edges"})
    assert default_fine_sigmas(tmp_path, "model") == FINE_AFFINE_SIGMAS  # a chain from train --target auto
    assert FINE_AFFINE_SIGMAS[-1] == 0.0 and FINE_AFFINE_SIGMAS_UNSEEN[-1] == 2.0


def test_a_chain_card_sets_the_blurs_of_its_representations_fit(tmp_path):
    """train --target auto may choose the fit ending on blurred maps: register then fits so on that
    representation's maps (any backend), and sharp on the others the card offers."""
    from styleunwarp.style.chain import Chain, load_chain, write_chain_card

    chain = Chain("edges", "native", fine_sigmas=(4.0, 2.0))
    write_chain_card(tmp_path, chain, {"kind": "edges"})
    assert load_chain(tmp_path) == chain and load_chain(tmp_path).fine_sigmas == (4.0, 2.0)
    assert default_fine_sigmas(tmp_path, "model") == (4.0, 2.0)
    assert default_fine_sigmas(tmp_path, "model", "edges") == (4.0, 2.0)
    assert default_fine_sigmas(tmp_path, "model", "shared") == FINE_AFFINE_SIGMAS
    assert default_fine_sigmas(tmp_path, "model", "none") == FINE_AFFINE_SIGMAS
    assert default_fine_sigmas(tmp_path, "none") == FINE_AFFINE_SIGMAS
    assert chain.label == Chain("edges", "native").label and "blurs 4, 2 px" in chain.described
    with pytest.raises(ValueError, match="fine_sigmas"):
        Chain.from_dict({"representation": "edges", "backend": "native", "fine_sigmas": [-1]})


def test_raw_images_of_two_modalities_are_not_refined(pair):
    target, source, _, start = pair
    res = fine_affine(target, source, start, check="structure")
    assert res.facts["kept"] == "start" and res.facts["reason"].startswith("not run")
    assert np.array_equal(res.matrix, start)


def test_the_chain_runs_it_before_the_elastic_step_and_skips_it_without_coarse_alignment(pair):
    target, source, truth, _ = pair
    crop = source[32:288, 32:288]  # the source on a grid of the target's size, near the target's field
    out = register_representations(target, crop, PIPELINE_DEFAULTS.with_(mode="mono", max_scale_deformation="coarse"), backend="native",
                                   raw=(target, crop))
    assert out.fine_affine["kept"] in ("refined", "start") and out.fine_affine["reason"]
    off = register_representations(target, crop, PIPELINE_DEFAULTS.with_(mode="mono", max_scale_deformation="coarse"), backend="native",
                                   coarse="none")
    assert off.fine_affine == {}


def test_the_consensus_fit_runs_only_from_a_refined_start(pair):
    """A consensus fit sees partners within its radius only: it runs from a start the fine affine
    step refined, without the peak test; from any other start the whole maps are fitted."""
    assert consensus_radius(2, {"kept": "refined"}) == 2
    assert consensus_radius(2, {"kept": "start"}) == consensus_radius(2, {}) == consensus_radius(0, {"kept": "refined"}) == 0
    target, source, truth, start = pair
    refined = fine_affine(target, source, start)
    assert refined.facts["kept"] == "refined"
    params = PIPELINE_DEFAULTS.with_(mode="mono", max_scale_deformation="coarse")
    out = register_representations(target, source, params, backend="native", fine_result=refined, consensus_px=2)
    assert out.fine_affine["kept"] == "refined" and out.elastic["consensus_px"] == 2
    assert "peak_drop_min" not in out.elastic and "consensus_note" not in out.elastic
    kept = FineAffine(np.asarray(start, float), {"kept": "start", "reason": "refused by its check"})
    whole = register_representations(target, source, params, backend="native", fine_result=kept, consensus_px=2)
    assert kept.facts["kept"] == "start" and whole.elastic["consensus_px"] == 0 and "fine affine" in whole.elastic["consensus_note"]


def test_largest_move_reads_corners_and_centre():
    a = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    b = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, 4.0]])
    assert largest_move(a, b, (10, 10)) == pytest.approx(5.0)
    rot = matrix(1.0, 1.0, (0.0, 0.0))
    assert largest_move(a, rot, (101, 101)) == pytest.approx(np.hypot(100, 100) * 2 * np.sin(np.radians(0.5)), rel=1e-6)


def _similarity_part(fitted: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The change's linear part: ``start``'s linear part inverted times the fit's."""
    return np.linalg.solve(np.asarray(start)[:, :2], np.asarray(fitted)[:, :2])


def test_fewer_degrees_of_freedom_constrain_the_change(pair):
    """dof 4 changes the start by a similarity, dof 2 by a shift; both still raise the agreement."""
    target, source, truth, start = pair
    sim, ncc0, ncc4 = fit_affine(target, source, start, dof=4)
    lin = _similarity_part(sim, start)
    assert lin[0, 0] == pytest.approx(lin[1, 1], abs=1e-9) and lin[0, 1] == pytest.approx(-lin[1, 0], abs=1e-9)
    assert ncc4 > ncc0
    shift, _, ncc2 = fit_affine(target, source, start, dof=2)
    assert np.allclose(shift[:, :2], start[:, :2]) and ncc0 < ncc2 <= ncc4 + 1e-9
    assert largest_move(sim, truth, SHAPE) < largest_move(shift, truth, SHAPE) < largest_move(start, truth, SHAPE)
    with pytest.raises(ValueError, match="dof"):
        fit_affine(target, source, start, dof=3)


def test_a_similarity_misalignment_is_recovered_by_a_similarity_fit():
    p = make_pair((320, 320), seed=7, deform=False)
    c = np.array([(SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2])
    truth = matrix(0.8, 0.99, (0.0, 0.0))
    truth[:, 2] = np.array([162.2, 158.4]) - truth[:, :2] @ c
    start = np.array([[1.0, 0.0, 160.0 - c[0]], [0.0, 1.0, 160.0 - c[1]]])
    target = warp_image(p.cbs_like_lom, affine_elastic(truth, 1, SHAPE), SHAPE)
    res = fine_affine(target, p.cbs_like_lom, start, raw=(target, p.cbs_like_lom))  # the pipeline's default: a similarity
    assert res.facts["kept"] == "refined" and res.facts["dof"] == 4 and "similarity" in res.facts["reason"], res.facts["reason"]
    assert largest_move(res.matrix, truth, SHAPE) < 0.15


def test_a_mask_limits_the_agreement_to_its_pixels(pair):
    """A fit on half of a checkerboard still finds the map (the texture is everywhere); the NCC it
    reports is over the masked pixels only, so it differs from the whole image's; a mask on another grid is refused."""
    target, source, truth, start = pair
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    half = ((yy // 32 + xx // 32) % 2) == 0
    fitted, ncc0_half, _ = fit_affine(target, source, start, mask=half)
    assert largest_move(fitted, truth, SHAPE) < 0.3
    _, ncc0_other, _ = fit_affine(target, source, start, mask=~half, max_iter=0, sigmas=(0.0,))
    _, ncc0_all, _ = fit_affine(target, source, start, max_iter=0, sigmas=(0.0,))
    assert len({round(ncc0_half, 6), round(ncc0_other, 6), round(ncc0_all, 6)}) == 3
    with pytest.raises(ValueError, match="mask"):
        fit_affine(target, source, start, mask=half[:-1])


def test_the_chain_options_of_a_prepared_pair_carry_its_models_blurs(tmp_path):
    """What a benchmark or caller gets from ``chain_options(prep)`` is what ``register_pair`` runs:
    the blurs of the model the pair was prepared with (the shipped model: ending at 2 px)."""
    pytest.importorskip("torch")
    from styleunwarp.io import write_tiff
    from styleunwarp.pipeline.pair import chain_options, prepare_pair
    from styleunwarp.style.chain import Chain, write_chain_card

    p = make_pair((96, 96), seed=3, deform=False)
    write_tiff(tmp_path / "lom.tif", p.lom)
    write_tiff(tmp_path / "cbs.tif", p.cbs)
    shipped = prepare_pair(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "a")
    assert chain_options(shipped)["fine_sigmas"] == FINE_AFFINE_SIGMAS_UNSEEN
    assert chain_options(shipped, fine_sigmas=(1.0, 0.0))["fine_sigmas"] == (1.0, 0.0)  # the caller's choice wins
    raw = prepare_pair(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "b", style="none")
    assert chain_options(raw)["fine_sigmas"] == FINE_AFFINE_SIGMAS
    from styleunwarp.style.representations.raw import Raw

    model = tmp_path / "m"
    model.mkdir()
    write_chain_card(model, Chain("none", "native", fine_sigmas=(3.0,)), Raw().save(model))
    carded = prepare_pair(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "c", model=model)
    assert chain_options(carded)["fine_sigmas"] == (3.0,)
