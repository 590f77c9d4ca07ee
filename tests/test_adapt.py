"""Test-time adaptation of a style model to one pair (styleunwarp.style.adapt), with the shipped model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from styleunwarp.style import StyleTransfer  # noqa: E402
from styleunwarp.style.adapt import adapt_to_pair  # noqa: E402
from styleunwarp.synth.variety import varied_pair  # noqa: E402
from styleunwarp.transform import warp_image  # noqa: E402

from conftest import data_skip_reason, real_data  # noqa: E402

CLEM = sorted(real_data("deepclem-em-fm", "fm/*.png"))


@pytest.fixture(scope="module")
def shipped():
    try:
        return StyleTransfer.load_default()
    except Exception as exc:  # noqa: BLE001 - the shipped model is part of the repository
        pytest.fail(f"shipped model does not load: {exc}")


def _map_error(model, lom, target_map, truth) -> float:
    """Mean |model(LOM) moved by the truth - target map| where the moved LOM covers the target."""
    moved = warp_image(model(lom), truth, target_map.shape)
    inside = warp_image(np.ones(lom.shape[:2], np.float32), truth, target_map.shape) > 0.999
    return float(np.abs(moved - target_map)[inside].mean())


def test_adapting_on_the_true_alignment_fits_a_look_the_model_has_not_seen(shipped):
    pair = varied_pair((256, 256), seed=5, deform=True, colour=False)
    lom = 255.0 - pair.lom.astype(np.float32)  # contrast inverted: a look no training crop had
    target_map = shipped.prepare_target(pair.cbs)
    weights = {k: v.clone() for k, v in shipped.generator.state_dict().items()}
    before = _map_error(shipped, lom, target_map, pair.truth)
    adapted, facts = adapt_to_pair(shipped, lom, target_map, pair.truth, steps=30, crop=128, batch=2, lr=1e-3)
    after = _map_error(adapted, lom, target_map, pair.truth)
    assert after < 0.93 * before, (before, after)  # measured 17.2 -> 15.1
    assert facts["steps"] == 30 and facts["loss_last"] < facts["loss_first"]
    assert 0.5 < facts["valid_fraction"] <= 1.0
    assert adapted.card["adapted"]["steps"] == 30
    for k, v in shipped.generator.state_dict().items():  # the model passed in is left as it was
        assert torch.equal(v, weights[k]), k


def test_adapting_needs_the_source_on_the_target_grid(shipped):
    pair = varied_pair((128, 128), seed=6, colour=False)
    far = np.zeros((2, 128, 128), np.float32) - 1000.0  # every target pixel maps outside the source
    with pytest.raises(ValueError, match="too little of the warped source"):
        adapt_to_pair(shipped, pair.lom, shipped.prepare_target(pair.cbs), far, steps=1, crop=64, batch=1)
    with pytest.raises(ValueError, match="steps must be"):
        adapt_to_pair(shipped, pair.lom, shipped.prepare_target(pair.cbs), far, steps=0)


def test_the_mean_transform_maps_to_the_mean_of_the_two_maps():
    from styleunwarp.pipeline.adapt import mean_transform
    from styleunwarp.transform import ElasticTransform

    rng = np.random.default_rng(0)
    a = ElasticTransform(rng.normal(50, 20, (7, 7)), rng.normal(50, 20, (7, 7)))
    b = ElasticTransform(rng.normal(50, 20, (7, 7)), rng.normal(50, 20, (7, 7)))
    m = mean_transform(a, b)
    np.testing.assert_allclose(m.to_dense((60, 80)), (a.to_dense((60, 80)) + b.to_dense((60, 80))) / 2, atol=1e-9)
    assert mean_transform(a, ElasticTransform(np.zeros((11, 11)), np.zeros((11, 11)))) is None


def test_adapting_is_on_by_default_only_for_a_style_model_without_a_chain_card(tmp_path):
    from styleunwarp.pipeline.adapt import default_adapt_steps
    from styleunwarp.style.adapt import ADAPT_STEPS
    from styleunwarp.style.chain import Chain, write_chain_card
    from styleunwarp.style.representations.raw import Raw

    assert default_adapt_steps(None, "model") == ADAPT_STEPS == 150  # the shipped model
    assert default_adapt_steps(None, "none") == 0  # raw images: nothing to adapt
    assert default_adapt_steps(None, "model", "none") == 0  # the raw images a second opinion registers
    write_chain_card(tmp_path, Chain("none", "elastix"), Raw().save(tmp_path), candidates=[])
    assert default_adapt_steps(tmp_path, "model") == 0  # train's card: its chain was measured without adaptation


@pytest.mark.slow
def test_register_adapts_the_shipped_model_and_keeps_the_mean_of_two_results(tmp_path):
    import json

    from click.testing import CliRunner

    from styleunwarp.cli import main
    from styleunwarp.io import write_tiff
    from styleunwarp.transform import write_elastic

    pair = varied_pair((256, 256), seed=8, deform=True, colour=False)
    write_tiff(tmp_path / "lom.tif", pair.lom)
    write_tiff(tmp_path / "cbs.tif", pair.cbs)
    write_elastic(pair.truth, tmp_path / "truth.txt")
    common = [str(tmp_path / "lom.tif"), str(tmp_path / "cbs.tif"), "--backend", "native", "--truth", str(tmp_path / "truth.txt"),
              "--no-second-opinion", "--adapt-steps", "20"]
    res = CliRunner().invoke(main, ["register", *common, "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    ad = m["adapt"]
    assert ad["combined"] == "mean" and ad["steps"] == 20 and ad["loss_last"] < ad["loss_first"], ad
    assert ad["first"]["kept"] in ("elastic", "start") and ad["adapted"]["kept"] in ("elastic", "start")
    assert ad["raw_check"]["mind_drop_sds"] <= ad["raw_check"]["max_drop_sds"]  # the mean, checked against the first result
    assert "adapted: the model fine-tuned on this pair (20 steps" in res.output
    assert m["seconds"]["adapt"] > 0 and m["tre"]["mean"] < 3.0, m["tre"]
    # batch passes the option on; raw images have no model to adapt, which is said
    (tmp_path / "acq").mkdir()
    write_tiff(tmp_path / "acq" / "p1_LOM.tif", pair.lom)
    write_tiff(tmp_path / "acq" / "p1_CBS.tif", pair.cbs)
    raw = CliRunner().invoke(main, ["batch", str(tmp_path / "acq"), "--out", str(tmp_path / "b"), "--style", "none", "--backend", "native",
                                    "--no-second-opinion", "--adapt-steps", "20", "--no-progress"])
    assert raw.exit_code == 0, raw.output
    mb = json.loads((tmp_path / "b" / "p1" / "metrics.json").read_text())
    assert mb["adapt"]["combined"] == "not adapted" and "only translation models adapt" in mb["adapt"]["reason"]


@pytest.mark.slow
def test_the_second_opinion_adapts_the_result_it_keeps(tmp_path):
    """With a second opinion the adaptation waits for the duel: the model chain's result, kept on a
    steel pair of the look the model was trained on, is adapted afterwards, and the adapted result
    is the one that met the alternative (the shale test of test_second_opinion.py has the other branch:
    results replaced before or after they were adapted)."""
    from styleunwarp.io import write_tiff
    from styleunwarp.pipeline.second_opinion import SUBFOLDER, register_pair_verified
    from styleunwarp.style.chain import style_model_alternatives
    from styleunwarp.transform import write_elastic

    pair = varied_pair((256, 256), seed=8, deform=True, colour=False)
    write_tiff(tmp_path / "lom.tif", pair.lom)
    write_tiff(tmp_path / "cbs.tif", pair.cbs)
    write_elastic(pair.truth, tmp_path / "truth.txt")
    alts = style_model_alternatives()
    res = register_pair_verified(tmp_path / "lom.tif", tmp_path / "cbs.tif", tmp_path / "out", alternatives=alts, model=None,
                                 backend="native", truth=tmp_path / "truth.txt", adapt_steps=20)
    m, so = res.metrics, res.metrics["second_opinion"]
    assert so["kept"] == "model chain", so  # measured: the raw chain loses the duel on this look
    assert m["adapt"]["steps"] == 20 and (m["adapt"]["combined"] == "mean" or m["adapt"]["combined"].startswith("first only")), m["adapt"]
    model_entry = so["tried"][0]
    assert model_entry["mind"] == m["structure"]["mind"] and "before_adapting" in model_entry, so  # the adapted result dueled
    assert (tmp_path / "out" / SUBFOLDER / alts[0].slug / "metrics.json").is_file()
    assert m["seconds"]["adapt"] > 0 and m["tre"]["mean"] < 3.0, m["tre"]


@pytest.mark.slow
@pytest.mark.skipif(not CLEM, reason=data_skip_reason("deepclem-em-fm", "fm/*.png"))
def test_a_pair_the_models_map_does_not_show_is_not_adapted(tmp_path):
    """A real CLEM pair (EM -> chromatin fluorescence, a 400 px crop) through the shipped steel model:
    its map and the target's correlate at about 0 as registered, so the model is not fine-tuned on
    that pair (measured on the whole pairs: adapting changed no result and cost 86-449 s each)."""
    import json

    from click.testing import CliRunner

    from styleunwarp.cli import main
    from styleunwarp.io import read_image, to_gray, write_tiff
    from styleunwarp.pipeline.coarse import MIN_SCORE

    fm = CLEM[0]
    crop = (slice(200, 600), slice(300, 700))
    write_tiff(tmp_path / "em.tif", to_gray(read_image(fm.parent.parent / "em" / fm.name).data)[crop])
    write_tiff(tmp_path / "fm.tif", to_gray(read_image(fm).data)[crop])
    res = CliRunner().invoke(main, ["register", str(tmp_path / "em.tif"), str(tmp_path / "fm.tif"), "--out", str(tmp_path / "out"),
                                    "--backend", "native", "--no-second-opinion"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    ad = m["adapt"]
    assert ad["combined"] == "not adapted" and ad["correlation"] < MIN_SCORE, ad
    assert ad["correlation"] == pytest.approx(m["styled_ncc_after"], abs=1e-6)  # the correlation the result reports
    assert "share too little structure" in ad["reason"] and "not adapted: the model's map" in res.output
    assert "adapt" in m["seconds"] and m["seconds"]["adapt"] < 5.0  # nothing fine-tuned
