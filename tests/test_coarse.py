"""Coarse alignment: hypotheses, scores, the identity kept unless beaten, exact composition (no Java)."""

from __future__ import annotations

import numpy as np
import pytest

from styleunwarp.pipeline.coarse import align, compose_direct, inverse_through, warp_source
from styleunwarp.pipeline.coarse.score import ShiftCorrelator, weighted
from styleunwarp.pipeline.coarse.similarity import matrix
from styleunwarp.synth import make_pair
from styleunwarp.transform import affine_elastic, evaluate_elastic, identity_elastic, warp_image

from conftest import load_benchmark, needs_data, real_data


@pytest.fixture(scope="module")
def texture():
    return make_pair((320, 320), seed=5, deform=False).cbs_like_lom


def _view(texture: np.ndarray, rot: float, scale: float, centre: tuple[float, float], shape=(192, 192)) -> tuple[np.ndarray, np.ndarray]:
    """A target of ``shape`` seeing ``texture`` rotated and scaled, its centre at ``centre``; and the true map."""
    a = matrix(rot, scale, (0.0, 0.0))
    c = np.array([(shape[1] - 1) / 2, (shape[0] - 1) / 2])
    a[:, 2] = np.asarray(centre) - a[:, :2] @ c
    return warp_image(texture, affine_elastic(a, 1, shape), shape), a


def _map_error(a: np.ndarray, b: np.ndarray, shape=(192, 192)) -> float:
    return float(np.hypot(*(evaluate_elastic(affine_elastic(a, 1, shape), shape) - evaluate_elastic(affine_elastic(b, 1, shape), shape))).mean())


@pytest.mark.parametrize(("rot", "centre"), [(37.0, (150.0, 170.0)), pytest.param(0.0, (160.0, 160.0), marks=pytest.mark.slow), pytest.param(-170.0, (165.0, 150.0), marks=pytest.mark.slow)])
def test_a_field_inside_a_larger_rotated_one_is_found(texture, rot, centre):
    target, truth = _view(texture, rot, 0.8, centre)
    res = align("auto", target, texture, scale=0.8)
    assert not res.is_identity, res.reason
    assert _map_error(res.chosen.matrix, truth) < 1.5
    assert res.chosen.rotation_deg == pytest.approx(rot, abs=1.0)
    d = res.to_dict(target.shape)
    assert d["candidates"][0]["method"] == "identity" and d["kept"] == "similarity"
    assert all("score" in c for c in d["candidates"])


@pytest.mark.slow
def test_an_unknown_scale_is_searched(texture):
    target, truth = _view(texture, 5.0, 0.6, (160.0, 160.0))
    res = align("auto", target, texture, scale=None)
    assert res.chosen.scale == pytest.approx(0.6, rel=0.03)
    assert _map_error(res.chosen.matrix, truth) < 2.0


def test_the_identity_is_kept_for_aligned_and_for_unrelated_pairs(texture):
    near = warp_image(texture, affine_elastic(np.array([[1, 0, 0.4], [0, 1, -0.3]]), 1, texture.shape), texture.shape)
    res = align("auto", near, texture, scale=1.0)
    assert res.is_identity and res.chosen.method == "identity", res.reason
    noise = np.random.default_rng(0).normal(100, 20, texture.shape).astype(np.float32)
    res = align("similarity", noise, texture, scale=1.0)
    assert res.is_identity, res.reason
    assert align("none", near, texture).candidates == []


@pytest.mark.slow
def test_affine_method_refines_the_similarity(texture):
    shape = (192, 192)
    a = np.array([[0.84, 0.06, 60.0], [-0.02, 0.78, 70.0]])  # shear and unequal scales
    target = warp_image(texture, affine_elastic(a, 1, shape), shape)
    res = align("affine", target, texture, scale=0.8)
    assert res.chosen.method == "affine"
    assert _map_error(res.chosen.matrix, a) < 1.5


def test_overlap_weighting_and_fft_ncc_match_direct_ncc(texture):
    fixed = texture[100:140, 90:150]
    corr = ShiftCorrelator(fixed)
    nmap, origin = corr(texture, np.ones(texture.shape, bool))
    iy, ix = np.unravel_index(np.argmax(nmap), nmap.shape)
    assert (iy - origin[0], ix - origin[1]) == (100, 90)
    assert nmap[iy, ix] == pytest.approx(1.0, abs=1e-3)
    assert weighted(0.8, 0.25) == pytest.approx(0.4) and weighted(float("nan"), 1.0) == float("-inf")


