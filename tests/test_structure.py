"""Structure checks (styleunwarp.structure): coarse winners confirmed by MIND agreement
(coarse.confirm), the never-worse rule on gradient agreement, on real arrays and the real chain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from styleunwarp.pipeline.chain import GRADIENT_MARGIN, check_for, keep_or_undo, register_representations
from styleunwarp.pipeline.coarse import align
from styleunwarp.quality import tre
from styleunwarp.registration import PIPELINE_DEFAULTS, Registration
from styleunwarp.structure import chance, gradient_agreement, gradient_chance, mind_agreement
from styleunwarp.synth.deform import random_deformation
from styleunwarp.transform import ElasticTransform, identity_elastic

SHALE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "petrography-bse-se"


def _texture(shape=(192, 192), seed=0, sigma=2.0) -> np.ndarray:
    t = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma)
    return ((t - t.min()) / (t.max() - t.min()) * 200 + 20).astype(np.float32)


def test_structure_measures_ignore_the_grey_mapping_and_see_misalignment():
    a = _texture()
    inverted = (255.0 - a) ** 1.3 / 255.0 ** 0.3  # another detector: inverted and non-linear
    shifted = np.roll(inverted, 3, axis=1)
    other = _texture(seed=1)
    for f in (gradient_agreement, mind_agreement):
        same = f(a, inverted)
        assert same > 0.6, (f.__name__, same)
        assert f(a, shifted) < same - 0.2, (f.__name__, f(a, shifted), same)
        assert f(a, other) < same - 0.3, (f.__name__, f(a, other))  # unrelated directions: about 0.5 x the weights
    assert mind_agreement(a, other) < 0.1
    mu, sd = chance(a, inverted)
    assert abs(mu) < 0.1 and 0 <= sd < 0.1 and mind_agreement(a, inverted) > mu + 10 * sd
    assert np.isnan(mind_agreement(a, a, np.zeros(a.shape, bool)))


def _shaded_pair(offset=(36, 28)):
    """Two modalities of one field (inverted contrast) under uneven light whose bright spots sit
    ``offset`` px apart: the raw NCC follows the light, the structure does not."""
    t = _texture((224, 224), seed=3, sigma=1.5)
    yy, xx = np.mgrid[0:224, 0:224]

    def spot(cy, cx, s=8.0):
        return 300.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s ** 2))

    def light(oy, ox):
        return spot(90 + oy, 100 + ox) + 0.6 * spot(150 + oy, 60 + ox, 5.6) + 0.8 * spot(70 + oy, 160 + ox, 10.4)

    target = 0.25 * t + light(0, 0)
    source = 0.25 * (255.0 - t) + light(offset[1], offset[0])
    return source.astype(np.float32), target.astype(np.float32)


def test_coarse_winner_on_raw_images_needs_the_structure_to_agree():
    source, target = _shaded_pair()
    by_ncc = align("auto", target, source, scale=1.0, confirm_structure=False)
    assert not by_ncc.is_identity and by_ncc.confirmation is None  # the NCC of raw intensities follows the light
    checked = align("auto", target, source, scale=1.0)
    assert checked.is_identity and "structure disagrees" in checked.reason, checked.reason
    assert checked.confirmation["mind_identity"] > checked.confirmation["mind_winner"]
    assert checked.to_dict(target.shape)["confirmation"]["z"] == checked.confirmation["z"]


def test_coarse_winner_confirmed_when_structure_agrees():
    t = _texture((224, 224), seed=4, sigma=1.5)
    source = np.roll(255.0 * (t / 255.0) ** 2, (30, -24), axis=(0, 1)).astype(np.float32)  # another grey mapping, shifted
    res = align("auto", t, source, scale=1.0)
    assert not res.is_identity and res.confirmation["z"] >= 5, (res.reason, res.confirmation)
    assert np.allclose(res.chosen.matrix[:, 2], [-24, 30], atol=1.0), res.chosen.matrix


def _registration(direct: ElasticTransform, shape) -> Registration:
    return Registration(direct, None, shape, shape, "test", PIPELINE_DEFAULTS, 0.0, {})


def test_never_worse_by_structure_keeps_a_real_gain_and_undoes_a_move_away():
    t = _texture((160, 160), seed=6)
    d = random_deformation(np.random.default_rng(1), t.shape, rotation_deg=(1.0, 1.0), shift_px=(3.0, 3.0), elastic_px=(1.0, 1.0))
    from styleunwarp.style.heldout import deform_source
    from styleunwarp.transform import warp_image

    moving = deform_source(255.0 - t, d)  # the start: another modality, misaligned by d
    good = keep_or_undo(t, moving, _registration(d.truth, t.shape), "structure")
    assert good[3]["kept"] == "elastic" and good[3]["gradient_elastic"] > good[3]["gradient_start"] + GRADIENT_MARGIN["structure"], good[3]
    assert good[3]["check"] == "structure" and "gradient agreement" in good[3]["reason"]
    # a result that moves the aligned image 4 px away: undone, the start kept
    aligned = (255.0 - t).astype(np.float32)
    away = ElasticTransform(identity_elastic(4, t.shape).cx + 4.0, identity_elastic(4, t.shape).cy)
    direct, _, moved, facts = keep_or_undo(t, aligned, _registration(away, t.shape), "structure")
    assert facts["kept"] == "start" and np.array_equal(moved, aligned), facts
    assert tre(direct, identity_elastic(4, t.shape), t.shape).mean < 1e-6
    assert np.abs(warp_image(aligned, direct, t.shape) - aligned)[5:-5, 5:-5].max() < 1e-3
    with pytest.raises(ValueError, match="check must be"):
        keep_or_undo(t, aligned, _registration(away, t.shape), "mi")


def test_raw_chains_are_checked_by_structure_others_by_ncc():
    assert check_for("none") == "structure" and check_for(None) == "structure"
    assert check_for("edges") == "alike" and check_for("cbs") == "alike" and check_for("shared") == "alike"


@pytest.mark.skipif(not SHALE.is_dir(), reason="petrography-bse-se data absent (../shared/data)")
def test_raw_shale_pair_near_identity_is_not_made_worse():
    """A real BSE/SE pair delivered almost aligned: the raw chain with the structure checks keeps
    it at least as good as delivered (the NCC coarse step used to move such pairs 1-1.5 px away)."""
    from styleunwarp.io import read_image, to_gray
    from styleunwarp.style.heldout import deform_source
    from styleunwarp.style.representations.raw import Raw

    name = sorted(p.name for p in (SHALE / "se").glob("*.png"))[16]
    se, bse = to_gray(read_image(SHALE / "se" / name).data), to_gray(read_image(SHALE / "bse" / name).data)
    src, tgt = se[72:328, 72:328], bse[72:328, 72:328]
    d = random_deformation(np.random.default_rng([5, 0, 0, 11]), tgt.shape, rotation_deg=(0.3, 0.3), shift_px=(0.8, 0.8), elastic_px=(0.5, 0.5))
    s, t = Raw().represent(deform_source(src, d), tgt)
    start = tre(identity_elastic(4, t.shape), d.truth, t.shape).mean
    out = register_representations(t, s, PIPELINE_DEFAULTS, backend="native", backend_options={"similarity": "nmi"}, check="structure")
    got = tre(out.direct, d.truth, t.shape).mean
    assert got <= start + 0.1, (got, start, out.coarse.reason, out.elastic)


def test_raw_images_of_reversed_contrast_are_aligned_coarsely_by_either_polarity():
    t = _texture((224, 224), seed=4, sigma=1.5)
    source = np.roll(255.0 - t, (30, -24), axis=(0, 1)).astype(np.float32)  # another detector: reversed, shifted
    same = align("auto", t, source, scale=1.0)
    assert same.is_identity  # positive NCC finds nothing credible
    either = align("auto", t, source, scale=1.0, polarity="either")
    assert not either.is_identity and either.chosen.extra.get("inverted") is True, either.reason
    assert "grey scale reversed" in either.reason and either.confirmation["z"] >= 5
    assert np.allclose(either.chosen.matrix[:, 2], [-24, 30], atol=1.0), either.chosen.matrix
    with pytest.raises(ValueError, match="polarity"):
        align("auto", t, source, polarity="inverted")


def test_gradient_gain_on_raw_images_is_judged_against_its_chance_spread():
    """Few edges (a smooth fluorescence-like image): the agreement varies a lot between unrelated
    views, so a gain above the fixed margin but within that spread does not keep a result."""
    from styleunwarp.pipeline.chain import GRADIENT_CHANCE_SDS

    busy = _texture((160, 160), seed=7, sigma=1.0)
    blobs = _texture((160, 160), seed=8, sigma=12.0)  # smooth: few, wide edges
    mu_b, sd_b = gradient_chance(busy, (255.0 - busy))
    mu_s, sd_s = gradient_chance(blobs, blobs ** 1.5)
    assert sd_s > 2 * sd_b, (sd_b, sd_s)
    from styleunwarp.style.heldout import deform_source

    t = blobs
    d = random_deformation(np.random.default_rng(2), t.shape, rotation_deg=(0.5, 0.5), shift_px=(2.0, 2.0), elastic_px=(0.5, 0.5))
    moving = deform_source(t.max() - t, d)
    _, _, _, facts = keep_or_undo(t, moving, _registration(d.truth, t.shape), "structure")
    from styleunwarp.transform import warp_image

    spread = gradient_chance(moving, t, (moving != 0) & (warp_image(moving, d.truth, t.shape) != 0))[1]
    assert facts["gradient_margin"] == pytest.approx(max(GRADIENT_MARGIN["structure"], GRADIENT_CHANCE_SDS * spread))
    assert facts["gradient_margin"] > GRADIENT_MARGIN["structure"]  # the spread decides here
    gain = facts["gradient_elastic"] - facts["gradient_start"]
    assert (facts["kept"] == "elastic") == (gain > facts["gradient_margin"]), facts


def test_paired_gain_is_the_agreement_difference_on_common_pixels_and_knows_its_noise():
    """paired_gain: the same number as two mind_agreement calls on one mask, split into tiles whose
    spread gives a t: a 2 px correction of the whole image is many standard errors; an image
    that is right in one corner only, or two placements equally right, is not."""
    from styleunwarp.structure import paired_gain

    target = _texture((256, 256), seed=5, sigma=1.5)
    source = (255.0 - target) ** 1.2 / 255.0 ** 0.2  # another detector
    right, off = source, np.roll(source, 2, axis=1)
    mask = np.ones(target.shape, bool)
    mask[:, :4] = mask[:, -4:] = False
    g = paired_gain(target, off, right, mask)
    assert g["gain"] == pytest.approx(mind_agreement(right, target, mask) - mind_agreement(off, target, mask), abs=1e-6)
    assert g["gain"] > 0.1 and g["t"] > 8 and g["tiles"] == 16
    assert paired_gain(target, right, off, mask)["t"] < -8  # the other way round
    corner = off.copy()
    corner[:64, :64] = right[:64, :64]  # better in one tile of 16 only
    c = paired_gain(target, off, corner, mask)
    assert c["gain"] > 0 and c["t"] < 2, c
    other = np.roll(source, 2, axis=0)  # as far off the other way: as good, the sign is noise
    assert abs(paired_gain(target, off, other, mask)["t"]) < 3
    assert np.isnan(paired_gain(target, off, right, np.zeros(target.shape, bool))["t"])


def test_coarse_winner_must_gain_across_the_image_not_in_half_of_it():
    """A source whose left 52 % is 4 px off and whose right part is aligned: the 4 px shift
    agrees better overall (by more than two chance spreads) but only because the left tiles gain
    more than the right ones lose, so confirm refuses it as inconsistent; the same shift where
    the whole source is off is confirmed."""
    from styleunwarp.pipeline.coarse.confirm import PAIRED_T_MIN, confirm
    from styleunwarp.pipeline.coarse.types import Candidate

    target = _texture((256, 256), seed=7, sigma=1.5)
    aligned = ((255.0 - target) ** 1.2 / 255.0 ** 0.2).astype(np.float32)
    off = np.roll(aligned, 4, axis=1)  # the map x -> x + 4 brings it onto the target
    half_off = aligned.copy()
    half_off[:, :132] = off[:, :132]
    shift = Candidate.from_matrix("similarity", np.array([[1.0, 0.0, 4.0], [0.0, 1.0, 0.0]]), 0.5)
    ok, facts = confirm(target, half_off, shift)
    assert facts["mind_winner"] > facts["mind_identity"] + 2 * facts["mind_chance_sd"] and facts["z"] >= 5  # passed before
    assert not ok and facts["paired_t"] < PAIRED_T_MIN and "inconsistently" in facts["reason"], facts
    ok, facts = confirm(target, off, shift)
    assert ok and facts["paired_t"] > 5, facts
