"""The elastic step of two representations checked on the images as recorded (no Java: native backend)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from styleunwarp.pipeline.chain import ELASTIC_MIND_DROP_SDS, raw_structure_check, register_representations
from styleunwarp.registration import PIPELINE_DEFAULTS
from styleunwarp.synth import make_pair
from styleunwarp.transform import affine_elastic, identity_elastic, warp_image

SHAPE = (192, 192)
SHIFT = np.array([[1.0, 0.0, 4.0], [0.0, 1.0, -3.0]])  # target px -> source px: 4 px right, 3 px up


def _shifted(image: np.ndarray) -> np.ndarray:
    return warp_image(image.astype(np.float32), affine_elastic(SHIFT, 1, SHAPE), SHAPE)


@pytest.fixture(scope="module")
def images():
    """Raw target and source of one aligned view, and two representations that disagree with them:
    the source's representation is the target's shifted by 5 px, as a representation that draws
    its lines in the wrong place would be."""
    p = make_pair((256, 256), seed=11, deform=False)
    raw_target = p.cbs[32:224, 32:224].astype(np.float32)
    raw_source = np.asarray(p.lom, np.float32)[32:224, 32:224]
    rng = np.random.default_rng(3)
    rep_target = ndimage.gaussian_filter(rng.normal(size=(260, 260)), 3.0)[34:226, 34:226].astype(np.float32)
    rep_target = (rep_target - rep_target.min()) / np.ptp(rep_target) * 255.0
    rep_source = warp_image(rep_target, affine_elastic(np.array([[1.0, 0.0, -4.0], [0.0, 1.0, 3.0]]), 1, SHAPE), SHAPE)
    return raw_target, raw_source, rep_target, rep_source


def _register(rep_target, rep_source, raw):
    return register_representations(rep_target, rep_source, PIPELINE_DEFAULTS, backend="native", coarse="none",
                                    fine_affine=False, raw=raw)


def test_an_elastic_result_the_raw_images_contradict_is_undone(images):
    raw_target, raw_source, rep_target, rep_source = images
    unchecked = _register(rep_target, rep_source, None)
    assert unchecked.elastic["kept"] == "elastic"  # the representations alone favour the wrong move
    assert unchecked.elastic["raw_check"]["checked_on"].startswith("not run")
    moved_px = np.abs(unchecked.direct.to_dense(SHAPE) - identity_elastic(4, SHAPE).to_dense(SHAPE)).mean()
    assert moved_px > 2.0

    checked = _register(rep_target, rep_source, (raw_target, raw_source))
    facts = checked.elastic
    assert facts["kept"] == "start" and facts["refused"] == "raw structure"
    assert facts["raw_check"]["mind_drop_sds"] > ELASTIC_MIND_DROP_SDS
    assert "images as recorded" in facts["reason"]
    np.testing.assert_allclose(checked.direct.to_dense(SHAPE), identity_elastic(4, SHAPE).to_dense(SHAPE), atol=1e-6)


def test_an_elastic_result_the_raw_images_confirm_is_kept(images):
    raw_target, raw_source, rep_target, rep_source = images
    # the raw source shifted like its representation: the move the elastic step finds is the truth
    raw_source_shifted = warp_image(raw_source, affine_elastic(np.array([[1.0, 0.0, -4.0], [0.0, 1.0, 3.0]]), 1, SHAPE), SHAPE)
    out = _register(rep_target, rep_source, (raw_target, raw_source_shifted))
    assert out.elastic["kept"] == "elastic"
    assert out.elastic["raw_check"]["mind_drop_sds"] < 0  # the raw structure agrees better


def test_the_check_skips_images_on_other_grids_and_keeps_a_result_that_moves_nothing(images):
    raw_target, raw_source, rep_target, rep_source = images
    start = (identity_elastic(4, SHAPE), None, rep_source, {"kept": "elastic"})
    a = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    out = raw_structure_check(rep_source, a, start, SHAPE, (raw_target[:100], raw_source))
    assert out[3]["raw_check"]["checked_on"].startswith("not run")
    out = raw_structure_check(rep_source, a, start, SHAPE, (raw_target, raw_source))
    assert out[3]["kept"] == "elastic" and abs(out[3]["raw_check"]["mind_drop_sds"]) < 0.1  # nothing moved
    kept_start = (identity_elastic(4, SHAPE), None, rep_source, {"kept": "start"})
    assert raw_structure_check(rep_source, a, kept_start, SHAPE, (raw_target, raw_source)) is kept_start


def _far(by: float):
    """A kept elastic outcome that shifts the start (the identity) by ``by`` px to the right: a far move on 192 px."""
    from styleunwarp.transform import ElasticTransform

    shift = affine_elastic(np.array([[1.0, 0.0, by], [0.0, 1.0, 0.0]]), 4, SHAPE)
    assert isinstance(shift, ElasticTransform)
    return shift, None, None, {"kept": "elastic", "reason": "the representations favoured it"}


def test_a_far_elastic_move_is_kept_only_where_the_structure_confirms_it(images):
    """An elastic correction that moves the start by more than ELASTIC_MAX_MEAN_MOVE of the side on
    average is a search result: kept where the raw structure confirms it as a coarse winner, undone
    where it does not, and a local correction passes unchecked."""
    from styleunwarp.pipeline.chain import ELASTIC_MAX_MEAN_MOVE, far_move_check

    raw_target, raw_source, rep_target, rep_source = images
    a = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    by = 2.0 * ELASTIC_MAX_MEAN_MOVE * SHAPE[0]  # about 11.5 px on 192 px
    # the raw source shifted so that the far move is the truth: confirmed, kept
    truth_source = warp_image(raw_source, affine_elastic(np.array([[1.0, 0.0, -by], [0.0, 1.0, 0.0]]), 1, SHAPE), SHAPE)
    kept = far_move_check(rep_target, rep_source, a, _far(by), (raw_target, truth_source))[3]
    assert kept["kept"] == "elastic" and kept["mean_move_px"] > ELASTIC_MAX_MEAN_MOVE * SHAPE[0]
    assert kept["far_move"]["checked_on"] == "raw images"
    # the same move where the raw images are aligned at the start: not confirmed, the start restored
    direct, inverse, moved, facts = far_move_check(rep_target, rep_source, a, _far(by), (raw_target, raw_source))
    assert facts["kept"] == "start" and facts["refused"] == "far move" and "beyond a local correction" in facts["reason"]
    np.testing.assert_allclose(direct.to_dense(SHAPE), identity_elastic(4, SHAPE).to_dense(SHAPE), atol=1e-6)
    # a local correction is not checked at all
    local = far_move_check(rep_target, rep_source, a, _far(1.0), (raw_target, raw_source))[3]
    assert local["kept"] == "elastic" and "far_move" not in local and local["mean_move_px"] < 1.5