def test_composition_with_the_coarse_map_is_exact(texture):
    shape = (192, 192)
    a = np.array([[0.9, -0.1, 40.0], [0.1, 0.9, 30.0]])
    moving = warp_source(texture, a, shape)
    assert moving.shape == shape
    assert warp_source(texture, np.eye(2, 3), texture.shape) is texture
    d = affine_elastic(np.array([[1, 0, 2.0], [0, 1, -1.5]]), 4, shape)  # elastic step on the aligned source
    composed = compose_direct(d, a)
    yy, xx = np.mgrid[0:192, 0:192]
    expect_x = a[0, 0] * (xx + 2.0) + a[0, 1] * (yy - 1.5) + a[0, 2]
    assert np.abs(evaluate_elastic(composed, shape)[0] - expect_x).max() < 1e-3
    # the inverse, re-expressed on the source grid, undoes the composed direct map inside the field
    inv = affine_elastic(np.array([[1, 0, -2.0], [0, 1, 1.5]]), 4, shape)
    inv_src = inverse_through(inv, a, texture.shape, shape)
    m = evaluate_elastic(composed, shape)[:, 20:-20, 20:-20]
    back = inv_src.at(texture.shape, m[0], m[1])
    assert np.hypot(back[0] - xx[20:-20, 20:-20], back[1] - yy[20:-20, 20:-20]).mean() < 0.05
    assert inverse_through(identity_elastic(4, shape), np.eye(2, 3), shape, shape).intervals == 4


def test_an_elastic_result_that_does_not_clearly_improve_is_undone(texture):
    from styleunwarp.pipeline.chain import keep_or_undo as _keep_or_undo
    from styleunwarp.registration import PIPELINE_DEFAULTS, Registration

    shape = texture.shape
    shifted = warp_image(texture, affine_elastic(np.array([[1, 0, 3.0], [0, 1, -2.0]]), 1, shape), shape)

    def reg(a):
        a = np.asarray(a, float)
        inv = np.linalg.inv(np.vstack([a, [0, 0, 1]]))[:2]
        return Registration(affine_elastic(a, 4, shape), affine_elastic(inv, 4, shape), shape, shape, "test", PIPELINE_DEFAULTS, 0.0, {})

    # the start is 3 px off; a result that moves it onto the target gains a lot and is kept
    direct, inverse, moved, facts = _keep_or_undo(texture, shifted, reg([[1, 0, -3.0], [0, 1, 2.0]]))
    assert facts["kept"] == "elastic" and facts["gradient_elastic"] > facts["gradient_start"] + 0.1 and facts["consistency_px"] < 0.01
    assert facts["ncc_elastic"] > facts["ncc_start"] + 0.1  # recorded beside it
    # a result that moves an aligned start away is undone: identity on the start, and said so
    direct, inverse, moved, facts = _keep_or_undo(texture, texture, reg([[1, 0, 1.0], [0, 1, 0.5]]))
    assert facts["kept"] == "start" and "kept the start" in facts["reason"] and facts["consistency_px"] is not None
    assert np.abs(evaluate_elastic(direct, shape) - evaluate_elastic(identity_elastic(4, shape), shape)).max() < 1e-6
    assert moved is texture and inverse is not None
    # a clear gain with direct and inverse maps that disagree is not trusted either
    bad = Registration(affine_elastic(np.array([[1, 0, -3.0], [0, 1, 2.0]]), 4, shape), identity_elastic(4, shape), shape, shape, "test", PIPELINE_DEFAULTS, 0.0, {})
    facts = _keep_or_undo(texture, shifted, bad)[3]
    assert facts["kept"] == "start" and "disagree" in facts["reason"]


def test_near_identity_shortcut_finds_what_the_global_search_finds(texture):
    """A roughly aligned pair: the near-identity search (or the unbeatable identity) stands for
    the global search and gives its map; an unrelated pair (identity not credible) searches globally."""
    c = np.array([(texture.shape[1] - 1) / 2, (texture.shape[0] - 1) / 2])
    a = matrix(4.0, 1.0, (0.0, 0.0))
    a[:, 2] = c + np.array([5.0, -3.0]) - a[:, :2] @ c
    target = warp_image(texture, affine_elastic(a, 1, texture.shape), texture.shape)
    fast = align("auto", target, texture, scale=1.0)
    full = align("auto", target, texture, scale=1.0, shortcut=False)
    assert fast.search == "near" and full.search == "global", (fast.reason, fast.identity.score)
    assert not fast.is_identity and _map_error(fast.chosen.matrix, a, texture.shape) < 1.0
    assert _map_error(fast.chosen.matrix, full.chosen.matrix, texture.shape) < 0.5
    assert fast.to_dict()["search"] == "near"
    noise = np.random.default_rng(1).normal(100, 20, texture.shape).astype(np.float32)
    res = align("similarity", noise, texture, scale=1.0)
    assert res.search == "global" and res.is_identity


