"""The keep rule's peak test: a small gain counts only where the two images' agreement peaks sharply."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from styleunwarp.pipeline.chain import CLEAR_GAIN_FACTOR, GRADIENT_MARGIN, PEAK_DROP_MIN, keep_or_undo
from styleunwarp.registration import PIPELINE_DEFAULTS, Registration
from styleunwarp.structure import gradient_gain, gradient_peak_drop
from styleunwarp.synth import make_pair
from styleunwarp.transform import affine_elastic, evaluate_elastic, identity_elastic, warp_image

SHAPE = (192, 192)


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    return make_pair(SHAPE, seed=5, deform=False).cbs_like_lom.astype(np.float32)


def _look(texture: np.ndarray, blur: float, noise: float) -> np.ndarray:
    """The texture as another representation sees it: blurred by ``blur`` px, plus smooth noise."""
    n = ndimage.gaussian_filter(np.random.default_rng(0).normal(0, 1, SHAPE), 1.5)
    img = (ndimage.gaussian_filter(texture, blur) if blur else texture) + noise * texture.std() * n / n.std()
    return (img - img.min() + 1).astype(np.float32)


def _shifted(img: np.ndarray, dx: float) -> np.ndarray:
    return warp_image(img, affine_elastic(np.array([[1, 0, dx], [0, 1, 0.0]]), 1, SHAPE), SHAPE)


def _correction(dx: float) -> Registration:
    """An elastic result that undoes a shift of ``dx`` px exactly (direct and inverse agree)."""
    return Registration(affine_elastic(np.array([[1, 0, -dx], [0, 1, 0.0]]), 4, SHAPE),
                        affine_elastic(np.array([[1, 0, dx], [0, 1, 0.0]]), 4, SHAPE), SHAPE, SHAPE, "test", PIPELINE_DEFAULTS, 0.0, {})


def test_the_peak_drop_reads_how_sharply_two_images_agree(texture):
    crisp = gradient_peak_drop(texture, texture)
    assert crisp > 0.3
    assert gradient_peak_drop(texture, texture, shift=0.0) == pytest.approx(0.0, abs=1e-6)
    # a blurred view of the same structure agrees with it over a flat top
    assert gradient_peak_drop(_look(texture, 6, 0), texture) < 0.001
    # the drop at 2 px is what undoing a 2 px shift gains (the measure is the same curve)
    look = _look(texture, 0, 2.0)
    start = _shifted(look, 2.0)
    before, after, _ = gradient_gain(start, look, texture, start != 0)
    assert after - before == pytest.approx(gradient_peak_drop(look, texture, start != 0), rel=0.5)
    mask = np.zeros(SHAPE, bool)
    mask[:4, :4] = True
    assert np.isnan(gradient_peak_drop(texture, texture, mask))


def test_a_small_gain_on_a_flat_agreement_peak_keeps_the_start(texture):
    margin, clear = GRADIENT_MARGIN["alike"], CLEAR_GAIN_FACTOR * GRADIENT_MARGIN["alike"]
    # a crisp but noisy representation: correcting 2 px gains little, yet the peak is sharp -> kept
    crisp = _look(texture, 0, 2.0)
    facts = keep_or_undo(texture, _shifted(crisp, 2.0), _correction(2.0))[3]
    assert margin < facts["gradient_elastic"] - facts["gradient_start"] < clear
    assert facts["kept"] == "elastic" and facts["peak_drop"] >= PEAK_DROP_MIN["alike"], facts
    assert "agreement peak drop" in facts["reason"]
    # a blurred representation: correcting 4 px gains as little, over a flat top -> the start is kept
    blurred = _look(texture, 6, 0)
    start = _shifted(blurred, 4.0)
    direct, inverse, moved, facts = keep_or_undo(texture, start, _correction(4.0))
    assert margin < facts["gradient_elastic"] - facts["gradient_start"] < clear
    assert facts["kept"] == "start" and facts["refused"] == "flat peak" and facts["peak_drop"] < PEAK_DROP_MIN["alike"], facts
    assert "too weakly to locate" in facts["reason"] and "kept the start" in facts["reason"]
    assert moved is start and np.abs(evaluate_elastic(direct, SHAPE) - evaluate_elastic(identity_elastic(4, SHAPE), SHAPE)).max() < 1e-6
    # raw images of two modalities are not peak-tested (no measurement there): their own margin decides
    facts = keep_or_undo(texture, start, _correction(4.0), "structure")[3]
    assert "peak_drop" not in facts and facts.get("refused") != "flat peak"


def test_a_clear_gain_is_kept_without_the_peak_test(texture):
    crisp = _look(texture, 0, 0.5)
    facts = keep_or_undo(texture, _shifted(crisp, 1.0), _correction(1.0))[3]
    assert facts["gradient_elastic"] - facts["gradient_start"] >= CLEAR_GAIN_FACTOR * GRADIENT_MARGIN["alike"]
    assert facts["kept"] == "elastic" and "peak_drop" not in facts
