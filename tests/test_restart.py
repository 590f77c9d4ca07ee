"""The second elastic pass from the affine part of a first pass refused only for inconsistency."""

from __future__ import annotations

import numpy as np
import pytest

from styleunwarp.pipeline.chain import GRADIENT_MARGIN, keep_or_undo, second_pass
from styleunwarp.pipeline.coarse import compose_direct
from styleunwarp.pipeline.restart import RESTART_GAIN_FACTOR, affine_part, warrants_restart
from styleunwarp.registration import PIPELINE_DEFAULTS, Registration
from styleunwarp.synth import make_pair
from styleunwarp.transform import affine_elastic, evaluate_elastic, identity_elastic, warp_image

SHAPE = (192, 192)
TRUE = np.array([[np.cos(0.03), -np.sin(0.03), 7.0], [np.sin(0.03), np.cos(0.03), -6.0]])  # target px -> source px


@pytest.fixture(scope="module")
def pair():
    texture = make_pair((256, 256), seed=5, deform=False).cbs_like_lom.astype(np.float32)
    target = texture[32:224, 32:224].copy()
    full = np.array([[1.0, 0.0, 32.0], [0.0, 1.0, 32.0]])
    # the source is the texture seen through TRUE: target pixel x lies at TRUE(x) in the source
    inv = np.linalg.inv(np.vstack([TRUE, [0, 0, 1]]))
    source_map = (np.vstack([full, [0, 0, 1]]) @ inv)[:2]
    source = warp_image(texture, affine_elastic(source_map, 1, SHAPE), SHAPE)
    return target, source


def _registration(direct: np.ndarray, inverse) -> Registration:
    inv = identity_elastic(4, SHAPE) if inverse is None else affine_elastic(inverse, 4, SHAPE)
    return Registration(affine_elastic(direct, 4, SHAPE), inv, SHAPE, SHAPE, "test", PIPELINE_DEFAULTS, 0.0, {})


def _error(direct, truth: np.ndarray) -> float:
    return float(np.hypot(*(evaluate_elastic(direct, SHAPE) - evaluate_elastic(affine_elastic(truth, 1, SHAPE), SHAPE)))[24:-24, 24:-24].mean())


def test_the_affine_part_of_an_affine_map_is_that_map():
    a = np.array([[1.02, -0.05, 4.5], [0.04, 0.98, -3.0]])
    assert np.abs(affine_part(affine_elastic(a, 4, SHAPE), SHAPE) - a).max() < 1e-6
    # a map that sends almost everything outside the image has no usable affine part
    assert affine_part(affine_elastic(np.array([[1.0, 0, 500.0], [0, 1.0, 0]]), 4, SHAPE), SHAPE) is None


def test_only_a_strong_gain_refused_for_inconsistency_warrants_a_second_pass():
    m = GRADIENT_MARGIN["alike"]
    base = {"kept": "start", "refused": "inconsistent", "gradient_start": 0.10, "gradient_margin": m}
    assert warrants_restart({**base, "gradient_elastic": 0.10 + RESTART_GAIN_FACTOR * m * 1.1})
    assert not warrants_restart({**base, "gradient_elastic": 0.10 + RESTART_GAIN_FACTOR * m * 0.9})
    assert not warrants_restart({**base, "refused": "no gain", "gradient_elastic": 0.2})
    assert not warrants_restart({**base, "kept": "elastic", "gradient_elastic": 0.2})
    assert not warrants_restart({**base, "gradient_elastic": float("nan")})


def test_a_right_but_inconsistent_first_pass_restarts_from_its_affine_part(pair):
    """A first pass that found the 7 px / 1.7 deg misalignment but whose inverse disagrees is refused
    by the keep rule; its affine part is confirmed by structure and the real native engine runs again
    from it: the result is within a fraction of a pixel of the truth, and the facts say what happened."""
    target, source = pair
    start = np.eye(2, 3)  # the coarse step missed it: identity
    first = _registration(TRUE + np.array([[0, 0, 0.4], [0, 0, -0.3]]), None)  # right within 0.5 px, inverse wrong
    outcome = keep_or_undo(target, source, first)
    assert outcome[3]["refused"] == "inconsistent" and warrants_restart(outcome[3])
    a, reg, (direct, inverse, moved, facts) = second_pass(target, source, start, first, outcome, PIPELINE_DEFAULTS, backend="native")
    assert facts["restart"]["confirmed"] and facts["restart"]["confirmation"]["z"] >= 5
    assert facts["restart"]["first_pass"]["consistency_px"] > 0.75
    assert _error(affine_elastic(a, 1, SHAPE), TRUE) < 0.6  # the new start
    assert _error(compose_direct(direct, a), TRUE) < 0.6  # the result, kept or not
    assert "second pass ran from it" in facts["reason"]


def test_an_affine_part_that_structure_does_not_confirm_leaves_the_start(pair):
    target, source = pair
    start = TRUE.copy()  # the coarse step got it right
    wrong = np.array([[1.0, 0.0, -9.0], [0.0, 1.0, 8.0]])  # a first pass that moved it away, inconsistent
    outcome = keep_or_undo(target, warp_image(source, affine_elastic(start, 1, SHAPE), SHAPE), _registration(wrong, None))
    assert outcome[3]["kept"] == "start"
    a, reg, (direct, inverse, moved, facts) = second_pass(target, source, start, _registration(wrong, None), outcome,
                                                          PIPELINE_DEFAULTS, backend="native")
    assert not facts["restart"]["confirmed"] and "not confirmed" in facts["reason"]
    assert np.array_equal(a, start) and reg.backend == "test"
    assert _error(compose_direct(direct, a), TRUE) < 1e-4  # the start as it was