@needs_data("petrography-bse-se", "bse/shale_0046.png")
def test_raw_images_of_two_modalities_are_searched_on_their_edges():
    """Real shale BSE moved 2.5 deg and (8, -7) px against its SE: the raw chain's coarse step
    (``check="structure"``) searches edge strength where the grey levels of the two detectors keep
    the identity, as they do here, and finds the move."""
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.pipeline.chain import coarse_alignment

    root = real_data("petrography-bse-se", "bse/shale_0046.png")[0].parents[1]
    bse, se = (to_gray(read_image(root / sub / "shale_0046.png").data).astype(np.float32) for sub in ("bse", "se"))
    shape = se.shape
    truth = matrix(2.5, 1.0, (0.0, 0.0))
    c = np.array([(shape[1] - 1) / 2, (shape[0] - 1) / 2])
    truth[:, 2] = c - truth[:, :2] @ c + np.array([8.0, -7.0])
    moved = warp_image(bse, affine_elastic(np.linalg.inv(np.vstack([truth, [0, 0, 1]]))[:2], 1, shape), shape)
    found = coarse_alignment("auto", se, moved, check="structure")
    assert not found.is_identity and found.confirmation and found.confirmation["z"] >= 5, found.reason
    assert found.reason.startswith("on edge strength"), found.reason  # the grey levels alone kept the identity
    start = _map_error(np.eye(2, 3), truth, shape)
    # the scale is searched (no pixel sizes): within 2 % of 1, so a few px off at the borders; the elastic step does the rest
    assert _map_error(found.chosen.matrix, truth, shape) < min(4.0, start / 3), (found.chosen.to_dict(shape), found.reason, start)
    aligned = coarse_alignment("auto", se, bse, check="structure")
    assert _map_error(aligned.chosen.matrix, np.eye(2, 3), shape) < 1.0, aligned.reason


@needs_data("petrography-bse-se", "bse/shale_0019.png")
def test_an_ambiguous_search_over_every_scale_does_not_cancel_a_clear_finding_at_scale_1(tmp_path):
    """A 256 px shale patch (BSE against SE, grey levels) cut at Lu et al. 2022's third level, 13.6 deg and
    (-14, -17) px, 28 px off, without pixel sizes: the search over every scale finds no unique winner, since
    hypotheses that magnify the source crowd the top of it. The same search at scale 1 alone finds the
    move; it stands, confirmed by structure, as a near-identity finding does (``search =
    "unit-scale-fallback"``). Given the scale, the search at scale 1 is the only search."""
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.transform import read_transform

    coarse_error = load_benchmark("bench_coarse_raw").coarse_error

    root = real_data("petrography-bse-se", "bse/shale_0019.png")[0].parents[1]
    bench = _bench_asdelivered()
    names = bench.image_names(root / "bse")  # the case's level and cut follow its place in the set
    case = next(c for c in bench.rigid_patch_pairs(root, "bse", "se", tmp_path, 5, names, 256) if c["name"] == "shale_0019")
    moved, reference = (to_gray(read_image(case[k]).data).astype(np.float32) for k in ("lom", "cbs"))
    truth = read_transform(case["truth"])
    assert coarse_error(np.eye(2, 3), truth, reference.shape) > 20
    found = align("auto", reference, moved)
    assert found.search == "unit-scale-fallback", found.reason
    assert found.confirmation and found.confirmation["z"] >= 5, found.reason
    assert coarse_error(found.chosen.matrix, truth, reference.shape) < 2.5, found.reason
    assert any(c.scale < 0.5 for c in found.candidates), "magnified hypotheses led the search over every scale"
    known = align("auto", reference, moved, scale=1.0)
    assert known.search == "global" and coarse_error(known.chosen.matrix, truth, reference.shape) < 2.5, known.reason


def _bench_asdelivered():
    """``benchmarks/bench_asdelivered.py`` as a module (its ``_blind_pairs`` renders steel pairs by the independent renderers)."""
    return load_benchmark("bench_asdelivered")


@needs_data("openecci-cbs", "steel_SEM_006.tif")
def test_an_ambiguous_global_search_does_not_cancel_a_near_identity_finding(tmp_path):
    """Real CBS images with LOM renderings by benchmarks/blind_lom.py (seed 1), moved up to about
    9 px, no pixel sizes (the scale is searched), through the shipped model. Where the near-identity
    search finds a move but scores under NEAR_CLEAR and the global search over every scale has no
    unique winner (found with the model of 2026-12-02 on steel_SEM_006: NCC 0.48 against the
    identity's 0.31, junk at a fifth of the scale; with the model of 2026-12-03 on steel_SEM_004 and
    010; with the model of 2026-12-04 on none of seed 1, on steel_SEM_006 of seed 2), the
    near-identity finding must stand, confirmed by structure, and be better than the identity.
    Which pairs take this path depends on the model, so the test renders seeds 1, 2, 3 until one
    pair takes it and asks for at least one."""
    from styleunwarp.io import read_image
    from styleunwarp.quality import tre
    from styleunwarp.style import StyleTransfer
    from styleunwarp.transform import read_transform

    module = _bench_asdelivered()
    cbs_dir = real_data("openecci-cbs", "steel_SEM_006.tif")[0].parent
    st = StyleTransfer.load_default()
    fallbacks = []
    for seed in (1, 2, 3):
        if fallbacks:
            break
        for row in module._blind_pairs(cbs_dir, tmp_path / str(seed), seed, 10):
            lom, cbs = read_image(row["lom"]).data, read_image(row["cbs"]).data
            target, source = st.prepare_target(cbs), st(lom)
            found = align("auto", target, source)
            if found.search != "near-fallback":
                continue
            assert "no unique winner" in found.reason, found.reason
            assert found.confirmation and found.confirmation["z"] >= 5, found.reason
            truth = read_transform(row["truth"])

            def start_tre(m):
                return tre(compose_direct(identity_elastic(4, target.shape), m), truth, target.shape, source.shape).mean

            fallbacks.append((row["name"], start_tre(found.identity.matrix), start_tre(found.chosen.matrix)))
    assert fallbacks, "no blind pair took the near-identity fallback"
    assert all(chosen < identity - 2.0 and chosen < 3.0 for _, identity, chosen in fallbacks), fallbacks


@needs_data("openecci-cbs", "steel_SEM_010.tif")
def test_where_no_search_finds_a_unique_winner_the_identity_refined_locally_is_judged(tmp_path):
    """Real CBS images with LOM renderings by benchmarks/blind_lom.py (seed 6), moved by a few degrees
    and pixels, no pixel sizes, through the shipped model. On steel_SEM_008 and 010 (7.8 and 11.1 px
    off as given) the searches over hypotheses find no unique winner (on the representations of a
    LOM look the model was not trained on, distant hypotheses score alike), so the identity was kept;
    refined locally from the identity (rotation and shift), the start beats the identity by the
    margins, is confirmed by structure, and lies within 3 px of the truth. (steel_SEM_010 is now
    found first by an earlier search, within 3 px too: at scale 1 alone, and since the model's input
    stretch leaves out the LOM's black corners, by the near-identity search; steel_SEM_008's unit-scale
    winner is refused by structure, and the local refinement finds it.) Without the refinement
    (``refine_local=False``) the identity is kept, as before. On lom3 seed 4 steel_SEM_004
    (benchmarks/blind_lom3.py, 7.1 px off) the refinement must not move the pair (to 9.3 px with the
    model before the appearance fine-tune, refused there because refinements started 4 px away
    scattered along a flat ridge of the score; with the shipped model now it does not beat the
    identity by the margin): the identity stays. The flat-ridge rule itself:
    :func:`test_a_refinement_on_a_flat_ridge_of_the_score_keeps_the_identity`."""
    from styleunwarp.io import read_image
    from styleunwarp.quality import tre
    from styleunwarp.style import StyleTransfer
    from styleunwarp.transform import read_transform

    module = _bench_asdelivered()
    cbs_dir = real_data("openecci-cbs", "steel_SEM_010.tif")[0].parent
    st = StyleTransfer.load_default()
    rows = [r for r in module._blind_pairs(cbs_dir, tmp_path, 6, 10) if r["name"] in ("steel_SEM_008", "steel_SEM_010")]
    assert len(rows) == 2
    searched = []
    for row in rows:
        lom, cbs = read_image(row["lom"]).data, read_image(row["cbs"]).data
        target, source = st.prepare_target(cbs), st(lom)
        truth = read_transform(row["truth"])

        def start_tre(m):
            return tre(compose_direct(identity_elastic(4, target.shape), m), truth, target.shape, source.shape).mean

        found = align("auto", target, source)
        identity, chosen = start_tre(found.identity.matrix), start_tre(found.chosen.matrix)
        assert identity > 7.0 and chosen < 3.0, (row["name"], identity, chosen, found.reason)
        assert found.confirmation and found.confirmation["z"] >= 5, found.reason
        if found.search in ("unit-scale-fallback", "near-fallback"):  # steel_SEM_010: an earlier search finds it first
            assert row["name"] == "steel_SEM_010", found.reason
            continue
        searched.append(row["name"])
        assert found.search == "local" and "refined locally" in found.reason, (row["name"], found.reason)
        assert found.chosen.extra.get("refined_from") == "identity"
        before = align("auto", target, source, refine_local=False)
        assert before.is_identity, before.reason
        # the structure gain a local refinement needs is asked of it: far more than it has, refused
        from styleunwarp.pipeline.coarse.confirm import confirm

        ok, facts = confirm(target, source, found.chosen, min_gain_sds=50.0)
        assert not ok and "gains too little" in facts["reason"], facts
    assert searched == ["steel_SEM_008"], searched  # at least one pair is found by the local refinement alone
    (row,) = [r for r in module._blind_pairs(cbs_dir, tmp_path / "lom3", 4, 10, "blind_lom3") if r["name"] == "steel_SEM_004"]
    target, source = st.prepare_target(read_image(row["cbs"]).data), st(read_image(row["lom"]).data)
    found = align("auto", target, source)
    assert found.is_identity and "refined locally" in found.reason, found.reason


def test_a_refinement_on_a_flat_ridge_of_the_score_keeps_the_identity():
    """Lines along one axis only: every shift along them scores alike, so the searches find no
    unique winner and refinements of the identity started 4 px apart end apart along the ridge
    (more than LOCAL_BASIN_PX): the identity stays, and the reason says why."""
    from scipy import ndimage

    from styleunwarp.pipeline.coarse import LOCAL_BASIN_PX

    rng = np.random.default_rng(0)
    img = np.zeros((256, 256), np.float32)
    for x in rng.choice(np.arange(10, 246), 14, replace=False):
        img[:, x] = rng.uniform(100, 255)
    img = ndimage.gaussian_filter(img, 1.5) + rng.normal(0, 2, img.shape).astype(np.float32)
    moved = ndimage.shift(img, (0, 6), order=1, mode="nearest")
    found = align("auto", img, moved)
    assert found.is_identity and "flat ridge" in found.reason, found.reason
    spread = float(found.reason.split("end ")[1].split(" px")[0])
    assert spread > LOCAL_BASIN_PX


@pytest.mark.bunwarpj
def test_the_elastic_step_starts_bunwarpj_from_the_affine_map_instead_of_a_prewarped_source(bunwarpj):
    """elastic_step: bUnwarpJ registers the source as it is from the start ``a`` and the result is
    re-expressed in the moving frame (the source warped by ``a``), exactly for the direct map. On a
    pair 2.5 deg and 7 px off with an elastic part, the pre-warped source's empty margin costs
    accuracy and direct/inverse agreement (docs/coarse.md, "The elastic step from the affine start")."""
    from styleunwarp.pipeline.chain import elastic_step
    from styleunwarp.quality import transform_stats, tre
    from styleunwarp.registration import PIPELINE_DEFAULTS, register
    from styleunwarp.synth import make_pair

    p = make_pair((256, 256), seed=41)
    target, source = p.cbs.astype(np.float32), p.cbs_like_lom.astype(np.float32)
    a = align("similarity", target, source).chosen.matrix
    shape = target.shape
    moving = warp_source(source, a, shape)
    started = elastic_step(target, source, moving, a, PIPELINE_DEFAULTS)
    prewarped = elastic_step(target, source, moving, a, PIPELINE_DEFAULTS, from_start=False)
    assert started.source_shape == prewarped.source_shape == shape
    plugin = register(target, source, PIPELINE_DEFAULTS, initial_affine=np.asarray(a))
    np.testing.assert_allclose(compose_direct(started.direct, a).cx, plugin.direct.cx, atol=1e-6)  # exact re-expression
    err = {k: tre(compose_direct(r.direct, a), p.truth, shape).mean for k, r in (("started", started), ("prewarped", prewarped))}
    cons = {k: transform_stats(r.direct, shape, shape, r.inverse).consistency_error for k, r in (("started", started), ("prewarped", prewarped))}
    assert err["started"] < 0.7 < 1.2 < err["prewarped"], err
    assert cons["started"] < 0.4 < cons["prewarped"], cons
